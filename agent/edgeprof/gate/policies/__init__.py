"""Shipped gate policies (TOML), read by :func:`edgeprof.gate.policy.load_policy`.

A package so the policy files travel as package data with the agent; ``default.toml`` carries the
governance framework's monitoring thresholds (section 5.1) and the development procedure's
acceptance thresholds (section 7.3), each rule citing where its number comes from.
"""
