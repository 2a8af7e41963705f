"""Read MSCCL XML exactly as the runtimes' hand-written parser does, into the program IR.

The executor and RCCL do not use an XML library (they lex the file by hand): their parser rejects an XML
declaration, tabs, text between elements, attributes split over lines, single quotes and spaces
around ``=``, reads integers with ``strtol(…, 0)`` (so ``010`` is 8 and garbage is 0) and needs every
attribute of §2.3-§2.6. This module scans the raw text with the same rules, so a file it accepts is a
file the runtime's lexer accepts, and a file it rejects gets the runtime's own message (where it has
one) with line:column. Semantic rules (ranges, peers, dependencies) are the linter's job
(:mod:`collc.verify.lint`); the reader only builds the structure.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from collc.errors import InputError, Location
from collc.input_limits import MAX_GPUS, MAX_NESTING, MAX_XML_CHUNKS
from collc.msccl.program import Algorithm, GpuProgram, Step, Threadblock

RUNTIMES = ("msccl-executor", "rccl", "msccl-legacy")
# The <algo> attributes the runtimes require, in the order their loader reads them (msccl-executor's
# mscclGetAlgoFromXmlFile; RCCL's the same): a file missing several fails on the first of these.
ALGO_ATTRIBUTES = (
    "nchunksperloop",
    "nchannels",
    "ngpus",
    "proto",
    "coll",
    "minBytes",
    "maxBytes",
    "inplace",
    "outofplace",
)

#: ``MAX_ATTR_COUNT`` of the parser: real attributes plus the empty dummies extra spaces create (§2.1 rule 5).
MAX_ATTR_COUNT = 16
#: ``MAX_STR_LEN`` of the parser: element and attribute names (§2.1 rule 8).
MAX_NAME_LENGTH = 255

_NAME_CHARS = re.compile(r"[A-Za-z0-9_:.\-]*")
_DECIMAL = re.compile(r"-?(0|[1-9][0-9]{0,18})\Z")  # at most 19 digits: int64 is checked after
_INT64 = range(-(2**63), 2**63)
#: attributes that size what a reader of the file allocates, with the largest value collc accepts
_SIZE_LIMITS = {
    "ngpus": MAX_GPUS,
    "nchunksperloop": MAX_XML_CHUNKS,
    "i_chunks": MAX_XML_CHUNKS,
    "o_chunks": MAX_XML_CHUNKS,
    "s_chunks": MAX_XML_CHUNKS,
}
#: the canonical form of a start tag (single spaces, double quotes, on one line): parsed in one match;
#: anything else goes through the character-level scanner, which finds the precise error
_CANONICAL_TAG = re.compile(r'<([A-Za-z0-9_:.\-]+)((?: [A-Za-z0-9_:.\-]+="[^"\n]*")*)(/?)>')
_CANONICAL_ATTRIBUTE = re.compile(r' ([A-Za-z0-9_:.\-]+)="([^"\n]*)"')

STEP_REQUIRED = ("s", "type", "srcbuf", "srcoff", "dstbuf", "dstoff", "cnt", "depid", "deps", "hasdep")
_STEP_KEYS = frozenset(STEP_REQUIRED)
#: a step's integer attributes; none has a size limit of its own (see _SIZE_LIMITS)
_STEP_INTEGERS = ("s", "srcoff", "dstoff", "cnt", "depid", "deps", "hasdep")
#: a plain decimal of at most 18 digits (always within int64, no leading zero, no sign but '-')
_PLAIN = r"(-?(?:0|[1-9][0-9]{0,17}))"
#: a step's integers joined by commas, all plain decimals: one match reads them; anything else goes
#: through :meth:`_Builder.integer`, which names the precise error
_STEP_NUMBERS = re.compile(rf"(?:{_PLAIN},){{6}}{_PLAIN}")
_TEXT = r'([^"\n]*)'  # an attribute value on one line, as in _CANONICAL_ATTRIBUTE
_STEP_STRINGS = ("type", "srcbuf", "dstbuf")
#: a ``<step>`` as collc's writer lays it out (the ten attributes in the order of STEP_REQUIRED, plain
#: decimals, on one line), after the whitespace before it: one match reads it (group 1 is the element,
#: then the values in that order); any other form goes through the scanner, which finds what is wrong
_CANONICAL_STEP = re.compile(
    r"[ \n\r]*(<step"
    + "".join(f' {key}="{_TEXT if key in _STEP_STRINGS else _PLAIN}"' for key in STEP_REQUIRED)
    + "/>)"
)

#: The legacy loader (the original MSCCL) reads only ``inplace``; size bounds default to [0, 128 MiB).
LEGACY_DEFAULTS = {"outofplace": "0", "minBytes": "0", "maxBytes": str(128 * 1024 * 1024)}


class XmlSyntaxError(InputError):
    """The runtime's parser would reject the file; ``rule`` is the stable id the verifier reports."""

    def __init__(self, rule: str, message: str, *, location: Location, hint: str | None = None):
        super().__init__(message, location=location, hint=hint)
        self.rule = rule


