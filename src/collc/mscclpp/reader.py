"""Read an MSCCL++ execution plan (JSON) into a typed, located model, with the executor's parser rules.

MSCCL++ v0.10.x has no schema for plans: its executor (``ExecutionPlan::Impl`` in
``src/core/executor/execution_plan.cc``) reads the JSON with nlohmann::json and trusts it. A missing
required field or a value of the wrong type throws inside the executor at the first call, an unknown op
or buffer letter throws "Invalid operation type", and an unknown field is silently ignored (so a
misspelt optional field quietly changes what the plan does). This reader applies the same rules before
a GPU sees the plan and names the JSON path and line of the first violation, e.g.
``gpus[3].threadblocks[2].ops[5].name: unknown op 'putt'``. Checks that need the whole plan (channel
and buffer indices, chunk bounds, pairing) are in :mod:`collc.mscclpp.verify`.

Hostile input is bounded: the file size, the number of ranks and the number of operations are checked
against :mod:`collc.input_limits` before the work they cause, and nesting is bounded by the parser.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import json.decoder
import json.scanner
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from collc.errors import InputError, Location, clipped
from collc.input_limits import MAX_GPUS, MAX_NESTING, MAX_PLAN_BYTES, MAX_PLAN_OPS, MAX_PLAN_THREADBLOCKS
from collc.jsondoc import DuplicateKey, unique_members

#: the v0.10.x op names (``getOpType``); every other name makes the executor throw
OP_NAMES = (
    "nop",
    "barrier",
    "put",
    "pws",
    "pwsf",
    "get",
    "copy",
    "signal",
    "wait",
    "flush",
    "re",
    "res",
    "rre",
    "rres",
    "ppkt",
    "rppkt",
    "respkt",
    "cpkt",
    "upkt",
    "repkt",
    "recpkt",
    "recspkt",
    "glres",
    "gstore",
    "gstorepkt",
    "rlxsignal",
    "rlxwait",
    "pipeline",
    "sem_acquire",
    "sem_release",
)
#: buffer letters: the user's send buffer, the user's receive buffer, the executor's scratch
BUFFER_TYPES = ("i", "o", "s")
CHANNEL_TYPES = ("memory", "port", "switch", "none")

#: the fields the v0.10.x parser reads, per JSON object; any other field is ignored by the executor
_KNOWN_FIELDS = {
    "plan": {
        "name",
        "collective",
        "protocol",
        "inplace",
        "reuse_resources",
        "use_double_scratch_buffer",
        "buffer_alignment",
        "num_threads_per_block",
        "min_message_size",
        "max_message_size",
        "gpus",
    },
    "gpu": {
        "id",
        "input_chunks",
        "output_chunks",
        "scratch_chunks",
        "channels",
        "remote_buffers",
        "semaphores",
        "threadblocks",
    },
    "channel": {"channel_type", "connected_to", "buffer_type", "rank_groups", "buff"},
    "rank_group": {"size", "ranks"},
    "remote_buffer": {"rank", "type", "access_channel_types"},
    "semaphore": {"init_value"},
    "threadblock": {"id", "ops", "channels", "remote_buffer_refs"},
    "tb_channel": {"channel_type", "channel_ids", "buff"},
    "remote_buffer_ref": {"access_channel_type", "remote_buffer_ids"},
    "op": {
        "name",
        "channel_type",
        "channel_ids",
        "tbg_info",
        "src_buff",
        "dst_buff",
        "barrier_id",
        "num_threadblocks",
        "semaphore_ids",
        "iter_context",
        "ops",
        "reduce_op",
    },
    "buff": {"type", "buffer_id", "switch_channel_id", "index", "size"},
    "tbg_info": {"tb_id", "tbg_size"},
    "iter_context": {"unit_size", "num_chunks"},
}

#: the largest unsigned value the executor stores a byte count in
_U64 = 2**64 - 1
#: the largest chunk index or count the executor's 32-bit offset arithmetic takes
_U32 = 2**32 - 1

JsonPath = tuple[str | int, ...]


def render_path(path: JsonPath) -> str:
    """``('gpus', 3, 'ops', 5, 'name')`` -> ``gpus[3].ops[5].name`` (the way errors name a place)."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "the plan"


