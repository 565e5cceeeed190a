"""The agent's alerting stage runs the cloud's correlation rules on its own facts, against the
gate list the cloud last sent, and sounds the local alarm while the cloud is unreachable (here:
no broker at all for the uplink)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contract import MessageType, PresenceChangeBody, open_envelope, public_key_b64
from contract.commands import seal_command
from contract.messages import PlateReadBody
from contract.topics import cmd_topic
from decisions.vehicles import AuthorisedVehicle, AuthorisedVehicles
from edge.__main__ import main as edge_main
from edge.agent import Agent
from edge.config import load_config
from edge.rfid.presence import PresenceChange
from edge.rfid.reader import ReaderHealth

pytestmark = pytest.mark.integration
T0_US = 1_764_136_000_000_000  # wire times lie in 2000..2100 (contract.bounds)


def _agent(tmp_path: Path, cloud_key: Ed25519PrivateKey, extra: str = "") -> Agent:
    assert edge_main(["keygen", "--out", str(tmp_path / "gw.key")]) == 0
    (tmp_path / "cloud.pub").write_text(public_key_b64(cloud_key))
    config = tmp_path / "edge.toml"
    config.write_text(f"""
site = "site-1"
gateway = "gw-1"
key_file = "gw.key"
data_dir = "data"
[broker]
url = "mqtt://127.0.0.1:1"
{extra}""")
    return Agent(load_config(config))  # never connected: the cloud is unreachable


@contextlib.asynccontextmanager
async def _running(agent: Agent) -> AsyncIterator[Agent]:
    task = asyncio.create_task(agent.run())
    try:
        yield agent
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _plate(plate: str) -> PlateReadBody:
    return PlateReadBody(camera="gate", plate=plate, region="cn", plate_format="cn_standard",
                         confidence_pct=90, reads=3, direction="out", first_seen_us=T0_US,
                         last_seen_us=T0_US + 1, box=(1, 1, 1, 1))


def _departed(lot: str) -> PresenceChangeBody:
    return PresenceChangeBody(lot=lot, epc="3034257BF7194E4000003030", state="missing",
                              previous="present", last_seen_us=T0_US, reader="r1")


def _depart(agent: Agent, lot: str) -> None:
    """A tag leaves, as the RFID pipeline reports it: the message and the observed change."""
    body = _departed(lot)
    agent.emit(MessageType.PRESENCE_CHANGE, body)
    agent.observe([PresenceChange(lot=lot, epc=body.epc, state="missing", previous="present",
                                  last_seen_us=T0_US, reader="r1", at_us=agent.now_us())])


def _alerts(agent: Agent) -> list[dict[str, Any]]:
    stored = [open_envelope(m.payload) for m in agent.outbox.pending(after=0, limit=100)]
    return [e.body for e in stored if e.type == "alert"]


async def test_unauthorised_plate_and_departed_tags_raise_theft_and_sound_the_alarm(
    tmp_path: Path, mqtt_broker  # type: ignore[no-untyped-def]
) -> None:
    agent = _agent(tmp_path, Ed25519PrivateKey.generate(),
                   f'[local_alarm]\nhost = "127.0.0.1"\nport = {mqtt_broker.port}\n')
    agent.alerting.gate_list_received(AuthorisedVehicles(version=1))  # nobody may take goods
    alarms: list[dict[str, object]] = []
    async with _running(agent), aiomqtt.Client("127.0.0.1", mqtt_broker.port) as siren:
        await siren.subscribe("pw/local/site-1/gw-1/alarm/#", qos=1)
        agent.emit(MessageType.PLATE_READ, _plate("沪A12345"))
        _depart(agent, "LOT-A")
        async with asyncio.timeout(10):
            async for message in siren.messages:
                alarms.append(json.loads(bytes(message.payload)))  # type: ignore[arg-type]
                break
            # The siren's publish is counted once its PUBACK is back, which may come after
            # the subscriber above already has the message.
            while agent.alarms_sounded < 1:  # noqa: ASYNC110 - a counter, no event to wait on
                await asyncio.sleep(0.01)
        raised = _alerts(agent)
    assert alarms[0]["state"] == "on"
    assert str(alarms[0]["alert_type"]).startswith("theft.")
    assert [(a["action"], a["subject"], a["evidence"]["decided_at"]) for a in raised] == [
        ("raise", "lot:LOT-A", "edge")]
    assert agent.alarms_sounded == 1


async def test_offline_a_truck_on_the_cloud_s_gate_list_takes_goods_without_a_theft_alert(
    tmp_path: Path,
) -> None:
    # The bug: the agent's rules had no gate list, so offline any plate made a departure theft.
    cloud_key = Ed25519PrivateKey.generate()
    agent = _agent(tmp_path, cloud_key)
    gate = AuthorisedVehicles(version=3, vehicles=[AuthorisedVehicle(plate="沪A12345")])
    cameras: list[bytes] = []
    agent.on_command("authorised_vehicles", cameras.append)  # the camera pipeline's copy
    async with _running(agent):
        # The gate list as the cloud sends it: signed, on cmd/authorised_vehicles.
        agent.publisher.on_command_message(
            cmd_topic("site-1", "gw-1", "authorised_vehicles"),
            seal_command(cloud_key, site="site-1", gateway="gw-1", name="authorised_vehicles",
                         body=gate.model_dump(mode="json"), issued_at_us=time.time_ns() // 1000))
        assert [AuthorisedVehicles.model_validate_json(c) for c in cameras] == [gate]
        agent.emit(MessageType.PLATE_READ, _plate("沪A12345"))
        _depart(agent, "LOT-A")
        await asyncio.sleep(0.5)
        assert _alerts(agent) == []
        # Not a deaf stage: an unlisted truck at the gate makes the departure a theft.
        agent.emit(MessageType.PLATE_READ, _plate("沪B55555"))
        deadline = time.monotonic() + 5
        while not _alerts(agent) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        raised = _alerts(agent)
    assert [(a["action"], a["alert_type"], a["subject"]) for a in raised] == [
        ("raise", "theft.unreleased_departure", "lot:LOT-A")]
    assert "沪B55555" in raised[0]["explanation"]
    # The list is kept across a restart of the agent.
    restarted = Agent(agent.config)
    assert restarted.alerting.gate_list == gate
    restarted.outbox.close()


async def test_what_the_rfid_pipeline_observes_becomes_the_gateway_s_alerts(
    tmp_path: Path,
) -> None:
    agent = _agent(tmp_path, Ed25519PrivateKey.generate())
    async with _running(agent):
        agent.observe(ReaderHealth("dock-1", False, "connection refused", T0_US))
        agent.observe([PresenceChange(lot="LOT-A", epc=e, state="missing", previous="present",
                                      last_seen_us=T0_US, reader="dock-2", at_us=T0_US + 1)
                       for e in ("E1", "E2")])
        deadline = time.monotonic() + 5
        while len(_alerts(agent)) < 2 and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        raised = _alerts(agent)
    assert [(a["action"], a["alert_type"], a["subject"]) for a in raised] == [
        ("raise", "tamper.reader_offline", "reader:dock-1"),
        ("raise", "theft.unreleased_departure", "lot:LOT-A")]


async def test_an_uncorroborated_absence_becomes_theft_when_its_window_ends_without_a_message(
    tmp_path: Path,
) -> None:
    # The lot's own window, from the agent's file.
    agent = _agent(tmp_path, Ed25519PrivateKey.generate(),
                   '[alerting]\nabsence_window_s = 300\n[alerting.lots]\n"LOT-A" = 0.5\n')
    assert agent.alerting.absence_windows == {"LOT-A": 0.5}
    async with _running(agent):
        _depart(agent, "LOT-A")
        await asyncio.sleep(0.2)
        assert _alerts(agent) == []  # one tag, nothing corroborates it: not yet
        deadline = time.monotonic() + 5
        while not _alerts(agent) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        raised = _alerts(agent)
    assert [(a["action"], a["alert_type"], a["subject"]) for a in raised] == [
        ("raise", "theft.unreleased_departure", "lot:LOT-A")]
    assert "absence window" in raised[0]["explanation"]


async def test_an_absence_becomes_theft_at_its_window_on_the_agents_own_clock(
    tmp_path: Path,
) -> None:
    """The agent's judge wakes on the agent's clock: on a simulated one (a raw-signal story, a
    night played in seconds) a lone departure becomes theft when the lot's absence window ends,
    with no further message to wake it."""
    from ops.clock import SimulatedClock

    clock = SimulatedClock(T0_US)
    config = _agent(tmp_path, Ed25519PrivateKey.generate(),
                    '[alerting.lots]\n"LOT-Q" = 120\n').config
    async with _running(Agent(config, clock=clock)) as agent:
        await clock.advance(1)
        _depart(agent, "LOT-Q")
        await clock.advance(118)
        assert [a for a in _alerts(agent) if a["alert_type"] == "theft.unreleased_departure"] == []
        await clock.advance(3)
        (theft,) = [a for a in _alerts(agent) if a["alert_type"] == "theft.unreleased_departure"]
        assert theft["action"] == "raise" and theft["lot"] == "LOT-Q"
