"""Topology files -> :class:`Topology`: parameters, templates, selectors, rank order and validation.

The format is documented in ``docs/topology-format.md``. Reading happens in one pass over the located
YAML tree (:mod:`collc.topology.yamlsrc`), so every error names the file, line and column of the value
at fault, says what is wrong and how to fix it. The flat interchange form (only ``nodes`` and ``links``
with literal names) is the same format without templates, selectors or parameters.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

from collc.errors import InputError, Location, clipped
from collc.fileio import read_text
from collc.input_limits import (
    MAX_BANDWIDTH_GBPS,
    MAX_GPUS,
    MAX_LATENCY_US,
    MAX_LINKS,
    MAX_NODES,
    MAX_RULE_PAIRS,
    MAX_TOPOLOGY_BYTES,
    MIN_BANDWIDTH_GBPS,
)
from collc.msccl.program import TARGET_RUNTIMES
from collc.numbers import ExponentOutOfRange, fraction
from collc.topology.expr import ExpressionError, evaluate, evaluate_number, names_in, step_budget
from collc.topology.model import NODE_KINDS, Link, Metadata, Node, Topology
from collc.topology.reach import adjacency, reachable
from collc.topology.selectors import Binding, resolve, select
from collc.topology.units import BANDWIDTH_UNITS, parse_bandwidth, parse_latency
from collc.topology.yamlsrc import LocatedList, LocatedMap, read_yaml

TOP_KEYS = ("name", "description", "parameters", "metadata", "templates", "boxes", "nodes", "links", "ranks")
PARAMETER_KEYS = ("default", "type", "description", "min", "max")
PARAMETER_TYPES = ("integer", "number")
METADATA_KEYS = ("gpu_model", "sms_per_gpu", "runtime", "default_latency_us")
RUNTIMES = TARGET_RUNTIMES
TEMPLATE_KEYS = ("description", "nodes", "links")
BOX_KEYS = ("template", "count", "name", "when")
NODE_KEYS = ("name", "kind", "count", "when", "rank", "box", "role")
TEMPLATE_NODE_KEYS = ("name", "kind", "count", "when")
LINK_KEYS = ("src", "dst", "bandwidth", "latency", "directed", "class", "count", "when", "where")
MATRIX_KEYS = ("matrix", "nodes", "bandwidth", "latency", "directed", "class", "when")
MAX_COUNT = MAX_LINKS  # a count makes nodes, boxes or parallel links: none may exceed the link limit
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
_NAME_HINT = "names start with a letter or '_' and contain only letters, digits, '_', '.', '-'"


@dataclass(frozen=True)
class TopologyWarning:
    """Something suspicious but not wrong (e.g. a template that is never used)."""

    message: str
    location: Location | None = None
    hint: str | None = None

    def __str__(self) -> str:
        text = f"{self.location}: warning: {self.message}" if self.location else f"warning: {self.message}"
        return text + (f"\n  hint: {self.hint}" if self.hint else "")


@dataclass(frozen=True)
class Parameter:
    """A declared preset parameter (``--set NAME=VALUE``)."""

    name: str
    default: Fraction
    description: str = ""
    minimum: Fraction | None = None
    maximum: Fraction | None = None
    integer: bool = True

    def problem(self, value: Fraction) -> str | None:
        """Why ``value`` is not allowed for this parameter, or None."""
        if self.integer and value.denominator != 1:
            return "must be a whole number"
        if self.minimum is not None and value < self.minimum:
            return f"must be >= {self.minimum}"
        if self.maximum is not None and value > self.maximum:
            return f"must be <= {self.maximum}"
        return None


@dataclass
class _Tally:
    """Running totals of what a document creates, stopped at :mod:`collc.input_limits` before the work."""

    links: int = 0
    pairs: int = 0

    def add_links(self, count: int, location: Location | None) -> None:
        self.links += count
        if self.links > MAX_LINKS:
            raise _fail(
                f"the topology has more than {MAX_LINKS:,} links, the most collc supports",
                location,
                "describe a switched fabric with a switch node instead of a full mesh of links",
            )

    def add_pairs(self, count: int, location: Location | None) -> None:
        self.pairs += count
        if self.pairs > MAX_RULE_PAIRS:
            raise _fail(
                f"the link rules consider more than {MAX_RULE_PAIRS:,} (src, dst) pairs, the most collc "
                "supports",
                location,
                "bind dst to src's captures (e.g. dst: 'gpu{(i + 1) % 8}') instead of filtering all pairs "
                "with 'where'",
            )


def check_node_total(count: int, location: Location | None) -> None:
    """Refuse a topology with more than :data:`MAX_NODES` nodes before they are created."""
    if count > MAX_NODES:
        raise _fail(
            f"the topology has more than {MAX_NODES:,} nodes, the most collc supports",
            location,
            f"collc schedules up to {MAX_GPUS:,} GPUs; check the counts and --set values",
        )


@dataclass
class _NodeDef:
    node: Node
    rank: int | None = None
    rank_location: Location | None = None


@dataclass
class _Scope:
    """Nodes visible to selectors: in definition order plus a set for lookups."""

    names: list[str] = field(default_factory=list)
    index: set[str] = field(default_factory=set)


def _fail(message: str, location: Location | None, hint: str | None = None) -> InputError:
    return InputError(message, location=location, hint=hint)


def _closest(word: str, options: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(word, list(options), n=1, cutoff=0.5)
    return matches[0] if matches else None


def check_keys(mapping: LocatedMap, allowed: tuple[str, ...], what: str) -> None:
    """Reject keys outside ``allowed``, suggesting the closest valid one."""
    for key in mapping:
        if key not in allowed:
            close = _closest(key, allowed)
            hint = f"did you mean {close!r}? " if close else ""
            raise _fail(
                f"unknown key {key!r} in {what}",
                mapping.where_key(key),
                hint + "valid keys: " + ", ".join(allowed),
            )


def _as_map(value: object, location: Location | None, what: str) -> LocatedMap:
    if not isinstance(value, LocatedMap):
        raise _fail(f"{what} must be a mapping (key: value lines), got {_describe(value)}", location)
    return value


def _as_list(value: object, location: Location | None, what: str) -> LocatedList:
    if not isinstance(value, LocatedList):
        raise _fail(f"{what} must be a list (lines starting with '- '), got {_describe(value)}", location)
    return value


def _short(value: Fraction) -> str:
    """A number for a message, in scientific notation when it is very large or very small (the
    magnitude is checked first: the text of a number of thousands of digits is not made)."""
    if abs(value) >= 10**300:
        return "over 1e300"
    if value and abs(value) < Fraction(1, 10**300):
        return "under 1e-300"
    text = str(value)
    return text if len(text) <= 20 else f"{float(value):.3g}"


def _check_latency(latency: Fraction, location: Location | None) -> None:
    if not 0 <= latency <= MAX_LATENCY_US:
        raise _fail(
            f"latency must be from 0 to {MAX_LATENCY_US} us, got {_short(latency)} us",
            location,
            "latencies are in microseconds by default; write a unit such as 500ns",
        )


def _describe(value: object) -> str:
    if isinstance(value, LocatedMap):
        return "a mapping"
    if isinstance(value, LocatedList):
        return "a list"
    return clipped(value)


def _text(mapping: LocatedMap, key: str, what: str, *, required: bool = False, default: str = "") -> str:
    if key not in mapping:
        if required:
            raise _fail(f"{what} needs a {key!r}", mapping.location)
        return default
    value = mapping[key]
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _fail(f"{key!r} of {what} must be text, got {_describe(value)}", mapping.where(key))
    return str(value)


#: bytes of a topology's name: compiled files carry it in <algo name="collc-NAME-...">, whose value the
#: runtime's XML parser copies into a 256-byte buffer without checking its length
MAX_NAME_BYTES = 128
#: characters that end or garble an XML attribute value (the runtime's parser decodes no entities)
_XML_UNSAFE = '"<>&'
NAME_HOW = "use letters, digits, spaces, '-', '_' and '.'"


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a topology's name, or None: it must fit the name of a compiled file, an
    XML attribute value on one line that the runtime reads into a 256-byte buffer."""
    if not name.strip():
        return "the topology name is empty"
    unsafe = sorted({char for char in name if char in _XML_UNSAFE or not char.isprintable()})
    if unsafe:
        shown = " ".join(char if char.isprintable() else f"U+{ord(char):04X}" for char in unsafe)
        return (
            f"the topology name {clipped(name)} contains {shown}, which a compiled file's name cannot carry"
        )
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        return (
            f"the topology name is {len(name.encode('utf-8')):,} bytes long; collc takes at most "
            f"{MAX_NAME_BYTES} (compiled files carry it in their name)"
        )
    return None


