"""Receipts in the database: the SQL behind every receipt endpoint.

Each lifecycle step reads the receipt, asks the pure state machine (lifecycle.apply) what
follows, writes the new version (signed), and appends the step to the evidence ledger with a
fresh signed tree head, all in the caller's transaction. The rules the database can hold are
held there too: one active pledge per receipt (a partial unique index, so two concurrent pledges
cannot both commit), one live receipt per tag, and optimistic versioning on the receipt row.

Visibility: admin sees everything; a supervisor the receipts of their operator's sites; a
financier only receipts pledged to it; a gateway nothing. A receipt outside someone's view is
"not found", never "forbidden", so its existence does not leak.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from cloud.apikeys import Principal
from cloud.receipts import ledger
from cloud.receipts import lifecycle as lc
from cloud.receipts.document import (
    RECEIPT_KIND,
    RIGHTS_NOTICE,
    b64,
    document_bytes,
    document_sha256,
    sign_document,
    tag_set_sha256,
)
from cloud.receipts.issuance import IssueCheck, LotVerification, check_issue
from cloud.receipts.verification import BUNDLE_FORMAT
from cloud.registry import Conflict, NotFound
from cloud.scope import managed_site_condition, receipt_condition
from contract import public_key_b64
from contract.envelope import format_time

DEFAULT_TOLERANCE = 0.02
MANAGERS = ("admin", "supervisor")


@dataclass(frozen=True, slots=True)
class Clerk:
    """Who records a step, when, and the operator key that signs what is recorded."""

    principal: Principal
    key: Ed25519PrivateKey
    now: datetime


class Forbidden(PermissionError):
    """The principal's role may not take this step at all."""


class StepRefused(Conflict):
    """The lifecycle refused the step; the message is the reason."""


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


def _require(p: Principal, roles: tuple[str, ...], what: str) -> None:
    if p.role not in roles:
        raise Forbidden(f"role {p.role!r} may not {what} (needs {' or '.join(roles)})")


def _receipt_scope(p: Principal) -> tuple[str, list[Any]]:
    return receipt_condition(p, "r")


def _lot_scope(p: Principal) -> tuple[str, list[Any]]:
    return managed_site_condition(p, "s.id")


async def _rows(conn: AsyncConnection[Any], sql: str, params: Any = None) -> list[dict[str, Any]]:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(sql, params)
    return await cur.fetchall()


async def _row(conn: AsyncConnection[Any], sql: str, params: Any = None) -> dict[str, Any] | None:
    rows = await _rows(conn, sql, params)
    return rows[0] if rows else None


# --- lots -------------------------------------------------------------------------------------

LOT_DETAIL_FIELDS = (
    "depositor",
    "goods_kind",
    "pieces",
    "zone",
    "quality",
    "packaging",
    "quantity",
    "unit",
    "marks",
    "unit_value",
    "currency",
    "fence",
    "tag_pattern",
    "expected_labels",
    "temperature_c_min",
    "temperature_c_max",
    "humidity_pct_min",
    "humidity_pct_max",
    "authorised_vehicles",
)
_JSON_FIELDS = ("expected_labels", "authorised_vehicles")


async def _managed_lot(
    conn: AsyncConnection[Any], p: Principal, lot_id: str, *, lock: bool = False
) -> dict[str, Any]:
    cond, params = _lot_scope(p)
    row = await _row(
        conn,
        "SELECT l.*, s.name AS site_name, s.operator_id, o.name AS operator_name"
        " FROM lots l JOIN sites s ON s.id = l.site_id JOIN operators o ON o.id = s.operator_id"
        f" WHERE l.id = %s AND {cond}" + (" FOR UPDATE OF l" if lock else ""),
        [lot_id, *params],
    )
    if row is None:
        raise NotFound(f"no lot {lot_id!r}")
    return row


