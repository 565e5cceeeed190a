"""Real adapters over their real transports (HTTP stream, MQTT, LLRP over TCP), fed hostile
messages between good ones: the adapter keeps running, the good reads come out, and every
refusal is counted by reason on /metrics."""

from __future__ import annotations

import asyncio
import json
import random
import socket

import aiomqtt
import httpx
from prometheus_client import CollectorRegistry, start_http_server

from contract import TagObservation
from edge.refusals import REFUSALS, RefusalMetrics
from edge.rfid import llrp
from edge.rfid.impinj import ImpinjIotReader, ImpinjIotReaderConfig
from edge.rfid.llrp_session import LlrpReader
from edge.rfid.reader import ReaderHealth
from edge.rfid.zebra import ZebraIotReader, ZebraIotReaderConfig
from edge.sensors.decisions import Reading
from edge.sensors.mqtt_json import MqttJsonConfig, MqttJsonSensors
from firmware_sim.impinj_reader import STREAM_PATH, SimulatedImpinjReader, TagField
from firmware_sim.llrp_reader import LlrpReaderSim
from firmware_sim.tags import lot_tags
from firmware_sim.zebra_stream import ZebraStreamSim
from tests.conftest import MosquittoBroker
from tests.test_rfid_adapters import Collector, _llrp_config, _population


def _impinj_line(epc_b64: str, stamp: str = "2026-03-02T08:15:30.250Z", **extra: object) -> bytes:
    event = {
        "timestamp": stamp,
        "eventType": "tagInventory",
        "tagInventoryEvent": {"epc": epc_b64, "antennaPort": 1, "peakRssiCdbm": -5000, **extra},
    }
    return json.dumps(event).encode()


GOOD_1 = _impinj_line("MDQle_cZTkAAADA5")  # 3034257BF7194E4000003039
GOOD_2 = _impinj_line("MDQle_cZTkAAADA6")  # 3034257BF7194E400000303A
HOSTILE_LINES = {
    b"[" * 100_000: "line_too_long",  # the 100,000 brackets: longer than any event
    b"[" * 50_000: "not_json",  # short enough to be a line: refused for its nesting
    b'{"eventType":"tagInventory","tagInventoryEvent":{"epcHex":"0x12"}}': "bad_epc",
    b'{"eventType":"tagInventory","tagInventoryEvent":{"epc":"MDQl","peakRssiCdbm":NaN}}': (
        "not_json"
    ),
    b'{"tagInventoryEvent":{"epc":"MDQle_cZTkAAADA5","antennaPort":' + b"9" * 5000 + b"}}": (
        "not_json"
    ),
    _impinj_line("MDQle_cZTkAAADA5", lastSeenTime="9999-12-31T23:59:59Z"): "time_out_of_range",
    _impinj_line("MDQle_cZTkAAADA5", peakRssiCdbm=10**12): "bad_rssi",
    b"x" * 200_000: "line_too_long",  # longer than any event, with its newline far away
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _scrape(port: int) -> dict[tuple[str, str], float]:
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    counts = {}
    for line in text.splitlines():
        if line.startswith("pw_edge_device_refused_total{"):
            labels, value = line.rsplit(" ", 1)
            pairs = dict(p.split("=", 1) for p in labels[labels.index("{") + 1 : -1].split(","))
            counts[(pairs["adapter"].strip('"'), pairs["reason"].strip('"'))] = float(value)
    return counts


async def test_impinj_stream_with_hostile_lines_keeps_reading_and_counts_refusals() -> None:
    lines = [GOOD_1]
    for hostile in HOSTILE_LINES:
        lines += [hostile, GOOD_2]

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nConnection: close\r\n\r\n"
        )
        for line in lines:
            writer.write(line + b"\n")
            await writer.drain()
        await done.wait()
        writer.close()

    done = asyncio.Event()
    metrics_port = _free_port()
    registry = CollectorRegistry()
    registry.register(RefusalMetrics())
    start_http_server(metrics_port, "127.0.0.1", registry)
    before = await _scrape(metrics_port)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    config = ImpinjIotReaderConfig(
        kind="impinj_iot",
        id="r700-hostile",
        url=f"http://127.0.0.1:{port}{STREAM_PATH}",
        set_up=False,  # this server only streams
    )
    health: list[ReaderHealth] = []
    reads: list[TagObservation] = []
    adapter = ImpinjIotReader(config, health.append)

    async def collect() -> None:
        async with adapter:
            async for batch in adapter.batches():
                reads.extend(batch)

    async with server:
        task = asyncio.create_task(collect())
        for _ in range(100):
            if len(reads) == 1 + len(HOSTILE_LINES):
                break
            await asyncio.sleep(0.05)
        assert not task.done(), "the adapter stopped"
        task.cancel()
        done.set()

    assert [r.epc for r in reads] == ["3034257BF7194E4000003039"] + [
        "3034257BF7194E400000303A"
    ] * len(HOSTILE_LINES)
    assert [h.online for h in health] == [True]
    after = await _scrape(metrics_port)
    expected: dict[str, int] = {}
    for reason in HOSTILE_LINES.values():
        expected[reason] = expected.get(reason, 0) + 1
    for reason, count in expected.items():
        key = ("impinj_iot", reason)
        assert after.get(key, 0) - before.get(key, 0) == count, (reason, after)


