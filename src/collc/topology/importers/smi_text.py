"""The fallback: a box from ``nvidia-smi topo -m`` or ``rocm-smi --showtopo``.

These matrices say how each pair of devices is joined but neither names the GPU model nor any speed,
so ``--gpu-model`` is required (it gives the per-link NVLink or xGMI speed and the PCIe generation,
see :mod:`.speeds`), and what the text cannot say is an assumption in the report:

* ``nvidia-smi topo -m``: entry ``NV#`` is # bonded NVLinks between two GPUs. When every pair of a
  group of three or more GPUs (with no link out of the group) shows the same ``NV#``, the links go
  through NVSwitches (no GPU has links to every other GPU), so each GPU of the group gets # links to
  one switch vertex of the group (:func:`_switch_groups`). ``PIX`` < ``PXB`` < ``PHB`` < ``NODE`` <
  ``SYS`` rank how far a NIC is from a GPU; each GPU uses its nearest NICs. NIC speeds are not shown
  (``--nic-speed``).
* ``rocm-smi --showtopo``: the "Link Type between two GPUs" table; ``XGMI`` pairs are taken as one
  xGMI link each (the tool prints no link counts; the RCCL dump has them). No NICs are shown.

Without NVLink or xGMI the GPUs share one PCIe switch vertex at the model's PCIe x16 speed (the text
gives no PCIe tree). Without NICs, ``--nic-speed`` gives each GPU a NIC of that speed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from collc.errors import InputError, Location
from collc.topology.importers import speeds
from collc.topology.importers.model import MAX_LINKS, BoxLink, ImportedBox, Nic, even_share
from collc.topology.importers.options import ReadOptions
from collc.topology.summary import format_gbps

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_NVLINK = re.compile(r"NV(\d{1,4})\Z")
_NVIDIA_HEADER = re.compile(r"^\s*GPU0\tGPU1\t", re.MULTILINE)  # the table's header, its legend cut off
#: nvidia-smi's PCIe distances, nearest first
_PCIE_DISTANCES = ("PIX", "PXB", "PHB", "NODE", "SYS")
_DEVICE = re.compile(r"(GPU\d+|NIC\d+|mlx5_\d+|[a-z]+\d+(?:_\d+)?)\Z")


@dataclass(frozen=True)
class _Matrix:
    """A device matrix: names in column order, and each row's cells with the row's line number."""

    names: tuple[str, ...]
    cells: dict[str, tuple[str, ...]]
    lines: dict[str, int]


def read_smi_text(text: str, file: str, options: ReadOptions) -> ImportedBox:
    """The box that an ``nvidia-smi topo -m`` or ``rocm-smi --showtopo`` text describes."""
    text = _ANSI.sub("", text)
    if "Link Type between two GPUs" in text:
        return _rocm(text, file, options)
    if re.search(r"^\s*GPU0\b", text, re.MULTILINE) and ("Legend" in text or _NVIDIA_HEADER.search(text)):
        return _nvidia(text, file, options)
    raise InputError(
        "not a topology dump, nvidia-smi topo -m or rocm-smi --showtopo text",
        location=Location(file, 1, 1),
        hint="give NCCL_TOPO_DUMP_FILE's XML (best), or the output of one of those commands",
    )


def _model(file: str, options: ReadOptions, what: str) -> speeds.GpuModel:
    known = ", ".join(speeds.GPU_MODELS_BY_NAME)
    if options.gpu_model is None:
        raise InputError(
            f"{what} names no GPU model, so no link speed",
            location=Location(file),
            hint=f"give --gpu-model (one of {known}), or import the NCCL/RCCL topology dump instead",
        )
    model = speeds.GPU_MODELS_BY_NAME.get(options.gpu_model.upper())
    if model is None:
        raise InputError(f"unknown --gpu-model {options.gpu_model!r}", hint=f"use one of {known}")
    return model


def _nvidia(text: str, file: str, options: ReadOptions) -> ImportedBox:
    matrix = _nvidia_matrix(text, file)
    model = _model(file, options, "nvidia-smi topo -m")
    gpus = [name for name in matrix.names if name.startswith("GPU")]
    nics = [name for name in matrix.names if not name.startswith("GPU")]
    legend = dict(re.findall(r"^\s*(NIC\d+):\s*(\S+)\s*$", text, re.MULTILINE))
    counts: dict[tuple[int, int], int] = {}
    columns = [matrix.names.index(gpu) for gpu in gpus]
    for i, row in enumerate(gpus):
        for j, column in enumerate(columns):
            value = matrix.cells[row][column]
            if i == j:
                continue
            found = _NVLINK.match(value)
            if found and 1 <= int(found.group(1)) <= MAX_LINKS:
                counts[(i, j)] = int(found.group(1))
            elif value not in _PCIE_DISTANCES:
                expected = f"X, NV# (1 to {MAX_LINKS} links), PIX, PXB, PHB, NODE or SYS"
                raise _bad_cell(file, matrix.lines[row], value, expected)
    _check_symmetric(file, counts, lambda i: matrix.lines[gpus[i]])
    distances = {
        (i, k): _distance(file, matrix, gpu, nic) for i, gpu in enumerate(gpus) for k, nic in enumerate(nics)
    }
    return _box(
        file,
        model,
        len(gpus),
        counts,
        "nvlink",
        [legend.get(nic, nic) for nic in nics],
        distances,
        options,
        switched=True,
        notes=(),
    )


def _distance(file: str, matrix: _Matrix, gpu: str, nic: str) -> int:
    value = matrix.cells[gpu][matrix.names.index(nic)]
    if value not in _PCIE_DISTANCES:
        raise _bad_cell(file, matrix.lines[gpu], value, "PIX, PXB, PHB, NODE or SYS between a GPU and a NIC")
    return _PCIE_DISTANCES.index(value)


def _bad_cell(file: str, line: int, value: str, expected: str) -> InputError:
    shown = repr(value[:20]) + (f" (cut; {len(value)} characters)" if len(value) > 20 else "")
    return InputError(
        f"unknown matrix entry {shown}", location=Location(file, line), hint=f"expected {expected}"
    )


def _nvidia_matrix(text: str, file: str) -> _Matrix:
    lines = text.splitlines()
    header_index = next(i for i, line in enumerate(lines) if re.match(r"\s*GPU0\b", line))
    header = [cell.strip() for cell in lines[header_index].split("\t") if cell.strip()]
    names = tuple(name for name in header if _DEVICE.match(name) and "Affinity" not in name)
    _check_unique(file, names, header_index + 1)
    cells: dict[str, tuple[str, ...]] = {}
    where: dict[str, int] = {}
    for number, line in enumerate(lines[header_index + 1 :], start=header_index + 2):
        parts = [cell.strip() for cell in line.split("\t")]
        if not parts or parts[0] not in names:
            if parts and parts[0].startswith("Legend"):
                break
            continue
        if parts[0] in cells:
            raise InputError(
                f"{parts[0]} has a second row (the first is line {where[parts[0]]})",
                location=Location(file, number),
                hint="give the output of one nvidia-smi topo -m run, unedited",
            )
        if len(parts) < len(names) + 1:
            raise InputError(
                f"row {parts[0]} has {len(parts) - 1} entries for {len(names)} devices",
                location=Location(file, number),
                hint="give the output of nvidia-smi topo -m as printed (tab-separated)",
            )
        cells[parts[0]] = tuple(parts[1 : len(names) + 1])
        where[parts[0]] = number
    missing = [name for name in names if name not in cells]
    if missing:
        raise InputError(
            f"no row for {', '.join(missing)}",
            location=Location(file, header_index + 1),
            hint="give the whole output of nvidia-smi topo -m: the table is cut short",
        )
    return _Matrix(names, cells, where)


def _rocm(text: str, file: str, options: ReadOptions) -> ImportedBox:
    model = _model(file, options, "rocm-smi --showtopo")
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if "Link Type between two GPUs" in line)
    header = lines[start + 1].split()
    _check_unique(file, header, start + 2)
    counts: dict[tuple[int, int], int] = {}
    for number in range(start + 2, start + 2 + len(header)):
        parts = lines[number].split() if number < len(lines) else []
        if len(parts) != len(header) + 1 or parts[0] != header[number - start - 2]:
            raise InputError(
                f"expected the row of {header[number - start - 2]} with {len(header)} entries",
                location=Location(file, number + 1),
                hint="give the output of rocm-smi --showtopo as printed",
            )
        i = number - start - 2
        for j, value in enumerate(parts[1:]):
            if value == "XGMI":
                counts[(i, j)] = 1
            elif value not in ("0", "PCIE") or (value == "0") != (i == j):
                raise _bad_cell(file, number + 1, value, "0 on the diagonal, XGMI or PCIE")
    _check_symmetric(file, counts, lambda i: start + 3 + i)
    notes = ("rocm-smi prints no link counts: every XGMI pair is taken as one xGMI link",) if counts else ()
    return _box(file, model, len(header), counts, "xgmi", [], {}, options, switched=False, notes=notes)


def _check_unique(file: str, names: Sequence[str], line: int) -> None:
    """Every device heads one column: a name given twice would wire two devices as one."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InputError(
                f"the header names {name} twice",
                location=Location(file, line),
                hint="give the tool's output unedited",
            )
        seen.add(name)