@dataclass
class _Element:
    """A parsed element: ``pos`` and ``tag_end`` delimit its start tag in the text (for locations)."""

    name: str
    pos: int
    tag_end: int = 0
    attributes: dict[str, str] = field(default_factory=dict)
    children: list[_Element | _PlainStep] = field(default_factory=list)


class _PlainStep(NamedTuple):
    """A ``<step>`` read in one match of :data:`_CANONICAL_STEP`: where its start tag is, as for
    :class:`_Element`, and the step it reads as (made at once, so that the tree does not also hold
    the match: the tree and the steps took 750 bytes per step at the peak, the steps alone 270)."""

    pos: int
    tag_end: int
    step: Step

    name = "step"


def _plain_step(match: re.Match[str], line: int) -> Step:
    """The :class:`Step` of a match of :data:`_CANONICAL_STEP` (its values are plain decimals)."""
    _, s, kind, srcbuf, srcoff, dstbuf, dstoff, cnt, depid, deps, hasdep = match.groups()
    return Step(
        s=int(s),
        type=kind,
        srcbuf=srcbuf,
        srcoff=int(srcoff),
        dstbuf=dstbuf,
        dstoff=int(dstoff),
        cnt=int(cnt),
        depid=int(depid),
        deps=int(deps),
        hasdep=int(hasdep),
        line=line,
    )


@dataclass(frozen=True)
class ReadNote:
    """Something the runtime accepts silently but a user should hear about (e.g. an ignored element)."""

    rule: str
    message: str
    location: Location


def _stray_character(char: str) -> tuple[str, str, str]:
    """Rule, message and hint for ``char`` where the runtime's parser expects ``<``: an invisible one
    (a byte-order mark, a control character) is named by its code point, not printed as itself."""
    if char == "\t":
        return (
            "xml-tab",
            "XML Parse error : expecting '<', got '\\t'",
            "indent with spaces; the runtime's parser rejects tabs",
        )
    if char == "\ufeff":
        return (
            "xml-text",
            "XML Parse error : expecting '<', got a byte-order mark (U+FEFF)",
            "save the file as UTF-8 without a byte-order mark; the runtime's parser reads it as text",
        )
    shown = char if char.isprintable() else f"U+{ord(char):04X}"
    return (
        "xml-text",
        f"XML Parse error : expecting '<', got '{shown}'",
        "remove the text; only elements and comments may appear",
    )


