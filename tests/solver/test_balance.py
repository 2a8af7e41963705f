"""Balancing unbalanced switches (`collc.solver.balance`) and the solver's fallback to it."""

from __future__ import annotations

from fractions import Fraction as F

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collc.capacity import capacity_graph
from collc.solver import solve
from collc.solver.balance import balanced_fabrics, unbalanced_switches
from collc.solver.bound import optimal_bound
from collc.topology.model import Link, Node, Topology


def nic_boxes(nics: list[tuple[F, F]]) -> Topology:
    """A box of 2 GPUs on a 150 GB/s switch per ``(up, down)`` of ``nics``: a NIC on GPU 0 (32 GB/s)
    that sends ``up`` to one network switch and takes in ``down`` from it."""
    nodes, links, ranks = [Node("net", "switch")], [], []
    for b, (up, down) in enumerate(nics):
        gpus = [f"b{b}g0", f"b{b}g1"]
        ranks += gpus
        nodes += [Node(gpu, "gpu") for gpu in gpus] + [Node(f"b{b}sw", "switch"), Node(f"b{b}nic", "nic")]
        links += [Link(gpu, f"b{b}sw", F(150)) for gpu in gpus]
        links += [Link(f"b{b}g0", f"b{b}nic", F(32))]
        links += [Link(f"b{b}nic", "net", up, directed=True), Link("net", f"b{b}nic", down, directed=True)]
    return Topology("nic-boxes", tuple(nodes), tuple(links), tuple(ranks))


SLOW_DOWN = (F(25), F("12.5"))  # a NIC that sends 25 GB/s up and takes in 12.5


def gbps(graph, name_from: str, name_to: str) -> F:
    index = {name: i for i, name in enumerate(graph.names)}
    caps = {(u, v): c for u, v, c in graph.arcs}
    return graph.to_gbps(caps.get((index[name_from], index[name_to]), 0))


def test_a_nic_that_takes_in_less_than_it_sends_is_capped_without_loss() -> None:
    """A NIC fed 32 GB/s by its GPU sends at most its 25 GB/s uplink on, and hands its GPU at most the
    12.5 GB/s it takes in: the caps balance it and change no cut. The network switch (75 in, 37.5
    out) still has to give up its excess: its uplinks are lowered to 12.5 each."""
    graph = capacity_graph(nic_boxes([SLOW_DOWN] * 3))
    assert [graph.names[w] for w in unbalanced_switches(graph)] == ["b0nic", "b1nic", "b2nic", "net"]
    [even] = balanced_fabrics(graph)  # the cut program finds no higher bound: water-filling's alone
    assert unbalanced_switches(even) == []
    assert gbps(even, "b0nic", "b0g0") == F("12.5")  # what the NIC takes in from the network
    assert gbps(even, "b0nic", "net") == gbps(even, "net", "b0nic") == F("12.5")
    assert gbps(even, "b0g0", "b0nic") == F("12.5")
    assert gbps(even, "b0g0", "b0sw") == 150
    assert optimal_bound(even).allgather_algbw == optimal_bound(graph).allgather_algbw == F(75, 4)


def test_caps_alone_keep_the_bound() -> None:
    """One box's NIC at 25 up and 12.5 down and another's at 12.5 up and 25 down, so the network
    switch is balanced: the caps alone balance the NICs, and no bound moves either way round."""
    topology = nic_boxes([SLOW_DOWN, SLOW_DOWN[::-1]])
    for graph in (capacity_graph(topology), capacity_graph(topology).reversed()):
        assert unbalanced_switches(graph)
        [even] = balanced_fabrics(graph)
        assert unbalanced_switches(even) == []
        assert optimal_bound(even).allgather_algbw == optimal_bound(graph).allgather_algbw


def test_water_filling_lowers_the_widest_arcs_to_one_level() -> None:
    """A switch taking in 30 GB/s from one GPU and sending 10, 20 and 40 to three others: its out-arcs
    are lowered to 10, 10 and 10 (the level where they add up to 30)."""
    nodes = (*(Node(f"g{i}", "gpu") for i in range(4)), Node("s", "switch"))
    links = [Link("g0", "s", F(30), directed=True)]
    links += [Link("s", f"g{i}", F(bw), directed=True) for i, bw in ((1, 10), (2, 20), (3, 40))]
    links += [Link(f"g{i}", "g0", F(50), directed=True) for i in (1, 2, 3)]
    [even] = balanced_fabrics(capacity_graph(Topology("fan", nodes, tuple(links), ("g0", "g1", "g2", "g3"))))

    assert [gbps(even, "s", f"g{i}") for i in (1, 2, 3)] == [10, 10, 10]
    assert gbps(even, "g0", "s") == 30


