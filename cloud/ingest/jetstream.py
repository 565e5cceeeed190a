"""Ingest from a NATS cluster: durable work-queue consumers shared by every ingest worker.

Gateways keep speaking MQTT, to any node of the cluster (NATS's MQTT listener). NATS maps the
topic ``pw/v1/{site}/{gateway}/...`` to the subject ``pw.v1.{site}.{gateway}...``. Two streams
(replicated to ``replicas`` nodes, file storage, work-queue retention) capture what gateways
send, never ``cmd``:

- ``PW_INGEST``: events and telemetry. Workers pull batches from the one durable consumer
  ``ingest`` in parallel. Every table they write is ordered by observation time or absorbs
  repeats by (gateway, seq), so two workers storing one gateway's batches side by side (or a
  batch coming again after a worker died) write the same rows.
- ``PW_STATUS``: online/offline. The last will is sealed when its connection starts, so status
  can only be applied in the order the broker took it (as the MQTT consumer does): its
  consumer hands out one message at a time (``max_ack_pending=1``) over all workers, and the
  next only after the previous was committed and acknowledged.

Messages are decided and stored through the same code as the MQTT consumer
(:meth:`cloud.ingest.consumer.Ingest.store`) and acknowledged only after the commit. A worker
that dies leaves its batch unacknowledged; JetStream delivers it again after ``ack_wait`` to
another worker and (gateway, seq) absorbs any that had in fact been stored.

Confirmations (``cmd/stored``) go back as plain NATS publishes on the gateway's command subject;
the node the gateway is connected to hands them to its MQTT subscription. A confirmation lost on
the way costs only a resend from the edge, which the cloud confirms again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import nats
import nats.errors
import nats.js.errors
import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from psycopg import AsyncConnection

from cloud.command_key import load_command_key_from
from cloud.ingest.consumer import Ingest, IngestMetrics, IngestOptions
from cloud.ingest.gateways import gateway_change_listener
from cloud.ingest.store import BatchResult
from contract import STORED_COMMAND, TOPIC_ROOT, cmd_topic, seal_command, stored_body
from ops.backoff import Backoff

log = logging.getLogger(__name__)

_ROOT = TOPIC_ROOT.replace("/", ".")


@dataclass(frozen=True)
class WorkQueue:
    stream: str
    subjects: tuple[str, ...]
    durable: str
    in_order: bool  # one message at a time over all workers


# What gateways send to the cloud; cmd/ (cloud to edge) stays out of the work queues.
READINGS = WorkQueue("PW_INGEST", (f"{_ROOT}.*.*.events", f"{_ROOT}.*.*.telemetry.>"),
                     "ingest", in_order=False)
STATUS = WorkQueue("PW_STATUS", (f"{_ROOT}.*.*.status",), "status", in_order=True)
WORK_QUEUES = (READINGS, STATUS)


def nats_servers(url: str) -> list[str]:
    """``nats://a:4222,b:4222`` (or ``nats://a:4222,nats://b:4222``) -> one URL per node."""
    servers = []
    for entry in filter(None, (p.strip() for p in url.split(","))):
        server = entry if "://" in entry else f"nats://{entry}"
        parts = urlsplit(server)
        if parts.scheme not in ("nats", "tls") or not parts.hostname:
            raise ValueError(f"broker URL {server!r} must look like nats://host:4222")
        servers.append(server)
    if not servers:
        raise ValueError("no NATS server in the broker URL")
    return servers


def subject_to_topic(subject: str) -> str:
    # Identifiers may hold '.', which NATS 2.9's MQTT listener refuses in a topic anyway; so a
    # subject under pw.v1 has exactly one MQTT topic.
    return subject.replace(".", "/")


def topic_to_subject(topic: str) -> str:
    return topic.replace("/", ".")


@dataclass(frozen=True)
class JetStreamOptions:
    replicas: int = 3
    ack_wait_s: float = 30.0
    # Unacknowledged messages the consumer hands out at once, over all workers.
    max_ack_pending: int = 20_000
    max_age_s: float = 7 * 24 * 3600  # what no worker took within a week is dropped


