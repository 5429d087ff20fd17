# setup.py exists only to hand the cffi builder to setuptools; everything else
# lives in pyproject.toml.
from setuptools import setup

setup(cffi_modules=["csrc/ffi_build.py:ffibuilder"])
