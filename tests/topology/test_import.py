"""`collc topo import`: dumps and smi texts to topologies, checked against the presets' exact bounds."""

from __future__ import annotations

import re
import tempfile
from fractions import Fraction
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from collc.capacity import capacity_graph
from collc.cli import main
from collc.solver.bound import optimal_bound
from collc.topology import Topology, load, parse_topology
from collc.topology.importers import FabricOptions, ReadOptions, import_files, read_box
from collc.topology.importers.fabric import combine
from collc.topology.importers.smi_text import _shares

FIXTURES = Path(__file__).parent.parent / "fixtures" / "import"
A100_XML = FIXTURES / "dgx-a100-nccl-topo.xml"
H100_XML = FIXTURES / "dgx-h100-nccl-topo.xml"
MI250_XML = FIXTURES / "mi250-rccl-topo.xml"
MI300X_XML = FIXTURES / "mi300x-rccl-topo.xml"
PCIE_XML = FIXTURES / "pcie-l40s-nccl-topo.xml"
H200_XML = FIXTURES / "h200-nccl-topo.xml"
A100_SMI = FIXTURES / "dgx-a100-nvidia-smi-topo.txt"
H200_SMI = FIXTURES / "h200-nvidia-smi-topo.txt"
MI300X_ROCM = FIXTURES / "mi300x-rocm-smi-showtopo.txt"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def imported(tmp_path: Path, *files: Path, **options: object) -> Topology:
    """Import ``files`` through the CLI into a file and load it as every command would."""
    args = ["topo", "import", *map(str, files), "-o", str(tmp_path / "imported.yaml")]
    for key, value in options.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    code, out, err = run(*args)
    assert code == 0, err
    assert "validates" in out
    return load(tmp_path / "imported.yaml")


def algbw(topology: Topology) -> Fraction:
    """The exact optimal allgather algbw (GB/s), as `collc bound` computes it."""
    return optimal_bound(capacity_graph(topology)).allgather_algbw


def preset_algbw(name: str, **settings: int | str) -> Fraction:
    return algbw(load(name, {key: str(value) for key, value in settings.items()}))


@pytest.mark.parametrize(
    ("source", "options", "preset"),
    [
        (A100_XML, {}, "dgx-a100"),
        (H100_XML, {}, "dgx-h100"),
        (MI250_XML, {}, "mi250"),
        (MI300X_XML, {}, "mi300x"),
        (A100_SMI, {"gpu_model": "A100"}, "dgx-a100"),
        (MI300X_ROCM, {"gpu_model": "MI300X"}, "mi300x"),
    ],
    ids=lambda value: value.name if isinstance(value, Path) else None,
)
def test_one_box_gives_the_presets_exact_bound(tmp_path, source, options, preset) -> None:
    topology = imported(tmp_path, source, **options)
    assert algbw(topology) == preset_algbw(preset)


def test_dgx_a100_box_is_the_presets_box(tmp_path) -> None:
    topology = imported(tmp_path, A100_XML)
    # 8 GPUs x 6 NVSwitches x 2 links x 25 GB/s, all NVSwitches one vertex: the preset's 300 GB/s each
    assert topology.num_gpus == 8
    assert algbw(topology) == preset_algbw("dgx-a100") == Fraction(8 * 300, 7)
    assert topology.metadata.gpu_model == "A100" and topology.metadata.sms_per_gpu == 108
    assert {node.name for node in topology.nodes if node.kind == "switch"} == {"b0.nvswitch"}


@pytest.mark.parametrize(
    ("source", "preset"), [(A100_XML, "dgx-a100"), (H100_XML, "dgx-h100"), (MI300X_XML, "mi300x")]
)
def test_two_boxes_on_rails_give_the_presets_bound(tmp_path, source, preset) -> None:
    assert algbw(imported(tmp_path, source, boxes=2)) == preset_algbw(preset, boxes=2)


def test_spine_oversubscription_is_the_presets(tmp_path) -> None:
    settings = {"boxes": 4, "boxes_per_leaf": 2}
    topology = imported(tmp_path, H100_XML, boxes=4, boxes_per_leaf=2, oversubscription=8)
    oversubscribed = preset_algbw("dgx-h100", **settings, spine_oversubscription=8)
    assert algbw(topology) == oversubscribed < preset_algbw("dgx-h100", **settings)


