"""The alerting stage: one explicit call per ingest batch decides every alert the batch causes.

Ingest stores a batch's rows and extracts what happened as plain values (:class:`SiteBatch`,
built by cloud.ingest.facts); then, in the same transaction, it calls
:meth:`AlertingStage.decide` once. Per site, in this order:

1. the edge's own alerts are absorbed: one active alert per (site, type, subject), a repeat
   only counts, a clear resolves it (cloud.alerts);
   then an alert a person resolved while its condition still holds (tags still missing...)
   is opened again (cloud.alert_condition.reopen_standing);
2. the release guard: pledged goods that moved without a release (release_guard);
3. the site's correlation rules (decisions.rules.RuleEngine, run by ``rules``), with each plate
   judged by decisions.vehicles.vehicle_authorised against the site's lists.

Every alert change writes its webhook outbox row in the same transaction (cloud.alerts), so a
webhook is sent if and only if the batch commits. The stage's settings are fixed when it is
built, once per process.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection

from cloud import alerts
from cloud.alert_condition import reopen_standing
from cloud.alerting.release_guard import TagMovement, UnreleasedMovement, check_movements
from cloud.alerting.rules import run_rules
from contract import AlertBody
from decisions.rules import Decision, Fact
from decisions.vehicles import RELEASE_PICKUP, ApprovedRelease, vehicle_authorised
from ops.clock import SYSTEM_CLOCK, Clock


@dataclass(frozen=True, slots=True)
class EdgeAlert:
    """An alert the gateway raised or cleared itself."""

    body: AlertBody
    gateway: str
    seq: int
    observed_at: datetime


@dataclass(frozen=True, slots=True)
class PlateSighting:
    """A plate read at the site's gate; whether it is authorised is the stage's decision."""

    plate: str
    camera: str
    at_us: int


@dataclass(frozen=True, slots=True)
class GatewayMovements:
    """Tags one gateway reported gone or read (the release guard's input)."""

    gateway: str
    movements: tuple[TagMovement, ...]
    seen_at: datetime


@dataclass(slots=True)
class SiteBatch:
    """What one site's messages in a batch say happened, as values."""

    site: str
    gateways: tuple[str, ...]
    edge_alerts: list[EdgeAlert] = field(default_factory=list)
    movements: list[GatewayMovements] = field(default_factory=list)
    facts: list[Fact] = field(default_factory=list)  # rule facts other than plates
    plates: list[PlateSighting] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the stage decided for a batch (the alerts themselves are already written)."""

    unreleased: list[UnreleasedMovement] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class AlertingStage:
    """Built once per process. ``run_rules`` False leaves correlation to another runner (the
    alerts benchmark's polling baseline); the edge's alerts and the release guard still run."""

    run_rules: bool = True
    clock: Clock = SYSTEM_CLOCK  # "now" for the stage's own time reads (ops/clock.py)

    async def decide(self, conn: AsyncConnection[Any], batches: Iterable[SiteBatch]) -> Outcome:
        """Every alert change the batch causes, in the caller's transaction."""
        outcome = Outcome()
        for batch in batches:
            await absorb_edge_alerts(conn, batch.site, batch.edge_alerts)
            await reopen_standing(conn, batch.site,  # a resolve the facts now contradict
                                  now=self.clock.now())
            for moved in batch.movements:
                outcome.unreleased.extend(await check_movements(
                    conn, list(moved.movements), moved.seen_at, f"gateway:{moved.gateway}"))
            if self.run_rules:
                outcome.decisions.extend(await correlate(conn, batch))
        return outcome


async def absorb_edge_alerts(
    conn: AsyncConnection[Any], site_id: str, edge_alerts: list[EdgeAlert]
) -> None:
    """The gateway's raise/clear of its own alerts, in the order it sent them."""
    for a in sorted(edge_alerts, key=lambda a: (a.gateway, a.seq)):
        actor = f"gateway:{a.gateway}"
        body = a.body
        if body.action == "clear":
            await alerts.clear_alert(conn, alert_type=body.alert_type, subject=body.subject,
                                     actor=actor, comment=body.explanation, site_id=site_id)
            continue
        await alerts.raise_alert(
            conn, alert_type=body.alert_type, subject=body.subject, severity=body.severity,
            site_id=site_id, lot_id=body.lot, explanation=body.explanation,
            evidence={**body.evidence, "envelope": {"gateway": a.gateway, "seq": a.seq}},
            seen_at=a.observed_at, actor=actor, source_gateway=a.gateway, source_seq=a.seq)


async def correlate(conn: AsyncConnection[Any], batch: SiteBatch) -> list[Decision]:
    """The site's rules on the batch's facts, plates judged against the site's lists."""
    facts = batch.facts
    if batch.plates:
        facts = sorted([*facts, *await _plate_facts(conn, batch.site, batch.plates)],
                       key=lambda f: f.at_us)
    if not facts:
        return []
    actor = f"gateway:{','.join(sorted(batch.gateways))}"
    return await run_rules(conn, batch.site, facts, actor)


async def _plate_facts(
    conn: AsyncConnection[Any], site_id: str, plates: list[PlateSighting]
) -> list[Fact]:
    """``vehicle_authorised`` or ``vehicle_unauthorised`` for each sighting: the lists are
    the site's lots' plates and the vehicles of releases approved within the pickup time."""
    earliest = datetime.fromtimestamp(min(p.at_us for p in plates) / 1e6, UTC)
    cur = await conn.execute(
        "SELECT jsonb_array_elements_text(authorised_vehicles) FROM lots WHERE site_id = %s",
        (site_id,))
    lot_plates = [r[0] for r in await cur.fetchall()]
    cur = await conn.execute(
        "SELECT q.vehicle, q.decided_at FROM release_requests q JOIN receipts r "
        "ON r.number = q.receipt_number JOIN lots l ON l.id = r.lot_id "
        "WHERE l.site_id = %s AND q.state = 'approved' AND q.vehicle IS NOT NULL "
        "AND q.decided_at > %s", (site_id, earliest - RELEASE_PICKUP))
    releases = [ApprovedRelease(vehicle, at) for vehicle, at in await cur.fetchall()]
    facts = []
    for p in plates:
        at = datetime.fromtimestamp(p.at_us / 1e6, UTC)
        verdict = vehicle_authorised(p.plate, at, lot_plates=lot_plates, releases=releases)
        kind = "vehicle_authorised" if verdict.authorised else "vehicle_unauthorised"
        facts.append(Fact(kind, f"vehicle:{p.plate}", p.at_us,
                          {"plate": p.plate, "camera": p.camera}))
    return facts
