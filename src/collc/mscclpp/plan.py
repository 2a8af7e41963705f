"""The MSCCL++ execution plan that collc writes: records for every JSON object of a plan.

Field names are the JSON keys that MSCCL++ v0.10.x's executor reads (docs/mscclpp.md lists them with
their meaning), so :mod:`collc.mscclpp.writer` maps each record to one JSON object. Fields the executor
treats as optional are ``None`` here when collc leaves them out. The executor's fixed-size tables
bound what one plan may use; the limits below are those tables' sizes, checked before a plan is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: the MSCCL++ release whose executor parses the plans collc writes (the JSON has no version field)
MSCCLPP_VERSION = "v0.10.0"
#: operations per threadblock, a pipeline's inner operations included (``MAX_OPERATION``)
MAX_OPERATIONS = 64
#: channels of one type held by one threadblock, and remote buffers of one access type (``MAX_CHANNEL``)
MAX_TB_CHANNELS = 16
#: channels named by one signal, wait or put (``MAX_CHANNEL_PER_OPERATION``)
MAX_OP_CHANNELS = 8
#: semaphores named by one ``sem_acquire``/``sem_release`` (``MAX_DEVICE_SEMAPHORES``)
MAX_OP_SEMAPHORES = 16
#: inner operations of one pipeline (its count is stored in 8 bits)
MAX_PIPELINE_OPS = 255
#: iterations of one pipeline (the kernel counts them in 16 bits)
MAX_PIPELINE_ITERATIONS = 2**16 - 1
#: byte offsets inside a buffer are 32-bit in the executor's operations
MAX_BUFFER_BYTES = 2**32 - 1
#: the executor's default (and collc's) alignment of chunk boundaries, in bytes
BUFFER_ALIGNMENT = 16
#: threads per threadblock (the executor's default and its kernel's launch bound)
THREADS_PER_BLOCK = 1024


@dataclass(frozen=True)
class Chunk:
    """A span of ``size`` chunks from ``index``: of a local buffer (``type`` = ``i``/``o``/``s``) or of
    the remote buffer at position ``buffer_id`` in the threadblock's remote buffers of the op's channel
    type."""

    index: int
    size: int
    type: str | None = None
    buffer_id: int | None = None


@dataclass(frozen=True)
class Op:
    """One operation; ``ops`` and ``unit_size``/``num_chunks`` only for a ``pipeline``."""

    name: str
    src_buff: tuple[Chunk, ...] = ()
    dst_buff: tuple[Chunk, ...] = ()
    channel_type: str | None = None
    channel_ids: tuple[int, ...] = ()  # indices into the threadblock's channels of ``channel_type``
    semaphore_ids: tuple[int, ...] = ()
    reduce_op: str | None = None
    unit_size: int | None = None
    num_chunks: int | None = None
    ops: tuple[Op, ...] = ()

    def count(self) -> int:
        """Entries this op takes in the executor's per-threadblock operation table."""
        return 1 + sum(inner.count() for inner in self.ops)


@dataclass(frozen=True)
class Threadblock:
    """One threadblock: its ops, and the GPU-level channel and remote-buffer indices it holds, per
    type, in the order its ops index them."""

    id: int
    ops: tuple[Op, ...]
    channels: tuple[tuple[str, tuple[int, ...]], ...]
    remote_buffer_refs: tuple[tuple[str, tuple[int, ...]], ...]

    def op_count(self) -> int:
        return sum(op.count() for op in self.ops)


@dataclass(frozen=True)
class RemoteBuffer:
    """Buffer ``type`` of rank ``rank``, which this GPU writes through channels of ``access``."""

    rank: int
    type: str
    access: str


@dataclass(frozen=True)
class GpuPlan:
    """One rank: buffer sizes in chunks, its channels per type (one per entry of ``connected_to``),
    the peers' buffers it writes, its local semaphores (initial values) and threadblocks."""

    id: int
    input_chunks: int
    output_chunks: int
    scratch_chunks: int
    channels: tuple[tuple[str, tuple[int, ...]], ...]
    remote_buffers: tuple[RemoteBuffer, ...]
    semaphores: tuple[int, ...]
    threadblocks: tuple[Threadblock, ...]


@dataclass(frozen=True)
class ExecutionPlan:
    """A whole plan: what the executor reads for every rank."""

    name: str
    collective: str
    protocol: str
    inplace: bool
    min_message_size: int
    max_message_size: int
    gpus: tuple[GpuPlan, ...] = field(default_factory=tuple)
    num_threads_per_block: int = THREADS_PER_BLOCK
    buffer_alignment: int = BUFFER_ALIGNMENT
    reuse_resources: bool = False
    use_double_scratch_buffer: bool = False
