"""``cmd/lot_releases``: which lots have an approved release (their goods may leave).

Payload ``{"released": ["LOT-A", ...]}`` (the full current set). Trackers and load cells both
need it and the agent keeps one handler per command, so this module registers one handler per
agent and fans the parsed set out to every subscriber.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from weakref import WeakKeyDictionary

from edge.pipelines import EdgeContext

log = logging.getLogger(__name__)

COMMAND = "lot_releases"

_subscribers: WeakKeyDictionary[EdgeContext, list[Callable[[set[str]], None]]] = WeakKeyDictionary()


def parse_releases(payload: bytes) -> set[str]:
    """ValueError when the payload is not ``{"released": [lot ids]}``."""
    try:
        released = json.loads(payload)["released"]
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"lot_releases payload unreadable: {err}") from None
    if not isinstance(released, list) or not all(isinstance(x, str) and x for x in released):
        raise ValueError("lot_releases: 'released' must be a list of lot ids")
    return set(released)


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
