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


DEFAULT_TAG_METADATA = frozenset({"ANTENNA", "RSSI"})


def zebra_events(
    reads: list[tuple[str, int, int]],
    at: datetime,
    first_event_num: int,
    metadata: frozenset[str] = DEFAULT_TAG_METADATA,
    mode: str = "SIMPLE",
) -> list[dict[str, object]]:
    stamp = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"
    events: list[dict[str, object]] = []
    for i, (epc, antenna, rssi) in enumerate(reads):
        data: dict[str, object] = {
            "eventNum": first_event_num + i,
            "format": "epc",
            "idHex": epc.lower(),  # the connector sends lower-case hex
            "reads": 1,
        }
        if "ANTENNA" in metadata:
            data["antenna"] = antenna
        if "RSSI" in metadata:
            data["peakRssi"] = rssi
        events.append({"type": mode, "timestamp": stamp, "data": data})
    return events


class ZebraStreamSim:
    def __init__(
        self,
        population: TagPopulation,
        *,
        broker_url: str,
        topic: str,
        rounds_per_s: float = 2.0,
        clock_offset_s: float = 0.0,
        command_topic: str | None = None,
    ) -> None:
        self.population = population
        self.broker_url = broker_url
        self.topic = topic
        self.rounds_per_s = rounds_per_s
        self.clock_offset = timedelta(seconds=clock_offset_s)
        self.events_sent = 0
        self._paused_until = 0.0
        # The management interface: set_mode changes the operating mode and tag metadata.
        self.command_topic = command_topic
        self.mode = "SIMPLE"
        self.tag_metadata = DEFAULT_TAG_METADATA
        self.commands: list[dict[str, object]] = []

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
            if self.command_topic is not None:
                await client.subscribe(self.command_topic, qos=1)
                commands = asyncio.create_task(self._obey(client))
            try:
                await self._publish_rounds(client)
            finally:
                if self.command_topic is not None:
                    commands.cancel()

    async def _obey(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            try:
                command = json.loads(bytes(message.payload))
            except ValueError:
                continue
            if not isinstance(command, dict):
                continue
            self.commands.append(command)
            payload = command.get("payload")
            if command.get("command") == "set_mode" and isinstance(payload, dict):
                self.mode = str(payload.get("type", "SIMPLE"))
                self.tag_metadata = frozenset(payload.get("tagMetaData", ()))

    async def _publish_rounds(self, client: aiomqtt.Client) -> None:
        while True:
            await asyncio.sleep(1.0 / self.rounds_per_s)
            if time.monotonic() < self._paused_until:
                continue
            reads = self.population.read_round({0})
            if not reads:
                continue
            now = datetime.now(UTC) + self.clock_offset
            events = zebra_events(reads, now, self.events_sent + 1, self.tag_metadata, self.mode)
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
