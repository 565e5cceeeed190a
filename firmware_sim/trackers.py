"""GPS trackers on the demo site, publishing OwnTracks JSON to the gateway's broker.

Three devices, each a pure generator of (publish time, fix) so tests can use them without
a broker:

- ``coil-1`` sits in pledge zone B, then is driven out through the yard, the south gate and
  down the access road, where it waits (a theft when LOT-B is not released).
- ``coil-2`` is parked on the edge of pledge zone B with drifting GPS error of 5-30 m and an
  honest accuracy figure: it must never produce a crossing.
- ``truck-7`` circles the yard but uploads its stored fixes only every few minutes, as a
  batch with old fix times (a tracker with a poor mobile link).

    python -m firmware_sim trackers --broker mqtt://127.0.0.1:1883 --speedup 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import aiomqtt
import numpy as np

from contract.owntracks import location_payload
from geofences.crossing import Fix
from geofences.fences import FenceSet, load_site
from ops.mqtt import broker_address

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Publication:
    publish_s: float  # seconds after the start of the scenario
    device: str
    fix: Fix
    battery_pct: int


def _fix(fences: FenceSet, device: str, at_us: int, xy: tuple[float, float], acc: float) -> Fix:
    x, y = xy
    lon, lat = fences.projection.to_lonlat(x, y)
    return Fix(device, at_us, lon, lat, acc)


def drive_out(
    fences: FenceSet,
    t0_us: int,
    *,
    parked_s: float = 120,
    interval_s: float = 5,
    speed_mps: float = 6,
    device: str = "coil-1",
) -> Iterator[Publication]:
    zone = fences.by_id("pz-lot-b").area.centroid
    gate = fences.by_id("gate-south").area.centroid
    road = fences.by_id("access-road").feature["geometry"]["coordinates"]
    waypoints = [(zone.x, zone.y), (zone.x, gate.y + 40), (gate.x, gate.y + 40), (gate.x, gate.y)]
    waypoints += [fences.projection.to_xy(lon, lat) for lon, lat in road]
    rng = np.random.default_rng(1)
    t = 0.0
    while t < parked_s:
        yield Publication(
            t,
            device,
            _fix(
                fences,
                device,
                t0_us + int(t * 1e6),
                (zone.x + rng.normal(0, 2), zone.y + rng.normal(0, 2)),
                4,
            ),
            95,
        )
        t += interval_s
    for (x0, y0), (x1, y1) in itertools.pairwise(waypoints):
        steps = max(1, int(math.hypot(x1 - x0, y1 - y0) / (speed_mps * interval_s)))
        for i in range(steps):
            x = x0 + (x1 - x0) * i / steps + rng.normal(0, 2)
            y = y0 + (y1 - y0) * i / steps + rng.normal(0, 2)
            yield Publication(t, device, _fix(fences, device, t0_us + int(t * 1e6), (x, y), 4), 95)
            t += interval_s
    # Waits at the end of the access road for the public road to clear.
    end_x, end_y = waypoints[-1]
    for _ in range(int(120 / interval_s)):
        xy = (end_x + rng.normal(0, 2), end_y + rng.normal(0, 2))
        yield Publication(t, device, _fix(fences, device, t0_us + int(t * 1e6), xy, 4), 95)
        t += interval_s


def parked_at_edge(
    fences: FenceSet,
    t0_us: int,
    *,
    duration_s: float = 3600,
    interval_s: float = 10,
    device: str = "coil-2",
    seed: int = 2,
) -> Iterator[Publication]:
    _minx, miny, maxx, maxy = fences.by_id("pz-lot-b").area.bounds
    x0, y0 = maxx, (miny + maxy) / 2  # on the east edge
    rng = np.random.default_rng(seed)
    ex = ey = 0.0
    t = 0.0
    while t < duration_s:
        # Error of 5-30 m that drifts (multipath wanders), reported as a 68 % radius.
        sigma = 3.5 + 10 * (0.5 + 0.5 * math.sin(t / 600))
        ex = 0.8 * ex + 0.6 * rng.normal(0, sigma)
        ey = 0.8 * ey + 0.6 * rng.normal(0, sigma)
        yield Publication(
            t,
            device,
            _fix(fences, device, t0_us + int(t * 1e6), (x0 + ex, y0 + ey), round(1.5 * sigma)),
            80,
        )
        t += interval_s


def delayed_batches(
    fences: FenceSet,
    t0_us: int,
    *,
    duration_s: float = 1800,
    interval_s: float = 15,
    upload_every_s: float = 300,
    device: str = "truck-7",
) -> Iterator[Publication]:
    minx, miny, maxx, _maxy = fences.by_id("yard").area.bounds
    cx, cy = (minx + maxx) / 2, miny + 25  # south part of the yard, clear of the building
    t = 0.0
    while t < duration_s:
        angle = t / 120
        fix = _fix(
            fences,
            device,
            t0_us + int(t * 1e6),
            (cx + 60 * math.cos(angle), cy + 15 * math.sin(angle)),
            6,
        )
        publish = (math.floor(t / upload_every_s) + 1) * upload_every_s
        yield Publication(publish, device, fix, 60)
        t += interval_s


def scenario(fences: FenceSet, t0_us: int) -> list[Publication]:
    everything = [
        *drive_out(fences, t0_us),
        *parked_at_edge(fences, t0_us),
        *delayed_batches(fences, t0_us),
    ]
    return sorted(everything, key=lambda p: p.publish_s)


async def publish(
    broker: str, publications: list[Publication], *, speedup: float, user: str = "pw"
) -> None:
    host, port, username, password = broker_address(broker)
    started = time.monotonic()
    async with aiomqtt.Client(host, port, username=username, password=password) as client:
        for p in publications:
            delay = p.publish_s / speedup - (time.monotonic() - started)
            if delay > 0:
                await asyncio.sleep(delay)
            payload = location_payload(
                lat=p.fix.lat,
                lon=p.fix.lon,
                acc=p.fix.accuracy_m or 0,
                tst=p.fix.t_us // 1_000_000,
                batt=p.battery_pct,
                created_at=int(time.time()),
            )
            await client.publish(f"owntracks/{user}/{p.device}", payload, qos=1)


def _run(args: argparse.Namespace) -> int:
    fences = load_site(args.site)
    # Fix times run at the simulation's pace from now, so the gateway sees current data.
    t0_us = time.time_ns() // 1000
    publications = scenario(fences, t0_us)
    if args.speedup != 1:
        publications = [
            Publication(
                p.publish_s,
                p.device,
                Fix(
                    p.fix.tracker,
                    t0_us + int((p.fix.t_us - t0_us) / args.speedup),
                    p.fix.lon,
                    p.fix.lat,
                    p.fix.accuracy_m,
                ),
                p.battery_pct,
            )
            for p in publications
        ]
    log.info("publishing tracker scenario", extra={"messages": len(publications)})
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(publish(args.broker, publications, speedup=args.speedup))
    return 0


def add_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("trackers", help="GPS trackers on the demo site (OwnTracks)")
    parser.add_argument("--broker", default="mqtt://127.0.0.1:1883")
    parser.add_argument("--site", default="demo-site")
    parser.add_argument("--speedup", type=float, default=1.0)
    parser.set_defaults(func=_run)
