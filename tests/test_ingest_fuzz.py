"""Property-based fuzzing of every decoder of untrusted bytes: each input is parsed or raises
the documented typed error (JsonRefused, EnvelopeError, ValueError from validate_body), nothing
else; and decide() turns any topic and bytes into a Decision without raising."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from cloud.ingest.decode import Accepted, Ignored, RegisteredGateway, Rejected, decide
from contract import EnvelopeError, MessageType, open_envelope, seal, validate_body
from contract.bounds import TIME_US_MAX, TIME_US_MIN
from contract.envelope import MAX_ENVELOPE_BYTES
from contract.safejson import JsonRefused, loads

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KEY = Ed25519PrivateKey.generate()
GATEWAYS = {"gw-1": RegisteredGateway("gw-1", "site-1", KEY.public_key())}
NOW_US = 1_795_000_000_000_000

# Numbers chosen at the edges of every range, plus anything.
edge_ints = st.one_of(
    st.integers(),
    st.sampled_from([0, -1, 1, 2**31, 2**62, -2**62, 2**63, 2**63 - 1, -2**63, 10**300 - 1,
                     TIME_US_MIN - 1, TIME_US_MIN, TIME_US_MAX, TIME_US_MAX + 1]),
)
scalars = st.one_of(st.none(), st.booleans(), edge_ints, st.floats(allow_nan=False),
                    st.text(max_size=40), st.sampled_from(["\x00", "\ud800", "AAAA0001", "lot:L1"]))
json_values = st.recursive(
    scalars, lambda inner: st.one_of(st.lists(inner, max_size=6),
                                     st.dictionaries(st.text(max_size=12), inner, max_size=6)),
    max_leaves=30)


@FAST
@given(st.binary(max_size=2000))
def test_safejson_parses_or_refuses_any_bytes(raw: bytes) -> None:
    with contextlib.suppress(JsonRefused):
        loads(raw, max_bytes=1000, max_depth=8, max_digits=20)


@FAST
@given(json_values, st.integers(min_value=1, max_value=80))
def test_safejson_agrees_with_json_within_its_limits(value: Any, depth: int) -> None:
    text = json.dumps(value)
    try:
        parsed = loads(text, max_depth=depth, max_digits=64)
    except JsonRefused:
        return
    assert parsed == json.loads(text)


def test_safejson_refuses_the_attacks_of_issue_11() -> None:
    for raw in (b"[" * 100_000, b'{"seq": ' + b"9" * 5000 + b"}", b"[NaN]", b"\xff",
                b"[1e400]", b'{"v": -1E+999}'):
        try:
            loads(raw)
        except JsonRefused:
            continue
        raise AssertionError(f"accepted {raw[:20]!r}")


def test_an_envelope_over_the_size_cap_is_refused_before_it_is_parsed() -> None:
    # The project's broker drops these first (message_size_limit); a broker configured without
    # the cap still cannot make ingest parse one.
    raw = b"{" + b" " * MAX_ENVELOPE_BYTES + b"}"
    decision = decide("pw/v1/s1/gw1/events", raw, {}, now_us=TIME_US_MIN + 1)
    assert isinstance(decision, Rejected) and "exceed" in decision.reason


@FAST
@given(st.binary(max_size=3000))
def test_open_envelope_parses_or_raises_envelope_error_on_any_bytes(raw: bytes) -> None:
    with contextlib.suppress(EnvelopeError):
        open_envelope(raw)


def _good_object() -> dict[str, Any]:
    raw = seal(KEY, site="site-1", gateway="gw-1", seq=1, type="lot_count",
               body={"lot": "L1", "expected": 1, "present": 1, "missing": 0, "unknown": 0},
               observed_at=datetime.now(UTC))
    return json.loads(raw)  # type: ignore[no-any-return]


@FAST
@given(st.sampled_from(["v", "site", "gw", "seq", "ts", "off", "type", "body", "sig", "x"]),
       json_values)
def test_open_envelope_with_any_field_replaced_is_parsed_or_refused(field: str,
                                                                    value: Any) -> None:
    obj = _good_object()
    obj[field] = value
    with contextlib.suppress(EnvelopeError):
        open_envelope(json.dumps(obj).encode())


@FAST
@given(st.sampled_from(list(MessageType)), st.dictionaries(st.text(max_size=20), json_values,
                                                            max_size=8))
def test_every_body_validator_accepts_or_raises_value_error(msg_type: MessageType,
                                                            body: dict[str, Any]) -> None:
    try:
        result = validate_body(msg_type, body)
    except ValueError:
        return
    assert isinstance(result, BaseModel)


@FAST
@given(st.sampled_from(list(MessageType)), st.data())
def test_every_body_field_replaced_keeps_the_validator_typed(msg_type: MessageType,
                                                             data: st.DataObject) -> None:
    """Replace one field of a realistic body at a time, with edge values."""
    from contract.messages import BODY_MODELS

    fields = list(BODY_MODELS[msg_type].model_fields)
    body = {f: data.draw(json_values) for f in fields}
    try:
        result = validate_body(msg_type, body)
    except ValueError:
        return
    assert isinstance(result, BaseModel)


@FAST
@given(st.text(max_size=60), st.binary(max_size=500))
def test_decide_never_raises(topic: str, raw: bytes) -> None:
    decision = decide(topic, raw, GATEWAYS, now_us=NOW_US)
    assert isinstance(decision, Accepted | Rejected | Ignored)


@FAST
@given(st.sampled_from(list(MessageType)), st.dictionaries(st.text(max_size=20), json_values,
                                                            max_size=6))
def test_decide_on_signed_hostile_bodies_never_raises(msg_type: MessageType,
                                                      body: dict[str, Any]) -> None:
    try:
        raw = seal(KEY, site="site-1", gateway="gw-1", seq=1, type=msg_type, body=body,
                   observed_at=datetime.now(UTC))
    except ValueError:
        return  # json.dumps refuses 5,000-digit ints
    decision = decide("pw/v1/site-1/gw-1/events", raw, GATEWAYS, now_us=NOW_US)
    assert isinstance(decision, Accepted | Rejected)


@FAST
@given(st.sampled_from(["site", "gw", "seq", "ts", "off", "type", "body", "sig"]), json_values)
def test_decide_on_any_field_replaced_in_a_known_gateways_envelope_never_raises(
        field: str, value: Any) -> None:
    """Reaches signature verification (canonical bytes) with whatever the field became."""
    obj = _good_object()
    obj[field] = value
    decision = decide("pw/v1/site-1/gw-1/telemetry/lot", json.dumps(obj).encode(), GATEWAYS,
                      now_us=NOW_US)
    assert isinstance(decision, Rejected | Accepted)


def test_a_lone_surrogate_is_refused_before_it_reaches_the_signature_check() -> None:
    obj = _good_object()
    obj["body"]["lot"] = "\ud800"
    raw = json.dumps(obj).encode()  # ASCII-escaped: "\\ud800" on the wire
    decision = decide("pw/v1/site-1/gw-1/telemetry/lot", raw, GATEWAYS, now_us=NOW_US)
    assert isinstance(decision, Rejected) and "lone surrogate" in decision.reason


@FAST
@given(st.sampled_from(["1e400", "-1E+999", "1e-400", "123.5e2", "0.0"]))
def test_a_number_beyond_a_double_is_refused_before_the_signature_check(number: str) -> None:
    obj = _good_object()
    obj["body"]["expected"] = 12345
    raw = json.dumps(obj).encode().replace(b"12345", number.encode())
    decision = decide("pw/v1/site-1/gw-1/telemetry/lot", raw, GATEWAYS, now_us=NOW_US)
    assert isinstance(decision, Rejected)
    if "e4" in number.lower() or "e+9" in number.lower():
        assert "out of range for a double" in decision.reason
