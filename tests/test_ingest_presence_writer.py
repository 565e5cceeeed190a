"""Presence changes are stored in one statement (cloud.ingest.writers): each tag keeps its
latest change, an older change never overwrites a newer one, and every change is kept as a row
and as the message itself."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from psycopg import AsyncConnection

from cloud.ingest.decode import Accepted
from cloud.ingest.writers import write_presence_changes
from contract import MessageType, events_topic, open_envelope, seal, validate_body
from tests.receipts_fixtures import world

__all__ = ["world"]  # fixture used by name

pytestmark = pytest.mark.integration

KEY = Ed25519PrivateKey.generate()
T0 = datetime(2026, 11, 28, 4, 0, tzinfo=UTC)


def change(seq: int, gateway: str, epc: str, state: str, at_s: int) -> Accepted:
    body = {"lot": "LOT-1", "epc": epc, "state": state,
            "previous": "present" if state == "missing" else "missing", "last_seen_us": None}
    raw = seal(KEY, site="site-1", gateway=gateway, seq=seq, type=str(MessageType.PRESENCE_CHANGE),
               body=body, observed_at=T0 + timedelta(seconds=at_s))
    envelope = open_envelope(raw)
    return Accepted(envelope, validate_body(envelope.type, envelope.body),
                    events_topic("site-1", gateway), raw)


async def rows(conn: AsyncConnection, sql: str) -> list[tuple[Any, ...]]:
    cur = await conn.execute(sql)
    return await cur.fetchall()


async def test_each_tag_keeps_its_latest_change_and_every_change_is_kept(
    world: dict[str, str], database_url: str
) -> None:
    async with await AsyncConnection.connect(database_url) as conn:
        # A newer state already stored: the older change in the batch must not undo it.
        await conn.execute("INSERT INTO tag_state (epc, gateway_id, presence, "
                           "presence_changed_at) VALUES ('E0AA', 'gw-1', 'present', %s)",
                           (T0 + timedelta(seconds=10),))
        batch = [
            change(1, "gw-1", "E0AA", "missing", 5),
            change(2, "gw-2", "E0BB", "missing", 2),  # arrived first, happened last
            change(3, "gw-1", "E0BB", "present", 1),
        ]
        written = await write_presence_changes(conn, batch)
        await conn.commit()
        state = await rows(conn, "SELECT epc, gateway_id, presence, presence_changed_at "
                                 "FROM tag_state ORDER BY epc")
        changes = await rows(conn, "SELECT seq, epc, state FROM presence_changes ORDER BY seq")
        kept = await rows(conn, "SELECT seq, type, body FROM raw_events ORDER BY seq")
    assert written == 6
    assert state == [
        ("E0AA", "gw-1", "present", T0 + timedelta(seconds=10)),
        # new to tag_state: the gateway of its first change, the state of its last
        ("E0BB", "gw-1", "missing", T0 + timedelta(seconds=2)),
    ]
    assert changes == [(1, "E0AA", "missing"), (2, "E0BB", "missing"),
                       (3, "E0BB", "present")]
    assert [(s, t) for s, t, _ in kept] == [(1, "presence_change"), (2, "presence_change"),
                                            (3, "presence_change")]
    assert kept[1][2] == batch[1].envelope.body
