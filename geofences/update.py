"""Fence updates pushed by the cloud on ``cmd/geofences``, and the gateway's answer.

The payload is JSON: ``{"site": ..., "version": N, "fences": <FeatureCollection>}``. A gateway
applies a version newer than the one it runs, re-acknowledges the one it runs (the command may
be delivered twice), and refuses an older one or a collection with a bad fence, naming it.
Pure: bytes and the current version in, a decision out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from geofences.fences import FenceSet, InvalidGeofence, parse_feature_collection

COMMAND = "geofences"  # cmd/geofences


@dataclass(frozen=True, slots=True)
class FenceUpdateDecision:
    version: int
    state: str  # "applied" | "refused" | "unchanged"
    fences: FenceSet | None
    reason: str | None = None


def update_body(fences: FenceSet) -> dict[str, Any]:
    """The ``cmd/geofences`` body: what the cloud signs and the gateway decides on."""
    return {"site": fences.site, "version": fences.version,
            "fences": fences.to_feature_collection()}


def encode_update(fences: FenceSet) -> bytes:
    return json.dumps(update_body(fences), separators=(",", ":")).encode()


def decide_update(payload: bytes, *, site: str, running_version: int | None) -> FenceUpdateDecision:
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        return FenceUpdateDecision(running_version or 0, "refused", None, f"not JSON: {err}")
    if not isinstance(data, dict) or not isinstance(data.get("version"), int):
        return FenceUpdateDecision(
            running_version or 0, "refused", None, "payload needs an integer 'version'"
        )
    version = data["version"]
    if data.get("site") != site:
        return FenceUpdateDecision(
            version, "refused", None, f"fences are for site {data.get('site')!r}, not {site!r}"
        )
    if running_version is not None and version < running_version:
        return FenceUpdateDecision(
            version, "refused", None, f"version {version} is older than {running_version}"
        )
    if running_version is not None and version == running_version:
        return FenceUpdateDecision(version, "unchanged", None)
    collection = data.get("fences")
    if not isinstance(collection, dict):
        return FenceUpdateDecision(version, "refused", None, "payload needs a 'fences' object")
    try:
        fences = parse_feature_collection(collection, site=site, version=version)
    except InvalidGeofence as err:
        return FenceUpdateDecision(version, "refused", None, str(err))
    except ValueError as err:
        return FenceUpdateDecision(version, "refused", None, str(err))
    return FenceUpdateDecision(version, "applied", fences)
