"""Read one node's NCCL or RCCL topology dump (``NCCL_TOPO_DUMP_FILE``) into a box.

The dump is the runtime's own view of the node: ``<system>`` holds one ``<cpu>`` per NUMA node, under it
the PCIe tree of ``<pci>`` elements (each with the ``link_speed`` and ``link_width`` of its own link to
its parent), a ``<gpu>`` inside its ``<pci>`` element and a ``<nic>`` with one ``<net>`` per network port.
collc reads the attributes the way the runtimes do:

* a ``<gpu>`` takes part only if it has a ``rank`` (the runtimes skip the others); ``dev`` is its device
  index, ``sm`` its CUDA compute capability (NVIDIA) or CU count (RCCL), ``gcn`` its AMD architecture;
* ``<nvlink>`` (NVIDIA) and ``<xgmi>`` (AMD) under a GPU are ``count`` links to the device with PCI
  address ``target`` of PCI class ``tclass``: a GPU (class ``0x03…``, or ``0x120000`` for AMD
  accelerators), an NVSwitch (``0x068000``: all NVSwitches of a node act as one switch, as the runtimes
  merge them) or the CPU (``0x068001``, which carries no GPU-to-GPU traffic and is left out). Each side
  lists its own links, so a link listed by one GPU only carries traffic one way;
* a ``<net>`` is one network port; ``speed`` is in Mb/s (a value of 0 or less means unknown); a ``net``
  attribute of 0 marks a device the network transport does not use.

NVLink and xGMI speeds are not in the dump: they come from :mod:`.speeds` (reported as assumptions).
GPU-to-GPU traffic uses NVLink or xGMI where every GPU has it. A box without either (or whose links leave
GPUs apart) uses its PCIe tree: CPUs and PCIe switches become switches, every device joins its parent
at its own link's speed, and CPU sockets join each other at the figure in :func:`.speeds.socket_link`.
Each GPU gets the NICs nearest to it in the PCIe tree (shared out evenly when a switch holds several
GPUs and NICs), over a link as fast as the slowest PCIe link on the way; a NIC that is no GPU's
nearest is left out (:func:`_serving`).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from fractions import Fraction

from collc.errors import InputError
from collc.topology.importers import speeds
from collc.topology.importers.model import MAX_LINKS, BoxLink, ImportedBox, Nic, even_share
from collc.topology.importers.options import ReadOptions
from collc.topology.importers.xmltree import XmlElement, parse_xml
from collc.topology.reach import adjacency, reachable
from collc.topology.summary import format_gbps

KNOWN_TAGS = frozenset({"system", "cpu", "pci", "pcilink", "gpu", "nic", "net", "nvlink", "xgmi", "c2c"})
#: where each element may appear (its parent's tag)
_PARENTS = {
    "cpu": {"system"},
    "pci": {"system", "cpu", "pci"},
    "pcilink": {"pci"},
    "gpu": {"pci"},
    "nic": {"system", "cpu", "pci"},
    "net": {"nic"},
    "nvlink": {"gpu"},
    "xgmi": {"gpu"},
    "c2c": {"gpu"},
}
NVSWITCH_CLASS = "0x068000"
CPU_CLASS = "0x068001"
_GPU_CLASSES = ("0x03", "0x120000")
#: the fastest NIC port shipping is 800 Gb/s; a figure far above is a driver's placeholder
MAX_NIC_MBPS = 3_200_000
_HEX = re.compile(r"0x[0-9a-fA-F]+\Z")
_INTEGER = re.compile(r"-?[0-9]+\Z")
_BUS_ID = re.compile(r"(?:[0-9a-fA-F]{1,8}:)?[0-9a-fA-F]{1,2}:[0-9a-fA-F]{1,2}\.[0-9a-fA-F]\Z")


@dataclass(frozen=True)
class _Gpu:
    element: XmlElement
    rank: int
    bus_id: int | None
    name: str = ""


@dataclass(frozen=True)
class _Port:
    element: XmlElement
    dev: int


@dataclass
class _Notes:
    assumptions: list[str]
    notes: list[str]

    def assume(self, text: str) -> None:
        if text not in self.assumptions:
            self.assumptions.append(text)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)


def _fail(message: str, element: XmlElement, hint: str | None = None) -> InputError:
    return InputError(f"{element.describe()}: {message}", location=element.location, hint=hint)


def _integer(element: XmlElement, key: str, *, required: bool = True) -> int | None:
    text = element.attributes.get(key)
    if text is None or text.strip() == "":
        if required:
            raise _fail(f"the '{key}' attribute is missing", element, "NCCL and RCCL always write it")
        return None
    text = text.strip()
    if _INTEGER.match(text) and len(text) <= 19:
        return int(text)
    if _HEX.match(text) and len(text) <= 18:
        return int(text, 16)
    if _INTEGER.match(text) or _HEX.match(text):
        raise _fail(
            f"'{key}' is out of range: {text[:40]!r} has {len(text)} digits",
            element,
            "NCCL and RCCL write it as a small number; take the dump again",
        )
    raise _fail(
        f"'{key}' must be an integer, got {text[:40]!r}",
        element,
        "NCCL and RCCL write it in decimal or 0x hex",
    )


def _bus_id(element: XmlElement, key: str) -> int:
    """A PCI address as a number, as the runtimes compare them: ``0000:1b:00.0`` and NVML's
    ``00000000:1B:00.0`` are the same device (the hex digits are read, the separators skipped)."""
    text = element.attributes.get(key, "").strip()
    if not _BUS_ID.match(text):
        raise _fail(f"'{key}' must be a PCI address such as 0000:07:00.0, got {text[:40]!r}", element)
    return int(re.sub(r"[:.]", "", text), 16)


def read_nccl_xml(text: str, file: str, options: ReadOptions) -> ImportedBox:
    """The box that a topology dump describes; located :class:`InputError` for anything wrong in it."""
    root = parse_xml(text, file)
    if root.tag != "system":
        hint = "this is a graph dump (NCCL_GRAPH_DUMP_FILE)" if root.tag == "graphs" else None
        raise _fail(
            "a topology dump starts with <system>", root, hint or "give the file NCCL_TOPO_DUMP_FILE wrote"
        )
    elements = root.walk()
    for element in elements[1:]:
        _check_placement(element)
    notes = _Notes([], [])
    gpus = _gpus(elements, notes)
    amd = any("gcn" in gpu.element or _links_of(gpu.element, "xgmi") for gpu in gpus)
    links, switches, fabric_gpus = _gpu_fabric(gpus, amd, options, notes)
    ports = _ports(elements, notes)
    joined = len(gpus) <= 1 or _connected([gpu.name for gpu in gpus], links)
    if joined:  # NICs attach to their nearest GPUs (else to the PCIe tree that joins the GPUs)
        ports = _serving(ports, gpus, notes)
    nics = tuple(_nic(index, port, options, notes) for index, port in enumerate(ports))
    if nics:
        ports_text = ", ".join(
            f"{nic.device} {format_gbps(nic.speed_gbps)} GB/s" if nic.speed_gbps else nic.device
            for nic in nics
        )
        notes.assume(f"every network port a GPU uses is on the fabric: {ports_text}")
    tree = _PcieTree(root, gpus, ports, notes)
    if not joined:
        if fabric_gpus:
            notes.note("NVLink/xGMI leave some GPUs apart: the PCIe tree joins them")
        tree_links, tree_switches = tree.gpu_links()
        links += tree_links
        switches += tree_switches
        nic_links = tree.nic_links_in_tree()
    else:
        nic_links = tree.nic_links_to_gpus()
    model = _gpu_model(gpus[0], amd)
    if model is None and not amd:
        device = gpus[0].element.parent.attributes.get("device", "?")  # type: ignore[union-attr]
        notes.note(f"GPU device {device} is not in collc's table: the file gives no model and SM count")
    return ImportedBox(
        source=file,
        location=root.location,
        gpus=tuple(gpu.name for gpu in gpus),
        switches=tuple(switches),
        links=tuple(links),
        nics=nics,
        nic_links=tuple(nic_links),
        global_ranks=tuple(gpu.rank for gpu in gpus),
        gpu_model=model.name if model else None,
        sms_per_gpu=_sms(gpus[0], amd, model),
        runtime="rccl" if amd else "msccl-executor",
        assumptions=tuple(notes.assumptions),
        notes=tuple(notes.notes),
    )


def _check_placement(element: XmlElement) -> None:
    if element.tag not in KNOWN_TAGS:
        raise _fail(
            f"unknown element <{element.tag}>",
            element,
            "a topology dump holds " + ", ".join(f"<{tag}>" for tag in sorted(KNOWN_TAGS)),
        )
    parent = element.parent
    assert parent is not None
    if parent.tag not in _PARENTS[element.tag]:
        raise _fail(f"<{element.tag}> cannot be inside <{parent.tag}>", element)


def _links_of(gpu: XmlElement, tag: str) -> list[XmlElement]:
    return [child for child in gpu.children if child.tag == tag]


def _gpus(elements: list[XmlElement], notes: _Notes) -> list[_Gpu]:
    """The GPUs that take part (those with a rank), in rank order, named gpu0, gpu1, … in that order."""
    found: dict[int, _Gpu] = {}
    for element in elements:
        if element.tag != "gpu":
            continue
        rank = _integer(element, "rank", required=False)
        if rank is None:
            notes.note(
                f"{element.describe()} (line {element.location.line}) has no rank: left out (as by NCCL)"
            )
            continue
        if rank < 0:
            raise _fail(f"rank must be >= 0, got {rank}", element, "NCCL numbers the ranks from 0")
        if rank in found:
            raise _fail(
                f"rank {rank} is given twice (first at line {found[rank].element.location.line})",
                element,
                "one dump is one process's view of its box: every GPU has its own rank",
            )
        _integer(element, "dev")  # each rank's own device number: all 0 where every process sees one GPU
        pci = element.parent
        bus_id = _bus_id(pci, "busid") if pci is not None and "busid" in pci else None
        twin = next((gpu for gpu in found.values() if bus_id is not None and gpu.bus_id == bus_id), None)
        if twin is not None:
            raise _fail(
                f"busid {pci.attributes['busid'].strip()} is given twice (first at line "
                f"{twin.element.location.line}): links name their peers by it",
                pci,
                "every GPU sits at its own PCI address; take the dump again",
            )
        found[rank] = _Gpu(element, rank, bus_id)
    if not found:
        raise InputError(
            "the dump lists no GPU with a rank",
            location=elements[0].location,
            hint="take the dump from a running communicator (NCCL_TOPO_DUMP_FILE set before it starts)",
        )
    return [
        _Gpu(gpu.element, gpu.rank, gpu.bus_id, f"gpu{index}")
        for index, gpu in enumerate(found[rank] for rank in sorted(found))
    ]


def _link_speed(gpu: _Gpu, tag: str, link: XmlElement, options: ReadOptions, notes: _Notes) -> Fraction:
    """The per-link speed of ``link`` (an <nvlink> or <xgmi>): ``--link-speed``, else the documented one."""
    if options.link_speed is not None:
        notes.assume(f"{tag}: {format_gbps(options.link_speed)} GB/s per link and direction (--link-speed)")
        return options.link_speed
    if tag == "xgmi":
        arch = gpu.element.attributes.get("gcn", "")
        speed = speeds.xgmi_speed(arch)
        known = "gfx908, gfx90a, gfx940-gfx942"
        what = f"gcn={arch!r}"
    else:
        sm = _integer(gpu.element, "sm")
        speed = speeds.nvlink_speed(sm) if sm is not None else None
        known = ", ".join(str(sm) for sm in speeds.NVLINK_BY_SM)
        what = f"sm={sm}"
    if speed is None:
        raise _fail(
            f"no documented {tag} speed for {what}",
            link,
            f"collc knows {known}; give the per-link speed with --link-speed GB/s",
        )
    notes.assume(speed.describe())
    return speed.gbps


def _gpu_fabric(
    gpus: list[_Gpu], amd: bool, options: ReadOptions, notes: _Notes
) -> tuple[list[BoxLink], list[str], set[str]]:
    """NVLink/xGMI links between the GPUs and to one NVSwitch vertex; the GPUs that have any."""
    by_bus = {gpu.bus_id: gpu for gpu in gpus if gpu.bus_id is not None}
    switch_links: dict[str, int] = defaultdict(int)
    switch_speed: dict[str, Fraction] = {}
    arcs: dict[tuple[str, str], tuple[int, Fraction, str]] = {}
    having: set[str] = set()
    for gpu in gpus:
        for link in gpu.element.children:
            if link.tag not in ("nvlink", "xgmi"):
                if link.tag == "c2c":
                    notes.note("<c2c> (GPU-CPU) links carry no GPU-to-GPU traffic: left out")
                continue
            count = _integer(link, "count")
            assert count is not None
            if count < 1 or count > MAX_LINKS:
                raise _fail(
                    f"count must be 1 to {MAX_LINKS} links, got {count}",
                    link,
                    "NCCL writes how many links join the GPU to that peer",
                )
            target_class = link.attributes.get("tclass", "").strip().lower()
            link_class = "nvlink" if link.tag == "nvlink" else "xgmi"
            if target_class.startswith(NVSWITCH_CLASS):
                switch_links[gpu.name] += count
                switch_speed[gpu.name] = _link_speed(gpu, link.tag, link, options, notes)
                having.add(gpu.name)
            elif target_class.startswith(CPU_CLASS):
                notes.note(f"<{link.tag}> links to the CPU carry no GPU-to-GPU traffic: left out")
            elif target_class.startswith(_GPU_CLASSES):
                target = by_bus.get(_bus_id(link, "target"))
                if target is None:
                    notes.note(
                        f"{gpu.name}: {link.tag} to {link.attributes['target']} (not in the dump) left out"
                    )
                    continue
                if target is gpu:  # a VM's passthrough GPU (Azure NC A100 v4): NCCL adds a loop, unused
                    notes.note(f"{gpu.name}: <{link.tag}> to its own bus id carries nothing: left out")
                    continue
                key = (gpu.name, target.name)
                previous = arcs.get(key, (0, Fraction(0), link_class))[0]
                arcs[key] = (previous + count, _link_speed(gpu, link.tag, link, options, notes), link_class)
                having.update(key)
            else:
                raise _fail(
                    f"unknown target class tclass={target_class!r}",
                    link,
                    f"known: GPU (0x03…, 0x120000), NVSwitch ({NVSWITCH_CLASS}), CPU ({CPU_CLASS})",
                )
    links = [
        BoxLink(name, "nvswitch", switch_speed[name], "xgmi" if amd else "nvlink", count)
        for name, count in sorted(switch_links.items(), key=lambda item: _index(item[0]))
    ]
    links += _pair_links(arcs)
    if len(gpus) == 1:
        if switch_links:
            notes.note("one GPU in the dump: its NVSwitch links have no peer in the box and are left out")
        return [], [], set()
    if having and len(having) < len(gpus):
        lonely = next(gpu for gpu in gpus if gpu.name not in having)
        raise _fail(
            f"this GPU (rank {lonely.rank}) has no NVLink or xGMI link, while {len(having)} other GPU(s) do",
            lonely.element,
            "a GPU whose links are down: check the node (nvidia-smi nvlink -s), or take the dump again",
        )
    return links, ["nvswitch"] if switch_links else [], having


def _pair_links(arcs: dict[tuple[str, str], tuple[int, Fraction, str]]) -> list[BoxLink]:
    """Full-duplex links where both GPUs list the same links to each other, directed ones otherwise."""
    links = []
    for (src, dst), (count, speed, link_class) in sorted(arcs.items(), key=lambda item: _pair_index(item[0])):
        reverse = arcs.get((dst, src))
        if reverse == (count, speed, link_class):
            if _index(src) < _index(dst):
                links.append(BoxLink(src, dst, speed, link_class, count))
        else:
            links.append(BoxLink(src, dst, speed, link_class, count, directed=True))
    return links


def _index(name: str) -> int:
    return int(re.sub(r"\D", "", name))


def _pair_index(pair: tuple[str, str]) -> tuple[int, int]:
    return _index(pair[0]), _index(pair[1])


def _connected(gpus: list[str], links: list[BoxLink]) -> bool:
    """Whether every GPU reaches every other over ``links`` (a directed link only one way)."""
    forward, backward = adjacency(links)
    return all(gpu in reachable(graph, gpus[0]) for graph in (forward, backward) for gpu in gpus)


def _ports(elements: list[XmlElement], notes: _Notes) -> list[_Port]:
    """The network ports the network transport uses, ordered by their ``dev`` index."""
    ports: dict[int, _Port] = {}
    for element in elements:
        if element.tag != "net":
            continue
        dev = _integer(element, "dev")
        assert dev is not None
        if _integer(element, "net", required=False) == 0:
            notes.note(f"network device {element.attributes.get('name', dev)} (not a network port) left out")
            continue
        if dev in ports:
            raise _fail(
                f"network dev {dev} is given twice (first at line {ports[dev].element.location.line})",
                element,
            )
        ports[dev] = _Port(element, dev)
    return [ports[dev] for dev in sorted(ports)]


def _nic(index: int, port: _Port, options: ReadOptions, notes: _Notes) -> Nic:
    element = port.element
    device = element.attributes.get("name", f"net{port.dev}")
    link_class = "ethernet" if re.match(r"(eth|en[opsx])", device) else "ib"
    if options.nic_speed is not None:
        notes.assume(f"NIC speed: {format_gbps(options.nic_speed)} GB/s per port and direction (--nic-speed)")
        return Nic(f"nic{index}", device, options.nic_speed, link_class)
    mbps = _integer(element, "speed", required=False)
    if mbps is not None and mbps < -1:  # -1 and 0: the driver knows no speed
        raise _fail(
            f"speed {mbps} Mb/s is negative",
            element,
            "give the real speed with --nic-speed, e.g. '400 Gb/s'",
        )
    if mbps is None or mbps <= 0:
        notes.note(f"NIC {device}: the dump gives no speed")
        return Nic(f"nic{index}", device, None, link_class, element.location)
    if mbps > MAX_NIC_MBPS:
        raise _fail(
            f"speed {mbps} Mb/s is not a NIC speed (the fastest ports run at 800 Gb/s)",
            element,
            "the driver reported a placeholder; give the real speed with --nic-speed, e.g. '400 Gb/s'",
        )
    return Nic(f"nic{index}", device, Fraction(mbps, 8000), link_class)


def _gpu_model(gpu: _Gpu, amd: bool) -> speeds.GpuModel | None:
    pci = gpu.element.parent
    if pci is None:
        return None
    vendor = pci.attributes.get("vendor", "0x1002" if amd else "0x10de").lower()
    return speeds.GPU_MODELS.get((vendor, pci.attributes.get("device", "").lower()))


def _sms(gpu: _Gpu, amd: bool, model: speeds.GpuModel | None) -> int | None:
    """RCCL writes the CU count into ``sm``; for NVIDIA ``sm`` is the compute capability."""
    if amd:
        return _integer(gpu.element, "sm", required=False)
    return model.sms if model else None


class _PcieTree:
    """The PCIe tree of the dump: bandwidth of each element's own link, and paths between devices."""

    def __init__(self, root: XmlElement, gpus: list[_Gpu], ports: list[_Port], notes: _Notes):
        self.root = root
        self.gpus = gpus
        self.ports = ports
        self.notes = notes
        self.cpus = [element for element in root.children if element.tag == "cpu"]
        #: every element that holds a GPU (elements hash by identity)
        self.with_gpu = {ancestor for gpu in gpus for ancestor in gpu.element.ancestors()}

    def bandwidth(self, element: XmlElement) -> Fraction | None:
        """GB/s of the link from ``element`` (a <pci>) to its parent; None where the dump does not say."""
        if element.tag != "pci":
            return None
        speed = element.attributes.get("link_speed", "").strip()
        if not speed:
            return None
        generation = speeds.pcie_generation(speed)
        if generation is None:  # the runtimes read such a link at a default speed; collc leaves it out
            line = element.location.line
            self.notes.note(f"PCIe link_speed {speed[:40]!r} (line {line}) not understood: ignored")
            return None
        lanes = _integer(element, "link_width", required=False) or 0
        if lanes == 0:
            lanes = 16
            self.notes.assume("a PCIe link_width of 0 (not readable) is taken as x16, as NCCL does")
        if lanes not in (1, 2, 4, 8, 16, 32):
            raise _fail(
                f"link_width {lanes} is not a PCIe width",
                element,
                "PCIe links have 1, 2, 4, 8, 16 or 32 lanes",
            )
        link = speeds.PcieLink(generation, lanes)
        self.notes.assume(link.describe())
        return link.gbps

    def _cpu_of(self, element: XmlElement) -> XmlElement | None:
        return next((a for a in [element, *element.ancestors()] if a.tag == "cpu"), None)

    def _socket(self, cpu: XmlElement | None) -> Fraction:
        attributes = cpu.attributes if cpu is not None else {}
        link = speeds.socket_link(
            attributes.get("vendor", ""),
            _integer(cpu, "familyid", required=False) if cpu is not None else None,
            _integer(cpu, "modelid", required=False) if cpu is not None else None,
        )
        self.notes.assume(link.describe())
        return link.gbps

    def path_bandwidth(self, a: XmlElement, b: XmlElement) -> Fraction | None:
        """The slowest known link on the tree path between two devices (None if none is known)."""
        up_a = [a, *a.ancestors()]
        up_b = [b, *b.ancestors()]
        common = next(element for element in up_a if element in up_b)
        on_path = up_a[: up_a.index(common)] + up_b[: up_b.index(common)]
        known = [value for value in map(self.bandwidth, on_path) if value is not None]
        if common.tag == "system" and self._cpu_of(a) is not self._cpu_of(b):
            known.append(self._socket(self._cpu_of(a)))
        return min(known) if known else None

    def nic_links_to_gpus(self) -> list[BoxLink]:
        """Each GPU to its nearest NICs and each NIC to its nearest GPUs, shared out by position.

        "Nearest" is the smallest part of the PCIe tree that holds both; the devices that share that part
        split the others evenly in address order (two GPUs and two NICs on one PCIe switch: one NIC
        each), so every GPU has a NIC and every NIC a GPU.
        """
        pairs = _nic_pairs([gpu.element for gpu in self.gpus], [port.element for port in self.ports])
        links = []
        for gpu_index, port_index in sorted(pairs):
            gpu, port = self.gpus[gpu_index], self.ports[port_index]
            path = self.path_bandwidth(gpu.element, port.element)
            bandwidth = self._or_default(path, f"{gpu.name}-nic{port_index}")
            links.append(BoxLink(gpu.name, f"nic{port_index}", bandwidth, "pcie"))
        for port_index in range(len(self.ports)):
            users = [self.gpus[g].name for g, p in sorted(pairs) if p == port_index]
            if len(users) > 1:
                self.notes.note(f"nic{port_index} is shared by {', '.join(users)}")
        return links

    def _tree_nodes(self) -> dict[XmlElement, str]:
        """Switch names for the CPUs and for the PCIe bridges that lead to a GPU."""
        names = {cpu: f"cpu{index}" for index, cpu in enumerate(self.cpus)}
        bridges = [
            e
            for e in self.root.walk()
            if e.tag == "pci" and e in self.with_gpu and not any(c.tag == "gpu" for c in e.children)
        ]
        names.update({bridge: f"pcisw{index}" for index, bridge in enumerate(bridges)})
        return names

    def _attach(
        self, element: XmlElement, names: dict[XmlElement, str]
    ) -> tuple[str | None, Fraction | None]:
        """The nearest tree node above ``element`` and the slowest known link on the way to it."""
        known: list[Fraction] = []
        node: XmlElement | None = element
        while node is not None and node not in names:
            value = self.bandwidth(node)
            if value is not None:
                known.append(value)
            node = node.parent
        if node is None:
            return None, None
        return names[node], min(known) if known else None

    def _or_default(self, bandwidth: Fraction | None, what: str) -> Fraction:
        """``bandwidth``, or PCIe Gen4 x16 (an assumption in the report) where the dump gives no speed."""
        if bandwidth is not None:
            return bandwidth
        default = speeds.PcieLink(4, 16)
        self.notes.assume(f"{what}: no PCIe speed in the dump, taken as {default.describe()}")
        return default.gbps

    def gpu_links(self) -> tuple[list[BoxLink], list[str]]:
        """The PCIe tree between the GPUs: CPUs and bridges as switches, CPU sockets fully joined."""
        names = self._tree_nodes()
        links = []
        for element in [e for e in self.root.walk() if e in names and e.tag == "pci"]:
            parent, between = self._attach(element.parent, names)  # type: ignore[arg-type]
            if parent is None:
                raise _fail("a PCIe switch outside every <cpu>", element)
            bandwidth = self._or_default(_slowest(self.bandwidth(element), between), names[element])
            links.append(BoxLink(names[element], parent, bandwidth, "pcie"))
        for gpu in self.gpus:
            parent, bandwidth = self._attach(gpu.element, names)
            if parent is None:
                raise _fail("a GPU outside every <cpu>", gpu.element)
            links.append(BoxLink(gpu.name, parent, self._or_default(bandwidth, gpu.name), "pcie"))
        for first, cpu in enumerate(self.cpus):
            for other in self.cpus[first + 1 :]:
                links.append(BoxLink(names[cpu], names[other], self._socket(cpu), "sys"))
        switches = sorted(set(names.values()), key=lambda name: (name.rstrip("0123456789"), _index(name)))
        return links, switches

    def nic_links_in_tree(self) -> list[BoxLink]:
        """Each NIC to the nearest CPU or PCIe switch of the tree, at the slowest link on the way."""
        names = self._tree_nodes()
        links = []
        for index, port in enumerate(self.ports):
            parent, bandwidth = self._attach(port.element, names)
            if parent is None:
                raise _fail("a network device outside every <cpu>", port.element)
            links.append(BoxLink(f"nic{index}", parent, self._or_default(bandwidth, f"nic{index}"), "pcie"))
        return links


