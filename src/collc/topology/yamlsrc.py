"""YAML reading that keeps the line:column of every value, for located error messages.

PyYAML's composer gives every node a start mark; :func:`read_yaml` turns the node tree into plain
Python values where mappings and sequences are :class:`LocatedMap` / :class:`LocatedList` (subclasses
of ``dict`` / ``list``) that remember where they and each of their values start. Numbers that YAML
reads as floats become exact :class:`fractions.Fraction` values parsed from their source text, so no
bandwidth ever passes through a binary float. Before any node is built, the document's events are read
once against the YAML limits of :mod:`collc.input_limits` (:func:`_check_events`): a file over them is
refused at its first value past the limit, in constant memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from collc.errors import InputError, Location
from collc.input_limits import MAX_GPUS, MAX_LINKS, MAX_NESTING, MAX_NODES, MAX_YAML_VALUES
from collc.numbers import ExponentOutOfRange, fraction


class LocatedMap(dict):
    """A mapping that knows its own location and the location of each key and value."""

    location: Location
    key_locations: dict[str, Location]
    value_locations: dict[str, Location]

    @classmethod
    def of(cls, values: dict[str, Any], location: Location) -> LocatedMap:
        """A mapping built in code whose keys and values all sit at ``location`` (e.g. a short form)."""
        mapping = cls(values)
        mapping.location = location
        mapping.key_locations = dict.fromkeys(values, location)
        mapping.value_locations = dict.fromkeys(values, location)
        return mapping

    def where(self, key: str) -> Location:
        """Location of the value of ``key`` (of the mapping itself when the key is absent)."""
        return self.value_locations.get(key, self.location)

    def where_key(self, key: str) -> Location:
        return self.key_locations.get(key, self.location)


class LocatedList(list):
    """A sequence that knows its own location and the location of each item."""

    location: Location
    item_locations: list[Location]

    def where(self, index: int) -> Location:
        return self.item_locations[index]


def _location(node: yaml.Node, file: str | None) -> Location:
    return Location(file, node.start_mark.line + 1, node.start_mark.column + 1)


def _scalar(loader: yaml.SafeLoader, node: yaml.ScalarNode, file: str | None) -> Any:
    if node.tag == "tag:yaml.org,2002:float":
        text = node.value.replace("_", "")
        if len(text) > _MAX_NUMBER_LENGTH:
            raise InputError(
                f"number {node.value[:20]}... has too many digits",
                location=_location(node, file),
                hint="a topology number needs a few digits; check for a pasted or repeated value",
            )
        try:
            return fraction(text)
        except ExponentOutOfRange as error:
            raise InputError(
                f"number {node.value!r} is out of range: {error}",
                location=_location(node, file),
                hint="bandwidths lie between 1e-6 and 1e6 GB/s and latencies between 0 and 1e6 us",
            ) from None
        except ValueError:
            raise InputError(
                f"number {node.value!r} is not finite",
                location=_location(node, file),
                hint="use a finite decimal number such as 12.5",
            ) from None
    if node.tag == "tag:yaml.org,2002:timestamp":
        return node.value  # keep dates as text; no field of the format is a date
    try:
        return loader.construct_object(node)
    except ValueError:  # an integer longer than Python converts (4,300 digits)
        raise InputError(
            f"number {node.value[:20]}... has too many digits",
            location=_location(node, file),
            hint="a topology number needs a few digits; check for a pasted or repeated value",
        ) from None


_MERGE = "tag:yaml.org,2002:merge"
#: libyaml's parser when PyYAML was built with it (about ten times faster, same nodes and marks)
_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MAX_NUMBER_LENGTH = 100  # characters of a decimal number: exact fractions stay small


#: the lists whose entries each make at least one node or link unless counted or conditioned away, by
#: their key path (``*``: any template name), with the limit an entry past it exceeds
_ENTRY_LIMITS = {
    ("nodes",): ("nodes", MAX_NODES),
    ("links",): ("links", MAX_LINKS),
    ("templates", "*", "nodes"): ("nodes", MAX_NODES),
    ("templates", "*", "links"): ("links", MAX_LINKS),
}
_ENTRY_HINTS = {
    "nodes": f"give repeated nodes a 'count' or a template; collc schedules up to {MAX_GPUS:,} GPUs",
    "links": "write repeated links as one rule with captures (src: 'gpu{i}') or through a switch node",
}


@dataclass
class _Open:
    """A YAML collection being read: its anchor, the values before it, its list limit."""

    anchor: str | None
    values_before: int
    is_mapping: bool
    key: str | None = None  # a mapping: the key of the value being read
    children: int = 0  # a mapping counts keys and values
    entry_limit: tuple[str, int] | None = None


@dataclass
class _Budget:
    """What :func:`_check_events` has read so far: values (aliases expanded), anchors, open collections."""

    file: str | None
    values: int = 0
    aliases: bool = False
    anchors: dict[str, int | None] = field(default_factory=dict)  # None: the anchored value is still open
    anchor_starts: dict[str, Location] = field(default_factory=dict)
    open: list[_Open] = field(default_factory=list)

    def add(self, count: int, event: yaml.Event) -> None:
        """``count`` more values, refused at the first one past :data:`MAX_YAML_VALUES`."""
        self.values += count
        if self.values > MAX_YAML_VALUES:
            raise _too_many_values(self.aliases, _event_location(event, self.file))

    def enter(self, event: yaml.Event) -> None:
        """A value starts inside the innermost open collection: count it against that list's limit."""
        if not self.open:
            return
        parent = self.open[-1]
        parent.children += 1
        if parent.entry_limit is not None and parent.children > parent.entry_limit[1]:
            raise _too_many_entries(*parent.entry_limit, _event_location(event, self.file))

    def path(self) -> tuple[str, ...]:
        """The keys that lead to the value starting now (``*`` for a list item or a template name)."""
        keys = [(frame.key or "") if frame.is_mapping else "*" for frame in self.open]
        if len(keys) >= 2 and keys[0] == "templates":
            keys[1] = "*"
        return tuple(keys)


