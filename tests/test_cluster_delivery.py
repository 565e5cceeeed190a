"""Edge -> 3-node NATS cluster (MQTT in, JetStream R3) -> 2 ingest workers -> PostgreSQL.

A broker node is SIGKILLed mid-stream and restarted, an ingest worker is SIGKILLed mid-stream,
and still every reading is stored exactly once and the edge's outbox drains to zero: once with
a node the gateway is not on, once with the very node the gateway is connected to (it fails over
to the next URL of its list).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt
import psycopg
import pytest
from pipeline_support import running_agent, scalar, wait_until, write_agent_config
from test_pipeline_delivery import emit_reads, stored

from cloud.command_key import load_command_key
from cloud.geofence_push import publish_fences, store_fences
from cloud.ingest.consumer import IngestOptions
from cloud.ingest.jetstream import (
    JetStreamIngest,
    nats_servers,
    subject_to_topic,
    topic_to_subject,
)
from contract import (
    GatewayStatusBody,
    MessageType,
    cmd_topic,
    open_command,
    seal,
    status_topic,
    telemetry_topic,
)
from ops.nats_cluster import NatsCluster
from tests.geo_fixtures import square_site

ROOT = Path(__file__).resolve().parent.parent
# 20,000 readings (the figure) in messages of 25: 800 messages over ~10 s.
READINGS = 20_000
PER_MESSAGE = 25


@pytest.fixture
def nats_cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    cluster = NatsCluster(tmp_path / "nats", size=3)
    try:
        cluster.start()
    except RuntimeError as err:
        pytest.fail(str(err))
    yield cluster
    cluster.stop()


def start_worker(tmp_path: Path, name: str, database_url: str,
                 cluster: NatsCluster) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DATABASE_URL": database_url, "MQTT_URL": cluster.mqtt_urls[0],
           "PW_BROKER": ",".join(cluster.nats_urls), "PW_INGEST_BATCH_MS": "20"}
    log = (tmp_path / f"{name}.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "cloud", "ingest", "--client-id", name, "--metrics-port", "0"],
        cwd=ROOT, env=env, stdout=log, stderr=log)


def test_broker_setting_lists_every_node() -> None:
    assert nats_servers("nats://n1:4222,n2:4222, nats://n3:4222") == [
        "nats://n1:4222", "nats://n2:4222", "nats://n3:4222"]
    with pytest.raises(ValueError, match="nats://host"):
        nats_servers("mqtt://n1:1883")


def test_topics_and_subjects_map_one_to_one() -> None:
    topic = telemetry_topic("site-1", "gw-1", "tag_reads")
    assert topic_to_subject(topic) == "pw.v1.site-1.gw-1.telemetry.tag_reads"
    assert subject_to_topic(topic_to_subject(topic)) == topic


@pytest.mark.integration
@pytest.mark.slow
async def test_a_cloud_command_sent_to_one_node_reaches_a_gateway_on_another(
    database_url: str, register_gateway, nats_cluster: NatsCluster,  # type: ignore[no-untyped-def]
) -> None:
    """The cloud's other commands (here a geofence push, retained) speak MQTT to any node."""
    register_gateway(site="site-1", gateway="gw-1")
    with psycopg.connect(database_url) as conn:
        fences = store_fences(conn, square_site(site="site-1"))
        command_key = load_command_key(conn)
    await publish_fences(nats_cluster.mqtt_urls[2], fences, ["gw-1"], command_key=command_key)
    gateway_node = nats_cluster.nodes[0]
    async with aiomqtt.Client("127.0.0.1", gateway_node.mqtt_port, identifier="gw-1") as client:
        await client.subscribe(cmd_topic("site-1", "gw-1", "#"), qos=1)
        async with asyncio.timeout(20):
            async for message in client.messages:
                signed = bytes(message.payload)  # type: ignore[arg-type]
                break
    command = open_command(signed, public_key=command_key.public_key(), site="site-1",
                           gateway="gw-1", name="geofences", now_us=time.time_ns() // 1000)
    assert command.body["version"] == fences.version


@contextlib.asynccontextmanager
async def in_process_workers(database_url: str, cluster: NatsCluster,
                             count: int) -> AsyncIterator[list[JetStreamIngest]]:
    workers = [JetStreamIngest(IngestOptions(
        database_url=database_url, mqtt_url=",".join(cluster.nats_urls),
        client_id=f"ingest-{i}", batch_ms=20)) for i in range(count)]
    tasks = [asyncio.create_task(w.run()) for w in workers]
    try:
        yield workers
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


@pytest.mark.integration
@pytest.mark.slow
async def test_two_workers_apply_a_gateways_status_in_the_order_the_broker_took_it(
    database_url: str, register_gateway, nats_cluster: NatsCluster,  # type: ignore[no-untyped-def]
) -> None:
    """A last will is sealed when its connection starts, so only the broker's order tells
    which status is the latest: 2 workers must not apply a gateway's status side by side."""
    gw = register_gateway()
    states = ["online", "offline"] * 20 + ["online", "offline"]  # ends offline

    def status(seq: int, state: str) -> bytes:
        body = GatewayStatusBody(state=state, agent_version="t",
                                 session_started_us=time.time_ns() // 1000)
        return seal(gw.key, site=gw.site, gateway=gw.gateway, seq=seq,
                    type=MessageType.GATEWAY_STATUS, body=body.model_dump(mode="json"),
                    observed_at=datetime.now(UTC))

    def stored_statuses() -> int:
        return int(scalar(database_url, "SELECT count(*) FROM raw_events "  # type: ignore[arg-type]
                          "WHERE type = 'gateway_status'"))

    async with in_process_workers(database_url, nats_cluster, 2) as workers:
        # A stream keeps only what arrives once it exists (the edge's outbox covers the rest).
        await wait_until(lambda: all(w.subscribed for w in workers), 60, "the streams")
        async with aiomqtt.Client("127.0.0.1", nats_cluster.nodes[0].mqtt_port,
                                  identifier="gw-1") as client:
            # Seqs deliberately out of step with the order: the order is the broker's.
            for i, state in enumerate(states):
                await client.publish(status_topic(gw.site, gw.gateway), status(1000 - i, state),
                                     qos=1)
        await wait_until(lambda: stored_statuses() == len(states), 60,
                         "every status to be stored")
    assert scalar(database_url, "SELECT online FROM gateways WHERE id = %s",
                  (gw.gateway,)) is False
    # Applied one after the other in the broker's order: each in a later transaction.
    with psycopg.connect(database_url) as conn:
        applied = conn.execute("SELECT seq FROM envelopes ORDER BY received_at, seq DESC"
                               ).fetchall()
    assert [seq for (seq,) in applied] == [1000 - i for i in range(len(states))]


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("killed", [2, 0], ids=["another-node", "the-gateways-node"])
async def test_cluster_loses_a_node_and_a_worker_and_stores_every_reading_once(
    database_url: str, register_gateway, tmp_path: Path,  # type: ignore[no-untyped-def]
    nats_cluster: NatsCluster, killed: int,
) -> None:
    gw = register_gateway()
    urls = nats_cluster.mqtt_urls
    config = write_agent_config(
        tmp_path / "edge.toml", site=gw.site, gateway=gw.gateway, key_file=gw.key_file,
        broker_url=urls[0],  # the gateway's node is node 0
        extra=f"failover_urls = {urls!r}\nin_flight = 128\n".replace("'", '"'))
    workers = [start_worker(tmp_path, f"ingest-{i}", database_url, nats_cluster)
               for i in range(2)]
    try:
        for i in range(2):
            await wait_until(lambda i=i: "ingest subscribed" in
                             (tmp_path / f"ingest-{i}.log").read_text(), 60,
                             f"ingest worker {i} to bind to the stream")
        async with running_agent(config) as agent:
            await wait_until(lambda: agent.publisher.stats.connected, 30, "the gateway to connect")
            per_second = READINGS // 10
            for second in range(10):
                emit_reads(agent, second * per_second, per_second, PER_MESSAGE)
                if second == 2:
                    nats_cluster.stop_node(killed, signal.SIGKILL)
                if second == 4:
                    os.kill(workers[1].pid, signal.SIGKILL)  # batches in flight, unacked
                    workers[1].wait()
                if second == 7:
                    if killed == 0:
                        # Its node is still dead: connected means connected to another one (once
                        # the MQTT session streams have elected a leader elsewhere: seconds).
                        await wait_until(lambda: agent.publisher.stats.connected, 30,
                                         "the gateway to fail over to another node")
                    nats_cluster.start_node(killed)
                await asyncio.sleep(1)
            if killed == 0:
                assert agent.publisher.stats.reconnects >= 1
            await wait_until(lambda: stored(database_url)[0] >= READINGS, 180,
                             f"{READINGS:,} readings")
            await wait_until(lambda: agent.outbox.depth == 0, 60, "every message confirmed")
            await asyncio.sleep(2)  # anything doubled would arrive now
        assert stored(database_url) == (READINGS, READINGS)
        assert scalar(database_url, "SELECT count(*) FROM dead_letters") == 0
    finally:
        for worker in workers:
            worker.kill()
            worker.wait()


def test_a_cluster_whose_port_is_taken_before_it_binds_starts_on_fresh_ports(
        tmp_path: Path) -> None:
    # The ports are picked free, but another process may take one before the node binds it.
    cluster = NatsCluster(tmp_path / "nats", size=1)
    taken = cluster.nodes[0].client_port
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", taken))
        squatter.listen()
        try:
            cluster.start()
        except RuntimeError as err:
            pytest.fail(str(err))
        try:
            assert cluster.nodes[0].client_port != taken
            assert cluster.nodes[0].running
        finally:
            cluster.stop()
