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


# A ring of 5 GPUs with two links of 0.001 GB/s. With its roots sharing the loop equally (SLOW_ALIGN:
# the counts asked for are multiples of 20, so k is 1, 2 or 4) collc's allreduce file wins at no size
# (exit 1 without --force); with the default power-of-two loop shared 12 or 13 per root it wins from
# 32 MiB up.
SLOW_ALIGN = ["--align", "20"]
SLOW_RING = (
    "nodes: [{name: g, kind: gpu, count: 5}]\n"
    "links:\n"
    "  - {src: g0, dst: g1, bandwidth: 0.001}\n"
    "  - {src: g1, dst: g2, bandwidth: 1000000}\n"
    "  - {src: g2, dst: g3, bandwidth: 7/3}\n"
    "  - {src: g3, dst: g4, bandwidth: 25}\n"
    "  - {src: g4, dst: g0, bandwidth: 0.001}\n"
)