async def set_lot_details(
    conn: AsyncConnection[Any],
    clerk: Clerk,
    lot_id: str,
    details: dict[str, Any],
    epcs: list[str] | None,
) -> dict[str, Any]:
    """Record what the receipt will say about the goods (and, optionally, the tag list).

    The new description is logged: receipts are issued on it, and the authorised vehicles in it
    open the gate.
    """
    p = clerk.principal
    _require(p, MANAGERS, "describe lots")
    await _managed_lot(conn, p, lot_id)
    unknown = set(details) - set(LOT_DETAIL_FIELDS)
    if unknown:
        raise ValueError(f"unknown lot fields {sorted(unknown)}")
    if details:
        assignments = ", ".join(
            f"{name} = %({name})s::jsonb" if name in _JSON_FIELDS else f"{name} = %({name})s"
            for name in details
        )
        values = {k: (Jsonb(v) if k in _JSON_FIELDS else v) for k, v in details.items()}
        await conn.execute(
            f"UPDATE lots SET {assignments} WHERE id = %(lot_id)s", {**values, "lot_id": lot_id}
        )
    if epcs is not None:
        live = await _rows(
            conn,
            "SELECT DISTINCT r.number FROM receipts r JOIN receipt_tags t"
            " ON t.receipt_number = r.number WHERE r.lot_id = %s AND t.live",
            (lot_id,),
        )
        if live:
            raise Conflict(
                f"lot {lot_id} backs live receipt {live[0]['number']}; its tags cannot change"
            )
        try:
            async with conn.transaction():
                await conn.execute("DELETE FROM lot_tags WHERE lot_id = %s", (lot_id,))
                await conn.execute(
                    "INSERT INTO lot_tags (epc, lot_id) SELECT unnest(%s::text[]), %s",
                    ([e.upper() for e in epcs], lot_id),
                )
        except psycopg.errors.UniqueViolation as err:
            raise Conflict(f"a tag belongs to another lot: {err.diag.message_detail}") from None
    described = await lot_details(conn, p, lot_id)
    body = {
        k: (str(v) if isinstance(v, Decimal) else v)
        for k, v in described.items()
        if k not in ("epcs", "id")
    }
    body["tag_set_sha256"] = tag_set_sha256(described["epcs"])
    body["tag_count"] = len(described["epcs"])
    await ledger.append(
        conn, ledger.make_entry("lot.described", clerk.now, body, lot=lot_id, actor=p.key_id)
    )
    await ledger.publish_tree_head(conn, clerk.key, clerk.now)
    return described


async def lot_details(conn: AsyncConnection[Any], p: Principal, lot_id: str) -> dict[str, Any]:
    _require(p, MANAGERS, "read lot details")
    lot = await _managed_lot(conn, p, lot_id)
    tags = await _rows(conn, "SELECT epc FROM lot_tags WHERE lot_id = %s ORDER BY epc", (lot_id,))
    keep = ("id", "site_id", "name", *LOT_DETAIL_FIELDS)
    return {**{k: lot[k] for k in keep}, "epcs": [t["epc"] for t in tags]}


# --- verification -----------------------------------------------------------------------------


