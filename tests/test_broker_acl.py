"""The deployment broker's credentials and ACL, exercised on a real Mosquitto."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
from pathlib import Path

import aiomqtt
import pytest
import yaml

from contract.envelope import MAX_ENVELOPE_BYTES

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.integration

USERS = {"gw-1": "secret-one", "gw-2": "secret-two", "pw-ingest": "ingest-pass",
         "pw-api": "api-pass"}
ENTRYPOINT = ROOT / "deploy" / "mosquitto" / "entrypoint.sh"
PROJECT_CONF = ROOT / "deploy" / "mosquitto" / "mosquitto.conf"


def broker_env(passwords: Path) -> dict[str, str]:
    """What docker-compose hands the broker container (from .env), with the file moved here."""
    return {
        "PATH": os.environ["PATH"], "MOSQUITTO_PASSWORD_FILE": str(passwords),
        "MQTT_INGEST_PASSWORD": USERS["pw-ingest"], "MQTT_API_PASSWORD": USERS["pw-api"],
        "MQTT_GATEWAY_USERS": f"gw-1:{USERS['gw-1']} gw-2:{USERS['gw-2']}",
    }


@pytest.fixture
def secured_broker(make_broker, tmp_path: Path):  # type: ignore[no-untyped-def]
    """docker-compose's broker config itself, with its password file written by its entrypoint
    from the environment, and its container paths moved here."""
    passwords = tmp_path / "passwords"
    subprocess.run(["sh", str(ENTRYPOINT), "true"], env=broker_env(passwords), check=True)
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


async def test_credentials_from_the_environment_log_in_and_anonymous_clients_are_refused(
    secured_broker,  # type: ignore[no-untyped-def]
) -> None:
    for user in ("pw-api", "pw-ingest", "gw-2"):
        async with _client(secured_broker, user, USERS[user], f"env-{user}"):
            pass
    with pytest.raises(aiomqtt.MqttError):
        async with _client(secured_broker, None, None, "anonymous"):
            pass


def test_the_broker_entrypoint_refuses_to_start_without_passwords(tmp_path: Path) -> None:
    env = broker_env(tmp_path / "passwords")
    del env["MQTT_API_PASSWORD"]
    run = subprocess.run(["sh", str(ENTRYPOINT), "true"], check=False, env=env,
                         capture_output=True, text=True)
    assert run.returncode != 0 and "MQTT_API_PASSWORD is not set" in run.stderr
    env = {**broker_env(tmp_path / "passwords"), "MQTT_GATEWAY_USERS": "gw-1"}
    run = subprocess.run(["sh", str(ENTRYPOINT), "true"], check=False, env=env,
                         capture_output=True, text=True)
    assert run.returncode != 0 and "gateway-id:password" in run.stderr


async def test_the_projects_own_config_refuses_anonymous_clients(make_broker) -> None:  # type: ignore[no-untyped-def]
    broker = make_broker(base=PROJECT_CONF.read_text())
    with pytest.raises(aiomqtt.MqttError):
        async with _client(broker, None, None, "anonymous"):
            pass


async def test_the_broker_refuses_messages_larger_than_an_envelope(secured_broker) -> None:  # type: ignore[no-untyped-def]
    for conf in (PROJECT_CONF, ROOT / "deploy" / "mosquitto" / "compose.conf"):
        assert f"message_size_limit {MAX_ENVELOPE_BYTES}\n" in conf.read_text()
    got: list[int] = []
    async with _client(secured_broker, "pw-ingest", USERS["pw-ingest"], "ingest") as ingest:
        await ingest.subscribe("pw/v1/#", qos=1)

        async def collect() -> None:
            async for message in ingest.messages:
                got.append(len(bytes(message.payload)))  # type: ignore[arg-type]

        collector = asyncio.create_task(collect())
        # An MQTT 5 client is told the limit at CONNECT; one that sends more is disconnected.
        with contextlib.suppress(aiomqtt.MqttError):
            async with _client(secured_broker, "gw-1", USERS["gw-1"], "big") as big:
                await big.publish("pw/v1/site-1/gw-1/events", b"x" * (MAX_ENVELOPE_BYTES + 1),
                                  qos=1, timeout=5)
        async with _client(secured_broker, "gw-1", USERS["gw-1"], "small") as small:
            await small.publish("pw/v1/site-1/gw-1/events", b"fits", qos=1)
        await asyncio.sleep(1.0)
        collector.cancel()
    assert got == [4]


def test_compose_commits_no_credentials_and_publishes_plaintext_on_loopback_only() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    compose = yaml.safe_load(text)
    for name, service in compose["services"].items():
        env = service.get("environment") or {}
        for key, value in (env.items() if isinstance(env, dict) else []):
            if "PASSWORD" in key or key == "DATABASE_URL":
                assert "${" in str(value) and ":?" in str(value), f"{name}.{key} is committed"
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on all interfaces"
    assert not re.search(r"\b(pw-ingest|pw-api|gw-01):[^$\s]", text)
    assert not (ROOT / "deploy" / "mosquitto" / "passwords").exists()
    assert (ROOT / ".env.example").is_file() and ".env" in (ROOT / ".gitignore").read_text()
