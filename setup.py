"""Only what pyproject.toml cannot say: build the C core through cffi's setuptools hook."""

from setuptools import setup

setup(cffi_modules=["native/build_native.py:ffibuilder"])