def _topology_name(document: LocatedMap, default_name: str) -> str:
    """The ``name`` (else ``default_name``, the file's stem), checked by :func:`name_problem`."""
    name = _text(document, "name", "the topology") or default_name
    problem = name_problem(name)
    if problem:
        where = document.where("name") if "name" in document else document.location
        raise _fail(problem, where, f"give a top-level 'name:'; {NAME_HOW}")
    return name


class _Reader:
    """Reads one topology document; ``variables`` holds the parameter values."""

    def __init__(self, document: LocatedMap, overrides: Mapping[str, str]):
        self.document = document
        self.warnings: list[TopologyWarning] = []
        self.tally = _Tally()
        self.parameters = read_parameters(document)
        self.variables: dict[str, Fraction] = apply_overrides(self.parameters, overrides)
        self.overrides = overrides

    # -- small typed readers -------------------------------------------------------------------------
    def number(self, mapping: LocatedMap, key: str, variables: Mapping[str, Fraction]) -> Fraction:
        try:
            return evaluate_number(mapping[key], variables, key)
        except ExpressionError as error:
            raise _fail(f"{key!r}: {error}", mapping.where(key)) from None

    def count(self, mapping: LocatedMap, key: str, variables: Mapping[str, Fraction], default: int) -> int:
        if key not in mapping:
            return default
        value = self.number(mapping, key, variables)
        if value.denominator != 1 or not 0 <= value <= MAX_COUNT:
            raise _fail(
                f"{key!r} must be a whole number from 0 to {MAX_COUNT}, got {_short(value)}",
                mapping.where(key),
                self.overridden(mapping[key]),
            )
        return int(value)

    def overridden(self, expression: object) -> str | None:
        """A hint naming the ``--set`` values an out-of-range ``expression`` is computed from (the
        file is the preset's, the value the user's: ``count: boxes`` with ``--set boxes=100000``)."""
        names = sorted(names_in(str(expression)) & set(self.overrides))
        if not names:
            return None
        given = ", ".join(f"{name}={str(self.overrides[name])[:40]}" for name in names)
        return f"{str(expression)[:60]} comes from --set {given}"

    def condition(self, mapping: LocatedMap, variables: Mapping[str, Fraction], key: str = "when") -> bool:
        """``when`` (parameters only: is the entry there at all) or ``where`` (filters a rule's matches)."""
        if key not in mapping:
            return True
        value = mapping[key]
        if isinstance(value, bool):
            return value
        try:
            return bool(evaluate(str(value), variables))
        except ExpressionError as error:
            raise _fail(f"{key!r}: {error}", mapping.where(key)) from None

    # -- sections --------------------------------------------------------------------------------------
    def metadata(self) -> Metadata:
        if "metadata" not in self.document:
            return Metadata()
        meta = _as_map(self.document["metadata"], self.document.where("metadata"), "'metadata'")
        check_keys(meta, METADATA_KEYS, "'metadata'")
        sms = None
        if "sms_per_gpu" in meta:
            sms = self.count(meta, "sms_per_gpu", self.variables, 0)
            if sms < 1:
                raise _fail("'sms_per_gpu' must be at least 1", meta.where("sms_per_gpu"))
        runtime = _text(meta, "runtime", "'metadata'") or None
        if runtime is not None and runtime not in RUNTIMES:
            raise _fail(
                f"unknown runtime {runtime!r}", meta.where("runtime"), "use one of: " + ", ".join(RUNTIMES)
            )
        latencies: dict[str, Fraction] = {}
        if "default_latency_us" in meta:
            table = _as_map(
                meta["default_latency_us"], meta.where("default_latency_us"), "'default_latency_us'"
            )
            for link_class in sorted(table):
                try:
                    latencies[link_class] = parse_latency(table[link_class], self.variables)
                except ExpressionError as error:
                    raise _fail(f"latency of {link_class!r}: {error}", table.where(link_class)) from None
                _check_latency(latencies[link_class], table.where(link_class))
        return Metadata(
            gpu_model=_text(meta, "gpu_model", "'metadata'") or None,
            sms_per_gpu=sms,
            runtime=runtime,
            default_latency_us=latencies,
        )

    def node_entries(
        self, entries: LocatedList, allowed: tuple[str, ...], variables: Mapping[str, Fraction]
    ) -> list[tuple[str, str, LocatedMap]]:
        """(name, kind, entry) for every node an entry list defines, ``count`` expanded."""
        found: list[tuple[str, str, LocatedMap]] = []
        for position, raw in enumerate(entries):
            entry = _as_map(raw, entries.where(position), "a node")
            check_keys(entry, allowed, "a node")
            name = _text(entry, "name", "a node", required=True)
            if not _NAME.match(name):
                raise _fail(f"invalid node name {name!r}", entry.where("name"), _NAME_HINT)
            kind = _text(entry, "kind", f"node {name!r}", required=True)
            if kind not in NODE_KINDS:
                close = _closest(kind, NODE_KINDS)
                raise _fail(
                    f"unknown node kind {kind!r}",
                    entry.where("kind"),
                    (f"did you mean {close!r}? " if close else "") + "kinds: " + ", ".join(NODE_KINDS),
                )
            if not self.condition(entry, variables):
                continue
            count = self.count(entry, "count", variables, 1) if "count" in entry else None
            check_node_total(len(found) + (1 if count is None else count), entry.where("count"))
            if count is None:
                found.append((name, kind, entry))
            else:
                found.extend((f"{name}{i}", kind, entry) for i in range(count))
        return found

    def link_rules(self, rules: LocatedList, scope: _Scope, variables: Mapping[str, Fraction]) -> list[Link]:
        links: list[Link] = []
        for position, raw in enumerate(rules):
            rule = _as_map(raw, rules.where(position), "a link")
            if "matrix" in rule:
                check_keys(rule, MATRIX_KEYS, "a matrix link")
                links.extend(self.matrix_rule(rule, scope, variables))
            else:
                check_keys(rule, LINK_KEYS, "a link")
                links.extend(self.link_rule(rule, scope, variables))
        return links

    def link_rule(self, rule: LocatedMap, scope: _Scope, variables: Mapping[str, Fraction]) -> list[Link]:
        src = _text(rule, "src", "a link", required=True)
        dst = _text(rule, "dst", "a link", required=True)
        if "bandwidth" not in rule:
            raise _fail(
                "a link needs a 'bandwidth'",
                rule.location,
                f"a number in GB/s or with a unit: {BANDWIDTH_UNITS}",
            )
        if not self.condition(rule, variables):
            return []
        links: list[Link] = []
        for src_name, binding in self.matches(rule, "src", src, variables, scope):
            destinations = self.matches(rule, "dst", dst, binding, scope, allow_empty=True)
            self.tally.add_pairs(len(destinations), rule.where("dst"))
            for dst_name, full in destinations:
                if not self.condition(rule, full, "where"):
                    continue
                if src_name == dst_name:
                    raise _fail(
                        f"link from {src_name!r} to itself",
                        rule.location,
                        "a link joins two different nodes; in a mesh rule add e.g. where: i != j",
                    )
                parallel = self.count(rule, "count", full, 1)
                self.tally.add_links(parallel, rule.location)
                links.extend([self.make_link(rule, src_name, dst_name, full)] * parallel)
        return links

    def matches(
        self,
        rule: LocatedMap,
        key: str,
        pattern: str,
        bound: Mapping[str, Fraction],
        scope: _Scope,
        *,
        allow_empty: bool = False,
    ) -> list[tuple[str, Binding]]:
        try:
            found = select(pattern, bound, scope.names, scope.index)
            literal = None if found else resolve(pattern, bound)
        except ExpressionError as error:
            raise _fail(f"{key!r}: {error}", rule.where(key)) from None
        if found or (allow_empty and literal is None):
            return found
        if literal is not None:
            close = _closest(literal, scope.names)
            raise _fail(
                f"{key!r} refers to node {literal!r}, which does not exist",
                rule.where(key),
                f"did you mean {close!r}?" if close else "define the node under 'nodes' first",
            )
        raise _fail(
            f"{key!r} selector {pattern!r} matches no node",
            rule.where(key),
            "'{i}' captures a number and '*' any text without dots; check the names defined under 'nodes'",
        )

    def make_link(self, rule: LocatedMap, src: str, dst: str, variables: Mapping[str, Fraction]) -> Link:
        try:
            bandwidth = parse_bandwidth(rule["bandwidth"], variables)
        except ExpressionError as error:
            raise _fail(
                f"bad bandwidth: {error}",
                rule.where("bandwidth"),
                f"write a number in GB/s or use {BANDWIDTH_UNITS}",
            ) from None
        if bandwidth <= 0:
            raise _fail(
                f"bandwidth must be > 0, got {bandwidth}",
                rule.where("bandwidth"),
                "remove the link instead of giving it no bandwidth",
            )
        if not MIN_BANDWIDTH_GBPS <= bandwidth <= MAX_BANDWIDTH_GBPS:
            raise _fail(
                f"bandwidth {_short(bandwidth)} GB/s is outside the supported range "
                f"{MIN_BANDWIDTH_GBPS} to {MAX_BANDWIDTH_GBPS} GB/s",
                rule.where("bandwidth"),
                f"bandwidths are in GB/s by default; write a unit such as 400Gbps ({BANDWIDTH_UNITS})",
            )
        latency = None
        if "latency" in rule:
            try:
                latency = parse_latency(rule["latency"], variables)
            except ExpressionError as error:
                raise _fail(f"bad latency: {error}", rule.where("latency")) from None
            _check_latency(latency, rule.where("latency"))
        directed = rule.get("directed", False)
        if not isinstance(directed, bool):
            raise _fail("'directed' must be true or false", rule.where("directed"))
        link_class = _text(rule, "class", "a link") or None
        return Link(src, dst, bandwidth, latency, directed, link_class, rule.location)

    def matrix_rule(self, rule: LocatedMap, scope: _Scope, variables: Mapping[str, Fraction]) -> list[Link]:
        if not self.condition(rule, variables):
            return []
        pattern = _text(rule, "nodes", "a matrix link", required=True)
        if "bandwidth" not in rule:
            raise _fail("a matrix link needs a 'bandwidth' (per parallel link)", rule.location)
        found = self.matches(rule, "nodes", pattern, variables, scope)
        captured = [key for key in found[0][1] if key not in variables]
        if len(captured) != 1:
            raise _fail(
                "the 'nodes' selector of a matrix must capture exactly one index, like 'gcd{i}'",
                rule.where("nodes"),
            )
        names = [name for name, _binding in sorted(found, key=lambda match: match[1][captured[0]])]
        matrix = _as_list(rule["matrix"], rule.where("matrix"), "'matrix'")
        rows = [_as_list(row, matrix.where(i), "a matrix row") for i, row in enumerate(matrix)]
        if len(rows) != len(names) or any(len(row) != len(names) for row in rows):
            raise _fail(
                f"'matrix' must be {len(names)} x {len(names)}: {pattern!r} selects {len(names)} nodes",
                rule.where("matrix"),
            )
        directed = rule.get("directed", False) is True
        links: list[Link] = []
        for i, row in enumerate(rows):
            for j, entry in enumerate(row):
                if isinstance(entry, bool) or not isinstance(entry, int) or entry < 0:
                    raise _fail(
                        f"matrix entries count links: whole numbers >= 0, got {entry!r}", row.where(j)
                    )
                if i == j and entry:
                    raise _fail(
                        f"diagonal entry [{i}][{j}] is a self-loop", row.where(j), "put 0 on the diagonal"
                    )
                if not directed and entry != rows[j][i]:
                    raise _fail(
                        f"matrix is not symmetric: [{i}][{j}] = {entry} but [{j}][{i}] = {rows[j][i]}",
                        row.where(j),
                        "full-duplex links need a symmetric matrix; use directed: true for one-way counts",
                    )
                if (directed and i != j) or i < j:
                    self.tally.add_links(entry, row.where(j))
                    links.extend([self.make_link(rule, names[i], names[j], variables)] * entry)
        return links


