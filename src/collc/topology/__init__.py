"""Stage 1: topology description -> :class:`Topology`.

:func:`load` reads a topology file or a shipped preset (format: ``docs/topology-format.md``);
:func:`list_presets` lists the presets.
"""

from collc.topology.loader import TopologyWarning, parse_topology
from collc.topology.model import NODE_KINDS, Link, Metadata, Node, NodeKind, Topology
from collc.topology.presets import list_presets, load, presets_dir

__all__ = [
    "NODE_KINDS",
    "Link",
    "Metadata",
    "Node",
    "NodeKind",
    "Topology",
    "TopologyWarning",
    "list_presets",
    "load",
    "parse_topology",
    "presets_dir",
]
