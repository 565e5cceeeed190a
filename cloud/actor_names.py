"""People by the name their API key was issued to (its label), not by the key's id.

Alert history stores the key id (what the audit trail can trust); a supervisor reads names.
Gateways (``gateway:gw-01``) and the cloud's own passes keep their actor string.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import tuple_row


async def name_actors(conn: AsyncConnection, alert: dict[str, Any]) -> dict[str, Any]:
    """Add ``actor_name`` to each history entry and ``*_by_name`` beside the alert's own."""
    history = alert.get("history", [])
    actors: set[str] = {h["actor"] for h in history} | {
        actor for actor in (alert.get("acknowledged_by"), alert.get("resolved_by"))
        if actor is not None}
    async with conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute("SELECT id, label FROM api_keys WHERE id = ANY(%s) AND label <> ''",
                          (sorted(actors),))
        names: dict[str, str] = dict(await cur.fetchall())
    for entry in history:
        entry["actor_name"] = names.get(entry["actor"], entry["actor"])
    for column in ("acknowledged_by", "resolved_by"):
        if alert.get(column) is not None:
            alert[f"{column}_name"] = names.get(alert[column], alert[column])
    return alert
