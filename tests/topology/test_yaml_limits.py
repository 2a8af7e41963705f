"""The YAML limits of docs/topology-format.md bite while the document is read, before any node is built:
a list with more entries than a topology may have nodes or links, more values than collc reads, an alias
bomb. Each is one located line that names the limit exceeded, with a hint that fits the case."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from collc.cli import main
from collc.errors import InputError
from collc.input_limits import MAX_LINKS, MAX_NODES
from collc.topology import yamlsrc
from collc.topology.yamlsrc import read_yaml


class _NeverComposes(yamlsrc._LOADER):  # type: ignore[misc,valid-type]
    """A loader that fails if the document is composed into nodes: the limits must bite before."""

    def get_single_node(self) -> yaml.Node:
        raise AssertionError("the document was composed although a limit was exceeded")


@pytest.fixture
def uncomposed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yamlsrc, "_LOADER", _NeverComposes)


def _refusal(text: str) -> InputError:
    with pytest.raises(InputError) as caught:
        read_yaml(text, "t.yaml")
    return caught.value


def test_a_flow_list_of_nodes_is_refused_at_its_first_entry_past_the_node_limit(uncomposed: None) -> None:
    """The tester's ints.yaml: ``nodes: [1,1,...]`` with 2,000,000 items took 6.2 s and 720 MiB and its
    hint spoke of aliases; now the entry past the limit is named, before the rest is read."""
    error = _refusal("nodes: [" + ",".join(["1"] * (2 * MAX_NODES)) + "]\n")
    assert error.message == (
        f"the 'nodes' list has more than {MAX_NODES:,} entries; a topology has at most {MAX_NODES:,} nodes"
    )
    assert str(error.location) == f"t.yaml:1:{len('nodes: [') + 1 + 2 * MAX_NODES}"
    assert "alias" not in (error.hint or "") and "count" in (error.hint or "")


def test_a_block_list_of_nodes_at_the_limit_is_read_and_one_more_is_refused(uncomposed: None) -> None:
    entries = [f"- {{name: g{i}, kind: gpu}}\n" for i in range(MAX_NODES + 1)]
    with pytest.raises(AssertionError, match="composed"):  # at the limit: read on to the composer
        read_yaml("nodes:\n" + "".join(entries[:MAX_NODES]), "t.yaml")
    error = _refusal("nodes:\n" + "".join(entries))
    assert str(error.location) == f"t.yaml:{MAX_NODES + 2}:3" and "16,384 nodes" in error.message


def test_a_templates_links_list_is_held_to_the_link_limit(monkeypatch: pytest.MonkeyPatch, uncomposed: None):
    monkeypatch.setitem(yamlsrc._ENTRY_LIMITS, ("templates", "*", "links"), ("links", 3))
    links = "".join(f"      - {{src: g{i}, dst: sw, bandwidth: 1}}\n" for i in range(4))
    text = "templates:\n  box:\n    links:\n" + links
    error = _refusal(text)
    assert error.message == "the 'links' list has more than 3 entries; a topology has at most 3 links"
    assert str(error.location) == "t.yaml:7:9" and "rule" in (error.hint or "")


def test_other_lists_are_held_to_the_value_limit_only(monkeypatch: pytest.MonkeyPatch, uncomposed: None):
    """A long list elsewhere (``ranks``, ``description``) is not a node list: the total limit names itself,
    at the first value past it, and says nothing of aliases when the file has none."""
    monkeypatch.setattr(yamlsrc, "MAX_YAML_VALUES", 10)
    error = _refusal("name: x\nranks: [a, b, c, d, e, f, g, h, i]\n")
    assert error.message == "the YAML document has more than 10 values, the most collc reads"
    assert str(error.location) == "t.yaml:2:24"  # the mapping, 3 scalars, the list and a-e are 10: f is past
    assert "alias" not in (error.hint or "")


def test_an_alias_bomb_is_refused_at_the_alias_that_passes_the_limit(
    monkeypatch: pytest.MonkeyPatch, uncomposed: None
) -> None:
    monkeypatch.setattr(yamlsrc, "MAX_YAML_VALUES", 24)
    error = _refusal("a: &a [x, x, x]\nb: &b [*a, *a, *a]\nc: [*b, *b]\n")
    assert error.message == "the YAML document expands to more than 24 values"
    assert (
        str(error.location) == "t.yaml:3:5" and "aliases"
    )  # 22 values before it, 13 in *b in (error.hint or "")


def test_collections_nested_past_the_limit_are_refused_where_they_open(uncomposed: None) -> None:
    error = _refusal("nodes: " + "[" * 100 + "]" * 100 + "\n")
    assert error.message == "YAML collections nested more than 64 deep"
    assert str(error.location) == f"t.yaml:1:{len('nodes: ') + 64}"  # the top mapping is the first level


def test_documents_inside_the_limits_read_as_before() -> None:
    text = "base: &b {kind: gpu}\nnodes:\n  - {<<: *b, name: g0}\n  - {<<: *b, name: g1, kind: switch}\n"
    document = read_yaml(text, "t.yaml")
    assert document["nodes"] == [{"kind": "gpu", "name": "g0"}, {"kind": "switch", "name": "g1"}]
    assert str(document["nodes"].where(1)) == "t.yaml:4:5"


def test_the_cli_refuses_a_long_node_list_in_one_located_line(tmp_path: Path) -> None:
    path = tmp_path / "many.yaml"
    path.write_text("nodes:\n" + "".join(f"- {{name: g{i}, kind: gpu}}\n" for i in range(MAX_NODES + 100)))
    result = CliRunner().invoke(main, ["topo", "validate", str(path)])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.splitlines()[0] == (
        f"{path}:{MAX_NODES + 2}:3: error: the 'nodes' list has more than 16,384 entries; a topology has "
        "at most 16,384 nodes"
    )


def _template_of_links(links: int, boxes: int) -> str:
    """A box template of two GPUs joined by ``links`` parallel links (a matrix), instantiated ``boxes``
    times."""
    return (
        "templates:\n  box:\n    nodes: [{name: gpu, kind: gpu, count: 2}]\n"
        f"    links: [{{nodes: 'gpu{{i}}', bandwidth: 1, matrix: [[0, {links}], [{links}, 0]]}}]\n"
        f"boxes: [{{template: box, count: {boxes}}}]\n"
    )


def test_a_templates_links_count_once_per_box(tmp_path: Path) -> None:
    """A template's links were counted when its rules made them and again per box: one box of
    24,192 imported NVLinks (64 GPUs, nvidia-smi) was refused as more than 32,768 links."""
    fabric = tmp_path / "t.yaml"
    fabric.write_text(_template_of_links(MAX_LINKS // 2 + 1, 1))
    result = CliRunner().invoke(main, ["topo", "validate", str(fabric)])
    assert result.exit_code == 0, result.output
    fabric.write_text(_template_of_links(MAX_LINKS // 2 + 1, 2))
    result = CliRunner().invoke(main, ["topo", "validate", str(fabric)])
    assert (
        result.exit_code == 2
        and f"t.yaml:5:32: error: the topology has more than {MAX_LINKS:,} links" in result.output
    )
