"""Raw signals through the real edge agent as its own process, on a simulated clock, against the
running cloud (Mosquitto, ingest, the API, the webhook worker): reads arrive through the agent's
LLRP adapter from a driven reader simulator, and the alerts carry simulated times."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.gate_push import GatePush
from cloud.ingest.consumer import Ingest, IngestOptions
from cloud.webhooks.worker import WebhookSender
from contract import private_key_pem
from firmware_sim.scenario.judge import Verdict
from firmware_sim.scenario.raw_player import (
    ControllerTime,
    RawPlayer,
    RawRun,
    RawScenario,
    SiteSpec,
    judge_scenario,
    start_for,
)
from firmware_sim.world.signals import (
    ReadCycle,
    ReaderKeepalive,
    ReaderPower,
    SensorSample,
    Signal,
    TagRead,
)
from ops.clock_control import ClockController

S = 1_000_000


def warehouse(seconds: int, *, seed: int, gone: dict[int, list[str]] | None = None,
              dark: tuple[int, int] | None = None) -> list[Signal]:
    """One reader (antenna 1: lot A's 12 tags, antenna 2: lot B's 8), a read cycle a second
    at read probability 0.85, a keepalive every 5 s. ``gone``: from second t on these tags
    are no longer there. ``dark``: the reader's power is off from t0 to t1."""
    rng = random.Random(seed)
    tags = [(f"A:{i}", 1) for i in range(12)] + [(f"B:{i}", 2) for i in range(8)]
    absent: set[str] = set()
    out: list[Signal] = []
    for t in range(1, seconds + 1):
        absent.update((gone or {}).get(t, []))
        if dark and t == dark[0]:
            out.append(ReaderPower(t * S - 1, "dock-1", on=False))
        if dark and t == dark[1]:
            out.append(ReaderPower(t * S - 1, "dock-1", on=True))
        if dark and dark[0] <= t < dark[1]:
            continue
        for epc, antenna in tags:
            if epc not in absent and rng.random() < 0.85:
                out.append(TagRead(t * S, "dock-1", antenna, epc, rssi_cdbm=-5500))
        out.append(ReadCycle(t * S, "dock-1", (1, 2)))
        if t % 5 == 0:
            out.append(ReaderKeepalive(t * S, "dock-1"))
    return out


def scenario(name: str, must: list[dict[str, str]],
             must_not: list[dict[str, str]]) -> RawScenario:
    return RawScenario.model_validate({
        "name": name,
        "readers": [{"id": "dock-1", "antennas": [1, 2], "keepalive_s": 5}],
        "lots": [{"id": "A", "tags": 12, "readers": ["dock-1"], "absence_window_s": 30},
                 {"id": "B", "tags": 8, "readers": ["dock-1"], "absence_window_s": 30}],
        "must": must, "must_not": must_not})


