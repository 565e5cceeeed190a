"""Evidence ledger: entries appended per second and proof time at 1,000,000 entries.

Measured: canonical-JSON ledger entries appended to the incremental RFC 9162 tree
(cloud/receipts/merkle.py), then inclusion and consistency proofs for random leaves at the
full size (p50/p95), each proof checked by the verifier so a wrong proof cannot look fast.

Baseline (the naive log): after every append, recompute the root from all leaf hashes. Its
cost per append grows with the log, so it cannot run to 1,000,000 entries in a benchmark's
time. It is run for real under a time cap (sizes reached are printed), and the cost of one full
recomputation is measured at several sizes to fit seconds-per-leaf; the baseline rate at the
benchmark's size is that fit summed over every append from 1 to N (sum of n = N^2/2), i.e.
extrapolated, and labelled so.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
import uuid
from typing import Any

from benchmarks._report import peak_rss_mb, print_figures, print_table
from cloud.receipts import merkle
from contract import canonical_bytes


def ledger_entry(i: int) -> bytes:
    return canonical_bytes(
        {
            "kind": "receipt.verified",
            "receipt": f"WR-2026-{i // 7:07d}",
            "recorded_at": "2026-11-26T06:00:00.000000Z",
            "recorded_at_us": 1_795_000_000_000_000 + i * 1000,
            "body": {"present": 980 + i % 20, "declared": 1000, "fence": "zone-a"},
        }
    )


def naive_root(leaves: list[bytes]) -> bytes:
    """The whole tree from its leaves, level by level (RFC 9162 shape: odd nodes are promoted)."""
    if not leaves:
        return merkle.EMPTY_ROOT
    level = leaves
    while len(level) > 1:
        nxt = [merkle.node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


async def _postgres_figures(server_url: str, n: int, proofs: int) -> dict[str, float]:
    """The same ledger persisted in PostgreSQL: one transaction per entry, as the service does."""
    import psycopg
    from psycopg import AsyncConnection
    from psycopg.conninfo import make_conninfo

    from cloud.migrate import migrate
    from cloud.receipts import ledger

    name = f"pw_bench_ledger_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = make_conninfo(server_url, dbname=name)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            migrate(conn)
        async with await AsyncConnection.connect(url) as conn:
            t0 = time.perf_counter()
            for i in range(n):
                async with conn.transaction():
                    await ledger.append(conn, json.loads(ledger_entry(i)))
            append_s = time.perf_counter() - t0
            rng = random.Random(3)
            times: list[float] = []
            for _ in range(proofs):
                index = rng.randrange(n)
                t0 = time.perf_counter()
                await ledger.inclusion_proof(conn, index, n)
                times.append((time.perf_counter() - t0) * 1000)
        return {"entries_per_s": n / append_s, "proof_ms_p95": percentile(times, 0.95)}
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks ledger")
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--proofs", type=int, default=2000)
    parser.add_argument("--baseline-seconds", type=float, default=10.0)
    parser.add_argument(
        "--postgres",
        metavar="SERVER_URL",
        help="also measure the PostgreSQL-persisted ledger (a scratch database on this server)",
    )
    parser.add_argument("--postgres-entries", type=int, default=3000)
    args = parser.parse_args(argv)
    n = args.entries
    rng = random.Random(7)

    # Entries are serialised up front in batches so the timed loop is hashing and appending.
    tree = merkle.MerkleTree()
    append_s = 0.0
    batch = 50_000
    for start in range(0, n, batch):
        entries = [ledger_entry(i) for i in range(start, min(n, start + batch))]
        t0 = time.perf_counter()
        for entry in entries:
            tree.append_entry(entry)
        append_s += time.perf_counter() - t0
    t0 = time.perf_counter()
    root = tree.root()
    root_ms = (time.perf_counter() - t0) * 1000
    entries_per_s = n / append_s

    inclusion_ms: list[float] = []
    for _ in range(args.proofs):
        index = rng.randrange(n)
        t0 = time.perf_counter()
        proof = tree.inclusion_proof(index)
        inclusion_ms.append((time.perf_counter() - t0) * 1000)
        if not merkle.verify_inclusion(tree.node((0, index)), index, n, proof, root):
            raise SystemExit(f"inclusion proof for {index} did not verify")
    consistency_ms: list[float] = []
    for _ in range(max(1, args.proofs // 10)):
        first = rng.randrange(1, n + 1)
        t0 = time.perf_counter()
        proof = tree.consistency_proof(first)
        consistency_ms.append((time.perf_counter() - t0) * 1000)
        if not merkle.verify_consistency(first, n, tree.root(first), root, proof):
            raise SystemExit(f"consistency proof {first}->{n} did not verify")

    # Baseline, run for real under a time cap.
    leaves: list[bytes] = []
    deadline = time.perf_counter() + args.baseline_seconds / 2
    t0 = time.perf_counter()
    while time.perf_counter() < deadline:
        leaves.append(merkle.leaf_hash(ledger_entry(len(leaves))))
        naive_root(leaves)
    capped_s = time.perf_counter() - t0
    capped_entries = len(leaves)
    if naive_root(leaves) != tree.root(capped_entries):
        raise SystemExit("baseline root disagrees with the incremental tree")

    # Baseline cost per leaf of one full recomputation, fitted over several sizes.
    per_leaf: list[float] = []
    sizes = [2**k for k in range(10, 17)]
    all_leaves = [tree.node((0, i)) for i in range(min(n, sizes[-1]))]
    budget_end = time.perf_counter() + args.baseline_seconds / 2
    for size in sizes:
        if size > len(all_leaves) or time.perf_counter() > budget_end:
            break
        t0 = time.perf_counter()
        naive_root(all_leaves[:size])
        per_leaf.append((time.perf_counter() - t0) / size)
    seconds_per_leaf = statistics.median(per_leaf)
    # Appending entries 1..N, each followed by a full recomputation: sum(n) = N(N+1)/2 leaves.
    baseline_total_s = seconds_per_leaf * n * (n + 1) / 2
    baseline_entries_per_s = n / baseline_total_s

    proof_ms_p95 = percentile(inclusion_ms, 0.95)
    extra_rows: list[tuple[str, Any]] = []
    extra_figures: dict[str, Any] = {}
    if args.postgres:
        pg = asyncio.run(_postgres_figures(args.postgres, args.postgres_entries, 500))
        extra_rows = [
            (f"PostgreSQL, {args.postgres_entries:,} entries: entries/s", pg["entries_per_s"]),
            ("PostgreSQL inclusion proof p95 ms", pg["proof_ms_p95"]),
        ]
        extra_figures = {
            "postgres_entries": args.postgres_entries,
            "postgres_entries_per_s": round(pg["entries_per_s"], 1),
            "postgres_proof_ms_p95": round(pg["proof_ms_p95"], 3),
        }
    print_table(
        f"Evidence ledger, {n:,} entries (incremental RFC 9162 tree, in memory)",
        [
            ("appended entries/s", round(entries_per_s, 1)),
            ("append total s", round(append_s, 2)),
            ("root at full size, µs", root_ms * 1000),
            ("inclusion proof p50 µs", percentile(inclusion_ms, 0.5) * 1000),
            ("inclusion proof p95 µs", proof_ms_p95 * 1000),
            ("consistency proof p95 µs", percentile(consistency_ms, 0.95) * 1000),
            ("baseline, run capped: entries", capped_entries),
            ("baseline, run capped: entries/s", round(capped_entries / capped_s, 1)),
            ("baseline recompute µs per leaf", round(seconds_per_leaf * 1e6, 3)),
            (f"baseline at {n:,}: entries/s (extrapolated)", round(baseline_entries_per_s, 3)),
            (f"baseline at {n:,}: total hours (extrapolated)", round(baseline_total_s / 3600, 1)),
            *extra_rows,
            ("peak RSS MB", peak_rss_mb()),
        ],
    )
    print_figures(
        {
            "entries": n,
            "entries_per_s": round(entries_per_s, 1),
            "baseline_entries_per_s": round(baseline_entries_per_s, 4),
            "baseline_extrapolated": True,
            "baseline_capped_entries": capped_entries,
            "baseline_capped_entries_per_s": round(capped_entries / capped_s, 1),
            "ratio": round(entries_per_s / baseline_entries_per_s, 1),
            "proof_ms_p95": round(proof_ms_p95, 4),
            "consistency_proof_ms_p95": round(percentile(consistency_ms, 0.95), 4),
            **extra_figures,
        }
    )
    return 0