def _check_symmetric(file: str, counts: dict[tuple[int, int], int], line_of: Callable[[int], int]) -> None:
    """A link joins two GPUs both ways: the matrix lists it in both rows with the same count (located
    at the later row's line)."""
    for (i, j), count in sorted(counts.items()):
        if counts.get((j, i)) != count:
            raise InputError(
                f"the matrix is not symmetric: GPU{i}-GPU{j} shows {count} link(s), GPU{j}-GPU{i} "
                f"{counts.get((j, i), 0)}",
                location=Location(file, line_of(max(i, j))),
                hint="give the tool's output unedited",
            )


def _box(
    file: str,
    model: speeds.GpuModel,
    size: int,
    counts: dict[tuple[int, int], int],
    link_class: str,
    nic_devices: Sequence[str],
    distances: dict[tuple[int, int], int],
    options: ReadOptions,
    *,
    switched: bool,
    notes: tuple[str, ...],
) -> ImportedBox:
    """The box from link counts between GPU indices and NIC distances, with the model's speeds."""
    assert model.link is not None and model.pcie_generation is not None
    gpus = tuple(f"gpu{i}" for i in range(size))
    link_speed = options.link_speed if options.link_speed is not None else model.link.gbps
    assumptions = [f"GPU model {model.name} (--gpu-model)"]
    if counts:
        assumptions.append(
            f"{link_class}: {format_gbps(link_speed)} GB/s per link and direction (--link-speed)"
            if options.link_speed is not None
            else model.link.describe()
        )
    pcie = speeds.PcieLink(model.pcie_generation, 16)
    links: list[BoxLink] = []
    switches: list[str] = []
    extra_notes = list(notes)
    groups = _switch_groups(size, counts) if switched else []
    for index, group in enumerate(groups):
        switch = "nvswitch" if len(groups) == 1 else f"nvswitch{index}"
        count = counts[(group[0], group[1])]
        links += [BoxLink(gpus[i], switch, link_speed, link_class, count) for i in group]
        switches.append(switch)
        if len(group) < size:
            extra_notes.append(
                f"GPU{group[0]}-GPU{group[-1]}: NV{count} between every pair of {len(group)} GPUs, taken "
                f"as {count} links from each GPU to an NVSwitch of their own ({switch})"
            )
    grouped = {i for group in groups for i in group}
    for (i, j), count in sorted(counts.items()):
        if i < j and not {i, j} <= grouped:
            links.append(BoxLink(gpus[i], gpus[j], link_speed, link_class, count))
    if size > 1 and not _joined(size, counts):
        links += [BoxLink(gpu, "pcie", pcie.gbps, "pcie") for gpu in gpus]
        switches.append("pcie")
        assumptions.append(pcie.describe())
        extra_notes.append(
            "the text gives no PCIe tree: GPUs not joined by GPU links share one PCIe switch vertex"
        )
    nics, nic_links = _nics(gpus, nic_devices, distances, options, pcie, assumptions)
    return ImportedBox(
        source=file,
        location=Location(file),
        gpus=gpus,
        switches=tuple(switches),
        links=tuple(links),
        nics=nics,
        nic_links=nic_links,
        global_ranks=None,
        gpu_model=model.name,
        sms_per_gpu=model.sms,
        runtime="rccl" if link_class == "xgmi" else "msccl-executor",
        assumptions=tuple(dict.fromkeys(assumptions)),
        notes=tuple(extra_notes),
    )


