"""What the evidence ledger proves about a receipt: its history, the offline bundle, the
consistency of later heads, and the public answer to a printed receipt's QR code.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from psycopg import AsyncConnection

from cloud.apikeys import Principal
from cloud.receipts import ledger
from cloud.receipts.access import Clerk
from cloud.receipts.document import b64, document_sha256
from cloud.receipts.records import visible_receipt
from cloud.receipts.rows import fetch_one
from cloud.receipts.verification import BUNDLE_FORMAT
from cloud.registry import NotFound
from contract import public_key_b64


async def history(conn: AsyncConnection[Any], p: Principal, number: str) -> list[dict[str, Any]]:
    await visible_receipt(conn, p, number)
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
    row = await visible_receipt(conn, p, number)
    head = await ledger.latest_tree_head(conn)
    if head is None or head.size < await ledger.size(conn):
        head = await ledger.publish_tree_head(conn, key, now)
    document = json.loads(row["document"])
    steps = [e for e in await ledger.entries(conn, receipt=number) if e.index < head.size]
    wanted = {document["evidence"]["issue_verification"]["ledger_index"]}
    latest = await fetch_one(
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
    row = await fetch_one(
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
