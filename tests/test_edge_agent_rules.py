"""The agent runs the cloud's correlation rules on its own facts and sounds the local alarm
while the cloud is unreachable (here: no broker at all)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiomqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contract import MessageType, PresenceChangeBody, open_envelope, public_key_b64
from contract.messages import PlateReadBody
from edge.__main__ import main as edge_main
from edge.agent import Agent
from edge.config import load_config

pytestmark = pytest.mark.integration
T0_US = 1_764_136_000_000_000  # wire times lie in 2000..2100 (contract.bounds)


async def test_unauthorised_plate_and_departed_tags_raise_theft_and_sound_the_alarm(
    tmp_path: Path, mqtt_broker  # type: ignore[no-untyped-def]
) -> None:
    assert edge_main(["keygen", "--out", str(tmp_path / "gw.key")]) == 0
    (tmp_path / "cloud.pub").write_text(public_key_b64(Ed25519PrivateKey.generate()))
    config = tmp_path / "edge.toml"
    config.write_text(f"""
site = "site-1"
gateway = "gw-1"
key_file = "gw.key"
data_dir = "data"
[broker]
url = "mqtt://127.0.0.1:1"
[local_alarm]
host = "127.0.0.1"
port = {mqtt_broker.port}
""")
    agent = Agent(load_config(config))  # never connected: the cloud is unreachable
    alarms: list[dict[str, object]] = []
    async with aiomqtt.Client("127.0.0.1", mqtt_broker.port) as siren:
        await siren.subscribe("pw/local/site-1/gw-1/alarm/#", qos=1)
        agent.emit(MessageType.PLATE_READ, PlateReadBody(
            camera="gate", plate="沪A12345", region="cn", plate_format="cn_standard",
            confidence_pct=90, reads=3, direction="out", first_seen_us=T0_US,
            last_seen_us=T0_US + 1,
            box=(1, 1, 1, 1)))
        agent.emit(MessageType.PRESENCE_CHANGE, PresenceChangeBody(
            lot="LOT-A", epc="3034257BF7194E4000003030", state="missing", previous="present",
            last_seen_us=T0_US, reader="r1"))
        async with asyncio.timeout(10):
            async for message in siren.messages:
                alarms.append(json.loads(bytes(message.payload)))  # type: ignore[arg-type]
                break
    assert alarms[0]["state"] == "on"
    assert str(alarms[0]["alert_type"]).startswith("theft.")
    stored = [open_envelope(m.payload) for m in agent.outbox.pending(after=0, limit=100)]
    raised = [e.body for e in stored if e.type == "alert"]
    assert [(a["action"], a["subject"], a["evidence"]["decided_at"]) for a in raised] == [
        ("raise", "lot:LOT-A", "edge")]
    agent.outbox.close()
