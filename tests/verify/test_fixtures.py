"""Every shared valid fixture passes; every invalid one fails naming the rule it breaks."""

from __future__ import annotations

import pytest

from collc.verify import verify_text

from .programs import FIXTURES, INVALID, VALID

#: the rule each invalid fixture breaks (fixtures/msccl/README.md)
BROKEN_RULE = {
    "chan_ge_nchannels.xml": "chan-ge-nchannels",
    "cnt_mismatch.xml": "cnt-mismatch",
    "dep_on_unflagged.xml": "dep-on-unpublished",
    "missing_wait_race.xml": "race",
    "multiline_attrs.xml": "xml-multiline-tag",
    "nop_no_dep.xml": "nop-without-dep",
    "oop_writes_input.xml": "writes-input",
    "same_conn_twice.xml": "duplicate-connection",
    "tabs.xml": "xml-tab",
    "xml_decl.xml": "xml-declaration",
}


def test_every_invalid_fixture_has_an_expected_rule() -> None:
    assert sorted(path.name for path in INVALID) == sorted(BROKEN_RULE)
    assert len(VALID) >= 3, f"fixtures not found under {FIXTURES}"


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
@pytest.mark.parametrize("runtime", ["msccl-executor", "rccl"])
def test_valid_fixture_passes(path, runtime: str) -> None:
    report = verify_text(path.read_text(), path.name, runtime=runtime)
    if runtime == "rccl" and path.name == "ring_allreduce_4x2.xml":  # composite steps: executor only
        assert report.rules() == {"rccl-step-type"}
        return
    assert report.problems == [], "\n".join(map(str, report.problems))
    assert report.ok
    assert any("one chunk per call" in note for note in report.notes)


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_invalid_fixture_fails_naming_its_rule(path) -> None:
    report = verify_text(path.read_text(), path.name)
    assert not report.ok
    assert BROKEN_RULE[path.name] in {problem.rule for problem in report.errors}, report.rules()
    assert all(problem.location is None or problem.location.file == path.name for problem in report.problems)


def test_lexical_errors_carry_line_and_column() -> None:
    path = next(p for p in INVALID if p.name == "tabs.xml")
    (problem,) = verify_text(path.read_text(), path.name).problems
    assert (problem.location.line, problem.location.column) == (2, 1)
    assert problem.message == "XML Parse error : expecting '<', got '\\t'"