def test_leaf_spine_network_is_limited_by_the_oversubscribed_uplinks(tmp_path) -> None:
    # 4 MI300X boxes, 2 per leaf; a leaf's uplink is 2 boxes x 8 x 50 GB/s / 4 = 200 GB/s for 16 GPUs
    topology = imported(
        tmp_path, MI300X_XML, boxes=4, network="leaf-spine", boxes_per_leaf=2, oversubscription=4
    )
    assert algbw(topology) == 32 * Fraction(200, 16)
    non_blocking = imported(tmp_path, MI300X_XML, boxes=4, network="leaf-spine", boxes_per_leaf=2)
    assert algbw(non_blocking) > 32 * Fraction(200, 16)


@pytest.mark.parametrize(("model", "socket_gbps"), [("143", 22), ("85", 10)])
def test_pcie_only_box_uses_its_pcie_tree(tmp_path, model, socket_gbps) -> None:
    """8 GPUs (Gen4 x16, 32 GB/s) on 4 Gen5 switches under 2 CPU sockets joined at NCCL's figure."""
    text = PCIE_XML.read_text().replace('modelid="143"', f'modelid="{model}"')
    (tmp_path / "pcie.xml").write_text(text)
    topology = imported(tmp_path, tmp_path / "pcie.xml")
    # a GPU receives 7 shards over its 32 GB/s link; a socket sends 4 shards over the socket link
    assert algbw(topology) == 8 * min(Fraction(32, 7), Fraction(socket_gbps, 4))
    assert not [link for link in topology.links if link.link_class == "nvlink"]


def test_mi250_gcds_share_each_nic_of_their_package(tmp_path) -> None:
    """Each MI250 package's two GCDs sit with one NIC under one PCIe switch: both use it."""
    topology = imported(tmp_path, MI250_XML, boxes=2)
    nic_links = {(link.src, link.dst) for link in topology.links if link.dst.startswith("b0.nic")}
    assert nic_links == {(f"b0.gpu{g}", f"b0.nic{g // 2}") for g in range(16)}


def test_link_targets_match_whatever_the_domain_width(tmp_path) -> None:
    """NVML writes GPU targets with an 8-digit PCI domain in upper case; the pci elements have 4 digits."""
    text = re.sub(
        r'target="0000:([0-9a-f]{2}):00.0"',
        lambda m: f'target="00000000:{m[1].upper()}:00.0"',
        MI300X_XML.read_text(),
    )
    assert "00000000:" in text
    assert algbw(imported(tmp_path, _bad(tmp_path, text, "mi300x.xml"))) == preset_algbw("mi300x")


def test_links_listed_by_one_side_only_run_one_way(tmp_path) -> None:
    """The runtimes add a GPU's listed links one way; the other way the PCIe tree carries the traffic."""
    text = MI300X_XML.read_text()
    first_gpu = text.index("<gpu ")
    one_sided = text[:first_gpu] + re.sub(r"<xgmi [^>]*/>", "", text[first_gpu:])  # no GPU lists a link...
    kept = re.search(r'<gpu dev="0".*?</gpu>', text, re.S)
    assert kept is not None
    one_sided = re.sub(r'<gpu dev="0".*?</gpu>', kept.group(0), one_sided, flags=re.S)  # ...but GPU 0
    topology = imported(tmp_path, _bad(tmp_path, one_sided, "one-sided.xml"))
    xgmi = [link for link in topology.links if link.link_class == "xgmi"]
    assert len(xgmi) == 7 and all(link.directed and link.src == "b0.gpu0" for link in xgmi)
    assert {link.link_class for link in topology.links} == {"xgmi", "pcie", "sys"}


def test_link_speed_overrides_the_documented_figure(tmp_path) -> None:
    assert algbw(imported(tmp_path, MI300X_XML, link_speed=32)) == preset_algbw("mi300x") / 2