@contextlib.asynccontextmanager
async def cloud_on(controller: ClockController, database_url: str, broker_url: str
                   ) -> AsyncIterator[httpx.AsyncClient]:
    """API, webhook worker, and an ingest whose decisions read the controller's time."""
    from cloud.api.app import create_app
    from cloud.settings import Settings

    app = create_app(Settings(database_url=database_url, mqtt_url=broker_url))
    ingest = Ingest(IngestOptions(database_url=database_url, mqtt_url=broker_url,
                                  client_id="ingest-raw", batch_ms=20,
                                  clock=ControllerTime(controller)))
    sender = WebhookSender(database_url, allow=["127.0.0.1"])
    # Steps recorded through the API (a release approved) and the gate push's windows read
    # the same simulated time as the agent.
    app.state.clock = ControllerTime(controller)
    async with app.router.lifespan_context(app):
        tasks = [asyncio.create_task(ingest.run()), asyncio.create_task(sender.run(poll_s=0.5))]
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                         base_url="http://api", timeout=30) as api, \
                    GatePush(database_url, broker_url, clock=ControllerTime(controller)):
                yield api
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def play(sc: RawScenario, signals: list[Signal], tmp_path: Path, database_url: str,
               broker_url: str, api_keys: dict[str, str]) -> tuple[Verdict, RawRun]:
    site = SiteSpec.from_scenario(sc)
    # Simulated time starts after the gateway's registration, as the cloud requires.
    async with ClockController(start_for(site.epoch_us, time.time_ns() // 1000)) as controller, \
            cloud_on(controller, database_url, broker_url) as api:
        work = tmp_path / sc.name
        work.mkdir()
        player = RawPlayer(api, api_keys["admin"], api_keys["bank-a"], "bank-a", "site-1",
                           broker_url, work, controller)
        run = await player.run(site, signals)
    verdict = judge_scenario(sc, run)
    print(sc.name, verdict, f"{run.simulated_s:.0f} s simulated in {run.wall_s:.1f} s",
          (work / "agent.log").read_text()[-3000:])
    return verdict, run


@pytest.fixture
def operator_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    operator = tmp_path / "operator.pem"
    operator.write_bytes(private_key_pem(Ed25519PrivateKey.generate()))
    monkeypatch.setenv("PW_OPERATOR_KEY_FILE", str(operator))


async def test_tags_that_leave_a_live_reader_become_a_theft_alert_in_simulated_time(
    database_url: str, mqtt_broker, api_keys: dict[str, str],  # type: ignore[no-untyped-def]
    tmp_path: Path, operator_key: None,
) -> None:
    """Five of lot A's tags leave at 5 min while the reader keeps reading the rest: the
    gateway's presence decision (through its real LLRP adapter) declares them gone after the
    lot's window, on simulated time; the cloud holds the alert dated in simulated time."""
    sc = scenario("raw_slow_theft", must=[{"alert_type": "theft.unreleased_departure",
                                           "subject": "lot:A"}],
                  must_not=[{"alert_type": "theft.unreleased_departure", "subject": "lot:B"},
                            {"alert_type": "tamper.reader_offline"}])
    signals = warehouse(600, seed=1, gone={300: [f"A:{i}" for i in range(5)]})
    v, run = await play(sc, signals, tmp_path, database_url, mqtt_broker.url, api_keys)
    assert v.passed, (v.missing, v.forbidden_seen, v.timings)
    assert run.simulated_s >= 600
    (theft,) = [t for t in v.timings if t["alert"] == "theft.unreleased_departure lot:A"]
    # Last read of the five at <= 299 s; declared after the 30 s window, within two minutes.
    assert 300 <= theft["first_seen_s"] <= 420, theft


async def test_a_reader_without_power_goes_offline_by_its_stale_timer_in_simulated_time(
    database_url: str, mqtt_broker, api_keys: dict[str, str],  # type: ignore[no-untyped-def]
    tmp_path: Path, operator_key: None,
) -> None:
    """The reader dies silently (no FIN) at 2 min for 5 min: the agent's LLRP adapter calls it
    gone after three keepalive periods of simulated time, and the alert resolves once the
    agent has reconnected to the rebooted reader."""
    sc = scenario("raw_reader_power_cut",
                  must=[{"alert_type": "tamper.reader_offline", "subject": "reader:dock-1"}],
                  must_not=[])
    signals = warehouse(600, seed=2, dark=(120, 420))
    v, _ = await play(sc, signals, tmp_path, database_url, mqtt_broker.url, api_keys)
    assert v.passed, (v.missing, v.forbidden_seen, v.timings)
    (offline,) = [t for t in v.timings if t["alert"].startswith("tamper.reader_offline")]
    # Last message from the reader just before 120 s; 3 keepalive periods (15 s) of silence.
    assert 130 <= offline["first_seen_s"] <= 140, offline
    assert offline["state"] == "resolved", offline


async def test_a_long_warm_spell_in_a_cold_room_is_a_temperature_alert_in_simulated_time(
    database_url: str, mqtt_broker, api_keys: dict[str, str],  # type: ignore[no-untyped-def]
    tmp_path: Path, operator_key: None,
) -> None:
    """A fridge (limit 8 C, 5 min outside allowed) publishes a sample every 30 s over MQTT
    JSON: 12 C from 10 min to 20 min. The gateway's sensor decision raises at 5 min into the
    spell, dated in simulated time, and clears when the room is cold again."""
    sc = RawScenario.model_validate({
        "name": "raw_cold_room",
        "sensors": [{"id": "fridge", "kind": "temperature", "high": 8.0,
                     "min_duration_s": 300, "hysteresis": 0.5}],
        "must": [{"alert_type": "damage.temperature", "subject": "sensor:fridge"}]})
    signals: list[Signal] = [
        SensorSample(t * S, "fridge", "temperature", 12.0 if 600 <= t < 1200 else 4.0)
        for t in range(30, 1801, 30)]
    v, _ = await play(sc, signals, tmp_path, database_url, mqtt_broker.url, api_keys)
    assert v.passed, (v.missing, v.forbidden_seen, v.timings)
    (warm,) = [t for t in v.timings if t["alert"] == "damage.temperature sensor:fridge"]
    assert 900 <= warm["first_seen_s"] <= 935, warm  # 600 s + 300 s, a sample and a step late
    assert warm["state"] == "resolved", warm
