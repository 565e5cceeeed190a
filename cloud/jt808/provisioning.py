"""Provisioning JT/T 808 terminals: an administrator says which terminal (SIM number, terminal
ID or an authentication code given out of band) belongs to which site and, optionally, which
pledged lot it tracks. Used by ``python -m cloud jt808 provision`` and ``/api/v1/trackers``.

The JT/T 808 server of a site loads only that site's rows (``load_terminals``); a terminal
that is not here cannot register or authenticate.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from cloud.jt808.session import ProvisionedTerminal
from cloud.registry import Conflict, NotFound

PHONE = re.compile(r"[0-9]{1,20}")  # BCD[10] of the 2019 header: up to 20 digits
TEXT = re.compile(r"[\x21-\x7e]{1,30}")  # terminal ID (30 bytes in 2019), printable ASCII
CODE = re.compile(r"[\x21-\x7e]{8,64}")  # an authentication code, printable ASCII


class ProvisioningError(ValueError):
    """The administrator's input is not a valid provisioning (said why)."""


def normalise_phone(phone: str) -> str:
    """The number as the codec reads it from a header (BCD padding removed, >= 11 digits)."""
    if not PHONE.fullmatch(phone):
        raise ProvisioningError(f"phone {phone!r} is not 1 to 20 digits")
    return phone.lstrip("0").rjust(11, "0")


async def provision(
    conn: AsyncConnection,
    *,
    site: str,
    phone: str,
    terminal_id: str | None,
    auth_code: str | None,
    lot: str | None,
    report_interval_s: float,
    actor: str,
) -> ProvisionedTerminal:
    """Provision a terminal; raises ProvisioningError, NotFound (site, lot) or Conflict (the
    number or the terminal ID is already provisioned: a binding is never overwritten)."""
    phone = normalise_phone(phone)
    if terminal_id is not None and not TEXT.fullmatch(terminal_id):
        raise ProvisioningError("terminal ID must be 1 to 30 printable ASCII characters")
    if auth_code is not None and not CODE.fullmatch(auth_code):
        raise ProvisioningError("authentication code must be 8 to 64 printable characters")
    if terminal_id is None and auth_code is None:
        raise ProvisioningError("give the terminal ID its registration carries, or an auth code")
    if not 1 <= report_interval_s <= 86_400:
        raise ProvisioningError("report interval must be 1 s to 1 day")
    code = auth_code or secrets.token_urlsafe(12)
    async with conn.transaction():
        cur = await conn.execute("SELECT 1 FROM sites WHERE id = %s", (site,))
        if await cur.fetchone() is None:
            raise NotFound(f"no site {site!r}")
        if lot is not None:
            cur = await conn.execute(
                "SELECT 1 FROM lots WHERE id = %s AND site_id = %s", (lot, site)
            )
            if await cur.fetchone() is None:
                raise NotFound(f"no lot {lot!r} at site {site!r}")
        cur = await conn.execute(
            "SELECT phone FROM jt808_terminals WHERE phone = %s OR terminal_id = %s FOR UPDATE",
            (phone, terminal_id),
        )
        if await cur.fetchone() is not None:
            raise Conflict(f"terminal {phone} or its terminal ID is already provisioned")
        await conn.execute(
            """
            INSERT INTO jt808_terminals (phone, tracker, site_id, terminal_id, auth_code, lot_id,
                                         report_interval_s, provisioned_at, provisioned_by)
            VALUES (%s, %s, %s, %s, %s, %s, %s, now(), %s)
            """,
            (phone, tracker_of(phone), site, terminal_id, code, lot, report_interval_s, actor),
        )
    return ProvisionedTerminal(phone, site, code, terminal_id, lot, report_interval_s)


def tracker_of(phone: str) -> str:
    return f"jt808-{phone}"


async def load_terminals(conn: AsyncConnection, site: str) -> list[ProvisionedTerminal]:
    cur = await conn.execute(
        "SELECT phone, site_id, auth_code, terminal_id, lot_id, report_interval_s "
        "FROM jt808_terminals WHERE site_id = %s AND auth_code IS NOT NULL ORDER BY phone",
        (site,),
    )
    return [ProvisionedTerminal(*row) for row in await cur.fetchall()]


async def list_terminals(conn: AsyncConnection, site: str | None) -> list[dict[str, Any]]:
    """Public view (no authentication codes)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT phone, tracker, site_id, terminal_id, lot_id, report_interval_s, plate, "
            "manufacturer, model, provisioned_at, registered_at, last_seen_at "
            "FROM jt808_terminals WHERE site_id IS NOT NULL AND (%s::text IS NULL OR site_id = %s)"
            " ORDER BY phone",
            (site, site),
        )
        return await cur.fetchall()
