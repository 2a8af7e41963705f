"""Write an :class:`~collc.mscclpp.plan.ExecutionPlan` as the JSON that MSCCL++ v0.10.x's executor reads.

The executor looks every field up by name (nlohmann::json), so object keys are written sorted; arrays
keep their order, which carries meaning (threadblock, channel, buffer and op indices). Optional fields
collc does not use are left out, so the executor's defaults apply. Two-space indentation and a
trailing newline: the same plan always gives byte-identical text.
"""

from __future__ import annotations

import json

from collc.mscclpp.plan import Chunk, ExecutionPlan, GpuPlan, Op, Threadblock


def to_json(plan: ExecutionPlan) -> str:
    """The plan's JSON text."""
    return json.dumps(plan_dict(plan), indent=2, sort_keys=True) + "\n"


def plan_dict(plan: ExecutionPlan) -> dict[str, object]:
    return {
        "name": plan.name,
        "collective": plan.collective,
        "protocol": plan.protocol,
        "inplace": plan.inplace,
        "reuse_resources": plan.reuse_resources,
        "use_double_scratch_buffer": plan.use_double_scratch_buffer,
        "buffer_alignment": plan.buffer_alignment,
        "num_threads_per_block": plan.num_threads_per_block,
        "min_message_size": plan.min_message_size,
        "max_message_size": plan.max_message_size,
        "gpus": [_gpu(gpu) for gpu in plan.gpus],
    }


def _gpu(gpu: GpuPlan) -> dict[str, object]:
    return {
        "id": gpu.id,
        "input_chunks": gpu.input_chunks,
        "output_chunks": gpu.output_chunks,
        "scratch_chunks": gpu.scratch_chunks,
        "channels": [{"channel_type": kind, "connected_to": list(peers)} for kind, peers in gpu.channels],
        "remote_buffers": [
            {"rank": buffer.rank, "type": buffer.type, "access_channel_types": [buffer.access]}
            for buffer in gpu.remote_buffers
        ],
        "semaphores": [{"init_value": value} for value in gpu.semaphores],
        "threadblocks": [_threadblock(tb) for tb in gpu.threadblocks],
    }


def _threadblock(tb: Threadblock) -> dict[str, object]:
    return {
        "id": tb.id,
        "ops": [_op(op) for op in tb.ops],
        "channels": [{"channel_type": kind, "channel_ids": list(ids)} for kind, ids in tb.channels],
        "remote_buffer_refs": [
            {"access_channel_type": kind, "remote_buffer_ids": list(ids)}
            for kind, ids in tb.remote_buffer_refs
        ],
    }


def _op(op: Op) -> dict[str, object]:
    out: dict[str, object] = {"name": op.name}
    if op.src_buff:
        out["src_buff"] = [_chunk(chunk) for chunk in op.src_buff]
    if op.dst_buff:
        out["dst_buff"] = [_chunk(chunk) for chunk in op.dst_buff]
    if op.channel_type is not None:
        out["channel_type"] = op.channel_type
    if op.channel_ids:
        out["channel_ids"] = list(op.channel_ids)
    if op.semaphore_ids:
        out["semaphore_ids"] = list(op.semaphore_ids)
    if op.reduce_op is not None:
        out["reduce_op"] = op.reduce_op
    if op.name == "pipeline":
        out["iter_context"] = {"unit_size": op.unit_size, "num_chunks": op.num_chunks}
        out["ops"] = [_op(inner) for inner in op.ops]
    return out


def _chunk(chunk: Chunk) -> dict[str, object]:
    out: dict[str, object] = {"index": chunk.index, "size": chunk.size}
    if chunk.type is not None:
        out["type"] = chunk.type
    if chunk.buffer_id is not None:
        out["buffer_id"] = chunk.buffer_id
    return out
