"""OwnTracks-style location messages: ``{"_type": "location", "lat", "lon", "acc", "tst", ...}``.

Published on ``owntracks/{user}/{device}``; the tracker id is ``{user}-{device}`` (the
message's ``tid`` is a two-letter display tag, not unique, so the topic decides). Fields used:
lat, lon (degrees), acc (metres), tst (fix time, Unix seconds), batt (percent). Other
``_type`` values (transition, waypoint, lwt, ...) carry no position and are skipped.
``batt: -1`` is how the iOS app says "unknown" (so is any value outside 0-100): the battery is
then unknown, never 0 %. A ``tst`` outside 2000-2100 (``0`` from a phone without a fix time)
refuses the fix: a position dated 1970 would open or close a geofence at the wrong time.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from contract import safejson
from contract.bounds import TIME_US_MAX, TIME_US_MIN
from contract.refusals import DeviceInputRefused
from contract.safejson import JsonRefused
from geofences.crossing import Fix

MAX_MESSAGE_BYTES = 64 * 1024  # a location is ~300 bytes; cards with a face image are skipped
MAX_DEPTH = 8

TOPIC_FILTER = "owntracks/+/+"


@dataclass(frozen=True, slots=True)
class TrackerReport:
    fix: Fix
    battery_pct: int | None


class NotALocation(Exception):
    """A valid OwnTracks message that carries no position (lwt, transition, ...)."""


class LocationRefused(DeviceInputRefused):
    """A message that claims to be a location but is not a usable one; ``reason`` says why."""


def tracker_of_topic(topic: str) -> str:
    parts = topic.split("/")
    if len(parts) != 3 or parts[0] != "owntracks" or not parts[1] or not parts[2]:
        raise LocationRefused("bad_topic", f"topic {topic[:80]!r} is not owntracks/<user>/<device>")
    return f"{parts[1]}-{parts[2]}"


def _number(data: dict[str, object], key: str, *, required: bool) -> float | None:
    value = data.get(key)
    if value is None:
        if required:
            raise LocationRefused("missing_field", f"location message has no {key!r}")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise LocationRefused("bad_number", f"{key!r} must be a number, got {str(value)[:40]}")
    return float(value)


def parse_location(topic: str, payload: bytes) -> TrackerReport:
    """`LocationRefused` (a ValueError) for a malformed message; NotALocation for other types."""
    tracker = tracker_of_topic(topic)
    try:
        data = safejson.loads(payload, max_bytes=MAX_MESSAGE_BYTES, max_depth=MAX_DEPTH)
    except JsonRefused as err:
        raise LocationRefused("not_json", f"not JSON: {err}") from None
    if not isinstance(data, dict):
        raise LocationRefused("not_an_object", "message is not a JSON object")
    if data.get("_type") != "location":
        raise NotALocation(str(data.get("_type")))
    lat = _number(data, "lat", required=True)
    lon = _number(data, "lon", required=True)
    tst = _number(data, "tst", required=True)
    acc = _number(data, "acc", required=False)
    batt = _number(data, "batt", required=False)
    if lat is None or lon is None or tst is None:  # unreachable: required above
        raise LocationRefused("missing_field", "location message lacks lat, lon or tst")
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise LocationRefused("bad_position", f"position ({lat}, {lon}) is outside WGS84 ranges")
    if acc is not None and acc < 0:
        raise LocationRefused("bad_accuracy", f"accuracy {acc} is negative")
    # Range first: a finite tst like 1e303 overflows to infinity once scaled to microseconds.
    if not TIME_US_MIN <= tst * 1_000_000 <= TIME_US_MAX:
        raise LocationRefused("time_out_of_range", f"tst {tst} is outside 2000-2100")
    t_us = round(tst * 1_000_000)
    return TrackerReport(
        fix=Fix(tracker=tracker, t_us=t_us, lon=lon, lat=lat, accuracy_m=acc),
        battery_pct=None if batt is None or not 0 <= batt <= 100 else int(batt),
    )


def location_payload(
    *, lat: float, lon: float, acc: float, tst: int, batt: int | None = None, created_at: int
) -> bytes:
    """What a tracker publishes (used by the simulator)."""
    message: dict[str, object] = {
        "_type": "location",
        "lat": round(lat, 7),
        "lon": round(lon, 7),
        "acc": round(acc),
        "tst": tst,
        "created_at": created_at,
    }
    if batt is not None:
        message["batt"] = batt
    return json.dumps(message).encode()
