"""The suite's own plumbing: tests that read one shared compile run in one process (tests/compiled.py)."""

import os

from compiled import same_worker


@same_worker("plumbing", 0)
def test_grouped_tests_are_sent_to_one_worker(request):
    """pytest-xdist's loadgroup marks a grouped test's id with its group and sends the group to one
    worker; on pytest 9.2 it silently stopped (pytest-dev/pytest-xdist#1386), and every shared
    compile was then made once per worker."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        assert request.node.nodeid.endswith("@plumbingx0")
