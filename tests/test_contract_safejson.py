"""The bounded JSON decoder: every hostile shape is one typed refusal, never a crash."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contract.safejson import JsonRefused, loads, within_depth


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"[" * 100_000, "nested"),
        (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, "nested"),
        (b'{"seq": ' + b"9" * 5000 + b"}", "digits"),
        (b"[" * 10 + b"}" * 10, "unbalanced"),
        (b"]]]][[[[", "unbalanced"),
        (b'{"rssi": NaN}', "NaN"),
        (b'{"rssi": -Infinity}', "Infinity"),
        (b'{"a": "\xff"}', "UTF-8"),
        (b"{", "unbalanced"),
        (b"", "not JSON"),
        (b'{"a": 1,}', "not JSON"),
    ],
)
def test_hostile_shapes_are_refused_with_their_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(JsonRefused, match=reason):
        loads(raw)


def test_size_is_checked_before_parsing() -> None:
    with pytest.raises(JsonRefused, match="exceed"):
        loads(b'"' + b"x" * 2000 + b'"', max_bytes=1000)


def test_brackets_and_digits_inside_strings_do_not_count() -> None:
    doc = {"note": "[[[[" * 100 + '\\"]{', "seq": 2**63 - 1, "rssi": -55.25, "l": [[1], {}]}
    assert loads(json.dumps(doc).encode()) == doc
    assert within_depth(json.dumps(doc).encode(), 3)
    assert not within_depth(json.dumps(doc).encode(), 2)


def test_long_digit_runs_are_refused_even_in_strings() -> None:
    with pytest.raises(JsonRefused, match="digits"):
        loads(b'{"a": "' + b"1" * 100 + b'"}', max_digits=64)
    assert loads(b'{"a": "' + b"1" * 64 + b'"}', max_digits=64) == {"a": "1" * 64}


def test_depth_limit_is_exact() -> None:
    assert loads(b"[" * 32 + b"]" * 32, max_depth=32) is not None
    with pytest.raises(JsonRefused):
        loads(b"[" * 33 + b"]" * 33, max_depth=32)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_every_document_within_limits_round_trips(value: object) -> None:
    assert loads(json.dumps(value).encode()) == value


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_parse_or_are_refused(raw: bytes) -> None:
    with contextlib.suppress(JsonRefused):
        loads(raw)
