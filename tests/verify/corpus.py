"""Programs with the structure of third-party MSCCL files, generated here rather than copied.

RCCL ships 8-GPU algorithm files in ``tools/msccl-algorithms/`` and unit-test files in
``tools/msccl-unit-test-algorithms/`` (ROCm/rccl, commit 0cbce2a, October 2024), originally written
with msccl-tools. They are large (up to 1.4 MB), so the tests build programs of the same shape:

* ``allpairs_allreduce``: the ``allreduce-allpairs-8n-*`` files. Every rank has, per channel, one
  threadblock without peers and one per peer. A peer threadblock first sends the peer's block (``cnt``
  chunks) and then receives its copy of its own block into scratch; the block's chunks are reduced by
  one threadblock each (a fused chain of ``re``, after nops that wait for every receive), and then
  every peer threadblock sends the reduced block and receives the peer's. The Simple files use 8
  ranks, 8 channels, 8-chunk blocks (``nchunksperloop=512``) and ``maxBytes`` up to 16 MiB; the LL
  files 4 or 8 channels and at most 512 KiB.
* ``alltoall``: the ``alltoall-8n-*`` files: a copy of the own block and, per peer, one sending and
  one receiving threadblock on each channel.
* the unit-test ``all-reduce-ring-*`` files are ring allreduces built from ``rrs``/``rrcs``/``rcs``
  like fixture_source.ring_allreduce (16 ranks, 24 channels there; smaller here).

msccl-tools (microsoft/msccl-tools, commit 030a750, April 2023) generates files from Python examples
(``examples/mscclang/``); ``recursive_doubling_allgather`` has the structure of
``allgather_recursive_doubling.py 8 1``. That version writes only ``inplace`` on ``<algo>``: the
current runtimes require ``outofplace``, ``minBytes`` and ``maxBytes`` too, the legacy loader does not.
"""

from __future__ import annotations

from collc.msccl.program import Algorithm, GpuProgram, Step, Threadblock


def _renumber(tb: Threadblock) -> Threadblock:
    for index, step in enumerate(tb.steps):
        step.s = index
    return tb


def allpairs_allreduce(
    ngpus: int = 8,
    channels: int = 8,
    proto: str = "Simple",
    *,
    min_bytes: int = 524288,
    max_bytes: int = 11534336,
) -> Algorithm:
    """All-pairs allreduce (reduce-scatter then allgather in one step each, see the module docstring).

    Chunk ``(c, q, j)`` (channel c, rank q's block, its j-th chunk) is at ``(c·G + q)·G + j``; block
    size = G, so a peer exchange is ``cnt = G``. Peer k of rank r (peer index k, threadblock
    ``C·(1+k) + c``) receives into scratch ``(c·(G-1) + k)·G``; reducer j of channel c is threadblock
    c for j = 0 and the peer threadblock of peer index j-1 otherwise. In place, like the files whose
    FIFO behaviour the tests pin (the out-of-place ``-op`` files exchange the same messages)."""
    g, block = ngpus, ngpus
    nchunks = channels * g * block

    def chunk(c: int, q: int, j: int = 0) -> int:
        return (c * g + q) * block + j

    def scratch(c: int, k: int, j: int = 0) -> int:
        return (c * (g - 1) + k) * block + j

    gpus = []
    for rank in range(g):
        peers = [q for q in range(g) if q != rank]
        tbs = {c: Threadblock(c, -1, -1, c) for c in range(channels)}
        for k, peer in enumerate(peers):
            for c in range(channels):
                tbs[channels * (1 + k) + c] = Threadblock(channels * (1 + k) + c, peer, peer, c)
        for c in range(channels):
            reducer_tbs = [c] + [channels * (1 + k) + c for k in range(g - 1)]
            peer_tbs = reducer_tbs[1:]
            # phase 1: exchange blocks (positions 0 and 1; the receive publishes)
            for k, peer in enumerate(peers):
                tbs[peer_tbs[k]].steps += [
                    Step(0, "s", "i", chunk(c, peer), "s", 0, block),
                    Step(0, "r", "i", 0, "s", scratch(c, k), block, hasdep=1),
                ]
            # reduction of chunk j of the own block, after every peer's receive
            for j, tb_id in enumerate(reducer_tbs):
                tb = tbs[tb_id]
                waits = [(other, 1) for other in peer_tbs if other != tb_id]
                *early, last = waits
                tb.steps += [Step(0, "nop", "i", -1, "o", -1, 0, depid=d, deps=p) for d, p in early]
                chain = [
                    Step(0, "re", "s", scratch(c, k, j), "i", chunk(c, rank, j), 1) for k in range(g - 1)
                ]
                chain[0].depid, chain[0].deps = last
                chain[-1].hasdep = 1
                tb.steps += chain
                _renumber(tb)
            # phase 2: send the reduced block after every reducer, receive the peer's
            finished = {tb_id: len(tbs[tb_id].steps) - 1 for tb_id in reducer_tbs}
            for k, peer in enumerate(peers):
                tb = tbs[peer_tbs[k]]
                *early, last = [(other, finished[other]) for other in reducer_tbs if other != tb.id]
                tb.steps += [Step(0, "nop", "i", -1, "o", -1, 0, depid=d, deps=p) for d, p in early]
                tb.steps += [
                    Step(
                        0, "s", "i", chunk(c, rank), "i", chunk(c, rank), block, depid=last[0], deps=last[1]
                    ),
                    Step(0, "r", "i", chunk(c, peer), "i", chunk(c, peer), block),
                ]
                _renumber(tb)
        gpus.append(GpuProgram(rank, nchunks, 0, channels * (g - 1) * block, [tbs[i] for i in sorted(tbs)]))
    return Algorithm(
        "allreduce_pairs", proto, channels, nchunks, g, "allreduce", 1, 0, min_bytes, max_bytes, gpus
    )


