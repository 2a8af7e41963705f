"""Benchmark: hand-written fabrics that are not presets, written flat, against item 3's targets.

Run: ``.venv/bin/python scripts/bench_fabrics.py [NAME ...] [--coll C ...]`` (about 5 minutes). Each
fabric is written as a user would write it by hand: GPUs, switches and NICs with no ``box``,
``role`` or link classes, so collc infers the boxes. The classes are the ones the presets do not
cover: PCIe servers with one or two NICs, with GPUs on the CPU's root ports, or with GPUs paired by
NVLink bridges, an 8-GPU ring whose two directions differ, a 4-GPU mesh of unequal links, 4 GPUs in a
line, 5 GPUs on a switch, NVSwitch boxes with fewer NICs than GPUs (12 GPUs; or NIC counts that
differ by box; or one NIC that a narrower PCIe link feeds), NVSwitch boxes under an oversubscribed
leaf-spine network or on rails with no spine (once more with one GPU's switch link at half speed),
GPUs on NICs of their own under oversubscribed leaves, NVSwitch boxes on rails and a spine where
one box's GPUs take in less than they send, boxes whose GPUs form a ring, boxes of directly
wired GPUs, and unlike boxes under a leaf switch each. Each collective is compiled (forced, so
every size is simulated) and the written file's simulated algbw is printed at 1 MiB, 64 MiB and
1 GiB with the runtime's ring and tree, the bound,
the ratios to the bound and to the runtime's best, and whether the file's size range takes that size
(``used``; elsewhere the runtime runs its own algorithm).
``no file``: the file wins nowhere, compile writes none, and the figures
are those of the forced file. On GPU counts that are not powers of two an allgather or reduce-scatter
file serves sizes next to those (1 MiB + 32 bytes on 6 GPUs), shown as the table's sizes.
A case is flagged where it misses a target of bench_predict: at 1 GiB 0.95 of the bound, and 1.10x
the runtime where the bound leaves 15 % headroom over it; at 64 MiB beating the runtime there. A
1 GiB miss where the file leaves that size to the runtime says how close the runtime itself comes to
the bound there: where the runtime's ring already meets the target, the user gets it.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from bench_predict import HEADROOM, SIZES
from collc.compile import CompileOptions, compile_schedule
from collc.msccl.program import SCHEDULED_COLLECTIVES
from collc.topology import load

#: item 3's targets: the share of the bound at 1 GiB, and the ratio to the runtime per size where the
#: bound leaves HEADROOM over it
BOUND_SHARE = 0.95
VENDOR_TARGET = {2**30: 1.10, 2**26: 1.0}


class Fabric:
    """A flat topology document under construction."""

    def __init__(self) -> None:
        self.nodes: list[dict] = []
        self.links: list[dict] = []

    def add(self, kind: str, *names: str) -> None:
        self.nodes += [{"name": name, "kind": kind} for name in names]

    def link(self, src: str, dst: str, bandwidth: float, directed: bool = False) -> None:
        link = {"src": src, "dst": dst, "bandwidth": bandwidth}
        self.links.append({**link, "directed": True} if directed else link)

    def document(self, name: str) -> dict:
        return {"name": name, "nodes": self.nodes, "links": self.links}


def gpu_nics(
    fabric: Fabric, gpus: list[str], prefix: str, switch: Callable[[int], str], widths: tuple[float, float]
) -> None:
    """A NIC ``{prefix}{i}`` on each of ``gpus``, joined to its GPU and to ``switch(i)`` at ``widths``
    (GPU side, network side)."""
    for i, gpu in enumerate(gpus):
        fabric.add("nic", f"{prefix}{i}")
        fabric.link(f"{prefix}{i}", gpu, widths[0])
        fabric.link(f"{prefix}{i}", switch(i), widths[1])


def pcie_servers(fabric: Fabric, boxes: int, nics_per_box: int, cpu_link: float | None) -> None:
    """Boxes of 8 GPUs behind two 32 GB/s PCIe switches. ``cpu_link``: two sockets joined by a link of
    that bandwidth, else both switches under one root complex. NICs (25 GB/s to the top-of-rack
    switch) hang off the first ``nics_per_box`` switches."""
    fabric.add("switch", "tor")
    for b in range(boxes):
        for s in range(2):
            plx = f"b{b}plx{s}"
            cpu = f"b{b}cpu{s}" if cpu_link else f"b{b}cpu"
            fabric.add("switch", plx, *([cpu] if cpu_link or s == 0 else []))
            fabric.link(plx, cpu, 32)
            for g in range(4):
                fabric.add("gpu", f"b{b}g{4 * s + g}")
                fabric.link(f"b{b}g{4 * s + g}", plx, 32)
            if s < nics_per_box:
                fabric.add("nic", f"b{b}nic{s}")
                fabric.link(f"b{b}nic{s}", plx, 32)
                fabric.link(f"b{b}nic{s}", "tor", 25)
        if cpu_link:
            fabric.link(f"b{b}cpu0", f"b{b}cpu1", cpu_link)


def pcie_one_socket() -> Fabric:
    """Two single-socket PCIe servers, a NIC on each PCIe switch."""
    fabric = Fabric()
    pcie_servers(fabric, 2, 2, None)
    return fabric


def pcie_one_nic() -> Fabric:
    """Two dual-socket PCIe servers with one NIC, on socket 0: socket 1's GPUs reach it over the CPU
    link."""
    fabric = Fabric()
    pcie_servers(fabric, 2, 1, 40)
    return fabric


def nvlink_bridges() -> Fabric:
    """The single-socket PCIe servers with GPU pairs joined by 100 GB/s NVLink bridges."""
    fabric = pcie_one_socket()
    for b in range(2):
        for p in range(4):
            fabric.link(f"b{b}g{2 * p}", f"b{b}g{2 * p + 1}", 100)
    return fabric


def one_way_ring() -> Fabric:
    """8 GPUs in a ring, 50 GB/s one way and 20 GB/s the other."""
    fabric = Fabric()
    fabric.add("gpu", *(f"g{i}" for i in range(8)))
    for i in range(8):
        fabric.link(f"g{i}", f"g{(i + 1) % 8}", 50, directed=True)
        fabric.link(f"g{(i + 1) % 8}", f"g{i}", 20, directed=True)
    return fabric


def unequal_mesh() -> Fabric:
    """4 GPUs, every pair linked, at 25, 50 or 100 GB/s."""
    fabric = Fabric()
    fabric.add("gpu", *(f"g{i}" for i in range(4)))
    widths = {(0, 1): 100, (0, 2): 50, (0, 3): 25, (1, 2): 25, (1, 3): 50, (2, 3): 100}
    for (a, b), width in widths.items():
        fabric.link(f"g{a}", f"g{b}", width)
    return fabric


def nvswitch_boxes(fabric: Fabric, boxes: int, width: float) -> None:
    """Boxes of 4 GPUs, each box's GPUs on an NVSwitch at ``width`` GB/s."""
    for b in range(boxes):
        fabric.add("switch", f"b{b}nvs")
        for g in range(4):
            fabric.add("gpu", f"b{b}g{g}")
            fabric.link(f"b{b}g{g}", f"b{b}nvs", width)


