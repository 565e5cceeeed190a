"""Sensor adapters: MQTT JSON parsing, Modbus register decoding, and both pipelines end to end
against a real Mosquitto and the simulated Modbus TCP load cell."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable
from datetime import datetime

import aiomqtt
import pytest
from pydantic import BaseModel

from contract import MessageType
from edge.sensors.modbus import (
    ModbusDevice,
    ModbusSensorConfig,
    ModbusTcpSensor,
    RegisterMap,
    decode_registers,
)
from edge.sensors.mqtt_json import parse_sensor_message
from edge.sensors.pipeline import SensorsSection
from edge.sensors.pipeline import run as run_sensors
from firmware_sim.modbus_loadcell import ModbusLoadCell, WeightScript
from ops.supervised import Health


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_mqtt_json_message_with_several_quantities():
    readings = parse_sensor_message(
        "sensors/box-3", b'{"ts": 1780000000.5, "temperature": 7.25, "door": "open", "seal": false}'
    )
    assert [(r.sensor, r.quantity, r.value) for r in readings] == [
        ("box-3", "temperature", 7.25),
        ("box-3", "door", 1.0),
        ("box-3", "seal", 0.0),
    ]
    assert readings[0].t_us == 1_780_000_000_500_000


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("sensors/a", b"{", "JSON"),
        ("sensors/a", b'{"temperature": 5}', "ts"),
        ("sensors/a", b'{"ts": 1780000000, "temprature": 5}', "unknown"),
        ("sensors/a", b'{"ts": 1780000000, "door": "ajar"}', "open/closed"),
        ("sensors/a", b'{"ts": 1780000000, "humidity": "wet"}', "number"),
        ("sensors", b'{"ts": 1780000000}', "topic"),
        ("sensors/a", b'{"ts": 1, "door": "open"}', "2000-2100"),
    ],
)
def test_bad_sensor_messages_are_refused_with_a_reason(topic, payload, reason):
    with pytest.raises(ValueError, match=reason):
        parse_sensor_message(topic, payload)


def test_register_decoding():
    weight = RegisterMap(quantity="weight", address=0, words=2, scale=0.1)
    assert decode_registers([0x0003, 0x0D40], weight) == pytest.approx(20_000.0)
    temp = RegisterMap(quantity="temperature", address=4, signed=True, scale=0.01)
    assert decode_registers([0xFF9C], temp) == pytest.approx(-1.0)


class _Context:
    site = "demo-site"
    gateway = "gw-test"

    def __init__(self) -> None:
        self.emitted: list[tuple[MessageType, BaseModel]] = []
        self.commands: dict[str, Callable[[bytes], None]] = {}

    def emit(
        self, msg_type: MessageType, body: BaseModel, *, observed_at: datetime | None = None
    ) -> None:
        self.emitted.append((msg_type, body))

    def now_us(self) -> int:
        return 1_780_000_000_000_000

    def on_command(self, name: str, handler: Callable[[bytes], None]) -> None:
        self.commands[name] = handler


async def _wait_for(predicate, timeout_s=10.0):
    for _ in range(int(timeout_s / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def test_modbus_load_cell_drop_without_release_is_a_theft_candidate():
    port = _free_port()
    cell = ModbusLoadCell(WeightScript(20_000.0, steps=[(0.6, -800.0)], noise_kg=1.0))
    server = asyncio.create_task(cell.serve("127.0.0.1", port))
    await asyncio.sleep(0.3)
    ctx = _Context()
    section = SensorsSection(
        mqtt_url=None,
        flush_s=0.2,
        devices=[
            {
                "id": "scale-1",
                "lot": "LOT-A",
                "modbus": {
                    "host": "127.0.0.1",
                    "port": port,
                    "poll_s": 0.05,
                    "registers": [{"quantity": "weight", "address": 0, "words": 2, "scale": 0.1}],
                },
                "weight": {"tolerance_kg": 50, "min_duration_s": 0.3, "hysteresis_kg": 10},
            }
        ],
    )
    pipeline = asyncio.create_task(run_sensors(section, ctx))
    try:
        await _wait_for(lambda: any(t is MessageType.ALERT for t, _ in ctx.emitted))
        await asyncio.sleep(0.3)
    finally:
        pipeline.cancel()
        server.cancel()
        await asyncio.gather(pipeline, server, return_exceptions=True)
    alerts = [b for t, b in ctx.emitted if t is MessageType.ALERT]
    assert [(a.alert_type, a.action, a.lot) for a in alerts] == [
        ("theft.weight_drop", "raise", "LOT-A")
    ]
    weights = [
        r[1] / 1000 for t, b in ctx.emitted if t is MessageType.SENSOR_READINGS for r in b.readings
    ]
    assert weights[0] == pytest.approx(20_000, abs=10)
    assert weights[-1] == pytest.approx(19_200, abs=10)


async def test_modbus_device_that_is_down_is_retried_not_fatal():
    health: list[Health] = []
    sensor = ModbusTcpSensor(ModbusSensorConfig(
        "scale-x",
        ModbusDevice(
            host="127.0.0.1",
            port=_free_port(),
            poll_s=0.05,
            registers=[RegisterMap(quantity="weight", address=0, words=2, scale=0.1)],
        ),
    ), health.append)
    async with sensor:
        batches = sensor.batches()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(batches.__anext__(), 0.5)
        assert sensor.owner.failures >= 2  # retried, not given up
    assert [(h.source, h.online) for h in health] == [("scale-x", False)]


async def test_mqtt_sensor_excursions_over_real_mosquitto(mqtt_broker):
    ctx = _Context()
    section = SensorsSection(
        mqtt_url=mqtt_broker.url,
        flush_s=0.2,
        devices=[
            {
                "id": "cold-1",
                "lot": "LOT-A",
                "temperature": {"low": 2, "high": 8, "hysteresis": 0.5, "min_duration_s": 600},
            },
            {"id": "seal-7", "lot": "LOT-B", "seal": True},
        ],
    )
    task = asyncio.create_task(run_sensors(section, ctx))
    try:
        await asyncio.sleep(0.5)
        t0 = 1_780_000_000
        # A 5-minute excursion (allowed: 10 minutes), then a 20-minute one; then the seal opens.
        script = [(0, 5.0), (60, 9.0), (360, 6.0), (420, 9.5), (1620, 6.0)]
        async with aiomqtt.Client("127.0.0.1", mqtt_broker.port) as client:
            for minute in range(0, 1700, 60):
                value = [v for at, v in script if at <= minute][-1]
                await client.publish(
                    "sensors/cold-1",
                    json.dumps({"ts": t0 + minute, "temperature": value}).encode(),
                    qos=1,
                )
            await client.publish(
                "sensors/seal-7", json.dumps({"ts": t0 + 1700, "seal": "cut"}).encode(), qos=1
            )
        await _wait_for(lambda: sum(t is MessageType.ALERT for t, _ in ctx.emitted) >= 3)
        await asyncio.sleep(0.4)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    alerts = [(b.alert_type, b.action) for t, b in ctx.emitted if t is MessageType.ALERT]
    assert alerts == [
        ("damage.temperature", "raise"),
        ("damage.temperature", "clear"),
        ("theft.seal_broken", "raise"),
    ]
    temps = [
        r
        for t, b in ctx.emitted
        if t is MessageType.SENSOR_READINGS and b.quantity == "temperature"
        for r in b.readings
    ]
    assert len(temps) == len(range(0, 1700, 60))
