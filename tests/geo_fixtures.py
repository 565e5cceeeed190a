"""Helpers for the geofence tests: fixes placed in a site's local metres."""

from __future__ import annotations

from geofences.crossing import Fix
from geofences.fences import FenceSet

T0_US = 1_780_000_000_000_000  # 2026-05-28, an arbitrary fixed instant


def fix_at(
    fences: FenceSet, tracker: str, t_s: float, x: float, y: float, acc: float | None = 5.0
) -> Fix:
    lon, lat = fences.projection.to_lonlat(x, y)
    return Fix(tracker=tracker, t_us=T0_US + int(t_s * 1e6), lon=lon, lat=lat, accuracy_m=acc)


def square_site(extra: list[dict] | None = None, site: str = "test-site") -> dict:
    """A 200 m x 100 m fence (id 'zone', guarding LOT-1) near the demo site, plus extras."""
    lon0, lat0, dlon, dlat = 121.59, 31.35, 200 / 95_154.5, 100 / 110_875.5
    ring = [[lon0, lat0], [lon0 + dlon, lat0], [lon0 + dlon, lat0 + dlat], [lon0, lat0 + dlat]]
    ring.append(ring[0])
    feature = {
        "type": "Feature",
        "properties": {"id": "zone", "name": "Zone", "kind": "pledge_zone", "lots": ["LOT-1"]},
        "geometry": {"type": "Polygon", "coordinates": [ring]},
    }
    return {"type": "FeatureCollection", "site": site, "features": [feature, *(extra or [])]}
