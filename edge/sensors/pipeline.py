"""Sensor pipeline: MQTT JSON and Modbus TCP sensors -> readings telemetry and alerts.

Config section ``sensors``::

    sensors:
      mqtt_url: mqtt://127.0.0.1:1883            # for MQTT JSON sensors (sensors/<id>)
      devices:
        - id: cold-1
          lot: LOT-A
          temperature: {low: 2, high: 8, hysteresis: 0.5, min_duration_s: 600}
          humidity: {high: 75, hysteresis: 3, min_duration_s: 1800}
        - id: scale-1
          lot: LOT-A
          modbus: {host: 127.0.0.1, port: 5020, registers: [{quantity: weight, address: 0,
                   words: 2, scale: 0.1}]}
          weight: {tolerance_kg: 50, min_duration_s: 60, hysteresis_kg: 10}

Readings go out batched per (sensor, quantity) as ``sensor_readings`` telemetry; decisions are
``edge.sensors.decisions`` monitors; ``cmd/lot_releases`` tells load cells which lots may lose
weight.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contract import AlertBody, MessageType
from contract.messages import SensorReadingsBody
from decisions.outgoing import Outgoing
from edge.pipelines import EdgeContext, Pipeline, clock_of
from edge.sensors.decisions import (
    DoorMonitor,
    RangeMonitor,
    RangeRule,
    Reading,
    SealMonitor,
    WeightWatch,
)
from edge.sensors.modbus import ModbusDevice, ModbusSensorConfig, ModbusTcpSensor
from edge.sensors.mqtt_json import MqttJsonConfig, MqttJsonSensors
from edge.sensors.source import QUANTITY_UNITS, SensorSource
from edge.trackers.releases import on_releases
from geofences.schedule import parse_schedule
from ops.clock import SYSTEM_CLOCK, Clock
from ops.supervised import Health

log = logging.getLogger(__name__)



class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RangeSection(_Strict):
    low: float | None = None
    high: float | None = None
    hysteresis: float = Field(0.0, ge=0)
    min_duration_s: float = Field(0.0, ge=0)


class WeightSection(_Strict):
    tolerance_kg: float = Field(gt=0)
    min_duration_s: float = Field(60.0, ge=0)
    hysteresis_kg: float = Field(0.0, ge=0)
    expected_kg: float | None = None


class ScheduleSection(_Strict):
    timezone: str = "UTC"
    open: list[str] = Field(min_length=1)


class DeviceSection(_Strict):
    id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.-]+$")
    lot: str | None = None
    modbus: ModbusDevice | None = None  # absent: the device publishes MQTT JSON
    temperature: RangeSection | None = None
    humidity: RangeSection | None = None
    shock: RangeSection | None = None
    tilt: RangeSection | None = None
    door_schedule: ScheduleSection | None = None
    seal: bool = False
    weight: WeightSection | None = None


class SensorsSection(_Strict):
    mqtt_url: str | None = "mqtt://127.0.0.1:1883"
    devices: list[DeviceSection] = Field(min_length=1)
    released_lots: list[str] = Field(default_factory=list)
    flush_s: float = Field(5.0, gt=0)

    @model_validator(mode="after")
    def _unique_ids(self) -> SensorsSection:
        ids = [d.id for d in self.devices]
        if len(ids) != len(set(ids)):
            raise ValueError("sensor ids must be unique")
        if self.mqtt_url is None and any(d.modbus is None for d in self.devices):
            raise ValueError("MQTT JSON sensors need mqtt_url")
        return self


_RANGE_ALERTS = {
    "temperature": ("damage.temperature", " degC"),
    "humidity": ("damage.humidity", " %RH"),
    "shock": ("damage.shock", " g"),
    "tilt": ("damage.shock", " deg"),
}


class SensorStation:
    """Readings in, telemetry and alerts out (no I/O)."""

    def __init__(self, devices: Sequence[DeviceSection], released_lots: Sequence[str] = ()) -> None:
        self._lot = {d.id: d.lot for d in devices}
        self._ranges: dict[tuple[str, str], RangeMonitor] = {}
        self._doors: dict[str, DoorMonitor] = {}
        self._seals: dict[str, SealMonitor] = {}
        self._weights: dict[str, WeightWatch] = {}
        self.released = set(released_lots)
        self._buffer: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
        for d in devices:
            subject = f"sensor:{d.id}"
            for quantity, (alert_type, unit) in _RANGE_ALERTS.items():
                section: RangeSection | None = getattr(d, quantity)
                if section is not None:
                    rule = RangeRule(alert_type, unit=unit, **section.model_dump())
                    self._ranges[(d.id, quantity)] = RangeMonitor(rule, subject=subject, lot=d.lot)
            if d.door_schedule is not None:
                schedule = parse_schedule(d.door_schedule.model_dump())
                self._doors[d.id] = DoorMonitor(schedule, subject=subject, lot=d.lot)
            if d.seal:
                self._seals[d.id] = SealMonitor(subject=subject, lot=d.lot)
            if d.weight is not None:
                self._weights[d.id] = WeightWatch(
                    subject=subject, lot=d.lot, **d.weight.model_dump()
                )

    def add(self, reading: Reading) -> list[Outgoing]:
        if reading.sensor not in self._lot:
            return []  # a sensor nobody configured: not ours to judge
        self._buffer[(reading.sensor, reading.quantity)].append(
            (reading.t_us, round(reading.value * 1000))
        )
        key = (reading.sensor, reading.quantity)
        alert: AlertBody | None = None
        if key in self._ranges:
            alert = self._ranges[key].feed(reading.value, reading.t_us)
        elif reading.quantity == "door" and reading.sensor in self._doors:
            alert = self._doors[reading.sensor].feed(reading.value >= 0.5, reading.t_us)
        elif reading.quantity == "seal" and reading.sensor in self._seals:
            alert = self._seals[reading.sensor].feed(reading.value >= 0.5, reading.t_us)
        elif reading.quantity == "weight" and reading.sensor in self._weights:
            lot = self._lot[reading.sensor]
            alert = self._weights[reading.sensor].feed(
                reading.value, reading.t_us, released=lot is not None and lot in self.released
            )
        return [] if alert is None else [(MessageType.ALERT, alert)]

    def set_released(self, lots: set[str]) -> None:
        self.released = set(lots)

    def flush(self) -> list[Outgoing]:
        out: list[Outgoing] = []
        for (sensor, quantity), rows in sorted(self._buffer.items()):
            rows.sort()
            for start in range(0, len(rows), 10_000):
                body = SensorReadingsBody(
                    sensor=sensor,
                    quantity=quantity,
                    unit=QUANTITY_UNITS[quantity],
                    lot=self._lot.get(sensor),
                    readings=rows[start : start + 10_000],
                )
                out.append((MessageType.SENSOR_READINGS, body))
        self._buffer.clear()
        return out


def on_health(health: Health) -> None:
    log.info("sensor source health",
             extra={"source": health.source, "online": health.online, "reason": health.reason})


def sources(section: SensorsSection, gateway: str,
            clock: Clock = SYSTEM_CLOCK) -> list[SensorSource]:
    found: list[SensorSource] = [
        ModbusTcpSensor(ModbusSensorConfig(d.id, d.modbus), on_health, clock=clock)
        for d in section.devices if d.modbus is not None
    ]
    if section.mqtt_url is not None and any(d.modbus is None for d in section.devices):
        found.append(MqttJsonSensors(
            MqttJsonConfig(section.mqtt_url, client_id=f"pw-sensors-{gateway}"), on_health))
    return found


async def run(section: SensorsSection, ctx: EdgeContext) -> None:
    station = SensorStation(section.devices, section.released_lots)
    on_releases(ctx, station.set_released)

    def emit(messages: list[Outgoing]) -> None:
        for msg_type, body in messages:
            ctx.emit(msg_type, body)

    async def pump(source: SensorSource) -> None:
        async with source:
            async for batch in source.batches():
                for reading in batch:
                    emit(station.add(reading))

    async with asyncio.TaskGroup() as group:
        for source in sources(section, ctx.gateway, clock_of(ctx)):
            group.create_task(pump(source))
        try:
            while True:
                await clock_of(ctx).sleep(section.flush_s)
                emit(station.flush())
        finally:
            emit(station.flush())


PIPELINE = Pipeline(section="sensors", config_model=SensorsSection, run=run)