def nvswitch_three_boxes() -> Fabric:
    """Three boxes of 4 GPUs on a 150 GB/s NVSwitch (12 GPUs), two NICs per box on GPUs 0 and 2."""
    fabric = Fabric()
    fabric.add("switch", "tor")
    nvswitch_boxes(fabric, 3, 150)
    for b in range(3):
        gpu_nics(fabric, [f"b{b}g0", f"b{b}g2"], f"b{b}n", lambda _: "tor", (32, 25))
    return fabric


def leaf_spine() -> Fabric:
    """Four NVSwitch boxes of 4 GPUs, a 50 GB/s NIC per GPU, two boxes per leaf switch and 100 GB/s
    from each leaf to the spine (4:1 oversubscribed)."""
    fabric = Fabric()
    fabric.add("switch", "spine", "leaf0", "leaf1")
    fabric.link("leaf0", "spine", 100)
    fabric.link("leaf1", "spine", 100)
    nvswitch_boxes(fabric, 4, 200)
    for b in range(4):
        gpu_nics(fabric, [f"b{b}g{g}" for g in range(4)], f"b{b}n", lambda _, b=b: f"leaf{b // 2}", (50, 50))
    return fabric


def ring_boxes() -> Fabric:
    """Two boxes of 4 GPUs in a 50 GB/s NVLink ring, all on one PCIe switch with one 25 GB/s NIC."""
    fabric = Fabric()
    fabric.add("switch", "tor")
    for b in range(2):
        fabric.add("switch", f"b{b}plx")
        fabric.add("nic", f"b{b}nic")
        fabric.link(f"b{b}nic", f"b{b}plx", 32)
        fabric.link(f"b{b}nic", "tor", 25)
        for g in range(4):
            fabric.add("gpu", f"b{b}g{g}")
            fabric.link(f"b{b}g{g}", f"b{b}plx", 32)
            fabric.link(f"b{b}g{g}", f"b{b}g{(g + 1) % 4}", 50)
    return fabric


