"""Writing a topology out: the flat interchange form (YAML), JSON and Graphviz DOT.

The flat form lists every node and link with literal names (the fixed keys of the format: ``nodes``
of ``{name, kind}`` and ``links`` of ``{src, dst, bandwidth}`` with optional ``rank``, ``latency``,
``directed``; collc also writes ``class``, ``box`` and ``role`` so nothing is lost) and reads back to
the same topology. JSON carries the same document (YAML is a superset of JSON, so it reads back too).
Numbers are exact: integers and finite decimals are written as numbers, other fractions as ``"p/q"``,
which the reader evaluates exactly.
"""

from __future__ import annotations

import json
import re
from fractions import Fraction
from typing import Any

import yaml

from collc.topology.model import Link, Metadata, Node, Topology

EXPORT_FORMATS = ("flat", "json", "dot")


def exact_number(value: Fraction) -> int | float | str:
    """An integer, a float whose shortest repr is the exact decimal, or the text ``"p/q"``."""
    if value.denominator == 1:
        return value.numerator
    denominator = value.denominator
    for factor in (2, 5):
        while denominator % factor == 0:
            denominator //= factor
    if denominator == 1 and Fraction(repr(float(value))) == value:
        return float(value)
    return f"{value.numerator}/{value.denominator}"


def _metadata_document(metadata: Metadata) -> dict[str, Any]:
    document: dict[str, Any] = {}
    if metadata.gpu_model is not None:
        document["gpu_model"] = metadata.gpu_model
    if metadata.sms_per_gpu is not None:
        document["sms_per_gpu"] = metadata.sms_per_gpu
    if metadata.runtime is not None:
        document["runtime"] = metadata.runtime
    if metadata.default_latency_us:
        document["default_latency_us"] = {
            key: exact_number(value) for key, value in sorted(metadata.default_latency_us.items())
        }
    return document


def _node_document(node: Node, rank: int | None) -> dict[str, Any]:
    document: dict[str, Any] = {"name": node.name, "kind": node.kind}
    if rank is not None:
        document["rank"] = rank
    if node.box is not None:
        document["box"] = node.box
    if node.role is not None:
        document["role"] = node.role
    return document


def _link_document(link: Link) -> dict[str, Any]:
    document: dict[str, Any] = {"src": link.src, "dst": link.dst, "bandwidth": exact_number(link.bandwidth)}
    if link.latency_us is not None:
        document["latency"] = exact_number(link.latency_us)
    if link.directed:
        document["directed"] = True
    if link.link_class is not None:
        document["class"] = link.link_class
    return document


def flat_document(topology: Topology) -> dict[str, Any]:
    """The flat form as plain data. ``rank`` is written only when it differs from GPU list order."""
    gpus_in_list_order = tuple(node.name for node in topology.nodes if node.kind == "gpu")
    explicit_ranks = gpus_in_list_order != topology.ranks
    document: dict[str, Any] = {"name": topology.name}
    if topology.description:
        document["description"] = topology.description
    metadata = _metadata_document(topology.metadata)
    if metadata:
        document["metadata"] = metadata
    document["nodes"] = [
        _node_document(node, topology.rank_of(node.name) if explicit_ranks and node.kind == "gpu" else None)
        for node in topology.nodes
    ]
    document["links"] = [_link_document(link) for link in topology.links]
    return document


_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_./\-]*$")


def _scalar(value: Any) -> str:
    """A YAML scalar: plain when it reads back as the same string, else double-quoted (JSON syntax)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value)
    if _PLAIN.match(text) and yaml.safe_load(text) == text:
        return text
    return json.dumps(text)


def _flow(value: Any) -> str:
    """One YAML value on a single line (mappings in flow style)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}: {_flow(item)}" for key, item in value.items()) + "}"
    return _scalar(value)


def to_flat_yaml(topology: Topology) -> str:
    """The flat form as YAML: one node or link per line, in the topology's order."""
    document = flat_document(topology)
    lines = [f"# flat form of {topology.name}, written by `collc topo export --format flat`"]
    for key in ("name", "description", "metadata"):
        if key in document:
            lines.append(f"{key}: {_flow(document[key])}")
    for key in ("nodes", "links"):
        lines.append(f"{key}:")
        lines.extend(f"  - {_flow(item)}" for item in document[key])
    return "\n".join(lines) + "\n"


def to_json(topology: Topology) -> str:
    return json.dumps(flat_document(topology), indent=2) + "\n"


def _dot_id(name: str) -> str:
    return json.dumps(name)


_DOT_SHAPES = {"gpu": "box", "switch": "ellipse", "nic": "hexagon"}


def to_dot(topology: Topology) -> str:
    """Graphviz DOT: boxes as clusters, full-duplex links as two-headed edges labelled in GB/s."""
    lines = [f"digraph {_dot_id(topology.name)} {{", "  node [fontsize=10];", "  edge [fontsize=8];"]
    boxes: dict[int, list[Node]] = {}
    for node in topology.nodes:
        if node.box is not None:
            boxes.setdefault(node.box, []).append(node)

    def node_line(node: Node) -> str:
        label = f"{node.name}\\nrank {topology.rank_of(node.name)}" if node.kind == "gpu" else node.name
        return f'{_dot_id(node.name)} [shape={_DOT_SHAPES[node.kind]}, label="{label}"];'

    for box in sorted(boxes):
        lines.append(f'  subgraph "cluster_box{box}" {{')
        lines.append(f'    label="box {box}";')
        lines.extend(f"    {node_line(node)}" for node in boxes[box])
        lines.append("  }")
    lines.extend(f"  {node_line(node)}" for node in topology.nodes if node.box is None)
    for link in topology.links:
        label = f"{exact_number(link.bandwidth)} GB/s" + (f" {link.link_class}" if link.link_class else "")
        direction = "" if link.directed else ", dir=both"
        lines.append(f'  {_dot_id(link.src)} -> {_dot_id(link.dst)} [label="{label}"{direction}];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def export(topology: Topology, fmt: str) -> str:
    """The topology in ``fmt`` (one of :data:`EXPORT_FORMATS`)."""
    writers = {"flat": to_flat_yaml, "json": to_json, "dot": to_dot}
    return writers[fmt](topology)
