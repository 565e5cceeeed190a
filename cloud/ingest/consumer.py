"""The ingest process: MQTT in, PostgreSQL out, acknowledgements only after commit.

Messages are taken in batches, events before bulk (cloud.ingest.lanes: an event never waits
behind queued tag reads), decided, stored in one transaction, and only then acknowledged to the
broker, in arrival order (ops/mqtt_acks.py: paho's public manual acknowledgements). One
supervised session (ops/supervised.py) holds the database connection and the broker
connection; either failing ends it, and it starts again after a backoff. A crash before the
commit leaves the messages unacknowledged in the broker's persistent session: they come again
and (gateway, seq) absorbs any that had in fact been stored. Several ingest processes split the
stream through the shared subscription ``$share/ingest/pw/v1/#``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import MQTTProtocolVersion
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from psycopg import AsyncConnection

from cloud.alerting.stage import AlertingStage
from cloud.command_key import load_command_key_from
from cloud.ingest.decode import DEFAULT_MAX_CLOCK_SKEW_S, Decision, decide
from cloud.ingest.gateways import GatewayDirectory, gateway_change_listener
from cloud.ingest.lanes import Lanes, Taken
from cloud.ingest.store import BatchResult, store_batch
from contract import (
    STORED_COMMAND,
    Channel,
    cmd_topic,
    ingest_subscription,
    seal_command,
    stored_body,
)
from ops import timeouts
from ops.backoff import Backoff
from ops.clock import SYSTEM_CLOCK, Clock
from ops.mqtt import PAHO_VERSIONS, protocol_candidates
from ops.mqtt_acks import AckingSubscriber, BrokerLost, Received
from ops.supervised import Health, Supervised

log = logging.getLogger(__name__)

# An event's batch closes once no event has come for this long: the edge sends a burst (a
# pallet's presence changes) back to back, well inside it.
EVENT_BURST_GAP_S = 0.005
# Batches of more messages than this are decided in a thread (see Ingest.store).
DECIDE_INLINE_MAX = 4
# A batch PostgreSQL rolled back (a deadlock with another transaction) is stored again this often.
DEADLOCK_RETRIES = 3
ROLLED_BACK = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)


class IngestMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.messages = Counter("pw_ingest_messages", "MQTT messages taken", registry=r)
        self.accepted = Counter("pw_ingest_accepted", "Envelopes stored", registry=r)
        self.duplicates = Counter("pw_ingest_duplicates", "Redelivered envelopes", registry=r)
        self.dead_letters = Counter("pw_ingest_dead_letters", "Messages dead-lettered", registry=r)
        self.rows = Counter("pw_ingest_rows_written", "Rows written", registry=r)
        self.batch_seconds = Histogram(
            "pw_ingest_batch_seconds", "Decide+store+commit time per batch", registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.connected = Gauge("pw_ingest_broker_connected", "1 when connected", registry=r)

    def record(self, result: BatchResult, seconds: float) -> None:
        self.messages.inc(result.messages)
        self.accepted.inc(result.accepted)
        self.duplicates.inc(result.duplicates)
        self.dead_letters.inc(result.dead_letters)
        self.rows.inc(result.rows)
        self.batch_seconds.observe(seconds)


@dataclass(frozen=True)
class IngestOptions:
    database_url: str
    mqtt_url: str
    client_id: str
    mqtt_username: str | None = None
    mqtt_password: str | None = None
    protocol: str = "auto"
    subscription: str = "auto"  # shared | plain | auto (shared on MQTT 5)
    batch_messages: int = 200
    batch_ms: int = 50
    # How far ahead of the cloud's clock an observation may be before it is refused.
    max_clock_skew_s: float = DEFAULT_MAX_CLOCK_SKEW_S
    # False: the site rules run elsewhere (the alerts benchmark's polling baseline).
    rules_in_ingest: bool = True
    # The cloud's clock for its decisions (skew window, alerting): a scenario player on a
    # simulated clock hands the same time it gives the gateways (ops/clock.py).
    clock: Clock = SYSTEM_CLOCK


class Ingest:
    def __init__(self, options: IngestOptions, metrics: IngestMetrics | None = None) -> None:
        self.options = options
        self.metrics = metrics or IngestMetrics()
        self.totals = BatchResult()
        self._gateways = GatewayDirectory()
        self._command_key: Ed25519PrivateKey | None = None  # signs cmd/stored
        self._partitions_checked = float("-inf")
        self._partitioning = asyncio.Lock()
        self._versions = [PAHO_VERSIONS[p] for p in protocol_candidates(
            self.options.protocol)]  # type: ignore[arg-type]
        # One session = one database connection + one broker connection. Either failing ends
        # it; what it had not acknowledged stays with the broker and comes again.
        self.owner = Supervised(
            "ingest", self._session, on_health=self._on_health,
            retry_on=(OSError, psycopg.OperationalError),
            backoff=Backoff(initial_s=0.2, maximum_s=15),
        )
        self._alerting = AlertingStage(run_rules=options.rules_in_ingest, clock=options.clock)

    async def run(self) -> None:
        async with gateway_change_listener(self.options.database_url, self._gateways), \
                self.owner:
            await self.owner.wait()

    def _on_health(self, health: Health) -> None:
        self.metrics.connected.set(1 if health.online else 0)

    # -- database ------------------------------------------------------------------------------
    async def open_database(self) -> AsyncConnection:
        """A connection to store batches on, with the command key and gateways loaded."""
        conn = await AsyncConnection.connect(self.options.database_url)
        try:
            if self._command_key is None:
                self._command_key = await asyncio.to_thread(
                    load_command_key_from, self.options.database_url)
            await self._gateways.load(conn)
            await conn.commit()
        except BaseException:
            await conn.close()
            raise
        return conn

    async def _ensure_partitions(self, conn: AsyncConnection) -> None:
        if time.monotonic() - self._partitions_checked < 3600:
            return
        async with self._partitioning:  # both lanes come here: one creates, the other waits
            if time.monotonic() - self._partitions_checked < 3600:
                return
            async with conn.transaction():
                await conn.execute(
                    "SELECT pw_ensure_all_partitions(current_date - 1, current_date + 7)"
                )
            self._partitions_checked = time.monotonic()

    async def store(
        self, conn: AsyncConnection, raw_messages: list[tuple[str, bytes]]
    ) -> BatchResult:
        """Decide and store in one transaction (a lost database raises: the session ends)."""
        gateways = {a.split("/")[3] for a, _ in raw_messages if a.count("/") >= 4}
        if self._gateways.stale(gateways):
            await self._gateways.load(conn)
            await conn.commit()
        await self._ensure_partitions(conn)
        now_us = self.options.clock.now_us()
        skew_us = int(self.options.max_clock_skew_s * 1_000_000)
        def decide_all() -> list[Decision]:
            return [decide(t, p, self._gateways, now_us=now_us, max_skew_us=skew_us)
                    for t, p in raw_messages]

        # Deciding is CPU (a signature, JSON, validation). A bulk batch decides in a thread: it
        # still holds the interpreter lock, but hands it back every few milliseconds, so an
        # event on the other lane is not held up for the whole batch. A small batch (an
        # event's) decides at once: a thread hop would only add to its latency.
        decisions = (decide_all() if len(raw_messages) <= DECIDE_INLINE_MAX
                     else await asyncio.to_thread(decide_all))
        attempt = 1
        while True:
            try:
                return await store_batch(conn, decisions, self._alerting)
            except ROLLED_BACK as err:
                # The lanes' transactions lock rows in one order (cloud.ingest.writers), but a
                # status message or a second ingest process can still cross them: PostgreSQL
                # then rolls one back whole, and storing it again is safe.
                if attempt >= DEADLOCK_RETRIES:
                    raise
                attempt += 1
                log.warning("batch rolled back by the database; storing it again",
                            extra={"messages": len(decisions), "error": str(err).splitlines()[0]})

    # -- broker --------------------------------------------------------------------------------
    def _subscriber(self, version: MQTTProtocolVersion) -> AckingSubscriber:
        url = urlsplit(self.options.mqtt_url)
        return AckingSubscriber(
            url.hostname or "127.0.0.1", url.port or 1883, client_id=self.options.client_id,
            version=version, username=self.options.mqtt_username,
            password=self.options.mqtt_password, keepalive_s=30, timeout_s=10,
        )

    async def _connect(self) -> AckingSubscriber:
        """Connect with the first protocol the broker accepts; the last refusal if none."""
        last: BrokerLost | None = None
        for version in self._versions:
            subscriber = self._subscriber(version)
            try:
                await subscriber.connect()
            except BrokerLost as err:
                last = err
                continue
            if len(self._versions) > 1 and version is not self._versions[0]:
                log.info("broker refused MQTT 5; using 3.1.1")
                self._versions = [version]  # remember what this broker speaks
            return subscriber
        assert last is not None, "no protocol to try"
        raise last

    async def _session(self, owner: Supervised) -> None:
        # Subscribe first: what gateways publish meanwhile waits in our queue, not nowhere.
        subscriber = await self._connect()
        try:
            shared = self.options.subscription == "shared" or (
                self.options.subscription == "auto"
                and subscriber.version is MQTTProtocolVersion.MQTTv5
            )
            topic = ingest_subscription(shared)
            await subscriber.subscribe(topic, qos=1)
            async with contextlib.AsyncExitStack() as stack:
                # One connection per lane: an event is stored while a bulk batch is written.
                events = await self.open_database()
                stack.push_async_callback(events.close)
                bulk = await self.open_database()
                stack.push_async_callback(bulk.close)
                owner.up("subscribed")
                log.info("ingest subscribed",
                         extra={"topic": topic, "protocol": subscriber.version.name})
                await self._consume(events, bulk, subscriber)
        finally:
            await subscriber.close()

    async def _consume(
        self, events: AsyncConnection, bulk: AsyncConnection, subscriber: AckingSubscriber
    ) -> None:
        # A reader task sorts messages into the lanes as they come; each lane's batcher takes
        # from there, so what it waits on is a timeout on an event, not on the stream.
        lanes: Lanes[Received] = Lanes(limit=self.options.batch_messages,
                                       window_s=self.options.batch_ms / 1000,
                                       burst_gap_s=EVENT_BURST_GAP_S)
        event_came, bulk_came = asyncio.Event(), asyncio.Event()

        async def read() -> None:
            async for message in subscriber.messages():
                event = _is_event(message)
                lanes.arrive(message, event=event, at=time.monotonic())
                (event_came if event else bulk_came).set()

        try:
            async with asyncio.TaskGroup() as group:
                reader = group.create_task(read())
                group.create_task(self._lane(events, subscriber, lanes=lanes,
                                             take=lanes.next_events, came=event_came,
                                             reader=reader))
                group.create_task(self._lane(bulk, subscriber, lanes=lanes,
                                             take=lanes.next_bulk, came=bulk_came,
                                             reader=reader))
        except* (OSError, psycopg.OperationalError) as errors:
            raise errors.exceptions[0] from None

    async def _lane(
        self, conn: AsyncConnection, subscriber: AckingSubscriber, *, lanes: Lanes[Received],
        take: Callable[[float], list[Taken[Received]] | float | None], came: asyncio.Event,
        reader: asyncio.Task[None],
    ) -> None:
        """Store what one lane hands out, and acknowledge each message once it and everything
        that arrived before it is committed (cloud.ingest.lanes)."""
        confirming: asyncio.Task[None] | None = None
        try:
            while not reader.done():
                came.clear()  # before looking: an arrival after this wakes the wait below
                batch = take(time.monotonic())
                if not isinstance(batch, list):
                    wait = 1.0 if batch is None else max(0.0, batch - time.monotonic())
                    with contextlib.suppress(TimeoutError):
                        await timeouts.wait_for(came.wait(), wait)
                    continue
                started = time.perf_counter()
                result = await self.store(conn, [(t.message.topic, t.message.payload)
                                                 for t in batch])
                for message in lanes.committed(batch):  # only now: committed
                    subscriber.ack(message)
                # A confirmation waits for the broker's PUBACK (17 ms at p50 under the alerts
                # benchmark's load): it overlaps the next batch instead of holding it up. One
                # at a time, so a slow broker still slows ingest down.
                if confirming is not None:
                    await confirming
                stored = dict(result.stored)
                result.stored.clear()
                confirming = asyncio.create_task(self._confirm(subscriber, stored))
                self.totals.add(result)
                self.metrics.record(result, time.perf_counter() - started)
        finally:
            if confirming is not None:
                confirming.cancel()  # a no-op once done; the gateway resends what is unconfirmed
                with contextlib.suppress(asyncio.CancelledError, BrokerLost):
                    await confirming

    async def _confirm(
        self, subscriber: AckingSubscriber, stored: dict[tuple[str, str], list[int]]
    ) -> None:
        """Tell each gateway what is now committed, so it can forget it (cmd/stored)."""
        if not stored:
            return
        key = self._command_key
        assert key is not None  # loaded with the database connection that stored the batch
        now_us = self.options.clock.now_us()
        await asyncio.gather(*(
            subscriber.publish(
                cmd_topic(site, gateway, STORED_COMMAND),
                seal_command(key, site=site, gateway=gateway, name=STORED_COMMAND,
                             body=stored_body(seqs), issued_at_us=now_us),
                qos=1,
            )
            for (site, gateway), seqs in stored.items()
        ))


def _is_event(message: Received) -> bool:
    """On the events channel (``pw/v1/{site}/{gateway}/events``), by topic: no decoding."""
    parts = message.topic.split("/", 5)
    return len(parts) > 4 and parts[4] == Channel.EVENTS


def serve_metrics(metrics: IngestMetrics, port: int, host: str = "127.0.0.1") -> None:
    start_http_server(port, host, metrics.registry)
