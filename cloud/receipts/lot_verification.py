"""Physical verification of a lot: gather what the tables say now, judge it, log the result.

The judgement itself is pure (``issuance.check_issue``); this module reads its inputs and
records its outcome, passing or not, in the evidence ledger and ``lot_verifications``. (The
offline check of a receipt's evidence bundle is ``verification.py``, a different thing.)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from cloud.receipts import ledger
from cloud.receipts.access import MANAGERS, Clerk, require
from cloud.receipts.document import tag_set_sha256
from cloud.receipts.issuance import IssueCheck, LotVerification, check_issue
from cloud.receipts.lots import managed_lot
from cloud.receipts.rows import fetch_all
from contract.envelope import format_time

DEFAULT_TOLERANCE = 0.02


@dataclass(frozen=True, slots=True)
class VerificationResult:
    lot_id: str
    check: IssueCheck
    verification: LotVerification
    ledger_index: int
    verified_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "lot_id": self.lot_id,
            "verified_at": format_time(self.verified_at),
            "ok": self.check.ok,
            "declared_pieces": self.verification.declared_pieces,
            "counted": self.check.counted,
            "tolerance": self.check.tolerance,
            "outside_fence": len(self.verification.outside_fence_tags),
            "fence": self.verification.fence,
            "open_theft_alerts": list(self.verification.open_theft_alerts),
            "missing": list(self.check.missing),
            "ledger_index": self.ledger_index,
        }


async def gather_verification(
    conn: AsyncConnection[Any], lot: dict[str, Any], now: datetime
) -> LotVerification:
    """What the tables say about the lot now: presence, where the tags were seen, alerts.

    A tag counts as inside the fence when the gateway that last saw it belongs to the lot's
    site (readers are installed inside the warehouse fence); seen by another site's gateway,
    it is outside.
    """
    tags = await fetch_all(
        conn,
        "SELECT t.epc, s.presence, g.site_id AS seen_at_site FROM lot_tags t"
        " LEFT JOIN tag_state s ON s.epc = t.epc LEFT JOIN gateways g ON g.id = s.gateway_id"
        " WHERE t.lot_id = %s",
        (lot["id"],),
    )
    alerts = await fetch_all(
        conn,
        "SELECT alert_type, subject FROM alerts WHERE state <> 'resolved'"
        " AND alert_type LIKE 'theft.%%' AND (lot_id = %s OR subject = %s) ORDER BY id",
        (lot["id"], f"lot:{lot['id']}"),
    )
    return LotVerification(
        lot_id=lot["id"],
        declared_pieces=int(lot["pieces"]),
        expected_tags=frozenset(t["epc"] for t in tags),
        present_tags=frozenset(t["epc"] for t in tags if t["presence"] == "present"),
        outside_fence_tags=frozenset(
            t["epc"]
            for t in tags
            if t["seen_at_site"] is not None and t["seen_at_site"] != lot["site_id"]
        ),
        fence=lot["fence"],
        open_theft_alerts=tuple(f"{a['alert_type']} on {a['subject']}" for a in alerts),
        verified_at_us=int(now.timestamp() * 1_000_000),
    )


async def verify_lot(
    conn: AsyncConnection[Any],
    clerk: Clerk,
    lot_id: str,
    tolerance: float = DEFAULT_TOLERANCE,
) -> VerificationResult:
    """Verify the goods now and log the result (passing or not) in the evidence ledger."""
    require(clerk.principal, MANAGERS, "verify lots")
    lot = await managed_lot(conn, clerk.principal, lot_id)
    return await record_verification(conn, clerk, lot, tolerance)


async def record_verification(
    conn: AsyncConnection[Any],
    clerk: Clerk,
    lot: dict[str, Any],
    tolerance: float,
) -> VerificationResult:
    """Verify ``lot`` (a ``managed_lot`` row) and log the result with a fresh signed head."""
    p, key, now = clerk.principal, clerk.key, clerk.now
    v = await gather_verification(conn, lot, now)
    check = check_issue(v, tolerance)
    body = {
        "declared_pieces": v.declared_pieces,
        "counted": check.counted,
        "tolerance": check.tolerance,
        "tag_set_sha256": tag_set_sha256(v.expected_tags),
        "present_set_sha256": tag_set_sha256(v.present_tags & v.expected_tags),
        "outside_fence": sorted(v.outside_fence_tags),
        "fence": v.fence,
        "open_theft_alerts": list(v.open_theft_alerts),
        "missing": list(check.missing),
    }
    index = await ledger.append(
        conn, ledger.make_entry("lot.verified", now, body, lot=lot["id"], actor=p.key_id)
    )
    await conn.execute(
        "INSERT INTO lot_verifications (lot_id, verified_at, declared_pieces, counted, tolerance,"
        " outside_fence, open_theft_alerts, missing, tag_set_sha256, ledger_idx)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            lot["id"],
            now,
            v.declared_pieces,
            check.counted,
            check.tolerance,
            len(v.outside_fence_tags),
            Jsonb(list(v.open_theft_alerts)),
            Jsonb(list(check.missing)),
            body["tag_set_sha256"],
            index,
        ),
    )
    await ledger.publish_tree_head(conn, key, now)
    return VerificationResult(lot["id"], check, v, index, now)
