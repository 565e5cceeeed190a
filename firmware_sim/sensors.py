"""Environment and tamper sensors publishing JSON on ``sensors/<id>``, with scripted excursions.

- ``cold-1`` (LOT-A): 5 degC and 60 %RH; a 4-minute excursion to 9.5 degC (shorter than the
  allowed 10 minutes: nothing), later a 15-minute one (``damage.temperature``).
- ``shock-1`` (LOT-A): quiet, one 6.5 g knock (``damage.shock``).
- ``door-1``: opened once for two minutes.
- ``seal-7`` (LOT-B): closed, then cut (``theft.seal_broken``).

One reading per sensor per minute of scenario time. For the load cell see
``modbus_loadcell``.

    python -m firmware_sim sensors --broker mqtt://127.0.0.1:1883 --speedup 60
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass

import aiomqtt
import numpy as np

from ops.mqtt import broker_address

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SensorMessage:
    at_s: float  # seconds into the scenario
    sensor: str
    values: dict[str, float | str]


def _temperature(minute: int) -> float:
    if 20 <= minute < 24:
        return 9.5  # 4 minutes: within the allowance
    if 60 <= minute < 75:
        return 9.8  # 15 minutes: damage
    return 5.0


def scenario(minutes: int = 120, seed: int = 3) -> list[SensorMessage]:
    rng = np.random.default_rng(seed)
    out: list[SensorMessage] = []
    for minute in range(minutes):
        at = minute * 60.0
        temp = round(_temperature(minute) + rng.normal(0, 0.1), 2)
        humidity = round(60 + 5 * np.sin(minute / 30) + rng.normal(0, 0.5), 1)
        out.append(SensorMessage(at, "cold-1", {"temperature": temp, "humidity": humidity}))
        out.append(SensorMessage(at, "shock-1", {"shock": 6.5 if minute == 45 else 0.1}))
        out.append(SensorMessage(at, "door-1", {"door": "open" if 30 <= minute < 32 else "closed"}))
        out.append(SensorMessage(at, "seal-7", {"seal": "cut" if minute >= 90 else "closed"}))
    return out


def payload(message: SensorMessage, t0_s: float) -> bytes:
    return json.dumps({"ts": round(t0_s + message.at_s, 3), **message.values}).encode()


async def publish(broker: str, messages: list[SensorMessage], *, speedup: float) -> None:
    host, port, username, password = broker_address(broker)
    started = time.monotonic()
    t0_s = time.time()
    async with aiomqtt.Client(host, port, username=username, password=password) as client:
        for message in messages:
            delay = message.at_s / speedup - (time.monotonic() - started)
            if delay > 0:
                await asyncio.sleep(delay)
            # Readings carry scenario time (not compressed by the speedup), so the
            # gateway's allowed durations hold in scenario minutes.
            await client.publish(f"sensors/{message.sensor}", payload(message, t0_s), qos=1)


def _run(args: argparse.Namespace) -> int:
    messages = scenario(args.minutes)
    log.info("publishing sensor scenario", extra={"messages": len(messages)})
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(publish(args.broker, messages, speedup=args.speedup))
    return 0


def add_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("sensors", help="MQTT JSON sensors with scripted excursions")
    parser.add_argument("--broker", default="mqtt://127.0.0.1:1883")
    parser.add_argument("--minutes", type=int, default=120)
    parser.add_argument("--speedup", type=float, default=1.0)
    parser.set_defaults(func=_run)
