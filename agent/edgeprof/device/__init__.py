"""The device stage: what hardware this is and what it can tell us while a model runs.

Board files and their registry (``board_registry``, data in ``boards/``), detection of the board
the agent runs on (``detect``), the system roots every path goes through (``roots``), channel
specifications and their discovery in sysfs/procfs (``channels``, ``sources``), the native
sampler and the two-rate monitor that read them (``sampler``, ``monitor``), environment facts
(``envinfo``) and ``doctor``, which reports all of it without running a model.
"""
