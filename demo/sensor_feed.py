"""`python -m demo.sensor_feed --broker URL`: the sensor scenario (firmware_sim.sensors) at two
seconds per scenario minute, each reading stamped with the real time it is sent.

firmware_sim's own ``--speedup`` keeps scenario time in the readings, which runs ahead of the
clock: the cloud rightly refuses readings from the future. The demo instead scales the whole
story (its edge config scales the allowed durations the same way): the short excursion at
~40 s passes, the long one from ~120 s is damage, the seal is cut at ~180 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time

import aiomqtt

from firmware_sim.sensors import scenario
from ops.mqtt import broker_address

SECONDS_PER_MINUTE = 2.0


async def feed(broker: str) -> None:
    host, port, username, password = broker_address(broker)
    started = time.monotonic()
    async with aiomqtt.Client(host, port, username=username, password=password) as client:
        for message in scenario():
            delay = message.at_s / 60 * SECONDS_PER_MINUTE - (time.monotonic() - started)
            if delay > 0:
                await asyncio.sleep(delay)
            body = json.dumps({"ts": round(time.time(), 3), **message.values}).encode()
            await client.publish(f"sensors/{message.sensor}", body, qos=1)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m demo.sensor_feed", description=__doc__)
    parser.add_argument("--broker", default="mqtt://127.0.0.1:1883")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(feed(args.broker))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
