"""`python -m cloud jt808`: provision JT/T 808 terminals and serve one site's terminals.

    python -m cloud jt808 provision --site demo-site --phone 13800138000 \\
        --terminal-id T138000 --lot LOT-B --interval-s 30
    python -m cloud jt808 serve --listen 0.0.0.0:7808 \\
        --fences geofences/sites/demo-site.geojson --metrics-port 9108

``provision`` prints the terminal's authentication code (generated unless ``--auth-code``
gives the one configured in the terminal out of band). ``serve`` accepts only the terminals
provisioned for the fences' site, re-reading them every ``--reload-s`` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import time

import psycopg
from prometheus_client import start_http_server

from cloud.jt808.feed import Jt808Listen, Jt808Terminals, settle
from cloud.jt808.provisioning import ProvisioningError, load_terminals, provision
from cloud.jt808.service import Jt808Tracking
from cloud.jt808.session import ProvisionedTerminal, ProvisionedTerminals, SessionEvent
from cloud.registry import Conflict, NotFound
from cloud.settings import load_settings
from geofences.fences import load_fence_file
from ops.supervised import Health

log = logging.getLogger(__name__)


def _now_us() -> int:
    return time.time_ns() // 1000


async def _load(database_url: str, site: str) -> list[ProvisionedTerminal]:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        return await load_terminals(conn, site)


async def _serve(args: argparse.Namespace) -> None:
    database_url = load_settings().database_url
    fences = load_fence_file(args.fences)
    terminals = await _load(database_url, fences.site)
    authority = ProvisionedTerminals(terminals)
    tracking = Jt808Tracking(database_url, fences, terminals, name=args.name, now_us=_now_us())

    async def store(events: list[SessionEvent]) -> None:
        await tracking.on_events(events, _now_us())

    host, _, port = args.listen.rpartition(":")
    listen = Jt808Listen(host or "0.0.0.0", int(port), idle_timeout_s=args.idle_timeout_s)
    terminals_feed = Jt808Terminals(listen, _log_health, authority=authority)
    if args.metrics_port:
        start_http_server(args.metrics_port, "127.0.0.1", terminals_feed.server.registry)

    async def upkeep_forever() -> None:
        last_reload = time.monotonic()
        while True:
            await asyncio.sleep(args.silence_check_s)
            reload = time.monotonic() - last_reload >= args.reload_s
            ok = await upkeep(tracking, authority if reload else None, database_url, fences.site)
            if reload and ok:
                last_reload = time.monotonic()

    log.info("jt808 serving", extra={"site": fences.site, "terminals": len(terminals)})
    try:
        async with terminals_feed, asyncio.TaskGroup() as group:
            group.create_task(upkeep_forever(), name="jt808-upkeep")
            async for batch in terminals_feed.batches():
                await settle(batch, store)
    finally:
        await tracking.close()


def _log_health(health: Health) -> None:
    log.info("jt808 listener health", extra={"online": health.online, "reason": health.reason})


async def upkeep(
    tracking: Jt808Tracking,
    authority: ProvisionedTerminals | None,
    database_url: str,
    site: str,
) -> bool:
    """The periodic silence check, and a reload of the site's terminals when ``authority`` is
    given. False when the database failed: logged, tried again next time, the server stays up
    (issue 11: an uncaught OperationalError here once ended the process)."""
    try:
        await tracking.check_silence(_now_us())
        if authority is not None:
            # Newly provisioned terminals may register/authenticate now; their lots' rules
            # start with the next restart (the station's assets are fixed).
            authority.replace(await _load(database_url, site))
    except psycopg.Error as err:
        log.warning("jt808 silence check or reload failed", extra={"error": str(err)})
        return False
    return True


def _run_serve(args: argparse.Namespace) -> int:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))
    return 0


async def _provision(args: argparse.Namespace) -> int:
    async with await psycopg.AsyncConnection.connect(load_settings().database_url) as conn:
        try:
            terminal = await provision(
                conn,
                site=args.site,
                phone=args.phone,
                terminal_id=args.terminal_id,
                auth_code=args.auth_code,
                lot=args.lot,
                report_interval_s=args.interval_s,
                actor="cli",
            )
        except (ProvisioningError, NotFound, Conflict) as err:
            log.error("jt808 terminal not provisioned: %s", err)
            return 2
    print(f"provisioned {terminal.phone} at {terminal.site}; auth code {terminal.auth_code}")
    return 0


def _run_provision(args: argparse.Namespace) -> int:
    return asyncio.run(_provision(args))


def add_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("jt808", help="JT/T 808 terminals: provision, serve")
    commands = parser.add_subparsers(dest="jt808_command", required=True)

    serve = commands.add_parser("serve", help="accept the site's provisioned terminals")
    serve.add_argument("--listen", default="0.0.0.0:7808")
    serve.add_argument("--fences", required=True, help="GeoJSON FeatureCollection of the site")
    serve.add_argument("--name", default="cloud", help="stored as gateway jt808:<name>")
    serve.add_argument("--idle-timeout-s", type=float, default=180.0)
    serve.add_argument("--silence-check-s", type=float, default=10.0)
    serve.add_argument("--reload-s", type=float, default=60.0)
    serve.add_argument("--metrics-port", type=int, default=9108, help="0 disables /metrics")
    serve.set_defaults(func=_run_serve)

    prov = commands.add_parser("provision", help="provision a terminal for a site")
    prov.add_argument("--site", required=True)
    prov.add_argument("--phone", required=True, help="the terminal's SIM number (digits)")
    prov.add_argument("--terminal-id", help="the terminal ID its registration carries")
    prov.add_argument("--auth-code", help="a code configured in the terminal out of band")
    prov.add_argument("--lot", help="the pledged lot it tracks (at the same site)")
    prov.add_argument("--interval-s", type=float, default=600.0, help="expected report interval")
    prov.set_defaults(func=_run_provision)
