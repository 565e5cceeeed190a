"""A load cell under a pledged stack, answering Modbus TCP (pymodbus server).

Holding registers 0-1: weight in 0.1 kg as a 32-bit unsigned integer, high word first (read it
with ``{quantity: weight, address: 0, words: 2, scale: 0.1}``). The weight follows a script:
a base weight, then steps (seconds after start, change in kg), plus a little noise, so a
theft (a drop without a release) or a release can be staged.

    python -m firmware_sim modbus-loadcell --port 5020 --kg 20000 --step 120:-800
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass, field

from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import SimData, SimDevice
from pymodbus.simulator.simutils import DataType

log = logging.getLogger(__name__)

SCALE_KG = 0.1


@dataclass
class WeightScript:
    base_kg: float
    steps: list[tuple[float, float]] = field(default_factory=list)  # (seconds, delta kg)
    noise_kg: float = 0.0
    rng: random.Random = field(default_factory=lambda: random.Random(7))

    def weight_at(self, elapsed_s: float) -> float:
        kg = self.base_kg + sum(delta for at, delta in self.steps if elapsed_s >= at)
        return max(0.0, kg + (self.rng.gauss(0, self.noise_kg) if self.noise_kg else 0.0))


def registers_for(kg: float) -> tuple[int, int]:
    raw = max(0, min(0xFFFFFFFF, round(kg / SCALE_KG)))
    return raw >> 16, raw & 0xFFFF


class ModbusLoadCell:
    def __init__(self, script: WeightScript, *, unit: int = 1) -> None:
        self.script = script
        self.unit = unit
        self._started = time.monotonic()
        self.server: ModbusTcpServer | None = None

    async def _on_access(  # noqa: PLR0917 - pymodbus calls actions with six positionals
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> None:
        # Weigh at the moment of the read, like a real indicator refreshing its registers.
        high, low = registers_for(self.script.weight_at(time.monotonic() - self._started))
        registers[0 - start_address] = high
        registers[1 - start_address] = low

    async def serve(self, host: str, port: int) -> None:
        device = SimDevice(
            id=self.unit,
            simdata=[SimData(0, values=[0, 0, 0, 0], datatype=DataType.REGISTERS)],
            action=self._on_access,
        )
        self.server = ModbusTcpServer(device, address=(host, port))
        self._started = time.monotonic()
        log.info("modbus load cell listening", extra={"host": host, "port": port})
        try:
            await self.server.serve_forever()
        finally:
            with contextlib.suppress(RuntimeError):
                await self.server.shutdown()


def _step(text: str) -> tuple[float, float]:
    try:
        at, delta = text.split(":")
        return float(at), float(delta)
    except ValueError:
        raise argparse.ArgumentTypeError(f"step {text!r} is not SECONDS:DELTA_KG") from None


def _run(args: argparse.Namespace) -> int:
    script = WeightScript(args.kg, list(args.step), args.noise_kg)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(ModbusLoadCell(script, unit=args.unit).serve(args.host, args.port))
    return 0


def add_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("modbus-loadcell", help="a load cell answering Modbus TCP")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5020)
    parser.add_argument("--unit", type=int, default=1)
    parser.add_argument("--kg", type=float, default=20_000.0, help="weight at start")
    parser.add_argument(
        "--step",
        type=_step,
        action="append",
        default=[],
        help="SECONDS:DELTA_KG, e.g. 120:-800 (repeatable)",
    )
    parser.add_argument("--noise-kg", type=float, default=2.0)
    parser.set_defaults(func=_run)