def read_parameters(document: LocatedMap) -> dict[str, Parameter]:
    """The declared parameters: ``name: default`` or ``name: {default, type, description, min, max}``.

    ``type`` is ``integer`` (the default when the default value is whole) or ``number`` (any exact
    rational, e.g. an oversubscription of 1.5).
    """
    if "parameters" not in document:
        return {}
    table = _as_map(document["parameters"], document.where("parameters"), "'parameters'")
    parameters: dict[str, Parameter] = {}
    for name, raw in table.items():
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
            raise _fail(
                f"invalid parameter name {name!r}", table.where_key(name), "use letters, digits and '_'"
            )
        spec = raw if isinstance(raw, LocatedMap) else LocatedMap.of({"default": raw}, table.where(name))
        check_keys(spec, PARAMETER_KEYS, f"parameter {name!r}")
        if "default" not in spec:
            raise _fail(f"parameter {name!r} needs a 'default'", spec.location)
        bounds: dict[str, Fraction | None] = {}
        for key in ("default", "min", "max"):
            value = spec.get(key)
            if value is None and key != "default":
                bounds[key] = None
            elif isinstance(value, bool) or not isinstance(value, int | Fraction):
                raise _fail(
                    f"{key!r} of parameter {name!r} must be a number, got {clipped(value)}", spec.where(key)
                )
            else:
                bounds[key] = Fraction(value)
        default = bounds["default"]
        assert default is not None
        kind = _text(
            spec, "type", f"parameter {name!r}", default="integer" if default.denominator == 1 else "number"
        )
        if kind not in PARAMETER_TYPES:
            raise _fail(f"unknown parameter type {kind!r}", spec.where("type"), "use integer or number")
        parameter = Parameter(
            name,
            default,
            _text(spec, "description", f"parameter {name!r}"),
            bounds["min"],
            bounds["max"],
            integer=kind == "integer",
        )
        problem = parameter.problem(default)
        if problem:
            raise _fail(f"default of parameter {name!r} {problem}", spec.where("default"))
        parameters[name] = parameter
    return parameters


