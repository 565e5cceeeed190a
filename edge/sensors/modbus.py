"""Industrial sensors polled over Modbus TCP (pymodbus), registers declared as data.

A device is a host, port and unit (device id); each quantity is a holding-register address,
one or two 16-bit words (big-endian word order), signed or not, and a scale (value = raw *
scale). A failed poll is reported (health, log) once per outage and retried with backoff
(ops/supervised.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from edge.refusals import REFUSALS, DeviceInputRefused
from edge.sensors.decisions import Reading
from edge.sensors.source import QUANTITY_UNITS
from ops.backoff import Backoff
from ops.clock import SYSTEM_CLOCK, Clock
from ops.supervised import BatchSource, HealthCallback, Supervised

log = logging.getLogger(__name__)


class ModbusResponseRefused(DeviceInputRefused):
    """A device answer that yields no reading; ``reason`` is the counter's code."""


class RegisterMap(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    quantity: Literal["temperature", "humidity", "shock", "tilt", "door", "seal", "weight"]
    address: int = Field(ge=0, le=65535)
    words: Literal[1, 2] = 1
    signed: bool = False
    scale: float = 1.0


class ModbusDevice(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str
    port: int = Field(502, ge=1, le=65535)
    unit: int = Field(1, ge=0, le=247)
    poll_s: float = Field(1.0, gt=0)
    registers: list[RegisterMap] = Field(min_length=1)


def decode_registers(words: list[int], register: RegisterMap) -> float:
    """Raw 16-bit words (high word first) -> scaled value; `ModbusResponseRefused` otherwise."""
    if len(words) != register.words:
        raise ModbusResponseRefused(
            "bad_response", f"expected {register.words} words, got {len(words)}"
        )
    if any(isinstance(w, bool) or not isinstance(w, int) or not 0 <= w <= 0xFFFF for w in words):
        raise ModbusResponseRefused("bad_response", f"{str(words)[:60]} are not 16-bit words")
    raw = words[0] if register.words == 1 else (words[0] << 16) | words[1]
    bits = 16 * register.words
    if register.signed and raw >= 1 << (bits - 1):
        raw -= 1 << bits
    return raw * register.scale


@dataclass(frozen=True)
class ModbusSensorConfig:
    sensor: str
    device: ModbusDevice


class ModbusTcpSensor(BatchSource[list[Reading]]):
    """One device polled every ``poll_s``; a failed poll ends the session (health offline,
    logged once per outage) and the owner polls again after its backoff."""

    retry_on = (ModbusException, OSError, ValueError)

    def __init__(self, config: ModbusSensorConfig, on_health: HealthCallback | None = None,
                 *, clock: Clock = SYSTEM_CLOCK) -> None:
        device = config.device
        if any(r.quantity not in QUANTITY_UNITS for r in device.registers):
            raise ValueError("unknown quantity")
        super().__init__(config.sensor, on_health, backoff=Backoff(
            initial_s=device.poll_s, maximum_s=max(device.poll_s, 30.0)))
        # The device has no clock of its own: a sample is dated, and polled, on the agent's.
        self._clock = clock
        self.sensor = config.sensor
        self.device = device

    async def session(self, owner: Supervised) -> None:
        device = self.device
        client = AsyncModbusTcpClient(device.host, port=device.port, timeout=2, retries=1)
        try:
            if not await client.connect():
                raise ConnectionError(f"modbus device {device.host}:{device.port} unreachable")
            while True:
                try:
                    polled = await self._poll(client)
                except ModbusResponseRefused as err:
                    REFUSALS.refuse("modbus", err.reason, f"{self.sensor}: {err}")
                else:
                    owner.up("device answers")
                    await self.put(polled)
                await self._clock.sleep(device.poll_s)
        finally:
            client.close()

    async def _poll(self, client: AsyncModbusTcpClient) -> list[Reading]:
        readings = []
        t_us = self._clock.now_us()
        for register in self.device.registers:
            response = await client.read_holding_registers(
                register.address, count=register.words, device_id=self.device.unit
            )
            if response.isError():
                raise ModbusResponseRefused(
                    "device_error", f"device refused register {register.address}: {response}"
                )
            value = decode_registers(list(response.registers), register)
            readings.append(Reading(self.sensor, register.quantity, value, t_us))
        return readings