def test_real_h200_dump_makes_one_gpu_boxes(tmp_path) -> None:
    """The one-GPU H200 VM: each box is that GPU and its 10 Gb/s NIC; --boxes joins them."""
    code, _, err = run("topo", "import", str(H200_XML))
    assert code == 2
    assert re.search(r"h200-nccl-topo.xml:1:1: error: .*1 GPU.*\n  hint: give --boxes 2 or more", err)
    topology = imported(tmp_path, H200_XML, boxes=4)
    assert topology.num_gpus == 4
    assert topology.metadata.gpu_model == "H200"
    assert sorted({link.link_class for link in topology.links}) == ["ethernet", "pcie"]
    # each GPU receives 3 shards through its NIC's 1.25 GB/s
    assert algbw(topology) == 4 * Fraction(125, 100) / 3


def test_h200_smi_text_needs_the_model_and_a_nic_speed(tmp_path) -> None:
    code, _, err = run("topo", "import", str(H200_SMI), "--boxes", "2")
    assert code == 2 and "--gpu-model" in err
    topology = imported(tmp_path, H200_SMI, boxes=3, gpu_model="H200", nic_speed="400 Gb/s")
    assert algbw(topology) == 3 * Fraction(50, 2)


def test_per_node_files_with_global_ranks(tmp_path) -> None:
    text = H100_XML.read_text()
    second = re.sub(r'rank="(\d)"', lambda m: f'rank="{int(m[1]) + 8}"', text)
    (tmp_path / "node0.xml").write_text(text)
    (tmp_path / "node1.xml").write_text(second)
    topology = imported(tmp_path, tmp_path / "node0.xml", tmp_path / "node1.xml")
    assert topology.ranks[:9] == (*[f"b0.gpu{i}" for i in range(8)], "b1.gpu0")
    assert algbw(topology) == preset_algbw("dgx-h100", boxes=2)
    # ranks that alternate between the nodes are kept as the communicator numbers them
    even = re.sub(r'rank="(\d)"', lambda m: f'rank="{2 * int(m[1])}"', text)
    odd = re.sub(r'rank="(\d)"', lambda m: f'rank="{2 * int(m[1]) + 1}"', text)
    (tmp_path / "node0.xml").write_text(even)
    (tmp_path / "node1.xml").write_text(odd)
    topology = imported(tmp_path, tmp_path / "node0.xml", tmp_path / "node1.xml")
    assert topology.ranks[:4] == ("b0.gpu0", "b1.gpu0", "b0.gpu1", "b1.gpu1")


def test_import_is_deterministic() -> None:
    first = import_files([str(MI250_XML)], ReadOptions(), FabricOptions(boxes=3))
    second = import_files([str(MI250_XML)], ReadOptions(), FabricOptions(boxes=3))
    assert first.yaml_text == second.yaml_text
    assert "xGMI (gfx90a, MI200): 50 GB/s per link" in first.yaml_text  # the assumption is in the file


