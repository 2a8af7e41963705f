"""Small topology files that tests of several areas write out (YAML text), each written here once."""

from __future__ import annotations


def switch_fabric(name: str, bandwidth: str = "100", *, switch: str = "sw", extra: str = "") -> str:
    """Four GPUs on one switch, each port ``bandwidth`` GB/s (an expression of ``i`` allowed), with
    ``extra`` fields on the link (e.g. ``", class: nvlink"``)."""
    return (
        f"name: {name}\n"
        "nodes:\n"
        "  - {name: gpu, kind: gpu, count: 4}\n"
        f"  - {{name: {switch}, kind: switch}}\n"
        "links:\n"
        f'  - {{src: "gpu{{i}}", dst: {switch}, bandwidth: {bandwidth}{extra}}}\n'
    )


# A ring of 5 GPUs with two links of 0.001 GB/s, both at g0. Its allgather with the roots sharing the
# loop equally (SLOW_NO_WIN: the counts asked for are multiples of 20) wins at no size (exit 1
# without --force): NCCL's ring reaches the bound at 1 GiB. Its allreduce wins: trees packed for both
# halves at once keep g0 a leaf and run at the 0.002 GB/s that g0's links allow, 1.6x the ring.
SLOW_NO_WIN = ["--coll", "allgather", "--align", "20"]
SLOW_RING = (
    "nodes: [{name: g, kind: gpu, count: 5}]\n"
    "links:\n"
    "  - {src: g0, dst: g1, bandwidth: 0.001}\n"
    "  - {src: g1, dst: g2, bandwidth: 1000000}\n"
    "  - {src: g2, dst: g3, bandwidth: 7/3}\n"
    "  - {src: g3, dst: g4, bandwidth: 25}\n"
    "  - {src: g4, dst: g0, bandwidth: 0.001}\n"
)
