"""What an importer reads from one machine's report: one box, in collc's terms.

Every reader (:mod:`.nccl_xml`, :mod:`.smi_text`) turns its input into an :class:`ImportedBox`: the GPUs
in local rank order (``gpu0``, ``gpu1``, …), the switches and links that carry GPU-to-GPU traffic inside
the box, and the NICs with the links from the GPUs that use them. :mod:`.fabric` combines boxes with a
network into a topology file. Names are template-local; bandwidths are exact GB/s per direction.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from collc.errors import Location

#: The most parallel NVLink or xGMI links a report may give between two devices (an H100 has 18).
MAX_LINKS = 1024


@dataclass(frozen=True)
class BoxLink:
    """``count`` parallel links of ``bandwidth`` GB/s each between two nodes of the box; full duplex
    unless ``directed`` (then ``src`` to ``dst`` only)."""

    src: str
    dst: str
    bandwidth: Fraction
    link_class: str
    count: int = 1
    directed: bool = False

    @property
    def total(self) -> Fraction:
        return self.bandwidth * self.count


@dataclass(frozen=True)
class Nic:
    """A network port: its local name (``nic0``), the runtime's device name and speed (None: unknown)."""

    name: str
    device: str
    speed_gbps: Fraction | None
    link_class: str
    location: Location | None = None  # where the input names it (a dump's ``<net>`` line)


@dataclass(frozen=True)
class ImportedBox:
    """One machine as a box template.

    ``links`` join the GPUs inside the box (NVLink, xGMI, or a PCIe tree for boxes without either);
    ``nic_links`` join GPUs or PCIe switches to the NICs and exist only when the box has a network.
    ``global_ranks`` are the communicator ranks the report gives the GPUs, in local order (None if not
    all are known). ``assumptions`` are the figures not taken from the report; ``notes`` what was left out.
    """

    source: str
    location: Location
    gpus: tuple[str, ...]
    switches: tuple[str, ...]
    links: tuple[BoxLink, ...]
    nics: tuple[Nic, ...]
    nic_links: tuple[BoxLink, ...]
    global_ranks: tuple[int, ...] | None
    gpu_model: str | None
    sms_per_gpu: int | None
    runtime: str | None
    assumptions: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def shape(self) -> tuple[object, ...]:
        """Everything that must agree between the per-node files of one fabric."""
        return (self.gpus, self.switches, self.links, self.nics, self.nic_links, self.gpu_model)


def even_share(position: int, size: int, near: list[int]) -> list[int]:
    """Which of the ``near`` devices device ``position`` of ``size`` alike devices uses: its even share.

    Two GPUs and two NICs on one PCIe switch: one NIC each; two GPUs and one NIC: both use it; one GPU
    and two NICs: both NICs.
    """
    if len(near) >= size:
        return [near[j] for j in range(len(near)) if j * size // len(near) == position]
    return [near[position * len(near) // size]]