def _bad(tmp_path: Path, text: str, name: str = "bad.xml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _h100_with(old: str, new: str, count: int = 1) -> str:
    text = H100_XML.read_text()
    assert old in text
    return text.replace(old, new, count)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<system version='1'>\n  <cpu>\n</system>\n", r":3:3: error: XML syntax error: mismatched tag"),
        (
            '<!DOCTYPE s [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>\n<system>&b;</system>',
            r":1:\d+: error: document type declarations are not accepted",
        ),
        (
            "<graphs version='1'/>",
            r":1:1: error: <graphs>: a topology dump starts with <system>.*\n.*graph dump",
        ),
        (
            _h100_with("<nic>", "<nicc>", 1).replace("</nic>", "</nicc>", 1),
            r":\d+:\d+: error: <nicc>: unknown element <nicc>",
        ),
        (
            _h100_with('tclass="0x068000"', 'tclass="0x990000"'),
            r":\d+:\d+: error: <nvlink>: unknown target class tclass='0x990000'",
        ),
        (
            re.sub(r'(<gpu dev="3"[^>]*>)(.*?)(</gpu>)', r"\1\3", H100_XML.read_text(), flags=re.S),
            r":\d+:\d+: error: <gpu dev=\"3\" rank=\"3\">: this GPU \(rank 3\) has no NVLink or xGMI link",
        ),
        (
            _h100_with('sm="90"', 'sm="75"'),
            r":\d+:\d+: error: <nvlink>: no documented nvlink speed for sm=75",
        ),
        (
            _h100_with('count="5"', 'count="0"'),
            r":\d+:\d+: error: <nvlink>: count must be 1 to 1024 links, got 0",
        ),
        (
            _h100_with('rank="1"', 'rank="0"'),
            r":\d+:\d+: error: <gpu dev=\"1\" rank=\"0\">: rank 0 is given twice",
        ),
        (
            "<system>" + "<cpu>" * 70 + "</cpu>" * 70 + "</system>",
            r":1:\d+: error: XML elements nested deeper than 64 levels",
        ),
        ("plain words\n", r":1:1: error: not a topology dump, nvidia-smi topo -m or rocm-smi"),
        ("<system>" + "<cpu/>" * 70_000 + "</system>", r":1:\d+: error: more than 65,536 XML elements"),
        (
            _h100_with(
                '<pci busid="0000:43:00.0" class="0x030200"', '<pci busid="0000:1b:00.0" class="0x030200"'
            ),
            r":21:\d+: error: <pci busid=\"0000:1b:00.0\">: busid 0000:1b:00.0 is given twice.*\n  hint: ",
        ),
        (
            _h100_with('count="5"', 'count="99999999999999999999999"'),
            r":\d+:\d+: error: <nvlink>: 'count' is out of range: .* has 23 digits\n  hint: ",
        ),
        (
            _h100_with('speed="400000"', 'speed="-400000"'),
            r":16:\d+: error: <net dev=\"0\" name=\"mlx5_0\">: speed -400000 Mb/s is negative\n  hint: ",
        ),
    ],
    ids=[
        "malformed",
        "entities",
        "graph-dump",
        "unknown-element",
        "unknown-class",
        "gpu-without-links",
        "unknown-generation",
        "zero-count",
        "duplicate-rank",
        "nesting",
        "not-a-dump",
        "elements",
        "duplicate-busid",
        "out-of-range",
        "negative-nic-speed",
    ],
)
def test_bad_dumps_get_located_messages(tmp_path, text, message) -> None:
    path = _bad(tmp_path, text)
    code, out, err = run("topo", "import", str(path))
    assert code == 2, out
    assert re.search(re.escape(str(path)) + message, err, re.S), err
    assert "Traceback" not in err and len(err.splitlines()) <= 2


def test_a_link_from_a_gpu_to_itself_is_left_out(tmp_path) -> None:
    """A VM's passthrough GPU can list an NVLink to its own bus id (Azure NC A100 v4: count 12, no
    peer); NCCL adds a loop that carries nothing, so the import leaves it out with a note."""
    path = _bad(
        tmp_path,
        _h100_with(
            '<nvlink target="0000:05:00.0" count="5"',
            '<nvlink target="0000:1b:00.0" count="12" tclass="0x030200"/>\n'
            '            <nvlink target="0000:05:00.0" count="5"',
        ),
    )
    code, out, err = run("topo", "import", str(path), "-o", str(tmp_path / "out.yaml"))
    assert code == 0, err
    assert "gpu0: <nvlink> to its own bus id carries nothing: left out" in out + err
    assert imported(tmp_path, path).links == imported(tmp_path, H100_XML).links


def test_a_nic_no_gpu_has_nearest_is_left_out(tmp_path) -> None:
    """A ninth NIC on the CPU root of a DGX H100 dump, whose GPUs each have a NIC under their own
    PCIe switch: NCCL gives a GPU its nearest NICs, so that NIC carries nothing and the imported
    fabric is the same as without it (it was linked to four GPUs, which raised the bound)."""
    cpu = '<cpu numaid="0"'
    start = H100_XML.read_text().index(cpu)
    line_end = H100_XML.read_text().index("\n", start)
    extra = (
        '\n    <pci busid="0000:99:00.0" class="0x020700" vendor="0x15b3" device="0x101b" '
        'link_speed="32.0 GT/s PCIe" link_width="16">\n      <nic>\n        <net name="mlx5_9" dev="9" '
        'speed="400000" port="1" latency="0.000000" guid="0x9" maxconn="131072" gdr="1"/>\n      </nic>\n'
        "    </pci>"
    )
    text = H100_XML.read_text()
    path = _bad(tmp_path, text[:line_end] + extra + text[line_end:])
    code, out, err = run("topo", "import", str(path), "--boxes", "2", "-o", str(tmp_path / "out.yaml"))
    assert code == 0, err
    assert "NIC mlx5_9: no GPU's nearest NIC" in out + err
    with_ninth = imported(tmp_path, path, boxes=2)
    assert with_ninth.links == imported(tmp_path, H100_XML, boxes=2).links