def _switch_groups(size: int, counts: dict[tuple[int, int], int]) -> list[tuple[int, ...]]:
    """The groups of three or more GPUs that show one ``NV#`` between every pair and no link out of
    the group: no GPU has links to every other GPU of a group of that size, so they go through an
    NVSwitch (module docstring). A whole box of 8 A100s is one group; two NVLink domains of 4 in one
    box are two (each GPU gets its ``#`` links once, not once per peer)."""
    neighbours: dict[int, set[int]] = {}
    for a, b in counts:
        neighbours.setdefault(a, set()).add(b)
    groups = []
    seen: set[int] = set()
    for first in range(size):
        if first in seen or first not in neighbours:
            continue
        group = tuple(sorted({first} | neighbours[first]))
        seen.update(group)
        members = set(group)
        complete = all(neighbours.get(i, set()) | {i} == members for i in group)
        if len(group) > 2 and complete and len({counts[(i, j)] for i in group for j in group if i != j}) == 1:
            groups.append(group)
    return groups


def _joined(size: int, counts: dict[tuple[int, int], int]) -> bool:
    """Whether the GPU links join all ``size`` GPUs (a search over the links, linear in them)."""
    neighbours: dict[int, list[int]] = {}
    for a, b in counts:
        neighbours.setdefault(a, []).append(b)
        neighbours.setdefault(b, []).append(a)
    seen = {0}
    queue = [0]
    while queue:
        for other in neighbours.get(queue.pop(), ()):
            if other not in seen:
                seen.add(other)
                queue.append(other)
    return len(seen) == size


