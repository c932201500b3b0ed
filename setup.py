"""Only what pyproject.toml cannot say: the compiled parts.

The C core is built through cffi's setuptools hook (native/build_native.py); the two region-mark
builtins (native/py/marks.c) are a plain CPython extension, because cffi's per-call GIL release
costs more than a mark itself.
"""

from setuptools import Extension, setup

setup(
    cffi_modules=["native/build_native.py:ffibuilder"],
    ext_modules=[Extension("edgeprof._marks", sources=["native/py/marks.c"])],
)
