"""Tiny programs whose simulated time is computed by hand: each fails if one parameter of the event
simulation is dropped (path latency, step overhead, FIFO depth, a threadblock's copy rate)."""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import pytest

from collc.msccl.program import Algorithm, GpuProgram, Step, Threadblock
from collc.predict.des import ProgramCost
from collc.predict.network import Network
from collc.predict.params import LAUNCH_US, PROTOCOLS, simple
from collc.topology.model import Link, Node, Topology

SIMPLE = PROTOCOLS["Simple"]
MiB = 2**20
ARC_LATENCY_US = 0.3  # distinct from the step overhead (1.0 on Simple), so that either one is visible


def _switch(num_gpus: int, bandwidth: int) -> Network:
    """GPUs g0.. on one switch; every GPU-switch arc has ``bandwidth`` GB/s and 0.3 µs."""
    gpus = [f"g{i}" for i in range(num_gpus)]
    nodes = (*(Node(name, "gpu", 0, name) for name in gpus), Node("sw", "switch", 0, "sw"))
    latency = Fraction(ARC_LATENCY_US).limit_denominator()
    links = tuple(Link(name, "sw", Fraction(bandwidth), latency_us=latency) for name in gpus)
    return Network.of(Topology("switch", nodes, links, tuple(gpus)))


def _mesh(num_gpus: int, bandwidth: int) -> Network:
    """GPUs g0.. wired directly to each other: every arc has ``bandwidth`` GB/s and 0.3 µs."""
    gpus = [f"g{i}" for i in range(num_gpus)]
    nodes = tuple(Node(name, "gpu", 0, name) for name in gpus)
    latency = Fraction(ARC_LATENCY_US).limit_denominator()
    links = tuple(
        Link(a, b, Fraction(bandwidth), latency_us=latency) for i, a in enumerate(gpus) for b in gpus[i + 1 :]
    )
    return Network.of(Topology("mesh", nodes, links, tuple(gpus)))


def _step(index: int, kind: str, cnt: int = 1, depid: int = -1, deps: int = -1) -> Step:
    return Step(index, kind, "o", 0, "o", 0, cnt, depid, deps, 1 if depid >= 0 else 0)


def _program(num_gpus: int, nchunks: int, tbs: dict[int, list[Threadblock]]) -> Algorithm:
    gpus = [GpuProgram(g, 1, nchunks, 0, tbs.get(g, [])) for g in range(num_gpus)]
    return Algorithm("oracle", "Simple", 1, nchunks, num_gpus, "allgather", 0, 1, 0, 0, gpus)


def _sends(src: int, dst: int, counts: list[int], tb: int = 0, chan: int = 0) -> Threadblock:
    return Threadblock(tb, dst, -1, chan, [_step(i, "s", cnt) for i, cnt in enumerate(counts)])


def _receives(src: int, dst: int, counts: list[int], tb: int = 0, chan: int = 0) -> Threadblock:
    return Threadblock(tb, -1, src, chan, [_step(i, "r", cnt) for i, cnt in enumerate(counts)])


def _one_message(bandwidth: int) -> tuple[ProgramCost, int]:
    """GPU 0 sends one 1 MiB message to GPU 1 through the switch (one call: one iteration)."""
    program = _program(2, 1, {0: [_sends(0, 1, [1])], 1: [_receives(0, 1, [1])]})
    return ProgramCost(_switch(2, bandwidth), program), MiB


def test_one_message_pays_launch_bytes_path_latency_and_step_overhead() -> None:
    """20 GB/s links (below a threadblock's rate): launch + 1 MiB / 20 GB/s + two arcs of 0.3 µs + the
    step overhead. Without the path latency it is 0.6 µs short, without the overhead 1.0 µs."""
    cost, size = _one_message(20)
    expected = LAUNCH_US + size / 20 / 1000 + 2 * ARC_LATENCY_US + SIMPLE.step_overhead_us
    assert cost.time_us("allgather", size, SIMPLE) == pytest.approx(expected, rel=1e-12)


def test_the_step_overhead_is_the_protocols() -> None:
    """The same message under a protocol with another overhead moves by exactly the difference."""
    cost, size = _one_message(20)
    slower = dataclasses.replace(SIMPLE, step_overhead_us=SIMPLE.step_overhead_us + 2.5)
    difference = cost.time_us("allgather", size, slower) - cost.time_us("allgather", size, SIMPLE)
    assert difference == pytest.approx(2.5, rel=1e-9)


