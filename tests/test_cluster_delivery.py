"""Edge -> 3-node NATS cluster (MQTT in, JetStream R3) -> 2 ingest workers -> PostgreSQL.

A broker node is SIGKILLed mid-stream and restarted, an ingest worker is SIGKILLed mid-stream,
and still every reading is stored exactly once and the edge's outbox drains to zero: once with
a node the gateway is not on, once with the very node the gateway is connected to (it fails over
to the next URL of its list).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pipeline_support import running_agent, scalar, wait_until, write_agent_config
from test_pipeline_delivery import emit_reads, stored

from ops.nats_cluster import NatsCluster

pytestmark = [pytest.mark.integration, pytest.mark.slow]
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
