"""OwnTracks trackers that publish to the cloud's broker directly (no gateway on site).

Subscribes to ``owntracks/+/+`` and runs the same tracker decisions as a gateway for one
site's fences (``CloudTracking``), storing as gateway ``owntracks:<name>``. MQTT delivery from
a phone or tracker is at most QoS 1 and the cloud decides what it received; a failed store is
retried at the next flush with everything decided since.

    python -m cloud owntracks --fences geofences/sites/demo-site.geojson \\
        --asset pw-coil-1:LOT-B:30
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import time

import psycopg

from cloud.settings import load_settings
from cloud.tracking import CloudTracking
from decisions.trackers.watch import TrackedAsset
from geofences.fences import load_fence_file
from ops.owntracks import OwnTracksConfig, OwnTracksFeed

log = logging.getLogger(__name__)


def _now_us() -> int:
    return time.time_ns() // 1000


def _refused(reason: str, detail: str) -> None:
    if reason != "not_a_location":  # lwt, transition, card: valid, just not a position
        log.warning("owntracks message refused", extra={"reason": reason, "detail": detail})


async def follow(tracking: CloudTracking, mqtt_url: str, *, flush_s: float, client_id: str) -> None:
    """Runs until cancelled."""

    async def flush_forever() -> None:
        while True:
            await asyncio.sleep(flush_s)
            try:
                await tracking.commit(tracking.station.flush(_now_us()))
            except psycopg.Error as err:
                log.error("owntracks positions not stored yet", extra={"error": str(err)})

    flusher = asyncio.create_task(flush_forever())
    try:
        async with OwnTracksFeed(OwnTracksConfig(mqtt_url, client_id), on_refused=_refused) as feed:
            async for batch in feed.batches():
                for report in batch:
                    # Decisions are made at the flush; what add() returns (a cleared silence)
                    # is kept.
                    tracking.station_output(
                        tracking.station.add(report.fix, report.battery_pct, _now_us()))
    finally:
        flusher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flusher


def _asset(text: str) -> TrackedAsset:
    parts = text.split(":")
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"asset {text!r} is not TRACKER:LOT:INTERVAL_S")
    try:
        return TrackedAsset(parts[0], parts[1] or None, float(parts[2]))
    except ValueError:
        raise argparse.ArgumentTypeError(f"asset {text!r}: interval is not a number") from None


def _run(args: argparse.Namespace) -> int:
    settings = load_settings()

    async def main() -> None:
        tracking = CloudTracking(
            settings.database_url,
            load_fence_file(args.fences),
            args.asset,
            source="owntracks",
            name=args.name,
            now_us=_now_us(),
        )
        try:
            await follow(
                tracking,
                settings.mqtt_url,
                flush_s=args.flush_s,
                client_id=f"pw-owntracks-{args.name}",
            )
        finally:
            await tracking.close()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    return 0


def add_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("owntracks", help="OwnTracks trackers on the cloud broker")
    parser.add_argument("--fences", required=True, help="GeoJSON FeatureCollection of the site")
    parser.add_argument(
        "--asset",
        type=_asset,
        action="append",
        default=[],
        help="TRACKER:LOT:INTERVAL_S (repeatable)",
    )
    parser.add_argument("--name", default="cloud")
    parser.add_argument("--flush-s", type=float, default=2.0)
    parser.set_defaults(func=_run)