class PlanSyntaxError(InputError):
    """The plan breaks a rule of the executor's parser; ``rule`` is the stable id the report shows."""

    def __init__(self, rule: str, message: str, *, location: Location | None = None, hint: str | None = None):
        super().__init__(message, location=location, hint=hint)
        self.rule = rule


@dataclass(frozen=True)
class BufferRef:
    """One entry of an op's ``src_buff``/``dst_buff``: a local buffer (``buffer``), a remote buffer
    (``buffer_id``, an index into the threadblock's remote buffers of the op's channel type) or a switch
    channel; ``index`` and ``size`` are in chunks."""

    path: JsonPath
    index: int
    size: int
    buffer: str | None = None
    buffer_id: int | None = None
    switch_channel_id: int | None = None

    @property
    def remote(self) -> bool:
        return self.buffer_id is not None


@dataclass(frozen=True)
class Op:
    """One operation of a threadblock (``inner``: the ops a ``pipeline`` repeats)."""

    path: JsonPath
    name: str
    channel_type: str | None = None
    channel_ids: tuple[int, ...] | None = None
    src: tuple[BufferRef, ...] = ()
    dst: tuple[BufferRef, ...] = ()
    barrier_id: int | None = None
    num_threadblocks: int | None = None
    semaphore_ids: tuple[int, ...] | None = None
    tbg: tuple[int, int] | None = None
    inner: tuple[Op, ...] = ()
    unit_size: int | None = None  # a pipeline's bytes of every chunk per iteration
    num_chunks: int | None = None  # a pipeline's chunks per op (its iterations cover num_chunks chunks)


@dataclass(frozen=True)
class Threadblock:
    """``channels[type]``: the GPU-level channel indices this threadblock holds, in the order its ops
    index them; ``remote_buffers[type]``: likewise for the GPU's remote buffers."""

    path: JsonPath
    id: int
    ops: tuple[Op, ...]
    channels: dict[str, tuple[int, ...]]
    remote_buffers: dict[str, tuple[int, ...]]


@dataclass(frozen=True)
class Channel:
    """One entry of a GPU's ``channels``: one channel per peer in ``connected_to`` (switch channels
    list rank groups instead)."""

    path: JsonPath
    type: str
    peers: tuple[int, ...] = ()


@dataclass(frozen=True)
class RemoteBuffer:
    """A buffer of rank ``rank`` that this GPU accesses through the listed channel types."""

    path: JsonPath
    rank: int
    buffer: str
    access: tuple[str, ...]


@dataclass(frozen=True)
class Gpu:
    path: JsonPath
    id: int
    input_chunks: int
    output_chunks: int
    scratch_chunks: int
    channels: tuple[Channel, ...]
    remote_buffers: tuple[RemoteBuffer, ...]
    semaphores: tuple[int, ...]  # initial values
    threadblocks: tuple[Threadblock, ...]


@dataclass(frozen=True)
class UnknownField:
    """A field the executor ignores, with the known field it most resembles (if any)."""

    path: JsonPath
    suggestion: str | None


@dataclass(frozen=True)
class Plan:
    name: str
    collective: str
    protocol: str
    inplace: bool
    gpus: tuple[Gpu, ...]
    reuse_resources: bool = False
    double_scratch: bool = False
    buffer_alignment: int = 16
    threads_per_block: int = 1024
    min_message_size: int = 0
    max_message_size: int = _U64
    unknown_fields: tuple[UnknownField, ...] = ()
    source: PlanSource | None = field(default=None, compare=False, repr=False)

    def locate(self, path: JsonPath) -> Location | None:
        """The file, line and column of the JSON value at ``path`` (None for a plan built in memory)."""
        return self.source.locate(path) if self.source is not None else None

    def call_chunks(self, gpu: Gpu) -> int:
        """The chunks a call's data is cut into on ``gpu``: its output buffer's for allgather (whose
        call size the executor reads as the output's), its input buffer's otherwise."""
        return gpu.output_chunks if self.collective == "allgather" else gpu.input_chunks


