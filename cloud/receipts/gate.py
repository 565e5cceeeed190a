"""The gate list: which vehicles may leave a site with goods, in the edge's command shape."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection

from cloud.apikeys import Principal
from cloud.receipts.access import MANAGERS, managed_site_scope, require
from cloud.receipts.rows import fetch_all, fetch_one
from cloud.registry import NotFound

RELEASE_PICKUP = timedelta(hours=24)


async def authorised_vehicles(
    conn: AsyncConnection[Any], p: Principal, site_id: str, now: datetime
) -> dict[str, Any]:
    """The site's authorised vehicles, in the edge's ``cmd/authorised_vehicles`` body shape.

    A vehicle is authorised when a lot at the site lists it, or when the pledgee approved a
    release naming it in the last 24 hours.
    """
    if p.role == "gateway":
        allowed = await fetch_one(
            conn,
            "SELECT 1 AS ok FROM gateways WHERE id = %s AND site_id = %s",
            (p.gateway_id, site_id),
        )
    else:
        require(p, MANAGERS, "read the gate list")
        cond, params = managed_site_scope(p)
        allowed = await fetch_one(
            conn, f"SELECT 1 AS ok FROM sites s WHERE s.id = %s AND {cond}", [site_id, *params]
        )
    if allowed is None:
        raise NotFound(f"no site {site_id!r}")
    return await gate_list(conn, site_id, now)


async def gate_list(conn: AsyncConnection[Any], site_id: str, now: datetime) -> dict[str, Any]:
    """The gate list of a site, unchecked: the caller decided that it may be read.

    ``version`` is the time it was computed (ms): a release expires without any write, and the
    gateway keeps out a list whose version is not newer than the one it has.
    """
    site = await fetch_one(conn, "SELECT timezone FROM sites WHERE id = %s", (site_id,))
    assert site is not None
    notes: dict[str, list[str]] = {}
    for lot in await fetch_all(
        conn, "SELECT id, authorised_vehicles FROM lots WHERE site_id = %s ORDER BY id", (site_id,)
    ):
        for plate in lot["authorised_vehicles"] or []:
            notes.setdefault(str(plate), []).append(f"lot {lot['id']}")
    for release in await fetch_all(
        conn,
        "SELECT q.id, q.vehicle, q.receipt_number FROM release_requests q"
        " JOIN receipts r ON r.number = q.receipt_number JOIN lots l ON l.id = r.lot_id"
        " WHERE l.site_id = %s AND q.state = 'approved' AND q.vehicle IS NOT NULL"
        " AND q.decided_at > %s ORDER BY q.id",
        (site_id, now - RELEASE_PICKUP),
    ):
        notes.setdefault(release["vehicle"], []).append(
            f"release {release['id']} of receipt {release['receipt_number']}"
        )
    return {
        "version": int(now.timestamp() * 1000),
        "timezone": site["timezone"],
        "vehicles": [{"plate": plate, "note": "; ".join(n)} for plate, n in sorted(notes.items())],
    }


async def released_lots(conn: AsyncConnection[Any], site_id: str, now: datetime) -> list[str]:
    """The site's lots with a release approved in the pickup window (``cmd/lot_releases``)."""
    rows = await fetch_all(
        conn,
        "SELECT DISTINCT r.lot_id FROM release_requests q JOIN receipts r"
        " ON r.number = q.receipt_number JOIN lots l ON l.id = r.lot_id"
        " WHERE l.site_id = %s AND q.state = 'approved' AND q.decided_at > %s ORDER BY 1",
        (site_id, now - RELEASE_PICKUP),
    )
    return [row["lot_id"] for row in rows]


async def release_windows(
    conn: AsyncConnection[Any], site_id: str, now: datetime
) -> list[dict[str, Any]]:
    """The site's approved releases still in their pickup window, in the edge's
    ``cmd/lot_releases`` ``releases`` shape: how many pieces of which lot may leave, on which
    vehicle, from approval until the pickup window ends."""
    rows = await fetch_all(
        conn,
        "SELECT q.id, r.lot_id, q.pieces, q.vehicle, q.decided_at FROM release_requests q"
        " JOIN receipts r ON r.number = q.receipt_number JOIN lots l ON l.id = r.lot_id"
        " WHERE l.site_id = %s AND q.state = 'approved' AND q.decided_at > %s ORDER BY q.id",
        (site_id, now - RELEASE_PICKUP),
    )
    return [{"lot": row["lot_id"], "pieces": int(row["pieces"]),
             "vehicles": [row["vehicle"]] if row["vehicle"] else [],
             "window_start": row["decided_at"].isoformat(),
             "window_end": (row["decided_at"] + RELEASE_PICKUP).isoformat()}
            for row in rows]
