"""`python -m cloud jt808`: accept JT/T 808 terminals and track them against a site's fences.

    JT808_SECRET=... python -m cloud jt808 --listen 0.0.0.0:7808 \\
        --fences geofences/sites/demo-site.geojson --asset 13800138000:LOT-B:30

Authentication codes are HMAC-SHA256(JT808_SECRET, phone), so nothing per terminal is stored
before it registers. ``--asset PHONE:LOT:INTERVAL_S`` binds a terminal to a pledged lot (theft
and silence rules); ``--allow-any`` lets unknown terminals register.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import time

from cloud.jt808.server import Jt808Server
from cloud.jt808.service import Jt808Tracking, tracker_of
from cloud.jt808.session import HmacAuthority, SessionEvent
from cloud.settings import load_settings
from edge.trackers.watch import TrackedAsset
from geofences.fences import load_fence_file

log = logging.getLogger(__name__)


def _asset(text: str) -> tuple[str, str | None, float]:
    parts = text.split(":")
    if len(parts) != 3 or not parts[0].isdigit():
        raise argparse.ArgumentTypeError(f"asset {text!r} is not PHONE:LOT:INTERVAL_S")
    try:
        return parts[0], parts[1] or None, float(parts[2])
    except ValueError:
        raise argparse.ArgumentTypeError(f"asset {text!r}: interval is not a number") from None


def _now_us() -> int:
    return time.time_ns() // 1000


async def _serve(args: argparse.Namespace, secret: bytes) -> None:
    assets = [TrackedAsset(tracker_of(phone), lot, interval) for phone, lot, interval in args.asset]
    allowed = None if args.allow_any else frozenset(phone for phone, _, _ in args.asset)
    tracking = Jt808Tracking(
        load_settings().database_url,
        load_fence_file(args.fences),
        assets,
        name=args.name,
        now_us=_now_us(),
    )

    async def sink(events: list[SessionEvent]) -> None:
        await tracking.on_events(events, _now_us())

    server = Jt808Server(HmacAuthority(secret, allowed), sink, idle_timeout_s=args.idle_timeout_s)
    host, _, port = args.listen.rpartition(":")
    await server.start(host or "0.0.0.0", int(port))
    try:
        while True:
            await asyncio.sleep(args.silence_check_s)
            await tracking.check_silence(_now_us())
    finally:
        await server.close()
        await tracking.close()


def _run(args: argparse.Namespace) -> int:
    secret = os.environ.get("JT808_SECRET", "").encode()
    if len(secret) < 16:
        log.error("JT808_SECRET must be set to at least 16 bytes")
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args, secret))
    return 0


def add_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("jt808", help="JT/T 808 terminal server")
    parser.add_argument("--listen", default="0.0.0.0:7808")
    parser.add_argument("--fences", required=True, help="GeoJSON FeatureCollection of the site")
    parser.add_argument(
        "--asset",
        type=_asset,
        action="append",
        default=[],
        help="PHONE:LOT:INTERVAL_S (repeatable)",
    )
    parser.add_argument("--allow-any", action="store_true", help="let unknown terminals register")
    parser.add_argument("--name", default="cloud", help="stored as gateway jt808:<name>")
    parser.add_argument("--idle-timeout-s", type=float, default=180.0)
    parser.add_argument("--silence-check-s", type=float, default=10.0)
    parser.set_defaults(func=_run)
