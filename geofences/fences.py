"""Geofences as loaded from a GeoJSON FeatureCollection (WGS84), and their metric shapes.

A feature's properties: ``id``, ``name``, ``kind`` (warehouse, yard, pledge_zone, gate, route),
``lots`` it guards, optional ``buffer_m`` (the fence is enlarged by this many metres) and
optional ``schedule`` (when the fence is active). Geometry: Polygon (holes allowed) or
MultiPolygon; a Point with ``radius_m`` is a circle; a LineString or MultiLineString with
``width_m`` is a corridor. Styling keys written by GeoJSON editors (simplestyle: ``stroke``,
``fill``, ``marker-*``, ``title``, ``description``) are ignored; any other unknown key is an
error, so a typo such as ``bufer_m`` does not silently weaken a fence.

Invalid geometry is refused with the feature's id and shapely's reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from geofences.outline import FenceOutline
from geofences.projection import LocalProjection
from geofences.schedule import Schedule, parse_schedule

SITES_DIR = Path(__file__).parent / "sites"

# Circles and round corridor ends become polygons with 4 * 16 segments per full turn: the
# largest gap to the true circle is r * (1 - cos(pi / 64)), 0.12 % of the radius.
_QUAD_SEGS = 16
_KNOWN_KEYS = frozenset(
    {"id", "name", "kind", "lots", "buffer_m", "schedule", "radius_m", "width_m"}
)
_STYLE_KEYS = frozenset({"title", "description"})
_STYLE_PREFIXES = ("stroke", "fill", "marker-")


class FenceKind(StrEnum):
    WAREHOUSE = "warehouse"
    YARD = "yard"
    PLEDGE_ZONE = "pledge_zone"
    GATE = "gate"
    ROUTE = "route"


class InvalidGeofence(ValueError):
    """A feature that cannot become a fence; names the feature and says why."""

    def __init__(self, feature_id: str, reason: str) -> None:
        super().__init__(f"geofence {feature_id!r}: {reason}")
        self.feature_id = feature_id
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Geofence:
    id: str
    name: str
    kind: FenceKind
    lots: tuple[str, ...]
    buffer_m: float
    schedule: Schedule | None
    area: BaseGeometry  # the fenced area in local metres, buffer applied
    outline: FenceOutline  # the same, as segments + radius for exact signed distances
    feature: dict[str, Any]  # the GeoJSON feature as given (WGS84)

    def is_active(self, t_us: int) -> bool:
        return self.schedule is None or self.schedule.is_open(t_us)


@dataclass(frozen=True, slots=True)
class FenceSet:
    """All fences of one site, in one local projection, at one version."""

    site: str
    version: int
    projection: LocalProjection
    fences: tuple[Geofence, ...]

    def by_id(self, fence_id: str) -> Geofence:
        for fence in self.fences:
            if fence.id == fence_id:
                return fence
        raise KeyError(fence_id)

    def guarding(self, lot: str) -> tuple[Geofence, ...]:
        return tuple(f for f in self.fences if lot in f.lots)

    def to_feature_collection(self) -> dict[str, Any]:
        return {
            "type": "FeatureCollection",
            "site": self.site,
            "version": self.version,
            "features": [f.feature for f in self.fences],
        }


def _number(props: dict[str, Any], key: str, fid: str, *, positive: bool) -> float | None:
    value = props.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
        raise InvalidGeofence(fid, f"{key} must be a number of metres, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise InvalidGeofence(fid, f"{key} must be {'> 0' if positive else '>= 0'}, got {value}")
    return float(value)


def _check_keys(props: dict[str, Any], fid: str) -> None:
    unknown = [
        k
        for k in props
        if k not in _KNOWN_KEYS and k not in _STYLE_KEYS and not k.startswith(_STYLE_PREFIXES)
    ]
    if unknown:
        raise InvalidGeofence(fid, f"unknown properties {sorted(unknown)}")


def _wgs84_geometry(feature: dict[str, Any], fid: str) -> BaseGeometry:
    raw = feature.get("geometry")
    if not isinstance(raw, dict):
        raise InvalidGeofence(fid, "feature has no geometry")
    try:
        geom = shape(raw)
    except (ValueError, TypeError, AttributeError, KeyError, IndexError) as err:
        raise InvalidGeofence(fid, f"unreadable geometry: {err}") from None
    if geom.is_empty:
        raise InvalidGeofence(fid, "geometry is empty")
    coords = shapely.get_coordinates(geom)
    if not np.isfinite(coords).all():
        raise InvalidGeofence(fid, "geometry has non-finite coordinates")
    if (np.abs(coords[:, 0]) > 180).any() or (np.abs(coords[:, 1]) > 90).any():
        raise InvalidGeofence(fid, "coordinates are outside WGS84 [lon, lat] ranges")
    if not shapely.is_valid(geom):
        raise InvalidGeofence(fid, f"invalid geometry: {shapely.is_valid_reason(geom)}")
    return geom


def _metric_shapes(
    geom: BaseGeometry, props: dict[str, Any], fid: str, projection: LocalProjection
) -> tuple[BaseGeometry, FenceOutline]:
    metric = shapely.transform(
        geom,
        lambda c: np.column_stack(projection.to_xy_arrays(c[:, 0], c[:, 1])),
    )
    kind = geom.geom_type
    radius = _number(props, "radius_m", fid, positive=True)
    width = _number(props, "width_m", fid, positive=True)
    buffer_m = _number(props, "buffer_m", fid, positive=False) or 0.0
    if kind == "Point":
        if radius is None:
            raise InvalidGeofence(fid, "a Point fence is a circle and needs radius_m")
        area = shapely.buffer(metric, radius, quad_segs=_QUAD_SEGS)
        outline = FenceOutline.of_skeleton(metric, radius + buffer_m)
    elif kind in ("LineString", "MultiLineString"):
        if width is None:
            raise InvalidGeofence(fid, f"a {kind} fence is a corridor and needs width_m")
        area = shapely.buffer(metric, width / 2, quad_segs=_QUAD_SEGS)
        outline = FenceOutline.of_skeleton(metric, width / 2 + buffer_m)
    elif kind in ("Polygon", "MultiPolygon"):
        if radius is not None or width is not None:
            raise InvalidGeofence(fid, "radius_m / width_m apply to Point / LineString fences")
        area = metric
        outline = FenceOutline.of_polygon(metric, buffer_m)
    else:
        raise InvalidGeofence(fid, f"geometry type {kind} cannot be a fence")
    # Projection can in principle make a barely valid ring self-touch; check again in metres.
    if not shapely.is_valid(area):
        raise InvalidGeofence(fid, f"invalid geometry in metres: {shapely.is_valid_reason(area)}")
    if area.area <= 0:
        raise InvalidGeofence(fid, "fence encloses no area")
    if buffer_m:
        area = shapely.buffer(area, buffer_m, quad_segs=_QUAD_SEGS)
    return area, outline


def parse_feature_collection(
    data: dict[str, Any], *, site: str | None = None, version: int | None = None
) -> FenceSet:
    """Turn a GeoJSON FeatureCollection into a FenceSet; InvalidGeofence on the first bad fence."""
    if not isinstance(data, dict) or data.get("type") != "FeatureCollection":
        raise ValueError("geofences must be a GeoJSON FeatureCollection")
    features = data.get("features")
    if not isinstance(features, list) or not features:
        raise ValueError("the FeatureCollection has no features")
    site_id = site or data.get("site")
    if not isinstance(site_id, str) or not site_id:
        raise ValueError("the FeatureCollection names no site (a top-level 'site' member)")
    raw_version = data.get("version", 0) if version is None else version
    if isinstance(raw_version, bool) or not isinstance(raw_version, int) or raw_version < 0:
        raise ValueError(f"version must be a non-negative integer, got {raw_version!r}")

    parsed: list[tuple[str, dict[str, Any], dict[str, Any], BaseGeometry]] = []
    for position, feature in enumerate(features):
        if not isinstance(feature, dict) or feature.get("type") != "Feature":
            raise InvalidGeofence(f"#{position}", "not a GeoJSON Feature")
        props = feature.get("properties") or {}
        fid = props.get("id", feature.get("id"))
        if not isinstance(fid, str) or not fid:
            raise InvalidGeofence(f"#{position}", "feature has no string id")
        if not isinstance(props, dict):
            raise InvalidGeofence(fid, "properties must be an object")
        _check_keys(props, fid)
        parsed.append((fid, feature, props, _wgs84_geometry(feature, fid)))

    ids = [fid for fid, *_ in parsed]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise InvalidGeofence(duplicates[0], "id used by more than one feature")

    # One projection for the site: about the centre of everything fenced.
    lon_min, lat_min, lon_max, lat_max = shapely.total_bounds([g for *_, g in parsed])
    projection = LocalProjection.at(float(lon_min + lon_max) / 2, float(lat_min + lat_max) / 2)

    fences = []
    for fid, feature, props, geom in parsed:
        try:
            kind = FenceKind(str(props.get("kind")))
        except ValueError:
            raise InvalidGeofence(
                fid,
                f"kind must be one of {[k.value for k in FenceKind]}, got {props.get('kind')!r}",
            ) from None
        lots = props.get("lots", [])
        if not isinstance(lots, list) or not all(isinstance(x, str) and x for x in lots):
            raise InvalidGeofence(fid, "lots must be a list of lot ids")
        try:
            schedule = parse_schedule(props["schedule"]) if props.get("schedule") else None
        except ValueError as err:
            raise InvalidGeofence(fid, str(err)) from None
        area, outline = _metric_shapes(geom, props, fid, projection)
        fences.append(
            Geofence(
                id=fid,
                name=str(props.get("name") or fid),
                kind=kind,
                lots=tuple(lots),
                buffer_m=_number(props, "buffer_m", fid, positive=False) or 0.0,
                schedule=schedule,
                area=area,
                outline=outline,
                feature=feature,
            )
        )
    return FenceSet(site=site_id, version=raw_version, projection=projection, fences=tuple(fences))


def load_fence_file(path: str | Path) -> FenceSet:
    with open(path, encoding="utf-8") as handle:
        try:
            data = json.load(handle)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not JSON: {err}") from None
    return parse_feature_collection(data)


def load_site(site: str) -> FenceSet:
    """The fences shipped under geofences/sites/<site>.geojson."""
    return load_fence_file(SITES_DIR / f"{site}.geojson")