class _Scanner:
    """The lexer: positions, located errors and the element grammar of §2.1."""

    def __init__(self, text: str, filename: str):
        self.text = text
        self.filename = filename
        self.pos = 0
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self._counted_to, self._line = 0, 1  # line() has counted the newlines before this position
        self.notes: list[ReadNote] = []

    def line(self, pos: int) -> int:
        """The line of ``pos``; asked in document order (as the builder does), it counts only the
        newlines since the previous answer."""
        if pos < self._counted_to:
            return bisect.bisect_right(self.line_starts, pos)
        self._line += self.text.count("\n", self._counted_to, pos)
        self._counted_to = pos
        return self._line

    def location(self, pos: int | None = None) -> Location:
        pos = self.pos if pos is None else pos
        line_index = bisect.bisect_right(self.line_starts, pos) - 1
        return Location(self.filename, line_index + 1, pos - self.line_starts[line_index] + 1)

    def fail(
        self, rule: str, message: str, hint: str | None = None, pos: int | None = None
    ) -> XmlSyntaxError:
        return XmlSyntaxError(rule, message, location=self.location(pos), hint=hint)

    def peek(self, length: int = 1) -> str:
        return self.text[self.pos : self.pos + length]

    def skip_between_elements(self) -> None:
        """Skip whitespace (space, LF, CR only: §2.1 rule 2) and comments (rule 7)."""
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char in " \n\r":
                self.pos += 1
            elif self.text.startswith("<!--", self.pos):
                self.skip_comment()
            elif char == "<":
                return
            else:
                raise self.fail(*_stray_character(char))

    def skip_comment(self) -> None:
        start = self.pos
        self.pos += 4
        first_word = re.match(r"[^\s>]*", self.text[self.pos :]).group(0)  # type: ignore[union-attr]
        if "=" in first_word.removesuffix("--"):
            name = "!--" + first_word.split("=", 1)[0]
            raise self.fail(
                "xml-comment",
                f"XML Parse : Unexpected value with name {name}",
                "put a space right after '<!--'",
                start,
            )
        end = self.text.find("-->", self.pos)
        if end < 0:
            raise self.fail(
                "xml-comment", "XML Parse error : unterminated comment", "close it with '-->'", start
            )
        self.pos = end + 3

    def element(self, depth: int = 0) -> _Element:
        """One element with its subtree; the scanner is at its ``<``; ``depth`` counts its ancestors."""
        start = self.pos
        if depth >= MAX_NESTING:
            raise self.fail(
                "xml-syntax",
                f"elements nested more than {MAX_NESTING} deep",
                "an MSCCL file nests four levels: <algo>, <gpu>, <tb>, <step>",
            )
        fast = _CANONICAL_TAG.match(self.text, start)
        if fast and len(fast.group(1)) <= MAX_NAME_LENGTH and fast.group(2).count(" ") <= MAX_ATTR_COUNT:
            node = _Element(fast.group(1), start, fast.end())
            for key, value in _CANONICAL_ATTRIBUTE.findall(fast.group(2)):
                self.set_attribute(node, key, value, start)
            self.pos = fast.end()
            if fast.group(3):
                return node
        else:
            self.pos += 1
            name = self.name()
            if not name:
                raise self.expected_close()
            node = _Element(name, start)
            closed = self.attributes(node)
            node.tag_end = self.pos
            if closed:
                return node
        plain_steps = depth + 1 < MAX_NESTING
        while True:
            step = _CANONICAL_STEP.match(self.text, self.pos) if plain_steps else None
            if step is not None:
                self.pos = step.end()
                start = step.start(1)
                node.children.append(_PlainStep(start, step.end(), _plain_step(step, self.line(start))))
                continue
            self.skip_between_elements()
            if self.pos >= len(self.text):
                raise self.fail(
                    "xml-syntax", "XML Parse : Unexpected EOF", f"close <{node.name}> with </{node.name}>"
                )
            if self.text.startswith("</", self.pos):
                self.closing_tag(node.name)
                return node
            node.children.append(self.element(depth + 1))

    def name(self) -> str:
        match = _NAME_CHARS.match(self.text, self.pos)
        assert match is not None
        name = match.group(0)
        if len(name) > MAX_NAME_LENGTH:
            raise self.fail("xml-syntax", f"Error : name {name[:40]}… too long (max {MAX_NAME_LENGTH})")
        self.pos = match.end()
        return name

    def expected_close(self) -> XmlSyntaxError:
        char = self.peek()
        if not char:
            return self.fail("xml-syntax", "XML Parse : Unexpected EOF")
        shown = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char, char)
        if char == "?":
            return self.fail(
                "xml-declaration",
                f"XML Parse : expected >, got '{shown}'",
                "remove the '<?xml …?>' declaration; <algo> must be the first element",
            )
        if char in "\r\n":
            return self.fail(
                "xml-multiline-tag",
                f"XML Parse : expected >, got '{shown}'",
                "put all attributes of an element on the line of its name",
            )
        if char == "\t":
            return self.fail(
                "xml-tab", f"XML Parse : expected >, got '{shown}'", "separate attributes by one space"
            )
        return self.fail("xml-syntax", f"XML Parse : expected >, got '{shown}'")

    def attributes(self, node: _Element) -> bool:
        """Parse ``key="value"`` pairs up to ``>`` (returns False) or ``/>`` (returns True)."""
        slots = 0
        while True:
            if self.peek() != " ":
                if self.peek(2) == "/>":
                    self.pos += 2
                    return True
                if self.peek() == ">":
                    self.pos += 1
                    return False
                raise self.expected_close()
            self.pos += 1
            if self.peek() in (" ", ">", "/"):  # an extra space: the parser stores an empty dummy attribute
                slots += 1
                continue
            key_pos = self.pos
            key = self.name()
            if not key:
                raise self.expected_close()
            if self.peek() != "=":
                raise self.fail(
                    "xml-syntax",
                    f"XML Parse : Unexpected value with name {key}",
                    'write attributes as key="value" with no spaces around "="',
                )
            self.pos += 1
            if self.peek() != '"':
                raise self.fail(
                    "xml-quote",
                    "Expected (double) quote.",
                    'quote attribute values with double quotes: key="value"',
                )
            end = self.text.find('"', self.pos + 1)
            if end < 0:
                raise self.fail("xml-syntax", "XML Parse : Unexpected EOF")
            value = self.text[self.pos + 1 : end]
            if "\n" in value:
                raise self.fail(
                    "xml-multiline-tag",
                    f"attribute {key} of <{node.name}> spans lines",
                    "close the quote on the same line",
                )
            self.pos = end + 1
            slots += 1
            if slots > MAX_ATTR_COUNT:
                raise self.fail(
                    "xml-too-many-attributes",
                    f"<{node.name}> has more than {MAX_ATTR_COUNT} attributes counting extra spaces; "
                    "the runtime silently drops the rest",
                    "separate attributes by exactly one space",
                    key_pos,
                )
            self.set_attribute(node, key, value, key_pos)

    def set_attribute(self, node: _Element, key: str, value: str, pos: int) -> None:
        """Keep the first value of ``key``, as the runtime's attribute lookup does; a repeated one is
        reported, since a tool that appends an override expects it to take effect."""
        if key in node.attributes:
            first = node.attributes[key]
            self.notes.append(
                ReadNote(
                    "xml-ignored",
                    f'<{node.name}> gives {key} twice; the runtime reads the first ({key}="{first}"), '
                    f'never the later "{value}"',
                    self.location(pos),
                )
            )
            return
        node.attributes[key] = value

    def closing_tag(self, name: str) -> None:
        start = self.pos
        self.pos += 2
        closing = self.name()
        if self.peek() != ">":
            char = self.peek() or "EOF"
            raise self.fail(
                "xml-syntax", f"XML Parse error : unexpected trailing {char} in closing tag {closing}", None
            )
        if closing != name:
            raise self.fail(
                "xml-syntax", f"XML Mismatch : {name} / {closing}", f"close <{name}> first", start
            )
        self.pos += 1