def apply_overrides(parameters: Mapping[str, Parameter], overrides: Mapping[str, str]) -> dict[str, Fraction]:
    """Parameter values after ``--set`` overrides, checked against each parameter's declaration."""
    values = {name: parameter.default for name, parameter in parameters.items()}
    for name, text in sorted(overrides.items()):
        if name not in parameters:
            raise InputError(f"unknown parameter {name!r}", hint=describe_parameters(parameters))
        parameter = parameters[name]
        try:
            value = fraction(str(text).strip())
        except ExponentOutOfRange as error:
            raise InputError(
                f"parameter {name!r} is out of range ({error}), got {clipped(text)}",
                hint=describe_parameters(parameters),
            ) from None
        except (ValueError, ZeroDivisionError):
            raise InputError(f"parameter {name!r} must be a number, got {clipped(text)}") from None
        problem = parameter.problem(value)
        if problem:
            raise InputError(
                f"parameter {name!r} {problem}, got {clipped(text)}", hint=describe_parameters(parameters)
            )
        values[name] = value
    return values


def describe_parameters(parameters: Mapping[str, Parameter]) -> str:
    """A one-line hint listing the parameters a topology accepts."""
    if not parameters:
        return "this topology has no parameters"
    described = [
        f"{p.name} (default {p.default}{': ' + p.description if p.description else ''})"
        for p in parameters.values()
    ]
    return "parameters: " + "; ".join(described)


