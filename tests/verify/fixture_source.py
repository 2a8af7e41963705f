"""The MSCCL XML fixtures of tests/verify/fixtures/, built here from first principles.

Three small correct programs (a 4-GPU ring allgather, a 4-GPU two-channel ring allreduce with the
composite step types, a 3-GPU tree allreduce on LL with scratch, a ``nop``, a fused ``re`` chain and
cross-threadblock waits) and, for each class of defect the verifier must catch, one variant that
breaks exactly that rule. The files under fixtures/ are this module's output, committed so that other
tools (and people) can read them; ``test_fixture_files_match_their_source`` keeps them in sync, and
``python tests/verify/fixture_source.py`` rewrites them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

from collc.msccl.program import Algorithm, GpuProgram, Step, Threadblock
from collc.msccl.writer import to_xml

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def ring_allgather(ngpus: int, proto: str = "Simple") -> Algorithm:
    """Ring allgather, out-of-place, one channel: rank r copies its block into o[r], sends it to r+1,
    then receives each other block from r-1 and forwards all but the last. Only s/r/cpy."""
    gpus = []
    for rank in range(ngpus):
        steps = [Step(0, "cpy", "i", 0, "o", rank, 1), Step(1, "s", "i", 0, "o", rank, 1)]
        for hop in range(1, ngpus):
            block = (rank - hop) % ngpus
            steps.append(Step(len(steps), "r", "o", block, "o", block, 1))
            if hop < ngpus - 1:
                steps.append(Step(len(steps), "s", "o", block, "o", block, 1))
        tb = Threadblock(0, (rank + 1) % ngpus, (rank - 1) % ngpus, 0, steps)
        gpus.append(GpuProgram(rank, 1, ngpus, 0, [tb]))
    return Algorithm(f"ring_allgather_{ngpus}", proto, 1, ngpus, ngpus, "allgather", 0, 1, 0, 0, gpus)


def ring_allreduce(ngpus: int, channels: int, proto: str = "Simple") -> Algorithm:
    """Ring allreduce (reduce-scatter then allgather), out-of-place, one ring per channel.

    Threadblock h of every rank owns chunks ``ngpus*h …``; writing x for chunk ``ngpus*h + x mod
    ngpus``, rank r starts the partial sum of r-1 (``s``), adds its input to the sums arriving for
    r-2 … r-(G-1) and passes them on (``rrs``), completes r (``rrcs``), stores and forwards the
    finished r-1 … r-(G-2) (``rcs``) and stores the last one (``r``). Every connection carries
    2(G-1) one-chunk messages; the program relies on a FIFO of two calls (Simple's)."""
    gpus = []
    for rank in range(ngpus):
        tbs = []
        for h in range(channels):

            def chunk(x: int, h: int = h) -> int:
                return ngpus * h + x % ngpus

            steps = [Step(0, "s", "i", chunk(rank - 1), "o", chunk(rank - 1), 1)]
            steps += [Step(0, "rrs", "i", chunk(rank - d), "o", chunk(rank - d), 1) for d in range(2, ngpus)]
            steps.append(Step(0, "rrcs", "i", chunk(rank), "o", chunk(rank), 1))
            steps += [
                Step(0, "rcs", "o", chunk(rank - d), "o", chunk(rank - d), 1) for d in range(1, ngpus - 1)
            ]
            steps.append(Step(0, "r", "o", chunk(rank + 1), "o", chunk(rank + 1), 1))
            for index, step in enumerate(steps):
                step.s = index
            tbs.append(Threadblock(h, (rank + 1) % ngpus, (rank - 1) % ngpus, h, steps))
        nchunks = ngpus * channels
        gpus.append(GpuProgram(rank, nchunks, nchunks, 0, tbs))
    name = f"ring_allreduce_{ngpus}x{channels}"
    return Algorithm(name, proto, channels, ngpus * channels, ngpus, "allreduce", 0, 1, 0, 0, gpus)


def tree_allreduce_3() -> Algorithm:
    """3-GPU tree allreduce (root 0, leaves 1 and 2), out-of-place, LL, up to 64 KiB.

    Root tb 0 receives leaf 1's input into s[0..1]; a nop waits for tb 2's copy o = i, then a fused
    ``re`` chain (waiting for tb 1's receive of leaf 2 into s[2..3]) adds both and publishes; tb 1
    sends the result to leaf 2 after that publish, tb 0 to leaf 1. Leaves send their input and
    receive the result."""
    root = GpuProgram(
        0,
        2,
        2,
        4,
        [
            Threadblock(
                0,
                1,
                1,
                0,
                [
                    Step(0, "r", "o", 0, "s", 0, 2),
                    Step(1, "nop", "i", -1, "o", -1, 0, depid=2, deps=0),
                    Step(2, "re", "s", 0, "o", 0, 2, depid=1, deps=0),
                    Step(3, "re", "s", 2, "o", 0, 2, hasdep=1),
                    Step(4, "s", "o", 0, "o", 0, 2),
                ],
            ),
            Threadblock(
                1, 2, 2, 0, [Step(0, "r", "o", 0, "s", 2, 2, hasdep=1), Step(1, "s", "o", 0, "o", 0, 2, 0, 3)]
            ),
            Threadblock(2, -1, -1, 0, [Step(0, "cpy", "i", 0, "o", 0, 2, hasdep=1)]),
        ],
    )
    leaves = [
        GpuProgram(
            leaf,
            2,
            2,
            0,
            [Threadblock(0, 0, 0, 0, [Step(0, "s", "i", 0, "o", 0, 2), Step(1, "r", "i", 0, "o", 0, 2)])],
        )
        for leaf in (1, 2)
    ]
    return Algorithm("tree_allreduce_3", "LL", 1, 2, 3, "allreduce", 0, 1, 0, 65536, [root, *leaves])


def _tb(algo: Algorithm, rank: int, tb: int) -> Threadblock:
    return next(t for t in next(g for g in algo.gpus if g.id == rank).tbs if t.id == tb)


def _variant(make: Callable[[], Algorithm], change: Callable[[Algorithm], None]) -> str:
    algo = copy.deepcopy(make())
    change(algo)
    return to_xml(algo)


def _set(rank: int, tb: int, index: int, **fields: int | str) -> Callable[[Algorithm], None]:
    def change(algo: Algorithm) -> None:
        for key, value in fields.items():
            setattr(_tb(algo, rank, tb).steps[index], key, value)

    return change


def _chan_one_everywhere(algo: Algorithm) -> None:
    for gpu in algo.gpus:
        for tb in gpu.tbs:
            tb.chan = 1


def _second_tb_on_channel_zero(algo: Algorithm) -> None:
    _tb(algo, 0, 1).chan = 0


def _ring_allgather_4() -> Algorithm:
    return ring_allgather(4)


def _ring_allreduce_4x2() -> Algorithm:
    return ring_allreduce(4, 2)


def _tabs(text: str) -> str:
    return "\n".join("\t" + line.lstrip(" ") if line.startswith("  ") else line for line in text.split("\n"))


def _multiline(text: str) -> str:
    return text.replace(' nchannels="', '\n nchannels="', 1)


#: valid fixture name -> its program
VALID_PROGRAMS: dict[str, Callable[[], Algorithm]] = {
    "ring_allgather_4": _ring_allgather_4,
    "ring_allreduce_4x2": _ring_allreduce_4x2,
    "tree_allreduce_3": tree_allreduce_3,
}


def invalid_texts() -> dict[str, tuple[str, str]]:
    """Invalid fixture name -> (the rule it breaks, its text). Each breaks exactly one rule."""
    allgather = to_xml(ring_allgather(4))
    return {
        "xml_decl": ("xml-declaration", '<?xml version="1.0"?>\n' + allgather),
        "tabs": ("xml-tab", _tabs(allgather)),
        "multiline_attrs": ("xml-multiline-tag", _multiline(allgather)),
        "chan_ge_nchannels": ("chan-ge-nchannels", _variant(_ring_allgather_4, _chan_one_everywhere)),
        "same_conn_twice": (
            "duplicate-connection",
            _variant(_ring_allreduce_4x2, _second_tb_on_channel_zero),
        ),
        # the nop loses its dependency: dropped without counting a position, so later ones lag
        "nop_no_dep": ("nop-without-dep", _variant(tree_allreduce_3, _set(0, 0, 1, depid=-1, deps=-1))),
        # tb 1 waits for the chain's position 3, which no longer publishes (nor does anything after it)
        "dep_on_unflagged": ("dep-on-unpublished", _variant(tree_allreduce_3, _set(0, 0, 3, hasdep=0))),
        # leaf 1 sends 2 chunks, root's receive expects 1
        "cnt_mismatch": ("cnt-mismatch", _variant(tree_allreduce_3, _set(0, 0, 0, cnt=1))),
        # tb 1 sends the result without waiting for the reduction
        "missing_wait_race": ("race", _variant(tree_allreduce_3, _set(0, 1, 1, depid=-1, deps=-1))),
        # leaf 1 receives the result into its input buffer
        "oop_writes_input": ("writes-input", _variant(tree_allreduce_3, _set(1, 0, 1, dstbuf="i"))),
    }


def header(origin: str) -> str:
    """The comment each fixture file starts with (plain words: the runtime parser rejects a comment
    whose first word contains ``=``)."""
    return f"<!-- {origin}; written by tests/verify/fixture_source.py -->\n"


def expected_files() -> dict[Path, str]:
    """Every fixture file and its exact text."""
    files = {
        FIXTURES / "valid" / f"{name}.xml": header(f"valid fixture {name}") + to_xml(make())
        for name, make in VALID_PROGRAMS.items()
    }
    for name, (rule, text) in invalid_texts().items():
        # lexical fixtures keep the broken line where the test expects it: no header before them
        lexical = rule.startswith("xml-")
        files[FIXTURES / "invalid" / f"{name}.xml"] = text if lexical else header(f"breaks {rule}") + text
    return files


if __name__ == "__main__":
    for path, text in expected_files().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