def test_a_switch_that_would_have_to_copy_gets_trees_below_the_cut_bound() -> None:
    """The reduce-scatter of three boxes whose NICs send 25 GB/s up and take 12.5 down: its cut bound
    (37.5 GB/s) needs the network switch to copy data, which no switch does; what goes up comes down,
    so the boxes' uplinks carry 2/3 of the data each and the trees reach 18.75 (the switch-removal
    check used to stop the compile there)."""
    topology = nic_boxes([SLOW_DOWN] * 3)
    assert optimal_bound(capacity_graph(topology).reversed()).allgather_algbw == F(75, 2)
    solution = solve(topology, reverse=True)
    assert solution.forest.balanced
    assert solution.forest.allgather_algbw == F(75, 4)
    assert not solve(topology).forest.balanced  # allgather splits the fabric as it is


@st.composite
def unbalanced_fabrics(draw: st.DrawFn) -> Topology:
    """2-5 GPUs and 1-3 switches joined by a random cycle and extra links, any of them one-way at a
    random bandwidth, so switches take in and send out different amounts."""
    num_gpus, num_switches = draw(st.integers(2, 5)), draw(st.integers(1, 3))
    names = [f"g{i}" for i in range(num_gpus)] + [f"s{i}" for i in range(num_switches)]
    cycle = draw(st.permutations(names))
    pairs = list(zip(cycle, cycle[1:] + cycle[:1], strict=True))
    extra = draw(st.lists(st.tuples(st.sampled_from(names), st.sampled_from(names)), max_size=2 * len(names)))
    bandwidth = st.integers(1, 12).map(lambda units: F(5 * units))
    links = []
    for a, b in pairs + [(a, b) for a, b in extra if a != b]:
        if draw(st.booleans()):
            links += [Link(a, b, draw(bandwidth), directed=True), Link(b, a, draw(bandwidth), directed=True)]
        else:
            links.append(Link(a, b, draw(bandwidth)))
    nodes = tuple(Node(n, "gpu" if n.startswith("g") else "switch") for n in names)
    return Topology("unbalanced", nodes, tuple(links), tuple(names[:num_gpus]))


def test_where_water_filling_lowers_arcs_evenly_the_cut_program_keeps_what_the_bound_needs() -> None:
    """A switch taking in 30 GB/s from g0 and sending up to 40 to g1 and to g2, where g1 also gets 20
    straight from g0: water-filling lowers both out-arcs to 15, and g2 (fed by the switch alone) then
    takes in 15 for the two other GPUs' data: 22.5 GB/s. The best split gives g2 25 and g1 5 (g1 then
    takes in 25 too): 2x ≤ 25, so 37.5. Both fabrics are packed for (the program's first), and the
    forest meets the higher one."""
    nodes = (*(Node(f"g{i}", "gpu") for i in range(3)), Node("s", "switch"))
    one_way = [
        ("g0", "s", 30), ("s", "g1", 40), ("s", "g2", 40),
        ("g0", "g1", 20), ("g1", "g0", 50), ("g2", "g0", 50),
    ]  # fmt: skip
    links = tuple(Link(a, b, F(bw), directed=True) for a, b, bw in one_way)
    topology = Topology("fan", nodes, links, ("g0", "g1", "g2"))
    program, water = balanced_fabrics(capacity_graph(topology))
    assert [gbps(water, "s", g) for g in ("g1", "g2")] == [15, 15]
    assert optimal_bound(water).allgather_algbw == F(45, 2)
    assert [gbps(program, "s", g) for g in ("g1", "g2")] == [5, 25]
    assert optimal_bound(program).allgather_algbw == F(75, 2)
    forest = solve(topology).forest
    assert forest.balanced and forest.allgather_algbw == F(75, 2)


def rails(downs: list[F]) -> Topology:
    """Boxes of 2 GPUs (300 GB/s switch) on two rail switches joined to a spine at 100 GB/s, one box
    per entry of ``downs``: GPU i sends 50 GB/s up to rail i and takes in ``down`` from it."""
    nodes, links, ranks = [Node("spine", "switch"), Node("r0", "switch"), Node("r1", "switch")], [], []
    links += [Link(rail, "spine", F(100)) for rail in ("r0", "r1")]
    for b, down in enumerate(downs):
        nodes.append(Node(f"b{b}sw", "switch"))
        for i in range(2):
            gpu = f"b{b}g{i}"
            ranks.append(gpu)
            nodes.append(Node(gpu, "gpu"))
            links += [Link(gpu, f"b{b}sw", F(300)), Link(gpu, f"r{i}", F(50), directed=True)]
            links.append(Link(f"r{i}", gpu, down, directed=True))
    return Topology("rails", tuple(nodes), tuple(links), tuple(ranks))


