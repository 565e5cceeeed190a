"""Run a site's rules on the facts of an ingest batch, inside the batch's transaction.

The engine is rebuilt per batch from the facts stored in ``rule_facts`` (with which rules
each has fired), so any number of ingest workers agree and a restart forgets nothing.
Decisions become alerts (``cloud.alerts``, which also writes the webhook outbox), clears
(auto-resolve) or release movements. Called by the alerting stage (cloud.alerting.stage).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import AsyncConnection

from cloud import alerts
from cloud.rules.sets import active_rule_set
from decisions.incident import INCIDENT
from decisions.rules import Decision, Fact, RuleEngine, RuleSet
from decisions.vehicles import RELEASE_PICKUP


def _dt(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1e6, UTC)


async def _releases(conn: AsyncConnection[Any], lots: list[str], now: datetime) -> list[Fact]:
    """Approved releases of these lots in the last day, as facts (they live in receipts)."""
    if not lots:
        return []
    cur = await conn.execute(
        "SELECT r.lot_id, q.id, q.vehicle, q.decided_at FROM release_requests q "
        "JOIN receipts r ON r.number = q.receipt_number WHERE r.lot_id = ANY(%s) "
        "AND q.state = 'approved' AND q.decided_at > %s", (lots, now - RELEASE_PICKUP))
    return [Fact("release_approved", f"lot:{lot}", int(at.timestamp() * 1e6),
                 {"lot": lot, "release": rid, "vehicle": vehicle})
            for lot, rid, vehicle, at in await cur.fetchall()]


async def run_rules(
    conn: AsyncConnection[Any], site_id: str, facts: list[Fact], actor: str,
    rule_set: RuleSet | None = None,
) -> list[Decision]:
    rule_set = rule_set or await active_rule_set(conn, site_id)
    reads = set().union(*(r.reads for r in rule_set.rules)) if rule_set.rules else set()
    facts = [f for f in facts if f.kind in reads]
    if not facts:
        return []
    # Releases are read from receipts, not stored as facts: their day-long window would
    # otherwise make every batch load a day of the site's facts.
    horizon = timedelta(seconds=max(
        max([r.window_s, *(c.within_s or r.window_s for c in (*r.all_of, *r.any_of, *r.none_of)
                           if c.fact != "release_approved")])
        for r in rule_set.rules))
    earliest = _dt(facts[0].at_us)
    cur = await conn.execute(
        "SELECT id, kind, subject, at, attrs, fired FROM rule_facts "
        "WHERE site_id = %s AND at >= %s ORDER BY at, id", (site_id, earliest - horizon))
    stored: list[tuple[int, Fact, list[str]]] = [
        (rid, Fact(kind, subject, int(at.timestamp() * 1e6), attrs), fired)
        for rid, kind, subject, at, attrs, fired in await cur.fetchall()]
    lots = sorted({f.attrs["lot"] for f in facts if "lot" in f.attrs})
    engine = RuleEngine(rule_set)
    engine.remember([f for _, f, _ in stored] + await _releases(conn, lots, _dt(facts[-1].at_us)),
                    [(rule, f) for _, f, fired in stored for rule in fired])
    decisions = [d for f in facts for d in engine.feed(f)]
    names = [r.name for r in rule_set.rules]
    for rid, f, fired in stored:
        now_fired = [n for n in names if engine.fired(n, f)]
        if sorted(now_fired) != sorted(fired):
            await conn.execute("UPDATE rule_facts SET fired = %s WHERE id = %s", (now_fired, rid))
    # executemany, not COPY: psycopg pipelines it into one round trip where COPY takes two, and
    # this runs inside the transaction the alert's webhook waits for (a batch has a fact or two).
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO rule_facts (site_id, kind, subject, at, attrs, fired) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            [(site_id, f.kind, f.subject, _dt(f.at_us), json.dumps(dict(f.attrs)),
              [n for n in names if engine.fired(n, f)]) for f in facts])
    await conn.execute("DELETE FROM rule_facts WHERE site_id = %s AND at < %s",
                       (site_id, earliest - horizon - timedelta(hours=1)))
    for d in decisions:
        await apply_decision(conn, site_id, d, actor)
    return decisions


async def _still_missing(conn: AsyncConnection[Any], lot: str) -> bool:
    cur = await conn.execute(
        "SELECT 1 FROM lot_tags t JOIN tag_state s ON s.epc = t.epc WHERE t.lot_id = %s "
        "AND s.presence = 'missing' LIMIT 1", (lot,))
    return await cur.fetchone() is not None


async def apply_decision(conn: AsyncConnection[Any], site_id: str, d: Decision, actor: str
                         ) -> None:
    # The edge's own alert for this (type, subject) is already absorbed (stage, step 1).
    if d.alert_type is not None and any(
            f.attrs.get("edge_alert") == d.alert_type and f.subject == d.subject
            for f in d.facts):
        return
    who = f"rule:{d.rule}"
    if d.action == "record":
        await conn.execute(
            "INSERT INTO release_movements (site_id, subject, rule, at, facts, explanation) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            (site_id, d.subject, d.rule, _dt(d.at_us), json.dumps(d.evidence()), d.explanation))
    elif d.action == "clear":
        assert d.alert_type is not None
        if d.alert_type == INCIDENT and d.lot and await _still_missing(conn, d.lot):
            return  # one tag back is not the incident's end: only reads of them all are
        await alerts.clear_alert(conn, alert_type=d.alert_type, subject=d.subject, actor=who,
                                 comment=d.explanation, site_id=site_id)
    else:
        assert d.alert_type is not None
        await alerts.raise_alert(
            conn, alert_type=d.alert_type, subject=d.subject, severity=d.severity,
            site_id=site_id, lot_id=d.lot, explanation=d.explanation, evidence=d.evidence(),
            seen_at=_dt(d.at_us), actor=f"{actor} {who}", rule=d.rule)