def parse_topology(
    text: str, file: str | None, overrides: Mapping[str, str] | None = None, default_name: str = "topology"
) -> tuple[Topology, list[TopologyWarning]]:
    """Read a topology document; return it with the warnings found. Raises located InputErrors."""
    with step_budget():
        return _parse_document(text, file, overrides, default_name)


def _parse_document(
    text: str, file: str | None, overrides: Mapping[str, str] | None, default_name: str
) -> tuple[Topology, list[TopologyWarning]]:
    document = read_yaml(text, file)
    if document is None:
        raise _fail(
            "the topology file is empty", Location(file, 1, 1), "a topology needs 'nodes' and 'links'"
        )
    document = _as_map(document, getattr(document, "location", Location(file, 1, 1)), "a topology")
    check_keys(document, TOP_KEYS, "the topology")
    reader = _Reader(document, overrides or {})
    metadata = reader.metadata()
    definitions, links = _build(reader)
    if not any(d.node.kind == "gpu" for d in definitions):
        raise _fail("the topology has no GPU", document.location, "add nodes with kind: gpu")
    ranks = _rank_order(reader, definitions)
    nodes = tuple(d.node for d in definitions)
    _check_connected(nodes, links, ranks)
    reader.warnings.extend(_unlinked(nodes, links))
    topology = Topology(
        name=_topology_name(document, default_name),
        nodes=nodes,
        links=tuple(links),
        ranks=ranks,
        description=_text(document, "description", "the topology"),
        metadata=metadata,
        source=file,
    )
    return topology, reader.warnings


