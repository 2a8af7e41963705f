"""A small, valid MSCCL XML schedule written for the tests: the ring allgather on N GPUs.

Rank r owns output block r. It copies its input into place, sends it to rank r+1, then N-1 times
receives the next block from rank r-1 and (except the last) forwards it: one threadblock, one channel,
``nchunksperloop = N``, out-of-place, Simple.
"""

from __future__ import annotations


def _step(s: int, kind: str, src: str, src_off: int, dst_off: int) -> str:
    return (
        f'      <step s="{s}" type="{kind}" srcbuf="{src}" srcoff="{src_off}" dstbuf="o" dstoff="{dst_off}" '
        'cnt="1" depid="-1" deps="-1" hasdep="0"/>'
    )


def ring_allgather_xml(ngpus: int = 4) -> str:
    """The ring allgather of the module docstring as MSCCL XML text (the runtimes' lexical rules)."""
    lines = [
        f'<algo name="ring_allgather_{ngpus}" proto="Simple" nchannels="1" nchunksperloop="{ngpus}" '
        f'ngpus="{ngpus}" coll="allgather" inplace="0" outofplace="1" minBytes="0" maxBytes="0">'
    ]
    for rank in range(ngpus):
        lines.append(f'  <gpu id="{rank}" i_chunks="1" o_chunks="{ngpus}" s_chunks="0">')
        lines.append(f'    <tb id="0" send="{(rank + 1) % ngpus}" recv="{(rank - 1) % ngpus}" chan="0">')
        steps = [("cpy", "i", 0, rank), ("s", "i", 0, rank)]
        for hop in range(1, ngpus):
            block = (rank - hop) % ngpus
            steps.append(("r", "o", block, block))
            if hop < ngpus - 1:
                steps.append(("s", "o", block, block))
        lines += [_step(s, *step) for s, step in enumerate(steps)]
        lines += ["    </tb>", "  </gpu>"]
    lines.append("</algo>")
    return "\n".join(lines) + "\n"
