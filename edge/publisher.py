"""Sends what the outbox holds to the broker, in order; forgets it when the cloud confirms.

One supervised task (ops/supervised.py, which retries with backoff): connect (MQTT 5, falling
back to 3.1.1), announce ``online`` (retained, with a last will that says ``offline``), then
keep up to ``in_flight`` QoS 1 publishes outstanding. After a reconnect the backlog (everything
stored before the connection came back) drains oldest first while messages produced since keep
flowing: each round takes live messages first and fills the rest of the window from the backlog.
Rows leave the outbox only on the cloud's ``cmd/stored`` confirmation
(contract/confirmations.py); what a dropped connection or a forgetful broker lost is sent again,
and the cloud absorbs duplicates by (gateway, seq).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import aiomqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from contract import (
    STORED_COMMAND,
    CommandOrder,
    CommandRefused,
    cmd_topic,
    decode_stored,
    open_command,
)
from edge.config import BrokerConfig
from edge.outbox import Outbox, OutboxMessage
from edge.refusals import REFUSALS
from ops import timeouts
from ops.backoff import Backoff
from ops.clock import SYSTEM_CLOCK, Clock
from ops.mqtt import NO_DELAY, first_accepted, persistent_session_kwargs, protocol_candidates
from ops.supervised import Health, Supervised

log = logging.getLogger(__name__)


@dataclass
class PublisherStats:
    published: int = 0  # PUBACKs received
    confirmed: int = 0  # rows the cloud confirmed stored
    resent_lost: int = 0  # acked rows presumed lost in the broker and sent again
    reconnects: int = 0
    connected: bool = False


LOSS_CHECK_EVERY_S = 5.0
# With no confirmation at all (no subscriber yet, or the broker lost everything), resend what
# awaits confirmation after `confirm_silence_s`, doubling up to an hour so a long ingest outage
# does not flood the broker's queue with copies.
SILENCE_RESEND_MAX_S = 3600.0


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
        command_key: Ed25519PublicKey,
        site: str,
        gateway: str,
        on_command: Callable[[str, bytes], None] | None = None,
        clock: Clock = SYSTEM_CLOCK,
        delivery_clock: Clock | None = None,
    ) -> None:
        # The agent's clock dates what a command may be (not from the future). The pacing of
        # resends (confirmation silence and grace) is ``delivery_clock``, by default the same:
        # a gateway on a simulated clock still talks to a broker and a cloud that answer in
        # real time, and must not resend because simulated minutes flew by.
        self._clock = clock
        self._delivery = delivery_clock or clock
        self._outbox = outbox
        self._broker = broker
        self._client_id = client_id
        self._announcement = announcement
        self._command_filter = command_topic_filter
        self._on_command = on_command
        self._command_key = command_key
        self._site, self._gateway = site, gateway
        self._command_order = CommandOrder()
        self._wake = asyncio.Event()
        self._protocols = protocol_candidates(broker.protocol)
        self.stats = PublisherStats()
        self._silence_s = self._broker.confirm_silence_s
        self._quiet_since = self._delivery.monotonic()  # last confirmation, or last silence resend
        outbox.on_put(self._wake.set)
        self.owner = Supervised(
            "broker", self._session, on_health=self._on_health,
            retry_on=(aiomqtt.MqttError,), backoff=Backoff(initial_s=0.2, maximum_s=15),
        )

    async def run(self) -> None:
        async with self.owner:
            await self.owner.wait()

    def _on_health(self, health: Health) -> None:
        self.stats.connected = health.online

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
            socket_options=NO_DELAY,
            timeout=10,
            tls_params=aiomqtt.TLSParameters() if self._broker.tls else None,
            **persistent_session_kwargs(protocol),
        )
        client.pending_calls_threshold = self._broker.in_flight + 10  # a full window is normal
        return client

    async def _session(self, owner: Supervised) -> None:
        if owner.sessions > 1:
            self.stats.reconnects += 1
            urls = self._broker.urls
            if len(urls) > 1:  # a cluster: after a lost connection, the next node in turn
                self._broker = self._broker.at(urls[(urls.index(self._broker.url) + 1)
                                                    % len(urls)])
        try:
            async with first_accepted(self._client, self._protocols) as (client, protocol):
                if len(self._protocols) > 1 and protocol is not self._protocols[0]:
                    log.info("broker refused MQTT 5; using 3.1.1")
                    self._protocols = [protocol]  # remember what this broker speaks
                try:
                    await self._announced_session(owner, client)
                finally:
                    if self.stats.connected:  # a clean stop: say so, not leave "online" retained
                        with contextlib.suppress(aiomqtt.MqttError, OSError, TimeoutError):
                            await timeouts.wait_for(client.publish(
                                self._announcement.topic, self._announcement.offline(), qos=1,
                                retain=True), 2)
        finally:
            self.stats.connected = False  # at once, even before the owner reports it

    async def _announced_session(self, owner: Supervised, client: aiomqtt.Client) -> None:
        await client.publish(
            self._announcement.topic, self._announcement.online(), qos=1, retain=True
        )
        await client.subscribe(self._command_filter, qos=1)
        owner.up("connected")
        self.stats.connected = True
        log.info("connected to broker", extra={"broker": self._broker.url})
        resent = self._outbox.resend_unacked()
        if resent:
            log.info("unacknowledged messages will be sent again", extra={"count": resent})
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._watch_commands(client))
                group.create_task(self._drain(client))
        except* aiomqtt.MqttError as errors:
            raise errors.exceptions[0] from None

    async def _watch_commands(self, client: aiomqtt.Client) -> None:
        # Iterating messages is also how a dropped connection surfaces (MqttError).
        async for message in client.messages:
            payload = message.payload
            if not isinstance(payload, bytes | bytearray):
                continue
            self.on_command_message(str(message.topic), bytes(payload))

    def on_command_message(self, topic: str, payload: bytes) -> None:
        """Act on a cmd/ message only when the cloud signed it for this gateway and command."""
        name = topic.rsplit("/cmd/", 1)[-1]
        try:
            command = open_command(
                payload, public_key=self._command_key, site=self._site, gateway=self._gateway,
                name=name, now_us=self._clock.now_us(),
            )
            if name == STORED_COMMAND:
                self._on_confirmation(decode_stored(command.body))
                return
            self._command_order.admit(command)
        except CommandRefused as err:
            REFUSALS.refuse("cloud_command", err.reason, f"{topic}: {err}")
            return
        except ValueError as err:  # a signed confirmation the gateway cannot read
            REFUSALS.refuse("cloud_command", "bad_body", f"{topic}: {err}")
            return
        if self._on_command is not None:
            self._on_command(topic, json.dumps(command.body).encode())

    def _on_confirmation(self, ranges: list[tuple[int, int]]) -> None:
        self.stats.confirmed += self._outbox.confirm(ranges)
        self._quiet_since = self._delivery.monotonic()
        self._silence_s = self._broker.confirm_silence_s

    async def _drain(self, client: aiomqtt.Client) -> None:
        window = self._broker.in_flight
        backlog_end = self._outbox.last_seq  # stored before this connection: the backlog
        in_flight: set[asyncio.Task[int]] = set()
        next_loss_check = self._delivery.monotonic() + LOSS_CHECK_EVERY_S
        try:
            while True:
                # Clear before looking: a put after this point wakes the wait below.
                self._wake.clear()
                if self._delivery.monotonic() >= next_loss_check:
                    self._resend_lost()
                    next_loss_check = self._delivery.monotonic() + LOSS_CHECK_EVERY_S
                room = window - len(in_flight)
                if room > 0:
                    batch = self._outbox.pending(after=backlog_end, limit=room)
                    if len(batch) < room:
                        batch += self._outbox.pending(
                            after=0, up_to=backlog_end, limit=room - len(batch)
                        )
                    self._outbox.mark_sent([m.seq for m in batch])
                    for message in batch:
                        in_flight.add(asyncio.create_task(self._publish(client, message)))
                waker = asyncio.create_task(self._wake.wait())
                done, _ = await asyncio.wait(
                    {*in_flight, waker}, return_when=asyncio.FIRST_COMPLETED,
                    timeout=LOSS_CHECK_EVERY_S,
                )
                waker.cancel()
                done.discard(waker)
                in_flight -= done
                self._settle(done)
        finally:
            for task in in_flight:
                task.cancel()

    def _resend_lost(self) -> None:
        if self._delivery.monotonic() - self._quiet_since > self._silence_s:
            again = self._outbox.resend_awaiting()
            self._quiet_since = self._delivery.monotonic()
            self._silence_s = min(self._silence_s * 2, SILENCE_RESEND_MAX_S)
            if again:
                self.stats.resent_lost += again
                log.warning("no delivery confirmation from the cloud lately; resending",
                            extra={"count": again, "next_after_s": self._silence_s})
            return
        cutoff_us = self._delivery.now_us() - int(self._broker.confirm_grace_s * 1_000_000)
        lost = self._outbox.resend_lost(cutoff_us)
        if lost:
            self.stats.resent_lost += lost
            log.warning(
                "messages the broker acknowledged were never confirmed by the cloud; resending",
                extra={"count": lost, "confirmed_up_to": self._outbox.max_confirmed},
            )

    def _settle(self, done: set[asyncio.Task[int]]) -> None:
        acked = [t.result() for t in done if t.exception() is None]
        self._outbox.mark_acked(acked)
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
