"""edgeprof: an on-device profiling agent for quantized-model inference at the edge.

The hot path (ticks, regions, the sampler thread) lives in the C core, ``edgeprof._native``;
only :mod:`edgeprof.native` touches it.
"""

__version__ = "0.1.0"