def test_network_needs_nic_speeds(tmp_path) -> None:
    path = _bad(tmp_path, _h100_with('speed="400000"', 'speed="-1"', 8))
    code, _, err = run("topo", "import", str(path), "--boxes", "2")
    assert code == 2 and "no speed for NIC mlx5_0" in err and "--nic-speed" in err
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if 'name="mlx5_0"' in text)
    assert err.startswith(f"{path}:{line}:")  # at the first such NIC's <net>, not the file's start
    topology = imported(tmp_path, path, boxes=2, nic_speed="400 Gb/s")
    assert algbw(topology) == preset_algbw("dgx-h100", boxes=2)


def test_per_node_files_must_agree(tmp_path) -> None:
    code, _, err = run("topo", "import", str(A100_XML), str(H200_XML))
    assert code == 2
    assert re.search(
        r"h200-nccl-topo.xml:1:1: error: inconsistent node counts: 1 GPUs here but 8 in .*dgx-a100",
        err,
    )
    slower = _bad(tmp_path, _h100_with('count="5"', 'count="4"'))
    code, _, err = run("topo", "import", str(H100_XML), str(slower))
    assert code == 2 and "this node's links differ" in err
    code, _, err = run("topo", "import", str(H100_XML), str(H100_XML), "--boxes", "3")
    assert code == 2 and "--boxes 3 but 2 per-node files" in err


def test_names_and_paths_cannot_break_the_file(tmp_path) -> None:
    path = tmp_path / "node\nname: injected.xml"
    path.write_text(H100_XML.read_text().replace('name="mlx5_0"', 'name="mlx5_0&#10;ranks: [b0.gpu0]"'))
    topology = imported(tmp_path, path, name="x: {y} [z] #w")
    assert topology.name == "x: {y} [z] #w" and topology.num_gpus == 8


def test_fabric_over_the_limits_is_refused() -> None:
    code, _, err = run("topo", "import", str(H100_XML), "--boxes", "600")
    assert code == 2 and "600 boxes would have 4,800 GPUs, more than the 4,096 collc supports" in err


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--nic-speed", "fast"], "error: --nic-speed 'fast': unknown name 'fast'"),
        (["--nic-speed", "0"], "error: --nic-speed '0' is outside 1 kB/s to 1 PB/s"),
        (["--oversubscription", "0.5"], "error: --oversubscription 0.5 is outside 1 to 1024"),
        (["--oversubscription", "x"], "error: --oversubscription 'x' is not a number"),
    ],
)
def test_bad_options(option, message) -> None:
    code, _, err = run("topo", "import", str(H200_XML), "--boxes", "2", *option)
    assert code == 2 and err.startswith(message), err


def test_oversized_file_is_refused_before_reading(tmp_path) -> None:
    path = tmp_path / "huge.xml"
    with path.open("wb") as handle:
        handle.truncate(5 * 2**20)
    code, _, err = run("topo", "import", str(path))
    assert code == 2 and "larger than 4 MiB" in err


def test_documented_example_is_current(monkeypatch) -> None:
    root = Path(__file__).parents[2]
    monkeypatch.chdir(root)  # the file's header names the input as given on the command line
    doc = (root / "docs" / "topology-format.md").read_text(encoding="utf-8")
    block = doc.split("--boxes 2 --name h200-pair` gives:\n\n```yaml\n")[1].split("```")[0]
    code, out, _ = run(
        "topo", "import", "tests/fixtures/import/h200-nccl-topo.xml", "--boxes", "2", "--name", "h200-pair"
    )
    assert code == 0
    assert out == block


