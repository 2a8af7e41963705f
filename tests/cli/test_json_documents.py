"""``--json`` prints one JSON document on stdout for every outcome, and a command's documents all have
the same keys (docs/compile.md §1): success, a request that cannot be met (exit 1), bad input (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import collc.cli.bound
from collc.cli import main
from collc.cli.bound import BOUND_KEYS
from collc.cli.diff import DIFF_KEYS
from collc.cli.simulate import DIRECTORY_KEYS, SWEEP_KEYS
from collc.cli.topo import SHOW_KEYS
from collc.cli.trees import FOREST_KEYS
from collc.cli.verify import VERIFY_KEYS
from collc.compile.bundle import BUNDLE_KEYS
from collc.compile.report import REPORT_KEYS
from collc.errors import InvariantError
from collc.jsondoc import OUTCOME_KEYS, json_document
from fabrics import SLOW_NO_WIN, SLOW_RING, switch_fabric

QUAD = switch_fabric("quad")
# line 5, column 37: the bandwidth
NEGATIVE = """\
nodes: [{name: g, kind: gpu, count: 2}]
links:
  - {src: g0, dst: g1, bandwidth: 25}
  - {src: g1, dst: g0, bandwidth: 25}
  - {src: g0, dst: g1, bandwidth:   -25}
