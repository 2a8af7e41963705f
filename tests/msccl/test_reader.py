"""The reader accepts exactly what the runtime's hand-written parser accepts."""

from __future__ import annotations

import pytest

from collc.errors import InputError
from collc.msccl.reader import XmlSyntaxError, read_xml, read_xml_with_notes

ALGO = (
    '<algo name="t" proto="LL" nchannels="1" nchunksperloop="2" ngpus="2" coll="allgather" inplace="0" '
    'outofplace="1" minBytes="0" maxBytes="0">'
)
STEP = (
    '<step s="0" type="s" srcbuf="i" srcoff="0" dstbuf="o" dstoff="0" cnt="1" depid="-1" deps="-1" '
    'hasdep="0"/>'
)


def document(step: str = STEP, algo: str = ALGO, indent: str = "  ") -> str:
    return (
        f'{algo}\n{indent}<gpu id="0" i_chunks="1" o_chunks="2" s_chunks="0">\n'
        f'{indent * 2}<tb id="0" send="1" recv="-1" chan="0">\n{indent * 3}{step}\n'
        f"{indent * 2}</tb>\n{indent}</gpu>\n</algo>\n"
    )


def error_of(text: str) -> XmlSyntaxError:
    with pytest.raises(XmlSyntaxError) as caught:
        read_xml(text, "f.xml")
    return caught.value


def test_reads_every_field_with_lines() -> None:
    algo = read_xml(document(), "f.xml")
    (gpu,) = algo.gpus
    (tb,) = gpu.tbs
    (step,) = tb.steps
    assert (algo.proto, algo.ngpus, algo.coll, algo.outofplace, algo.max_bytes) == (
        "LL",
        2,
        "allgather",
        1,
        0,
    )
    assert (gpu.id, gpu.i_chunks, gpu.o_chunks, gpu.s_chunks, gpu.line) == (0, 1, 2, 0, 2)
    assert (tb.send, tb.recv, tb.chan, tb.line) == (1, -1, 0, 3)
    assert (step.type, step.depid, step.deps, step.line) == ("s", -1, -1, 4)


@pytest.mark.parametrize(
    ("text", "rule", "message", "line", "column"),
    [
        ('<?xml version="1.0"?>\n' + document(), "xml-declaration", "XML Parse : expected >, got '?'", 1, 2),
        (document(indent="\t"), "xml-tab", "XML Parse error : expecting '<', got '\\t'", 2, 1),
        (
            document(algo=ALGO.replace(" nchannels", "\n nchannels")),
            "xml-multiline-tag",
            "XML Parse : expected >, got '\\n'",
            1,
            26,
        ),
        (document(STEP.replace('cnt="1"', "cnt='1'")), "xml-quote", "Expected (double) quote.", 4, 76),
        (
            document(STEP.replace('cnt="1"', 'cnt ="1"')),
            "xml-syntax",
            "XML Parse : Unexpected value with name cnt",
            4,
            75,
        ),
        (
            document().replace("</tb>", "text</tb>"),
            "xml-text",
            "XML Parse error : expecting '<', got 't'",
            5,
            5,
        ),
        (document().replace("</tb>", "</gpu>"), "xml-syntax", "XML Mismatch : tb / gpu", 5, 5),
        ("<!--x=1-->\n" + document(), "xml-comment", "XML Parse : Unexpected value with name !--x", 1, 1),
        ("<!-- open\n" + document(), "xml-comment", "XML Parse error : unterminated comment", 1, 1),
        (document()[:-8], "xml-syntax", "XML Parse : Unexpected EOF", 7, 1),
    ],
)
def test_lexical_errors_use_the_runtime_wording_and_position(text, rule, message, line, column) -> None:
    error = error_of(text)
    assert (error.rule, error.message) == (rule, message)
    assert (error.location.line, error.location.column) == (line, column)
    assert isinstance(error, InputError) and error.exit_code == 2


@pytest.mark.parametrize("value", ["010", "0x1", "+1", "1.0", "", "one", " 1"])
def test_non_decimal_integers_are_rejected(value: str) -> None:
    error = error_of(document(STEP.replace('srcoff="0"', f'srcoff="{value}"')))
    assert error.rule == "xml-integer"
    assert "srcoff" in error.message and error.location.line == 4


@pytest.mark.parametrize("attribute", ["minBytes", "outofplace", "proto"])
def test_missing_algo_attribute_is_named_like_the_runtime(attribute: str) -> None:
    algo = " ".join(part for part in ALGO.split(" ") if not part.startswith(attribute))
    error = error_of(document(algo=algo))
    assert error.message == f"Attribute {attribute} of node algo not found"
    assert error.rule == "missing-attribute"


def test_missing_step_attribute_also_for_nops() -> None:
    nop = (
        '<step s="0" type="nop" srcbuf="i" srcoff="-1" dstbuf="o" dstoff="-1" cnt="0" depid="-1" deps="-1"/>'
    )
    assert error_of(document(nop)).message == "Attribute hasdep of node step not found"


def test_legacy_loader_defaults_the_size_bounds() -> None:
    algo_text = ALGO.replace(' outofplace="1" minBytes="0" maxBytes="0"', "")
    with pytest.raises(XmlSyntaxError):
        read_xml(document(algo=algo_text))
    algo = read_xml(document(algo=algo_text), runtime="msccl-legacy")
    assert (algo.outofplace, algo.min_bytes, algo.max_bytes) == (0, 0, 128 * 1024 * 1024)


def test_accepted_variants_crlf_comments_explicit_close_and_extra_spaces() -> None:
    text = "<!-- leading comment -->\r\n" + document(
        STEP.replace("/>", "></step> <!-- trailing -->").replace(' type="s"', '  type="s"')
    ).replace("\n", "\r\n")
    algo = read_xml(text)
    assert algo.gpus[0].tbs[0].steps[0].type == "s"


def test_too_many_dummy_attributes_are_rejected() -> None:
    error = error_of(document(STEP.replace(' type="s"', " " * 8 + ' type="s"')))
    assert error.rule == "xml-too-many-attributes"


def test_unknown_elements_are_ignored_with_a_note() -> None:
    algo, notes = read_xml_with_notes(document().replace("  </gpu>", '    <extra a="1"/>\n  </gpu>'), "f.xml")
    assert len(algo.gpus[0].tbs) == 1
    assert [(note.rule, note.location.line) for note in notes] == [("xml-ignored", 6)]


def test_first_element_must_be_algo() -> None:
    error = error_of('<gpu id="0" i_chunks="1" o_chunks="2" s_chunks="0"/>\n')
    assert error.rule == "xml-first-element" and error.location.line == 1


def test_empty_file() -> None:
    assert error_of("  \n").message == "XML Parse : Unexpected EOF"


def test_tab_inside_a_tag_is_a_tab_error() -> None:
    error = error_of(document(STEP.replace(' type="s"', '\ttype="s"')))
    assert (error.rule, error.message) == ("xml-tab", "XML Parse : expected >, got '\\t'")


def test_legacy_loader_requires_a_name() -> None:
    algo_text = ALGO.replace('name="t" ', "")
    assert read_xml(document(algo=algo_text)).name == ""
    with pytest.raises(XmlSyntaxError, match="Attribute name of node algo not found"):
        read_xml(document(algo=algo_text), runtime="msccl-legacy")
