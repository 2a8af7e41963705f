"""Every valid fixture passes; every invalid one fails naming the rule it breaks; the files are what
fixture_source.py writes."""

from __future__ import annotations

import pytest

from collc.verify import verify_text

from .fixture_source import expected_files, invalid_texts
from .programs import FIXTURES, INVALID, VALID

#: the rule each invalid fixture breaks (fixture_source.py says how)
BROKEN_RULE = {f"{name}.xml": rule for name, (rule, _) in invalid_texts().items()}


def test_fixture_files_match_their_source() -> None:
    expected = expected_files()
    assert sorted(expected) == sorted([*VALID, *INVALID])
    stale = [path.name for path, text in expected.items() if path.read_text() != text]
    assert not stale, f"run python tests/verify/fixture_source.py to rewrite {stale}"


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
