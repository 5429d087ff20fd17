"""Codec benchmark: libraft CRC-32 throughput, batch and wire encode/decode rates.

    python benchmarks/codec.py [--json] [--quick]

The checksum is compared with zlib.crc32 (a different CRC, but the speed a
user expects of a checksum) and with the pure-Python reference, in the same
run; the ratio column is C / zlib.  The wire rows time one AppendEntries
encode (raftpy.io.wire.encode: buffers for writelines) plus one decode
(Reader.feed of the whole frame), in microseconds per message and
nanoseconds per entry, for the C-backed codec and for the pure-Python
reference (raftpy._reference_wire) in the same run; vs_ref is reference
time / C time.
"""

from __future__ import annotations

import zlib

from _common import Report, best_rate, parser

from raftpy import _bindings, _reference, _reference_wire
from raftpy.core.messages import AppendEntries
from raftpy.core.types import Entry
from raftpy.io import wire


def bench_crc(report: Report, quick: bool) -> None:
    data = bytes(range(256)) * 4096          # 1 MiB
    t = 0.02 if quick else 0.3
    c = best_rate(lambda: (_bindings.crc32(data), len(data))[1], t) / 1e6
    z = best_rate(lambda: (zlib.crc32(data), len(data))[1], t) / 1e6
    small = data[:16384]
    py = best_rate(lambda: (_reference.crc32(small), len(small))[1], t) / 1e6
    report.add("crc32 C (1 MiB)", c, "MB/s", vs_zlib=c / z)
    report.add("zlib.crc32 (1 MiB)", z, "MB/s", vs_zlib=1.0)
    report.add("crc32 pure Python", py, "MB/s", vs_zlib=py / z)


def bench_batches(report: Report, quick: bool) -> None:
    t = 0.02 if quick else 0.3
    for size in (8, 1024):
        for n in (1, 64, 1024):
            payload = b"p" * size
            entries = [Entry(7, 1, payload) for _ in range(n)]
            payloads = [payload] * n
            enc = best_rate(lambda e=entries, k=n: (_bindings.encode_batch(e), k)[1], t)
            uni = best_rate(lambda p=payloads, k=n: (_bindings.encode_batch_uniform(7, 1, p), k)[1],
                            t)
            blob = bytes(_bindings.encode_batch(entries))
            dec = best_rate(lambda b=blob, k=n: (_bindings.decode_batches(b), k)[1], t)
            tag = f"{size}B x {n}"
            report.add(f"encode {tag}", enc, "entries/s", MB_s=enc * size / 1e6)
            report.add(f"encode uniform {tag}", uni, "entries/s", MB_s=uni * size / 1e6)
            report.add(f"decode {tag}", dec, "entries/s", MB_s=dec * size / 1e6)


def _us_per_message(fn, t: float) -> float:
    return 1e6 / best_rate(lambda: (fn(), 1)[1], t)


def bench_wire(report: Report, quick: bool) -> None:
    t = 0.01 if quick else 0.3
    limit = 1 << 30
    for size in (8, 1024):
        for n in (1, 64, 1024):
            msg = AppendEntries(7, 100, 7, 99, [Entry(7, 1, b"p" * size) for _ in range(n)])
            frame = b"".join(wire.encode(msg))
            assert frame == _reference_wire.encode(msg)
            reader = wire.Reader(limit, limit)
            reader.feed(wire.encode_handshake(1, "127.0.0.1:9001"))
            assert len(reader.feed(frame)[0].entries) == n
            enc = _us_per_message(lambda m=msg: wire.encode(m), t)
            dec = _us_per_message(lambda r=reader, f=frame: r.feed(f), t)
            ref_enc = _us_per_message(lambda m=msg: _reference_wire.encode(m), t)
            ref_dec = _us_per_message(
                lambda f=frame: _reference_wire.decode(f, limit, limit, handshake=False), t)
            tag = f"{size}B x {n}"
            c, py = enc + dec, ref_enc + ref_dec
            report.add(f"wire AE enc+dec {tag} C", c, "us/msg", ns_entry=1e3 * c / n,
                       vs_ref=py / c, enc_us=enc, dec_us=dec)
            report.add(f"wire AE enc+dec {tag} ref", py, "us/msg", ns_entry=1e3 * py / n,
                       vs_ref=1.0, enc_us=ref_enc, dec_us=ref_dec)


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    report = Report("raftpy codec benchmark", args.json)
    bench_crc(report, args.quick)
    bench_batches(report, args.quick)
    bench_wire(report, args.quick)
    report.print_table()


if __name__ == "__main__":
    main()
