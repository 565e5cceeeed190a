"""1,000 malformed or forged messages among good ones: every good one stored, every bad one
dead-lettered with its reason and its exact bytes, ingest never stops."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime

import aiomqtt
import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pipeline_support import running_ingest, scalar, wait_until

from contract import seal, telemetry_topic

pytestmark = pytest.mark.integration
BASE_US = 1_764_136_000_000_000


def _reads(seq: int) -> dict[str, object]:
    return {"reader": "dock-1", "reads": [[f"{0x3034257BF7194E4000000000 + seq:024X}", 1, -5500,
                                           BASE_US + seq * 10 + k] for k in range(2)]}


async def test_bad_messages_go_to_dead_letters_and_good_ones_all_arrive(
    database_url: str, mqtt_broker, register_gateway  # type: ignore[no-untyped-def]
) -> None:
    gw = register_gateway()
    now = datetime.now(UTC)
    topic = telemetry_topic(gw.site, gw.gateway, "rfid")

    def good(seq: int) -> bytes:
        return seal(gw.key, site=gw.site, gateway=gw.gateway, seq=seq, type="tag_reads",
                    body=_reads(seq), observed_at=now)

    stranger = Ed25519PrivateKey.generate()
    bad: list[tuple[str, bytes, str]] = []  # (topic, payload, expected reason prefix)
    for i in range(200):
        bad.append((topic, b"\x00not json %d" % i, "envelope: not JSON"))
        bad.append((topic, seal(stranger, site=gw.site, gateway=gw.gateway, seq=10_000 + i,
                                type="tag_reads", body=_reads(i), observed_at=now),
                    "signature:"))
        bad.append((telemetry_topic(gw.site, "gw-x", "rfid"),
                    seal(stranger, site=gw.site, gateway="gw-x", seq=1 + i, type="tag_reads",
                         body=_reads(i), observed_at=now), "unknown gateway"))
        bad.append((topic, seal(gw.key, site=gw.site, gateway=gw.gateway, seq=20_000 + i,
                                type="tag_reads", body={"reader": "r", "reads": []},
                                observed_at=now), "body:"))
    for i in range(100):
        bad.append((telemetry_topic(gw.site, "gw-2", "rfid"), good(30_000 + i), "envelope names"))
        bad.append((f"pw/v1/{gw.site}/{gw.gateway}/bogus", good(40_000 + i), "topic:"))
    assert len(bad) == 1000

    messages = []
    for seq in range(1, 501):
        messages.append((topic, good(seq)))
        messages.extend((t, p) for t, p, _ in bad[(seq - 1) * 2: seq * 2])
        if seq % 5 == 0:
            messages.append((topic, good(seq)))  # a replay: absorbed, not an error

    async with running_ingest(database_url, mqtt_broker.url):
        await asyncio.sleep(1)  # subscribed
        async with aiomqtt.Client("127.0.0.1", mqtt_broker.port, identifier="attacker") as client:
            for start in range(0, len(messages), 100):
                await asyncio.gather(*(client.publish(t, p, qos=1)
                                       for t, p in messages[start:start + 100]))
        await wait_until(
            lambda: scalar(database_url, "SELECT count(*) FROM dead_letters") == 1000
            and scalar(database_url, "SELECT count(*) FROM envelopes") == 500, 60,
            "500 envelopes and 1,000 dead letters")

    assert scalar(database_url, "SELECT count(*) FROM tag_observations") == 1000
    with psycopg.connect(database_url) as conn:
        letters = conn.execute("SELECT topic, reason, raw FROM dead_letters").fetchall()
    sent = Counter((t, p) for t, p, _ in bad)
    assert Counter((t, bytes(r)) for t, _, r in letters) == sent  # exact bytes, each once
    expected = {p: why for _, p, why in bad}  # every bad payload is distinct
    for _, reason, raw in letters:
        assert reason.startswith(expected[bytes(raw)]) or expected[bytes(raw)] in reason, reason
