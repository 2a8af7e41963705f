"""Degraded fabrics and a job's own GPUs: pure functions Topology -> Topology.

Links fail, NICs are drained, and a job gets only some of the GPUs; the schedule to deploy is the one
compiled for exactly that fabric. Every command that takes a topology accepts:

* ``--without SPEC`` (repeatable) takes a failed part out with all its links: ``link:A-B`` (every link
  joining A and B, both directions), ``nic:NAME``, ``switch:NAME``, ``gpu:NAME`` (a GPU that is down
  also leaves the collective: the other GPUs keep their rank order) or ``box:N`` (every node of box
  N, numbered from 0 in the order the fabric defines its boxes).
* ``--derate link:A-B=P%`` (repeatable) leaves every link joining A and B at P % of its bandwidth;
  ``link:A-B=100GB/s`` (any bandwidth unit of the topology format) sets the pair's bandwidth per
  direction instead, scaling parallel links in proportion.
* ``--gpus SELECTION`` keeps only a job's GPUs (:mod:`collc.topology.selection`). The others neither
  send nor forward: they leave the graph with their links, since a GPU that is not in the
  communicator runs no part of the schedule. Switches, NICs and the links between them stay.

Names are the node names ``collc topo show`` prints. After the changes, the nodes that can no longer
carry data between two remaining GPUs are left out: a node that no GPU reaches or that reaches no
GPU, and a switch or NIC whose links all lead to one neighbour (data that enters it can only go back).
Neither can be on any path a schedule uses, so every max-flow, and hence the bound, is unchanged;
for 64 GPUs selected from 1,024 this leaves the solver the small fabric of the job instead of the
whole cluster. If the changes cut the fabric apart, or leave fewer than 2 GPUs, that is an input error
that names the changes.
"""

from __future__ import annotations

import difflib
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, replace
from fractions import Fraction

from collc.errors import InputError, clipped
from collc.input_limits import MIN_BANDWIDTH_GBPS
from collc.numbers import ExponentOutOfRange, fraction
from collc.topology.expr import ExpressionError
from collc.topology.model import Link, NodeKind, Topology
from collc.topology.reach import adjacency, reachable
from collc.topology.selection import select_gpus
from collc.topology.units import BANDWIDTH_UNITS, parse_bandwidth

WITHOUT_KINDS = ("link", "nic", "switch", "gpu", "box")
_WITHOUT_HINT = (
    "write link:A-B, nic:NAME, switch:NAME, gpu:NAME or box:N, with names as `collc topo show` prints"
)
_DERATE_HINT = f"write link:A-B=P% (0 < P <= 100) or link:A-B=BANDWIDTH ({BANDWIDTH_UNITS})"


@dataclass(frozen=True)
class Degradation:
    """The changes to a fabric as the user wrote them: ``--without``, ``--derate`` and ``--gpus``."""

    without: tuple[str, ...] = ()
    derate: tuple[str, ...] = ()
    gpus: str | None = None

    @property
    def is_empty(self) -> bool:
        return not (self.without or self.derate or self.gpus is not None)  # --gpus "" still selects

    @property
    def damages(self) -> bool:
        """Whether parts fail or slow down (a selection alone only chooses GPUs)."""
        return bool(self.without or self.derate)

    def healthy(self) -> Degradation:
        """The same job on the fabric without failures: only the GPU selection is kept."""
        return Degradation(gpus=self.gpus)

    def describe(self) -> str:
        """The changes in the options' own words, e.g. ``--without nic:b0.nic3 --gpus b0-b1``."""
        words = [f"--without {spec}" for spec in self.without] + [f"--derate {spec}" for spec in self.derate]
        if self.gpus:
            words.append(f"--gpus {self.gpus}")
        return " ".join(words)


@dataclass(frozen=True)
class Removal:
    """One ``--without``: the nodes it takes out (with their links) and the node pairs whose links go."""

    spec: str
    nodes: frozenset[str]
    pairs: frozenset[frozenset[str]]


@dataclass(frozen=True)
class Derating:
    """One ``--derate``: every link joining ``pair`` keeps ``factor`` of its bandwidth."""

    spec: str
    pair: frozenset[str]
    factor: Fraction