_SPEEDS = {("nvlink", "80"): 25, ("nvlink", "90"): 25, ("nvlink", "100"): 50, ("xgmi", "gfx90a"): 50}


@st.composite
def _mesh_dumps(draw: st.DrawFn) -> tuple[str, dict[tuple[int, int], int], int]:
    """A dump of n GPUs with random link counts (a ring keeps them joined) and ranks in random order."""
    size = draw(st.integers(2, 6))
    tag, arch = draw(st.sampled_from(sorted(_SPEEDS)))
    counts = {(i, j): draw(st.integers(0, 4)) for i in range(size) for j in range(i + 1, size)}
    for i in range(size - 1):
        counts[(i, i + 1)] = max(1, counts[(i, i + 1)])
    ranks = draw(st.permutations(range(size)))
    attribute = f'sm="{arch}"' if tag == "nvlink" else f'sm="104" gcn="{arch}"'
    lines = ['<system version="1">', '  <cpu numaid="0" arch="x86_64" vendor="AuthenticAMD">']
    for g in range(size):
        lines.append(
            f'    <pci busid="0000:{g + 16:02x}:00.0" class="0x030200" link_speed="" link_width="0">'
        )
        lines.append(f'      <gpu dev="{g}" {attribute} rank="{ranks[g]}" gdr="1">')
        for h in range(size):
            count = counts.get((min(g, h), max(g, h)), 0) if g != h else 0
            if count:
                lines.append(
                    f'        <{tag} target="0000:{h + 16:02x}:00.0" count="{count}" tclass="0x030200"/>'
                )
        lines += ["      </gpu>", "    </pci>"]
    lines += ["  </cpu>", "</system>"]
    expected = {
        tuple(sorted((ranks[i], ranks[j]))): count * _SPEEDS[(tag, arch)]
        for (i, j), count in counts.items()
        if count
    }
    return "\n".join(lines), expected, size


@settings(max_examples=40, deadline=None)
@given(_mesh_dumps())
def test_gpu_links_and_rank_order_follow_the_dump(dump: tuple[str, dict[tuple[int, int], int], int]) -> None:
    """Oracle: the bandwidth between the GPUs of ranks a and b is count x the documented per-link speed."""
    text, expected, size = dump
    box = read_box(text, "mesh.xml", ReadOptions())
    assert box.gpus == tuple(f"gpu{r}" for r in range(size)) and box.global_ranks == tuple(range(size))
    topology, _ = parse_topology(combine([box], FabricOptions()).yaml_text, "mesh.yaml")
    found: dict[tuple[int, int], Fraction] = {}
    for link in topology.links:
        pair = tuple(sorted((topology.rank_of(link.src), topology.rank_of(link.dst))))
        found[pair] = found.get(pair, Fraction(0)) + link.bandwidth
    assert found == expected


def _smi(rows: list[list[str]], nics: int = 0) -> str:
    """An nvidia-smi topo -m text for the given GPU (and NIC) matrix rows."""
    names = [f"GPU{i}" for i in range(len(rows) - nics)] + [f"NIC{i}" for i in range(nics)]
    lines = ["\t" + "\t".join(names) + "\tCPU Affinity\tNUMA Affinity\tGPU NUMA ID"]
    lines += ["\t".join([name, *row, "0-15", "0", "", "N/A"]) for name, row in zip(names, rows, strict=True)]
    lines += ["", "Legend:", "", "  X    = Self", "  NV#  = Connection traversing a bonded set of # NVLinks"]
    lines += ["", "NIC Legend:", ""] + [f"  NIC{i}: mlx5_{i}" for i in range(nics)]
    return "\n".join(lines) + "\n"


