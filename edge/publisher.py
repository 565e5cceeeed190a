"""Sends what the outbox holds to the broker, in order, and forgets it only after PUBACK.

One supervised task: connect (MQTT 5, falling back to 3.1.1), announce ``online`` (retained,
with a last will that says ``offline``), then keep up to ``in_flight`` QoS 1 publishes
outstanding. After a reconnect the backlog (everything stored before the connection came back)
drains oldest first while messages produced since keep flowing: each round takes live messages
first and fills the rest of the window from the backlog. A lost connection leaves unacknowledged
rows in the outbox; they are sent again and the cloud absorbs the duplicates by (gateway, seq).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import aiomqtt

from contract import cmd_topic
from edge.config import BrokerConfig
from edge.outbox import Outbox, OutboxMessage
from ops.backoff import Backoff
from ops.mqtt import persistent_session_kwargs, protocol_candidates

log = logging.getLogger(__name__)


@dataclass
class PublisherStats:
    published: int = 0
    reconnects: int = 0
    connected: bool = False


@dataclass(frozen=True)
class SessionAnnouncement:
    """The retained status topic and the signed payloads to put there."""

    topic: str
    online: Callable[[], bytes]
    offline: Callable[[], bytes]


class Publisher:
    def __init__(
        self,
        outbox: Outbox,
        broker: BrokerConfig,
        *,
        client_id: str,
        announcement: SessionAnnouncement,
        command_topic_filter: str,
        on_command: Callable[[str, bytes], None] | None = None,
    ) -> None:
        self._outbox = outbox
        self._broker = broker
        self._client_id = client_id
        self._announcement = announcement
        self._command_filter = command_topic_filter
        self._on_command = on_command
        self._wake = asyncio.Event()
        self._protocols = protocol_candidates(broker.protocol)
        self.stats = PublisherStats()
        outbox.on_put(self._wake.set)

    async def run(self) -> None:
        backoff = Backoff(initial_s=0.2, maximum_s=15)
        while True:
            try:
                await self._session()
            except aiomqtt.MqttError as err:
                self.stats.connected = False
                delay = backoff.next_delay()
                log.warning(
                    "broker connection lost; retrying",
                    extra={"error": str(err), "retry_in_s": round(delay, 2)},
                )
                self.stats.reconnects += 1
                await asyncio.sleep(delay)
                continue
            backoff.reset()

    def _client(self, protocol: aiomqtt.ProtocolVersion) -> aiomqtt.Client:
        will = aiomqtt.Will(
            self._announcement.topic, self._announcement.offline(), qos=1, retain=True
        )
        client = aiomqtt.Client(
            self._broker.host,
            self._broker.port,
            username=self._broker.username,
            password=self._broker.password,
            identifier=self._client_id,
            keepalive=self._broker.keepalive_s,
            will=will,
            max_inflight_messages=self._broker.in_flight,
            timeout=10,
            tls_params=aiomqtt.TLSParameters() if self._broker.tls else None,
            **persistent_session_kwargs(protocol),
        )
        client.pending_calls_threshold = self._broker.in_flight + 10  # a full window is normal
        return client

    async def _connect(self) -> aiomqtt.Client:
        last_error: aiomqtt.MqttError | None = None
        for protocol in self._protocols:
            client = self._client(protocol)
            try:
                await client.__aenter__()
            except aiomqtt.MqttError as err:
                last_error = err
                continue
            if len(self._protocols) > 1 and protocol is not self._protocols[0]:
                log.info("broker refused MQTT 5; using 3.1.1")
                self._protocols = [protocol]  # remember what this broker speaks
            return client
        assert last_error is not None
        raise last_error

    async def _session(self) -> None:
        client = await self._connect()
        try:
            self.stats.connected = True
            log.info("connected to broker", extra={"broker": self._broker.url})
            await client.publish(
                self._announcement.topic, self._announcement.online(), qos=1, retain=True
            )
            await client.subscribe(self._command_filter, qos=1)
            async with asyncio.TaskGroup() as group:
                group.create_task(self._watch_commands(client))
                group.create_task(self._drain(client))
        except* aiomqtt.MqttError as errors:
            raise errors.exceptions[0] from None
        finally:
            self.stats.connected = False
            with contextlib.suppress(aiomqtt.MqttError, OSError):
                await client.__aexit__(None, None, None)

    async def _watch_commands(self, client: aiomqtt.Client) -> None:
        # Iterating messages is also how a dropped connection surfaces (MqttError).
        async for message in client.messages:
            payload = message.payload
            if self._on_command is not None and isinstance(payload, bytes | bytearray):
                self._on_command(str(message.topic), bytes(payload))

    async def _drain(self, client: aiomqtt.Client) -> None:
        window = self._broker.in_flight
        backlog_end = self._outbox.last_seq  # stored before this connection: the backlog
        backlog_cursor = 0
        live_cursor = backlog_end
        in_flight: set[asyncio.Task[int]] = set()
        try:
            while True:
                # Clear before looking: a put after this point wakes the wait below.
                self._wake.clear()
                room = window - len(in_flight)
                if room > 0:
                    batch = self._outbox.pending(after=live_cursor, limit=room)
                    if batch:
                        live_cursor = batch[-1].seq
                    room -= len(batch)
                    if room > 0 and backlog_cursor < backlog_end:
                        old = self._outbox.pending(
                            after=backlog_cursor, up_to=backlog_end, limit=room
                        )
                        backlog_cursor = old[-1].seq if old else backlog_end
                        batch.extend(old)
                    for message in batch:
                        in_flight.add(asyncio.create_task(self._publish(client, message)))
                if not in_flight:
                    await self._wake.wait()
                    continue
                waker = asyncio.create_task(self._wake.wait())
                done, _ = await asyncio.wait(
                    {*in_flight, waker}, return_when=asyncio.FIRST_COMPLETED
                )
                waker.cancel()
                done.discard(waker)
                in_flight -= done
                self._settle(done)
        finally:
            for task in in_flight:
                task.cancel()

    def _settle(self, done: set[asyncio.Task[int]]) -> None:
        acked = [t.result() for t in done if t.exception() is None]
        self._outbox.acknowledge(acked)
        self.stats.published += len(acked)
        for task in done:
            if (error := task.exception()) is not None:
                raise error

    async def _publish(self, client: aiomqtt.Client, message: OutboxMessage) -> int:
        await client.publish(
            message.topic, message.payload, qos=1, retain=message.retain, timeout=math.inf
        )
        return message.seq


def command_filter(site: str, gateway: str) -> str:
    return cmd_topic(site, gateway, "#")
