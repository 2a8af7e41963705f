"""Every rule id that docs/verify.md documents has a planted file that triggers it, and the limits the
rules enforce are pinned at their exact boundaries (one below passes, the limit fails)."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from collc.errors import InputError
from collc.msccl.program import Algorithm, GpuProgram, Step, Threadblock
from collc.msccl.writer import to_xml
from collc.topology.model import Metadata, Node, Topology
from collc.verify import verify_text
from collc.verify.report import MAX_LISTED
from collc.verify.runtimes import PROFILES

from .fixture_source import ring_allgather, ring_allreduce, tree_allreduce_3
from .programs import reducescatter_through_other_blocks

DOCS = Path(__file__).resolve().parents[2] / "docs" / "verify.md"

RING = to_xml(ring_allgather(4))
TREE = to_xml(tree_allreduce_3())
RING_ALLREDUCE = to_xml(ring_allreduce(4, 2))
STEP0 = '<step s="0" type="cpy" srcbuf="i" srcoff="0" dstbuf="o" dstoff="0" cnt="1"'


def documented_rules() -> set[str]:
    """The rule ids in the first column of the rule tables of docs/verify.md."""
    rules = set()
    for line in DOCS.read_text().splitlines():
        match = re.match(r"\| ((?:`[a-z0-9-]+`(?:, )?)+)", line)
        if match:
            rules.update(re.findall(r"`([a-z0-9-]+)`", match.group(1)))
    return rules


def edit(text: str, old: str, new: str, count: int = 1) -> str:
    assert old in text, old
    return text.replace(old, new, count)


def ir(change: Callable[[Algorithm], None], base: Callable[[], Algorithm] = lambda: ring_allgather(4)) -> str:
    algo = copy.deepcopy(base())
    change(algo)
    return to_xml(algo)


def tb(algo: Algorithm, rank: int, index: int = 0) -> Threadblock:
    return next(g for g in algo.gpus if g.id == rank).tbs[index]


def many_tbs(count: int) -> Callable[[Algorithm], None]:
    """Rank 0 gets ``count`` threadblocks: its ring threadblock and local copies of its block."""

    def change(algo: Algorithm) -> None:
        gpu = algo.gpus[0]
        gpu.tbs += [Threadblock(i, -1, -1, 0, [Step(0, "cpy", "i", 0, "s", i, 1)]) for i in range(1, count)]
        gpu.s_chunks = count

    return change


def depid(value: int) -> str:
    """130 threadblocks on rank 0 (legal on the legacy loader); tb 1 waits for tb ``value``."""

    def change(algo: Algorithm) -> None:
        many_tbs(130)(algo)
        tbs = algo.gpus[0].tbs
        tbs[1].steps[0].depid, tbs[1].steps[0].deps = value, 0
        tbs[value].steps[0].hasdep = 1

    return ir(change)


def steps(count: int) -> str:
    """Rank 0 gets a second threadblock of ``count`` local copies."""

    def change(algo: Algorithm) -> None:
        algo.gpus[0].s_chunks = 1
        algo.gpus[0].tbs.append(
            Threadblock(1, -1, -1, 0, [Step(s, "cpy", "i", 0, "s", 0, 1) for s in range(count)])
        )

    return ir(change)


def fan_out(receivers: int, chan: int = 0) -> str:
    """Rank 0 sends its block to ``receivers`` ranks from one threadblock each, all on one channel."""
    ngpus = receivers + 1
    root = GpuProgram(0, 1, ngpus, 0, [Threadblock(0, -1, -1, chan, [Step(0, "cpy", "i", 0, "o", 0, 1)])])
    root.tbs += [Threadblock(q, q, -1, chan, [Step(0, "s", "i", 0, "o", 0, 1)]) for q in range(1, ngpus)]
    leaves = [
        GpuProgram(q, 1, ngpus, 0, [Threadblock(0, -1, 0, chan, [Step(0, "r", "i", 0, "o", 0, 1)])])
        for q in range(1, ngpus)
    ]
    return to_xml(Algorithm("fan", "LL", chan + 1, ngpus, ngpus, "alltoall", 0, 1, 0, 0, [root, *leaves]))


def topology(sms: int, gpus: int = 4) -> Topology:
    nodes = tuple(Node(f"g{r}", "gpu") for r in range(gpus))
    return Topology("tiny", nodes, (), tuple(g.name for g in nodes), metadata=Metadata("X", sms_per_gpu=sms))


def _set(rank: int, index: int, **fields: object) -> Callable[[Algorithm], None]:
    def change(algo: Algorithm) -> None:
        for key, value in fields.items():
            setattr(tb(algo, rank).steps[index], key, value)

    return change


def _unpaired(algo: Algorithm) -> None:
    tb(algo, 0).send = 2


def _extra_send(algo: Algorithm) -> None:
    tb(algo, 0).steps.append(Step(len(tb(algo, 0).steps), "s", "o", 0, "o", 0, 1))


def _fifo_deadlock(algo: Algorithm) -> None:
    """Every rank receives before it sends: nobody starts."""
    for gpu in algo.gpus:
        steps = gpu.tbs[0].steps
        steps[1], steps[2] = steps[2], steps[1]
        for index, step in enumerate(steps):
            step.s = index


def _trailing_nop(algo: Algorithm) -> None:
    steps = tb(algo, 0).steps
    steps.append(Step(len(steps), "nop", "i", -1, "o", -1, 0, depid=0, deps=0))


def _undefined_read(algo: Algorithm) -> None:
    tb(algo, 0).steps[1].srcbuf = "o"
    tb(algo, 0).steps[1].srcoff = 1  # o[1] of rank 0 arrives only later


def _chain_cnt(algo: Algorithm) -> None:
    tb(algo, 0).steps[3].cnt = 1


def _chain_too_long(algo: Algorithm) -> None:
    gpu = algo.gpus[0]
    gpu.s_chunks = 40
    gpu.tbs[2].steps[0].hasdep = 0
    gpu.tbs[2].steps += [Step(1 + n, "re", "s", 2 * n, "o", 0, 2, hasdep=int(n == 15)) for n in range(16)]


def _duplicate_gpu(algo: Algorithm) -> None:
    algo.gpus.append(copy.deepcopy(algo.gpus[0]))


def _node_limit(algo: Algorithm) -> None:
    gpu = algo.gpus[0]
    gpu.s_chunks = 1
    for index in range(1, 70):
        gpu.tbs.append(Threadblock(index, -1, -1, 0, [Step(s, "cpy", "i", 0, "s", 0, 1) for s in range(60)]))


#: rule id -> (file text, runtime, topology)
PLANTED: dict[str, tuple[str, str, Topology | None]] = {}


def plant(rule: str, text: str, runtime: str = "msccl-executor", topo: Topology | None = None) -> None:
    PLANTED[rule] = (text, runtime, topo)


# reading (the runtime parser's lexical rules)
plant("xml-declaration", '<?xml version="1.0"?>\n' + RING)
plant("xml-tab", edit(RING, "\n  <gpu", "\n\t<gpu"))
plant("xml-text", edit(RING, "\n  <gpu", "\nx <gpu"))
plant("xml-multiline-tag", edit(RING, ' proto="', '\n proto="'))
plant("xml-quote", edit(RING, 'proto="Simple"', "proto='Simple'"))
plant("xml-syntax", edit(RING, 'proto="Simple"', 'proto = "Simple"'))
plant("xml-comment", "<!--x=1 -->\n" + RING)
plant(
    "xml-too-many-attributes",
    edit(RING, 'maxBytes="0"', 'maxBytes="0"' + "".join(f' a{i}="0"' for i in range(7))),
)
plant("xml-integer", edit(RING, 'nchannels="1"', 'nchannels="01"'))
plant("missing-attribute", edit(RING, ' hasdep="0"/>', "/>"))
plant("xml-first-element", "<gpu/>\n" + RING)
plant("xml-ignored", RING + "<extra/>\n")
plant("input-limit", edit(RING, 'ngpus="4"', 'ngpus="4097"'))
# the algorithm
plant("proto", edit(RING, 'proto="Simple"', 'proto="simple"'))
plant("coll", edit(RING, 'coll="allgather"', 'coll="reduce_scatter"'))
plant("nchannels", edit(RING, 'nchannels="1"', 'nchannels="33"'))
plant("nchunksperloop", edit(RING, 'nchunksperloop="4"', 'nchunksperloop="0"'))
plant("ngpus", edit(RING, 'ngpus="4"', 'ngpus="0"'))
plant("nchunks-not-multiple", edit(RING, 'nchunksperloop="4"', 'nchunksperloop="6"'))
plant("placement", edit(RING, 'outofplace="1"', 'outofplace="0"'))
plant("size-range", edit(RING, 'minBytes="0" maxBytes="0"', 'minBytes="64" maxBytes="32"'))
plant("name-too-long", edit(RING, 'name="ring_allgather_4"', f'name="{"x" * 256}"'))
# ranks, threadblocks and connections
plant("gpu-id", edit(RING, '<gpu id="3"', '<gpu id="4"'))
plant("duplicate-gpu", ir(_duplicate_gpu))
plant("missing-gpu", edit(edit(RING, 'ngpus="4"', 'ngpus="5"'), 'nchunksperloop="4"', 'nchunksperloop="5"'))
plant("buffer-size", edit(RING, 'o_chunks="4"', 'o_chunks="8"'))
plant("scratch-negative", edit(RING, 's_chunks="0"', 's_chunks="-1"'))
plant("tb-id", edit(RING, '<tb id="0" send="1"', '<tb id="-1" send="1"'))
plant(
    "duplicate-tb",
    ir(lambda a: a.gpus[0].tbs.append(Threadblock(0, -1, -1, 0, [Step(0, "cpy", "i", 0, "o", 0, 1)]))),
)
plant("tb-missing", edit(RING, '<tb id="0" send="1"', '<tb id="1" send="1"'))
plant("too-many-tbs", ir(many_tbs(65)), "rccl")
plant("tbs-exceed-sms", RING_ALLREDUCE, "msccl-executor", topology(1))
plant("topology-ngpus", RING, "msccl-executor", topology(8, gpus=8))
plant("parser-node-limit", ir(_node_limit))
plant("too-many-steps", steps(65))
plant("peer-self", edit(RING, '<tb id="0" send="1" recv="3"', '<tb id="0" send="0" recv="3"'))
plant("peer-range", edit(RING, '<tb id="0" send="1" recv="3"', '<tb id="0" send="7" recv="3"'))
plant("chan-range", ir(lambda a: setattr(tb(a, 0), "chan", 32)))
plant("chan-ge-nchannels", ir(lambda a: [setattr(g.tbs[0], "chan", 1) for g in a.gpus]))
plant(
    "duplicate-connection", ir(lambda a: setattr(a.gpus[0].tbs[1], "chan", 0), lambda: ring_allreduce(4, 2))
)
plant("tbs-per-channel", fan_out(33))
plant("unpaired-connection", ir(_unpaired))
plant("message-count", ir(_extra_send))
plant("cnt-mismatch", ir(_set(0, 0, cnt=1), tree_allreduce_3))
# steps and dependencies
plant("step-numbering", ir(_set(0, 3, s=7)))
plant("step-type", edit(RING, 'type="cpy"', 'type="copy"'))
plant("buffer-name", edit(RING, 'type="cpy" srcbuf="i"', 'type="cpy" srcbuf="x"'))
plant("rccl-step-type", RING_ALLREDUCE, "rccl")
plant("cnt-range", edit(RING, STEP0, STEP0.replace('cnt="1"', 'cnt="72"')))
plant("missing-peer", edit(RING, '<tb id="0" send="1" recv="3"', '<tb id="0" send="-1" recv="3"'))
plant("operand-range", ir(_set(0, 2, dstoff=4)))
plant("hasdep-range", ir(_set(0, 0, hasdep=2)))
plant("nop-without-dep", ir(_set(0, 1, depid=-1, deps=-1), tree_allreduce_3))
plant("nop-chain", ir(_set(0, 2, depid=-1, deps=-1), tree_allreduce_3))
plant("trailing-nop", ir(_trailing_nop, tree_allreduce_3))
plant("dep-target", ir(_set(0, 2, depid=0), tree_allreduce_3))
plant("dep-step-range", ir(_set(0, 2, deps=-1), tree_allreduce_3))
plant("depid-too-large", depid(128), "msccl-legacy")
plant("dep-on-unpublished", ir(_set(0, 3, hasdep=0), tree_allreduce_3))
plant("dep-on-unflagged-step", ir(lambda a: setattr(tb(a, 0, 1).steps[1], "deps", 2), tree_allreduce_3))
plant("unused-flag", ir(_set(2, 1, hasdep=1)))
plant("re-chain-too-long", ir(_chain_too_long, tree_allreduce_3))
plant("re-chain-cnt", ir(_chain_cnt, tree_allreduce_3))
# simulation
plant("deadlock", ir(_fifo_deadlock))
plant("leftover-message", ir(lambda a: [g.tbs[0].steps.pop() for g in a.gpus if g.id == 1]))
plant("race", ir(_set(0, 1, depid=-1, deps=-1), tree_allreduce_3))
plant("undefined-read", ir(_undefined_read))
plant("writes-input", ir(_set(1, 1, dstbuf="i"), tree_allreduce_3))
plant("postcondition", ir(_set(0, 0, srcoff=0, dstoff=1)))
plant("clobbers-input", to_xml(reducescatter_through_other_blocks()))


def report_of(rule: str):
    text, runtime, topo = PLANTED[rule]
    return verify_text(text, f"{rule}.xml", runtime=runtime, topology=topo)


def test_every_documented_rule_has_a_planted_file() -> None:
    assert sorted(documented_rules() - {"overlapping-selection"}) == sorted(PLANTED)


@pytest.mark.parametrize("rule", sorted(PLANTED))
def test_planted_file_triggers_its_rule(rule: str) -> None:
    if rule == "input-limit":
        with pytest.raises(InputError, match="at most 4,096"):
            report_of(rule)
        return
    report = report_of(rule)
    assert rule in report.rules(), f"{rule}: {[str(p) for p in report.problems]}"


# -- exact boundaries of the limits -------------------------------------------------------------------
def rules(text: str, runtime: str = "msccl-executor", topo: Topology | None = None) -> set[str]:
    return verify_text(text, "f.xml", runtime=runtime, topology=topo).rules()


@pytest.mark.parametrize("runtime", ["msccl-executor", "rccl"])
def test_cnt_must_be_below_72(runtime: str) -> None:
    limit = PROFILES[runtime].max_count
    assert limit == 72
    below = ir(
        lambda a: (
            setattr(a.gpus[0], "s_chunks", 71),
            setattr(tb(a, 0).steps[0], "dstbuf", "s"),
            setattr(tb(a, 0).steps[0], "cnt", 71),
        )
    )
    assert "cnt-range" not in rules(below, runtime)
    assert "cnt-range" in rules(edit(below, 'cnt="71"', 'cnt="72"'), runtime)


@pytest.mark.parametrize(("runtime", "limit"), [("msccl-executor", 128), ("rccl", 64), ("msccl-legacy", 216)])
def test_threadblocks_per_rank_at_the_runtime_limit(runtime: str, limit: int) -> None:
    assert PROFILES[runtime].max_threadblocks == limit
    assert "too-many-tbs" not in rules(ir(many_tbs(limit)), runtime)
    assert "too-many-tbs" in rules(ir(many_tbs(limit + 1)), runtime)


def test_threadblocks_per_channel_at_the_limit() -> None:
    assert PROFILES["msccl-executor"].max_tbs_per_channel == 32
    assert "tbs-per-channel" not in rules(fan_out(32))
    assert "tbs-per-channel" in rules(fan_out(33))


def test_threadblocks_against_the_sms_at_the_limit() -> None:
    assert "tbs-exceed-sms" not in rules(RING_ALLREDUCE, topo=topology(2))
    assert "tbs-exceed-sms" in rules(RING_ALLREDUCE, topo=topology(1))


@pytest.mark.parametrize("runtime", ["msccl-executor", "rccl"])
def test_channels_at_the_limit(runtime: str) -> None:
    limit = PROFILES[runtime].max_channels
    last = ir(lambda a: [setattr(g.tbs[0], "chan", limit - 1) for g in a.gpus])
    last = edit(last, 'nchannels="1"', f'nchannels="{limit}"')
    assert rules(last, runtime) & {"chan-range", "nchannels"} == set()
    beyond = ir(lambda a: [setattr(g.tbs[0], "chan", limit) for g in a.gpus])
    assert "chan-range" in rules(edit(beyond, 'nchannels="1"', f'nchannels="{limit}"'), runtime)
    assert "nchannels" in rules(edit(RING, 'nchannels="1"', f'nchannels="{limit + 1}"'), runtime)


def test_steps_per_threadblock_at_the_limit() -> None:
    assert "too-many-steps" not in rules(steps(64))
    assert "too-many-steps" in rules(steps(65))


def test_depid_at_the_int8_limit() -> None:
    assert "depid-too-large" not in rules(depid(127), "msccl-legacy")
    assert "depid-too-large" in rules(depid(128), "msccl-legacy")


# -- long reports: each rule lists MAX_LISTED problems, one entry counts the rest ---------------------------
def test_a_rule_lists_its_first_problems_and_counts_the_rest() -> None:
    """A file of 450,000 misnumbered nops used to list 900,001 problems (244 MB of output); now each rule
    lists MAX_LISTED and one entry stands for the rest, an error where the rest holds errors."""
    misnumbered = re.sub(r'<step s="\d+"', '<step s="0"', RING_ALLREDUCE)
    report = verify_text(misnumbered, "f.xml")
    wrong = RING_ALLREDUCE.count("<step ") - RING_ALLREDUCE.count('<step s="0"')
    listed = [p for p in report.problems if p.rule == "step-numbering" and not p.omitted]
    (rest,) = [p for p in report.problems if p.rule == "step-numbering" and p.omitted]
    assert wrong > MAX_LISTED and len(listed) == MAX_LISTED
    assert rest.omitted == wrong - MAX_LISTED and rest.severity == "error"
    assert rest.message == f"… and {wrong - MAX_LISTED} more 'step-numbering' problems"
    assert (
        report.to_dict()["problem_count"] == sum(report.counts()) == len(report.problems) - 1 + rest.omitted
    )


def test_many_warnings_of_one_rule_leave_the_file_valid() -> None:
    """The entry that counts unlisted warnings is a warning: it must not make a valid file invalid."""
    flagged = RING_ALLREDUCE.replace('hasdep="0"', 'hasdep="1"')
    report = verify_text(flagged, "f.xml")
    (rest,) = [p for p in report.problems if p.rule == "unused-flag" and p.omitted]
    assert report.ok and rest.severity == "warning"
    assert report.counts() == (0, MAX_LISTED + rest.omitted)


def test_what_the_parser_ignores_is_listed_as_the_lint_lists() -> None:
    ignored = edit(RING, "</tb>", "<unknown/>" * 20 + "</tb>")
    report = verify_text(ignored, "f.xml")
    notes = [p for p in report.problems if p.rule == "xml-ignored"]
    assert len(notes) == MAX_LISTED + 1 and notes[-1].omitted == 20 - MAX_LISTED and report.ok


# -- size-range: the bounds as the scheduler compares them (size_t nBytes against int64 bounds) -------------
def _size_range(min_bytes: int, max_bytes: int) -> list[str]:
    text = edit(RING, 'minBytes="0" maxBytes="0"', f'minBytes="{min_bytes}" maxBytes="{max_bytes}"')
    report = verify_text(text, "f.xml")
    return [f"{p.message} | {p.hint}" for p in report.problems if p.rule == "size-range"]


def test_a_negative_min_bytes_says_why_it_selects_nothing() -> None:
    """minBytes=-5 with maxBytes=0 used to read "no call size satisfies minBytes=-5 ≤ nBytes ≤
    maxBytes=0" with the fix "maxBytes=0 means unbounded", which contradicts itself."""
    (message,) = _size_range(-5, 0)
    assert message.startswith("minBytes=-5 selects no call: the runtime compares the call's nBytes")
    assert "-5 stands for 18,446,744,073,709,551,611 bytes" in message
    assert message.endswith(
        '| write minBytes="0" to take calls of every size, or the smallest call size the file is for'
    )


def test_a_negative_max_bytes_bounds_nothing_and_crossed_bounds_select_nothing() -> None:
    (negative,) = _size_range(0, -1)
    assert negative.startswith("maxBytes=-1 bounds nothing") and 'write maxBytes="0"' in negative
    (crossed,) = _size_range(64, 32)
    assert crossed.startswith("no call size satisfies minBytes=64 ≤ nBytes ≤ maxBytes=32 | swap the bounds")
    assert _size_range(0, 0) == _size_range(32, 32) == []