def xgmi_mesh_boxes() -> Fabric:
    """Two boxes of 8 GPUs wired directly, every pair of a box by a 64 GB/s link (no switch), a 50 GB/s
    NIC on each GPU."""
    fabric = Fabric()
    fabric.add("switch", "tor")
    for b in range(2):
        gpus = [f"n{b}gpu{i}" for i in range(8)]
        fabric.add("gpu", *gpus)
        for i, j in itertools.combinations(range(8), 2):
            fabric.link(gpus[i], gpus[j], 64)
        gpu_nics(fabric, gpus, f"n{b}mlx", lambda _: "tor", (64, 50))
    return fabric


def rail_boxes(slow: str | None = None) -> Fabric:
    """Two boxes of 8 GPUs on a 450 GB/s NVSwitch, a 50 GB/s NIC per GPU, NIC i of every box on leaf
    switch i (rail-optimised), with no spine: a GPU reaches the other box only on its own rail.
    ``slow``: a GPU whose switch link runs at half speed."""
    fabric = Fabric()
    fabric.add("switch", *(f"leaf{i}" for i in range(8)))
    for b in range(2):
        fabric.add("switch", f"node{b}-nvsw")
        gpus = [f"node{b}-gpu{i}" for i in range(8)]
        fabric.add("gpu", *gpus)
        for gpu in gpus:
            fabric.link(gpu, f"node{b}-nvsw", 225 if gpu == slow else 450)
        gpu_nics(fabric, gpus, f"node{b}-ib", lambda i: f"leaf{i}", (64, 50))
    return fabric


def slow_gpu() -> Fabric:
    """The rail boxes with one GPU's switch link at half speed (a derated NVLink): an allreduce on
    trees packed for allgather makes it forward in both halves."""
    return rail_boxes(slow="node1-gpu2")


def gpu_line() -> Fabric:
    """4 GPUs in a line of 50 GB/s links: an allreduce can run its two halves on opposite directions."""
    fabric = Fabric()
    fabric.add("gpu", *(f"g{i}" for i in range(4)))
    for i in range(3):
        fabric.link(f"g{i}", f"g{i + 1}", 50)
    return fabric


def unequal_nics() -> Fabric:
    """Two NVSwitch boxes of 4 GPUs whose NIC counts differ: two in box 0 (on GPUs 0 and 2), one in
    box 1 (on GPU 0)."""
    fabric = Fabric()
    fabric.add("switch", "tor")
    nvswitch_boxes(fabric, 2, 300)
    for b, gpus in ((0, ["b0g0", "b0g2"]), (1, ["b1g0"])):
        gpu_nics(fabric, gpus, f"b{b}n", lambda _: "tor", (32, 25))
    return fabric


def five_gpus() -> Fabric:
    """5 GPUs on one 100 GB/s switch: no power-of-two count divides the GPUs."""
    fabric = Fabric()
    fabric.add("switch", "sw")
    for i in range(5):
        fabric.add("gpu", f"g{i}")
        fabric.link(f"g{i}", "sw", 100)
    return fabric


def pcie_cpu_root() -> Fabric:
    """Two dual-socket servers whose GPUs sit directly on the CPU's root ports (24 GB/s, no PCIe
    switch), 4 per socket, the sockets joined at 30 GB/s, a 12.5 GB/s NIC on each socket."""
    fabric = Fabric()
    fabric.add("switch", "tor")
    for b in range(2):
        for s in range(2):
            fabric.add("switch", f"s{b}cpu{s}")
            for g in range(4):
                fabric.add("gpu", f"s{b}gpu{4 * s + g}")
                fabric.link(f"s{b}gpu{4 * s + g}", f"s{b}cpu{s}", 24)
            fabric.add("nic", f"s{b}eth{s}")
            fabric.link(f"s{b}eth{s}", f"s{b}cpu{s}", 24)
            fabric.link(f"s{b}eth{s}", "tor", 12.5)
        fabric.link(f"s{b}cpu0", f"s{b}cpu1", 30)
    return fabric