def _nics(
    gpus: tuple[str, ...],
    devices: Sequence[str],
    distances: dict[tuple[int, int], int],
    options: ReadOptions,
    pcie: speeds.PcieLink,
    assumptions: list[str],
) -> tuple[tuple[Nic, ...], tuple[BoxLink, ...]]:
    """NICs with the GPUs that use them (nearest first); one NIC per GPU when the text shows none."""
    speed = options.nic_speed
    if speed is not None:
        assumptions.append(f"NIC speed: {format_gbps(speed)} GB/s per port and direction (--nic-speed)")
    if not devices:
        if speed is None:
            return (), ()
        assumptions.append("the text shows no NIC: one NIC per GPU (--nic-speed)")
        devices = [f"nic{i}" for i in range(len(gpus))]
        distances = {(i, k): 0 if i == k else 1 for i in range(len(gpus)) for k in range(len(devices))}
    assumptions.append(pcie.describe())
    nics = tuple(Nic(f"nic{k}", device, speed, "ib") for k, device in enumerate(devices))
    pairs: set[tuple[int, int]] = set()
    for i, chosen in _shares(len(gpus), len(devices), lambda i, k: distances[(i, k)]).items():
        pairs.update((i, k) for k in chosen)
    for k, chosen in _shares(len(devices), len(gpus), lambda k, i: distances[(i, k)]).items():
        pairs.update((i, k) for i in chosen)
    links = tuple(BoxLink(gpus[i], f"nic{k}", pcie.gbps, "pcie") for i, k in sorted(pairs))
    return nics, links


def _shares(own: int, others: int, distance: Callable[[int, int], int]) -> dict[int, list[int]]:
    """For each of ``own`` devices, the ``others`` it uses: the devices that see the same nearest
    ``others`` share them evenly (:func:`even_share`, in index order). Each distance is read once,
    so a table of G GPUs and N NICs costs G·N (it had been G²·N per side: 37 s for 400 GPUs)."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for a in range(own):
        row = [distance(a, b) for b in range(others)]
        best = min(row)
        groups.setdefault(tuple(b for b, d in enumerate(row) if d == best), []).append(a)
    return {
        a: even_share(index, len(group), list(near))
        for near, group in groups.items()
        for index, a in enumerate(group)
    }