async def gather_verification(
    conn: AsyncConnection[Any], lot: dict[str, Any], now: datetime
) -> LotVerification:
    """What the tables say about the lot now: presence, where the tags were seen, alerts.

    A tag counts as inside the fence when the gateway that last saw it belongs to the lot's
    site (readers are installed inside the warehouse fence); seen by another site's gateway,
    it is outside.
    """
    tags = await _rows(
        conn,
        "SELECT t.epc, s.presence, g.site_id AS seen_at_site FROM lot_tags t"
        " LEFT JOIN tag_state s ON s.epc = t.epc LEFT JOIN gateways g ON g.id = s.gateway_id"
        " WHERE t.lot_id = %s",
        (lot["id"],),
    )
    alerts = await _rows(
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
    _require(clerk.principal, MANAGERS, "verify lots")
    lot = await _managed_lot(conn, clerk.principal, lot_id)
    return await _verify(conn, clerk, lot, tolerance)


async def _verify(
    conn: AsyncConnection[Any],
    clerk: Clerk,
    lot: dict[str, Any],
    tolerance: float,
) -> VerificationResult:
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


# --- receipts: reading ------------------------------------------------------------------------


def _state(row: dict[str, Any]) -> lc.ReceiptState:
    return lc.ReceiptState(
        number=row["number"],
        status=lc.ReceiptStatus(row["status"]),
        holder=row["holder"],
        pledgee=row["pledgee"],
        unit=row["unit"],
        holding=lc.Holding(Decimal(row["quantity"]), int(row["pieces"]), frozenset(row["tags"])),
    )


async def _visible_receipt(conn: AsyncConnection[Any], p: Principal, number: str) -> dict[str, Any]:
    cond, params = _receipt_scope(p)
    row = await _row(
        conn, f"SELECT r.* FROM receipts r WHERE r.number = %s AND {cond}", [number, *params]
    )
    if row is None:
        raise NotFound(f"no receipt {number!r}")
    return row


def receipt_view(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "number": row["number"],
        "lot_id": row["lot_id"],
        "parent_number": row["parent_number"],
        "status": row["status"],
        "holder": row["holder"],
        "pledgee": row["pledgee"],
        "quantity": str(row["quantity"]),
        "unit": row["unit"],
        "pieces": row["pieces"],
        "tag_count": len(row["tags"]),
        "version": row["version"],
        "document": json.loads(row["document"]),
        "document_sha256": document_sha256(json.loads(row["document"])),
        "signature": b64(bytes(row["signature"])),
        "issued_at": row["issued_at"],
        "updated_at": row["updated_at"],
        "allowed_steps": lc.allowed_steps(_state(row)),
    }


async def get_receipt(conn: AsyncConnection[Any], p: Principal, number: str) -> dict[str, Any]:
    """The receipt, with the latest physical verification of its lot (signed or not since)."""
    row = await _visible_receipt(conn, p, number)
    latest = await _row(
        conn,
        "SELECT verified_at, declared_pieces, counted, tolerance, outside_fence,"
        " open_theft_alerts, missing, ledger_idx AS ledger_index FROM lot_verifications"
        " WHERE lot_id = %s ORDER BY verified_at DESC, id DESC LIMIT 1",
        (row["lot_id"],),
    )
    return {**receipt_view(row), "latest_verification": latest}


async def list_receipts(
    conn: AsyncConnection[Any], p: Principal, *, status: str | None = None
) -> list[dict[str, Any]]:
    cond, params = _receipt_scope(p)
    if status is not None:
        cond, params = f"{cond} AND r.status = %s", [*params, status]
    rows = await _rows(conn, f"SELECT r.* FROM receipts r WHERE {cond} ORDER BY r.number", params)
    return [receipt_view(r) for r in rows]


# --- receipts: writing ------------------------------------------------------------------------


def _new_document(
    previous: dict[str, Any], state: lc.ReceiptState, version: int, now: datetime
) -> dict[str, Any]:
    doc = dict(previous)
    goods = dict(doc["goods"])
    goods.update(quantity=str(state.holding.quantity), pieces=state.holding.pieces)
    evidence = dict(doc["evidence"])
    evidence.update(
        tag_set_sha256=tag_set_sha256(state.holding.tags), tag_count=len(state.holding.tags)
    )
    doc.update(
        number=state.number,
        version=version,
        status=str(state.status),
        holder=state.holder,
        pledgee=state.pledgee,
        goods=goods,
        evidence=evidence,
        updated_at=format_time(now),
    )
    return doc


async def _log_step(
    conn: AsyncConnection[Any],
    clerk: Clerk,
    kind: str,
    *,
    document: dict[str, Any],
    lot_id: str,
    details: dict[str, Any],
) -> int:
    p, now = clerk.principal, clerk.now
    body = {
        "document_sha256": document_sha256(document),
        "version": document["version"],
        "status": document["status"],
        "details": details,
    }
    return await ledger.append(
        conn,
        ledger.make_entry(kind, now, body, receipt=document["number"], lot=lot_id, actor=p.key_id),
    )


async def issue_receipt(
    conn: AsyncConnection[Any],
    clerk: Clerk,
    lot_id: str,
    *,
    terms: dict[str, Any],
    tolerance: float = DEFAULT_TOLERANCE,
) -> tuple[VerificationResult, dict[str, Any] | None]:
    """Verify the lot and, when the goods are verified present, issue a receipt.

    Returns the verification and the receipt (None when the check failed; the failed
    verification is still logged as evidence).
    """
    p, key, now = clerk.principal, clerk.key, clerk.now
    _require(p, MANAGERS, "issue receipts")
    lot = await _managed_lot(conn, p, lot_id, lock=True)
    if lot["quantity"] is None or not lot["unit"]:
        raise Conflict(f"lot {lot_id} has no quantity and unit; set its details first")
    result = await _verify(conn, clerk, lot, tolerance)
    if not result.check.ok:
        return result, None
    number = terms.get("number") or f"WR-{now:%Y%m%d}-{secrets.token_hex(4).upper()}"
    tags = result.verification.expected_tags
    holder = terms.get("holder") or lot["depositor"]
    document = {
        "kind": RECEIPT_KIND,
        "number": number,
        "version": 1,
        "status": str(lc.ReceiptStatus.ISSUED),
        "parent": None,
        "lot": lot_id,
        "depositor": lot["depositor"],
        "keeper": {"operator": lot["operator_id"], "name": lot["operator_name"]},
        "holder": holder,
        "pledgee": None,
        "goods": {
            "kind": lot["goods_kind"],
            "quality": lot["quality"],
            "packaging": lot["packaging"],
            "quantity": str(lot["quantity"]),
            "unit": lot["unit"],
            "pieces": int(lot["pieces"]),
            "marks": lot["marks"],
            "unit_value": None if lot["unit_value"] is None else str(lot["unit_value"]),
            "currency": lot["currency"],
        },
        "storage": {
            "site": lot["site_id"],
            "site_name": lot["site_name"],
            "zone": lot["zone"],
            "fence": lot["fence"],
            "period": terms.get("storage_period") or {},
        },
        "insurance": terms.get("insurance") or {},
        "issued": {"place": terms.get("issue_place") or lot["site_name"], "at": format_time(now)},
        "rights_notice": RIGHTS_NOTICE,
        "evidence": {
            "tag_set_sha256": tag_set_sha256(tags),
            "tag_count": len(tags),
            "fence": lot["fence"],
            "issue_verification": {
                "ledger_index": result.ledger_index,
                "verified_at": format_time(now),
                "counted": result.check.counted,
                "declared_pieces": result.verification.declared_pieces,
                "tolerance": result.check.tolerance,
            },
        },
        "operator_public_key": public_key_b64(key),
        "updated_at": format_time(now),
    }
    try:
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO receipts (number, lot_id, status, holder, quantity, unit, pieces,"
                " tags, document, signature, issued_at, updated_at)"
                " VALUES (%s, %s, 'issued', %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    number,
                    lot_id,
                    holder,
                    lot["quantity"],
                    lot["unit"],
                    lot["pieces"],
                    sorted(tags),
                    document_bytes(document).decode(),
                    sign_document(key, document),
                    now,
                    now,
                ),
            )
            await conn.execute(
                "INSERT INTO receipt_tags (receipt_number, epc) SELECT %s, unnest(%s::text[])",
                (number, sorted(tags)),
            )
    except psycopg.errors.UniqueViolation as err:
        detail = err.diag.message_detail or ""
        if "epc" in detail:
            raise Conflict(f"these goods already back a live receipt: {detail}") from None
        raise Conflict(f"receipt {number} already exists") from None
    await _log_step(
        conn, clerk, "receipt.issued", document=document, lot_id=lot_id, details={"holder": holder}
    )
    await ledger.publish_tree_head(conn, key, now)
    return result, await get_receipt(conn, p, number)


