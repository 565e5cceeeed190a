"""Reader adapters over real sockets: LLRP against the simulated reader (TCP), Zebra IoT
Connector through a real Mosquitto, and the CLI on real bytes."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import subprocess
import sys
import time
from pathlib import Path

from conftest import MosquittoBroker

from contract import TagObservation
from edge.rfid import llrp
from edge.rfid.llrp_session import LlrpReader, LlrpReaderConfig
from edge.rfid.presence import LotDefinition, LotPresence
from edge.rfid.reader import CyclesFromReads, ReaderCycle, ReaderHealth
from edge.rfid.smoothing import SmoothingPolicy
from edge.rfid.zebra import ZebraIotReader, ZebraIotReaderConfig, parse_message
from firmware_sim.llrp_reader import LlrpReaderSim, ScriptedEvent, TagPopulation
from firmware_sim.tags import lot_tags
from firmware_sim.zebra_stream import ZebraStreamSim

REPO = Path(__file__).resolve().parents[1]


class Collector:
    """Runs an adapter in the background and records what it yields."""

    def __init__(self, reader: LlrpReader | ZebraIotReader, health: list[ReaderHealth]) -> None:
        self.reader = reader
        self.health = health
        self.reads: list[TagObservation] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        async with self.reader:
            async for batch in self.reader.batches():
                self.reads += batch

    def __enter__(self) -> Collector:
        self._task = asyncio.create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()

    async def until(self, condition: object, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():  # type: ignore[operator]
            if self._task is not None and self._task.done():
                self._task.result()
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; health={self.health} reads={len(self.reads)}")
            await asyncio.sleep(0.05)


def _population(seed: int = 1) -> TagPopulation:
    return TagPopulation(
        {1: lot_tags(0, 10), 2: lot_tags(1, 10)}, read_probability=0.7, rng=random.Random(seed)
    )


def _llrp_config(port: int, **extra: object) -> LlrpReaderConfig:
    return LlrpReaderConfig(
        kind="llrp", id="dock-1", host="127.0.0.1", port=port, keepalive_s=0.3, **extra
    )


async def test_llrp_session_against_the_simulated_reader() -> None:
    async with LlrpReaderSim(_population(), rounds_per_s=20) as sim:
        health: list[ReaderHealth] = []
        reader = LlrpReader(_llrp_config(sim.port, antennas=[2]), health.append)
        with Collector(reader, health) as c:
            await c.until(lambda: len(c.reads) > 50)
            await asyncio.sleep(0.7)  # a couple of keepalive periods
        assert sim.received[:6] == [
            "GET_READER_CAPABILITIES",
            "SET_READER_CONFIG",  # keepalive
            "SET_READER_CONFIG",  # AISpec event notifications: the read cycles
            "DELETE_ROSPEC",
            "ADD_ROSPEC",
            "ENABLE_ROSPEC",
        ]
        assert health[0].online
        # only antenna 2 was asked for; its tags, with RSSI and the reader's timestamps
        assert {r.antenna for r in c.reads} == {2}
        assert {r.epc for r in c.reads} <= set(lot_tags(1, 10))
        assert all(r.rssi_cdbm is not None and r.rssi_cdbm % 100 == 0 for r in c.reads)
        assert abs(c.reads[-1].observed_at_us - time.time_ns() // 1000) < 5_000_000


async def test_a_reader_clock_that_is_off_is_corrected() -> None:
    async with LlrpReaderSim(_population(), rounds_per_s=20, clock_offset_s=-120) as sim:
        health: list[ReaderHealth] = []
        with Collector(LlrpReader(_llrp_config(sim.port), health.append), health) as c:
            await c.until(lambda: len(c.reads) > 10)
    now_us = time.time_ns() // 1000
    # without the correction these would be two minutes old and every tag "missing"
    assert all(abs(r.observed_at_us - now_us) < 5_000_000 for r in c.reads)


async def test_the_session_reports_read_cycles_even_when_no_tag_answers() -> None:
    """The alive proof presence needs: every end of AISpec, announced by the reader because the
    session asked for AISpec events, is a cycle; a reader gone quiet sends none."""
    population = TagPopulation({1: lot_tags(0, 5)}, read_probability=0.7, rng=random.Random(3))
    async with LlrpReaderSim(population, rounds_per_s=20) as sim:
        health: list[ReaderHealth] = []
        cycles: list[ReaderCycle] = []
        # antenna 2 has no tag in front of it: not one read, but rounds all the same
        reader = LlrpReader(_llrp_config(sim.port, antennas=[2]), health.append, cycles.append)
        with Collector(reader, health) as c:
            await c.until(lambda: len(cycles) >= 10)
            assert c.reads == []
            assert next(iter(sim._connections)).aispec_events
            assert {(cy.reader_id, cy.antennas) for cy in cycles} == {("dock-1", (2,))}
            stamps = [cy.at_us for cy in cycles]
            assert stamps == sorted(stamps) and stamps[-1] <= time.time_ns() // 1000
            sim.slow(1.5)  # socket open, nothing sent: no cycle proves anything
            await asyncio.sleep(0.2)
            quiet = len(cycles)
            await asyncio.sleep(1.0)
            assert len(cycles) == quiet
            await c.until(lambda: len(cycles) > quiet + 5, timeout_s=5)


async def test_a_reader_that_announces_no_aispec_end_proves_its_cycles_by_reports() -> None:
    population = TagPopulation({1: lot_tags(0, 5)}, read_probability=0.9, rng=random.Random(4))
    async with LlrpReaderSim(population, rounds_per_s=20, announces_aispec=False) as sim:
        health: list[ReaderHealth] = []
        cycles: list[ReaderCycle] = []
        config = _llrp_config(sim.port, antennas=[1], report_interval_ms=200)
        reader = LlrpReader(config, health.append, cycles.append)
        with Collector(reader, health) as c:
            await c.until(lambda: len(cycles) >= 5 and len(c.reads) > 40)
        # 20 reports a second, but a report is not a round: one cycle per report interval
        gaps = [b.at_us - a.at_us for a, b in itertools.pairwise(cycles)]
        assert all(gap >= 200_000 for gap in gaps)
        assert len(cycles) < len(c.reads) / 3


def test_cycles_from_reads_are_bounded_in_rate_and_time() -> None:
    """Impinj IoT and Zebra report no rounds: reads stand in, at most one cycle per interval,
    never dated after they were received (a reader clock ahead vouches for nothing)."""
    cycles = CyclesFromReads("fx-1", (0,), min_cycle_s=0.5)

    def batch(at_us: int) -> list[TagObservation]:
        return [TagObservation("3034257BF7194E4000003039", 1, None, at_us, "fx-1")]

    assert cycles.seen([], 1_000_000) is None
    first = cycles.seen(batch(1_000_000), 1_000_000)
    assert first == ReaderCycle("fx-1", (0,), 1_000_000)
    assert cycles.seen(batch(1_200_000), 1_200_000) is None  # the same round, or close to it
    assert cycles.seen(batch(1_600_000), 1_600_000) is not None
    ahead = cycles.seen(batch(99_000_000), 2_200_000)
    assert ahead is not None and ahead.at_us == 2_200_000


async def test_keepalives_are_acknowledged_and_silence_means_offline() -> None:
    async with LlrpReaderSim(_population(), rounds_per_s=20) as sim:
        health: list[ReaderHealth] = []
        reader = LlrpReader(_llrp_config(sim.port, stale_after_s=0.8), health.append)
        with Collector(reader, health) as c:
            await c.until(lambda: len(c.reads) > 10)
            await asyncio.sleep(0.5)
            connection = next(iter(sim._connections))
            assert connection.keepalive_ms == 300
            assert connection.keepalives_unacked <= 1
            sim.slow(2.0)  # the reader stops talking, socket open
            await c.until(lambda: any(not h.online for h in health), timeout_s=5)
            assert "no message" in next(h for h in health if not h.online).reason
            await c.until(lambda: reader.sessions >= 2 and health[-1].online, timeout_s=10)


async def test_unplugged_reader_goes_offline_comes_back_and_tags_are_never_missing() -> None:
    population = _population()
    script = [ScriptedEvent(at_s=1.0, action="unplug", seconds=1.5)]
    async with LlrpReaderSim(population, rounds_per_s=20, script=script) as sim:
        health: list[ReaderHealth] = []
        presence = LotPresence(
            [LotDefinition("A", frozenset(lot_tags(0, 10) + lot_tags(1, 10)), 1.0)],
            started_us=time.time_ns() // 1000,
        )
        changes = []

        def on_health(h: ReaderHealth) -> None:
            health.append(h)
            if h.online:
                presence.reader_online(h.reader_id, h.at_us)
            else:
                changes.extend(presence.reader_offline(h.reader_id, h.at_us))

        # the reader's cycles reach presence too: the proof is there before and after the cut
        reader = LlrpReader(_llrp_config(sim.port), on_health, presence.reader_cycle)
        with Collector(reader, health) as c:
            seen = 0
            deadline = time.monotonic() + 8
            while time.monotonic() < deadline and not (reader.sessions >= 2 and len(health) >= 3):
                changes += presence.observe_batch(c.reads[seen:])
                seen = len(c.reads)
                changes += presence.tick(time.time_ns() // 1000)
                await asyncio.sleep(0.1)
        assert [h.online for h in health][:3] == [True, False, True]
        assert sim.connections >= 2
        assert not [ch for ch in changes if ch.state == "missing"], changes


async def test_cut_antenna_cable_makes_its_tags_unknown_not_missing() -> None:
    population = _population()
    script = [
        ScriptedEvent(at_s=1.0, action="antenna_disconnect", antenna=1),
        ScriptedEvent(at_s=3.0, action="antenna_connect", antenna=1),
    ]
    on_1, on_2 = lot_tags(0, 10), lot_tags(1, 10)
    async with LlrpReaderSim(population, rounds_per_s=20, script=script) as sim:
        health: list[ReaderHealth] = []
        policy = SmoothingPolicy(min_window_s=0.3, warmup_gaps=3)
        presence = LotPresence(
            [LotDefinition("A", frozenset(on_1 + on_2), 0.5)],
            started_us=time.time_ns() // 1000,
            policy=policy,
        )
        changes = []

        def on_health(h: ReaderHealth) -> None:
            health.append(h)
            if h.online:
                presence.reader_online(h.reader_id, h.at_us)
            else:
                changes.extend(presence.reader_offline(h.reader_id, h.at_us))

        # the reader's cycles reach presence too: the proof is there before and after the cut
        reader = LlrpReader(_llrp_config(sim.port), on_health, presence.reader_cycle)
        with Collector(reader, health) as c:
            seen = 0
            deadline = time.monotonic() + 6
            while time.monotonic() < deadline and len(health) < 3:
                changes += presence.observe_batch(c.reads[seen:])
                seen = len(c.reads)
                changes += presence.tick(time.time_ns() // 1000)
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)
            changes += presence.observe_batch(c.reads[seen:])
            changes += presence.tick(time.time_ns() // 1000)
    assert [(h.online, h.reason) for h in health] == [
        (True, "LLRP session established"),
        (False, "antenna 1 disconnected"),
        (True, "antenna 1 reconnected"),
    ]
    assert reader.sessions == 1  # the session itself never broke
    cut, back = health[1].at_us + 100_000, health[2].at_us - 100_000
    during_cut = {r.epc for r in c.reads if cut < r.observed_at_us < back}
    assert during_cut and during_cut <= set(on_2)  # the other antenna kept reading
    assert not [ch for ch in changes if ch.state == "missing"], changes
    assert all(presence.state_of(e) == "present" for e in on_1 + on_2)


async def test_malformed_report_is_skipped_and_the_stream_goes_on() -> None:
    async with LlrpReaderSim(_population(), rounds_per_s=20) as sim:
        health: list[ReaderHealth] = []
        reader = LlrpReader(_llrp_config(sim.port), health.append)
        with Collector(reader, health) as c:
            await c.until(lambda: len(c.reads) > 5)
            bad_body = bytes.fromhex("00f0 0010 8d 3034257b")  # TagReportData overruns
            await sim.inject(llrp.encode_message(llrp.RO_ACCESS_REPORT, 999, bad_body))
            await c.until(lambda: reader.bad_reports == 1)
            count = len(c.reads)
            await c.until(lambda: len(c.reads) > count + 5)
        assert reader.sessions == 1 and [h.online for h in health] == [True]


async def test_oversized_or_truncated_frame_mid_stream_means_reconnect() -> None:
    async with LlrpReaderSim(_population(), rounds_per_s=20) as sim:
        health: list[ReaderHealth] = []
        reader = LlrpReader(_llrp_config(sim.port, max_frame_bytes=65536), health.append)
        with Collector(reader, health) as c:
            await c.until(lambda: len(c.reads) > 5)
            # a header announcing 100 MB: refused before a byte of it is buffered
            await sim.inject(llrp.frame_header(llrp.RO_ACCESS_REPORT, 5, 100_000_000))
            await c.until(lambda: reader.sessions == 2 and health[-1].online)
            assert "corrupt LLRP stream" in health[1].reason
            # half a report, then the reader drops: the fragment is discarded, not parsed
            report = llrp.encode_ro_access_report(
                6, [llrp.encode_tag_report_data("AAAABBBB", antenna=1)]
            )
            await sim.inject(report[:15])
            sim.unplug(0.2)
            await c.until(lambda: reader.sessions == 3 and health[-1].online)
        assert "AAAABBBB" not in {r.epc for r in c.reads}
        assert [h.online for h in health] == [True, False, True, False, True]


async def test_garbage_on_the_llrp_port_means_reconnect_never_a_crash() -> None:
    connections = 0

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n" + bytes(range(256)))
        await writer.drain()
        await asyncio.sleep(0.2)
        writer.close()

    server = await asyncio.start_server(garbage, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    health: list[ReaderHealth] = []
    reader = LlrpReader(_llrp_config(port, connect_timeout_s=1.0), health.append)
    async with server:
        with Collector(reader, health) as c:
            await c.until(lambda: connections >= 2, timeout_s=10)
    assert c.reads == []
    assert health and not health[0].online and "corrupt LLRP stream" in health[0].reason


async def test_pyllrp_client_can_talk_to_the_simulated_reader() -> None:
    """Other LLRP clients work too: pyllrp's own blocking connector, in a thread."""
    from pyllrp.LLRPConnector import LLRPConnector
    from pyllrp.pyllrp import (
        CLOSE_CONNECTION_RESPONSE_Message,
        GET_READER_CAPABILITIES_Message,
        GetReaderCapabilitiesRequestedData,
    )

    async with LlrpReaderSim(_population(), rounds_per_s=5) as sim:

        def talk() -> tuple[bool, object]:
            connector = LLRPConnector()
            connector.connect("127.0.0.1", sim.port)
            caps = connector.transact(
                GET_READER_CAPABILITIES_Message(
                    RequestedData=GetReaderCapabilitiesRequestedData.All
                )
            )
            closed = connector.disconnect()
            return caps.success(), closed

        ok, closed = await asyncio.to_thread(talk)
    assert ok and isinstance(closed, CLOSE_CONNECTION_RESPONSE_Message)


