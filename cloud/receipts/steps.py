"""The receipt lifecycle in the database: issue, then every later step on one template.

Every step after issue follows :func:`take_step`: check the role, load the receipt the principal
sees, ask the pure state machine (``lifecycle.apply``) what follows, write the new version
(signed), append the step to the evidence ledger and publish a fresh signed tree head, all in the
caller's transaction. A step (:class:`ReceiptStep`) supplies only what differs: its lifecycle
event, its ledger entry, and the other tables it touches.

The rules the database can hold are held there: one active pledge per receipt (a partial unique
index, so two concurrent pledges cannot both commit), one live receipt per tag, and optimistic
versioning on the receipt row.
"""

from __future__ import annotations

import json
import secrets
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from psycopg import AsyncConnection

from cloud.apikeys import Principal
from cloud.receipts import ledger
from cloud.receipts import lifecycle as lc
from cloud.receipts.access import MANAGERS, Clerk, require
from cloud.receipts.document import (
    RECEIPT_KIND,
    RIGHTS_NOTICE,
    document_bytes,
    document_sha256,
    sign_document,
    tag_set_sha256,
)
from cloud.receipts.lot_verification import (
    DEFAULT_TOLERANCE,
    VerificationResult,
    record_verification,
)
from cloud.receipts.lots import managed_lot
from cloud.receipts.records import get_receipt, receipt_state, visible_receipt
from cloud.receipts.rows import fetch_all, fetch_one
from cloud.registry import Conflict, NotFound
from contract import public_key_b64
from contract.envelope import format_time


class StepRefused(Conflict):
    """The lifecycle refused the step; the message is the reason."""


# --- what every step shares -------------------------------------------------------------------


def decide(row: dict[str, Any], event: lc.Step) -> lc.Transition:
    """What the state machine says follows ``event`` on the stored receipt ``row``."""
    try:
        return lc.apply(receipt_state(row), event)
    except lc.TransitionRefused as err:
        raise StepRefused(err.reason) from None


