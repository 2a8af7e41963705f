"""Write an :class:`~collc.msccl.program.Algorithm` as MSCCL XML in the one format every runtime parses.

The runtimes do not use a real XML parser, so the writer emits a single canonical
layout: ``<algo>`` as the first element, no XML declaration, two-space
indentation, one element per line with all its attributes on that line, ``key="value"`` with double
quotes and exactly one space between attributes, plain decimal integers, every required attribute
(also the ten of a ``nop`` step), elements in id order and a trailing newline. The same IR always
gives byte-identical text.
"""

from __future__ import annotations

from collections.abc import Iterable

from collc.errors import InvariantError
from collc.msccl.program import (
    BUFFERS,
    COLLECTIVES,
    PROTOCOLS,
    STEP_TYPES,
    TARGET_RUNTIMES,
    Algorithm,
    GpuProgram,
    Step,
)

#: Attribute values are not length-checked by the runtime's parser, but names are limited to 255 and
#: values should stay below 256 characters.
MAX_VALUE_LENGTH = 255

#: Characters that would break the hand-written parser inside a value: quotes end it, entities are
#: not decoded, tabs and newlines are not allowed inside a tag.
_FORBIDDEN_IN_VALUE = frozenset('"<>&\t\n\r')
_STEP_TYPES = frozenset(STEP_TYPES)
_BUFFERS = frozenset(BUFFERS)


def to_xml(algo: Algorithm, *, runtime: str | None = None) -> str:
    """The runtime-safe XML text of ``algo``; raises ``InvariantError`` when a field holds a value the
    runtime could not read back (wrong type, unknown name). ``runtime`` is recorded as the last
    attribute of ``<algo>`` (``runtime="rccl"``) so that ``collc verify`` checks the file against the
    runtime it was written for; the runtimes' parsers look attributes up by name and ignore it."""
    attributes = _algo_attributes(algo)
    if runtime is not None:
        _require_choice("runtime", runtime, TARGET_RUNTIMES)
        attributes.append(("runtime", runtime))
    lines = [_tag(0, "algo", attributes, closed=False)]
    for gpu in sorted(algo.gpus, key=lambda g: g.id):
        lines.extend(_gpu_lines(gpu))
    lines.append("</algo>")
    return "\n".join(lines) + "\n"


def _algo_attributes(algo: Algorithm) -> list[tuple[str, str]]:
    _require_choice("algo proto", algo.proto, PROTOCOLS)
    _require_choice("algo coll", algo.coll, COLLECTIVES)
    return [
        ("name", _text("algo name", algo.name)),
        ("proto", algo.proto),
        ("nchannels", _integer("algo nchannels", algo.nchannels)),
        ("nchunksperloop", _integer("algo nchunksperloop", algo.nchunksperloop)),
        ("ngpus", _integer("algo ngpus", algo.ngpus)),
        ("coll", algo.coll),
        ("inplace", _integer("algo inplace", algo.inplace)),
        ("outofplace", _integer("algo outofplace", algo.outofplace)),
        ("minBytes", _integer("algo minBytes", algo.min_bytes)),
        ("maxBytes", _integer("algo maxBytes", algo.max_bytes)),
    ]


def _gpu_lines(gpu: GpuProgram) -> Iterable[str]:
    where = f"gpu {gpu.id}"
    gpu_attributes = [
        ("id", _integer(f"{where} id", gpu.id)),
        ("i_chunks", _integer(f"{where} i_chunks", gpu.i_chunks)),
        ("o_chunks", _integer(f"{where} o_chunks", gpu.o_chunks)),
        ("s_chunks", _integer(f"{where} s_chunks", gpu.s_chunks)),
    ]
    yield _tag(1, "gpu", gpu_attributes, closed=False)
    for tb in sorted(gpu.tbs, key=lambda t: t.id):
        tb_where = f"{where} tb {tb.id}"
        tb_attributes = [
            ("id", _integer(f"{tb_where} id", tb.id)),
            ("send", _integer(f"{tb_where} send", tb.send)),
            ("recv", _integer(f"{tb_where} recv", tb.recv)),
            ("chan", _integer(f"{tb_where} chan", tb.chan)),
        ]
        yield _tag(2, "tb", tb_attributes, closed=False)
        for step in tb.steps:
            yield _plain_step_line(step) or _tag(
                3, "step", _step_attributes(f"{tb_where} step {step.s}", step), closed=True
            )
        yield "    </tb>"
    yield "  </gpu>"


def _plain_step_line(step: Step) -> str | None:
    """The line of a step whose fields are all plain ints and known names (every step the lowering
    makes), written directly: the same text as the checked path below, at a fraction of its cost on
    files of 100,000s of steps. None for anything else, which the checked path then writes or rejects.
    """
    numbers = (step.s, step.srcoff, step.dstoff, step.cnt, step.depid, step.deps, step.hasdep)
    if (
        step.type not in _STEP_TYPES
        or step.srcbuf not in _BUFFERS
        or step.dstbuf not in _BUFFERS
        or any(type(number) is not int for number in numbers)
    ):
        return None
    return (
        f'      <step s="{step.s}" type="{step.type}" srcbuf="{step.srcbuf}" srcoff="{step.srcoff}" '
        f'dstbuf="{step.dstbuf}" dstoff="{step.dstoff}" cnt="{step.cnt}" depid="{step.depid}" '
        f'deps="{step.deps}" hasdep="{step.hasdep}"/>'
    )


def _step_attributes(where: str, step: Step) -> list[tuple[str, str]]:
    """The ten step attributes in the order msccl-tools uses."""
    _require_choice(f"{where} type", step.type, STEP_TYPES)
    _require_choice(f"{where} srcbuf", step.srcbuf, BUFFERS)
    _require_choice(f"{where} dstbuf", step.dstbuf, BUFFERS)
    return [
        ("s", _integer(f"{where} s", step.s)),
        ("type", step.type),
        ("srcbuf", step.srcbuf),
        ("srcoff", _integer(f"{where} srcoff", step.srcoff)),
        ("dstbuf", step.dstbuf),
        ("dstoff", _integer(f"{where} dstoff", step.dstoff)),
        ("cnt", _integer(f"{where} cnt", step.cnt)),
        ("depid", _integer(f"{where} depid", step.depid)),
        ("deps", _integer(f"{where} deps", step.deps)),
        ("hasdep", _integer(f"{where} hasdep", step.hasdep)),
    ]


def _tag(depth: int, name: str, attributes: list[tuple[str, str]], *, closed: bool) -> str:
    body = " ".join(f'{key}="{value}"' for key, value in attributes)
    return f"{'  ' * depth}<{name} {body}{'/>' if closed else '>'}"


def _integer(what: str, value: object) -> str:
    """Plain decimal (the runtime reads integers with ``strtol(…, 0)``)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvariantError(f"{what} must be an int to be written as MSCCL XML, got {value!r}")
    return str(value)


def _text(what: str, value: object) -> str:
    if not isinstance(value, str) or len(value) > MAX_VALUE_LENGTH:
        raise InvariantError(
            f"{what} must be a string of at most {MAX_VALUE_LENGTH} characters, got {value!r}"
        )
    bad = sorted(set(value) & _FORBIDDEN_IN_VALUE)
    if bad:
        raise InvariantError(f"{what} {value!r} contains {bad}, which the runtime's XML parser cannot read")
    return value


def _require_choice(what: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise InvariantError(f"{what} is {value!r}; the runtime accepts only {', '.join(choices)}")
