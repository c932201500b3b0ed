"""The measurement stage: a runner's inferences inside native regions, and what they mean.

``session`` runs load, warm-up and the measured loop while the monitor samples; ``profile``
turns one request (model, runner, options) into a signed report; ``inputs`` makes or reads the
input tensors; ``stats`` (percentiles, confidence intervals, warnings), ``energy`` (per-region
integration of power traces) and ``quality`` (agreement, SNR, accuracy against a float twin)
are the arithmetic, kept free of I/O so that each can be checked against known answers.
"""
