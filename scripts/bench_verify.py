"""Benchmark `collc verify` on generated multi-channel ring allreduce programs (issue 4, item 6).

Builds a G-GPU ring allreduce IR with C channels (one threadblock per rank and channel, 2G-1 steps
each: s, rrs×(G-2), rrcs, rcs×(G-2), r), writes and re-reads it as XML, and times reading and the full
verification (lint + four simulated cases). Prints one line per size, so the growth with steps is
visible. Usage: .venv/bin/python scripts/bench_verify.py [--gpus 32] [--channels 1 2 4 8]
"""

from __future__ import annotations

import argparse
import time

from collc.msccl.program import Algorithm, GpuProgram, Step, Threadblock
from collc.msccl.reader import read_xml
from collc.msccl.writer import to_xml
from collc.verify import verify


def ring_allreduce(ngpus: int, channels: int, proto: str = "Simple") -> Algorithm:
    """Reduce-scatter then allgather around the ring r -> r+1, one ring per channel; channel c owns
    chunks c*G … c*G+G-1, and rank r finishes block r of every channel."""
    gpus = []
    for rank in range(ngpus):
        tbs = []
        for chan in range(channels):

            def chunk(block: int, chan: int = chan) -> int:
                return chan * ngpus + block % ngpus

            kinds = ["s"] + ["rrs"] * (ngpus - 2) + ["rrcs"] + ["rcs"] * (ngpus - 2) + ["r"]
            steps = []
            for index, kind in enumerate(kinds):
                if index < ngpus:  # reduce-scatter: block r-1-index, ending with block r
                    block = chunk(rank - 1 - index)
                    src, dst = ("i", "o")
                else:  # allgather: forward the finished block r-1-(index-G)
                    block = chunk(rank - 1 - (index - ngpus))
                    src, dst = ("o", "o")
                steps.append(Step(index, kind, src, block, dst, block, 1))
            tbs.append(Threadblock(chan, (rank + 1) % ngpus, (rank - 1) % ngpus, chan, steps))
        gpus.append(GpuProgram(rank, ngpus * channels, ngpus * channels, 0, tbs))
    return Algorithm(
        f"ring_allreduce_{ngpus}x{channels}",
        proto,
        channels,
        ngpus * channels,
        ngpus,
        "allreduce",
        0,
        1,
        0,
        0,
        gpus,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpus", type=int, default=32)
    parser.add_argument("--channels", type=int, nargs="+", default=[1, 2, 4, 8])
    args = parser.parse_args()
    print(f"{'gpus':>5} {'chan':>5} {'steps':>7} {'read s':>8} {'verify s':>9} {'us/step':>8}  result")
    for channels in args.channels:
        text = to_xml(ring_allreduce(args.gpus, channels))
        start = time.perf_counter()
        algo = read_xml(text, "bench.xml")
        read_seconds = time.perf_counter() - start
        start = time.perf_counter()
        report = verify(algo, filename="bench.xml")
        verify_seconds = time.perf_counter() - start
        steps = sum(len(tb.steps) for gpu in algo.gpus for tb in gpu.tbs)
        result = "ok" if report.ok else f"INVALID {sorted(report.rules())}"
        print(
            f"{args.gpus:>5} {channels:>5} {steps:>7} {read_seconds:>8.3f} {verify_seconds:>9.3f} "
            f"{1e6 * verify_seconds / steps:>8.1f}  {result}"
        )


if __name__ == "__main__":
    main()