def test_rails_whose_nics_take_in_less_are_balanced_by_the_cut_program() -> None:
    """Three boxes on two rails, box 0's GPUs taking in 25 GB/s: in the reduce-scatter (the fabric
    reversed) each rail takes in 25 + 50 + 50 from the GPUs and 100 from the spine, and sends 3 × 50
    to the GPUs and 100 to the spine. Water-filling passes the rails' excess to the spine and back
    without end; the cut program takes 25 off each rail's arcs to the GPUs, a_b to box b: a box then
    takes in 2(50 - a_b) for the four GPUs outside it, so x ≤ (100 - 2a_b)/4, best at a_b = 25/3:
    x = 125/6, 125 GB/s for the 6 GPUs (the cut bound, 150, needs the rails to copy). The fabric was
    left unbalanced and the reduce-scatter stopped with "no tree schedule reaches the cut bound"."""
    topology = rails([F(25), F(50), F(50)])
    reverse = capacity_graph(topology).reversed()
    assert optimal_bound(reverse).allgather_algbw == 150
    [even] = balanced_fabrics(reverse)
    assert unbalanced_switches(even) == []
    assert [sum(gbps(even, f"r{i}", f"b{b}g{i}") for i in range(2)) for b in range(3)] == [F(250, 3)] * 3
    assert optimal_bound(even).allgather_algbw == 125
    solution = solve(topology, reverse=True)
    assert solution.forest.balanced and solution.forest.allgather_algbw == 125
    assert (
        solve(topology).forest.allgather_algbw
        == optimal_bound(capacity_graph(topology)).allgather_algbw
        == 75
    )


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(unbalanced_fabrics())
def test_unbalanced_fabrics_get_trees_within_their_bound(topology: Topology) -> None:
    """Either way round, an unbalanced fabric gets a forest (the solver checks its loads against the
    links): one packed on the fabric as it is meets the cut bound, one packed on a balanced fabric
    stays at or below it. Every balanced fabric offered is balanced, lowers no link, and they come
    best bound first (water-filling's last, where the cut program found a higher bound)."""
    for reverse in (False, True):
        graph = capacity_graph(topology).reversed() if reverse else capacity_graph(topology)
        cut = optimal_bound(graph).allgather_algbw
        fabrics = balanced_fabrics(graph)
        assert fabrics or not unbalanced_switches(graph)
        for even in fabrics:
            assert unbalanced_switches(even) == []
            assert all(even.to_gbps(c) <= gbps(graph, even.names[u], even.names[v]) for u, v, c in even.arcs)
        bounds = [optimal_bound(even).allgather_algbw for even in fabrics]
        assert bounds == sorted(bounds, reverse=True) and len(set(bounds)) == len(bounds)
        forest = solve(topology, reverse=reverse).forest
        if forest.balanced:
            assert forest.allgather_algbw <= cut
        else:
            assert forest.allgather_algbw == cut


def test_a_programs_fractions_are_rounded_to_a_balanced_fabric() -> None:
    """Where the program's bandwidths are no small fractions, each arc is rounded to a neighbouring
    multiple of the grain so that the switch stays balanced: 1.8, 0.9 and 0.9 grains into and out of
    a switch floor to 1, 0 and 0 (in 1, out 0); rounded as a circulation they balance, each within
    a grain of the program's figure and within the arc's bandwidth."""
    from collc.solver.balance import _rounded

    nodes = (*(Node(f"g{i}", "gpu") for i in range(3)), Node("s", "switch"))
    wiring = [("g0", "s"), ("s", "g1"), ("s", "g2"), ("g1", "g0"), ("g2", "g0")]
    graph = capacity_graph(
        Topology("fan", nodes, tuple(Link(a, b, F(10), directed=True) for a, b in wiring), ("g0", "g1", "g2"))
    )
    index = {name: i for i, name in enumerate(graph.names)}
    arc = {pair: (index[pair[0]], index[pair[1]]) for pair in wiring}
    bandwidth = {(u, v): F(cap) for u, v, cap in graph.arcs}
    y = {arc[("g0", "s")]: 0.9, arc[("s", "g1")]: 0.45, arc[("s", "g2")]: 0.45}
    rounded = _rounded(graph, bandwidth, y, 2)
    grains = {pair: rounded[arc[pair]] * 2 for pair in wiring[:3]}
    assert grains[("g0", "s")] == grains[("s", "g1")] + grains[("s", "g2")]
    assert all(abs(grains[pair] - 2 * y[arc[pair]]) < 1 for pair in wiring[:3])
    assert rounded[arc[("g1", "g0")]] == bandwidth[arc[("g1", "g0")]]  # between GPUs: kept whole
