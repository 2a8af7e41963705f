"""Benchmark `collc verify` on generated multi-channel ring allreduce programs.

Builds a G-GPU ring allreduce IR with C channels (one threadblock per rank and channel, 2G-1 steps
each: s, rrs×(G-2), rrcs, rcs×(G-2), r) whose steps move blocks of B chunks, writes it as XML, reads
it back, and times reading and the full verification (lint + the simulated cases). One line per
configuration shows how the cost grows with steps (C) and chunks (B).
With --file, times the given XML files instead (e.g. ones written by `collc compile`), with the peak
memory so far (run one file per process to read each file's own peak).
With --large G, times one all-pairs allreduce on G GPUs (a threadblock per peer: G·(G-1) in all, as
many per rank as collc's large forests) and reports the process's peak memory.
Usage: .venv/bin/python scripts/bench_verify.py [--gpus 32] [--channels 1 2 4 8] [--block-chunks 1 4]
       .venv/bin/python scripts/bench_verify.py --file schedule.xml ...
       .venv/bin/python scripts/bench_verify.py --large 128
"""

from __future__ import annotations

import argparse
import resource
import time

from collc.msccl.program import Algorithm, GpuProgram, Step, Threadblock
from collc.msccl.reader import read_xml
from collc.msccl.writer import to_xml
from collc.verify import verify


def ring_allreduce(ngpus: int, channels: int, block: int = 1, proto: str = "LL") -> Algorithm:
    """Reduce-scatter then allgather around the ring r -> r+1, one ring per channel. Channel c owns
    blocks c*G … c*G+G-1 of ``block`` chunks each (every step moves one block: cnt = block); rank r
    finishes block r of every channel."""
    nchunks = ngpus * channels * block
    kinds = ["s"] + ["rrs"] * (ngpus - 2) + ["rrcs"] + ["rcs"] * (ngpus - 2) + ["r"]
    gpus = []
    for rank in range(ngpus):
        tbs = []
        for chan in range(channels):
            steps = []
            for index, kind in enumerate(kinds):
                reduce_scatter = index < ngpus  # blocks r-1, r-2, …, r; then forward r-1, r-2, …
                which = rank - 1 - (index if reduce_scatter else index - ngpus)
                first = (chan * ngpus + which % ngpus) * block
                src = "i" if reduce_scatter else "o"
                steps.append(Step(index, kind, src, first, "o", first, block))
            tbs.append(Threadblock(chan, (rank + 1) % ngpus, (rank - 1) % ngpus, chan, steps))
        gpus.append(GpuProgram(rank, nchunks, nchunks, 0, tbs))
    name = f"ring_allreduce_{ngpus}x{channels}x{block}"
    return Algorithm(name, proto, channels, nchunks, ngpus, "allreduce", 0, 1, 0, 0, gpus)


def allpairs_allreduce(ngpus: int, channels: int = 8) -> Algorithm:
    """Every rank talks to every other through its own threadblock (G·(G-1) threadblocks in all, the
    per-rank count of collc's large forests): it sends chunk q of its input to q, the threadblocks take
    turns reducing what they receive into o[r] (each waits for the previous one), then each sends o[r]
    to its peer (after the last reduction) and receives o[q]. The final receives carry knowledge of
    every rank's reductions, so happens-before spreads across the whole program."""
    gpus = []
    for rank in range(ngpus):
        peers = [peer for peer in range(ngpus) if peer != rank]
        last = len(peers) - 1
        tbs = []
        for index, peer in enumerate(peers):
            first = index == 0
            steps = [
                Step(0, "s", "i", peer, "o", 0, 1),
                Step(
                    1,
                    "rrc",
                    "i" if first else "o",
                    rank,
                    "o",
                    rank,
                    1,
                    -1 if first else index - 1,
                    -1 if first else 1,
                    1,
                ),
                Step(2, "s", "o", rank, "o", 0, 1, -1 if index == last else last, -1 if index == last else 1),
                Step(3, "r", "o", 0, "o", peer, 1),
            ]
            tbs.append(Threadblock(index, peer, peer, (rank + peer) % channels, steps))
        gpus.append(GpuProgram(rank, ngpus, ngpus, 0, tbs))
    return Algorithm(
        f"allpairs_allreduce_{ngpus}", "Simple", channels, ngpus, ngpus, "allreduce", 0, 1, 0, 0, gpus
    )


def measure(text: str) -> tuple[int, int, float, float, str]:
    """Steps, chunk moves, read and verify seconds (process CPU time: the machine is shared), result."""
    start = time.process_time()
    algo = read_xml(text, "bench.xml")
    read_seconds = time.process_time() - start
    start = time.process_time()
    report = verify(algo, filename="bench.xml")
    verify_seconds = time.process_time() - start
    steps = sum(len(tb.steps) for gpu in algo.gpus for tb in gpu.tbs)
    chunks = sum(step.cnt for gpu in algo.gpus for tb in gpu.tbs for step in tb.steps)
    result = "ok" if report.ok else f"INVALID {sorted(report.rules())}"
    return steps, chunks, round(read_seconds, 3), round(verify_seconds, 3), result


def measured_line(text: str) -> str:
    """Steps, read and verify CPU seconds and the process's peak resident set so far (reading and
    verification dominate it; ru_maxrss is in KiB on Linux), then the result."""
    steps, _, read_seconds, verify_seconds, result = measure(text)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return (
        f"{steps} steps, read {read_seconds:.2f} s, verify {verify_seconds:.2f} s (CPU), "
        f"peak RSS {peak:.0f} MiB  {result}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpus", type=int, default=32)
    parser.add_argument("--channels", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--block-chunks", type=int, nargs="+", default=[1])
    parser.add_argument("--file", nargs="+", default=[], help="time these XML files instead")
    parser.add_argument(
        "--large",
        type=int,
        metavar="G",
        help="time and peak memory of one all-pairs allreduce on G GPUs (G·(G-1) threadblocks) instead",
    )
    args = parser.parse_args()
    if args.large:
        algo = allpairs_allreduce(args.large)
        threadblocks = sum(len(gpu.tbs) for gpu in algo.gpus)
        print(
            f"all-pairs allreduce, {args.large} GPUs: {threadblocks} threadblocks, "
            + measured_line(to_xml(algo))
        )
        return
    if args.file:
        for name in args.file:
            with open(name, encoding="utf-8") as handle:
                print(f"{name}: " + measured_line(handle.read()))
        return
    header = ("gpus", "chan", "block", "steps", "chunks", "read s", "verify s")
    print(" ".join(f"{title:>8}" for title in header) + "  result")
    for block in args.block_chunks:
        for channels in args.channels:
            steps, chunks, read_seconds, verify_seconds, result = measure(
                to_xml(ring_allreduce(args.gpus, channels, block))
            )
            print(
                f"{args.gpus:>8} {channels:>8} {block:>8} {steps:>8} {chunks:>8} {read_seconds:>8.3f} "
                f"{verify_seconds:>8.3f}  {result}"
            )


if __name__ == "__main__":
    main()