def alltoall(ngpus: int = 8, proto: str = "LL", *, min_bytes: int = 0, max_bytes: int = 9216) -> Algorithm:
    """All-to-all, out-of-place, one channel: a copy of the own block, and per peer one threadblock
    that only sends the peer's block and one that only receives the peer's block for this rank."""
    gpus = []
    for rank in range(ngpus):
        peers = [q for q in range(ngpus) if q != rank]
        tbs = [Threadblock(0, -1, -1, 0, [Step(0, "cpy", "i", rank, "o", rank, 1)])]
        tbs += [
            Threadblock(len(tbs) + k, -1, q, 0, [Step(0, "r", "i", 0, "o", q, 1)])
            for k, q in enumerate(peers)
        ]
        tbs += [
            Threadblock(len(tbs) + k, q, -1, 0, [Step(0, "s", "i", q, "o", 0, 1)])
            for k, q in enumerate(peers)
        ]
        gpus.append(GpuProgram(rank, ngpus, ngpus, 0, tbs))
    return Algorithm("alltoall", proto, 1, ngpus, ngpus, "alltoall", 0, 1, min_bytes, max_bytes, gpus)


def recursive_doubling_allgather(ngpus: int = 8, proto: str = "Simple", *, max_bytes: int = 0) -> Algorithm:
    """In-place recursive-doubling allgather: at level k rank r exchanges with r xor 2^k, sending the
    2^k chunks it has gathered (one ``s`` of ``cnt = 2^k`` before the ``r``), after every earlier
    level's receive. One threadblock per level, all on channel 0."""
    levels = ngpus.bit_length() - 1
    gpus = []
    for rank in range(ngpus):
        tbs = []
        for k in range(levels):
            peer, size = rank ^ (1 << k), 1 << k
            waits = [(level, 1) for level in range(k)]
            steps = [Step(0, "nop", "i", -1, "o", -1, 0, depid=d, deps=p) for d, p in waits[:-1]]
            send = Step(0, "s", "o", rank >> k << k, "o", rank >> k << k, size)
            if waits:
                send.depid, send.deps = waits[-1]
            steps += [
                send,
                Step(0, "r", "o", peer >> k << k, "o", peer >> k << k, size, hasdep=int(k < levels - 1)),
            ]
            tbs.append(_renumber(Threadblock(k, peer, peer, 0, steps)))
        gpus.append(GpuProgram(rank, 0, ngpus, 0, tbs))
    return Algorithm(
        "allgather_recursive_doubling", proto, 1, ngpus, ngpus, "allgather", 1, 0, 0, max_bytes, gpus
    )