# -- Zebra IoT Connector over a real broker ---------------------------------------------


async def test_zebra_stream_through_mosquitto(mqtt_broker: MosquittoBroker) -> None:
    url = mqtt_broker.url
    topic = "zebra/fx9600-1/data"
    sim = ZebraStreamSim(_population(), broker_url=url, topic=topic, rounds_per_s=10)
    health: list[ReaderHealth] = []
    config = ZebraIotReaderConfig(
        kind="zebra_iot", id="fx-1", broker_url=url, topic=topic, stale_after_s=0.6
    )
    cycles: list[ReaderCycle] = []
    reader = ZebraIotReader(config, health.append, cycles.append)
    with Collector(reader, health) as c:
        await asyncio.sleep(0.5)  # subscribed before the stream starts
        stream = asyncio.create_task(sim.run())
        try:
            await c.until(lambda: len(c.reads) > 20)
            await sim.publish_raw(b"{not json")
            await sim.publish_raw(json.dumps([{"data": {"idHex": "XYZ!"}}]).encode())
            await c.until(lambda: reader.bad_events == 2)
            sim.pause(1.5)
            await c.until(lambda: not health[-1].online, timeout_s=5)
            await c.until(lambda: health[-1].online, timeout_s=5)
        finally:
            stream.cancel()
    states = [h.online for h in health]
    states = states[states.index(True) :]  # silent before the stream started: offline is fair
    assert states[:3] == [True, False, True]
    epcs = set(lot_tags(0, 10) + lot_tags(1, 10))
    assert {r.epc for r in c.reads} <= epcs
    assert all(r.rssi_cdbm is not None and r.antenna in (1, 2) for r in c.reads)
    # messages with reads stand in for read cycles, at most one per min_cycle_s (0.25 s)
    assert cycles and {cy.reader_id for cy in cycles} == {"fx-1"}
    gaps = [b.at_us - a.at_us for a, b in itertools.pairwise(cycles)]
    assert all(gap >= 250_000 for gap in gaps)


