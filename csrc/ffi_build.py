"""cffi builder (API mode) for raftpy._native, the C engine in csrc/.

setup.py names `csrc/ffi_build.py:ffibuilder`; `python csrc/ffi_build.py`
builds the module in place for development.  The C surface is native.cdef,
read from the file so that the declarations live in one place.
"""

import pathlib

from cffi import FFI

HERE = pathlib.Path(__file__).resolve().parent
SOURCES = ["crc32.c", "batch.c", "wire.c", "aio.c", "image.c"]

ffibuilder = FFI()
ffibuilder.cdef((HERE / "native.cdef").read_text())
ffibuilder.set_source(
    "raftpy._native",
    '#include "native.h"',
    sources=[str((HERE / s).relative_to(HERE.parent)) for s in SOURCES],
    include_dirs=[str(HERE.relative_to(HERE.parent))],
    extra_compile_args=["-std=gnu11", "-O3", "-Wall", "-Wextra", "-Werror"],
)

if __name__ == "__main__":
    import os

    os.chdir(HERE.parent)
    ffibuilder.compile(verbose=False)
