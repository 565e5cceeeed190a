"""Store one batch of decisions in one transaction: envelopes once, rows, alerts, dead letters.

Rows first (cloud.ingest.writers), then one call of the alerting stage with the facts of the
batch (cloud.ingest.facts -> cloud.alerting.stage), in the same transaction: an alert and its
webhook exist if and only if the messages that caused them are stored.

If the batch fails on its data (a value PostgreSQL refuses), the messages are stored one by one
so the offending message goes to the dead-letter table with the database's reason and the
others are kept: bad input never stops ingest and never takes good input down with it.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from dataclasses import dataclass, field

import psycopg
from psycopg import AsyncConnection

from cloud.alerting.stage import AlertingStage
from cloud.ingest.decode import Accepted, Decision, Rejected
from cloud.ingest.facts import site_batches
from cloud.ingest.scope import confine_to_sites
from cloud.ingest.writers import writer_for
from contract import MessageType

log = logging.getLogger(__name__)

# A dead letter keeps this much of the bytes, plus their full length and SHA-256: enough to
# read what went wrong, and a 20 MB message no longer costs 20 MB of the database.
DEAD_LETTER_RAW_CAP = 64 * 1024


@dataclass
class BatchResult:
    messages: int = 0
    accepted: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    rows: int = 0
    # What to confirm to each gateway once committed: (site, gateway) -> seqs now in the cloud.
    stored: dict[tuple[str, str], list[int]] = field(default_factory=lambda: defaultdict(list))

    def add(self, other: BatchResult) -> None:
        for key, seqs in other.stored.items():
            self.stored[key].extend(seqs)
        self.messages += other.messages
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        self.dead_letters += other.dead_letters
        self.rows += other.rows


async def _dead_letters(conn: AsyncConnection, rejected: list[Rejected]) -> None:
    if not rejected:
        return
    async with conn.cursor().copy(
        f"COPY dead_letters ({DEAD_LETTER_COLUMNS}) FROM STDIN"
    ) as copy:
        for r in rejected:
            await copy.write_row(dead_letter_row(r.topic, r.gateway_id, r.reason, r.raw))


DEAD_LETTER_COLUMNS = "topic, gateway_id, reason, raw, raw_length, raw_sha256"


def dead_letter_row(
    topic: str, gateway_id: str | None, reason: str, raw: bytes
) -> tuple[str, str | None, str, bytes, int, bytes]:
    """One ``dead_letters`` row: raw bytes up to the cap, with their full length and SHA-256.

    Topic, gateway and reason may quote the sender's text: no NUL reaches PostgreSQL.
    """
    return (_text(topic), None if gateway_id is None else _text(gateway_id), _text(reason),
            raw[:DEAD_LETTER_RAW_CAP], len(raw), hashlib.sha256(raw).digest())


def _text(value: str, limit: int = 4096) -> str:
    """Text for a dead letter's columns: NUL escaped (PostgreSQL text refuses it), bounded,
    and lone surrogates (from MQTT topics) replaced so the row encodes as UTF-8."""
    value = value[:limit].replace("\x00", "\\x00")
    return value.encode("utf-8", "replace").decode("utf-8")


async def _claim_new(conn: AsyncConnection, accepted: list[Accepted]) -> list[Accepted]:
    """Record (gateway, seq) of each message; keep only those not seen before."""
    if not accepted:
        return []
    cur = await conn.execute(
        """
        INSERT INTO envelopes (gateway_id, seq, type, observed_at)
        SELECT * FROM unnest(%s::text[], %s::bigint[], %s::text[], %s::timestamptz[])
        ON CONFLICT DO NOTHING
        RETURNING gateway_id, seq
        """,
        (
            [a.envelope.gateway for a in accepted],
            [a.envelope.seq for a in accepted],
            [a.envelope.type for a in accepted],
            [a.envelope.observed_at for a in accepted],
        ),
    )
    fresh = set(await cur.fetchall())
    # The same message twice in one batch: keep the first.
    kept, seen = [], set()
    for a in accepted:
        key = (a.envelope.gateway, a.envelope.seq)
        if key in fresh and key not in seen:
            kept.append(a)
            seen.add(key)
    return kept


async def write_accepted(
    conn: AsyncConnection, fresh: list[Accepted], alerting: AlertingStage
) -> int:
    """Rows of each message type, then the alerting stage once on what they say. Returns rows."""
    by_type: dict[MessageType, list[Accepted]] = defaultdict(list)
    for a in fresh:
        by_type[MessageType(a.envelope.type)].append(a)
    rows = 0
    for msg_type, items in by_type.items():
        rows += await writer_for(msg_type)(conn, items)
    await alerting.decide(conn, site_batches(fresh))
    return rows


async def _store(
    conn: AsyncConnection, decisions: list[Decision], alerting: AlertingStage
) -> BatchResult:
    accepted = [d for d in decisions if isinstance(d, Accepted)]
    rejected = [d for d in decisions if isinstance(d, Rejected)]
    result = BatchResult(messages=len(decisions))
    async with conn.transaction():
        accepted, foreign = await confine_to_sites(conn, accepted)
        rejected += foreign
        result.dead_letters = len(rejected)
        fresh = await _claim_new(conn, accepted)
        result.accepted = len(fresh)
        result.duplicates = len(accepted) - len(fresh)
        result.rows = await write_accepted(conn, fresh, alerting)
        if fresh:
            last: dict[str, int] = {}
            for a in fresh:
                last[a.envelope.gateway] = max(last.get(a.envelope.gateway, 0), a.envelope.seq)
            last = dict(sorted(last.items()))  # gateway rows locked in one order by every batch
            await conn.execute(
                "UPDATE gateways g SET last_seen_at = now(), "
                "last_seq = greatest(coalesce(g.last_seq, 0), u.seq) "
                "FROM unnest(%s::text[], %s::bigint[]) AS u(id, seq) WHERE g.id = u.id",
                (list(last), list(last.values())),
            )
        await _dead_letters(conn, rejected)
    for a in accepted:  # fresh and duplicates alike: the cloud has them
        result.stored[(a.envelope.site, a.envelope.gateway)].append(a.envelope.seq)
    for r in rejected:
        if r.verified is not None:
            result.stored[(r.verified.site, r.verified.gateway)].append(r.verified.seq)
    return result


async def store_batch(
    conn: AsyncConnection, decisions: list[Decision], alerting: AlertingStage
) -> BatchResult:
    try:
        return await _store(conn, decisions, alerting)
    except (psycopg.DataError, psycopg.IntegrityError, psycopg.ProgrammingError) as err:
        if len(decisions) == 1:
            only = decisions[0]
            assert isinstance(only, Accepted), "dead letters alone cannot fail on data"
            reason = f"database refused: {type(err).__name__}: {str(err).splitlines()[0]}"
            log.error("message refused by the database; dead-lettered",
                      extra={"gateway": only.envelope.gateway, "seq": only.envelope.seq,
                             "reason": reason})
            rejected = Rejected(only.topic, only.raw, reason, only.envelope.gateway,
                                verified=only.envelope)
            return await _store(conn, [rejected], alerting)
        log.warning("batch refused by the database; storing its messages one by one",
                    extra={"messages": len(decisions), "error": str(err).splitlines()[0]})
        total = BatchResult()
        for decision in decisions:
            total.add(await store_batch(conn, [decision], alerting))
        return total

