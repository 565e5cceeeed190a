"""The evidence ledger in PostgreSQL: append-only entries and their RFC 9162 tree.

An append runs inside the caller's transaction, so a lifecycle step and its ledger entry
commit together or not at all. It takes the ``ledger_state`` row lock (appends are serial, as
leaf indexes must be), reads the few right-edge nodes the new leaf completes
(:func:`merkle.append_siblings`), and writes the leaf's entry and the new complete subtrees:
O(log n) rows touched, never a pass over all leaves. Proofs read exactly the stored nodes they
need in one query. The tables refuse UPDATE and DELETE (triggers in 0100_receipts.sql);
:func:`audit` recomputes everything from the entries to catch what a superuser did anyway.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from psycopg import AsyncConnection
from psycopg.rows import tuple_row

from cloud.receipts import merkle
from cloud.receipts.tree_head import (
    SignedTreeHead,
    TreeHeadInvalid,
    sign_tree_head,
    verify_tree_head,
)
from contract import canonical_bytes
from contract.envelope import format_time


class LedgerError(ValueError):
    """A ledger request that cannot be served (a size or index the log does not have)."""


@dataclass(frozen=True, slots=True)
class LoggedEntry:
    index: int
    text: str  # canonical JSON, exactly the hashed bytes

    def as_json(self) -> dict[str, Any]:
        return {"index": self.index, "entry": self.text}


def make_entry(
    kind: str,
    recorded_at: datetime,
    body: dict[str, Any],
    *,
    receipt: str | None = None,
    lot: str | None = None,
    actor: str | None = None,
) -> dict[str, Any]:
    return {
        "kind": kind,
        "recorded_at": format_time(recorded_at),
        "receipt": receipt,
        "lot": lot,
        "actor": actor,
        "body": body,
    }


async def append(conn: AsyncConnection[Any], entry: dict[str, Any]) -> int:
    """Append one entry (inside the caller's transaction); returns its leaf index."""
    text = canonical_bytes(entry).decode("utf-8")
    cur = conn.cursor(row_factory=tuple_row)
    await cur.execute("UPDATE ledger_state SET size = size + 1 RETURNING size - 1")
    row = await cur.fetchone()
    if row is None:
        raise LedgerError("ledger_state has no row; was migration 0100 applied?")
    index = int(row[0])
    siblings = await fetch_nodes(conn, merkle.append_siblings(index))
    leaf = merkle.leaf_hash(text.encode("utf-8"))
    created = merkle.new_nodes_on_append(index, leaf, siblings.__getitem__)
    await cur.execute(
        "INSERT INTO ledger_entries (idx, entry, kind, receipt_number, lot_id, recorded_at)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        (index, text, entry["kind"], entry.get("receipt"), entry.get("lot"), entry["recorded_at"]),
    )
    await cur.executemany(
        "INSERT INTO ledger_nodes (level, idx, hash) VALUES (%s, %s, %s)",
        [(level, idx, value) for (level, idx), value in created],
    )
    return index


async def fetch_nodes(
    conn: AsyncConnection[Any], ids: Iterable[merkle.NodeId]
) -> dict[merkle.NodeId, bytes]:
    wanted = list(ids)
    if not wanted:
        return {}
    cur = conn.cursor(row_factory=tuple_row)
    await cur.execute(
        "SELECT n.level, n.idx, n.hash FROM ledger_nodes n"
        " JOIN unnest(%s::smallint[], %s::bigint[]) AS w(level, idx)"
        " ON n.level = w.level AND n.idx = w.idx",
        ([lv for lv, _ in wanted], [ix for _, ix in wanted]),
    )
    found = {(int(lv), int(ix)): bytes(h) for lv, ix, h in await cur.fetchall()}
    absent = [n for n in wanted if n not in found]
    if absent:
        raise LedgerError(f"ledger nodes {absent[:3]} are missing: the tree is damaged")
    return found


async def size(conn: AsyncConnection[Any]) -> int:
    cur = conn.cursor(row_factory=tuple_row)
    await cur.execute("SELECT size FROM ledger_state")
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def _check_size(conn: AsyncConnection[Any], wanted: int) -> None:
    have = await size(conn)
    if wanted > have:
        raise LedgerError(f"no tree of size {wanted}; the ledger has {have} entries")


async def root(conn: AsyncConnection[Any], tree_size: int) -> bytes:
    await _check_size(conn, tree_size)
    nodes = await fetch_nodes(conn, merkle.range_nodes(0, tree_size))
    return merkle.range_hash(0, tree_size, nodes.__getitem__)


async def inclusion_proof(conn: AsyncConnection[Any], index: int, tree_size: int) -> list[bytes]:
    await _check_size(conn, tree_size)
    try:
        ranges = merkle.inclusion_ranges(index, tree_size)
    except merkle.ProofRequestError as err:
        raise LedgerError(str(err)) from None
    nodes = await fetch_nodes(conn, merkle.nodes_for(ranges))
    return [merkle.range_hash(a, b, nodes.__getitem__) for a, b in ranges]


async def consistency_proof(conn: AsyncConnection[Any], first: int, second: int) -> list[bytes]:
    await _check_size(conn, second)
    try:
        ranges = merkle.consistency_ranges(first, second)
    except merkle.ProofRequestError as err:
        raise LedgerError(str(err)) from None
    nodes = await fetch_nodes(conn, merkle.nodes_for(ranges))
    return [merkle.range_hash(a, b, nodes.__getitem__) for a, b in ranges]


async def entries(
    conn: AsyncConnection[Any], *, receipt: str | None = None, lot: str | None = None
) -> list[LoggedEntry]:
    cur = conn.cursor(row_factory=tuple_row)
    if receipt is not None:
        await cur.execute(
            "SELECT idx, entry FROM ledger_entries WHERE receipt_number = %s ORDER BY idx",
            (receipt,),
        )
    else:
        await cur.execute(
            "SELECT idx, entry FROM ledger_entries WHERE lot_id = %s ORDER BY idx", (lot,)
        )
    return [LoggedEntry(int(i), t) for i, t in await cur.fetchall()]


async def entry_at(conn: AsyncConnection[Any], index: int) -> LoggedEntry:
    cur = conn.cursor(row_factory=tuple_row)
    await cur.execute("SELECT idx, entry FROM ledger_entries WHERE idx = %s", (index,))
    row = await cur.fetchone()
    if row is None:
        raise LedgerError(f"no ledger entry {index}")
    return LoggedEntry(int(row[0]), row[1])


def _head_from_row(row: tuple[Any, ...]) -> SignedTreeHead:
    tree_size, root_hash, stamp, log, signature = row
    return SignedTreeHead(log, int(tree_size), bytes(root_hash), int(stamp), bytes(signature))


async def publish_tree_head(
    conn: AsyncConnection[Any], key: Ed25519PrivateKey, now: datetime
) -> SignedTreeHead:
    """Sign the current tree (inside the caller's transaction); one head per size."""
    cur = conn.cursor(row_factory=tuple_row)
    tree_size = await size(conn)
    await cur.execute(
        "SELECT size, root, timestamp_ms, log_id, signature FROM tree_heads WHERE size = %s",
        (tree_size,),
    )
    existing = await cur.fetchone()
    if existing is not None:
        return _head_from_row(existing)
    head = sign_tree_head(
        key,
        size=tree_size,
        root=await root(conn, tree_size),
        timestamp_ms=int(now.timestamp() * 1000),
    )
    await cur.execute(
        "INSERT INTO tree_heads (size, root, timestamp_ms, log_id, signature)"
        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (size) DO NOTHING",
        (head.size, head.root, head.timestamp_ms, head.log_id, head.signature),
    )
    return head


async def latest_tree_head(conn: AsyncConnection[Any]) -> SignedTreeHead | None:
    cur = conn.cursor(row_factory=tuple_row)
    await cur.execute(
        "SELECT size, root, timestamp_ms, log_id, signature FROM tree_heads"
        " ORDER BY size DESC LIMIT 1"
    )
    row = await cur.fetchone()
    return None if row is None else _head_from_row(row)


async def tree_head(conn: AsyncConnection[Any], tree_size: int) -> SignedTreeHead:
    cur = conn.cursor(row_factory=tuple_row)
    await cur.execute(
        "SELECT size, root, timestamp_ms, log_id, signature FROM tree_heads WHERE size = %s",
        (tree_size,),
    )
    row = await cur.fetchone()
    if row is None:
        raise LedgerError(f"no signed tree head for size {tree_size}")
    return _head_from_row(row)


async def audit(conn: AsyncConnection[Any], public_key: Ed25519PublicKey) -> list[str]:
    """Recompute the whole tree from the entries; list every disagreement found.

    Checks each stored node against the recomputation and each signed head against both the
    operator's key and the recomputed root of its size.
    """
    problems: list[str] = []
    tree = merkle.MerkleTree()
    cur = conn.cursor(row_factory=tuple_row)
    expected = 0
    async with conn.cursor(name="ledger_audit", row_factory=tuple_row) as stream:
        await stream.execute("SELECT idx, entry FROM ledger_entries ORDER BY idx")
        async for idx, text in stream:
            if idx != expected:
                problems.append(f"entries jump from {expected - 1} to {idx}: entries are missing")
                break
            tree.append_entry(text.encode("utf-8"))
            expected += 1
    logged = await size(conn)
    if tree.size != logged:
        problems.append(f"ledger_state says {logged} entries, {tree.size} are readable")
    await cur.execute("SELECT level, idx, hash FROM ledger_nodes ORDER BY level, idx")
    for level, idx, value in await cur.fetchall():
        if (int(idx) + 1) << int(level) > tree.size:
            problems.append(f"node ({level}, {idx}) covers entries the ledger does not have")
        elif tree.node((int(level), int(idx))) != bytes(value):
            first = int(idx) << int(level)
            problems.append(
                f"node ({level}, {idx}) disagrees with entries {first}..{first + (1 << level) - 1}"
            )
    await cur.execute("SELECT size, root, timestamp_ms, log_id, signature FROM tree_heads")
    for row in await cur.fetchall():
        head = _head_from_row(row)
        try:
            verify_tree_head(head, public_key)
        except TreeHeadInvalid as err:
            problems.append(str(err))
            continue
        if head.size > tree.size:
            problems.append(f"signed head of size {head.size} is beyond the ledger")
        elif tree.root(head.size) != head.root:
            problems.append(
                f"signed head of size {head.size} does not match the entries: "
                "an entry was edited after it was signed"
            )
    return problems


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
