"""Delivery workers: claim due deliveries with FOR UPDATE SKIP LOCKED, send, record, decide.

Each in-flight delivery holds its row lock in its own transaction until its attempt is
recorded, so any number of workers (in any number of processes) share the outbox without
sending a message twice at once. Per-endpoint ordering: only the endpoint's oldest pending
delivery is ever claimable, so message N+1 waits until N is delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from cloud import alerts
from cloud.alerts import CHANNEL
from cloud.webhooks import policy, signing, ssrf
from decisions.alert_text import alert_text
from decisions.alert_types import AlertType
from ops.backoff import Backoff
from ops.supervised import Supervised

log = logging.getLogger(__name__)

TIMEOUT_S = 15.0
ALLOW_ENV = "PW_WEBHOOK_ALLOW"
ENDPOINT_DISABLED = AlertType.WEBHOOK_ENDPOINT_DISABLED


def allow_list_from_env() -> list[str]:
    """Comma-separated hosts, addresses or CIDRs that may be private (tests: 127.0.0.1)."""
    return [e.strip() for e in os.environ.get(ALLOW_ENV, "").split(",") if e.strip()]


# The endpoint's live secrets come with the claim: one round trip between NOTIFY and the POST.
_CLAIM = """
SELECT d.id, d.endpoint_id, d.attempts, m.msg_id, m.payload, e.url, e.failing_since,
       ARRAY(SELECT s.secret FROM webhook_secrets s WHERE s.endpoint_id = d.endpoint_id
             AND (s.expires_at IS NULL OR s.expires_at > %(now)s) ORDER BY s.id DESC) AS secrets
FROM webhook_deliveries d
JOIN webhook_endpoints e ON e.id = d.endpoint_id
JOIN webhook_messages m ON m.seq = d.message_seq
WHERE d.state = 'pending' AND e.enabled AND d.next_attempt_at <= %(now)s
  AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p
                  WHERE p.endpoint_id = d.endpoint_id AND p.state = 'pending'
                    AND p.message_seq < d.message_seq)