def degrade(topology: Topology, degradation: Degradation) -> Topology:
    """``topology`` with ``degradation`` applied (module docstring); unchanged when there is none.

    Names, ranks and boxes in the options refer to ``topology`` as given.
    """
    if degradation.is_empty:
        return topology
    selected = select_gpus(topology, degradation.gpus) if degradation.gpus is not None else None
    removals = [removal(topology, spec) for spec in degradation.without]
    deratings = [derating(topology, spec) for spec in degradation.derate]
    gone = frozenset().union(*(item.nodes for item in removals))
    if selected is not None:
        _check_selected(selected, removals)
    ranks = selected if selected is not None else tuple(name for name in topology.ranks if name not in gone)
    dropped = gone | (set(topology.ranks) - set(ranks))
    changed = replace(
        topology,
        nodes=tuple(node for node in topology.nodes if node.name not in dropped),
        links=_changed_links(topology.links, dropped, removals, _factors(deratings)),
        ranks=ranks,
    )
    why = (
        "GPUs outside --gpus do not forward: select GPUs that switches and NICs connect"
        if degradation.gpus
        else "take fewer parts out"
    )
    return usable_part(changed, degradation.describe(), why)


def _changed_links(
    links: Iterable[Link],
    dropped: AbstractSet[str],
    removals: Sequence[Removal],
    factors: Mapping[frozenset[str], Fraction],
) -> tuple[Link, ...]:
    """The links that survive the removals, with the deratings applied."""
    cut = frozenset().union(*(item.pairs for item in removals))
    kept = []
    for link in links:
        pair = frozenset((link.src, link.dst))
        if link.src in dropped or link.dst in dropped or pair in cut:
            continue
        kept.append(replace(link, bandwidth=link.bandwidth * factors[pair]) if pair in factors else link)
    return tuple(kept)


def _factors(deratings: Sequence[Derating]) -> dict[frozenset[str], Fraction]:
    """Derating factor per node pair; a pair derated twice is ambiguous."""
    factors: dict[frozenset[str], Fraction] = {}
    first: dict[frozenset[str], str] = {}
    for item in deratings:
        if item.pair in factors:
            raise InputError(
                f"--derate {item.spec} and --derate {first[item.pair]} change the same link",
                hint="derate each link once",
            )
        factors[item.pair], first[item.pair] = item.factor, item.spec
    return factors


def _check_selected(selected: Sequence[str], removals: Sequence[Removal]) -> None:
    """A job's GPU that a ``--without`` takes out: the allocation holds a GPU that is down."""
    for item in removals:
        for name in selected:
            if name in item.nodes:
                raise InputError(
                    f"--gpus selects {name}, which --without {item.spec} takes out",
                    hint="leave the GPU out of the selection, or drop the --without",
                )


# --- parsing the specs --------------------------------------------------------------------------


def removal(topology: Topology, spec: str) -> Removal:
    """Parse one ``--without SPEC`` against ``topology``; unknown names get the close matches."""
    kind, separator, target = spec.partition(":")
    kind = kind.strip()
    target = target.strip()
    if not separator or kind not in WITHOUT_KINDS or not target:
        close = difflib.get_close_matches(kind, WITHOUT_KINDS, n=1, cutoff=0.5)
        hint = f"did you mean {close[0]}:{target}? " if close and separator else ""
        raise InputError(f"--without {clipped(spec)} is not a part of the fabric", hint=hint + _WITHOUT_HINT)
    if kind == "link":
        return Removal(spec, frozenset(), frozenset({link_pair(topology, target, f"--without {spec}")}))
    if kind == "box":
        return Removal(spec, _box_nodes(topology, target, spec), frozenset())
    return Removal(spec, frozenset({_node(topology, target, kind, spec)}), frozenset())  # type: ignore[arg-type]


def derating(topology: Topology, spec: str) -> Derating:
    """Parse one ``--derate link:A-B=P%`` (or ``=BANDWIDTH``) against ``topology``."""
    kind, separator, rest = spec.partition(":")
    target, equals, amount = rest.rpartition("=")
    if kind.strip() != "link" or not separator or not equals or not target.strip() or not amount.strip():
        raise InputError(f"--derate {clipped(spec)} is not link:A-B=AMOUNT", hint=_DERATE_HINT)
    pair = link_pair(topology, target.strip(), f"--derate {spec}")
    return Derating(spec, pair, _factor(topology, pair, amount.strip(), spec))