def _build(reader: _Reader) -> tuple[list[_NodeDef], list[Link]]:
    document = reader.document
    templates: dict[str, LocatedMap] = {}
    if "templates" in document:
        table = _as_map(document["templates"], document.where("templates"), "'templates'")
        for name, raw in table.items():
            template = _as_map(raw, table.where(name), f"template {name!r}")
            check_keys(template, TEMPLATE_KEYS, f"template {name!r}")
            templates[name] = template
    definitions: list[_NodeDef] = []
    links: list[Link] = []
    first_seen: dict[str, Location | None] = {}
    used: set[str] = set()

    def add(node: Node, entry: LocatedMap) -> _NodeDef:
        if node.name in first_seen:
            earlier = first_seen[node.name]
            raise _fail(
                f"duplicate node name {node.name!r}" + (f" (first defined at {earlier})" if earlier else ""),
                entry.where("name"),
                "every node needs a unique name",
            )
        first_seen[node.name] = node.location
        check_node_total(len(definitions) + 1, entry.location)
        definition = _NodeDef(node)
        definitions.append(definition)
        return definition

    box_index = 0
    if "boxes" in document:
        groups = _as_list(document["boxes"], document.where("boxes"), "'boxes'")
        expanded: dict[str, tuple[list[tuple[str, str, LocatedMap]], list[Link]]] = {}
        for position, raw in enumerate(groups):
            group = _as_map(raw, groups.where(position), "a box group")
            check_keys(group, BOX_KEYS, "a box group")
            template_name = _text(group, "template", "a box group", required=True)
            if template_name not in templates:
                close = _closest(template_name, templates)
                raise _fail(
                    f"unknown template {template_name!r}",
                    group.where("template"),
                    f"did you mean {close!r}?" if close else "define it under 'templates'",
                )
            used.add(template_name)
            if not reader.condition(group, reader.variables):
                continue
            if template_name not in expanded:
                expanded[template_name] = _expand_template(reader, templates[template_name])
                # its rules counted its links once as they made them; they exist once per box, counted below
                reader.tally.links -= len(expanded[template_name][1])
            local_nodes, local_links = expanded[template_name]
            prefix = _text(group, "name", "a box group", default="b")
            if not _NAME.match(prefix):
                raise _fail(f"invalid box name {prefix!r}", group.where("name"), _NAME_HINT)
            boxes = reader.count(group, "count", reader.variables, 1)
            check_node_total(len(definitions) + boxes * len(local_nodes), group.where("count"))
            reader.tally.add_links(boxes * len(local_links), group.where("count"))
            for index in range(boxes):
                box = f"{prefix}{index}."
                for name, kind, entry in local_nodes:
                    add(Node(box + name, kind, box_index, name, entry.location), entry)  # type: ignore[arg-type]
                links.extend(replace(link, src=box + link.src, dst=box + link.dst) for link in local_links)
                box_index += 1
    for name in templates:
        if name not in used:
            reader.warnings.append(
                TopologyWarning(
                    f"template {name!r} is never used",
                    document["templates"].where_key(name),
                    "instantiate it under 'boxes' or delete it",
                )
            )
    if "nodes" in document:
        entries = _as_list(document["nodes"], document.where("nodes"), "'nodes'")
        for name, kind, entry in reader.node_entries(entries, NODE_KEYS, reader.variables):
            box = reader.count(entry, "box", reader.variables, 0) if "box" in entry else None
            role = _text(entry, "role", f"node {name!r}") or None
            definition = add(Node(name, kind, box, role, entry.location), entry)  # type: ignore[arg-type]
            if "rank" in entry:
                if kind != "gpu" or "count" in entry:
                    raise _fail("'rank' is only allowed on a single GPU node", entry.where_key("rank"))
                definition.rank = reader.count(entry, "rank", reader.variables, 0)
                definition.rank_location = entry.where("rank")
    gpus = sum(1 for d in definitions if d.node.kind == "gpu")
    if gpus > MAX_GPUS:  # checked before the link rules, whose work grows with the nodes
        raise _fail(
            f"the topology has {gpus:,} GPUs; collc supports at most {MAX_GPUS:,}",
            document.location,
            "check the counts and --set values",
        )
    _check_roles([d.node for d in definitions])
    scope = _Scope([d.node.name for d in definitions], set(first_seen))
    if "links" in document:
        rules = _as_list(document["links"], document.where("links"), "'links'")
        links.extend(reader.link_rules(rules, scope, reader.variables))
    return definitions, links