def read_xml(text: str, filename: str = "<input>", *, runtime: str = "msccl-executor") -> Algorithm:
    """Parse ``text`` into an :class:`Algorithm`; raise :class:`XmlSyntaxError` (an ``InputError``)
    at the first place the runtime's parser would reject, with the runtime's wording and line:column."""
    return read_xml_with_notes(text, filename, runtime=runtime)[0]


def read_xml_with_notes(
    text: str, filename: str = "<input>", *, runtime: str = "msccl-executor"
) -> tuple[Algorithm, list[ReadNote]]:
    """As :func:`read_xml`, also returning what the parser silently ignores (unknown elements)."""
    scanner = _Scanner(text, filename)
    scanner.skip_between_elements()
    if scanner.pos >= len(text):
        raise scanner.fail("xml-syntax", "XML Parse : Unexpected EOF", "the file has no <algo> element")
    root = scanner.element()
    scanner.skip_between_elements()
    if scanner.pos < len(text):
        scanner.notes.append(
            ReadNote("xml-ignored", "content after </algo> is never read", scanner.location())
        )
    if root.name != "algo":
        raise XmlSyntaxError(
            "xml-first-element",
            f"the first element is <{root.name}>, not <algo>; "
            "the runtime's header scan reads only the first element",
            location=scanner.location(root.pos),
            hint="make <algo> the first element (comments may precede it)",
        )
    builder = _Builder(scanner, runtime)
    return builder.algorithm(root), scanner.notes


