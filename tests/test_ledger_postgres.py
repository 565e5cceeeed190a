"""The evidence ledger persisted in PostgreSQL: incremental tree, proofs, append-only, audit."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from psycopg import AsyncConnection

from cloud.receipts import ledger, merkle
from contract import canonical_bytes
from tests.ledger_reference import ref_leaf, ref_mth, ref_root_from_path, ref_verify_consistency

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 26, 6, 0, tzinfo=UTC)
KEY = Ed25519PrivateKey.generate()


def entry(i: int) -> dict[str, object]:
    return ledger.make_entry("test.note", NOW, {"n": i, "text": f"note {i} 仓单"}, lot="LOT-1")


async def fill(url: str, batches: int = 3, per_batch: int = 45) -> list[bytes]:
    """Append entries in several transactions, as the service does, signing a head after each."""
    texts: list[bytes] = []
    async with await AsyncConnection.connect(url) as conn:
        for batch in range(batches):
            async with conn.transaction():
                for i in range(batch * per_batch, (batch + 1) * per_batch):
                    assert await ledger.append(conn, entry(i)) == i
                    texts.append(canonical_bytes(entry(i)))
                await ledger.publish_tree_head(conn, KEY, NOW)
    return texts


async def test_appends_build_the_rfc9162_tree_and_serve_verifiable_proofs(
    database_url: str,
) -> None:
    texts = await fill(database_url)
    async with await AsyncConnection.connect(database_url) as conn:
        for size in (45, 90, 135):  # one signed head per transaction, each over the right root
            head = await ledger.tree_head(conn, size)
            assert head.root == ref_mth(texts[:size])
        n = len(texts)
        root = await ledger.root(conn, n)
        for index in (0, 1, 44, 64, 100, 134):
            proof = await ledger.inclusion_proof(conn, index, n)
            assert ref_root_from_path(index, n, ref_leaf(texts[index]), proof) == root
        for first in (1, 2, 45, 64, 90, 133, 135):
            proof = await ledger.consistency_proof(conn, first, n)
            assert ref_verify_consistency(first, n, ref_mth(texts[:first]), root, proof)
        with pytest.raises(ledger.LedgerError, match="has 135 entries"):
            await ledger.inclusion_proof(conn, 0, 136)
        stored = await ledger.entries(conn, lot="LOT-1")
        assert [e.text.encode() for e in stored] == texts
        assert await ledger.audit(conn, KEY.public_key()) == []


async def test_concurrent_appends_from_many_connections_stay_one_consistent_tree(
    database_url: str,
) -> None:
    async with await AsyncConnection.connect(database_url) as conn:
        start = await ledger.size(conn)

    async def writer(w: int) -> None:
        async with await AsyncConnection.connect(database_url) as conn:
            for i in range(15):
                async with conn.transaction():
                    await ledger.append(conn, entry(10_000 + w * 100 + i))

    await asyncio.gather(*(writer(w) for w in range(6)))
    async with await AsyncConnection.connect(database_url) as conn:
        assert await ledger.size(conn) == start + 90
        assert await ledger.audit(conn, KEY.public_key()) == []
        all_texts = [
            e.text.encode()
            for e in sorted(
                await ledger.entries(conn, lot="LOT-1"), key=lambda logged: logged.index
            )
        ]
        assert await ledger.root(conn, start + 90) == ref_mth(all_texts)


async def test_a_rolled_back_step_leaves_no_entry(database_url: str) -> None:
    await fill(database_url, batches=1, per_batch=5)
    async with await AsyncConnection.connect(database_url) as conn:
        before = await ledger.size(conn)
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                await ledger.append(conn, entry(-1))
                raise RuntimeError("the lifecycle step failed")
        assert await ledger.size(conn) == before
        assert await ledger.audit(conn, KEY.public_key()) == []


async def test_the_database_refuses_to_edit_or_delete_ledger_rows(database_url: str) -> None:
    await fill(database_url, batches=1, per_batch=5)
    with psycopg.connect(database_url, autocommit=True) as conn:
        for sql in (
            "UPDATE ledger_entries SET entry = '{}' WHERE idx = 0",
            "DELETE FROM ledger_entries WHERE idx = 0",
            "UPDATE ledger_nodes SET hash = hash WHERE level = 0 AND idx = 0",
            "DELETE FROM tree_heads",
            "TRUNCATE ledger_entries CASCADE",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                conn.execute(sql)


async def test_audit_finds_an_entry_edited_behind_the_triggers(database_url: str) -> None:
    await fill(database_url)
    with psycopg.connect(database_url, autocommit=True) as conn:
        # What a superuser with direct database access could do.
        conn.execute("SET session_replication_role = replica")
        conn.execute(
            "UPDATE ledger_entries SET entry = replace(entry, 'note 3 ', 'note 4 ') WHERE idx = 3"
        )
    async with await AsyncConnection.connect(database_url) as conn:
        problems = await ledger.audit(conn, KEY.public_key())
    assert "node (0, 3) disagrees with entries 3..3" in problems
    assert any("signed head of size 45 does not match the entries" in p for p in problems)
    # The stored proof no longer proves the edited entry.
    async with await AsyncConnection.connect(database_url) as conn:
        edited = await ledger.entry_at(conn, 3)
        head = await ledger.tree_head(conn, 45)
        proof = await ledger.inclusion_proof(conn, 3, 45)
    assert not merkle.verify_inclusion(
        merkle.leaf_hash(edited.text.encode()), 3, 45, proof, head.root
    )
