"""Documented per-generation link speeds, used where a machine's report gives a link count but no speed.

NCCL's and RCCL's topology dumps give the number of NVLink or xGMI links between two devices (``count``)
but not their speed: the runtimes fill it in from the GPU generation at start-up (and with their own
derated figures). ``nvidia-smi topo -m`` and ``rocm-smi --showtopo`` give neither. collc uses the
vendors' published peak figures instead, **per link and per direction** in GB/s (10^9 bytes/s), and every
import that relies on one prints it as an *assumption* next to its source:

* NVLink, by CUDA compute capability (the dump's ``sm``):

  - sm 60, P100, NVLink 1: 4 links, 160 GB/s bidirectional in all (NVIDIA Tesla P100 whitepaper)
    = 20 GB/s per link and direction;
  - sm 70, V100, NVLink 2: 6 links, 300 GB/s bidirectional (NVIDIA V100 datasheet) = 25 GB/s;
  - sm 80, A100, NVLink 3: 12 links, 600 GB/s bidirectional (NVIDIA A100 datasheet) = 25 GB/s;
  - sm 86, A40 / RTX A6000 bridge, NVLink 3: 4 links, 112.5 GB/s bidirectional (NVIDIA A40
    datasheet) = 14.0625 GB/s;
  - sm 90, H100 / H200, NVLink 4: 18 links, 900 GB/s bidirectional (NVIDIA H100 and H200
    datasheets) = 25 GB/s;
  - sm 100 / 103, B200 / B300, NVLink 5: 18 links, 1.8 TB/s bidirectional (NVIDIA Blackwell
    datasheets) = 50 GB/s.

* xGMI (AMD Infinity Fabric), by the dump's ``gcn`` architecture name ("Peak Infinity Fabric Link
  Bandwidth" in the AMD Instinct datasheets, a bidirectional figure):

  - gfx908, MI100: 92 GB/s per link = 46 GB/s per direction;
  - gfx90a, MI200 (MI210/MI250/MI250X): 100 GB/s = 50 GB/s;
  - gfx940/941/942, MI300 (MI300A/MI300X/MI325X): 128 GB/s = 64 GB/s.

* PCIe, by the signalling rate each device reports (the dump's ``link_speed``) and its ``link_width``:
  rate x lanes / 8 GB/s per direction, the PCI-SIG headline figure (a Gen4 x16 link is 32 GB/s, a Gen5
  x16 link 64 GB/s; line encoding is not subtracted, as in the shipped presets).

* GPU models by PCI device id (for the metadata: the GPU model and its SM or CU count, the threadblock
  budget), from the vendors' datasheets: A100 SXM 108 SMs, H100 SXM and H200 132 SMs, B200 148 SMs.
  AMD dumps give the CU count themselves (RCCL writes it into ``sm``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

from collc.topology.summary import format_gbps


@dataclass(frozen=True)
class LinkSpeed:
    """A documented per-link speed: GB/s per direction, the technology it applies to, and its source."""

    gbps: Fraction
    technology: str
    source: str

    def describe(self) -> str:
        """One line for the import report and the YAML header: figure, what it is, where it comes from."""
        return f"{self.technology}: {format_gbps(self.gbps)} GB/s per link and direction ({self.source})"


@dataclass(frozen=True)
class GpuModel:
    """A GPU model: its name, SMs or CUs (the threadblock budget), and for the text fallbacks, which
    name no link speeds, its GPU-to-GPU link and the PCIe generation of its host link."""

    name: str
    sms: int
    link: LinkSpeed | None = None
    pcie_generation: int | None = None


NVLINK_BY_SM: dict[int, LinkSpeed] = {
    60: LinkSpeed(Fraction(20), "NVLink 1 (sm 60, P100)", "P100 whitepaper: 4 links, 160 GB/s bidirectional"),
    70: LinkSpeed(Fraction(25), "NVLink 2 (sm 70, V100)", "V100 datasheet: 6 links, 300 GB/s bidirectional"),
    80: LinkSpeed(Fraction(25), "NVLink 3 (sm 80, A100)", "A100 datasheet: 12 links, 600 GB/s bidirectional"),
    86: LinkSpeed(
        Fraction(225, 16), "NVLink 3 bridge (sm 86, A40)", "A40 datasheet: 4 links, 112.5 GB/s bidirectional"
    ),
    90: LinkSpeed(
        Fraction(25), "NVLink 4 (sm 90, H100/H200)", "H100/H200 datasheets: 18 links, 900 GB/s bidirectional"
    ),
    100: LinkSpeed(
        Fraction(50), "NVLink 5 (sm 100, B200)", "Blackwell datasheets: 18 links, 1.8 TB/s bidirectional"
    ),
    103: LinkSpeed(
        Fraction(50), "NVLink 5 (sm 103, B300)", "Blackwell datasheets: 18 links, 1.8 TB/s bidirectional"
    ),
}

_MI100 = LinkSpeed(Fraction(46), "xGMI (gfx908, MI100)", "MI100 datasheet: 92 GB/s peak per link")
_MI200 = LinkSpeed(Fraction(50), "xGMI (gfx90a, MI200)", "MI250X datasheet: 100 GB/s peak per link")
_MI300 = LinkSpeed(Fraction(64), "xGMI (gfx94x, MI300)", "MI300X datasheet: 128 GB/s peak per link")
#: RCCL's architecture names (older dumps write the numbers 908, 910, 940-942; RCCL maps them the same way)
XGMI_BY_ARCH: dict[str, LinkSpeed] = {
    "gfx908": _MI100,
    "908": _MI100,
    "gfx90a": _MI200,
    "910": _MI200,
    "gfx940": _MI300,
    "940": _MI300,
    "gfx941": _MI300,
    "941": _MI300,
    "gfx942": _MI300,
    "942": _MI300,
}

#: PCIe signalling rates as Linux reports them (sysfs ``max_link_speed``, which NCCL copies), GT/s per lane
_PCIE_RATE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*GT/s(?:\s+PCIe)?\s*\Z")
_PCIE_GENERATIONS = {
    Fraction(5, 2): 1,
    Fraction(5): 2,
    Fraction(8): 3,
    Fraction(16): 4,
    Fraction(32): 5,
    Fraction(64): 6,
}
#: GT/s per lane of each PCIe generation
PCIE_GT_PER_LANE: dict[int, Fraction] = {generation: rate for rate, generation in _PCIE_GENERATIONS.items()}

#: NVIDIA and AMD PCI device ids (the dump's ``device`` of the GPU's pci element) -> model
GPU_MODELS: dict[tuple[str, str], GpuModel] = {
    ("0x10de", "0x20b0"): GpuModel("A100", 108),
    ("0x10de", "0x20b2"): GpuModel("A100", 108),
    ("0x10de", "0x20b5"): GpuModel("A100", 108),
    ("0x10de", "0x2330"): GpuModel("H100", 132),
    ("0x10de", "0x2335"): GpuModel("H200", 132),
    ("0x10de", "0x2901"): GpuModel("B200", 148),
    ("0x1002", "0x740c"): GpuModel("MI250X", 110),
    ("0x1002", "0x740f"): GpuModel("MI250", 104),
    ("0x1002", "0x74a1"): GpuModel("MI300X", 304),
}

#: GPU models by name, for the text fallbacks (``--gpu-model``), whose matrices do not name the GPU
GPU_MODELS_BY_NAME: dict[str, GpuModel] = {
    model.name: model
    for model in (
        GpuModel("A100", 108, NVLINK_BY_SM[80], 4),
        GpuModel("H100", 132, NVLINK_BY_SM[90], 5),
        GpuModel("H200", 132, NVLINK_BY_SM[90], 5),
        GpuModel("B200", 148, NVLINK_BY_SM[100], 5),
        GpuModel("MI250", 104, _MI200, 4),
        GpuModel("MI300X", 304, _MI300, 5),
    )
}


def nvlink_speed(sm: int) -> LinkSpeed | None:
    """The NVLink generation's per-link speed for compute capability ``sm`` (e.g. 90), if documented."""
    return NVLINK_BY_SM.get(sm)