@dataclass(frozen=True)
class PlanSource:
    """The text a plan was read from, for locating JSON paths on demand (only when a problem is shown:
    the located parse is slower than the plain one)."""

    text: str
    filename: str | None

    @cached_property
    def _tree(self) -> object:
        return _located_parse(self.text)

    def locate(self, path: JsonPath) -> Location:
        node, offset = self._tree, 0
        for part in path:
            try:
                node = node[part]  # type: ignore[index]
            except (KeyError, IndexError, TypeError):
                break
            offset = getattr(node, "offset", offset)
        return self.at(offset)

    def at(self, offset: int | None) -> Location:
        """The line and column of character ``offset`` (the file alone where it is None)."""
        if offset is None:
            return Location(self.filename)
        line = self.text.count("\n", 0, offset) + 1
        column = offset - (self.text.rfind("\n", 0, offset) + 1) + 1
        return Location(self.filename, line, column)


class _LocatedDict(dict):
    offset = 0


class _LocatedList(list):
    offset = 0


def _located_parse(text: str) -> object:
    """The JSON tree with the character offset of every object and array (the pure-Python scanner,
    whose hooks see positions; the C scanner does not call them)."""

    def parse_object(s_and_end, *args):  # type: ignore[no-untyped-def]
        obj, end = json.decoder.JSONObject(s_and_end, *args)
        located = _LocatedDict(obj)
        located.offset = s_and_end[1] - 1
        return located, end

    def parse_array(s_and_end, scan_once):  # type: ignore[no-untyped-def]
        values, end = json.decoder.JSONArray(s_and_end, scan_once)
        located = _LocatedList(values)
        located.offset = s_and_end[1] - 1
        return located, end

    return _hooked(json.JSONDecoder(), parse_object, parse_array).decode(text)


def _hooked(decoder: json.JSONDecoder, parse_object, parse_array) -> json.JSONDecoder:  # type: ignore[no-untyped-def]
    """``decoder`` on the pure-Python scanner with these object and array parsers (the C scanner
    calls no hooks): they see the position of every ``{`` and ``[``."""
    decoder.parse_object = parse_object  # type: ignore[method-assign]
    decoder.parse_array = parse_array  # type: ignore[method-assign]
    decoder.scan_once = json.scanner.py_make_scanner(decoder)
    return decoder


class _Failed(Exception):
    """Where :func:`_failure_offset`'s parse met the refusal: ``args[0]`` is the character offset."""


def _failure_offset(text: str) -> int | None:
    """Where the plain parse's refusal lies: the object that names a field twice or holds a lone
    surrogate, the integer that is too long, the array or object that nests too deep. Found by
    parsing again with hooks that see positions (:func:`_hooked`), only when a plan is refused, so
    the slower parse costs nothing on a good plan; None where it finds nothing."""
    depth = 0

    def nested(s_and_end, parse, scan_once):  # type: ignore[no-untyped-def]
        """``parse`` one object or array, one level deeper, with a value scanner that locates a
        too-long integer at its first digit; any other refusal inside it is located at its bracket."""
        nonlocal depth
        offset = s_and_end[1] - 1

        def scan_value(string: str, index: int):  # type: ignore[no-untyped-def]
            try:
                return scan_once(string, index)
            except _LongNumber:
                raise _Failed(index) from None

        depth += 1
        try:
            if depth > MAX_NESTING:
                raise _Failed(offset)
            return parse(scan_value)
        except (DuplicateKey, _LoneSurrogate):
            raise _Failed(offset) from None
        finally:
            depth -= 1

    decoder = _hooked(
        json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_int=_integer),
        lambda s_and_end, strict, scan_once, *rest: nested(
            s_and_end, lambda scan: json.decoder.JSONObject(s_and_end, strict, scan, *rest), scan_once
        ),
        lambda s_and_end, scan_once: nested(
            s_and_end, lambda scan: json.decoder.JSONArray(s_and_end, scan), scan_once
        ),
    )
    try:
        decoder.decode(text)
    except _Failed as failed:
        return failed.args[0]
    except (ValueError, RecursionError):
        return None
    return None


def leading_character(text: str) -> str:
    """The first character of ``text`` after a byte order mark and blanks ('' for none)."""
    return text.lstrip("\ufeff \t\r\n")[:1]


