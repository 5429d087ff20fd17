"""The AIO segment writer on a real disk path and on /dev/shm, on both loops."""

import asyncio
import errno
import os
import pathlib
import tempfile

import pytest

from raftpy import _bindings
from raftpy.errors import InvalidError, IOError_, NotFoundError, RaftError
from raftpy.io import aio

BLOCK = 4096


def disk_dir():
    """A directory on the real disk (not tmpfs): under the repository's tests/."""
    base = pathlib.Path(__file__).resolve().parent / ".aio-scratch"
    base.mkdir(exist_ok=True)
    return tempfile.mkdtemp(dir=base)


@pytest.fixture(params=["disk", "shm"])
def data_dir(request):
    if request.param == "shm":
        if not os.path.isdir("/dev/shm"):
            pytest.skip("/dev/shm does not exist on this machine")
        path = tempfile.mkdtemp(dir="/dev/shm")
    else:
        path = disk_dir()
    yield path
    for name in os.listdir(path):
        os.unlink(os.path.join(path, name))
    os.rmdir(path)


def test_probe_on_real_disk():
    path = disk_dir()
    try:
        fd = os.open(path, os.O_RDONLY)
        fs = _bindings.fs_type(fd)
        os.close(fd)
        caps = aio.probe(path)
        print(f"\nfilesystem 0x{fs:x}: {caps}")
        if fs == 0xEF53:      # ext4, where CI runs: O_DIRECT and AIO must be found
            assert caps.direct_io and caps.async_io and caps.block_size in (512, 1024, 2048, 4096)
        assert not any(n.startswith(".probe") for n in os.listdir(path))
    finally:
        os.rmdir(path)


def test_probe_rejects_bad_directories(tmp_path):
    with pytest.raises(NotFoundError, match="does not exist"):
        aio.probe(str(tmp_path / "missing"))
    f = tmp_path / "file"
    f.write_bytes(b"x")
    with pytest.raises(InvalidError, match="not a directory"):
        aio.probe(str(f))