def nic_behind_pcie() -> Fabric:
    """Four boxes of 4 GPUs on a 150 GB/s NVSwitch, the box's GPUs on one PCIe switch with one
    50 GB/s NIC that the switch feeds at 32 GB/s: what crosses boxes is held to the PCIe link."""
    fabric = Fabric()
    fabric.add("switch", "tor")
    nvswitch_boxes(fabric, 4, 150)
    for b in range(4):
        fabric.add("switch", f"b{b}plx")
        for g in range(4):
            fabric.link(f"b{b}g{g}", f"b{b}plx", 32)
        fabric.add("nic", f"b{b}nic")
        fabric.link(f"b{b}nic", f"b{b}plx", 32)
        fabric.link(f"b{b}nic", "tor", 50)
    return fabric


def nic_leaves() -> Fabric:
    """Servers with no NVLink, a NIC per GPU (32 GB/s PCIe), under two leaf switches and two spines:
    four GPUs with 50 GB/s NICs behind 2 x 25 GB/s of uplinks, two with 25 GB/s NICs behind 2 x 12.5
    (as tests/compile/fixtures/oversubscribed-leaves.yaml). The allgather fills the uplinks inward
    and the reduce-scatter outward, so an allreduce gains from running its halves at once."""
    fabric = Fabric()
    fabric.add("switch", "spine0", "spine1")
    for leaf, (gpus, nic, uplink) in enumerate([(4, 50, 25), (2, 25, 12.5)]):
        fabric.add("switch", f"leaf{leaf}")
        for spine in ("spine0", "spine1"):
            fabric.link(f"leaf{leaf}", spine, uplink)
        for g in range(gpus):
            fabric.add("gpu", f"l{leaf}g{g}")
            fabric.add("nic", f"l{leaf}nic{g}")
            fabric.link(f"l{leaf}g{g}", f"l{leaf}nic{g}", 32)
            fabric.link(f"l{leaf}nic{g}", f"leaf{leaf}", nic)
    return fabric


def mixed_leaf_boxes() -> Fabric:
    """A box of 4 GPUs in a mesh of 25-100 GB/s links, two of them with a NIC (25 and 50 GB/s), and a
    box of 4 GPUs on a PCIe switch with two NICs on it, each box under a leaf switch of its own, the
    leaves under a spine (tests/compile/fixtures/leaf-per-box-2x4.yaml): leaves that are no network
    planes, and NICs that a box's GPUs share."""
    fabric = Fabric()
    fabric.add("switch", "spine", "leaf0", "leaf1", "b.pcie")
    fabric.add("gpu", *(f"a.gpu{g}" for g in range(4)), *(f"b.gpu{g}" for g in range(4)))
    fabric.add("nic", "a.nic0", "a.nic1", "b.nic0", "b.nic1")
    mesh = {(0, 1): 25, (0, 2): 25, (0, 3): 50, (1, 2): 100, (1, 3): 100, (2, 3): 50}
    for (x, y), width in mesh.items():
        fabric.link(f"a.gpu{x}", f"a.gpu{y}", width)
    fabric.link("a.gpu0", "a.nic0", 25)
    fabric.link("a.gpu1", "a.nic1", 50)
    for g in range(4):
        fabric.link(f"b.gpu{g}", "b.pcie", 32)
    for nic in ("a.nic0", "a.nic1"):
        fabric.link(nic, "leaf0", 100)
    for nic in ("b.nic0", "b.nic1"):
        fabric.link("b.pcie", nic, 25)
        fabric.link(nic, "leaf1", 100)
    fabric.link("leaf0", "spine", 100)
    fabric.link("leaf1", "spine", 100)
    return fabric


def rails_slow_downlinks() -> Fabric:
    """Three boxes of 4 GPUs on a 300 GB/s NVSwitch, GPU i of every box on rail switch i (50 GB/s up),
    the rails joined to a spine at 100 GB/s; box 0's GPUs take in only 25 GB/s from their rails. The
    rails take in less than they send out, and around the rail-spine cycles their excess travels
    without end under water-filling (docs/solver.md §3): the reduce-scatter had no forest."""
    fabric = Fabric()
    fabric.add("switch", "spine", *(f"rail{g}" for g in range(4)))
    for g in range(4):
        fabric.link(f"rail{g}", "spine", 100)
    nvswitch_boxes(fabric, 3, 300)
    for b in range(3):
        for g in range(4):
            fabric.link(f"b{b}g{g}", f"rail{g}", 50, directed=True)
            fabric.link(f"rail{g}", f"b{b}g{g}", 25 if b == 0 else 50, directed=True)
    return fabric


