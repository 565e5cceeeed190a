"""`python -m cloud integrity`: the periodic pass (lots, duplicate identities, shipments).

Each pass runs in one transaction per step under an advisory lock, so two workers started by
mistake do not raise the same alert twice in a race; the second simply waits its turn.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from datetime import UTC, datetime

from psycopg import AsyncConnection

from cloud.integrity import identity, lots, shipments
from cloud.settings import load_settings

log = logging.getLogger(__name__)
_LOCK_KEY = 0x5057_494E  # "PWIN"


async def run_pass(conn: AsyncConnection, now: datetime) -> tuple[int, int, int]:
    """One pass at ``now``: (standing lot findings, duplicate identities, verdicts changed)."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        findings = await lots.reconcile_all(conn, now)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        duplicates = len(await identity.check(conn, now))
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        changed = await shipments.judge_open(conn, now)
    return findings, duplicates, changed


async def run_forever(database_url: str, every_s: float) -> None:
    async with await AsyncConnection.connect(database_url, autocommit=True) as conn:
        while True:
            findings, duplicates, changed = await run_pass(conn, datetime.now(UTC))
            log.info("integrity pass: %d lot findings stand, %d duplicate identities,"
                     " %d verdicts changed", findings, duplicates, changed)
            await asyncio.sleep(every_s)


def _run(args: argparse.Namespace) -> int:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_forever(load_settings().database_url, args.every_s))
    return 0


def add_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "integrity", help="reconcile lots' sources and judge shipments periodically")
    parser.add_argument("--every-s", type=float, default=60.0, help="seconds between passes")
    parser.set_defaults(func=_run)
