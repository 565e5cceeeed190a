"""Cloud -> gateway commands: only what the cloud signed for this gateway and command counts."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from contract import CommandOrder, CommandRefused, decode_stored, open_command, seal_command
from contract.commands import FUTURE_SKEW_US

CLOUD = Ed25519PrivateKey.generate()
NOW_US = 1_780_000_000_000_000


def sealed(body: object = None, *, key: Ed25519PrivateKey = CLOUD, site: str = "s1",
           gateway: str = "gw1", name: str = "stored", at: int = NOW_US) -> bytes:
    body = {"v": 1, "stored": [[1, 5]]} if body is None else body
    return seal_command(key, site=site, gateway=gateway, name=name, body=body, issued_at_us=at)


def opened(raw: bytes, name: str = "stored", now_us: int = NOW_US) -> object:
    return open_command(raw, public_key=CLOUD.public_key(), site="s1", gateway="gw1", name=name,
                        now_us=now_us).body


def test_a_signed_command_opens_to_its_body() -> None:
    assert decode_stored(opened(sealed())) == [(1, 5)]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"v":1,"stored":[[1,9223372036854775807]]}', "malformed"),  # the old unsigned form
        (sealed(key=Ed25519PrivateKey.generate()), "bad_signature"),
        (sealed(site="s2"), "misaddressed"),
        (sealed(gateway="gw2"), "misaddressed"),
        (sealed(name="geofences"), "misaddressed"),
        (sealed(at=NOW_US + FUTURE_SKEW_US + 1), "from_the_future"),
        (sealed(at=2**62), "malformed"),
        (b"[" * 100_000, "malformed"),
        (b'{"v":1,"stored":[[1,' + b"9" * 5000 + b"]]}", "malformed"),
    ],
)
def test_what_the_cloud_did_not_sign_for_this_gateway_is_refused(raw: bytes, reason: str) -> None:
    with pytest.raises(CommandRefused) as caught:
        opened(raw)
    assert caught.value.reason == reason


def test_a_tampered_body_breaks_the_signature() -> None:
    obj = json.loads(sealed())
    obj["body"]["stored"] = [[1, 2**62]]
    with pytest.raises(CommandRefused, match="bad_signature"):
        opened(json.dumps(obj).encode())


def test_a_signed_but_absurd_confirmation_is_still_refused() -> None:
    for body in ({"v": 1, "stored": [[1, 2**64]]}, {"v": 1, "stored": [[5, 1]]},
                 {"v": 1, "stored": "all"}, [1, 2]):
        with pytest.raises(ValueError):
            decode_stored(opened(sealed(body)))  # type: ignore[arg-type]


def test_an_older_state_setting_command_is_refused_as_a_replay() -> None:
    order = CommandOrder()
    key = CLOUD.public_key()

    def command(at: int) -> object:
        return open_command(sealed({"site": "s1"}, name="geofences", at=at), public_key=key,
                            site="s1", gateway="gw1", name="geofences", now_us=NOW_US)

    order.admit(command(NOW_US - 10))  # type: ignore[arg-type]
    order.admit(command(NOW_US - 10))  # type: ignore[arg-type]  # retained, delivered again
    with pytest.raises(CommandRefused, match="replayed"):
        order.admit(command(NOW_US - 20))  # type: ignore[arg-type]


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_are_refused_with_a_reason(raw: bytes) -> None:
    with pytest.raises(CommandRefused) as caught:
        opened(raw)
    assert caught.value.reason in {"malformed", "bad_signature"}


json_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=20)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["v", "site", "gw", "cmd", "at", "body", "sig", "x"]),
                       json_scalars | st.lists(json_scalars, max_size=3), max_size=8))
def test_command_shaped_objects_are_refused_with_a_reason(obj: dict[str, object]) -> None:
    if isinstance(obj.get("sig"), str):
        obj["sig"] = base64.b64encode(obj["sig"].encode()).decode()  # type: ignore[union-attr]
    with pytest.raises(CommandRefused) as caught:
        opened(json.dumps(obj).encode())
    assert caught.value.reason in {"malformed", "bad_signature"}


@settings(max_examples=300, deadline=None)
@given(st.recursive(json_scalars, lambda c: st.lists(c, max_size=3)
                    | st.dictionaries(st.text(max_size=5), c, max_size=3), max_leaves=12))
def test_any_signed_body_is_a_confirmation_or_a_value_error(body: object) -> None:
    try:
        ranges = decode_stored(opened(sealed(body)))  # type: ignore[arg-type]
    except ValueError:
        return
    assert all(1 <= first <= last < 2**63 for first, last in ranges)