async def test_zebra_reader_clock_offset_is_corrected(mqtt_broker: MosquittoBroker) -> None:
    url = mqtt_broker.url
    topic = "zebra/fx9600-2/data"
    sim = ZebraStreamSim(
        _population(), broker_url=url, topic=topic, rounds_per_s=10, clock_offset_s=-300
    )
    config = ZebraIotReaderConfig(kind="zebra_iot", id="fx-2", broker_url=url, topic=topic)
    health: list[ReaderHealth] = []
    with Collector(ZebraIotReader(config, health.append), health) as c:
        await asyncio.sleep(0.5)
        stream = asyncio.create_task(sim.run())
        try:
            await c.until(lambda: len(c.reads) > 20)
        finally:
            stream.cancel()
    now_us = time.time_ns() // 1000
    assert all(abs(r.observed_at_us - now_us) < 5_000_000 for r in c.reads)


def test_zebra_payload_parsing() -> None:
    good = {
        "type": "SIMPLE",
        "timestamp": "2024-05-01T10:00:00.123+0000",
        "data": {"idHex": "3034257bf7194e4000003039", "antenna": 3, "peakRssi": -61.5},
    }
    parsed = parse_message(json.dumps([good, {"data": {}}]).encode(), "fx")
    assert [e.reason for e in parsed.refused] == ["bad_epc"]
    assert parsed.observations == [
        TagObservation("3034257BF7194E4000003039", 3, -6150, 1714557600123000, "fx")
    ]
    parsed = parse_message(b"\xff\xfe", "fx")
    assert parsed.observations == [] and [e.reason for e in parsed.refused] == ["not_json"]