def _factor(topology: Topology, pair: frozenset[str], amount: str, spec: str) -> Fraction:
    """The share of its bandwidth a derated pair keeps: ``P/100``, or the new bandwidth over the old."""
    if amount.endswith("%"):
        try:
            factor: Fraction | None = fraction(amount[:-1].strip()) / 100
        except ExponentOutOfRange:
            factor = None  # far outside the range below
        except (ValueError, ZeroDivisionError):
            raise InputError(
                f"--derate {clipped(spec)}: {amount!r} is not a percentage", hint=_DERATE_HINT
            ) from None
        if factor is None or not 0 < factor <= 1:
            raise InputError(
                f"--derate {clipped(spec)}: the link keeps {amount} of its bandwidth; give more than 0 % "
                "and at most 100 %",
                hint="take a dead link out with --without link:A-B",
            )
        return _checked(topology, pair, factor, spec)
    try:
        wanted = parse_bandwidth(amount, {})
    except ExpressionError:
        raise InputError(
            f"--derate {clipped(spec)}: {amount!r} is neither a percentage nor a bandwidth", hint=_DERATE_HINT
        ) from None
    a, b = sorted(pair)
    there, back = _pair_bandwidth(topology, a, b), _pair_bandwidth(topology, b, a)
    if there and back and there != back:
        raise InputError(
            f"--derate {clipped(spec)}: the links carry {_gbps(there)} GB/s {a} -> {b} but {_gbps(back)} "
            f"GB/s {b} -> {a}, so one bandwidth is ambiguous",
            hint="give a percentage instead, e.g. link:A-B=50%",
        )
    current = there or back
    if not 0 < wanted <= current:
        raise InputError(
            f"--derate {clipped(spec)}: {_gbps(wanted)} GB/s is not a derating of the link's "
            f"{_gbps(current)} GB/s",
            hint="give a bandwidth above 0 and at most the link's own (edit the topology to raise one)",
        )
    return _checked(topology, pair, wanted / current, spec)


def _checked(topology: Topology, pair: frozenset[str], factor: Fraction, spec: str) -> Fraction:
    """Refuse a factor that leaves a link below the smallest bandwidth collc accepts."""
    for link in topology.links:
        if frozenset((link.src, link.dst)) == pair and link.bandwidth * factor < MIN_BANDWIDTH_GBPS:
            raise InputError(
                f"--derate {clipped(spec)} leaves {link.src} - {link.dst} below {MIN_BANDWIDTH_GBPS} GB/s",
                hint="take a dead link out with --without link:A-B",
            )
    return factor


def _pair_bandwidth(topology: Topology, src: str, dst: str) -> Fraction:
    return topology.arc_bandwidths().get((src, dst), Fraction(0))


def _gbps(value: Fraction) -> str:
    return f"{float(value):g}"


def link_pair(topology: Topology, text: str, option: str) -> frozenset[str]:
    """The node pair of ``A-B`` (names may hold ``-``: the split that names two nodes is taken)."""
    names = {node.name for node in topology.nodes}
    splits = [(text[:i], text[i + 1 :]) for i, char in enumerate(text) if char == "-"]
    known = [(a, b) for a, b in splits if a in names and b in names]
    if len(known) > 1:
        shown = " or ".join(f"{a} - {b}" for a, b in known)
        raise InputError(
            f"{option}: {text!r} reads as {shown}", hint="rename the nodes so no split is ambiguous"
        )
    if not known:
        raise _unknown_link(topology, text, splits, option)
    a, b = known[0]
    if frozenset((a, b)) not in _linked_pairs(topology):
        neighbours = sorted(_neighbours(topology)[a])
        shown = ", ".join(neighbours[:8]) + (" ..." if len(neighbours) > 8 else "")
        raise InputError(
            f"{option}: no link joins {a} and {b}", hint=f"{a}'s links go to {shown or 'nothing'}"
        )
    return frozenset((a, b))


def _unknown_link(topology: Topology, text: str, splits: list[tuple[str, str]], option: str) -> InputError:
    """Say which end of ``A-B`` names no node, with the close matches."""
    if not splits:
        return InputError(
            f"{option}: {clipped(text)} is not A-B", hint="name both ends, e.g. link:b0.gpu0-b0.nvswitch"
        )
    names = [node.name for node in topology.nodes]
    a, b = max(splits, key=lambda split: (split[0] in names) + (split[1] in names))
    missing = b if a in names else a
    return InputError(f"{option}: no node is named {clipped(missing)}", hint=_close_hint(missing, names))


