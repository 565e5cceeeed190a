"""The gateway agent: runs the configured pipelines, signs what they emit, keeps it durable.

Pipelines call ``emit``; the agent signs the message with the gateway's key and a sequence
number from the outbox and stores it; the publisher sends it. Beside ``emit`` (which only seals
and stores), the agent's judging loop hands what was emitted, and what pipelines ``observe``,
to the one alerting stage (edge/alerting.py) and emits the alerts it decides. Nothing here
decides anything about tags, plates or fences.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiomqtt
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from pydantic import BaseModel, ValidationError

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
from decisions.rules import default_rules
from decisions.vehicles import AuthorisedVehicles
from edge import __version__
from edge.alerting import FACT_TYPES, Alarm, EdgeAlerting, Observation, Verdict
from edge.config import AgentCore, cloud_command_key
from edge.outbox import Outbox
from edge.pipelines import load_pipelines
from edge.publisher import Publisher, SessionAnnouncement, command_filter
from edge.refusals import REFUSALS, RefusalMetrics
from edge.siren import LocalSiren
from edge.trackers.releases import COMMAND as RELEASES_COMMAND
from edge.trackers.releases import parse_release_plan
from ops.clock import SYSTEM_CLOCK, Clock

log = logging.getLogger(__name__)

TICK_S = 1.0  # how often the alerting stage looks at absences without a new message
GATE_LIST_COMMAND = "authorised_vehicles"  # the camera pipeline reads the same command


@dataclass(frozen=True, slots=True)
class _Emitted:
    msg_type: MessageType
    body: BaseModel
    at_us: int


class Agent:
    def __init__(self, config: AgentCore, *, clock: Clock = SYSTEM_CLOCK,
                 delivery_clock: Clock | None = None) -> None:
        self.config = config
        # Every decision in the agent and its pipelines reads this clock (ops/clock.py): the
        # system's in production, a simulated one when a scenario player drives the gateway.
        # The uplink's pacing (outbox sent times, resends) reads ``delivery_clock`` (default:
        # the same); on a simulated clock it stays real, as the broker and cloud answer in it.
        self.clock = clock
        delivery = delivery_clock or clock
        self.site = config.site
        self.gateway = config.gateway
        self._key = load_private_key(config.key_file)
        self.outbox = Outbox(
            config.data_dir / "outbox.db",
            max_bytes=int(config.outbox.max_mb * 1024 * 1024),
            fsync=config.outbox.fsync,
            clock_us=delivery.now_us,
        )
        self._session_started_us = self.now_us()
        self._command_handlers: dict[str, list[Callable[[bytes], None]]] = {}
        self._gate_list_file = config.data_dir / "authorised_vehicles.json"
        self.alerting = EdgeAlerting(default_rules() if config.local_rules else None,
                                     gate_list=self._stored_gate_list(),
                                     absence_window_s=config.alerting.absence_window_s,
                                     absence_windows=config.alerting.lots)
        # What the judging loop has yet to hand the alerting stage, in emission order.
        self._seen: asyncio.Queue[_Emitted | Observation] = asyncio.Queue()
        self.on_command(GATE_LIST_COMMAND, self._gate_list_received)
        self.on_command(RELEASES_COMMAND, self._releases_received)
        alarm = config.local_alarm
        self._siren = (LocalSiren(alarm.host, alarm.port, self.site, self.gateway)
                       if alarm is not None else None)
        self.alarms_sounded = 0
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
            clock=clock,
            delivery_clock=delivery,
        )

    # -- EdgeContext -------------------------------------------------------------------------
    def now_us(self) -> int:
        return self.clock.now_us()

    def emit(
        self, msg_type: MessageType, body: BaseModel, *, observed_at: datetime | None = None
    ) -> int:
        channel, subtopic = CHANNEL_OF[msg_type]
        topic = topic_for(self.site, self.gateway, channel, subtopic)
        fields = body.model_dump(mode="json")
        moment = observed_at or self.clock.now()
        seq = self.outbox.put(
            topic,
            lambda seq: self._seal(seq, msg_type, fields, moment),
            is_event=channel is Channel.EVENTS,
        )
        if msg_type in FACT_TYPES:  # only what the stage reads waits for it (not tag reads)
            self._seen.put_nowait(_Emitted(msg_type, body, int(moment.timestamp() * 1e6)))
        return seq

    def observe(self, seen: Observation) -> None:
        self._seen.put_nowait(seen)

    def on_command(self, name: str, handler: Callable[[bytes], None]) -> None:
        # Several parts may follow one command (the gate list: cameras and alerting).
        self._command_handlers.setdefault(name, []).append(handler)

    def command(self, name: str, payload: bytes) -> None:
        """Act on a ``cmd/{name}`` body the publisher verified as the cloud's."""
        handlers = self._command_handlers.get(name)
        if not handlers:
            REFUSALS.refuse("cloud_command", "no_handler", f"cmd/{name}")
            return
        for handler in handlers:
            try:
                handler(payload)
            except ValueError as err:  # signed by the cloud, yet not what this agent understands
                REFUSALS.refuse("cloud_command", "bad_body", f"cmd/{name}: {err}")

    # -- the alerting stage, fed outside emit --------------------------------------------------
    def judge_seen(self) -> None:
        """Hand the alerting stage everything emitted or observed since the last call, and
        emit what it decides (its alerts come back here as facts for the rules)."""
        while not self._seen.empty():
            self._judge_one(self._seen.get_nowait())

    def _judge_one(self, seen: _Emitted | Observation) -> None:
        if isinstance(seen, _Emitted):
            verdict = self.alerting.on_emitted(seen.msg_type, seen.body, seen.at_us,
                                               cloud_reachable=self.publisher.stats.connected)
        else:
            verdict = self.alerting.on_observed(
                seen, cloud_reachable=self.publisher.stats.connected)
        self._act(verdict)

    async def _judge(self) -> None:
        while True:
            # Woken at least every TICK_S of the agent's clock: an absence becomes theft when
            # its window ends, with or without a new message (on a simulated clock too).
            with contextlib.suppress(TimeoutError):
                self._judge_one(await self.clock.wait_for(self._seen.get(), TICK_S))
            self.judge_seen()
            self._act(self.alerting.tick(self.now_us(),
                                         cloud_reachable=self.publisher.stats.connected))

    def _act(self, verdict: Verdict) -> None:
        for alert in verdict.alerts:
            self.emit(MessageType.ALERT, alert)
        if self._siren is None:
            return
        for alarm in verdict.alarms:
            task = asyncio.ensure_future(self._sound(self._siren, alarm))
            self._alarm_tasks.add(task)
            task.add_done_callback(self._alarm_tasks.discard)

    async def _sound(self, siren: LocalSiren, alarm: Alarm) -> None:
        try:
            await siren.sound(alarm)
            self.alarms_sounded += 1
        except (aiomqtt.MqttError, OSError) as err:
            log.error("local alarm could not be sounded", extra={"siren": repr(siren),
                                                                 "error": str(err)})

    def _stored_gate_list(self) -> AuthorisedVehicles | None:
        try:
            return AuthorisedVehicles.load(self._gate_list_file)
        except FileNotFoundError:
            return None
        except (OSError, ValidationError) as err:
            log.error("stored gate list unreadable; waiting for the cloud's",
                      extra={"path": str(self._gate_list_file), "error": str(err)[:500]})
            return None

    def _gate_list_received(self, payload: bytes) -> None:
        try:
            vehicles = AuthorisedVehicles.model_validate_json(payload)
        except ValidationError as err:
            raise ValueError(f"gate list unreadable: {str(err)[:500]}") from None
        if not self.alerting.gate_list_received(vehicles):
            return
        # Kept across a restart: without it every plate is unknown until the cloud resends.
        self._gate_list_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._gate_list_file.with_suffix(".tmp")
        tmp.write_bytes(vehicles.model_dump_json().encode())
        os.replace(tmp, self._gate_list_file)

    def _releases_received(self, payload: bytes) -> None:
        self._act(self.alerting.releases_received(
            parse_release_plan(payload), self.now_us(),
            cloud_reachable=self.publisher.stats.connected))

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
            self.outbox.allocate_seq(), MessageType.GATEWAY_STATUS, body, self.clock.now()
        )

    def _dispatch_command(self, topic: str, payload: bytes) -> None:
        self.command(topic.rsplit("/cmd/", 1)[-1], payload)

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
            await self.clock.sleep(self.config.health_interval_s)
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
                group.create_task(self._judge(), name="alerting")
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
        yield CounterMetricFamily(
            "pw_edge_local_alarms", "Alarms sounded on the local siren",
            value=a.alarms_sounded,
        )
        yield GaugeMetricFamily(
            "pw_edge_broker_connected", "1 when connected",
            value=int(a.publisher.stats.connected),
        )
