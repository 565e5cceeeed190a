"""Commands from the cloud to a gateway (``cmd/{name}``), signed by the cloud's command key.

Wire form: one JSON object

    {"v": 1, "site": "...", "gw": "...", "cmd": "stored", "at": 1764000000000000,
     "body": <any JSON value>, "sig": "<base64 Ed25519 signature>"}

The signature covers the canonical bytes of the object without ``sig`` (the same rule as the
envelope, contract/envelope.py). It binds the command to one site, one gateway and one command
name, so a command captured on one topic is worthless on another; ``at`` (microseconds, the
cloud's clock) lets the gateway refuse a command from the future and an older copy of a command
that sets state (a replayed geofence set or gate list). Confirmations (``stored``) are not
ordered: several ingest processes confirm at once, and a replayed confirmation only repeats
what the cloud already confirmed (the outbox clamps ranges to sequence numbers it allocated).

Who may send: only a holder of the cloud's command key (cloud/command_key.py). The broker's ACL
already keeps gateways off each other's ``cmd/`` topics; the signature also keeps out anyone who
got past the broker (a leaked broker password, a misconfigured bridge).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from contract import safejson
from contract.bounds import time_us_in_range
from contract.envelope import canonical_bytes

COMMAND_VERSION = 1
MAX_COMMAND_BYTES = 1024 * 1024
FUTURE_SKEW_US = 300 * 1_000_000  # commands dated later than this past the gateway's clock
_FIELDS = frozenset({"v", "site", "gw", "cmd", "at", "body", "sig"})


class CommandRefused(ValueError):
    """Not a command this gateway acts on; ``reason`` is a short fixed code for metrics."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Command:
    site: str
    gateway: str
    name: str
    issued_at_us: int
    body: Any


def seal_command(
    key: Ed25519PrivateKey, *, site: str, gateway: str, name: str, body: Any, issued_at_us: int
) -> bytes:
    fields = {
        "v": COMMAND_VERSION, "site": site, "gw": gateway, "cmd": name, "at": issued_at_us,
        "body": body,
    }
    signed = canonical_bytes(fields)
    sig = base64.b64encode(key.sign(signed)).decode("ascii")
    return signed[:-1] + b',"sig":"' + sig.encode("ascii") + b'"}'


def open_command(
    raw: bytes, *, public_key: Ed25519PublicKey, site: str, gateway: str, name: str,
    now_us: int,
) -> Command:
    """The verified command for this gateway, or CommandRefused saying why."""
    try:
        obj = safejson.loads(raw, max_bytes=MAX_COMMAND_BYTES)
    except safejson.JsonRefused as err:
        raise CommandRefused("malformed", str(err)) from None
    if not isinstance(obj, dict) or set(obj) != _FIELDS:
        raise CommandRefused("malformed", f"a command is an object with exactly {sorted(_FIELDS)}")
    if obj["v"] != COMMAND_VERSION or isinstance(obj["v"], bool):
        raise CommandRefused("malformed", f"command version {obj['v']!r} unsupported")
    at = obj["at"]
    if isinstance(at, bool) or not isinstance(at, int) or not time_us_in_range(at):
        raise CommandRefused("malformed", "'at' must be microseconds between 2000 and 2100")
    if not isinstance(obj["sig"], str):
        raise CommandRefused("malformed", "'sig' must be a string")
    try:
        signature = base64.b64decode(obj["sig"], validate=True)
    except binascii.Error:
        raise CommandRefused("malformed", "'sig' is not base64") from None
    fields = {k: v for k, v in obj.items() if k != "sig"}
    try:
        public_key.verify(signature, canonical_bytes(fields))
    except (InvalidSignature, ValueError):
        raise CommandRefused("bad_signature", "not signed by the cloud's command key") from None
    if (obj["site"], obj["gw"], obj["cmd"]) != (site, gateway, name):
        raise CommandRefused(
            "misaddressed",
            f"signed for {obj['site']!r}/{obj['gw']!r} cmd/{obj['cmd']!r}, "
            f"received as {site}/{gateway} cmd/{name}",
        )
    if at > now_us + FUTURE_SKEW_US:
        raise CommandRefused("from_the_future", f"dated {at}, the gateway's clock says {now_us}")
    return Command(site=site, gateway=gateway, name=name, issued_at_us=at, body=obj["body"])


class CommandOrder:
    """Refuses a state-setting command older than the last one applied under the same name.

    Sans-I/O: fed the verified commands; the caller keeps it for the life of the process (a
    retained command comes again on reconnect with the same ``at`` and is applied again, which
    every state-setting handler tolerates).
    """

    def __init__(self) -> None:
        self._last: dict[str, int] = {}

    def admit(self, command: Command) -> None:
        last = self._last.get(command.name)
        if last is not None and command.issued_at_us < last:
            raise CommandRefused(
                "replayed", f"cmd/{command.name} dated {command.issued_at_us}, older than {last}"
            )
        self._last[command.name] = command.issued_at_us