def test_one_threadblock_is_capped_at_its_copy_rate_on_a_fast_link() -> None:
    """400 GB/s links: the message moves at one threadblock's copy rate, not at the link's."""
    cost, size = _one_message(400)
    assert SIMPLE.tb_rate_gbps < 400
    expected = LAUNCH_US + size / SIMPLE.tb_rate_gbps / 1000 + 2 * ARC_LATENCY_US + SIMPLE.step_overhead_us
    assert cost.time_us("allgather", size, SIMPLE) == pytest.approx(expected, rel=1e-12)


def test_each_slice_handshake_slows_a_threadblock_on_a_small_buffer() -> None:
    """docs/cost-model.md §1 (slice handshake, measured on an H200): a Simple call is 2 slices and
    each costs its threadblock 1.23 µs besides its bytes. With a 256 KiB buffer a call moves 128 KiB:
    131072 B / (131072 B / 48.5 GB/s + 2.46 µs) = 25.39 GB/s, so the 1 MiB message (8 calls) on a
    400 GB/s link takes 41.3 µs of sending, not the 21.6 of the copy rate alone. LL and LL128 carry
    their flags in the data: no handshake."""
    cost, size = _one_message(400)
    buffered = simple(256 << 10)
    assert buffered.tb_rate_gbps == pytest.approx(25.389, rel=1e-4)
    assert simple().tb_rate_gbps == pytest.approx(45.889, rel=1e-4)  # 1 MiB slices at the default
    assert PROTOCOLS["LL"].tb_rate_gbps == PROTOCOLS["LL"].tb_copy_gbps
    tail = 2 * ARC_LATENCY_US + buffered.step_overhead_us
    expected = LAUNCH_US + size / 25.389 / 1000 + tail
    assert cost.time_us("allgather", size, buffered) == pytest.approx(expected, rel=1e-3)


def test_the_cap_is_per_threadblock_and_the_link_still_shares() -> None:
    """Two threadblocks to the same peer each get the copy rate (400 GB/s links); eight share a
    200 GB/s link at 25 GB/s each, below the cap: the link decides, not the cap."""

    def pair(lanes: int, bandwidth: int) -> float:
        sends = [_sends(0, 1, [1], tb=lane, chan=lane) for lane in range(lanes)]
        receives = [_receives(0, 1, [1], tb=lane, chan=lane) for lane in range(lanes)]
        cost = ProgramCost(_switch(2, bandwidth), _program(2, lanes, {0: sends, 1: receives}))
        return cost.time_us("allgather", lanes * MiB, SIMPLE)  # 1 MiB per lane

    tail = 2 * ARC_LATENCY_US + SIMPLE.step_overhead_us
    assert pair(2, 400) == pytest.approx(LAUNCH_US + MiB / SIMPLE.tb_rate_gbps / 1000 + tail, rel=1e-12)
    assert pair(8, 200) == pytest.approx(LAUNCH_US + MiB / 25 / 1000 + tail, rel=1e-12)


def test_the_fifo_holds_the_sender_until_the_receiver_takes_its_messages() -> None:
    """GPU 0 sends 4 one-chunk messages to GPU 1, whose receiving threadblock first waits for a 6-chunk
    message from GPU 2 (direct 20 GB/s links, so nothing shares an arc). m = one chunk's time, h = 0.3
    µs of link + 1.0 µs of step overhead.

    With a FIFO of 2 calls (Simple), GPU 0 sends 2 messages by 2m and stops; GPU 1 takes both at
    6m + h, when the gate message has arrived; messages 3 and 4 then take 2m more and the last lands h
    later: 6m + 2m + 2h. With an unlimited FIFO all four are there by 4m + h and the call ends with the
    gate at 6m + h.
    """
    gate = Threadblock(1, -1, 2, 0, [_step(0, "r", 6)])
    held = Threadblock(0, -1, 0, 0, [_step(0, "r", depid=1, deps=0), *(_step(i, "r") for i in range(1, 4))])
    program = _program(3, 8, {0: [_sends(0, 1, [1, 1, 1, 1])], 1: [held, gate], 2: [_sends(2, 1, [6])]})
    cost = ProgramCost(_mesh(3, 20), program)
    size = 8 * MiB  # 8 chunks of 1 MiB: one call
    m, h = MiB / 20 / 1000, ARC_LATENCY_US + SIMPLE.step_overhead_us
    assert SIMPLE.fifo_calls == 2
    assert cost.time_us("allgather", size, SIMPLE) == pytest.approx(LAUNCH_US + 8 * m + 2 * h, rel=1e-12)
    deep = dataclasses.replace(SIMPLE, fifo_calls=8)
    assert cost.time_us("allgather", size, deep) == pytest.approx(LAUNCH_US + 6 * m + h, rel=1e-12)
