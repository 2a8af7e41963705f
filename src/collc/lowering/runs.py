"""Stage 1b of the lowering: operations of several trees merged into one step where their chunks
are consecutive (docs/lowering.md §6, the reach).

A plan moves every piece of every tree in operations of its own. Where two operations of the same
kind run between the same GPUs (or on the same GPU), on the same plane, at the same depth and phase,
and read and write consecutive chunks of the same buffers, one step with their summed ``cnt`` does
both: the step waits for every chunk it reads (the emitter's last-writer table) and every later
reader waits for it. Box-block forests (:mod:`collc.solver.blocks`) make whole runs of trees share
such operations; a forest from the solver rarely has any.

Scratch slots are first laid out anew (:func:`_packed_scratch`): the builder hands them out tree by
tree, so the slots one GPU receives from one sender at one depth are far apart; after the layout they
are consecutive in tree order, and the receives into them, the folds out of them and the sends of
their sums can merge like the rest.

A merged operation takes the key of its last member (the largest). Every member of a group shares
the key's phase, depth and role, so an operation that depends on a member across depths still
follows the merged one, and within a depth a tree's folds (roles below 0) still come before the send
of its sum (role 0) once both are merged: the send's last member is at least the folds' last.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import replace
from typing import TypeVar

from collc.lowering.plan import MAX_CNT, LocalOp, Plan, Span, Transfer

Op = TypeVar("Op", Transfer, LocalOp)


def merge_runs(plan: Plan, max_cnt: int = MAX_CNT) -> Plan:
    """``plan`` with every run of mergeable operations (module docstring) moved in one step of at
    most ``max_cnt`` chunks."""
    plan = _packed_scratch(plan)
    transfers, renumbered = _merged(plan.transfers, _transfer_group, max_cnt)
    hosted = [replace(op, host=(renumbered[op.host[0]], op.host[1])) for op in plan.local_ops]
    local_ops, _ = _merged(hosted, _local_group, max_cnt)
    return replace(plan, transfers=tuple(transfers), local_ops=tuple(local_ops))


def _transfer_group(transfer: Transfer) -> Hashable:
    return (
        transfer.src,
        transfer.dst,
        transfer.plane,
        transfer.bandwidth,
        transfer.key[:2],
        transfer.key[5:],
        transfer.source.buf,
        transfer.target.buf,
    )


def _local_group(op: LocalOp) -> Hashable:
    return (op.gpu, op.type, op.host, op.key[:2], op.key[5:], op.source.buf, op.target.buf)


def _merged(
    ops: Sequence[Op], group_of: Callable[[Op], Hashable], max_cnt: int
) -> tuple[list[Op], list[int]]:
    """The operations with every run merged, in the order of each run's first member, and for every
    old operation the index of the one that now carries it."""
    groups: dict[Hashable, list[int]] = {}
    for index, op in enumerate(ops):
        groups.setdefault(group_of(op), []).append(index)
    run_of = [0] * len(ops)
    runs: list[list[int]] = []
    for members in groups.values():
        members.sort(key=lambda index: (ops[index].source.off, ops[index].target.off))
        current: list[int] = []
        chunks = 0  # in the current run
        for index in members:
            if not current or not _continues(ops[current[-1]], ops[index], chunks, max_cnt):
                if current:
                    runs.append(current)
                current, chunks = [], 0
            current.append(index)
            chunks += ops[index].source.cnt
        runs.append(current)
    runs.sort(key=lambda run: min(run))
    merged = []
    for number, run in enumerate(runs):
        for index in run:
            run_of[index] = number
        merged.append(_joined([ops[index] for index in run]))
    return merged, run_of


def _continues(last: Transfer | LocalOp, op: Transfer | LocalOp, cnt: int, max_cnt: int) -> bool:
    """Whether ``op`` reads and writes the chunks right after ``last``'s, within ``max_cnt`` in all."""
    return (
        op.source.off == last.source.off + last.source.cnt
        and op.target.off == last.target.off + last.target.cnt
        and cnt + op.source.cnt <= max_cnt
    )


def _joined(run: list[Op]) -> Op:
    """One operation for a run (consecutive chunks), with its last member's key."""
    first = run[0]
    cnt = sum(op.source.cnt for op in run)
    key = max(op.key for op in run)
    return replace(
        first,
        key=key,
        source=Span(first.source.buf, first.source.off, cnt),
        target=Span(first.target.buf, first.target.off, cnt),
    )


def _packed_scratch(plan: Plan) -> Plan:
    """``plan`` with every GPU's scratch slots laid out by (sender, phase and depth, tree order):
    each slot is the target of one transfer, and every other use of it names the same span."""
    order = sorted(
        (index for index, transfer in enumerate(plan.transfers) if transfer.target.buf == "s"),
        key=lambda index: _slot_order(plan.transfers[index]),
    )
    moved: dict[tuple[int, int], int] = {}
    used = [0] * plan.num_gpus
    for index in order:
        transfer = plan.transfers[index]
        moved[(transfer.dst, transfer.target.off)] = used[transfer.dst]
        used[transfer.dst] += transfer.target.cnt

    def span(gpu: int, where: Span) -> Span:
        return Span("s", moved[(gpu, where.off)], where.cnt) if where.buf == "s" else where

    transfers = tuple(
        replace(t, source=span(t.src, t.source), target=span(t.dst, t.target)) for t in plan.transfers
    )
    local_ops = tuple(
        replace(op, source=span(op.gpu, op.source), target=span(op.gpu, op.target)) for op in plan.local_ops
    )
    return replace(plan, transfers=transfers, local_ops=local_ops)


def _slot_order(transfer: Transfer) -> tuple:
    return (transfer.dst, transfer.src, transfer.key[:2], transfer.key[2:])
