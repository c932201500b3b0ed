"""Test fixtures that are real parts: fake sysfs trees written by real processes, stand-in and
real collectors on loopback, report factories, and child-process helpers. Shipped in the package so
that benchmarks and downstream tests can use them; nothing in the agent imports them.
"""