"""


def _document(args: list[str], exit_code: int) -> dict[str, object]:
    """The one JSON document a run prints on stdout, checked to exit with ``exit_code``; a failure also
    writes its one located line (and hint) to stderr."""
    result = CliRunner().invoke(main, args)
    assert result.exit_code == exit_code, (result.stdout, result.stderr)
    document = json.loads(result.stdout)
    assert isinstance(document, dict)
    if exit_code:
        assert "error:" in result.stderr.lower()
        assert "Traceback" not in result.stderr
    return document


@pytest.fixture
def fabrics(tmp_path: Path) -> dict[str, str]:
    paths = {}
    for name, text in {"quad": QUAD, "negative": NEGATIVE, "slow": SLOW_RING}.items():
        (tmp_path / f"{name}.yaml").write_text(text)
        paths[name] = str(tmp_path / f"{name}.yaml")
    return paths


def test_compile_prints_the_same_keys_when_it_writes_when_it_wins_nowhere_and_on_bad_input(tmp_path, fabrics):
    target = str(tmp_path / "x.xml")
    written = _document(["compile", fabrics["slow"], *SLOW_NO_WIN, "-o", target, "--json", "--force"], 0)
    no_win = _document(["compile", fabrics["slow"], *SLOW_NO_WIN, "-o", target + ".2", "--json"], 1)
    bad = _document(["compile", fabrics["negative"], "-o", target + ".3", "--json"], 2)
    assert list(written) == list(no_win) == list(bad) == [*REPORT_KEYS, *OUTCOME_KEYS]
    assert written["file"] == target and written["exit_code"] == 0 and written["error"] is None
    assert no_win["file"] is None and no_win["exit_code"] == 1 and "no file written" in no_win["error"]
    assert no_win["k"] >= 1 and no_win["lanes"] is None and no_win["notes"]  # how it was chosen
    assert bad == {
        **dict.fromkeys(REPORT_KEYS),
        "error": "bandwidth must be > 0, got -25",
        "hint": "remove the link instead of giving it no bandwidth",
        "location": {"file": fabrics["negative"], "line": 5, "column": 37},
        "exit_code": 2,
    }


def test_compile_json_documents_an_option_error_and_a_path_it_must_not_write(tmp_path, fabrics):
    """Errors raised while click reads the options (before the command runs) print the document too."""
    unwritable = _document(["compile", fabrics["quad"], "-o", "/nonexistent/dir/x.xml", "--json"], 2)
    assert list(unwritable) == [*REPORT_KEYS, *OUTCOME_KEYS] and "does not exist" in unwritable["error"]
    choice = _document(
        ["compile", fabrics["quad"], "-o", str(tmp_path / "x.xml"), "--coll", "x", "--json"], 2
    )
    assert list(choice) == [*REPORT_KEYS, *OUTCOME_KEYS] and "--coll" in choice["error"]
    bundle = _document(["compile", fabrics["negative"], "--bundle", str(tmp_path / "b"), "--json"], 2)
    assert list(bundle) == [*BUNDLE_KEYS, *OUTCOME_KEYS] and bundle["location"]["line"] == 5
    # a --bundle path refused while click reads it: the bundle's keys, not -o's
    (tmp_path / "file").write_text("x")
    for directory in (tmp_path / "missing" / "b", tmp_path / "file"):
        refused = _document(["compile", fabrics["quad"], "--bundle", str(directory), "--json"], 2)
        assert list(refused) == [*BUNDLE_KEYS, *OUTCOME_KEYS] and "--bundle" in refused["error"]


@pytest.mark.parametrize(
    ("args", "keys"),
    [
        (["bound", "{quad}"], BOUND_KEYS),
        (["trees", "{quad}"], FOREST_KEYS),
        (["topo", "show", "{quad}"], SHOW_KEYS),
        (["simulate", "{quad}", "--sizes", "1MiB"], SWEEP_KEYS),
        (["diff", "{quad}", "--derate", "link:gpu0-sw=50%"], DIFF_KEYS),
    ],
)
def test_every_json_command_prints_its_keys_on_success_and_on_a_topology_error(fabrics, args, keys):
    success = _document([*(arg.format(**fabrics) for arg in args), "--json"], 0)
    bad = [fabrics["negative"] if arg == "{quad}" else arg for arg in args]
    failure = _document([*bad, "--json"], 2)
    assert set(success) == set(failure) == {*keys, *OUTCOME_KEYS}  # bound and diff sort their keys
    assert success["exit_code"] == 0 and success["error"] is None
    assert failure["location"] == {"file": fabrics["negative"], "line": 5, "column": 37}
    assert all(failure[key] is None for key in keys)


def test_verify_and_a_simulated_directory_print_their_keys_for_every_outcome(tmp_path, fabrics):
    target = tmp_path / "algos" / "x.xml"
    target.parent.mkdir()
    assert CliRunner().invoke(main, ["compile", fabrics["slow"], "-o", str(target), "--force"]).exit_code == 0
    valid = _document(["verify", str(target), "--json"], 0)
    unreadable = _document(["verify", str(tmp_path / "missing.xml"), "--json"], 2)
    refused = _document(["verify", str(target), "--set", "boxes=2", "--json"], 2)
    assert set(valid) == set(unreadable) == set(refused) == {*VERIFY_KEYS, *OUTCOME_KEYS}
    assert valid["ok"] is True and unreadable["ok"] is False and unreadable["exit_code"] == 2
    assert refused["ok"] is None and refused["error"] == "--set needs --topology"
    directory = ["simulate", fabrics["slow"], str(target.parent), "--sizes", "1MiB"]
    simulated = _document([*directory, "--json"], 0)
    wrong = _document([*directory, "--proto", "LL", "--json"], 2)
    assert list(simulated) == list(wrong) == [*DIRECTORY_KEYS, *OUTCOME_KEYS]


def test_an_unexpected_failure_prints_the_document_with_its_one_line(monkeypatch, fabrics):
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(collc.cli.bound, "compute_bounds", broken)
    document = _document(["bound", fabrics["quad"], "--json"], 2)
    assert list(document) == [*BOUND_KEYS, *OUTCOME_KEYS]
    assert document["error"] == "unexpected RuntimeError: boom" and "--debug" in document["hint"]


def test_without_json_a_failure_prints_nothing_on_stdout(fabrics):
    result = CliRunner().invoke(main, ["bound", fabrics["negative"]])
    assert result.exit_code == 2 and result.stdout == ""


def test_a_document_refuses_a_key_its_command_does_not_declare():
    assert json_document(("a", "b"), {"a": 1}, exit_code=1) == {
        "a": 1,
        "b": None,
        "error": None,
        "hint": None,
        "location": None,
        "exit_code": 1,
    }
    with pytest.raises(InvariantError, match="'c'"):
        json_document(("a",), {"c": 1})
    with pytest.raises(InvariantError, match="'error'"):
        json_document(("a", "error"), {"error": "x"})