async def _write_version(
    conn: AsyncConnection[Any],
    row: dict[str, Any],
    state: lc.ReceiptState,
    key: Ed25519PrivateKey,
    now: datetime,
) -> dict[str, Any]:
    document = _new_document(json.loads(row["document"]), state, row["version"] + 1, now)
    cur = await conn.execute(
        "UPDATE receipts SET status = %s, holder = %s, pledgee = %s, quantity = %s, pieces = %s,"
        " tags = %s, version = version + 1, document = %s, signature = %s, updated_at = %s"
        " WHERE number = %s AND version = %s",
        (
            str(state.status),
            state.holder,
            state.pledgee,
            state.holding.quantity,
            state.holding.pieces,
            sorted(state.holding.tags),
            document_bytes(document).decode(),
            sign_document(key, document),
            now,
            row["number"],
            row["version"],
        ),
    )
    if cur.rowcount != 1:
        raise Conflict(f"receipt {row['number']} changed meanwhile; reload it and retry")
    return document


def _apply(row: dict[str, Any], step: lc.Step) -> lc.Transition:
    try:
        return lc.apply(_state(row), step)
    except lc.TransitionRefused as err:
        raise StepRefused(err.reason) from None


async def pledge(
    conn: AsyncConnection[Any],
    clerk: Clerk,
    number: str,
    pledgee: str,
) -> dict[str, Any]:
    p, key, now = clerk.principal, clerk.key, clerk.now
    _require(p, MANAGERS, "pledge receipts")
    row = await _visible_receipt(conn, p, number)
    transition = _apply(row, lc.Pledge(pledgee))
    try:
        async with conn.transaction():
            # The partial unique index decides a race between two pledges, not this code.
            await conn.execute(
                "INSERT INTO receipt_pledges (receipt_number, pledgee, pledged_at)"
                " VALUES (%s, %s, %s)",
                (number, pledgee, now),
            )
    except psycopg.errors.UniqueViolation:
        raise StepRefused(
            f"cannot pledge receipt {number}: it is already pledged; "
            "a receipt cannot be pledged twice"
        ) from None
    except psycopg.errors.ForeignKeyViolation:
        raise NotFound(f"no financier {pledgee!r}") from None
    document = await _write_version(conn, row, transition.receipt, key, now)
    await conn.execute(
        "UPDATE lots SET financier_id = %s WHERE id = %s AND financier_id IS NULL",
        (pledgee, row["lot_id"]),
    )
    await _log_step(
        conn,
        clerk,
        "receipt.pledged",
        document=document,
        lot_id=row["lot_id"],
        details={"pledgee": pledgee},
    )
    await ledger.publish_tree_head(conn, key, now)
    return await get_receipt(conn, p, number)


