"""Stage 1: topology description -> :class:`Topology`."""

from collc.topology.model import NODE_KINDS, Link, Metadata, Node, NodeKind, Topology

__all__ = ["NODE_KINDS", "Link", "Metadata", "Node", "NodeKind", "Topology"]
