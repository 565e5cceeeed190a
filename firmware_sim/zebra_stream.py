"""A simulated Zebra FX reader's IoT Connector: tag data events published as JSON over MQTT.

Uses the same tag population model as the simulated LLRP reader (per-antenna tags, a read
probability, an RSSI model) and publishes one JSON array of IoT Connector events per inventory
round to ``topic``. ``pause(seconds)`` stops publishing (a reader whose connector died).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import random
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import aiomqtt

from firmware_sim.llrp_reader import TagPopulation
from firmware_sim.tags import lot_tags

log = logging.getLogger(__name__)


def zebra_events(
    reads: list[tuple[str, int, int]], at: datetime, first_event_num: int
) -> list[dict[str, object]]:
    stamp = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"
    return [
        {
            "type": "SIMPLE",
            "timestamp": stamp,
            "data": {
                "eventNum": first_event_num + i,
                "format": "epc",
                "idHex": epc.lower(),  # the connector sends lower-case hex
                "antenna": antenna,
                "peakRssi": rssi,
                "reads": 1,
            },
        }
        for i, (epc, antenna, rssi) in enumerate(reads)
    ]


class ZebraStreamSim:
    def __init__(
        self,
        population: TagPopulation,
        *,
        broker_url: str,
        topic: str,
        rounds_per_s: float = 2.0,
        clock_offset_s: float = 0.0,
    ) -> None:
        self.population = population
        self.broker_url = broker_url
        self.topic = topic
        self.rounds_per_s = rounds_per_s
        self.clock_offset = timedelta(seconds=clock_offset_s)
        self.events_sent = 0
        self._paused_until = 0.0

    def pause(self, seconds: float) -> None:
        self._paused_until = time.monotonic() + seconds

    async def publish_raw(self, payload: bytes) -> None:
        """Publish arbitrary bytes on the data topic (tests send garbage this way)."""
        url = urlsplit(self.broker_url)
        async with aiomqtt.Client(url.hostname or "127.0.0.1", url.port or 1883) as client:
            await client.publish(self.topic, payload, qos=1)

    async def run(self) -> None:
        url = urlsplit(self.broker_url)
        async with aiomqtt.Client(url.hostname or "127.0.0.1", url.port or 1883) as client:
            while True:
                await asyncio.sleep(1.0 / self.rounds_per_s)
                if time.monotonic() < self._paused_until:
                    continue
                reads = self.population.read_round({0})
                if not reads:
                    continue
                now = datetime.now(UTC) + self.clock_offset
                events = zebra_events(reads, now, self.events_sent + 1)
                self.events_sent += len(events)
                await client.publish(self.topic, json.dumps(events).encode(), qos=1)


def add_command(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "zebra-stream", help="a simulated Zebra IoT Connector publishing tag events over MQTT"
    )
    parser.add_argument("--broker-url", default="mqtt://127.0.0.1:1883")
    parser.add_argument("--topic", default="zebra/fx9600-sim/data")
    parser.add_argument("--antennas", type=int, default=2)
    parser.add_argument("--tags-per-antenna", type=int, default=40)
    parser.add_argument("--read-probability", type=float, default=0.8)
    parser.add_argument("--rounds-per-s", type=float, default=2.0)
    parser.add_argument("--seed", type=int)
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    antennas = range(1, args.antennas + 1)
    population = TagPopulation(
        {a: lot_tags(10 + a, args.tags_per_antenna) for a in antennas},
        read_probability=args.read_probability,
        rng=random.Random(args.seed),
    )
    sim = ZebraStreamSim(
        population, broker_url=args.broker_url, topic=args.topic, rounds_per_s=args.rounds_per_s
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(sim.run())
    return 0
