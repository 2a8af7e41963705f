"""``collc topo import``: topology files from what the machines report.

Readers turn one node's report into an :class:`ImportedBox` (:mod:`.nccl_xml` for NCCL/RCCL topology
dumps, :mod:`.smi_text` for ``nvidia-smi topo -m`` and ``rocm-smi --showtopo``); :mod:`.fabric` joins
boxes with a network and writes collc's template form. Figures a report lacks come from
:mod:`.speeds` and are listed as assumptions in the result.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from collc.topology.importers.fabric import NETWORKS, FabricOptions, ImportResult, combine
from collc.topology.importers.model import ImportedBox
from collc.topology.importers.nccl_xml import read_nccl_xml
from collc.topology.importers.options import ReadOptions
from collc.topology.importers.smi_text import read_smi_text
from collc.topology.importers.xmltree import read_input

__all__ = ["NETWORKS", "FabricOptions", "ImportResult", "ReadOptions", "import_files", "read_box"]


def read_box(text: str, shown_as: str, options: ReadOptions) -> ImportedBox:
    """One node's report, told apart by its first character: XML dumps start with ``<``."""
    if text.lstrip().startswith("<"):
        return read_nccl_xml(text, shown_as, options)
    return read_smi_text(text, shown_as, options)


def import_files(paths: Sequence[str], read: ReadOptions, fabric: FabricOptions) -> ImportResult:
    """The topology for ``paths``: one file used for every box, or one file per box (in box order)."""
    boxes = [read_box(read_input(Path(path), path), path, read) for path in paths]
    return combine(boxes, fabric)