async def test_zebra_broker_with_hostile_payloads_keeps_reading(
    mqtt_broker: MosquittoBroker,
) -> None:
    url = mqtt_broker.url
    topic = "zebra/fx9600-hostile/data"
    sim = ZebraStreamSim(_population(), broker_url=url, topic=topic, rounds_per_s=10)
    config = ZebraIotReaderConfig(kind="zebra_iot", id="fx-hostile", broker_url=url, topic=topic)
    reasons = ("not_json", "bad_rssi", "no_epc", "time_out_of_range")
    before = {r: REFUSALS.count("zebra_iot", r) for r in reasons}
    health: list[ReaderHealth] = []
    reader = ZebraIotReader(config, health.append)
    with Collector(reader, health) as c:
        await asyncio.sleep(0.5)
        stream = asyncio.create_task(sim.run())
        try:
            await c.until(lambda: len(c.reads) > 10)
            event = {"type": "SIMPLE", "timestamp": "2024-05-01T10:00:00Z"}
            await sim.publish_raw(b"[" * 100_000)
            await sim.publish_raw(b'{"data": {"idHex": "3034", "peakRssi": NaN}}')
            await sim.publish_raw(b'{"data": {"idHex": "3034", "peakRssi": ' + b"9" * 5000 + b"}}")
            await sim.publish_raw(
                json.dumps([{**event, "data": {"idHex": "3034", "peakRssi": -1e300}}]).encode()
            )
            await sim.publish_raw(
                json.dumps({**event, "data": {"idHex": "E21F2021", "format": "tid"}}).encode()
            )
            await sim.publish_raw(
                json.dumps(
                    {**event, "timestamp": "1970-01-01T00:00:00Z", "data": {"idHex": "3034"}}
                ).encode()
            )
            await sim.publish_raw(json.dumps({"type": "heartbeat", "data": {}}).encode())
            await c.until(
                lambda: (
                    REFUSALS.count("zebra_iot", "time_out_of_range") > before["time_out_of_range"]
                )
            )
            seen = len(c.reads)
            await c.until(lambda: len(c.reads) > seen + 10)  # still reading after all of it
        finally:
            stream.cancel()
    got = {r: REFUSALS.count("zebra_iot", r) - before[r] for r in reasons}
    assert got == {"not_json": 3, "bad_rssi": 1, "no_epc": 1, "time_out_of_range": 1}
    assert {r.epc for r in c.reads} <= set(lot_tags(0, 10) + lot_tags(1, 10))


