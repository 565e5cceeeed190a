"""The gateway agent: runs the configured pipelines, signs what they emit, keeps it durable.

Pipelines call ``emit``; the agent signs the message with the gateway's key and a sequence
number from the outbox and stores it; the publisher sends it. Nothing here decides anything
about tags, plates or fences.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import aiomqtt
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from pydantic import BaseModel

from contract import (
    CHANNEL_OF,
    AgentHealthBody,
    Channel,
    GatewayStatusBody,
    MessageType,
    load_private_key,
    seal,
    status_topic,
    topic_for,
)
from edge import __version__
from edge.config import AgentCore, cloud_command_key
from edge.outbox import Outbox
from edge.pipelines import load_pipelines
from edge.publisher import Publisher, SessionAnnouncement, command_filter
from edge.refusals import REFUSALS, RefusalMetrics
from edge.rules_alarm import LocalAlarm
from edge.rules_local import EdgeRules, alert_of

log = logging.getLogger(__name__)


class Agent:
    def __init__(self, config: AgentCore) -> None:
        self.config = config
        self.site = config.site
        self.gateway = config.gateway
        self._key = load_private_key(config.key_file)
        self.outbox = Outbox(
            config.data_dir / "outbox.db",
            max_bytes=int(config.outbox.max_mb * 1024 * 1024),
            fsync=config.outbox.fsync,
        )
        self._session_started_us = self.now_us()
        self._command_handlers: dict[str, Callable[[bytes], None]] = {}
        self.rules = EdgeRules() if config.local_rules else None
        alarm = config.local_alarm
        self._alarm = (LocalAlarm(alarm.host, alarm.port, self.site, self.gateway)
                       if alarm is not None else None)
        self._alarm_tasks: set[asyncio.Task[None]] = set()
        self.publisher = Publisher(
            self.outbox,
            config.broker,
            client_id=config.broker.client_id or f"{config.site}.{config.gateway}",
            announcement=SessionAnnouncement(
                topic=status_topic(self.site, self.gateway),
                online=lambda: self._status("online"),
                offline=lambda: self._status("offline"),
            ),
            command_topic_filter=command_filter(self.site, self.gateway),
            command_key=cloud_command_key(config),
            site=self.site,
            gateway=self.gateway,
            on_command=self._dispatch_command,
        )

    # -- EdgeContext -------------------------------------------------------------------------
    def now_us(self) -> int:
        return time.time_ns() // 1000

    def emit(
        self, msg_type: MessageType, body: BaseModel, *, observed_at: datetime | None = None
    ) -> int:
        channel, subtopic = CHANNEL_OF[msg_type]
        topic = topic_for(self.site, self.gateway, channel, subtopic)
        fields = body.model_dump(mode="json")
        moment = observed_at or datetime.now(UTC)
        seq = self.outbox.put(
            topic,
            lambda seq: self._seal(seq, msg_type, fields, moment),
            is_event=channel is Channel.EVENTS,
        )
        self._apply_rules(msg_type, body, moment)
        return seq

    def _apply_rules(self, msg_type: MessageType, body: BaseModel, moment: datetime) -> None:
        """The cloud's correlation rules on local facts, so an alarm exists without the cloud.

        The engine always sees the facts (its windows must be current when the link drops), but
        decides only while the cloud is unreachable: the gateway does not know release
        approvals, so while connected the cloud's decision is the one that counts. Offline
        decisions are emitted like any alert (the cloud absorbs them into the one active alert
        per type and subject when the link returns) and sound the local alarm.
        """
        if self.rules is None or msg_type is MessageType.TAG_READS:
            return
        if msg_type is MessageType.ALERT and (body.evidence or {}).get("decided_at") == "edge":  # type: ignore[attr-defined]
            return  # our own rule output: not a new fact
        decisions = self.rules.on_emitted(msg_type, body, int(moment.timestamp() * 1e6))
        cloud_unreachable = not self.publisher.stats.connected
        for decision in decisions:
            alert = alert_of(decision)
            if alert is None or not cloud_unreachable:
                continue
            self.emit(MessageType.ALERT, alert)
            if self._alarm is not None:
                task = asyncio.ensure_future(self._sound(self._alarm, decision))
                self._alarm_tasks.add(task)
                task.add_done_callback(self._alarm_tasks.discard)

    async def _sound(self, alarm: LocalAlarm, decision: object) -> None:
        try:
            await alarm.sound(decision)  # type: ignore[arg-type]
        except (aiomqtt.MqttError, OSError) as err:
            log.error("local alarm could not be sounded", extra={"alarm": repr(alarm),
                                                                 "error": str(err)})

    def on_command(self, name: str, handler: Callable[[bytes], None]) -> None:
        self._command_handlers[name] = handler

    # -----------------------------------------------------------------------------------------
    def _seal(self, seq: int, msg_type: str, body: dict[str, Any], moment: datetime) -> bytes:
        return seal(
            self._key,
            site=self.site,
            gateway=self.gateway,
            seq=seq,
            type=msg_type,
            body=body,
            observed_at=moment,
        )

    def _status(self, state: str) -> bytes:
        body = GatewayStatusBody(
            state=state,
            agent_version=__version__,
            session_started_us=self._session_started_us,
        ).model_dump(mode="json")
        return self._seal(
            self.outbox.allocate_seq(), MessageType.GATEWAY_STATUS, body, datetime.now(UTC)
        )

    def _dispatch_command(self, topic: str, payload: bytes) -> None:
        name = topic.rsplit("/cmd/", 1)[-1]
        handler = self._command_handlers.get(name)
        if handler is None:
            REFUSALS.refuse("cloud_command", "no_handler", f"cmd/{name}")
            return
        try:
            handler(payload)
        except ValueError as err:  # signed by the cloud, yet not what this agent understands
            REFUSALS.refuse("cloud_command", "bad_body", f"cmd/{name}: {err}")

    def health(self) -> AgentHealthBody:
        return AgentHealthBody(
            outbox_depth=self.outbox.depth,
            outbox_bytes=self.outbox.bytes,
            dropped_telemetry=self.outbox.dropped_telemetry,
            reconnects=self.publisher.stats.reconnects,
            published=self.publisher.stats.published,
            confirmed=self.publisher.stats.confirmed,
            awaiting_confirmation=self.outbox.counts()["awaiting_confirmation"],
        )

    async def _report_health(self) -> None:
        while True:
            await asyncio.sleep(self.config.health_interval_s)
            self.emit(MessageType.AGENT_HEALTH, self.health())

    async def run(self) -> None:
        pipelines = load_pipelines()
        if self.config.metrics.port is not None:
            registry = CollectorRegistry()
            registry.register(AgentMetrics(self))
            registry.register(RefusalMetrics())
            start_http_server(self.config.metrics.port, self.config.metrics.host, registry)
        log.info(
            "edge agent starting",
            extra={"site": self.site, "gateway": self.gateway, "outbox_depth": self.outbox.depth},
        )
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self.publisher.run(), name="publisher")
                group.create_task(self._report_health(), name="health")
                for name, pipeline in pipelines.items():
                    section = getattr(self.config, name, None)
                    if section is not None:
                        group.create_task(pipeline.run(section, self), name=name)
        finally:
            self.outbox.close()


class AgentMetrics(Collector):
    """Prometheus view of the agent, read at scrape time (no global registry)."""

    def __init__(self, agent: Agent) -> None:
        self._agent = agent

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        a = self._agent
        yield GaugeMetricFamily("pw_edge_outbox_depth", "Messages waiting", value=a.outbox.depth)
        yield GaugeMetricFamily("pw_edge_outbox_bytes", "Bytes waiting", value=a.outbox.bytes)
        yield CounterMetricFamily(
            "pw_edge_outbox_dropped_telemetry",
            "Telemetry messages dropped because the outbox was full",
            value=a.outbox.dropped_telemetry,
        )
        yield CounterMetricFamily(
            "pw_edge_reconnects", "Broker reconnections", value=a.publisher.stats.reconnects
        )
        yield CounterMetricFamily(
            "pw_edge_confirmed", "Messages the cloud confirmed stored",
            value=a.publisher.stats.confirmed,
        )
        yield CounterMetricFamily(
            "pw_edge_resent_lost", "Messages resent because the cloud never confirmed them",
            value=a.publisher.stats.resent_lost,
        )
        yield CounterMetricFamily(
            "pw_edge_published", "Messages acknowledged by the broker",
            value=a.publisher.stats.published,
        )
        yield GaugeMetricFamily(
            "pw_edge_broker_connected", "1 when connected",
            value=int(a.publisher.stats.connected),
        )
