"""Industrial sensors polled over Modbus TCP (pymodbus), registers declared as data.

A device is a host, port and unit (device id); each quantity is a holding-register address,
one or two 16-bit words (big-endian word order), signed or not, and a scale (value = raw *
scale). A failed poll is logged once per outage and retried at the next interval; pymodbus
reconnects by itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from edge.refusals import REFUSALS, DeviceInputRefused
from edge.sensors.decisions import Reading
from edge.sensors.source import QUANTITY_UNITS

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


class ModbusTcpSensor:
    def __init__(self, sensor: str, device: ModbusDevice) -> None:
        if any(r.quantity not in QUANTITY_UNITS for r in device.registers):
            raise ValueError("unknown quantity")
        self.sensor = sensor
        self.device = device

    async def readings(self) -> AsyncIterator[Reading]:
        client = AsyncModbusTcpClient(self.device.host, port=self.device.port, timeout=2, retries=1)
        failing = False
        try:
            while True:
                try:
                    if not client.connected:
                        await client.connect()
                    polled = await self._poll(client)
                    if failing:
                        log.info("modbus device answers again", extra={"sensor": self.sensor})
                    failing = False
                    for reading in polled:
                        yield reading
                except ModbusResponseRefused as err:
                    REFUSALS.refuse("modbus", err.reason, f"{self.sensor}: {err}")
                except (ModbusException, OSError, ValueError) as err:
                    if not failing:
                        log.warning(
                            "modbus poll failed", extra={"sensor": self.sensor, "error": str(err)}
                        )
                    failing = True
                await asyncio.sleep(self.device.poll_s)
        finally:
            client.close()

    async def _poll(self, client: AsyncModbusTcpClient) -> list[Reading]:
        readings = []
        t_us = time.time_ns() // 1000  # the device has no clock of its own
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