async def request_release(
    conn: AsyncConnection[Any],
    p: Principal,
    number: str,
    *,
    quantity: Decimal,
    pieces: int,
    tags: list[str],
    vehicle: str | None,
    now: datetime,
) -> dict[str, Any]:
    """Ask to take goods out; nothing moves on paper until the pledgee approves."""
    _require(p, MANAGERS, "request releases")
    row = await _visible_receipt(conn, p, number)
    tag_set = frozenset(t.upper() for t in tags)
    # Check the request as the pledgee would approve it, so a bad request fails now.
    _apply(row, lc.Release(quantity, pieces, tag_set, row["pledgee"]))
    request = await _row(
        conn,
        "INSERT INTO release_requests (receipt_number, quantity, pieces, tags, vehicle,"
        " requested_by, requested_at) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING *",
        (number, quantity, pieces, sorted(tag_set), vehicle, p.key_id, now),
    )
    assert request is not None
    return _release_view(request)


def _release_view(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "quantity": str(row["quantity"])}


async def list_releases(
    conn: AsyncConnection[Any], p: Principal, number: str
) -> list[dict[str, Any]]:
    await _visible_receipt(conn, p, number)
    rows = await _rows(
        conn, "SELECT * FROM release_requests WHERE receipt_number = %s ORDER BY id", (number,)
    )
    return [_release_view(r) for r in rows]


