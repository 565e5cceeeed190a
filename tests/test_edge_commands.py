"""Forged commands over a real broker change nothing at a real agent; the cloud's own still work.

Before commands were signed, one anonymous publish of ``[[1, 9223372036854775807]]`` on a
gateway's ``cmd/stored`` made it delete its whole outbox: every message it had not yet had
confirmed was gone.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import aiomqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pipeline_support import running_agent, running_ingest, scalar, wait_until, write_agent_config

from cloud.command_key import load_command_key_from
from contract import MessageType, TagReadsBody, cmd_topic, seal_command
from edge.refusals import REFUSALS

pytestmark = pytest.mark.integration
BASE_US = 1_764_136_000_000_000


def forged_confirmations(cloud_key: Ed25519PrivateKey) -> list[tuple[str, bytes]]:
    everything = {"v": 1, "stored": [[1, 2**63 - 1]]}
    now = time.time_ns() // 1000

    def signed(key: Ed25519PrivateKey, **kw: object) -> bytes:
        fields: dict[str, object] = {"site": "site-1", "gateway": "gw-1", "name": "stored",
                                     "body": everything, "issued_at_us": now, **kw}
        return seal_command(key, **fields)  # type: ignore[arg-type]

    return [
        ("malformed", json.dumps(everything).encode()),  # the old, unsigned form
        ("malformed", b"[" * 100_000),
        ("malformed", b'{"v":1,"stored":[[1,' + b"9" * 5000 + b"]]}"),
        ("bad_signature", signed(Ed25519PrivateKey.generate())),
        ("misaddressed", signed(cloud_key, gateway="gw-2")),  # captured from another gateway
        ("from_the_future", signed(cloud_key, issued_at_us=now + 3600 * 10**6)),
    ]


async def test_forged_confirmations_delete_nothing_and_the_clouds_own_drain_the_outbox(
    database_url: str, mqtt_broker, register_gateway, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    gw = register_gateway()
    config = write_agent_config(tmp_path / "edge.toml", site=gw.site, gateway=gw.gateway,
                                key_file=gw.key_file, broker_url=mqtt_broker.url)
    cloud_key = load_command_key_from(database_url)
    forged = forged_confirmations(cloud_key)
    before = {reason: REFUSALS.count("cloud_command", reason) for reason, _ in forged}
    async with running_agent(config) as agent:
        for i in range(20):
            agent.emit(MessageType.TAG_READS, TagReadsBody(
                reader="dock-1", reads=[("3034257BF7194E4000003039", 1, -5500, BASE_US + i)]))
        await wait_until(lambda: agent.publisher.stats.published >= 20, 20, "the broker's acks")
        depth = agent.outbox.depth
        assert depth >= 20  # published, not confirmed: no ingest is running
        async with aiomqtt.Client("127.0.0.1", mqtt_broker.port) as attacker:
            for _, payload in forged:
                await attacker.publish(cmd_topic("site-1", "gw-1", "stored"), payload, qos=1)
        expected = dict(before)
        for reason, _ in forged:
            expected[reason] += 1
        await wait_until(
            lambda: {r: REFUSALS.count("cloud_command", r) for r in expected} == expected,
            10, "every forged confirmation to be refused and counted by its reason")
        assert agent.outbox.depth == depth  # nothing deleted

        async with running_ingest(database_url, mqtt_broker.url):
            await wait_until(lambda: agent.outbox.depth == 0, 30,
                             "the cloud's signed confirmations to drain the outbox")
    assert scalar(database_url, "SELECT count(*) FROM tag_observations") == 20
    assert agent.outbox.beyond_allocated == 0  # the cloud confirms only what was sent