class _Builder:
    """Turns the element tree into the IR, checking required attributes and decimal integers."""

    def __init__(self, scanner: _Scanner, runtime: str):
        self.scanner = scanner
        self.runtime = runtime
        self.notes = scanner.notes

    def location(self, node: _Element | _PlainStep, key: str | None = None) -> Location:
        """Where ``node`` starts, or where its attribute ``key`` does."""
        if key is not None:
            found = self.scanner.text.find(f" {key}=", node.pos, node.tag_end)
            if found >= 0:
                return self.scanner.location(found + 1)
        return self.scanner.location(node.pos)

    def line(self, node: _Element | _PlainStep) -> int | None:
        return self.scanner.line(node.pos)

    def children(self, node: _Element, name: str) -> list[_Element | _PlainStep]:
        kept = []
        for child in node.children:
            if child.name == name:
                kept.append(child)
            else:
                self.notes.append(
                    ReadNote(
                        "xml-ignored",
                        f"ignoring element <{child.name}> inside <{node.name}>",
                        self.location(child),
                    )
                )
        return kept

    def string(self, node: _Element, key: str, default: str | None = None) -> str:
        value = node.attributes.get(key, default)
        if value is not None:
            return value
        raise self.missing(node, key)

    def missing(self, node: _Element, key: str, also: Sequence[str] = ()) -> XmlSyntaxError:
        """The runtime's error for the first missing attribute it reads, naming the others missing
        too (``also``), so that one run of the verifier lists every fix."""
        more = f" (also missing: {', '.join(also)})" if also else ""
        keys = ", ".join(f'{name}="…"' for name in (key, *also))
        return XmlSyntaxError(
            "missing-attribute",
            f"Attribute {key} of node {node.name} not found{more}",
            location=self.location(node),
            hint=f"add {keys} to <{node.name}> (the runtime requires {'them' if also else 'it'})",
        )

    def integer(self, node: _Element, key: str, default: str | None = None) -> int:
        text = node.attributes.get(key, default)
        if text is None:
            raise self.missing(node, key)
        if _DECIMAL.match(text) is None:
            if re.fullmatch(r"-?[1-9][0-9]*", text):
                raise self.out_of_range(node, key, text, "the 64-bit integer range")
            shown = text if len(text) <= 40 else text[:40] + "…"
            raise XmlSyntaxError(
                "xml-integer",
                f'attribute {key}="{shown}" of <{node.name}> is not a plain decimal integer; the runtime '
                "reads it with strtol(…, 0): a leading 0 means octal, 0x hex, and garbage becomes 0",
                location=self.location(node, key),
                hint="write the number in decimal without leading zeros",
            )
        value = int(text)
        if value not in _INT64:
            raise self.out_of_range(node, key, text, "the 64-bit integer range")
        limit = _SIZE_LIMITS.get(key)
        if limit is not None and value > limit:
            raise self.out_of_range(node, key, text, f"collc's limit (at most {limit:,})", "input-limit")
        return value

    def out_of_range(
        self, node: _Element, key: str, text: str, limit: str, rule: str = "xml-integer"
    ) -> XmlSyntaxError:
        shown = text if len(text) <= 40 else f"{text[:20]}… ({len(text)} digits)"
        return XmlSyntaxError(
            rule,
            f'attribute {key}="{shown}" of <{node.name}> is outside {limit}',
            location=self.location(node, key),
            hint="check the value; collc reads files for up to "
            f"{MAX_GPUS:,} GPUs and {MAX_XML_CHUNKS:,} chunks per buffer",
        )

    def algorithm(self, node: _Element) -> Algorithm:
        defaults = LEGACY_DEFAULTS if self.runtime == "msccl-legacy" else {}
        absent = [key for key in ALGO_ATTRIBUTES if key not in node.attributes and key not in defaults]
        if absent:
            raise self.missing(node, absent[0], absent[1:])
        algo = Algorithm(
            name=self.string(
                node, "name", None if self.runtime == "msccl-legacy" else ""
            ),  # legacy: required
            proto=self.string(node, "proto"),
            nchannels=self.integer(node, "nchannels"),
            nchunksperloop=self.integer(node, "nchunksperloop"),
            ngpus=self.integer(node, "ngpus"),
            coll=self.string(node, "coll"),
            inplace=self.integer(node, "inplace"),
            outofplace=self.integer(node, "outofplace", defaults.get("outofplace")),
            min_bytes=self.integer(node, "minBytes", defaults.get("minBytes")),
            max_bytes=self.integer(node, "maxBytes", defaults.get("maxBytes")),
            line=self.line(node),
        )
        algo.gpus = [self.gpu(child) for child in self.children(node, "gpu")]
        return algo

    def gpu(self, node: _Element) -> GpuProgram:
        gpu = GpuProgram(
            id=self.integer(node, "id"),
            i_chunks=self.integer(node, "i_chunks"),
            o_chunks=self.integer(node, "o_chunks"),
            s_chunks=self.integer(node, "s_chunks"),
            line=self.line(node),
        )
        gpu.tbs = [self.threadblock(child) for child in self.children(node, "tb")]
        return gpu

    def threadblock(self, node: _Element) -> Threadblock:
        tb = Threadblock(
            id=self.integer(node, "id"),
            send=self.integer(node, "send"),
            recv=self.integer(node, "recv"),
            chan=self.integer(node, "chan"),
            line=self.line(node),
        )
        tb.steps = [self.step(child) for child in self.children(node, "step")]
        return tb

    def step(self, node: _Element | _PlainStep) -> Step:
        if isinstance(node, _PlainStep):
            return node.step
        attributes = node.attributes
        if not attributes.keys() >= _STEP_KEYS:
            raise self.missing(node, next(key for key in STEP_REQUIRED if key not in attributes))
        texts = [attributes[key] for key in _STEP_INTEGERS]
        if _STEP_NUMBERS.fullmatch(",".join(texts)):
            s, srcoff, dstoff, cnt, depid, deps, hasdep = map(int, texts)
        else:
            s, srcoff, dstoff, cnt, depid, deps, hasdep = (self.integer(node, key) for key in _STEP_INTEGERS)
        return Step(
            s=s,
            type=attributes["type"],
            srcbuf=attributes["srcbuf"],
            srcoff=srcoff,
            dstbuf=attributes["dstbuf"],
            dstoff=dstoff,
            cnt=cnt,
            depid=depid,
            deps=deps,
            hasdep=hasdep,
            line=self.line(node),
        )