def next_document(
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


async def _write_version(
    conn: AsyncConnection[Any],
    row: dict[str, Any],
    state: lc.ReceiptState,
    key: Ed25519PrivateKey,
    now: datetime,
) -> dict[str, Any]:
    document = next_document(json.loads(row["document"]), state, row["version"] + 1, now)
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


async def log_step(
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


class ReceiptStep(ABC):
    """What one lifecycle step on a stored receipt supplies to :func:`record_step`."""

    roles: ClassVar[tuple[str, ...]] = MANAGERS
    action: ClassVar[str]  # what a role outside ``roles`` is told it may not do

    @abstractmethod
    def event(self, row: dict[str, Any]) -> lc.Step:
        """The lifecycle event this step asks of the receipt ``row``."""

    @abstractmethod
    def kind(self, after: lc.Transition) -> str:
        """The ledger entry's kind (``receipt.pledged``...)."""

    @abstractmethod
    def details(self, row: dict[str, Any], after: lc.Transition) -> dict[str, Any]:
        """What the ledger entry records besides the new document."""

    async def claim(self, conn: AsyncConnection[Any], clerk: Clerk, row: dict[str, Any]) -> None:
        """Before the new version is written: what the database itself must arbitrate."""
        return None  # most steps need nothing here

    async def effects(
        self, conn: AsyncConnection[Any], clerk: Clerk, row: dict[str, Any], after: lc.Transition
    ) -> None:
        """After the new version is written: the other tables the step changes."""
        return None  # most steps need nothing here

    async def follow_up(
        self, conn: AsyncConnection[Any], clerk: Clerk, row: dict[str, Any], after: lc.Transition
    ) -> None:
        """After the step's own ledger entry, before the tree head: further entries."""
        return None  # most steps need nothing here


async def take_step(
    conn: AsyncConnection[Any], clerk: Clerk, number: str, step: ReceiptStep
) -> lc.Transition:
    """Check the role, load the receipt ``clerk`` sees, and record ``step`` on it."""
    require(clerk.principal, step.roles, step.action)
    row = await visible_receipt(conn, clerk.principal, number)
    return await record_step(conn, clerk, row, step)


async def record_step(
    conn: AsyncConnection[Any], clerk: Clerk, row: dict[str, Any], step: ReceiptStep
) -> lc.Transition:
    """Apply ``step`` to the loaded receipt ``row``; write, log and publish what follows."""
    transition = decide(row, step.event(row))
    await step.claim(conn, clerk, row)
    document = await _write_version(conn, row, transition.receipt, clerk.key, clerk.now)
    await step.effects(conn, clerk, row, transition)
    await log_step(
        conn,
        clerk,
        step.kind(transition),
        document=document,
        lot_id=row["lot_id"],
        details=step.details(row, transition),
    )
    await step.follow_up(conn, clerk, row, transition)
    await ledger.publish_tree_head(conn, clerk.key, clerk.now)
    return transition


# --- issue: the step that creates a receipt ------------------------------------------------------


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
    require(p, MANAGERS, "issue receipts")
    lot = await managed_lot(conn, p, lot_id, lock=True)
    if lot["quantity"] is None or not lot["unit"]:
        raise Conflict(f"lot {lot_id} has no quantity and unit; set its details first")
    result = await record_verification(conn, clerk, lot, tolerance)
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
    await log_step(
        conn, clerk, "receipt.issued", document=document, lot_id=lot_id, details={"holder": holder}
    )
    await ledger.publish_tree_head(conn, key, now)
    return result, await get_receipt(conn, p, number)


# --- the steps after issue ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pledging(ReceiptStep):
    pledgee: str
    action: ClassVar[str] = "pledge receipts"

    def event(self, row: dict[str, Any]) -> lc.Step:
        return lc.Pledge(self.pledgee)

    def kind(self, after: lc.Transition) -> str:
        return "receipt.pledged"

    def details(self, row: dict[str, Any], after: lc.Transition) -> dict[str, Any]:
        return {"pledgee": self.pledgee}

    async def claim(self, conn: AsyncConnection[Any], clerk: Clerk, row: dict[str, Any]) -> None:
        number = row["number"]
        try:
            async with conn.transaction():
                # The partial unique index decides a race between two pledges, not this code.
                await conn.execute(
                    "INSERT INTO receipt_pledges (receipt_number, pledgee, pledged_at)"
                    " VALUES (%s, %s, %s)",
                    (number, self.pledgee, clerk.now),
                )
        except psycopg.errors.UniqueViolation:
            raise StepRefused(
                f"cannot pledge receipt {number}: it is already pledged; "
                "a receipt cannot be pledged twice"
            ) from None
        except psycopg.errors.ForeignKeyViolation:
            raise NotFound(f"no financier {self.pledgee!r}") from None

    async def effects(
        self, conn: AsyncConnection[Any], clerk: Clerk, row: dict[str, Any], after: lc.Transition
    ) -> None:
        await conn.execute(
            "UPDATE lots SET financier_id = %s WHERE id = %s AND financier_id IS NULL",
            (self.pledgee, row["lot_id"]),
        )


async def pledge(
    conn: AsyncConnection[Any],
    clerk: Clerk,
    number: str,
    pledgee: str,
) -> dict[str, Any]:
    await take_step(conn, clerk, number, Pledging(pledgee))
    return await get_receipt(conn, clerk.principal, number)


@dataclass(frozen=True, slots=True)
class ApprovedRelease(ReceiptStep):
    """The pledgee's approval of a pending release request: the goods leave on paper."""

    request: dict[str, Any]
    approved_by: str | None
    roles: ClassVar[tuple[str, ...]] = ("financier",)
    action: ClassVar[str] = "approve releases"

    def event(self, row: dict[str, Any]) -> lc.Step:
        r = self.request
        return lc.Release(
            Decimal(r["quantity"]), int(r["pieces"]), frozenset(r["tags"]), self.approved_by
        )

    def kind(self, after: lc.Transition) -> str:
        if after.receipt.status is lc.ReceiptStatus.RELEASED:
            return "receipt.released"
        return "receipt.partly_released"

    def details(self, row: dict[str, Any], after: lc.Transition) -> dict[str, Any]:
        r = self.request
        return {
            "request": r["id"],
            "quantity": str(r["quantity"]),
            "pieces": r["pieces"],
            "tags": sorted(r["tags"]),
            "vehicle": r["vehicle"],
            "approved_by": self.approved_by,
        }

    async def effects(
        self, conn: AsyncConnection[Any], clerk: Clerk, row: dict[str, Any], after: lc.Transition
    ) -> None:
        await conn.execute(
            "UPDATE receipt_tags SET live = false WHERE receipt_number = %s AND epc = ANY(%s)",
            (row["number"], list(self.request["tags"])),
        )
        if after.receipt.status is lc.ReceiptStatus.RELEASED:
            await _end_pledge(conn, row, clerk.now)


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
    require(p, MANAGERS, "request releases")
    row = await visible_receipt(conn, p, number)
    tag_set = frozenset(t.upper() for t in tags)
    # Check the request as the pledgee would approve it, so a bad request fails now.
    decide(row, lc.Release(quantity, pieces, tag_set, row["pledgee"]))
    request = await fetch_one(
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
    await visible_receipt(conn, p, number)
    rows = await fetch_all(
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
    p, now = clerk.principal, clerk.now
    require(p, ApprovedRelease.roles, ApprovedRelease.action)
    row = await visible_receipt(conn, p, number)  # a financier sees only its own pledges
    request = await fetch_one(
        conn,
        "SELECT * FROM release_requests WHERE id = %s AND receipt_number = %s FOR UPDATE",
        (request_id, number),
    )
    if request is None:
        raise NotFound(f"no release request {request_id} for receipt {number}")
    if request["state"] != "pending":
        raise StepRefused(f"release request {request_id} was already {request['state']}")
    if approve:
        await record_step(conn, clerk, row, ApprovedRelease(request, p.financier_id))
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


@dataclass(frozen=True, slots=True)
class Splitting(ReceiptStep):
    parts: list[dict[str, Any]]
    action: ClassVar[str] = "split receipts"

    def event(self, row: dict[str, Any]) -> lc.Step:
        number = row["number"]
        return lc.Split(
            tuple(
                lc.SplitPart(
                    part.get("number") or f"{number}-{i}",
                    Decimal(part["quantity"]),
                    int(part["pieces"]),
                    frozenset(t.upper() for t in part["tags"]),
                )
                for i, part in enumerate(self.parts, 1)
            )
        )

    def kind(self, after: lc.Transition) -> str:
        return "receipt.split"

    def details(self, row: dict[str, Any], after: lc.Transition) -> dict[str, Any]:
        return {"into": [c.number for c in after.new_receipts]}

    async def effects(
        self, conn: AsyncConnection[Any], clerk: Clerk, row: dict[str, Any], after: lc.Transition
    ) -> None:
        await conn.execute(
            "UPDATE receipt_tags SET live = false WHERE receipt_number = %s", (row["number"],)
        )

    async def follow_up(
        self, conn: AsyncConnection[Any], clerk: Clerk, row: dict[str, Any], after: lc.Transition
    ) -> None:
        """Issue the parts as new receipts, each with its own ledger entry."""
        number, key, now = row["number"], clerk.key, clerk.now
        base = json.loads(row["document"])
        for child in after.new_receipts:
            document = next_document(base, child, 1, now)
            document.update(parent=number, issued={**base["issued"], "at": format_time(now)})
            try:
                async with conn.transaction():
                    await conn.execute(
                        "INSERT INTO receipts (number, lot_id, parent_number, status, holder,"
                        " quantity, unit, pieces, tags, document, signature, issued_at,"
                        " updated_at)"
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
                        "INSERT INTO receipt_tags (receipt_number, epc)"
                        " SELECT %s, unnest(%s::text[])",
                        (child.number, sorted(child.holding.tags)),
                    )
            except psycopg.errors.UniqueViolation:
                raise Conflict(f"receipt {child.number} already exists") from None
            await log_step(
                conn,
                clerk,
                "receipt.issued",
                document=document,
                lot_id=row["lot_id"],
                details={"split_from": number},
            )


async def split(
    conn: AsyncConnection[Any],
    clerk: Clerk,
    number: str,
    parts: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    transition = await take_step(conn, clerk, number, Splitting(parts))
    return [await get_receipt(conn, clerk.principal, c.number) for c in transition.new_receipts]


@dataclass(frozen=True, slots=True)
class Transferring(ReceiptStep):
    new_holder: str
    endorsed_by: str
    action: ClassVar[str] = "record transfers"

    def event(self, row: dict[str, Any]) -> lc.Step:
        return lc.Transfer(self.new_holder, self.endorsed_by)

    def kind(self, after: lc.Transition) -> str:
        return "receipt.transferred"

    def details(self, row: dict[str, Any], after: lc.Transition) -> dict[str, Any]:
        return {"from": row["holder"], "to": self.new_holder, "endorsed_by": self.endorsed_by}


async def transfer(
    conn: AsyncConnection[Any],
    clerk: Clerk,
    number: str,
    *,
    new_holder: str,
    endorsed_by: str,
) -> dict[str, Any]:
    await take_step(conn, clerk, number, Transferring(new_holder, endorsed_by))
    return await get_receipt(conn, clerk.principal, number)


@dataclass(frozen=True, slots=True)
class Cancelling(ReceiptStep):
    reason: str
    action: ClassVar[str] = "cancel receipts"

    def event(self, row: dict[str, Any]) -> lc.Step:
        return lc.Cancel(self.reason)

    def kind(self, after: lc.Transition) -> str:
        return "receipt.cancelled"

    def details(self, row: dict[str, Any], after: lc.Transition) -> dict[str, Any]:
        return {"reason": self.reason}

    async def effects(
        self, conn: AsyncConnection[Any], clerk: Clerk, row: dict[str, Any], after: lc.Transition
    ) -> None:
        await conn.execute(
            "UPDATE receipt_tags SET live = false WHERE receipt_number = %s", (row["number"],)
        )


async def cancel(
    conn: AsyncConnection[Any],
    clerk: Clerk,
    number: str,
    reason: str,
) -> dict[str, Any]:
    await take_step(conn, clerk, number, Cancelling(reason))
    return await get_receipt(conn, clerk.principal, number)
