"""The wire contract: canonical bytes, signatures, envelope validation, topics, bodies."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contract import (
    Channel,
    EnvelopeError,
    SignatureInvalid,
    canonical_bytes,
    ingest_subscription,
    open_envelope,
    parse_topic,
    seal,
    telemetry_topic,
    validate_body,
    verify_signature,
)

KEY = Ed25519PrivateKey.generate()
WHEN = datetime(2026, 11, 26, 5, 48, 47, 123456, tzinfo=UTC)
BODY = {
    "reader": "dock-1", "reads": [["3034257BF7194E4000003039", 1, -5520, 1_764_136_127_000_000]]
}


def _sealed(**overrides: object) -> bytes:
    args: dict = {"site": "site-1", "gateway": "gw-1", "seq": 7, "type": "tag_reads",
                  "body": BODY, "observed_at": WHEN}
    args.update(overrides)
    return seal(KEY, **args)


def test_canonical_bytes_sort_keys_at_every_level_without_whitespace() -> None:
    assert canonical_bytes({"b": 1, "a": {"d": [1, 2], "c": "é"}}) == (
        '{"a":{"c":"é","d":[1,2]},"b":1}'.encode()
    )


def test_sealed_message_opens_and_verifies() -> None:
    envelope = open_envelope(_sealed())
    verify_signature(envelope, KEY.public_key())
    assert (envelope.site, envelope.gateway, envelope.seq) == ("site-1", "gw-1", 7)
    assert envelope.observed_at == WHEN
    assert envelope.body == BODY


def test_key_order_and_whitespace_on_the_wire_do_not_matter() -> None:
    obj = json.loads(_sealed())
    reordered = json.dumps(dict(reversed(list(obj.items()))), indent=2).encode()
    verify_signature(open_envelope(reordered), KEY.public_key())


@pytest.mark.parametrize(
    ("field", "value"),
    [("seq", 8), ("gw", "gw-2"), ("ts", "2026-11-26T05:48:48.123456Z"), ("type", "lot_count")],
)
def test_any_changed_field_breaks_the_signature(field: str, value: object) -> None:
    obj = json.loads(_sealed())
    obj[field] = value
    with pytest.raises(SignatureInvalid):
        verify_signature(open_envelope(json.dumps(obj).encode()), KEY.public_key())


def test_changed_reading_breaks_the_signature() -> None:
    obj = json.loads(_sealed())
    obj["body"]["reads"][0][2] = -3000
    with pytest.raises(SignatureInvalid):
        verify_signature(open_envelope(json.dumps(obj).encode()), KEY.public_key())


def test_another_gateways_key_does_not_verify() -> None:
    with pytest.raises(SignatureInvalid):
        verify_signature(open_envelope(_sealed()), Ed25519PrivateKey.generate().public_key())


def test_time_without_fraction_is_signed_as_sent() -> None:
    obj = json.loads(_sealed())
    del obj["sig"]
    obj["ts"] = "2026-11-26T05:48:47Z"
    obj["sig"] = base64.b64encode(KEY.sign(canonical_bytes(obj))).decode()
    envelope = open_envelope(json.dumps(obj).encode())
    verify_signature(envelope, KEY.public_key())
    assert envelope.observed_at == WHEN.replace(microsecond=0)


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda o: o.pop("seq"), "missing field 'seq'"),
        (lambda o: o.update(seq=True), "'seq' must be an integer, not a boolean"),
        (lambda o: o.update(seq=0), "positive"),
        (lambda o: o.update(v=2), "schema version 2"),
        (lambda o: o.update(ts="2026-11-26T05:48:47+08:00"), "must be UTC"),
        (lambda o: o.update(gw="gw/1"), "gateway"),
        (lambda o: o.update(extra=1), "unknown fields"),
        (lambda o: o.update(sig="!!"), "not base64"),
        (lambda o: o.update(body=[1]), "'body' must be an object"),
    ],
)
def test_malformed_envelopes_say_why(mutate, reason: str) -> None:  # type: ignore[no-untyped-def]
    obj = json.loads(_sealed())
    mutate(obj)
    with pytest.raises(EnvelopeError, match=reason):
        open_envelope(json.dumps(obj).encode())


def test_garbage_is_not_json() -> None:
    with pytest.raises(EnvelopeError, match="not JSON"):
        open_envelope(b"\xff\x00garbage")


def test_body_validation_names_the_field() -> None:
    with pytest.raises(ValueError, match=r"reads\.0\.0"):
        validate_body("tag_reads", {"reader": "r", "reads": [["not-hex", 1, None, 1]]})
    with pytest.raises(ValueError, match="unknown message type"):
        validate_body("teleport", {})
    with pytest.raises(ValueError, match="Extra inputs"):
        validate_body("lot_count", {"lot": "L", "expected": 1, "present": 1, "missing": 0,
                                    "unknown": 0, "colour": "red"})


def test_topics_round_trip_and_reject_strangers() -> None:
    topic = telemetry_topic("site-1", "gw-1", "rfid")
    assert topic == "pw/v1/site-1/gw-1/telemetry/rfid"
    address = parse_topic(topic)
    assert (address.site, address.gateway, address.channel, address.subtopic) == (
        "site-1", "gw-1", Channel.TELEMETRY, "rfid")
    for bad in ("pw/v2/s/g/events", "pw/v1/s/g/teleport", "pw/v1/s/g/telemetry", "pw/v1/s"):
        with pytest.raises(ValueError):
            parse_topic(bad)
    assert ingest_subscription(shared=True) == "$share/ingest/pw/v1/#"
    assert ingest_subscription(shared=False) == "pw/v1/#"


def test_a_plate_of_an_unlisted_country_crosses_the_wire_with_region_other() -> None:
    body = {"camera": "gate-1", "plate": "303WVD", "region": "other", "plate_format": "world",
            "confidence_pct": 81, "reads": 4, "direction": "in",
            "first_seen_us": 1_764_136_127_000_000, "last_seen_us": 1_764_136_128_000_000,
            "box": [10, 20, 120, 40]}
    validate_body("plate_read", body)
    with pytest.raises(ValueError, match="region"):
        validate_body("plate_read", {**body, "region": "mars"})