async def decide_release(
    conn: AsyncConnection[Any],
    clerk: Clerk,
    number: str,
    *,
    request_id: int,
    approve: bool,
) -> dict[str, Any]:
    """The pledgee approves (the goods leave on paper) or rejects a release request."""
    p, key, now = clerk.principal, clerk.key, clerk.now
    _require(p, ("financier",), "approve releases")
    row = await _visible_receipt(conn, p, number)  # a financier sees only its own pledges
    request = await _row(
        conn,
        "SELECT * FROM release_requests WHERE id = %s AND receipt_number = %s FOR UPDATE",
        (request_id, number),
    )
    if request is None:
        raise NotFound(f"no release request {request_id} for receipt {number}")
    if request["state"] != "pending":
        raise StepRefused(f"release request {request_id} was already {request['state']}")
    if approve:
        step = lc.Release(
            Decimal(request["quantity"]),
            int(request["pieces"]),
            frozenset(request["tags"]),
            p.financier_id,
        )
        transition = _apply(row, step)
        document = await _write_version(conn, row, transition.receipt, key, now)
        await conn.execute(
            "UPDATE receipt_tags SET live = false WHERE receipt_number = %s AND epc = ANY(%s)",
            (number, list(request["tags"])),
        )
        if transition.receipt.status is lc.ReceiptStatus.RELEASED:
            await _end_pledge(conn, row, now)
        details = {
            "request": request_id,
            "quantity": str(request["quantity"]),
            "pieces": request["pieces"],
            "tags": sorted(request["tags"]),
            "vehicle": request["vehicle"],
            "approved_by": p.financier_id,
        }
        kind = (
            "receipt.released"
            if transition.receipt.status is lc.ReceiptStatus.RELEASED
            else "receipt.partly_released"
        )
        await _log_step(conn, clerk, kind, document=document, lot_id=row["lot_id"], details=details)
        await ledger.publish_tree_head(conn, key, now)
    await conn.execute(
        "UPDATE release_requests SET state = %s, decided_by = %s, decided_at = %s WHERE id = %s",
        ("approved" if approve else "rejected", p.key_id, now, request_id),
    )
    return await get_receipt(conn, p, number)


async def _end_pledge(conn: AsyncConnection[Any], row: dict[str, Any], now: datetime) -> None:
    await conn.execute(
        "UPDATE receipt_pledges SET ended_at = %s WHERE receipt_number = %s AND ended_at IS NULL",
        (now, row["number"]),
    )
    # The lot stays visible to the financier while any of its receipts is pledged to it.
    await conn.execute(
        "UPDATE lots SET financier_id = NULL WHERE id = %s AND NOT EXISTS ("
        " SELECT 1 FROM receipts r JOIN receipt_pledges rp ON rp.receipt_number = r.number"
        " WHERE r.lot_id = lots.id AND rp.ended_at IS NULL)",
        (row["lot_id"],),
    )


async def split(
    conn: AsyncConnection[Any],
    clerk: Clerk,
    number: str,
    parts: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    p, key, now = clerk.principal, clerk.key, clerk.now
    _require(p, MANAGERS, "split receipts")
    row = await _visible_receipt(conn, p, number)
    step = lc.Split(
        tuple(
            lc.SplitPart(
                part.get("number") or f"{number}-{i}",
                Decimal(part["quantity"]),
                int(part["pieces"]),
                frozenset(t.upper() for t in part["tags"]),
            )
            for i, part in enumerate(parts, 1)
        )
    )
    transition = _apply(row, step)
    parent_doc = await _write_version(conn, row, transition.receipt, key, now)
    await conn.execute("UPDATE receipt_tags SET live = false WHERE receipt_number = %s", (number,))
    base = json.loads(row["document"])
    children = [c.number for c in transition.new_receipts]
    await _log_step(
        conn,
        clerk,
        "receipt.split",
        document=parent_doc,
        lot_id=row["lot_id"],
        details={"into": children},
    )
    for child in transition.new_receipts:
        document = _new_document(base, child, 1, now)
        document.update(parent=number, issued={**base["issued"], "at": format_time(now)})
        try:
            async with conn.transaction():
                await conn.execute(
                    "INSERT INTO receipts (number, lot_id, parent_number, status, holder,"
                    " quantity, unit, pieces, tags, document, signature, issued_at, updated_at)"
                    " VALUES (%s, %s, %s, 'issued', %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    (
                        child.number,
                        row["lot_id"],
                        number,
                        child.holder,
                        child.holding.quantity,
                        child.unit,
                        child.holding.pieces,
                        sorted(child.holding.tags),
                        document_bytes(document).decode(),
                        sign_document(key, document),
                        now,
                        now,
                    ),
                )
                await conn.execute(
                    "INSERT INTO receipt_tags (receipt_number, epc) SELECT %s, unnest(%s::text[])",
                    (child.number, sorted(child.holding.tags)),
                )
        except psycopg.errors.UniqueViolation:
            raise Conflict(f"receipt {child.number} already exists") from None
        await _log_step(
            conn,
            clerk,
            "receipt.issued",
            document=document,
            lot_id=row["lot_id"],
            details={"split_from": number},
        )
    await ledger.publish_tree_head(conn, key, now)
    return [await get_receipt(conn, p, n) for n in children]


