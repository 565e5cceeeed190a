"""`python -m benchmarks geofence`: tracker positions per second through the crossing detector.

1,000 fences (a third each polygons with and without holes, circles, corridors) spread over a
30 km x 30 km area; 10,000 trackers, each reporting once per tick: 45 % parked inside a fence,
10 % parked on a fence edge with drifting 5-30 m GPS noise, 45 % driving at 5-25 m/s. Timed:
projection, index lookup, margins and the crossing state of every (tracker, fence) pair, on one
core. Baseline (the issue's): for each position, a loop over all fences with
``shapely.Polygon.contains(Point)``, without any crossing state, timed on a sample. The table
also shows an STRtree queried with shapely's vectorised predicates (containment only).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import shapely

from benchmarks._report import peak_rss_mb, print_figures, print_table
from geofences.crossing import CrossingDetector
from geofences.fences import parse_feature_collection
from geofences.projection import LocalProjection

_LON0, _LAT0 = 121.59, 31.35


def _fence_features(count: int, rng: np.random.Generator, proj: LocalProjection) -> list[dict]:
    def ll(points: np.ndarray) -> list[list[float]]:
        lon, lat = proj.to_lonlat_arrays(points[:, 0], points[:, 1])
        return np.column_stack([lon, lat]).round(7).tolist()

    features = []
    for i in range(count):
        cx, cy = rng.uniform(-15_000, 15_000, 2)
        kind = i % 4
        geometry: dict[str, Any]
        props: dict[str, Any] = {"id": f"F{i}", "kind": "yard", "lots": [f"LOT-{i}"]}
        if kind in (0, 1):  # rotated rectangle, every other one a yard around a building
            w, h = rng.uniform(80, 400), rng.uniform(60, 250)
            a = rng.uniform(0, np.pi)
            rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
            corners = np.array([[-w, -h], [w, -h], [w, h], [-w, h], [-w, -h]]) / 2
            rings = [ll(corners @ rot.T + [cx, cy])]
            if kind == 1:
                rings.append(ll((corners * 0.4)[::-1] @ rot.T + [cx, cy]))
            geometry = {"type": "Polygon", "coordinates": rings}
        elif kind == 2:
            geometry = {"type": "Point", "coordinates": ll(np.array([[cx, cy]]))[0]}
            props["radius_m"] = float(rng.uniform(30, 300))
        else:
            steps = rng.normal(0, 1, (3, 2)) * rng.uniform(300, 1000)
            line = np.vstack([[cx, cy], np.cumsum(steps, axis=0) + np.array([cx, cy])])
            geometry = {"type": "LineString", "coordinates": ll(line)}
            props.update(kind="route", width_m=float(rng.uniform(15, 40)))
        features.append({"type": "Feature", "properties": props, "geometry": geometry})
    return features


def _tracks(fences, trackers: int, ticks: int, rng: np.random.Generator):
    """Positions (x, y metres) and accuracies per tick for every tracker."""
    areas = [f.area for f in fences.fences]
    parked_n, edge_n = int(trackers * 0.45), int(trackers * 0.10)
    drive_n = trackers - parked_n - edge_n
    home = rng.integers(0, len(areas), parked_n + edge_n)
    inside = np.array([_point_in(areas[h], rng) for h in home[:parked_n]]).reshape(-1, 2)
    edge = np.array(
        [
            shapely.get_coordinates(
                areas[h].exterior.interpolate(rng.uniform(0, 1), normalized=True)
            )[0]
            if areas[h].geom_type == "Polygon"
            else _point_in(areas[h], rng)
            for h in home[parked_n:]
        ]
    ).reshape(-1, 2)
    start = np.vstack([inside, edge, rng.uniform(-15_000, 15_000, (drive_n, 2))])
    speed = rng.uniform(5, 25, drive_n)
    heading = rng.uniform(0, 2 * np.pi, drive_n)
    xs = np.empty((ticks, trackers))
    ys = np.empty((ticks, trackers))
    accs = np.empty((ticks, trackers))
    noise = np.zeros((trackers, 2))
    pos = start.copy()
    for k in range(ticks):
        sigma = rng.uniform(2, 20, trackers)
        noise = 0.8 * noise + 0.6 * rng.normal(0, 1, (trackers, 2)) * sigma[:, None]
        heading += rng.normal(0, 0.2, drive_n)
        pos[parked_n + edge_n :, 0] += np.cos(heading) * speed * 10
        pos[parked_n + edge_n :, 1] += np.sin(heading) * speed * 10
        xs[k], ys[k] = pos[:, 0] + noise[:, 0], pos[:, 1] + noise[:, 1]
        accs[k] = np.round(1.5 * sigma)
    return xs, ys, accs


def _point_in(area, rng: np.random.Generator) -> tuple[float, float]:
    minx, miny, maxx, maxy = area.bounds
    for _ in range(100):
        x, y = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
        if area.contains(shapely.Point(x, y)):
            return x, y
    c = area.representative_point()
    return c.x, c.y


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks geofence")
    parser.add_argument("--trackers", type=int, default=10_000)
    parser.add_argument("--fences", type=int, default=1_000)
    parser.add_argument("--ticks", type=int, default=40)
    parser.add_argument("--baseline-sample", type=int, default=400)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    proj = LocalProjection.at(_LON0, _LAT0)
    collection = {
        "type": "FeatureCollection",
        "site": "bench",
        "features": _fence_features(args.fences, rng, proj),
    }
    fences = parse_feature_collection(collection)
    xs, ys, accs = _tracks(fences, args.trackers, args.ticks, rng)
    lons, lats = fences.projection.to_lonlat_arrays(xs, ys)

    started = time.perf_counter()
    detector = CrossingDetector(fences)
    build_s = time.perf_counter() - started
    numbers = detector.tracker_numbers([f"T{i}" for i in range(args.trackers)])
    t0_us = 1_780_000_000_000_000
    crossings = 0
    started = time.perf_counter()
    for k in range(args.ticks):
        t_us = np.full(args.trackers, t0_us + k * 10_000_000, np.int64)
        crossings += len(detector.feed_arrays(numbers, t_us, lons[k], lats[k], accs[k]))
    elapsed = time.perf_counter() - started
    positions = args.trackers * args.ticks
    rate = positions / elapsed

    # Reference: an STRtree over the fences queried with shapely's vectorised predicates
    # (containment only, no margins, no state), to show what the cell index buys.
    tree = shapely.STRtree([f.area for f in fences.fences])
    started = time.perf_counter()
    for k in range(min(args.ticks, 5)):
        x, y = fences.projection.to_xy_arrays(lons[k], lats[k])
        tree.query(shapely.points(x, y), predicate="within")
    strtree_rate = args.trackers * min(args.ticks, 5) / (time.perf_counter() - started)

    # Naive baseline: every position against every fence, Polygon.contains(Point).
    areas = [f.area for f in fences.fences]
    sample = rng.integers(0, args.trackers, args.baseline_sample)
    started = time.perf_counter()
    naive_inside = 0
    for i in sample:
        lon, lat = lons[-1, i], lats[-1, i]
        point = shapely.Point(fences.projection.to_xy(lon, lat))
        for area in areas:
            naive_inside += area.contains(point)
    baseline_rate = len(sample) / (time.perf_counter() - started)

    print_table(
        "geofence: positions through the crossing detector (one core)",
        [
            ("fences", args.fences),
            ("trackers", args.trackers),
            ("positions", positions),
            ("index build (s)", round(build_s, 2)),
            ("grid cell (m)", round(detector._index.cell_m, 1)),
            ("crossings decided", crossings),
            ("rejected fixes", positions - detector.counts.accepted),
            ("positions/s", rate),
            ("STRtree + predicates positions/s (containment only)", strtree_rate),
            ("naive positions/s (contains loop, no state)", baseline_rate),
            ("ratio", rate / baseline_rate),
        ],
    )
    print_figures(
        {
            "positions_per_s": round(rate),
            "baseline_positions_per_s": round(baseline_rate, 1),
            "ratio": round(rate / baseline_rate, 1),
            "peak_rss_mb": peak_rss_mb(),
        }
    )
    return 0