def pattern(i, size=BLOCK):
    return (i.to_bytes(8, "little") * (size // 8))


async def write_many(path, caps, use_aio, count, depth):
    seg = os.path.join(path, "open-1")
    aio.prepare_file(seg, count * BLOCK, caps)
    fd = aio.open_for_writing(seg, caps)
    writer = aio.AioWriter(depth=depth, use_aio=use_aio)
    bufs = []
    for i in range(count):
        buf = aio.aligned_buffer(BLOCK)
        buf[:] = pattern(i)
        bufs.append(buf)
    try:
        await asyncio.gather(*(writer.write(fd, bufs[i], i * BLOCK) for i in range(count)))
    finally:
        await writer.close()
        os.close(fd)
    return seg, writer


@pytest.mark.parametrize("use_aio", [True, False], ids=["aio", "threads"])
def test_writes_read_back_intact(data_dir, run_loop, use_aio):
    caps = aio.probe(data_dir)
    use_aio = use_aio and caps.async_io
    seg, writer = run_loop(write_many(data_dir, caps, use_aio, 200, 32))
    data = pathlib.Path(seg).read_bytes()
    assert len(data) == 200 * BLOCK
    for i in range(200):
        assert data[i * BLOCK:(i + 1) * BLOCK] == pattern(i), f"block {i}"
    print(f"\n{data_dir} {run_loop.kind} aio={writer.uses_aio} fallbacks={writer.fallbacks}")
    if not writer.uses_aio:
        assert writer.fallbacks == 200


def test_depth_limits_requests_in_flight(run_loop):
    path = disk_dir()
    caps = aio.probe(path)

    async def go():
        seg = os.path.join(path, "seg")
        aio.prepare_file(seg, 64 * BLOCK, caps)
        fd = aio.open_for_writing(seg, caps)
        writer = aio.AioWriter(depth=2, use_aio=caps.async_io)
        peak = 0
        buf = aio.aligned_buffer(BLOCK)

        async def one(i):
            nonlocal peak
            task = asyncio.ensure_future(writer.write(fd, buf, i * BLOCK))
            await asyncio.sleep(0)
            peak = max(peak, writer._running)
            await task
        await asyncio.gather(*(one(i) for i in range(64)))
        await writer.close()
        os.close(fd)
        os.unlink(seg)
        return peak
    try:
        assert run_loop(go()) == 2
    finally:
        os.rmdir(path)


def test_misaligned_direct_write_is_a_clear_error(run_loop):
    path = disk_dir()
    caps = aio.probe(path)
    if not caps.direct_io:
        os.rmdir(path)
        pytest.skip(f"{path} has no O_DIRECT support, so alignment is not enforced")

    async def go():
        seg = os.path.join(path, "seg")
        aio.prepare_file(seg, 4 * BLOCK, caps)
        fd = aio.open_for_writing(seg, caps)
        writer = aio.AioWriter(use_aio=caps.async_io)
        try:
            with pytest.raises(RaftError, match="Invalid argument"):
                await writer.write(fd, aio.aligned_buffer(BLOCK), 100)   # offset not aligned
            await writer.write(fd, aio.aligned_buffer(BLOCK), BLOCK)     # still usable
        finally:
            await writer.close()
            os.close(fd)
            os.unlink(seg)
    try:
        run_loop(go())
    finally:
        os.rmdir(path)


def test_write_to_bad_fd_raises_io_error(run_loop):
    async def go():
        writer = aio.AioWriter(use_aio=False)
        try:
            with pytest.raises(IOError_, match="write"):
                await writer.write(987654, b"x" * 8, 0)
        finally:
            await writer.close()
    run_loop(go())


def test_prepare_file_variants(tmp_path):
    caps = aio.probe(str(tmp_path))
    for zero_fill, fallocate in ((True, True), (False, True), (False, False)):
        path = tmp_path / f"seg-{zero_fill}-{fallocate}"
        aio.prepare_file(str(path), 3 * BLOCK, aio.FsCaps(fallocate, caps.direct_io,
                                                          caps.async_io, caps.block_size),
                         zero_fill=zero_fill)
        assert path.read_bytes() == bytes(3 * BLOCK)
    with pytest.raises(OSError) as info:
        aio.prepare_file(str(tmp_path / f"seg-{True}-{True}"), BLOCK, caps)
    assert info.value.errno == errno.EEXIST


def test_prepare_file_zeroes_its_start_and_reserves_the_rest():
    """zero_bytes: zeros written at the start, the rest reserved (unwritten), the
    content all zeros either way; by default all of it is written."""
    from extents import unwritten_from  # tests/io is on sys.path
    path = disk_dir()
    try:
        caps = aio.probe(path)
        if not caps.fallocate:
            pytest.skip(f"{path}: no fallocate here, so nothing is left unwritten")
        mib = 1 << 20
        whole, part = os.path.join(path, "whole"), os.path.join(path, "part")
        aio.prepare_file(whole, 4 * mib, caps, zero_fill=True)
        aio.prepare_file(part, 4 * mib, caps, zero_fill=True, zero_bytes=mib)
        for name in (whole, part):
            st = os.stat(name)
            assert st.st_size == 4 * mib and st.st_blocks * 512 >= 4 * mib
            with open(name, "rb") as f:
                assert f.read() == bytes(4 * mib)
        assert unwritten_from(whole) is None
        assert unwritten_from(part) == mib
    finally:
        for name in os.listdir(path):
            os.unlink(os.path.join(path, name))
        os.rmdir(path)


@pytest.mark.parametrize("use_aio", [False, True], ids=["sync", "aio"])
def test_the_benchmarks_c_write_loop_writes_every_block_durably(use_aio):
    """_bindings.durable_write_loop (benchmarks/disk.py's floor): n blocks land at
    0, len, 2 len ...; a bad descriptor is an error, not a silent zero latency."""
    path = disk_dir()
    caps = aio.probe(path)
    if not caps.direct_io or (use_aio and not caps.async_io):
        os.rmdir(path)
        pytest.skip(f"{path}: {caps} lacks what this loop needs")
    seg = os.path.join(path, "seg")
    try:
        aio.prepare_file(seg, 8 * BLOCK, caps, zero_fill=True)
        fd = os.open(seg, os.O_WRONLY | os.O_DIRECT)
        buf = aio.aligned_buffer(BLOCK)
        buf[:] = b"q" * BLOCK
        try:
            lat = _bindings.durable_write_loop(fd, memoryview(buf), 6, use_aio)
        finally:
            os.close(fd)
        assert len(lat) == 6 and all(t > 0 for t in lat)
        with open(seg, "rb") as f:
            data = f.read()
        assert data == b"q" * (6 * BLOCK) + bytes(2 * BLOCK)
        with pytest.raises(RaftError, match="durable write loop"):
            _bindings.durable_write_loop(987654, memoryview(buf), 1, use_aio)
    finally:
        if os.path.exists(seg):
            os.unlink(seg)
        os.rmdir(path)
