"""Hypothesis strategies for small random topologies (valid: every GPU reaches every other)."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import strategies as st

from collc.topology.model import Link, Metadata, Node, Topology

NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,5}(\.[a-z][a-z0-9]{0,3})?", fullmatch=True)
BANDWIDTHS = st.fractions(min_value=Fraction(1, 64), max_value=1000, max_denominator=1000)


@st.composite
def topologies(draw: st.DrawFn) -> Topology:
    names = draw(st.lists(NAMES, min_size=2, max_size=7, unique=True))
    gpu_count = draw(st.integers(min_value=1, max_value=len(names)))
    kinds = ["gpu"] * gpu_count + [draw(st.sampled_from(["switch", "nic"])) for _ in names[gpu_count:]]
    order = draw(st.permutations(range(len(names))))
    nodes_drawn = []
    taken = set()  # (box, role) of the GPUs so far: two GPUs of a box may not share a role
    for i in order:
        box = draw(st.none() | st.integers(0, 3))
        role = draw(st.none() | st.sampled_from(["gpu0", "nic1", "sw"]))
        if kinds[i] == "gpu" and box is not None and role is not None:
            role = None if (box, role) in taken else role
            taken.add((box, role))
        nodes_drawn.append(Node(names[i], kinds[i], box, role))  # type: ignore[arg-type]
    nodes = tuple(nodes_drawn)
    # a ring through every node keeps the GPUs connected; extra links are random
    ring = [Link(names[i], names[(i + 1) % len(names)], draw(BANDWIDTHS)) for i in range(len(names))]
    extra = draw(
        st.lists(
            st.builds(
                Link,
                st.sampled_from(names),
                st.sampled_from(names),
                BANDWIDTHS,
                st.none() | st.fractions(min_value=0, max_value=10, max_denominator=8),
                st.booleans(),
                st.none() | st.sampled_from(["nvlink", "ib", "pcie"]),
            ).filter(lambda link: link.src != link.dst),
            max_size=6,
        )
    )
    gpus = [node.name for node in nodes if node.kind == "gpu"]
    ranks = tuple(draw(st.permutations(gpus)))
    metadata = Metadata(
        gpu_model=draw(st.none() | st.sampled_from(["A100", "MI300X"])),
        sms_per_gpu=draw(st.none() | st.integers(1, 400)),
        runtime=draw(st.none() | st.sampled_from(["rccl", "msccl-executor"])),
        default_latency_us=draw(st.dictionaries(st.sampled_from(["nvlink", "ib"]), BANDWIDTHS, max_size=2)),
    )
    description = draw(st.sampled_from(["", "a: b, c", "plain text", "yes", "#hash"]))
    return Topology(draw(NAMES), nodes, tuple(ring + extra), ranks, description, metadata)