# -- CLI --------------------------------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge", "rfid", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_decode() -> None:
    done = _cli("decode", "3034257BF7194E4000003039", "E2801160600002080A6B1A3B", "nothex")
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert lines[0]["uri"] == "urn:epc:id:sgtin:0614141.812345.12345"
    assert lines[1] == {"epc": "E2801160600002080A6B1A3B", "scheme": None}
    assert done.returncode == 1 and "nothex" in done.stderr


def test_cli_llrp_decode(tmp_path: Path) -> None:
    capture = tmp_path / "capture.llrp"
    report = llrp.encode_ro_access_report(
        1,
        [
            llrp.encode_tag_report_data(
                "3034257BF7194E4000003039", antenna=1, peak_rssi_dbm=-55, first_seen_us=42
            ),
            llrp.encode_tag_report_data("E2801160600002080A6B1A3B", antenna=2),
        ],
    )
    capture.write_bytes(report + llrp.encode_message(llrp.KEEPALIVE, 2) + report)
    done = _cli("llrp-decode", str(capture))
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert lines == 2 * [
        {"epc": "3034257BF7194E4000003039", "antenna": 1, "peak_rssi": -55, "first_seen_us": 42},
        {"epc": "E2801160600002080A6B1A3B", "antenna": 2},
    ]
    capture.write_bytes(report + report[:20])
    done = _cli("llrp-decode", str(capture))
    assert done.returncode == 1 and "ends inside a message" in done.stderr
    assert len(done.stdout.splitlines()) == 2  # what was whole is still printed
    capture.write_bytes(report + b"garbage that is not LLRP at all")
    done = _cli("llrp-decode", str(capture))
    assert done.returncode == 1 and f"not an LLRP header at byte {len(report)}" in done.stderr
    assert len(done.stdout.splitlines()) == 2