def _event_location(event: yaml.Event, file: str | None) -> Location:
    return Location(file, event.start_mark.line + 1, event.start_mark.column + 1)


def _too_many_values(aliases: bool, location: Location) -> InputError:
    if aliases:
        return InputError(
            f"the YAML document expands to more than {MAX_YAML_VALUES:,} values",
            location=location,
            hint="aliases (*name) repeat the whole value they name; write the topology with templates "
            "and counts instead",
        )
    return InputError(
        f"the YAML document has more than {MAX_YAML_VALUES:,} values, the most collc reads",
        location=location,
        hint="describe repeated boxes, nodes and links with templates, counts and rules instead of listing "
        "each one",
    )


def _too_many_entries(what: str, limit: int, location: Location) -> InputError:
    return InputError(
        f"the '{what}' list has more than {limit:,} entries; a topology has at most {limit:,} {what}",
        location=location,
        hint=_ENTRY_HINTS[what],
    )


def _check_events(loader: yaml.SafeLoader, file: str | None) -> None:
    """Read the document's events once, before any node is built, and stop at the first value past a
    limit of :mod:`collc.input_limits`: more values than :data:`MAX_YAML_VALUES` (each alias counted as
    the whole value it names, so an alias bomb stops here), collections nested deeper than
    :data:`MAX_NESTING`, an alias inside the value it names, or a ``nodes``/``links`` list with more
    entries than a topology may have nodes or links. Memory stays constant: only open collections and
    the sizes of anchored values are kept, so a 4 MiB file is refused in a fraction of a second."""
    budget = _Budget(file)
    while loader.check_event():
        event = loader.get_event()
        if isinstance(event, yaml.AliasEvent):
            budget.enter(event)
            budget.aliases = True
            if event.anchor in budget.anchors and budget.anchors[event.anchor] is None:
                raise InputError(
                    "a YAML alias refers to a value that contains it",
                    location=budget.anchor_starts[event.anchor],
                )
            budget.add(budget.anchors.get(event.anchor) or 1, event)
            _value_read(budget, None)
        elif isinstance(event, yaml.ScalarEvent):
            budget.enter(event)
            budget.add(1, event)
            if event.anchor is not None:
                budget.anchors[event.anchor] = 1
            _value_read(budget, event.value)
        elif isinstance(event, yaml.CollectionStartEvent):
            _start_collection(budget, event)
        elif isinstance(event, yaml.CollectionEndEvent):
            frame = budget.open.pop()
            if frame.anchor is not None:
                budget.anchors[frame.anchor] = budget.values - frame.values_before
            _value_read(budget, None)


def _start_collection(budget: _Budget, event: yaml.CollectionStartEvent) -> None:
    """A mapping or sequence starts: counted, checked for depth, and given its list limit by its path."""
    budget.enter(event)
    location = _event_location(event, budget.file)
    if len(budget.open) >= MAX_NESTING:
        raise _too_deep(location)
    is_mapping = isinstance(event, yaml.MappingStartEvent)
    limit = None if is_mapping else _ENTRY_LIMITS.get(budget.path())
    budget.open.append(_Open(event.anchor, budget.values, is_mapping, entry_limit=limit))
    budget.add(1, event)
    if event.anchor is not None:
        budget.anchors[event.anchor] = None
        budget.anchor_starts[event.anchor] = location


