"""``cmd/lot_releases``: which lots have an approved release, and what each release allows.

Payload (the full current set, signed by the cloud)::

    {"released": ["LOT-A", ...],
     "releases": [{"lot": "LOT-A", "pieces": 30, "vehicles": ["沪A12345"],
                   "window_start": "2026-11-27T08:00:00+00:00",
                   "window_end": "2026-11-28T08:00:00+00:00"}, ...]}

``released`` is what trackers and load cells need (their goods may leave); ``releases`` is
what the gateway's alerting stage needs to tell a release pickup from a theft: how many pieces
may leave, on which vehicles, in which window. ``releases`` is optional (a cloud that sends only
``released`` is still understood). Every field is checked and bounded: the body is signed by
the cloud, but a wrong one must not make goods leave unwatched.

Trackers and load cells both need the lots and the agent keeps one handler per command, so
this module registers one handler per agent and fans the parsed set out to every subscriber.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any
from weakref import WeakKeyDictionary

from decisions.vehicles import Release, ReleasePlan
from edge.pipelines import EdgeContext

log = logging.getLogger(__name__)

COMMAND = "lot_releases"
MAX_PAYLOAD = 256 * 1024
MAX_LOTS = 2000
MAX_RELEASES = 2000
MAX_VEHICLES = 20  # per release
MAX_NAME = 64  # a lot id or a plate
MAX_PIECES = 10_000_000

_subscribers: WeakKeyDictionary[EdgeContext, list[Callable[[set[str]], None]]] = WeakKeyDictionary()


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_NAME or not value.isprintable():
        raise ValueError(f"lot_releases: {what} must be a printable string of 1-{MAX_NAME} chars")
    return value


def _instant_us(value: Any, what: str) -> int:
    if not isinstance(value, str) or len(value) > 40:
        raise ValueError(f"lot_releases: {what} must be an ISO 8601 time")
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"lot_releases: {what} is not an ISO 8601 time") from None
    if at.tzinfo is None:
        raise ValueError(f"lot_releases: {what} needs a time zone")
    return int(at.timestamp() * 1_000_000)


def _release(raw: Any) -> Release:
    if not isinstance(raw, dict):
        raise ValueError("lot_releases: a release must be an object")
    unknown = set(raw) - {"lot", "pieces", "vehicles", "window_start", "window_end"}
    if unknown:
        raise ValueError(f"lot_releases: unknown release fields {sorted(unknown)}")
    pieces = raw.get("pieces")
    if isinstance(pieces, bool) or not isinstance(pieces, int) or not 0 <= pieces <= MAX_PIECES:
        raise ValueError(f"lot_releases: pieces must be an integer 0-{MAX_PIECES}")
    vehicles = raw.get("vehicles", [])
    if not isinstance(vehicles, list) or len(vehicles) > MAX_VEHICLES:
        raise ValueError(f"lot_releases: vehicles must be a list of at most {MAX_VEHICLES}")
    start = _instant_us(raw.get("window_start"), "window_start")
    end = _instant_us(raw.get("window_end"), "window_end")
    if end <= start:
        raise ValueError("lot_releases: window_end must be after window_start")
    return Release(_name(raw.get("lot"), "lot"), pieces,
                   tuple(_name(v, "vehicle") for v in vehicles), start, end)


def parse_release_plan(payload: bytes) -> ReleasePlan:
    """ValueError when the payload is not the body above (or exceeds its bounds)."""
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"lot_releases payload over {MAX_PAYLOAD} bytes")
    try:
        body = json.loads(payload)
    except (UnicodeDecodeError, ValueError) as err:
        raise ValueError(f"lot_releases payload unreadable: {err}") from None
    if not isinstance(body, dict) or "released" not in body:
        raise ValueError("lot_releases payload unreadable: no 'released'")
    unknown = set(body) - {"released", "releases"}
    if unknown:
        raise ValueError(f"lot_releases: unknown fields {sorted(unknown)}")
    released = body["released"]
    if not isinstance(released, list) or len(released) > MAX_LOTS:
        raise ValueError("lot_releases: 'released' must be a list of lot ids")
    lots = frozenset(_name(x, "'released' lot id") for x in released)
    raw_releases = body.get("releases", [])
    if not isinstance(raw_releases, list) or len(raw_releases) > MAX_RELEASES:
        raise ValueError(f"lot_releases: 'releases' must be a list of at most {MAX_RELEASES}")
    return ReleasePlan(lots, tuple(_release(r) for r in raw_releases))


def parse_releases(payload: bytes) -> set[str]:
    """The released lots only; ValueError as :func:`parse_release_plan`."""
    return set(parse_release_plan(payload).released)


def on_releases(ctx: EdgeContext, callback: Callable[[set[str]], None]) -> None:
    callbacks = _subscribers.get(ctx)
    if callbacks is None:
        callbacks = _subscribers[ctx] = []

        def handle(payload: bytes) -> None:
            try:
                released = parse_releases(payload)
            except ValueError as err:
                log.warning("lot_releases command refused", extra={"reason": str(err)})
                return
            for subscriber in list(callbacks):
                subscriber(released)

        ctx.on_command(COMMAND, handle)
    callbacks.append(callback)
