"""The deployment broker's credentials and ACL, exercised on a real Mosquitto."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import aiomqtt
import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.integration

USERS = {"gw-1": "secret-one", "gw-2": "secret-two", "pw-ingest": "ingest-pass"}


@pytest.fixture
def secured_broker(make_broker, tmp_path: Path):  # type: ignore[no-untyped-def]
    """docker-compose's broker config itself, with its container paths moved here."""
    passwords = tmp_path / "passwords"
    passwords.touch()
    for user, password in USERS.items():
        subprocess.run(["mosquitto_passwd", "-b", str(passwords), user, password], check=True)
    compose = (ROOT / "deploy" / "mosquitto" / "compose.conf").read_text()
    assert "max_queued_messages 0" in compose and "persistence true" in compose
    base = "\n".join(
        line for line in compose.replace("/mosquitto/data/passwords", str(passwords))
        .replace("/mosquitto/config/acl", str(ROOT / "deploy" / "mosquitto" / "acl"))
        .splitlines()
        if not line.startswith(("listener", "persistence_location"))
    )
    return make_broker(base=base)


def _client(broker, user: str | None, password: str | None, name: str) -> aiomqtt.Client:  # type: ignore[no-untyped-def]
    return aiomqtt.Client("127.0.0.1", broker.port, username=user, password=password,
                          identifier=name, protocol=aiomqtt.ProtocolVersion.V5, timeout=5)


async def _received(broker, publishes: list[tuple[str, str, str]]) -> list[str]:  # type: ignore[no-untyped-def]
    """Publish (user, topic, payload) as each user; return what the ingest user received."""
    got: list[str] = []
    async with _client(broker, "pw-ingest", USERS["pw-ingest"], "ingest") as ingest:
        await ingest.subscribe("pw/v1/#", qos=1)

        async def collect() -> None:
            async for message in ingest.messages:
                got.append(bytes(message.payload).decode())  # type: ignore[arg-type]

        collector = asyncio.create_task(collect())
        for user, topic, payload in publishes:
            async with _client(broker, user, USERS[user], f"c-{user}") as client:
                await client.publish(topic, payload, qos=1)
        await asyncio.sleep(1.0)
        collector.cancel()
    return got


async def test_a_gateway_writes_only_its_own_topics(secured_broker) -> None:  # type: ignore[no-untyped-def]
    got = await _received(secured_broker, [
        ("gw-1", "pw/v1/site-1/gw-1/telemetry/rfid", "own"),
        ("gw-1", "pw/v1/site-1/gw-2/telemetry/rfid", "impersonation"),
        ("gw-1", "pw/v1/site-1/gw-2/cmd/stored", "forged confirmation"),
        ("gw-2", "pw/v1/site-1/gw-2/events", "gw-2 own"),
    ])
    assert sorted(got) == ["gw-2 own", "own"]


async def test_another_gateways_username_with_the_wrong_password_is_refused(
    secured_broker,  # type: ignore[no-untyped-def]
) -> None:
    with pytest.raises(aiomqtt.MqttError):
        async with _client(secured_broker, "gw-2", USERS["gw-1"], "thief"):
            pass
    with pytest.raises(aiomqtt.MqttError):
        async with _client(secured_broker, None, None, "anonymous"):
            pass


async def test_a_gateway_cannot_read_another_gateways_commands(secured_broker) -> None:  # type: ignore[no-untyped-def]
    got: list[str] = []
    async with _client(secured_broker, "gw-1", USERS["gw-1"], "snoop") as snoop:
        await snoop.subscribe("pw/v1/site-1/+/cmd/#", qos=1)

        async def collect() -> None:
            async for message in snoop.messages:
                got.append(str(message.topic))

        collector = asyncio.create_task(collect())
        async with _client(secured_broker, "pw-ingest", USERS["pw-ingest"], "cloud") as cloud:
            await cloud.publish("pw/v1/site-1/gw-2/cmd/stored", b"{}", qos=1)
            await cloud.publish("pw/v1/site-1/gw-1/cmd/stored", b"{}", qos=1)
        await asyncio.sleep(1.0)
        collector.cancel()
    assert got == ["pw/v1/site-1/gw-1/cmd/stored"]
