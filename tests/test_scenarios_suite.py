"""The scenario suite through the running system: edge agent (behind a link we cut), Mosquitto,
ingest, the rules, the API, the webhook worker and a local receiver. Each scenario states the
alerts it must and must not produce; the suite reports precision and recall."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import httpx
import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.webhooks.worker import WebhookSender
from contract import private_key_pem
from firmware_sim.scenario import SCENARIOS, Player, Verdict, load_scenario, summary
from tests.pipeline_support import running_ingest


async def retained_alarms(port: int) -> list[dict[str, object]]:
    found: list[dict[str, object]] = []
    async with aiomqtt.Client("127.0.0.1", port) as client:
        await client.subscribe("pw/local/+/+/alarm/#", qos=1)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                async for message in client.messages:
                    found.append(json.loads(bytes(message.payload)))  # type: ignore[arg-type]
    return found


@contextlib.asynccontextmanager
async def running_system(database_url: str, broker_url: str) -> AsyncIterator[httpx.AsyncClient]:
    from cloud.api.app import create_app
    from cloud.settings import Settings

    app = create_app(Settings(database_url=database_url, mqtt_url=broker_url))
    sender = WebhookSender(database_url, allow=["127.0.0.1"])
    async with app.router.lifespan_context(app), running_ingest(database_url, broker_url):
        worker = asyncio.create_task(sender.run(poll_s=0.5))
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                         base_url="http://api", timeout=30) as api:
                yield api
        finally:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker


async def test_scenarios_must_and_must_not(
    database_url: str, mqtt_broker, api_keys: dict[str, str],  # type: ignore[no-untyped-def]
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    operator = tmp_path / "operator.pem"
    operator.write_bytes(private_key_pem(Ed25519PrivateKey.generate()))
    monkeypatch.setenv("PW_OPERATOR_KEY_FILE", str(operator))
    verdicts: list[Verdict] = []
    async with running_system(database_url, mqtt_broker.url) as api:
        for path in sorted(SCENARIOS.glob("*.json")):
            scenario = load_scenario(str(path))
            work = tmp_path / scenario.name
            work.mkdir()
            player = Player(api, api_keys["admin"], api_keys["bank-a"], "bank-a", "site-1",
                            mqtt_broker.url, work)
            verdicts.append(await player.run(scenario))
    result = summary(verdicts)
    print(result)
    by_name = {v.scenario: v for v in verdicts}
    for v in verdicts:
        assert v.passed, (v.scenario, v.missing, v.forbidden_seen, v.timings)
    assert result["precision"] == 1.0 and result["recall"] == 1.0
    with psycopg.connect(database_url) as conn:
        # The legitimate pickup left a record of the movement, not an alert.
        moved = conn.execute("SELECT rule, explanation FROM release_movements").fetchall()
        assert [m[0] for m in moved] == ["release-pickup"]
        assert "release_approved" in moved[0][1] and "vehicle_authorised" in moved[0][1]
        # The reader and temperature alerts resolved themselves when the condition cleared.
        for alert_type in ("tamper.reader_offline", "damage.temperature", "tamper.camera_blocked"):
            assert conn.execute("SELECT state FROM alerts WHERE alert_type = %s",
                                (alert_type,)).fetchall() == [("resolved",)]
        theft = conn.execute(
            "SELECT a.subject, a.explanation, a.count FROM alerts a "
            "WHERE a.alert_type = 'theft.unreleased_departure' ORDER BY a.id").fetchall()
    # Night theft and the theft during the outage: one alert each, explained by its facts.
    assert len(theft) == 2
    assert all("vehicle_unauthorised" in t[1] and "tags_departed" in t[1] for t in theft)
    outage = by_name["network_outage_theft"]
    # While the uplink was cut the gateway's own rules sounded the alarm on the local broker.
    alarms = await retained_alarms(mqtt_broker.port)
    assert outage.local_alarms >= 1
    assert [(a["alert_type"], a["state"]) for a in alarms] == [
        ("theft.unreleased_departure", "on")]
    assert outage.webhooks >= 1 and by_name["night_theft"].webhooks >= 1
