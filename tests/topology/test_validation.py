"""Every class of invalid input gives a located InputError (file:line:column), a message and a hint."""

from __future__ import annotations

from pathlib import Path

import pytest

from collc.errors import InputError
from collc.topology import TopologyWarning, load

BAD = Path(__file__).parent / "bad"

# file, (line, column), fragment of the message, fragment of the hint (None: no hint expected)
CASES = [
    ("syntax.yaml", (3, 5), "YAML error: while parsing a flow mapping", "indentation"),
    ("python_tag.yaml", (2, 12), "could not determine a constructor", "plain YAML only"),
    ("alias_cycle.yaml", (1, 12), "a YAML alias refers to a value that contains it", None),
    ("empty.yaml", (1, 1), "the topology file is empty", "nodes"),
    ("unknown_key.yaml", (5, 28), "unknown key 'bandwith' in a link", "did you mean 'bandwidth'?"),
    ("unknown_top_key.yaml", (2, 1), "unknown key 'node' in the topology", "did you mean 'nodes'?"),
    ("duplicate_key.yaml", (5, 43), "duplicate key 'bandwidth'", "only once"),
    ("unknown_node.yaml", (7, 22), "'dst' refers to node 'nsv', which does not exist", "did you mean 'nvs'?"),
    ("selector_no_match.yaml", (5, 11), "'src' selector 'gpus{i}' matches no node", "captures a number"),
    ("unknown_template.yaml", (6, 16), "unknown template 'dxg'", "did you mean 'dgx'?"),
    ("bad_node_name.yaml", (3, 12), "invalid node name '1gpu'", "start with a letter"),
    ("bad_box_name.yaml", (8, 27), "invalid box name 'box {b}'", "start with a letter"),
    ("unknown_kind.yaml", (3, 22), "unknown node kind 'swich'", "did you mean 'switch'?"),
    ("duplicate_name.yaml", (4, 12), "duplicate node name 'gpu0' (first defined at", "unique"),
    ("bandwidth_zero.yaml", (5, 39), "bandwidth must be > 0, got 0", "remove the link"),
    ("bandwidth_text.yaml", (7, 16), "bad bandwidth: unknown name 'fast'", "GB/s"),
    ("bandwidth_unit.yaml", (5, 39), "unknown bandwidth unit 'GiB/s'", "Gbps"),
    ("self_loop.yaml", (4, 5), "link from 'gpu0' to itself", "where: i != j"),
    ("matrix_asymmetric.yaml", (8, 16), "matrix is not symmetric: [1][2] = 2 but [2][1] = 1", "directed"),
    ("disconnected.yaml", (4, 5), "GPU 'gpu2' cannot be reached from GPU 'gpu0'", "missing links"),
    ("one_way.yaml", (3, 5), "GPU 'gpu1' cannot reach GPU 'gpu0'", "one-way"),
    ("no_gpu.yaml", (1, 1), "the topology has no GPU", "kind: gpu"),
    ("box_bool.yaml", (5, 32), "'box': box must be a number, got true", None),
    ("role_twice.yaml", (4, 5), "GPUs 'a0' and 'a1' of box 0 have the same role 'gpu0'", "inferred"),
    ("rank_twice.yaml", (3, 35), "rank 1 is given twice (also to 'gpu0')", "permutation"),
    ("ranks_missing.yaml", (6, 8), "rank order is not a permutation: 1 GPU(s) missing: gpu1", "exactly once"),
    ("ranks_not_gpu.yaml", (8, 5), "'ranks' entry 'nvs' names no GPU", "GPU names"),
    ("bad_expression.yaml", (4, 35), "is not allowed in a topology expression", None),
    ("unknown_variable.yaml", (4, 35), "unknown name 'nodes' (known: boxes)", None),
]


@pytest.mark.parametrize(("file", "where", "message", "hint"), CASES, ids=[case[0] for case in CASES])
def test_invalid_file_is_reported_with_its_location(
    file: str, where: tuple[int, int], message: str, hint: str | None
) -> None:
    path = BAD / file
    with pytest.raises(InputError) as caught:
        load(path)
    error = caught.value
    assert message in error.message
    assert error.location is not None
    assert (error.location.file, error.location.line, error.location.column) == (str(path), *where)
    if hint is not None:
        assert hint in (error.hint or "")
    assert str(error).startswith(f"{path}:{where[0]}:{where[1]}: error: ")


def test_every_bad_file_has_a_case() -> None:
    covered = {case[0] for case in CASES} | {"unused_template.yaml"}
    assert covered == {path.name for path in BAD.glob("*.yaml")}


def test_unused_template_is_a_located_warning() -> None:
    seen: list[TopologyWarning] = []
    topology = load(BAD / "unused_template.yaml", on_warning=seen.append)
    assert topology.num_gpus == 8
    assert [str(w.location) for w in seen] == [f"{BAD / 'unused_template.yaml'}:5:3"]
    assert "template 'spare' is never used" in seen[0].message


def test_unused_template_warns_through_python_warnings_by_default() -> None:
    with pytest.warns(UserWarning, match="template 'spare' is never used"):
        load(BAD / "unused_template.yaml")
