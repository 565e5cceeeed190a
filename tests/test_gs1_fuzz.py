"""Property-based fuzzing of the GS1 element-string parser: a symbol's content is untrusted
(anyone can print a QR code), so any text is parsed or refused with ``GS1Error``; nothing else
escapes. Found this way: "(17)AB0101" raised a plain ValueError (``int("AB")``)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from edge.vision.gs1 import GS, GS1Error, check_digit_ok, parse

FUZZ = settings(max_examples=1000, deadline=None)
AIS = ["00", "01", "02", "10", "11", "13", "15", "17", "21", "37", "400", "3103", "3302", "99"]
pieces = st.one_of(
    st.sampled_from(AIS).map(lambda ai: f"({ai})"),
    st.sampled_from(AIS),
    st.text(alphabet="0123456789", max_size=20),
    st.text(max_size=8),
    st.sampled_from([GS, "]C1", "]d2", "(", ")", "²", "٣", " "]),
)
texts = st.lists(pieces, max_size=10).map("".join)


@FUZZ
@given(texts)
def test_any_text_is_an_element_string_or_refused(text: str) -> None:
    try:
        parsed = parse(text)
    except GS1Error:
        return
    assert parsed.values
    for ai, value in parsed.values.items():
        if ai in ("00", "01", "02"):
            assert check_digit_ok(value)
        if ai in ("11", "13", "15", "17", "37") or ai[:3] in ("310", "330"):
            assert value.isascii() and value.isdigit()


@FUZZ
@given(st.text(max_size=30))
def test_a_check_digit_is_checked_on_any_text(text: str) -> None:
    assert check_digit_ok(text) in (True, False)