async def test_impinj_simulator_streams_vendor_defaults_and_the_adapter_reads_them() -> None:
    lots = {"LOT-A": lot_tags(0, 5)}
    field = TagField(lots, read_rate=(0.9, 0.95), rng=random.Random(3))
    async with SimulatedImpinjReader(field, host="127.0.0.1", port=0, cycle_s=0.05) as sim:
        async with (
            httpx.AsyncClient() as client,
            client.stream("GET", f"http://127.0.0.1:{sim.port}{STREAM_PATH}") as response,
        ):
            first = json.loads(await anext(response.aiter_lines()))
        assert set(first["tagInventoryEvent"]) == {"epc", "antennaPort", "peakRssiCdbm"}
        config = ImpinjIotReaderConfig(
            kind="impinj_iot",
            id="r700-default",
            url=f"http://127.0.0.1:{sim.port}{STREAM_PATH}",
            set_up=False,  # a reader nobody configured: its defaults must be read as they are
        )
        reads: list[TagObservation] = []
        adapter = ImpinjIotReader(config, lambda h: None)

        async def collect() -> None:
            async with adapter:
                async for batch in adapter.batches():
                    reads.extend(batch)

        task = asyncio.create_task(collect())
        for _ in range(100):
            if {r.epc for r in reads} == set(lots["LOT-A"]):
                break
            await asyncio.sleep(0.05)
        task.cancel()
    assert {r.epc for r in reads} == set(lots["LOT-A"])
    assert adapter.garbage_lines == 0


async def test_llrp_session_refuses_a_huge_last_seen_and_keeps_reading() -> None:
    async with LlrpReaderSim(_population(), rounds_per_s=20) as sim:
        health: list[ReaderHealth] = []
        reader = LlrpReader(_llrp_config(sim.port), health.append)
        before = REFUSALS.count("llrp", "time_out_of_range")
        with Collector(reader, health) as c:
            await c.until(lambda: len(c.reads) > 5)
            epc = "3034257BF7194E40000030FF"  # not in the population: it must never come out
            for last_seen in (2**63, 2**64 - 1, 0):
                tag = llrp.encode_tag_report_data(epc, antenna=1, last_seen_us=last_seen)
                await sim.inject(llrp.encode_ro_access_report(900, [tag]))
            await c.until(lambda: REFUSALS.count("llrp", "time_out_of_range") == before + 3)
            count = len(c.reads)
            await c.until(lambda: len(c.reads) > count + 5)
        assert epc not in {r.epc for r in c.reads}
        assert reader.sessions == 1 and [h.online for h in health] == [True]


async def test_sensor_json_over_mosquitto_with_hostile_payloads(
    mqtt_broker: MosquittoBroker,
) -> None:
    sensors = MqttJsonSensors(MqttJsonConfig(mqtt_broker.url, client_id="pw-sensors-hostile"))
    readings: list[Reading] = []
    reasons = ("not_json", "time_out_of_range", "bad_value")
    before = {r: REFUSALS.count("sensor_json", r) for r in reasons}

    async def collect() -> None:
        async with sensors:
            async for batch in sensors.batches():
                readings.extend(batch)

    task = asyncio.create_task(collect())
    try:
        await asyncio.sleep(0.5)
        good = b'{"ts": 1780000000, "temperature": 5.5}'
        async with aiomqtt.Client("127.0.0.1", mqtt_broker.port) as client:
            for hostile in (
                b"[" * 100_000,
                b'{"ts": 1780000000, "temperature": NaN}',
                b'{"ts": 1780000000, "weight": ' + b"9" * 5000 + b"}",
                b"",
                b'{"ts": 0, "door": "open"}',
                b'{"ts": 1780000000, "weight": 1e300}',
            ):
                await client.publish("sensors/cold-1", good, qos=1)
                await client.publish("sensors/cold-1", hostile, qos=1)
            await client.publish("sensors/cold-1", good, qos=1)
        for _ in range(100):
            if len(readings) == 7:
                break
            await asyncio.sleep(0.05)
        assert not task.done(), "the sensor adapter stopped"
    finally:
        task.cancel()
    assert [(r.sensor, r.quantity, r.value) for r in readings] == [
        ("cold-1", "temperature", 5.5)
    ] * 7
    got = {r: REFUSALS.count("sensor_json", r) - before[r] for r in reasons}
    assert got == {"not_json": 4, "time_out_of_range": 1, "bad_value": 1}