def looks_like_plan(text: str) -> bool:
    """Whether ``text`` is JSON (a plan) rather than MSCCL XML: the first non-blank character."""
    return leading_character(text) == "{"


def read_plan(text: str, filename: str | None = None) -> Plan:
    """Parse ``text`` as an MSCCL++ v0.10.x execution plan; raise :class:`PlanSyntaxError` (an
    :class:`InputError`) at the first violation of the executor parser's rules."""
    if text.startswith("\ufeff"):  # the executor's JSON library skips a UTF-8 byte order mark
        text = " " + text[1:]  # (a blank keeps every line and column where the file has it)
    source = PlanSource(text, filename)
    if len(text) > MAX_PLAN_BYTES:
        raise PlanSyntaxError(
            "input-limit",
            f"the plan has {len(text):,} characters; collc reads plans of at most {MAX_PLAN_BYTES:,}",
            location=Location(filename),
            hint="split the schedule or use fewer chunks",
        )
    try:
        document = json.loads(text, object_pairs_hook=_no_duplicates, parse_int=_integer)
    except json.JSONDecodeError as error:
        raise PlanSyntaxError(
            "json",
            f"not valid JSON: {error.msg}",
            location=Location(filename, error.lineno, error.colno),
            hint="an execution plan is one JSON object as MSCCL++'s DSL writes it",
        ) from None
    except _LoneSurrogate as error:
        raise PlanSyntaxError(
            "json",
            f"the field {error.args[0]!r} holds half of a UTF-16 surrogate pair (a lone \\ud800-\\udfff "
            "escape)",
            location=source.at(_failure_offset(text)),
            hint="the executor's JSON library refuses it: write the character itself, or both halves",
        ) from None
    except DuplicateKey as error:
        raise PlanSyntaxError(
            "json",
            f"the field {error.args[0]!r} appears twice in one object",
            location=source.at(_failure_offset(text)),
            hint="keep one: the executor's JSON library keeps only one of them",
        ) from None
    except _LongNumber as error:
        raise PlanSyntaxError(
            "plan-range",
            f"an integer of {len(error.args[0]):,} digits ({error.args[0][:12]}...); collc reads at most "
            f"{_MAX_DIGITS} digits (more overflow even a double)",
            location=source.at(_failure_offset(text)),
            hint="the executor reads every integer field as a 64-bit (or smaller) number",
        ) from None
    except RecursionError:
        raise PlanSyntaxError(
            "input-limit",
            "the JSON nests too deeply to be an execution plan",
            location=source.at(_failure_offset(text)),
            hint="a plan nests about a dozen levels (gpus, threadblocks, ops, pipelines, buffers)",
        ) from None
    if _depth(document) > MAX_NESTING:
        raise PlanSyntaxError(
            "input-limit",
            f"the JSON nests deeper than {MAX_NESTING} levels; an execution plan nests about a dozen",
            location=source.at(_failure_offset(text)),
            hint="remove the deeply nested values (the executor reads none of them)",
        )
    return _Reader(source).plan(document)