FABRICS: dict[str, Callable[[], Fabric]] = {
    "pcie-one-socket": pcie_one_socket,
    "pcie-one-nic": pcie_one_nic,
    "nvlink-bridges": nvlink_bridges,
    "one-way-ring": one_way_ring,
    "unequal-mesh": unequal_mesh,
    "nvswitch-3-boxes": nvswitch_three_boxes,
    "leaf-spine": leaf_spine,
    "ring-boxes": ring_boxes,
    "xgmi-mesh-boxes": xgmi_mesh_boxes,
    "rail-boxes": rail_boxes,
    "slow-gpu": slow_gpu,
    "gpu-line": gpu_line,
    "unequal-nics": unequal_nics,
    "five-gpus": five_gpus,
    "pcie-cpu-root": pcie_cpu_root,
    "nic-behind-pcie": nic_behind_pcie,
    "nic-leaves": nic_leaves,
    "rails-slow-down": rails_slow_downlinks,
    "mixed-leaf-boxes": mixed_leaf_boxes,
}


def table_size(nbytes: int) -> int | None:
    """The size of the table a predicted row stands for: the report moves a size the file cannot
    serve to the nearest one it does (a file on 6 GPUs serves 1 MiB + 32 bytes, not 1 MiB), so a row
    within 1 % of a table size is shown as that size; None for any other row."""
    nearest = min(SIZES, key=lambda size: abs(size - nbytes))
    return nearest if abs(nearest - nbytes) * 100 <= nearest else None


def misses(nbytes: int, collc: float, vendor: float, bound: float, used: bool) -> list[str]:
    """The targets a written file misses at ``nbytes`` (see the module docstring); ``used``: whether
    the file's size range takes that size."""
    missed = []
    if nbytes == 2**30 and collc < BOUND_SHARE * bound:
        served = "" if used else f" (left to the runtime, at {vendor / bound:.3f} of the bound)"
        missed.append(f"<{BOUND_SHARE} bound{served}")
    target = VENDOR_TARGET.get(nbytes)
    if target and bound >= HEADROOM * vendor and collc < target * vendor:
        missed.append(f"<{target}x vendor")
    return missed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"default: all of {', '.join(FABRICS)}")
    parser.add_argument("--coll", action="append", choices=SCHEDULED_COLLECTIVES, help="default: all three")
    args = parser.parse_args()
    if unknown := [name for name in args.names if name not in FABRICS]:
        parser.error(f"no fabric named {', '.join(unknown)} (choose from {', '.join(FABRICS)})")
    print(
        f"{'fabric':17s} {'coll':14s} {'size':>6s} {'collc':>7s} {'ring':>7s} {'tree':>7s} {'bound':>7s} "
        f"{'c/bound':>7s} {'c/vendor':>8s} {'used':>7s} {'k':>3s} {'s':>5s}  missed"
    )
    missed_cases = []
    with tempfile.TemporaryDirectory() as folder:
        for name in args.names or FABRICS:
            path = Path(folder) / f"{name}.yaml"
            path.write_text(yaml.safe_dump(FABRICS[name]().document(name), sort_keys=False))
            for coll in args.coll or SCHEDULED_COLLECTIVES:
                start = time.perf_counter()
                result = compile_schedule(load(path), CompileOptions(coll=coll, force=True))
                seconds = time.perf_counter() - start
                for row in result.predicted:
                    size = table_size(row.nbytes)
                    if size is None or row.algbw is None:
                        continue  # not a size of the table, or one the file cannot serve
                    vendor = row.vendor_algbw
                    missed = misses(size, row.algbw, vendor, row.bound_algbw, row.selected)
                    tree = f"{row.tree_algbw:7.1f}" if row.tree_algbw else f"{'-':>7s}"
                    used = "no file" if result.forced else "yes" if row.selected else "no"
                    print(
                        f"{name:17s} {coll:14s} {size >> 20:>5d}M {row.algbw:7.1f} "
                        f"{row.ring_algbw:7.1f} {tree} {row.bound_algbw:7.1f} "
                        f"{row.algbw / row.bound_algbw:7.3f} {row.algbw / vendor:8.3f} "
                        f"{used:>7s} "
                        f"{result.solution.forest.k:>3d} {seconds:5.1f}  " + ", ".join(missed),
                        flush=True,
                    )
                    missed_cases += [f"{name} {coll} {size >> 20}M {miss}" for miss in missed]
    print(f"{len(missed_cases)} targets missed" + (": " + "; ".join(missed_cases) if missed_cases else ""))


if __name__ == "__main__":
    main()
