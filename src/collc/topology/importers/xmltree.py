"""A small, safe XML element tree with the line:column of every element, for located messages.

Topology dumps are read with the standard library's expat parser with every document type declaration
refused: no DTD means no entity can be declared, so nothing expands (no "billion laughs") and nothing
external is fetched. The text is at most :data:`MAX_TOPOLOGY_BYTES`, at most :data:`MAX_NESTING` levels
deep and at most :data:`MAX_XML_ELEMENTS` elements, each checked while parsing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from xml.parsers import expat

from collc.errors import InputError, Location
from collc.fileio import read_text
from collc.input_limits import MAX_NESTING, MAX_NODES, MAX_TOPOLOGY_BYTES

#: elements of one dump: a node's dump has a few per device; this is four per node collc accepts
MAX_XML_ELEMENTS = 4 * MAX_NODES


@dataclass(eq=False)
class XmlElement:
    """An element: tag, attributes, where its start tag is, and its child elements in document order.

    Elements compare by identity (``is``): two alike elements are still two devices.
    """

    tag: str
    attributes: dict[str, str]
    location: Location
    parent: XmlElement | None = None
    children: list[XmlElement] = field(default_factory=list)

    def describe(self) -> str:
        """``<tag key="value">`` with the identifying attributes, for messages."""
        shown = [f'{key}="{self.attributes[key]}"' for key in ("busid", "dev", "rank", "name") if key in self]
        return f"<{' '.join([self.tag, *shown])}>"

    def __contains__(self, key: str) -> bool:
        return key in self.attributes

    def ancestors(self) -> list[XmlElement]:
        """The enclosing elements, nearest first."""
        result = []
        node = self.parent
        while node is not None:
            result.append(node)
            node = node.parent
        return result

    def walk(self) -> list[XmlElement]:
        """This element and every element inside it, in document order."""
        result = [self]
        for child in self.children:
            result.extend(child.walk())
        return result


def read_input(path: Path, shown_as: str) -> str:
    """The text of an input file: UTF-8 (a byte-order mark dropped), at most :data:`MAX_TOPOLOGY_BYTES`
    (:func:`collc.fileio.read_text`)."""
    return read_text(
        path,
        MAX_TOPOLOGY_BYTES,
        what="the file",
        too_large="a node's topology dump is a few kilobytes; check the file",
        fix="give the dump as written",
        shown_as=shown_as,
        bom=True,
    )


def parse_xml(text: str, file: str) -> XmlElement:
    """The root element of ``text``; malformed or hostile XML raises a located :class:`InputError`."""
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    stack: list[XmlElement] = []
    roots: list[XmlElement] = []
    count = 0

    def here() -> Location:
        return Location(file, parser.CurrentLineNumber, parser.CurrentColumnNumber + 1)

    def start(tag: str, attributes: dict[str, str]) -> None:
        nonlocal count
        count += 1
        if count > MAX_XML_ELEMENTS:
            raise InputError(
                f"more than {MAX_XML_ELEMENTS:,} XML elements, more than a node's dump can have",
                location=here(),
            )
        if len(stack) >= MAX_NESTING:
            raise InputError(f"XML elements nested deeper than {MAX_NESTING} levels", location=here())
        element = XmlElement(tag, dict(attributes), here(), stack[-1] if stack else None)
        (stack[-1].children if stack else roots).append(element)
        stack.append(element)

    def end(_tag: str) -> None:
        stack.pop()

    def refuse_doctype(*_args: object) -> None:
        raise InputError(
            "document type declarations are not accepted",
            location=here(),
            hint="NCCL and RCCL write none; remove the <!DOCTYPE …> and any entity declarations",
        )

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.StartDoctypeDeclHandler = refuse_doctype
    parser.EntityDeclHandler = refuse_doctype
    try:
        parser.Parse(text, True)
    except expat.ExpatError as error:
        raise InputError(
            f"XML syntax error: {expat.ErrorString(error.code)}",
            location=Location(file, error.lineno, error.offset + 1),
            hint="give the file NCCL_TOPO_DUMP_FILE wrote, unedited",
        ) from None
    return roots[0]