class JetStreamIngest:
    """One ingest worker; run as many as needed with the same ``nats_url``."""

    def __init__(self, options: IngestOptions, stream: JetStreamOptions | None = None,
                 metrics: IngestMetrics | None = None) -> None:
        self.options = options
        self.stream = stream or JetStreamOptions()
        self.servers = nats_servers(options.mqtt_url)
        # The MQTT consumer's decide-and-store path, without its broker side.
        self.ingest = Ingest(options, metrics)
        self.metrics = self.ingest.metrics
        self.totals = self.ingest.totals
        self._command_key: Ed25519PrivateKey | None = None
        self._storing = asyncio.Lock()
        self._conn: AsyncConnection | None = None
        self.subscribed = False  # bound to the streams, which exist from then on

    async def run(self) -> None:
        async with gateway_change_listener(self.options.database_url, self.ingest._gateways):
            await self._run()

    async def _run(self) -> None:
        nc: NatsClient | None = None
        try:
            nc = await self._connect()
            backoff = Backoff(initial_s=0.2, maximum_s=5)
            while True:
                try:
                    await self._consume(nc)
                except (nats.errors.Error, nats.js.errors.Error, TimeoutError,
                        psycopg.OperationalError) as err:
                    # No stream leader for a moment (a node died), the connection is moving
                    # to another node (the client reconnects by itself), or the database went
                    # away: the batch in hand was not acknowledged and comes again.
                    self.metrics.connected.set(0)
                    delay = backoff.next_delay()
                    log.warning("jetstream unavailable; retrying",
                                extra={"error": repr(err), "retry_in_s": round(delay, 2)})
                    await asyncio.sleep(delay)
        finally:
            self.metrics.connected.set(0)
            if self._conn is not None:
                await self._conn.close()
                self._conn = None
            if nc is not None:
                with contextlib.suppress(nats.errors.Error, OSError):
                    await nc.close()

    async def _connect(self) -> NatsClient:
        async def disconnected() -> None:
            self.metrics.connected.set(0)
            log.warning("disconnected from NATS")

        async def reconnected() -> None:
            log.info("reconnected to NATS", extra={"server": _netloc(nc)})

        async def error(err: Exception) -> None:
            log.warning("nats client error", extra={"error": repr(err)})

        backoff = Backoff(initial_s=0.2, maximum_s=15)
        while True:
            try:
                nc = await nats.connect(
                    servers=self.servers, name=self.options.client_id,
                    user=self.options.mqtt_username, password=self.options.mqtt_password,
                    max_reconnect_attempts=-1, reconnect_time_wait=0.5,
                    disconnected_cb=disconnected, reconnected_cb=reconnected, error_cb=error,
                )
                return nc
            except (nats.errors.Error, OSError) as err:
                delay = backoff.next_delay()
                log.warning("NATS unreachable; retrying",
                            extra={"error": repr(err), "retry_in_s": round(delay, 2)})
                await asyncio.sleep(delay)

    async def ensure_streams(self, nc: NatsClient) -> None:
        """Create the streams and their durable consumers if missing (idempotent)."""
        js = nc.jetstream()
        for queue in WORK_QUEUES:
            try:
                await js.stream_info(queue.stream)
            except nats.js.errors.NotFoundError:
                with contextlib.suppress(nats.js.errors.BadRequestError):  # another worker won
                    await js.add_stream(StreamConfig(
                        name=queue.stream, subjects=list(queue.subjects),
                        retention=RetentionPolicy.WORK_QUEUE, storage=StorageType.FILE,
                        num_replicas=self.stream.replicas, max_age=self.stream.max_age_s,
                    ))
            try:
                await js.consumer_info(queue.stream, queue.durable)
            except nats.js.errors.NotFoundError:
                with contextlib.suppress(nats.js.errors.BadRequestError):
                    await js.add_consumer(queue.stream, ConsumerConfig(
                        durable_name=queue.durable, ack_policy=AckPolicy.EXPLICIT,
                        deliver_policy=DeliverPolicy.ALL, ack_wait=self.stream.ack_wait_s,
                        max_ack_pending=1 if queue.in_order else self.stream.max_ack_pending,
                        max_deliver=-1,
                    ))

    async def _consume(self, nc: NatsClient) -> None:
        await self.ensure_streams(nc)
        js = nc.jetstream()
        pulls = [(queue, await js.pull_subscribe_bind(durable=queue.durable, stream=queue.stream))
                 for queue in WORK_QUEUES]
        self.metrics.connected.set(1)
        self.subscribed = True
        log.info("ingest subscribed", extra={"streams": [q.stream for q in WORK_QUEUES],
                                             "server": _netloc(nc)})
        try:
            async with asyncio.TaskGroup() as group:
                for queue, pull in pulls:
                    group.create_task(self._pull(nc, queue, pull))
        except* (nats.errors.Error, nats.js.errors.Error, TimeoutError,
                 psycopg.OperationalError) as errors:
            raise errors.exceptions[0] from None
        finally:
            for _, pull in pulls:
                with contextlib.suppress(nats.errors.Error, OSError):
                    await pull.unsubscribe()

    async def _pull(self, nc: NatsClient, queue: WorkQueue,
                    pull: JetStreamContext.PullSubscription) -> None:
        limit = 1 if queue.in_order else self.options.batch_messages
        window = max(self.options.batch_ms / 1000, 0.01)
        while True:
            # Idle, wait for one message; then take what else comes within the batch window
            # (a pull for `limit` waits until it has them all or its time is up).
            try:
                batch = await pull.fetch(1, timeout=5.0)
            except nats.errors.TimeoutError:
                continue
            if limit > 1:
                with contextlib.suppress(nats.errors.TimeoutError):
                    batch += await pull.fetch(limit - 1, timeout=window)
            await self._handle(nc, batch)

    async def _handle(self, nc: NatsClient, batch: list[Msg]) -> None:
        async with self._storing:  # one database connection: one batch at a time
            started = time.perf_counter()
            raw = [(subject_to_topic(m.subject), m.data) for m in batch]
            conn = await self._database()
            try:
                result = await self.ingest.store(conn, raw)  # committed when it returns
            except psycopg.OperationalError:
                await conn.close()  # the next batch opens another; this one comes again
                self._conn = None
                raise
            for message in batch:
                await message.ack()
            await self._confirm(nc, result)
            self.totals.add(result)
            self.metrics.record(result, time.perf_counter() - started)

    async def _database(self) -> AsyncConnection:
        if self._conn is None or self._conn.closed:
            self._conn = await self.ingest.open_database()
        return self._conn

    async def _confirm(self, nc: NatsClient, result: BatchResult) -> None:
        """Tell each gateway what is now committed (cmd/stored), through the node it is on."""
        if not result.stored:
            return
        if self._command_key is None:
            self._command_key = await asyncio.to_thread(
                load_command_key_from, self.options.database_url)
        now_us = time.time_ns() // 1000
        for (site, gateway), seqs in result.stored.items():
            await nc.publish(
                topic_to_subject(cmd_topic(site, gateway, STORED_COMMAND)),
                seal_command(self._command_key, site=site, gateway=gateway, name=STORED_COMMAND,
                             body=stored_body(seqs), issued_at_us=now_us),
            )
        result.stored.clear()


def _netloc(nc: NatsClient) -> str:
    url = nc.connected_url
    return url.netloc if url is not None else "-"