async def transfer(
    conn: AsyncConnection[Any],
    clerk: Clerk,
    number: str,
    *,
    new_holder: str,
    endorsed_by: str,
) -> dict[str, Any]:
    p, key, now = clerk.principal, clerk.key, clerk.now
    _require(p, MANAGERS, "record transfers")
    row = await _visible_receipt(conn, p, number)
    transition = _apply(row, lc.Transfer(new_holder, endorsed_by))
    document = await _write_version(conn, row, transition.receipt, key, now)
    details = {"from": row["holder"], "to": new_holder, "endorsed_by": endorsed_by}
    await _log_step(
        conn, clerk, "receipt.transferred", document=document, lot_id=row["lot_id"], details=details
    )
    await ledger.publish_tree_head(conn, key, now)
    return await get_receipt(conn, p, number)


async def cancel(
    conn: AsyncConnection[Any],
    clerk: Clerk,
    number: str,
    reason: str,
) -> dict[str, Any]:
    p, key, now = clerk.principal, clerk.key, clerk.now
    _require(p, MANAGERS, "cancel receipts")
    row = await _visible_receipt(conn, p, number)
    transition = _apply(row, lc.Cancel(reason))
    document = await _write_version(conn, row, transition.receipt, key, now)
    await conn.execute("UPDATE receipt_tags SET live = false WHERE receipt_number = %s", (number,))
    await _log_step(
        conn,
        clerk,
        "receipt.cancelled",
        document=document,
        lot_id=row["lot_id"],
        details={"reason": reason},
    )
    await ledger.publish_tree_head(conn, key, now)
    return await get_receipt(conn, p, number)


# --- evidence ---------------------------------------------------------------------------------


async def history(conn: AsyncConnection[Any], p: Principal, number: str) -> list[dict[str, Any]]:
    await _visible_receipt(conn, p, number)
    return [
        {"index": e.index, **json.loads(e.text)} for e in await ledger.entries(conn, receipt=number)
    ]


async def _proven(
    conn: AsyncConnection[Any], entries: list[ledger.LoggedEntry], tree_size: int
) -> list[dict[str, Any]]:
    return [
        {
            **e.as_json(),
            "inclusion_proof": [
                h.hex() for h in await ledger.inclusion_proof(conn, e.index, tree_size)
            ],
        }
        for e in entries
    ]


async def bundle(conn: AsyncConnection[Any], clerk: Clerk, number: str) -> dict[str, Any]:
    """Everything an offline verifier needs for this receipt, proven against one signed head."""
    p, key, now = clerk.principal, clerk.key, clerk.now
    row = await _visible_receipt(conn, p, number)
    head = await ledger.latest_tree_head(conn)
    if head is None or head.size < await ledger.size(conn):
        head = await ledger.publish_tree_head(conn, key, now)
    document = json.loads(row["document"])
    steps = [e for e in await ledger.entries(conn, receipt=number) if e.index < head.size]
    wanted = {document["evidence"]["issue_verification"]["ledger_index"]}
    latest = await _row(
        conn,
        "SELECT max(ledger_idx) AS idx FROM lot_verifications"
        " WHERE lot_id = %s AND ledger_idx < %s",
        (row["lot_id"], head.size),
    )
    if latest and latest["idx"] is not None:
        wanted.add(int(latest["idx"]))
    verifications = [await ledger.entry_at(conn, i) for i in sorted(wanted)]
    return {
        "format": BUNDLE_FORMAT,
        "operator_public_key": public_key_b64(key),
        "receipt": document,
        "signature": b64(bytes(row["signature"])),
        "tags": sorted(row["tags"]),
        "tree_head": head.as_json(),
        "history": await _proven(conn, steps, head.size),
        "verifications": await _proven(conn, verifications, head.size),
    }


