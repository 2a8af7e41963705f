"""The runtimes' structural rules (dependencies, channels, threadblocks), checked
directly on a program (not via collc.verify)."""

from __future__ import annotations

from collections import Counter

from collc.lowering.limits import RUNTIME_STEP_TYPES, RuntimeLimits, usage
from collc.msccl.program import RECV_TYPES, SEND_TYPES, Algorithm


def structural_problems(algo: Algorithm, limits: RuntimeLimits) -> list[str]:
    problems = [f"limit: {v}" for v in usage(algo).violations(limits)]
    sends: dict = {}
    recvs: dict = {}
    flagged_needed = set()
    for gpu in algo.gpus:
        if [tb.id for tb in gpu.tbs] != list(range(len(gpu.tbs))):
            problems.append(f"gpu {gpu.id}: tb ids not contiguous")
        seen_send, seen_recv = Counter(), Counter()
        for tb in gpu.tbs:
            if not 0 <= tb.chan < algo.nchannels:
                problems.append(f"gpu {gpu.id} tb {tb.id}: chan {tb.chan} out of range")
            seen_send[(tb.send, tb.chan)] += tb.send >= 0
            seen_recv[(tb.recv, tb.chan)] += tb.recv >= 0
            for pos, step in enumerate(tb.steps):
                if step.s != pos:
                    problems.append(f"gpu {gpu.id} tb {tb.id}: step {pos} numbered {step.s}")
                if step.type not in RUNTIME_STEP_TYPES[limits.runtime]:
                    problems.append(f"step type {step.type} not allowed on {limits.runtime}")
                if step.type != "nop" and not 1 <= step.cnt <= 71:
                    problems.append(f"cnt {step.cnt}")
                if step.type == "nop" and (
                    step.depid < 0 or pos + 1 >= len(tb.steps) or tb.steps[pos + 1].depid < 0
                ):
                    problems.append(f"gpu {gpu.id} tb {tb.id}: bad nop at {pos}")
                if step.depid >= 0:
                    if step.depid == tb.id or step.depid >= len(gpu.tbs):
                        problems.append(f"gpu {gpu.id} tb {tb.id}: bad depid {step.depid}")
                    flagged_needed.add((gpu.id, step.depid, step.deps))
                if step.type in SEND_TYPES:
                    sends.setdefault((gpu.id, tb.send, tb.chan), []).append(step.cnt)
                if step.type in RECV_TYPES:
                    recvs.setdefault((tb.recv, gpu.id, tb.chan), []).append(step.cnt)
        problems += [f"gpu {gpu.id}: two tbs send on {key}" for key, n in seen_send.items() if n > 1]
        problems += [f"gpu {gpu.id}: two tbs receive on {key}" for key, n in seen_recv.items() if n > 1]
    declared_send = {(g.id, tb.send, tb.chan) for g in algo.gpus for tb in g.tbs if tb.send >= 0}
    declared_recv = {(tb.recv, g.id, tb.chan) for g in algo.gpus for tb in g.tbs if tb.recv >= 0}
    if declared_send != declared_recv:
        problems.append(f"unmirrored connections: {sorted(declared_send ^ declared_recv)[:5]}")
    for connection in set(sends) | set(recvs):
        if sends.get(connection) != recvs.get(connection):
            problems.append(
                f"connection {connection}: sends {sends.get(connection)} vs recvs {recvs.get(connection)}"
            )
    for gpu_id, tb_id, pos in flagged_needed:
        steps = algo.gpus[gpu_id].tbs[tb_id].steps
        if pos >= len(steps) or steps[pos].type == "nop" or not steps[pos].hasdep:
            problems.append(f"gpu {gpu_id}: dependency on unflagged step ({tb_id}, {pos})")
    return problems