def test_smi_direct_nvlinks_and_pcie_only(tmp_path) -> None:
    bridged = _smi(
        [
            [" X ", "NV4", "NV2", "SYS"],
            ["NV4", " X ", "SYS", "NV2"],
            ["NV2", "SYS", " X ", "NV4"],
            ["SYS", "NV2", "NV4", " X "],
        ]
    )
    topology = imported(tmp_path, _bad(tmp_path, bridged, "bridged.txt"), gpu_model="A100")
    between: dict[tuple[str, str], Fraction] = {}
    for link in topology.links:
        between[(link.src, link.dst)] = between.get((link.src, link.dst), Fraction(0)) + link.bandwidth
    assert sorted((src, dst, total) for (src, dst), total in between.items()) == [
        ("b0.gpu0", "b0.gpu1", 100),
        ("b0.gpu0", "b0.gpu2", 50),
        ("b0.gpu1", "b0.gpu3", 50),
        ("b0.gpu2", "b0.gpu3", 100),
    ]
    pcie = _smi([[" X ", "PHB"], ["PHB", " X "]])
    topology = imported(tmp_path, _bad(tmp_path, pcie, "pcie.txt"), gpu_model="H100")
    assert algbw(topology) == 2 * 64  # each GPU's Gen5 x16 link to the shared PCIe switch vertex


@pytest.mark.parametrize(
    ("text", "options", "message"),
    [
        (
            _smi([[" X ", "NVX"], ["NVX", " X "]]),
            ["--gpu-model", "A100"],
            r":2: error: unknown matrix entry 'NVX'",
        ),
        (_smi([[" X ", "NV4"], ["NV4", " X "]]), [], r": error: nvidia-smi topo -m names no GPU model"),
        (
            _smi([[" X ", "NV4"], ["NV2", " X "]]),
            ["--gpu-model", "A100"],
            r":3: error: the matrix is not symmetric: GPU0-GPU1 shows 4 link\(s\), GPU1-GPU0 2\n  hint: ",
        ),
        (
            _smi([[" X ", "NV99999"], ["NV99999", " X "]]),
            ["--gpu-model", "A100"],
            r":2: error: unknown matrix entry 'NV99999'\n  hint: expected X, NV# \(1 to 1024 links\)",
        ),
        (
            _smi([[" X ", "NV" + "9" * 30], ["NV" + "9" * 30, " X "]]),
            ["--gpu-model", "A100"],
            r":2: error: unknown matrix entry 'NV9{18}' \(cut; 32 characters\)",
        ),
        (
            _smi([[" X ", "NV4", "NV4"], ["NV4", " X ", "NV4"], ["NV4", "NV4", " X "]]).split("\n\nLegend")[
                0
            ][:-40],
            ["--gpu-model", "A100"],
            r":1: error: no row for GPU2\n  hint: give the whole output of nvidia-smi topo -m",
        ),
        (
            MI300X_ROCM.read_text().replace(
                "XGMI         XGMI         XGMI         0", "XGMI  PCIX  XGMI  0", 1
            ),
            ["--gpu-model", "MI300X"],
            r":\d+: error: unknown matrix entry 'PCIX'",
        ),
        (
            _smi([[" X ", "NV4"], ["NV4", " X "]]).replace("GPU1\tNV4", "GPU0\tNV4"),
            ["--gpu-model", "A100"],
            r":3: error: GPU0 has a second row \(the first is line 2\)",
        ),
        (
            _smi([[" X ", "NV4"], ["NV4", " X "]]).replace("\tGPU1\t", "\tGPU0\t", 1),
            ["--gpu-model", "A100"],
            r":1: error: the header names GPU0 twice",
        ),
    ],
    ids=[
        "bad-entry",
        "no-model",
        "asymmetric",
        "too-many-links",
        "long-entry",
        "cut-short",
        "rocm-bad-entry",
        "row-twice",
        "column-twice",
    ],
)
def test_bad_smi_texts(tmp_path, text, options, message) -> None:
    path = _bad(tmp_path, text, "topo.txt")
    code, _, err = run("topo", "import", str(path), *options)
    assert code == 2, err
    assert re.search(re.escape(str(path)) + message, err), err


