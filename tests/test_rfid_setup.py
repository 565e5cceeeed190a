"""Reader set-up on start, through the reader's own REST API, against the simulated R700."""

from __future__ import annotations

import asyncio
import json
import random

from contract import TagObservation
from edge.rfid.impinj import ImpinjIotReader, ImpinjIotReaderConfig, inventory_preset
from edge.rfid.reader import ReaderHealth
from edge.rfid.zebra import ZebraIotReader, ZebraIotReaderConfig
from firmware_sim.impinj_reader import STREAM_PATH, SimulatedImpinjReader, TagField
from firmware_sim.tags import lot_tags
from firmware_sim.zebra_stream import ZebraStreamSim
from tests.conftest import MosquittoBroker
from tests.test_rfid_adapters import Collector, _population

GOOD = json.dumps(
    {
        "timestamp": "2026-03-02T08:15:30.409Z",
        "eventType": "tagInventory",
        "tagInventoryEvent": {"epc": "MDQle_cZTkAAADA5", "antennaPort": 1},
    }
).encode()


async def _run_until(adapter: ImpinjIotReader, reads: list[TagObservation], want: int) -> None:
    async def collect() -> None:
        async with adapter:
            async for batch in adapter.batches():
                reads.extend(batch)

    task = asyncio.create_task(collect())
    for _ in range(100):
        if len(reads) >= want:
            break
        await asyncio.sleep(0.05)
    task.cancel()


async def test_adapter_puts_and_starts_its_preset_and_then_reads_last_seen_times() -> None:
    lots = {"LOT-A": lot_tags(0, 5)}
    field = TagField(lots, read_rate=(0.9, 0.95), rng=random.Random(4))
    async with SimulatedImpinjReader(field, host="127.0.0.1", port=0, cycle_s=0.05) as sim:
        config = ImpinjIotReaderConfig(
            kind="impinj_iot",
            id="r700",
            url=f"http://127.0.0.1:{sim.port}{STREAM_PATH}",
            antenna_ports=[1, 2],
            rf_mode=4,
        )
        reads: list[TagObservation] = []
        await _run_until(ImpinjIotReader(config, lambda h: None), reads, 10)
        assert sim.presets == {"pledgewatch": inventory_preset(config)}
        assert sim.running_preset == "pledgewatch"
        assert field.event_fields == {
            "epc",
            "epcHex",
            "antennaPort",
            "peakRssiCdbm",
            "lastSeenTime",
        }
        ports = [a["antennaPort"] for a in sim.presets["pledgewatch"]["antennaConfigs"]]
        assert ports == [1, 2]
        assert {a["rfMode"] for a in sim.presets["pledgewatch"]["antennaConfigs"]} == {4}
    assert len(reads) >= 10 and {r.epc for r in reads} <= set(lots["LOT-A"])


async def test_a_reader_that_refuses_set_up_is_still_read() -> None:
    requests: list[str] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        method, path = head.decode().split(" ")[:2]
        requests.append(f"{method} {path}")
        if method == "GET" and path == STREAM_PATH:
            writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + GOOD + b"\n")
        else:
            writer.write(
                b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    config = ImpinjIotReaderConfig(
        kind="impinj_iot", id="r700", url=f"http://127.0.0.1:{port}{STREAM_PATH}"
    )
    reads: list[TagObservation] = []
    async with server:
        await _run_until(ImpinjIotReader(config, lambda h: None), reads, 1)
    assert requests[:2] == [
        "PUT /api/v1/profiles/inventory/presets/pledgewatch",
        f"GET {STREAM_PATH}",
    ]
    assert reads[0].epc == "3034257BF7194E4000003039"


async def test_zebra_adapter_sets_the_reader_mode_over_its_management_topic(
    mqtt_broker: MosquittoBroker,
) -> None:
    url = mqtt_broker.url
    topic, commands = "zebra/fx-setup/data", "zebra/fx-setup/mgmt/req"
    sim = ZebraStreamSim(
        _population(), broker_url=url, topic=topic, rounds_per_s=10, command_topic=commands
    )
    sim.tag_metadata = frozenset()  # a reader sending neither antenna nor RSSI (FXR90 SIMPLE)
    config = ZebraIotReaderConfig(
        kind="zebra_iot", id="fx-setup", broker_url=url, topic=topic, command_topic=commands
    )
    stream = asyncio.create_task(sim.run())
    await asyncio.sleep(0.5)  # the simulator listens before the gateway connects
    health: list[ReaderHealth] = []
    try:
        with Collector(ZebraIotReader(config, health.append), health) as c:
            await c.until(lambda: any(r.antenna != 0 for r in c.reads))
    finally:
        stream.cancel()
    assert [cmd["command"] for cmd in sim.commands] == ["set_mode", "start"]
    assert sim.tag_metadata == {"ANTENNA", "RSSI"}
    placed = [r for r in c.reads if r.antenna != 0]
    assert all(r.antenna in (1, 2) and r.rssi_cdbm is not None for r in placed)