ORDER BY d.next_attempt_at, d.message_seq
LIMIT 1
FOR UPDATE OF d SKIP LOCKED
"""


@dataclass
class WebhookSender:
    database_url: str
    allow: list[str] = field(default_factory=allow_list_from_env)
    concurrency: int = 8
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    rng: random.Random = field(default_factory=random.Random)
    disable_after: timedelta = policy.DISABLE_AFTER
    timeout_s: float = TIMEOUT_S
    resolver: ssrf.Resolver = ssrf.resolve
    sent: int = 0

    async def deliver_due(self) -> int:
        """Attempt every due delivery once (concurrently across endpoints); returns attempts."""
        async with self._resources() as (http, conns):
            return await self._round(http, conns)

    @contextlib.asynccontextmanager
    async def _resources(self) -> AsyncIterator[tuple[httpx.AsyncClient, list[AsyncConnection]]]:
        async with contextlib.AsyncExitStack() as stack:
            http = await stack.enter_async_context(
                httpx.AsyncClient(follow_redirects=False, timeout=self.timeout_s))
            conns = [await stack.enter_async_context(
                await AsyncConnection.connect(self.database_url))
                for _ in range(self.concurrency)]
            yield http, conns

    async def _round(self, http: httpx.AsyncClient, conns: list[AsyncConnection]) -> int:
        # One claim first: a wake-up is usually one new message, and eight connections racing
        # to claim it cost ~10 ms of contended queries before the one that wins can send. Then
        # one more on the same connection: only a backlog is worth eight claims at once (each
        # empty one is a query PostgreSQL runs beside ingest's transactions).
        for done in range(2):
            if not await self._attempt_one(conns[0], http):
                return done
        counts = await asyncio.gather(*(self._drain(http, c) for c in conns))
        return 2 + sum(counts)

    async def _drain(self, http: httpx.AsyncClient, conn: AsyncConnection) -> int:
        done = 0
        while await self._attempt_one(conn, http):
            done += 1
        return done

    async def _attempt_one(self, conn: AsyncConnection[Any], http: httpx.AsyncClient) -> bool:
        async with conn.transaction():
            async with conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(_CLAIM, {"now": self.clock()})
                row = await cur.fetchone()
            if row is None:
                return False
            outcome, took_ms = await self._send(http, row, row["secrets"])
            await self._record(conn, row, outcome, took_ms)
        return True

    async def _send(
        self, http: httpx.AsyncClient, row: dict[str, Any], secrets: list[str]
    ) -> tuple[policy.Outcome, int]:
        body = json.dumps(row["payload"], sort_keys=True, separators=(",", ":")).encode()
        started = time.monotonic()
        try:
            # Connect to the address that was checked, not to whatever the name says next.
            target = await ssrf.pin_target(row["url"], self.allow, self.resolver)
            headers = signing.headers(secrets, row["msg_id"], int(self.clock().timestamp()), body)
            headers["content-type"] = "application/json"
            headers["host"] = target.host_header
            response = await http.post(target.url, content=body, headers=headers,
                                       extensions={"sni_hostname": target.server_name})
            outcome = policy.Outcome(response.status_code, response.headers.get("retry-after"))
        except ssrf.BlockedTarget as err:
            outcome = policy.Outcome(None, error=f"blocked: {err}")
        except httpx.TimeoutException:
            outcome = policy.Outcome(None, error=f"no answer within {self.timeout_s:g} s")
        except (httpx.HTTPError, ValueError) as err:
            outcome = policy.Outcome(None, error=f"{type(err).__name__}: {err}")
        return outcome, int((time.monotonic() - started) * 1000)

    async def _record(
        self, conn: AsyncConnection[Any], row: dict[str, Any], outcome: policy.Outcome,
        took_ms: int,
    ) -> None:
        now = self.clock()
        attempts = row["attempts"] + 1
        verdict = policy.judge(outcome, attempts=attempts, failing_since=row["failing_since"],
                               now=now, rng=self.rng, disable_after=self.disable_after)
        error = None if verdict.kind == "delivered" else verdict.reason
        await conn.execute(
            "INSERT INTO webhook_attempts (delivery_id, at, status, error, duration_ms) "
            "VALUES (%s, %s, %s, %s, %s)", (row["id"], now, outcome.status, error, took_ms))
        if verdict.kind == "delivered":
            self.sent += 1
            await conn.execute(
                "UPDATE webhook_deliveries SET state = 'delivered', attempts = %s, "
                "delivered_at = %s, last_status = %s, last_error = NULL WHERE id = %s",
                (attempts, now, outcome.status, row["id"]))
            await conn.execute("UPDATE webhook_endpoints SET failing_since = NULL WHERE id = %s",
                               (row["endpoint_id"],))
            return
        await conn.execute(
            "UPDATE webhook_deliveries SET attempts = %s, next_attempt_at = %s, last_status = %s,"
            " last_error = %s WHERE id = %s",
            (attempts, verdict.next_attempt_at or now, outcome.status, error, row["id"]))
        await conn.execute(
            "UPDATE webhook_endpoints SET failing_since = coalesce(failing_since, %s) "
            "WHERE id = %s", (now, row["endpoint_id"]))
        if verdict.kind == "disable":
            await disable_endpoint(conn, row["endpoint_id"], verdict.reason, now)

    async def run(self, poll_s: float = 1.0) -> None:
        """Deliver until cancelled: woken by NOTIFY on commit, and every ``poll_s`` for retries.

        One supervised task (ops/supervised.py) owns the connections; a lost database or a
        failed round starts them again after a backoff."""

        async def deliver(owner: Supervised) -> None:
            await self._deliver_forever(owner, poll_s)

        owner = Supervised(
            "webhooks", deliver, retry_on=(OSError, psycopg.Error),
            backoff=Backoff(initial_s=poll_s, maximum_s=max(poll_s, 30.0)),
        )
        async with owner:
            await owner.wait()

    async def _deliver_forever(self, owner: Supervised, poll_s: float) -> None:
        async with await AsyncConnection.connect(self.database_url, autocommit=True) as listen, \
                self._resources() as (http, conns):
            await listen.execute(f"LISTEN {CHANNEL}")
            owner.up("listening")
            while True:  # connections kept between rounds: no setup per message
                await self._round(http, conns)
                with contextlib.suppress(TimeoutError):
                    async for _ in listen.notifies(timeout=poll_s, stop_after=1):
                        pass


async def disable_endpoint(
    conn: AsyncConnection[Any], endpoint_id: str, reason: str, now: datetime
) -> None:
    """Stop sending to an endpoint and tell the operator with an alert (pending rows stay)."""
    await conn.execute(
        "UPDATE webhook_endpoints SET enabled = false, disabled_reason = %s, disabled_at = %s "
        "WHERE id = %s", (reason, now, endpoint_id))
    text = alert_text("webhook_disabled.raise", endpoint=endpoint_id, reason=reason)
    await alerts.raise_alert(
        conn, alert_type=ENDPOINT_DISABLED, subject=f"webhook:{endpoint_id}", severity="major",
        site_id=None, lot_id=None, explanation=text.english(),
        evidence={"endpoint": endpoint_id, "reason": reason, **text.evidence()}, seen_at=now,
        actor="webhooks")
    log.warning("webhook endpoint %s disabled: %s", endpoint_id, reason)