def _value_read(budget: _Budget, scalar: str | None) -> None:
    """A whole value was read: inside a mapping, a key (remembered when it is a plain name) or its value."""
    if budget.open and budget.open[-1].is_mapping:
        frame = budget.open[-1]
        frame.key = scalar if frame.children % 2 == 1 else None


def _convert(loader: yaml.SafeLoader, node: yaml.Node, file: str | None) -> Any:
    """Plain located values for ``node`` (its events checked by :func:`_check_events` first)."""
    if isinstance(node, yaml.ScalarNode):
        return _scalar(loader, node, file)
    if isinstance(node, yaml.SequenceNode):
        items = LocatedList(_convert(loader, item, file) for item in node.value)
        items.location = _location(node, file)
        items.item_locations = [_location(item, file) for item in node.value]
        return items
    if isinstance(node, yaml.MappingNode):
        return _mapping(loader, node, file)
    raise InputError(f"unsupported YAML node {node.tag}", location=_location(node, file))


def _mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, file: str | None) -> LocatedMap:
    """A mapping; ``<<: *anchor`` merge keys are expanded, explicit keys override merged ones."""
    explicit_count = sum(1 for key_node, _value in node.value if key_node.tag != _MERGE)
    if explicit_count != len(node.value):
        loader.flatten_mapping(node)  # node.value becomes: merged pairs, then the explicit pairs
    merged_count = len(node.value) - explicit_count
    mapping = LocatedMap()
    mapping.location = _location(node, file)
    mapping.key_locations = {}
    mapping.value_locations = {}
    explicit: set[str] = set()
    for position, (key_node, value_node) in enumerate(node.value):
        key = _convert(loader, key_node, file)
        where = _location(key_node, file)
        if not isinstance(key, str | int) or isinstance(key, bool):
            raise InputError("mapping keys must be plain names", location=where)
        key = str(key)
        if position >= merged_count:
            if key in explicit:
                raise InputError(
                    f"duplicate key {key!r} (first at line {mapping.key_locations[key].line})",
                    location=where,
                    hint="each key may appear only once in a mapping; remove or rename one",
                )
            explicit.add(key)
        mapping[key] = _convert(loader, value_node, file)
        mapping.key_locations[key] = where
        mapping.value_locations[key] = _location(value_node, file)
    return mapping


def _syntax_error(error: yaml.MarkedYAMLError, file: str | None) -> InputError:
    mark = error.problem_mark or error.context_mark
    location = Location(file, mark.line + 1, mark.column + 1) if mark else Location(file)
    problem = error.problem or "invalid YAML"
    if error.context:
        problem = f"{error.context}: {problem}"
    return InputError(
        f"YAML error: {problem}",
        location=location,
        hint="check the indentation, quoting and tags near this position (plain YAML only)",
    )


def _reader_error(error: yaml.reader.ReaderError, text: str, file: str | None) -> InputError:
    """A character YAML does not allow (NUL, control characters), located by line and column."""
    before = text[: error.position]
    line = before.count("\n") + 1
    column = error.position - (before.rfind("\n") + 1) + 1
    return InputError(
        f"character U+{error.character:04X} is not allowed in YAML",
        location=Location(file, line, column),
        hint="remove control characters; a topology file is plain UTF-8 text",
    )


def _too_deep(location: Location) -> InputError:
    return InputError(
        f"YAML collections nested more than {MAX_NESTING} deep",
        location=location,
        hint="a topology nests a few levels; check for unclosed brackets",
    )


def read_yaml(text: str, file: str | None) -> Any:
    """Parse one YAML document into located plain values; syntax errors become located InputErrors.

    The document's events are checked against the limits of :mod:`collc.input_limits` first
    (:func:`_check_events`), then it is composed into nodes (PyYAML keeps one node per alias, however
    often it is used) and converted.
    """
    loaders: list[yaml.SafeLoader] = []
    try:
        loaders.append(_LOADER(text))
        _check_events(loaders[-1], file)
        loaders.append(_LOADER(text))
        root = loaders[-1].get_single_node()
        return None if root is None else _convert(loaders[-1], root, file)
    except yaml.reader.ReaderError as error:
        raise _reader_error(error, text, file) from None
    except yaml.MarkedYAMLError as error:
        raise _syntax_error(error, file) from None
    except yaml.YAMLError as error:
        raise InputError(f"YAML syntax error: {error}", location=Location(file)) from None
    finally:
        for loader in loaders:
            loader.dispose()
