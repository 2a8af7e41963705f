"""Which threadblocks hold a file back: the event simulation's finish time of every threadblock in every
simulated iteration of one call, read against the time the busiest arc needs per iteration (``T``).

A program whose busiest arc is busy all the time finishes an iteration every ``T``. Where the call is
slower than its trees' bound, some threadblocks finish their iterations later than the others, and
the arcs they feed idle: this prints the period of the first and last iterations and the threadblocks
furthest behind the median at a quarter, half and the end of the run, with their peers and channel,
which is where a change of lanes, merges or pacing has to act (docs/cost-model.md §4).

Usage: .venv/bin/python scripts/laggards.py TOPO FILE.xml [--set KEY=VALUE ...] [--size 1GiB]
       [--buffsize 256KiB] [--top 8]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np

from collc.errors import CollcError
from collc.msccl.reader import read_xml
from collc.predict.des import ProgramCost
from collc.predict.network import Network
from collc.predict.params import DEFAULT_BUFFER_BYTES, simple
from collc.sizes import parse_size
from collc.topology import load


class Laggard(NamedTuple):
    """One threadblock at one iteration: how far behind the median threadblock it finished (in T)."""

    gpu: int
    tb: int
    send: int | None
    recv: int | None
    chan: int
    behind: float


def laggards(
    cost: ProgramCost, finishes: np.ndarray, iteration: int, top: int, period: float
) -> list[Laggard]:
    """The ``top`` threadblocks that finished ``iteration`` last, latest first."""
    column = finishes[:, iteration]
    median = float(np.median(column))
    rows = []
    for index in np.argsort(-column, kind="stable")[:top]:
        tb = cost.tbs[index]
        peer = tb.send or tb.recv
        rows.append(
            Laggard(
                tb.gpu,
                tb.tb,
                None if tb.send is None else tb.send[1],
                None if tb.recv is None else tb.recv[0],
                -1 if peer is None else peer[2],
                (float(column[index]) - median) / period,
            )
        )
    return rows


def main() -> None:
    try:
        report(_arguments())
    except (CollcError, OSError) as error:  # what is wrong and where, as the CLI says it, exit 2
        print(error, file=sys.stderr)
        raise SystemExit(2) from None


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("topology")
    parser.add_argument("file", type=Path)
    parser.add_argument("--set", action="append", default=[], dest="settings")
    parser.add_argument("--size", default="1GiB")
    parser.add_argument("--buffsize", default=None)
    parser.add_argument("--top", type=int, default=8)
    return parser.parse_args()


def report(args: argparse.Namespace) -> None:
    """Print the periods and the laggards of ``args.file`` on ``args.topology``."""
    topology = load(args.topology, dict(setting.split("=", 1) for setting in args.settings))
    algo = read_xml(args.file.read_text(), str(args.file))
    proto = simple(parse_size(args.buffsize) if args.buffsize else DEFAULT_BUFFER_BYTES)
    nbytes = parse_size(args.size)
    cost = ProgramCost(Network.of(topology), algo)
    iterations, real, call_bytes = cost.iterations(nbytes, proto)
    busiest = cost.busiest_arc
    if busiest is None:
        raise SystemExit(f"{args.file}: nothing is sent")
    period = cost.busiest_arc_us(call_bytes, proto)
    finishes = cost.threadblock_finishes(nbytes, proto)
    done = finishes.max(axis=0)
    print(f"{algo.name}: {iterations} of {real} iterations simulated, {call_bytes:.0f} bytes per chunk each")
    print(
        f"busiest arc {busiest.arc[0]} -> {busiest.arc[1]}: {busiest.chunks:g} chunks per iteration at "
        f"{busiest.bandwidth:g} GB/s, T = {period:.2f} µs"
    )
    periods = np.diff(done, prepend=0.0) / period
    print("iteration periods (T), first:", " ".join(f"{p:.2f}" for p in periods[:12]))
    print("iteration periods (T), last: ", " ".join(f"{p:.2f}" for p in periods[-12:]))
    for iteration in sorted({iterations // 4, iterations // 2, iterations - 1}):
        print(f"iteration {iteration}: furthest behind the median threadblock")
        for row in laggards(cost, finishes, iteration, args.top, period):
            print(
                f"  gpu {row.gpu:>4} tb {row.tb:>3}  send {row.send!s:>4}  recv {row.recv!s:>4}  "
                f"chan {row.chan:>2}  {row.behind:+.2f} T"
            )


if __name__ == "__main__":
    main()