def _slowest(*values: Fraction | None) -> Fraction | None:
    known = [value for value in values if value is not None]
    return min(known) if known else None


def _nic_pairs(gpu_elements: list[XmlElement], port_elements: list[XmlElement]) -> set[tuple[int, int]]:
    """(GPU, NIC) index pairs: each GPU to its nearest NICs and each NIC to its nearest GPUs that
    have no nearer NIC, shared out by position (:meth:`_PcieTree.nic_links_to_gpus`)."""
    gpu_homes = [_nearest_holder(element, port_elements) for element in gpu_elements]
    pairs: set[tuple[int, int]] = set()
    for own, others, gpu_side in (
        (gpu_elements, port_elements, True),
        (port_elements, gpu_elements, False),
    ):
        home = {index: _nearest_holder(element, others) for index, element in enumerate(own)}
        for index, holder in home.items():
            if holder is None:
                continue
            group = [i for i, h in home.items() if h is holder]
            near = [i for i, other in enumerate(others) if holder in other.ancestors()]
            if not gpu_side:  # the runtime gives a GPU its nearest NICs only
                near = [i for i in near if not _inside(gpu_homes[i], holder)]
                if not near:
                    continue
            for chosen in even_share(group.index(index), len(group), near):
                pairs.add((index, chosen) if gpu_side else (chosen, index))
    return pairs