def _close_hint(word: str, names: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, names, n=3, cutoff=0.6)
    return (f"did you mean {', '.join(close)}? " if close else "") + "names as `collc topo show` prints them"


def _node(topology: Topology, name: str, kind: NodeKind, spec: str) -> str:
    """The node ``name`` of ``kind``; a node of another kind says which spec would name it."""
    found = next((node for node in topology.nodes if node.name == name), None)
    if found is None:
        same_kind = [node.name for node in topology.nodes if node.kind == kind]
        raise InputError(
            f"--without {clipped(spec)}: no {kind} is named {clipped(name)}",
            hint=_close_hint(name, same_kind),
        )
    if found.kind != kind:
        raise InputError(
            f"--without {clipped(spec)}: {name} is a {found.kind}, not a {kind}",
            hint=f"write --without {found.kind}:{name}",
        )
    return name


def _box_nodes(topology: Topology, text: str, spec: str) -> frozenset[str]:
    """Every node of box ``N`` (``N`` or ``bN``)."""
    number = text[1:] if text.startswith("b") else text
    boxes = sorted({node.box for node in topology.nodes if node.box is not None})
    if not number.isdigit() or int(number) not in boxes:
        shown = f"boxes are 0-{boxes[-1]}" if boxes else "this fabric has no boxes"
        raise InputError(f"--without {clipped(spec)}: there is no box {clipped(text)}", hint=shown)
    return frozenset(node.name for node in topology.nodes if node.box == int(number))


# --- what is left -------------------------------------------------------------------------------


def usable_part(topology: Topology, changes: str, fix: str) -> Topology:
    """``topology`` without the nodes that cannot carry data between its GPUs (module docstring).

    Raises InputError, naming ``changes`` and suggesting ``fix``, when fewer than 2 GPUs remain or a
    GPU cannot reach another.
    """
    if len(topology.ranks) < 2:
        raise InputError(
            f"after {changes}, {len(topology.ranks)} GPU(s) remain; a collective needs at least 2",
            hint=fix,
        )
    forward, backward = adjacency(topology.links)
    start = topology.ranks[0]
    reached, reaching = reachable(forward, start), reachable(backward, start)
    for gpu in topology.ranks:
        if gpu not in reached or gpu not in reaching:
            verb = "cannot be reached from" if gpu not in reached else "cannot reach"
            raise InputError(
                f"after {changes}, GPU {gpu} {verb} GPU {start}: the fabric is cut apart",
                hint=f"a collective needs every GPU to reach every other; {fix}",
            )
    keep = _without_dead_ends(topology, reached & reaching)
    if len(keep) == len(topology.nodes):
        return topology
    return replace(
        topology,
        nodes=tuple(node for node in topology.nodes if node.name in keep),
        links=tuple(link for link in topology.links if link.src in keep and link.dst in keep),
    )


def _without_dead_ends(topology: Topology, alive: set[str]) -> set[str]:
    """``alive`` less, repeatedly, every switch or NIC with at most one neighbour in it."""
    neighbours = {name: linked & alive for name, linked in _neighbours(topology).items() if name in alive}
    gpus = set(topology.ranks)
    queue = deque(name for name in alive if name not in gpus and len(neighbours.get(name, ())) <= 1)
    keep = set(alive)
    while queue:
        name = queue.popleft()
        if name not in keep:
            continue
        keep.discard(name)
        for other in neighbours.get(name, ()):
            neighbours[other].discard(name)
            if other in keep and other not in gpus and len(neighbours[other]) <= 1:
                queue.append(other)
    return keep


def _neighbours(topology: Topology) -> dict[str, set[str]]:
    """Every node's neighbours over links in either direction (self-loops left out)."""
    found: dict[str, set[str]] = defaultdict(set)
    for link in topology.links:
        if link.src != link.dst:
            found[link.src].add(link.dst)
            found[link.dst].add(link.src)
    return found


def _linked_pairs(topology: Topology) -> set[frozenset[str]]:
    return {frozenset((link.src, link.dst)) for link in topology.links}
