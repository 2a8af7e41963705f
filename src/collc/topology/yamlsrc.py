"""YAML reading that keeps the line:column of every value, for located error messages.

PyYAML's composer gives every node a start mark; :func:`read_yaml` turns the node tree into plain
Python values where mappings and sequences are :class:`LocatedMap` / :class:`LocatedList` (subclasses
of ``dict`` / ``list``) that remember where they and each of their values start. Numbers that YAML
reads as floats become exact :class:`fractions.Fraction` values parsed from their source text, so no
bandwidth ever passes through a binary float.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import yaml

from collc.errors import InputError, Location
from collc.input_limits import MAX_NESTING, MAX_YAML_VALUES


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
            return Fraction(text)
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


def _expanded_size(
    node: yaml.Node, file: str | None, sizes: dict[int, int], active: tuple[int, ...] = ()
) -> int:
    """How many values ``node`` becomes once every alias is expanded, without expanding anything.

    PyYAML composes an alias as a second reference to the node it names, so a chain of aliases (an
    "alias bomb") is small as nodes and huge as values; ``sizes`` memoises each node's count. Cycles
    and nesting deeper than :data:`MAX_NESTING` are refused here, before any value is built.
    """
    if isinstance(node, yaml.ScalarNode):
        return 1
    if id(node) in sizes:
        return sizes[id(node)]
    if id(node) in active:
        raise InputError("a YAML alias refers to a value that contains it", location=_location(node, file))
    if len(active) >= MAX_NESTING:
        raise _too_deep(_location(node, file))
    inner = (*active, id(node))
    children = node.value if isinstance(node, yaml.SequenceNode) else [n for pair in node.value for n in pair]
    size = 1 + sum(_expanded_size(child, file, sizes, inner) for child in children)
    if size > MAX_YAML_VALUES:
        raise InputError(
            f"the YAML document expands to more than {MAX_YAML_VALUES:,} values",
            location=_location(node, file),
            hint="aliases (*name) repeat the whole value they name; write the topology with templates "
            "and counts instead",
        )
    sizes[id(node)] = size
    return size


def _convert(loader: yaml.SafeLoader, node: yaml.Node, file: str | None) -> Any:
    """Plain located values for ``node`` (checked by :func:`_expanded_size` first)."""
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

    The document is composed into nodes first (PyYAML keeps one node per alias, however often it is
    used), then converted with a budget of values and a nesting limit (:mod:`collc.input_limits`).
    """
    loader: yaml.SafeLoader | None = None
    try:
        loader = _LOADER(text)
        root = loader.get_single_node()
        if root is None:
            return None
        _expanded_size(root, file, {})
        return _convert(loader, root, file)
    except yaml.reader.ReaderError as error:
        raise _reader_error(error, text, file) from None
    except yaml.MarkedYAMLError as error:
        raise _syntax_error(error, file) from None
    except yaml.YAMLError as error:
        raise InputError(f"YAML syntax error: {error}", location=Location(file)) from None
    except RecursionError:  # PyYAML's composer recurses once per nesting level
        raise _too_deep(Location(file)) from None
    finally:
        if loader is not None:
            loader.dispose()