def _serving(ports: list[_Port], gpus: list[_Gpu], notes: _Notes) -> list[_Port]:
    """The network ports some GPU uses (:func:`_nic_pairs`); the others are left out with a note: a
    NIC on the CPU root beside PCIe switches that each hold GPUs and their own NIC serves none of
    them (8x A100 with one NIC per switch pair and a ninth on the CPU), so counting it would credit
    the box a NIC that no GPU sends through."""
    used = {port for _, port in _nic_pairs([gpu.element for gpu in gpus], [port.element for port in ports])}
    for index, port in enumerate(ports):
        if index not in used:
            name = port.element.attributes.get("name", f"net{port.dev}")
            notes.note(
                f"NIC {name}: no GPU's nearest NIC (each has one under its own PCIe switch): left out, "
                "as NCCL gives a GPU its nearest NICs"
            )
    return [port for index, port in enumerate(ports) if index in used]


def _inside(part: XmlElement | None, whole: XmlElement) -> bool:
    """Whether ``part`` of the PCIe tree lies strictly inside ``whole``: a GPU whose nearest NIC sits
    in ``part`` does not use a NIC that only ``whole`` shares with it (a NIC on the CPU root, beside
    switches that each hold a GPU and its own NIC)."""
    return part is not None and part is not whole and whole in part.ancestors()


def _nearest_holder(element: XmlElement, others: list[XmlElement]) -> XmlElement | None:
    """The nearest element enclosing ``element`` that also encloses one of ``others``."""
    return next(
        (ancestor for ancestor in element.ancestors() if any(ancestor in o.ancestors() for o in others)), None
    )
