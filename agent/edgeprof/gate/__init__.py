"""The gate stage: approve or reject a model on its reports, with reasons an auditor can check.

``policy`` reads TOML policies (the shipped ``policies/default.toml`` carries the governance
framework's thresholds); ``evaluate`` applies rules, regression and drift to a candidate;
``drift`` holds the statistics (KS, chi-square, PSI, Mann-Whitney); ``inputs`` loads candidates
from files or a collector; ``audit`` keeps the hash-chained decision log.
"""
