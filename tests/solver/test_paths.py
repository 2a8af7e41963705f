"""Physical paths of the forest: no path visits a node twice (switch removal cuts loops out of routes)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collc.solver import solve
from collc.solver.splitting import join_paths
from collc.topology import load
from collc.topology.model import Topology
from collc.topology.presets import declared_parameters, preset_names

PCIE_2BOX = Path(__file__).parent / "fixtures" / "pcie-2box.yaml"
SIZE_PARAMETERS = ("boxes", "racks")


def looping_paths(topology: Topology) -> list[tuple[str, ...]]:
    """Every path of the allgather and reduce-scatter forests that visits some node twice."""
    found = []
    for reverse in (False, True):
        for tree in solve(topology, reverse=reverse).forest.trees:
            found += [edge.path for edge in tree.edges if len(set(edge.path)) != len(edge.path)]
    return found


def preset_cases() -> list[tuple[str, dict[str, str]]]:
    """Every shipped preset with one and with two boxes (racks), up to 72 GPUs (two GB200 racks, 144
    GPUs, take minutes)."""
    cases = []
    for name in preset_names():
        size = next((p for p in SIZE_PARAMETERS if p in declared_parameters(name)), None)
        for params in [{size: count} for count in ("1", "2")] if size else [{}]:
            if load(name, params).num_gpus <= 72:
                cases.append((name, params))
    return cases


@pytest.mark.parametrize(("preset", "params"), preset_cases(), ids=str)
def test_no_preset_path_repeats_a_node(preset: str, params: dict[str, str]) -> None:
    assert looping_paths(load(preset, params)) == []


def test_no_path_loops_through_the_nic_of_a_pcie_box() -> None:
    """GPUs and a NIC on one PCIe switch: the NIC's split used to join ``gpu0 → pcie → nic`` with
    ``nic → pcie → gpu1`` (12 of 105 paths looped)."""
    topology = load(PCIE_2BOX)
    assert looping_paths(topology) == []
    paths = {edge.path for tree in solve(topology).forest.trees for edge in tree.edges}
    assert ("b0.gpu0", "b0.pcie", "b0.gpu1") in paths  # the shortcut of the former loop


vertices = st.integers(2, 9)  # inner vertices of a route are switches; the ends 0 and 1 are GPUs


@given(
    head=st.lists(vertices, max_size=6).map(lambda inner: (0, *inner)),
    middle=vertices,
    tail=st.lists(vertices, max_size=6).map(lambda inner: (*inner, 1)),
)
def test_join_paths_cuts_every_loop_and_only_loops(
    head: tuple[int, ...], middle: int, tail: tuple[int, ...]
) -> None:
    first, second = (*head, middle), (middle, *tail)
    joined = join_paths(first, second)
    concatenated = first + second[1:]
    assert len(set(joined)) == len(joined)
    assert (joined[0], joined[-1]) == (0, 1)
    arcs = set(itertools.pairwise(concatenated))
    assert set(itertools.pairwise(joined)) <= arcs  # a subset of the arcs: no new load
    if len(set(concatenated)) == len(concatenated):
        assert joined == concatenated