def _check_roles(nodes: list[Node]) -> None:
    """Every GPU of a box has a role of its own: a role names the GPU's place in its box, which the
    symmetry search and the box-block forests match across boxes."""
    seen: dict[tuple[int, str], str] = {}
    for node in nodes:
        if node.kind != "gpu" or node.box is None or node.role is None:
            continue
        first = seen.setdefault((node.box, node.role), node.name)
        if first != node.name:
            raise _fail(
                f"GPUs {first!r} and {node.name!r} of box {node.box} have the same role {node.role!r}",
                node.location,
                "give each GPU of a box its own role (gpu0, gpu1, ...), or delete the box and role "
                "fields to have them inferred",
            )


def _expand_template(
    reader: _Reader, template: LocatedMap
) -> tuple[list[tuple[str, str, LocatedMap]], list[Link]]:
    """A template's nodes and links in template-local names (evaluated once, copied per box)."""
    nodes: list[tuple[str, str, LocatedMap]] = []
    if "nodes" in template:
        entries = _as_list(template["nodes"], template.where("nodes"), "template 'nodes'")
        nodes = reader.node_entries(entries, TEMPLATE_NODE_KEYS, reader.variables)
    seen: dict[str, LocatedMap] = {}
    for name, _kind, entry in nodes:
        if name in seen:
            raise _fail(
                f"duplicate node name {name!r} in template (first defined at {seen[name].location})",
                entry.where("name"),
                "every node of a template needs a unique name",
            )
        seen[name] = entry
    links: list[Link] = []
    if "links" in template:
        rules = _as_list(template["links"], template.where("links"), "template 'links'")
        scope = _Scope([name for name, _kind, _entry in nodes], set(seen))
        links = reader.link_rules(rules, scope, reader.variables)
    return nodes, links