def _depth(document: object) -> int:
    """How deeply objects and lists nest in ``document`` (without recursion: the locating parser
    recurses several frames per level, so the depth is bounded before anything is located)."""
    deepest, stack = 0, [(document, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


class _LoneSurrogate(ValueError):
    pass


#: digits of the longest integer read (10^309 overflows even a double, the widest number a JSON library
#: reads): a longer one is refused before Python's own limit on converting digits (4,300) turns it into
#: an unexpected error; a shorter one out of a field's range is refused by that field's range check
_MAX_DIGITS = 309


class _LongNumber(ValueError):
    pass


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_DIGITS:
        raise _LongNumber(text)
    return int(text)


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """An object's fields, refused where a name appears twice (:func:`collc.jsondoc.unique_members`) or
    a text holds half a UTF-16 pair (``"\\ud800"`` alone): the executor's JSON library rejects both,
    Python's parser neither."""
    for key, value in pairs:
        for text in (key, value) if isinstance(value, str) else (key,):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise _LoneSurrogate(key) from None
    return unique_members(pairs)


class _Reader:
    """Walks the parsed document with the executor's rules, collecting unknown fields on the way."""

    def __init__(self, source: PlanSource):
        self.source = source
        self.unknown: list[UnknownField] = []
        self.ops = 0

    # -- errors and fields ---------------------------------------------------------------------------

    def fail(self, rule: str, path: JsonPath, message: str, hint: str | None = None) -> PlanSyntaxError:
        return PlanSyntaxError(
            rule, f"{render_path(path)}: {message}", location=self.source.locate(path), hint=hint
        )

    def obj(self, value: object, path: JsonPath, kind: str) -> dict[str, object]:
        if not isinstance(value, dict):
            raise self.fail("plan-type", path, f"expected a JSON object, found {_kind(value)}")
        for key in value:
            if key not in _KNOWN_FIELDS[kind]:
                close = difflib.get_close_matches(key, sorted(_KNOWN_FIELDS[kind]), n=1, cutoff=0.75)
                self.unknown.append(UnknownField((*path, key), close[0] if close else None))
        return value

    def field(
        self, obj: dict[str, object], path: JsonPath, key: str, kind: type, default: object = None
    ) -> Any:
        """``obj[key]`` checked to be ``kind``; a missing field is an error unless it has a default
        (the parser's ``obj.value(key, default)``)."""
        if key not in obj:
            if default is not None:
                return default
            raise self.fail(
                "missing-field",
                (*path, key),
                "required field is missing",
                hint=self._hint_for_missing(obj, key),
            )
        value = obj[key]
        good = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if not good:
            wanted = {
                int: "an integer",
                str: "a string",
                bool: "true or false",
                list: "a list",
                dict: "an object",
            }[kind]
            raise self.fail("plan-type", (*path, key), f"expected {wanted}, found {_kind(value)}")
        return value

    def _hint_for_missing(self, obj: dict[str, object], key: str) -> str:
        close = difflib.get_close_matches(key, sorted(obj), n=1, cutoff=0.75)
        if close:
            return f"the plan spells it {close[0]!r}; the v0.10.x executor reads {key!r}"
        return f"add {key!r} as the v0.10.x executor expects it"

    def count(
        self, obj: dict[str, object], path: JsonPath, key: str, default: int | None = None, top: int = _U32
    ) -> int:
        value = self.field(obj, path, key, int, default)
        if not 0 <= value <= top:
            raise self.fail("plan-range", (*path, key), f"{value} is outside 0..{top:,}")
        return value

    def ints(self, obj: dict[str, object], path: JsonPath, key: str) -> tuple[int, ...] | None:
        if key not in obj:
            return None
        values = self.field(obj, path, key, list)
        for position, value in enumerate(values):
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _U32:
                raise self.fail(
                    "plan-type",
                    (*path, key, position),
                    f"expected a non-negative integer, found {clipped(value)}",
                )
        return tuple(values)

    def letter(self, value: object, path: JsonPath, choices: tuple[str, ...], what: str) -> str:
        if value not in choices:
            close = difflib.get_close_matches(str(value), choices, n=1, cutoff=0.6)
            known = f"did you mean {close[0]!r}? " if close else ""
            shown = ", ".join(repr(c) for c in choices[:12]) + (", ..." if len(choices) > 12 else "")
            raise self.fail(
                f"unknown-{what.replace(' ', '-')}",
                path,
                f"unknown {what} {clipped(value)}: the v0.10.x executor throws on it",
                hint=f"{known}the v0.10.x executor knows {shown}",
            )
        return value  # type: ignore[return-value]

    # -- the document --------------------------------------------------------------------------------

    def plan(self, document: object) -> Plan:
        top = self.obj(document, (), "plan")
        gpus_json = self.field(top, (), "gpus", list)
        if len(gpus_json) > MAX_GPUS:
            raise self.fail(
                "input-limit",
                ("gpus",),
                f"{len(gpus_json):,} GPUs; collc reads plans of at most {MAX_GPUS:,}",
            )
        protocol = self.field(top, (), "protocol", str)
        plan = Plan(
            name=self.field(top, (), "name", str),
            collective=self.field(top, (), "collective", str),
            protocol=protocol,
            inplace=self.field(top, (), "inplace", bool),
            reuse_resources=self.field(top, (), "reuse_resources", bool, False),
            double_scratch=self.field(top, (), "use_double_scratch_buffer", bool, False),
            buffer_alignment=self.count(top, (), "buffer_alignment", 16),
            threads_per_block=self.count(top, (), "num_threads_per_block", 1024),
            min_message_size=self.count(top, (), "min_message_size", 0, _U64),
            max_message_size=self.count(top, (), "max_message_size", _U64, _U64),
            gpus=tuple(self.gpu(gpu, ("gpus", rank)) for rank, gpu in enumerate(gpus_json)),
            source=self.source,
        )
        return dataclasses.replace(plan, unknown_fields=tuple(self.unknown))

    def gpu(self, value: object, path: JsonPath) -> Gpu:
        gpu = self.obj(value, path, "gpu")
        channels = self.field(gpu, path, "channels", list, [])
        remote = self.field(gpu, path, "remote_buffers", list, [])
        semaphores = self.field(gpu, path, "semaphores", list, [])
        threadblocks = self.field(gpu, path, "threadblocks", list)
        if len(threadblocks) > MAX_PLAN_THREADBLOCKS:
            raise self.fail(
                "input-limit",
                (*path, "threadblocks"),
                f"{len(threadblocks):,} threadblocks on one GPU; "
                f"collc reads at most {MAX_PLAN_THREADBLOCKS:,}",
                hint="the executor launches one threadblock per entry and they wait on each other, so they "
                "must all be resident at once: a GPU holds at most a few hundred",
            )
        return Gpu(
            path=path,
            id=self.count(gpu, path, "id", top=MAX_GPUS),
            input_chunks=self.count(gpu, path, "input_chunks"),
            output_chunks=self.count(gpu, path, "output_chunks"),
            scratch_chunks=self.count(gpu, path, "scratch_chunks"),
            channels=tuple(self.channel(c, (*path, "channels", i)) for i, c in enumerate(channels)),
            remote_buffers=tuple(
                self.remote_buffer(b, (*path, "remote_buffers", i)) for i, b in enumerate(remote)
            ),
            semaphores=tuple(
                self.count(
                    self.obj(s, (*path, "semaphores", i), "semaphore"), (*path, "semaphores", i), "init_value"
                )
                for i, s in enumerate(semaphores)
            ),
            threadblocks=tuple(
                self.threadblock(tb, (*path, "threadblocks", i)) for i, tb in enumerate(threadblocks)
            ),
        )

    def channel(self, value: object, path: JsonPath) -> Channel:
        channel = self.obj(value, path, "channel")
        kind = self.letter(
            self.field(channel, path, "channel_type", str),
            (*path, "channel_type"),
            CHANNEL_TYPES,
            "channel type",
        )
        if kind == "switch":
            self.letter(
                self.field(channel, path, "buffer_type", str),
                (*path, "buffer_type"),
                BUFFER_TYPES,
                "buffer type",
            )
            return Channel(path, kind)
        return Channel(path, kind, self.ints(channel, path, "connected_to") or ())

    def remote_buffer(self, value: object, path: JsonPath) -> RemoteBuffer:
        buffer = self.obj(value, path, "remote_buffer")
        access = self.field(buffer, path, "access_channel_types", list)
        return RemoteBuffer(
            path,
            rank=self.count(buffer, path, "rank", top=MAX_GPUS),
            buffer=self.letter(
                self.field(buffer, path, "type", str), (*path, "type"), BUFFER_TYPES, "buffer type"
            ),
            access=tuple(
                self.letter(kind, (*path, "access_channel_types", i), CHANNEL_TYPES, "channel type")
                for i, kind in enumerate(access)
            ),
        )

    def threadblock(self, value: object, path: JsonPath) -> Threadblock:
        tb = self.obj(value, path, "threadblock")
        channels: dict[str, list[int]] = {}
        for i, entry in enumerate(self.field(tb, path, "channels", list, [])):
            where = (*path, "channels", i)
            entry = self.obj(entry, where, "tb_channel")
            kind = self.letter(
                self.field(entry, where, "channel_type", str),
                (*where, "channel_type"),
                CHANNEL_TYPES,
                "channel type",
            )
            channels.setdefault(kind, []).extend(self.ints(entry, where, "channel_ids") or ())
        refs: dict[str, list[int]] = {}
        for i, entry in enumerate(self.field(tb, path, "remote_buffer_refs", list, [])):
            where = (*path, "remote_buffer_refs", i)
            entry = self.obj(entry, where, "remote_buffer_ref")
            kind = self.letter(
                self.field(entry, where, "access_channel_type", str),
                (*where, "access_channel_type"),
                CHANNEL_TYPES,
                "channel type",
            )
            refs.setdefault(kind, []).extend(self.ints(entry, where, "remote_buffer_ids") or ())
        ops = self.field(tb, path, "ops", list)
        return Threadblock(
            path=path,
            id=self.count(tb, path, "id"),
            ops=tuple(self.op(op, (*path, "ops", i)) for i, op in enumerate(ops)),
            channels={kind: tuple(ids) for kind, ids in channels.items()},
            remote_buffers={kind: tuple(ids) for kind, ids in refs.items()},
        )

    def op(self, value: object, path: JsonPath) -> Op:
        self.ops += 1
        if self.ops > MAX_PLAN_OPS:
            raise self.fail(
                "input-limit", path, f"more than {MAX_PLAN_OPS:,} operations; collc reads no more"
            )
        op = self.obj(value, path, "op")
        name = self.letter(self.field(op, path, "name", str), (*path, "name"), OP_NAMES, "op")
        channel_type = None
        if "channel_type" in op:
            channel_type = self.letter(
                self.field(op, path, "channel_type", str),
                (*path, "channel_type"),
                CHANNEL_TYPES,
                "channel type",
            )
        tbg = None
        if "tbg_info" in op:
            info = self.obj(op["tbg_info"], (*path, "tbg_info"), "tbg_info")
            tbg = (
                self.count(info, (*path, "tbg_info"), "tb_id"),
                self.count(info, (*path, "tbg_info"), "tbg_size"),
            )
        inner: tuple[Op, ...] = ()
        unit_size = num_chunks = None
        if name == "pipeline":
            context = self.obj(
                self.field(op, path, "iter_context", dict), (*path, "iter_context"), "iter_context"
            )
            unit_size = self.count(context, (*path, "iter_context"), "unit_size")
            num_chunks = self.count(context, (*path, "iter_context"), "num_chunks")
            inner = tuple(
                self.op(o, (*path, "ops", i)) for i, o in enumerate(self.field(op, path, "ops", list))
            )
        return Op(
            path=path,
            name=name,
            channel_type=channel_type,
            channel_ids=self.ints(op, path, "channel_ids"),
            src=self.buffs(op, path, "src_buff"),
            dst=self.buffs(op, path, "dst_buff"),
            barrier_id=self.count(op, path, "barrier_id") if "barrier_id" in op else None,
            num_threadblocks=self.count(op, path, "num_threadblocks") if "num_threadblocks" in op else None,
            semaphore_ids=self.ints(op, path, "semaphore_ids"),
            tbg=tbg,
            inner=inner,
            unit_size=unit_size,
            num_chunks=num_chunks,
        )

    def buffs(self, op: dict[str, object], path: JsonPath, key: str) -> tuple[BufferRef, ...]:
        refs = []
        for i, value in enumerate(self.field(op, path, key, list, [])):
            where = (*path, key, i)
            buff = self.obj(value, where, "buff")
            buffer = None
            if "type" in buff:
                buffer = self.letter(
                    self.field(buff, where, "type", str), (*where, "type"), BUFFER_TYPES, "buffer type"
                )
            refs.append(
                BufferRef(
                    path=where,
                    index=self.count(buff, where, "index"),
                    size=self.count(buff, where, "size"),
                    buffer=buffer,
                    buffer_id=self.count(buff, where, "buffer_id") if "buffer_id" in buff else None,
                    switch_channel_id=(
                        self.count(buff, where, "switch_channel_id") if "switch_channel_id" in buff else None
                    ),
                )
            )
        return tuple(refs)


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return {dict: "an object", list: "a list", str: "a string", int: "an integer", float: "a number"}.get(
        type(value), type(value).__name__
    ) + (f" {clipped(value)}" if isinstance(value, (str, int, float)) else "")
