"""Codec benchmark: libraft CRC-32 throughput and batch encode/decode rates.

    python benchmarks/codec.py [--json] [--quick]

The checksum is compared with zlib.crc32 (a different CRC, but the speed a
user expects of a checksum) and with the pure-Python reference, in the same
run; the ratio column is C / zlib.
"""

from __future__ import annotations

import zlib

from _common import Report, best_rate, parser

from raftpy import _bindings, _reference
from raftpy.core.types import Entry


def bench_crc(report: Report, quick: bool) -> None:
    data = bytes(range(256)) * 4096          # 1 MiB
    t = 0.1 if quick else 0.3
    c = best_rate(lambda: (_bindings.crc32(data), len(data))[1], t) / 1e6
    z = best_rate(lambda: (zlib.crc32(data), len(data))[1], t) / 1e6
    small = data[:16384]
    py = best_rate(lambda: (_reference.crc32(small), len(small))[1], t) / 1e6
    report.add("crc32 C (1 MiB)", c, "MB/s", vs_zlib=c / z)
    report.add("zlib.crc32 (1 MiB)", z, "MB/s", vs_zlib=1.0)
    report.add("crc32 pure Python", py, "MB/s", vs_zlib=py / z)


def bench_batches(report: Report, quick: bool) -> None:
    t = 0.1 if quick else 0.3
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


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    report = Report("raftpy codec benchmark", args.json)
    bench_crc(report, args.quick)
    bench_batches(report, args.quick)
    report.print_table()


if __name__ == "__main__":
    main()
