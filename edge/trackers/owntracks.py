"""OwnTracks-style location messages: ``{"_type": "location", "lat", "lon", "acc", "tst", ...}``.

Published on ``owntracks/{user}/{device}``; the tracker id is ``{user}-{device}`` (the
message's ``tid`` is a two-letter display tag, not unique, so the topic decides). Fields used:
lat, lon (degrees), acc (metres), tst (fix time, Unix seconds), batt (percent). Other
``_type`` values (transition, waypoint, lwt, ...) carry no position and are skipped.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from geofences.crossing import Fix

TOPIC_FILTER = "owntracks/+/+"


@dataclass(frozen=True, slots=True)
class TrackerReport:
    fix: Fix
    battery_pct: int | None


class NotALocation(Exception):
    """A valid OwnTracks message that carries no position (lwt, transition, ...)."""


def tracker_of_topic(topic: str) -> str:
    parts = topic.split("/")
    if len(parts) != 3 or parts[0] != "owntracks" or not parts[1] or not parts[2]:
        raise ValueError(f"topic {topic!r} is not owntracks/<user>/<device>")
    return f"{parts[1]}-{parts[2]}"


def _number(data: dict[str, object], key: str, *, required: bool) -> float | None:
    value = data.get(key)
    if value is None:
        if required:
            raise ValueError(f"location message has no {key!r}")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{key!r} must be a number, got {value!r}")
    return float(value)


def parse_location(topic: str, payload: bytes) -> TrackerReport:
    """ValueError for a malformed message; NotALocation for other message types."""
    tracker = tracker_of_topic(topic)
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"not JSON: {err}") from None
    if not isinstance(data, dict):
        raise ValueError("message is not a JSON object")
    if data.get("_type") != "location":
        raise NotALocation(str(data.get("_type")))
    lat = _number(data, "lat", required=True)
    lon = _number(data, "lon", required=True)
    tst = _number(data, "tst", required=True)
    acc = _number(data, "acc", required=False)
    batt = _number(data, "batt", required=False)
    if lat is None or lon is None or tst is None:  # unreachable: required above
        raise ValueError("location message lacks lat, lon or tst")
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise ValueError(f"position ({lat}, {lon}) is outside WGS84 ranges")
    if acc is not None and acc < 0:
        raise ValueError(f"accuracy {acc} is negative")
    return TrackerReport(
        fix=Fix(tracker=tracker, t_us=int(tst * 1_000_000), lon=lon, lat=lat, accuracy_m=acc),
        battery_pct=None if batt is None else int(max(0, min(100, batt))),
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