def xgmi_speed(arch: str) -> LinkSpeed | None:
    """The xGMI per-link speed for an RCCL architecture name (``gfx942``, ``gfx942:sramecc+:xnack-``)."""
    return XGMI_BY_ARCH.get(arch.split(":", 1)[0].strip().lower())


@dataclass(frozen=True)
class PcieLink:
    """A PCIe link as a device reports it: generation, lanes and the resulting GB/s per direction."""

    generation: int
    lanes: int

    @property
    def gbps(self) -> Fraction:
        return PCIE_GT_PER_LANE[self.generation] * self.lanes / 8

    def describe(self) -> str:
        return (
            f"PCIe Gen{self.generation} x{self.lanes}: {format_gbps(self.gbps)} GB/s per direction "
            "(PCI-SIG signalling rate x lanes / 8, encoding not subtracted)"
        )


def pcie_generation(link_speed: str) -> int | None:
    """The PCIe generation of a Linux link-speed text (``"16.0 GT/s PCIe"``, ``"8 GT/s"``), or None."""
    match = _PCIE_RATE.match(link_speed)
    if match is None:
        return None
    return _PCIE_GENERATIONS.get(Fraction(match.group(1)))


_NCCL_MODEL = "the figure NCCL's own topology model uses for this CPU"


def socket_link(vendor: str, family: int | None, model: int | None) -> LinkSpeed:
    """The socket-to-socket speed for a path that crosses CPU sockets (only PCIe-only boxes use one).

    No per-generation datasheet figure describes what GPU-to-GPU traffic gets through the CPUs' own
    interconnect, so collc takes the runtime's: NCCL's topology model gives 40 GB/s for Intel Emerald
    Rapids and later (family 6, model 0xCF+), 22 GB/s for Sapphire Rapids (0x8F+), 10 GB/s for Skylake
    (0x55+), 6 GB/s for older Intel, and 16 GB/s for AMD.
    """
    if vendor == "AuthenticAMD":
        return LinkSpeed(Fraction(16), "CPU socket link (AMD)", _NCCL_MODEL)
    if vendor == "GenuineIntel" and family == 6 and model is not None:
        for first_model, gbps, generation in (
            (0xCF, 40, "Emerald Rapids+"),
            (0x8F, 22, "Sapphire Rapids"),
            (0x55, 10, "Skylake+"),
        ):
            if model >= first_model:
                return LinkSpeed(Fraction(gbps), f"CPU socket link (Intel {generation})", _NCCL_MODEL)
    return LinkSpeed(Fraction(6), f"CPU socket link ({vendor or 'unknown CPU'})", _NCCL_MODEL)