def test_two_nvlink_domains_in_a_box_get_a_switch_each(tmp_path) -> None:
    """Two groups of 4 A100s with NV12 between every pair of a group, SYS between the groups: each
    GPU has its 12 links once, to its group's NVSwitch (they had been 12 to every peer, 36 per GPU),
    and the groups are joined through the PCIe switch vertex."""
    rows = [
        [" X " if i == j else ("NV12" if i // 4 == j // 4 else "SYS") for j in range(8)] for i in range(8)
    ]
    topology = imported(tmp_path, _bad(tmp_path, _smi(rows), "domains.txt"), gpu_model="A100")
    nvlink: dict[str, set[str]] = {}
    for link in topology.links:
        if link.link_class == "nvlink":
            assert link.bandwidth == 12 * 25
            nvlink.setdefault(link.src, set()).add(link.dst)
    assert nvlink == {f"b0.gpu{i}": {f"b0.nvswitch{i // 4}"} for i in range(8)}
    assert any(link.link_class == "pcie" for link in topology.links)


def test_each_gpu_and_nic_reads_its_distances_once() -> None:
    """The NIC choice is linear in the table (it had been quadratic in the GPUs per side: an 800-GPU
    text inside the 4 MiB limit ran for minutes)."""
    reads = 0

    def distance(a: int, b: int) -> int:
        nonlocal reads
        reads += 1
        return abs(a // 4 - b)

    shares = _shares(64, 16, distance)
    assert reads == 64 * 16
    assert shares[0] == [0] and shares[5] == [1]


def test_nvlink_islands_are_joined_by_the_pcie_tree(tmp_path) -> None:
    """Bridged pairs (4 NVLink links, sm 86) on the PCIe-only node: NVLink inside pairs, PCIe between."""
    text = PCIE_XML.read_text().replace('sm="89"', 'sm="86"')
    buses = re.findall(r'busid="([^"]+)" class="0x030200"', text)
    for dev in range(len(buses)):
        link = f'<nvlink target="{buses[dev ^ 1]}" count="4" tclass="0x030200"/>'
        text = text.replace(
            f'<gpu dev="{dev}" sm="86" rank="{dev}" gdr="1"/>',
            f'<gpu dev="{dev}" sm="86" rank="{dev}" gdr="1">{link}</gpu>',
        )
    topology = imported(tmp_path, _bad(tmp_path, text, "bridged.xml"))
    classes = sorted({link.link_class for link in topology.links})
    assert classes == ["nvlink", "pcie", "sys"]
    # the 22 GB/s socket link now binds: 4 GPUs of a socket send their shards through it
    assert algbw(topology) == 8 * Fraction(22, 4)


@st.composite
def _damaged_dumps(draw: st.DrawFn) -> str:
    """A fixture with one attribute value (or matrix entry) replaced, or one slice cut out."""
    text = draw(st.sampled_from([H100_XML, MI250_XML, PCIE_XML, H200_XML, A100_SMI, MI300X_ROCM])).read_text()
    values = [
        match.span(match.lastindex or 0)
        for match in re.finditer(r'="([^"]*)"|(?<=\s)(NV\d+|PIX|PXB|SYS|XGMI)(?=\s)', text)
    ]
    if draw(st.booleans()):
        start, end = draw(st.sampled_from(values))
        junk = draw(
            st.sampled_from(["", "-1", "0", "99999999999999999999", "0x", "x", "1e9", "&amp;", "0x068000"])
        )
        return text[:start] + junk + text[end:]
    start = draw(st.integers(0, len(text) - 1))
    return text[:start] + text[start + draw(st.integers(1, 40)) :]


@settings(max_examples=60, deadline=None)
@given(_damaged_dumps(), st.sampled_from([[], ["--boxes", "3"]]))
def test_damaged_dumps_are_imported_or_refused_with_a_message(text: str, options: list[str]) -> None:
    """Whatever is damaged, the result validates (exit 0) or is one located input error (exit 2)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "damaged.xml"
        path.write_text(text)
        command = ["topo", "import", str(path), "--gpu-model", "A100", *options, "-o", f"{folder}/out.yaml"]
        result = CliRunner().invoke(main, command)
    assert result.exit_code in (0, 2), result.output
    assert "unexpected" not in result.output and "Traceback" not in result.output


def test_an_empty_name_is_refused() -> None:
    code, _, err = run("topo", "import", str(H100_XML), "--name", " ")
    assert code == 2 and "--name: the topology name is empty" in err and "hint:" in err