async def later_head(
    conn: AsyncConnection[Any], first: int, key: Ed25519PrivateKey, now: datetime
) -> dict[str, Any]:
    """The newest signed head and the proof that it extends the tree of size ``first``."""
    head = await ledger.latest_tree_head(conn)
    if head is None or head.size < await ledger.size(conn):
        head = await ledger.publish_tree_head(conn, key, now)
    if first > head.size:
        raise NotFound(f"no tree of size {first}; the newest signed head has {head.size}")
    proof = await ledger.consistency_proof(conn, first, head.size)
    return {"tree_head": head.as_json(), "consistency_proof": [h.hex() for h in proof]}


async def public_status(
    conn: AsyncConnection[Any], number: str, digest: str | None
) -> dict[str, Any]:
    """What the QR code on a printed receipt answers, to anyone: is this the current version?"""
    row = await _row(
        conn,
        "SELECT number, status, version, document, signature FROM receipts WHERE number = %s",
        (number,),
    )
    if row is None:
        raise NotFound(f"no receipt {number!r}")
    current = document_sha256(json.loads(row["document"]))
    head = await ledger.latest_tree_head(conn)
    return {
        "number": row["number"],
        "status": row["status"],
        "version": row["version"],
        "current_document_sha256": current,
        # The printed receipt states both; the page its QR opens shows them to compare.
        "current_signature": b64(bytes(row["signature"])),
        "presented_document_sha256": digest,
        "presented_is_current": digest == current if digest else None,
        "tree_head": head.as_json() if head else None,
    }


# --- the gate ---------------------------------------------------------------------------------

RELEASE_PICKUP = timedelta(hours=24)


async def authorised_vehicles(
    conn: AsyncConnection[Any], p: Principal, site_id: str, now: datetime
) -> dict[str, Any]:
    """The site's authorised vehicles, in the edge's ``cmd/authorised_vehicles`` body shape.

    A vehicle is authorised when a lot at the site lists it, or when the pledgee approved a
    release naming it in the last 24 hours. ``version`` is the ledger size: both inputs are
    logged, so the list changes only when the ledger grows, and versions only increase.
    """
    if p.role == "gateway":
        allowed = await _row(
            conn,
            "SELECT 1 AS ok FROM gateways WHERE id = %s AND site_id = %s",
            (p.gateway_id, site_id),
        )
    else:
        _require(p, MANAGERS, "read the gate list")
        cond, params = _lot_scope(p)
        allowed = await _row(
            conn, f"SELECT 1 AS ok FROM sites s WHERE s.id = %s AND {cond}", [site_id, *params]
        )
    if allowed is None:
        raise NotFound(f"no site {site_id!r}")
    site = await _row(conn, "SELECT timezone FROM sites WHERE id = %s", (site_id,))
    assert site is not None
    notes: dict[str, list[str]] = {}
    for lot in await _rows(
        conn, "SELECT id, authorised_vehicles FROM lots WHERE site_id = %s ORDER BY id", (site_id,)
    ):
        for plate in lot["authorised_vehicles"] or []:
            notes.setdefault(str(plate), []).append(f"lot {lot['id']}")
    for release in await _rows(
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
        "version": await ledger.size(conn),
        "timezone": site["timezone"],
        "vehicles": [{"plate": plate, "note": "; ".join(n)} for plate, n in sorted(notes.items())],
    }