def _rank_order(reader: _Reader, definitions: list[_NodeDef]) -> tuple[str, ...]:
    """Ranks: the ``ranks`` list, else per-node ``rank`` keys, else definition order (box-major)."""
    gpus = [d for d in definitions if d.node.kind == "gpu"]
    with_rank = [d for d in gpus if d.rank is not None]
    document = reader.document
    if "ranks" in document:
        if with_rank:
            raise _fail(
                "give the rank order either with 'ranks' or with 'rank' on nodes, not both",
                with_rank[0].rank_location,
            )
        return _ranks_from_list(document, [d.node for d in gpus])
    if not with_rank:
        return tuple(d.node.name for d in gpus)
    if len(with_rank) != len(gpus):
        missing = next(d for d in gpus if d.rank is None)
        raise _fail(
            f"GPU {missing.node.name!r} has no 'rank' but other GPUs do",
            missing.node.location,
            "give every GPU a rank, or none (then list order is rank order)",
        )
    by_rank: dict[int, _NodeDef] = {}
    for definition in with_rank:
        assert definition.rank is not None
        if definition.rank >= len(gpus):
            raise _fail(
                f"rank {definition.rank} is out of range: ranks are 0..{len(gpus) - 1} for {len(gpus)} GPUs",
                definition.rank_location,
            )
        if definition.rank in by_rank:
            raise _fail(
                f"rank {definition.rank} is given twice (also to {by_rank[definition.rank].node.name!r})",
                definition.rank_location,
                "ranks must be a permutation of 0..N-1",
            )
        by_rank[definition.rank] = definition
    return tuple(by_rank[r].node.name for r in range(len(gpus)))


def _ranks_from_list(document: LocatedMap, gpus: list[Node]) -> tuple[str, ...]:
    entries = _as_list(document["ranks"], document.where("ranks"), "'ranks'")
    names = [gpu.name for gpu in gpus]
    index = set(names)
    order: list[str] = []
    placed: dict[str, Location] = {}
    for position, entry in enumerate(entries):
        where = entries.where(position)
        if isinstance(entry, bool) or not isinstance(entry, str):
            raise _fail(f"a 'ranks' entry must be a GPU name or selector, got {entry!r}", where)
        try:
            found = select(entry, {}, names, index)
        except ExpressionError as error:
            raise _fail(f"'ranks': {error}", where) from None
        if not found:
            raise _fail(
                f"'ranks' entry {entry!r} names no GPU",
                where,
                "list GPU names (or selectors such as 'b{b}.gpu{i}') only, each GPU once",
            )
        for name, _binding in sorted(found, key=lambda match: tuple(match[1].values())):
            if name in placed:
                raise _fail(
                    f"rank order is not a permutation: {name!r} is listed twice (first at {placed[name]})",
                    where,
                    "list every GPU exactly once",
                )
            placed[name] = where
            order.append(name)
    missing = [name for name in names if name not in placed]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise _fail(
            f"rank order is not a permutation: {len(missing)} GPU(s) missing: {shown}",
            entries.location,
            "list every GPU exactly once",
        )
    return tuple(order)


def _check_connected(nodes: tuple[Node, ...], links: list[Link], ranks: tuple[str, ...]) -> None:
    """Every GPU must reach, and be reached from, every other GPU (else no collective can run)."""
    forward, backward = adjacency(links)
    by_name = {node.name: node for node in nodes}
    start = ranks[0]
    for graph, verb in ((forward, "cannot be reached from"), (backward, "cannot reach")):
        seen = reachable(graph, start)
        for gpu in ranks:
            if gpu not in seen:
                raise _fail(
                    f"GPU {gpu!r} {verb} GPU {start!r}",
                    by_name[gpu].location,
                    "every GPU must reach every other GPU: add the missing links (directed = one-way)",
                )


def _unlinked(nodes: tuple[Node, ...], links: list[Link]) -> list[TopologyWarning]:
    """A warning for every switch or NIC that no link touches (GPUs are checked for reachability)."""
    linked = {link.src for link in links} | {link.dst for link in links}
    return [
        TopologyWarning(
            f"{node.kind} {node.name!r} has no links",
            node.location,
            "connect it (e.g. a NIC to its GPU and to the network switch) or delete it",
        )
        for node in nodes
        if node.kind != "gpu" and node.name not in linked
    ]


def read_topology_file(
    path: Path,
    overrides: Mapping[str, str] | None,
    shown_as: str,
    on_warning: Callable[[TopologyWarning], None],
) -> Topology:
    """Read ``path`` (reported as ``shown_as`` in messages), passing warnings to ``on_warning``."""
    topology, warnings = parse_topology(
        read_topology_text(path, shown_as), shown_as, overrides, default_name=path.stem
    )
    for warning in warnings:
        on_warning(warning)
    return topology


def read_topology_text(path: Path, shown_as: str) -> str:
    """The text of a topology file: UTF-8, at most :data:`MAX_TOPOLOGY_BYTES` (a pipe too:
    :func:`collc.fileio.read_text`)."""
    return read_text(
        path,
        MAX_TOPOLOGY_BYTES,
        what="the file",
        too_large="describe repeated boxes with templates and counts instead of listing every link",
        fix="give a topology YAML file",
        shown_as=shown_as,
    )
