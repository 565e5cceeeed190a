"""`python -m benchmarks scaleout`: readings/s through one Mosquitto vs a 3-node NATS cluster.

Same run, same machine, same edge agent and ingest code (`python -m cloud ingest` processes):

- ``mosquitto_1w``: one Mosquitto (the project's config), one ingest worker;
- ``cluster_1w`` / ``cluster_2w``: a 3-node NATS cluster (MQTT listener on each node, the
  ingest stream replicated to all 3), one then two ingest workers on the shared durable
  consumer;
- ``nats_node_1w`` (table only): one NATS node, stream not replicated: the cost of the engine
  without the replication.

Rate = N / (time of the last commit - time of the first publish). After each run the table is
checked: ``lost`` readings never stored and ``duplicates`` stored twice, summed over the runs,
must both be 0. On two cores the cluster is not faster (three servers, and every message is
written three times); what it shows is that nothing is lost and that a second worker does not
slow it down.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from benchmarks._report import print_figures, print_table
from benchmarks.ingest import _start_broker
from cloud.command_key import load_command_key
from cloud.migrate import migrate
from contract import MessageType, TagReadsBody, private_key_pem, public_key_b64
from edge.agent import Agent
from edge.config import load_config
from ops.nats_cluster import NatsCluster

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class RunResult:
    rate: float
    lost: int
    duplicates: int
    broker_rate: float  # readings/s the broker acknowledged (PUBACK), what the gateway sees
    resent: int  # messages the edge sent again (acknowledged by a broker, never confirmed)


@contextlib.contextmanager
def _database(server: str) -> Iterator[str]:
    """A database of this run's own (a unique name), dropped afterwards."""
    name = f"pw_bench_scaleout_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = server.rsplit("/", 1)[0] + f"/{name}"
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            migrate(conn)
        yield url
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _one(conn: psycopg.Connection[Any], sql: str) -> tuple[Any, ...]:
    row = conn.execute(sql).fetchone()
    assert row is not None
    return row


def _start_workers(count: int, env: dict[str, str], workdir: Path) -> list[subprocess.Popen[bytes]]:
    workers = []
    for i in range(count):
        log = (workdir / f"ingest-{i}.log").open("wb")
        workers.append(subprocess.Popen(
            [sys.executable, "-m", "cloud", "ingest", "--client-id", f"bench-ingest-{i}",
             "--metrics-port", "0"], cwd=ROOT, env=env, stdout=log, stderr=log))
    return workers


async def _run(database_url: str, broker_urls: list[str], ingest_env: dict[str, str],
               workers: int, workdir: Path, readings: int, per_message: int) -> RunResult:
    key = Ed25519PrivateKey.generate()
    (workdir / "gw.key").write_bytes(private_key_pem(key))
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO operators VALUES ('op', 'op')")
        conn.execute("INSERT INTO sites (id, operator_id, name) VALUES ('bench', 'op', 'b')")
        conn.execute("INSERT INTO gateways (id, site_id, public_key) VALUES ('gw-1', 'bench', %s)",
                     (public_key_b64(key),))
        (workdir / "cloud.pub").write_text(public_key_b64(load_command_key(conn)))
    failover = ", ".join(f'"{u}"' for u in broker_urls)
    config = workdir / "edge.toml"
    config.write_text(f'site = "bench"\ngateway = "gw-1"\nkey_file = "gw.key"\n'
                      f'data_dir = "edge"\nhealth_interval_s = 3600\n'
                      f'[broker]\nurl = "{broker_urls[0]}"\nfailover_urls = [{failover}]\n'
                      f'in_flight = 256\n')
    env = {**os.environ, "DATABASE_URL": database_url, "PW_INGEST_BATCH_MESSAGES": "400",
           "PW_INGEST_BATCH_MS": "50", **ingest_env}
    procs = _start_workers(workers, env, workdir)
    try:
        for i in range(workers):
            for _ in range(600):
                if "ingest subscribed" in (workdir / f"ingest-{i}.log").read_text():
                    break
                await asyncio.sleep(0.05)
            else:
                raise RuntimeError(f"ingest {i} did not start: "
                                   f"{(workdir / f'ingest-{i}.log').read_text()[-2000:]}")
        agent = Agent(load_config(config))
        task = asyncio.create_task(agent.run())
        for _ in range(200):
            if agent.publisher.stats.connected:
                break
            await asyncio.sleep(0.05)
        # Readings dated an hour ago: inside every retention window, never "from the future".
        base_us = time.time_ns() // 1000 - 3600 * 1_000_000
        started = datetime.now(UTC)
        for start in range(0, readings, per_message):
            rows = [(f"{0x3034257BF7194E4000000000 + i % 10_000:024X}", 1 + i % 4,
                     -5500 - i % 900, base_us + i)
                    for i in range(start, min(start + per_message, readings))]
            agent.emit(MessageType.TAG_READS, TagReadsBody(reader="dock-1", reads=rows))
            if start % (per_message * 20) == 0:
                await asyncio.sleep(0)  # let the publisher run while we produce
        messages = -(-readings // per_message)
        acked_s = float("nan")
        with psycopg.connect(database_url, autocommit=True) as conn:
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                if acked_s != acked_s and agent.publisher.stats.published >= messages:
                    acked_s = (datetime.now(UTC) - started).total_seconds()
                if _one(conn, "SELECT count(*) FROM tag_observations")[0] >= readings:
                    break
                await asyncio.sleep(0.05)
            last = _one(conn, "SELECT max(received_at) FROM envelopes")[0]
            for _ in range(300):  # the edge forgets only what the cloud confirmed
                if agent.outbox.depth == 0:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(1)  # a duplicate would arrive now
            total, distinct = _one(
                conn, "SELECT count(*), count(DISTINCT observed_at) FROM tag_observations")
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return RunResult(readings / (last - started).total_seconds(),
                         readings - distinct, total - distinct, readings / acked_s,
                         agent.publisher.stats.resent_lost)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)


def _measure(pg: str, what: str, workers: int, readings: int, per_message: int,
             nodes: int = 3) -> RunResult:
    with tempfile.TemporaryDirectory(prefix="pw-bench-scaleout-") as tmp, _database(pg) as url:
        workdir = Path(tmp)
        if what == "mosquitto":
            broker, port = _start_broker(workdir)
            try:
                mqtt = f"mqtt://127.0.0.1:{port}"
                return asyncio.run(_run(url, [mqtt], {"MQTT_URL": mqtt}, workers, workdir,
                                        readings, per_message))
            finally:
                broker.terminate()
                broker.wait(10)
        cluster = NatsCluster(workdir / "nats", size=nodes)
        cluster.start(timeout_s=60)
        try:
            env = {"MQTT_URL": cluster.mqtt_urls[0], "PW_BROKER": ",".join(cluster.nats_urls),
                   "PW_STREAM_REPLICAS": str(min(nodes, 3))}
            return asyncio.run(_run(url, cluster.mqtt_urls, env, workers, workdir, readings,
                                    per_message))
        finally:
            cluster.stop()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks scaleout", description=__doc__)
    parser.add_argument("--readings", type=int, default=100_000)
    parser.add_argument("--per-message", type=int, default=200)
    parser.add_argument("--pg", default=os.environ.get(
        "PW_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args(argv)
    for binary in ("mosquitto", "nats-server"):
        if shutil.which(binary) is None:
            print(f"benchmarks scaleout: the {binary} binary is required", file=sys.stderr)
            return 2
    n, per = args.readings, args.per_message
    mosquitto_1w = _measure(args.pg, "mosquitto", 1, n, per)
    node_1w = _measure(args.pg, "nats", 1, n, per, nodes=1)
    cluster_1w = _measure(args.pg, "nats", 1, n, per)
    cluster_2w = _measure(args.pg, "nats", 2, n, per)
    runs = (mosquitto_1w, node_1w, cluster_1w, cluster_2w)
    lost = sum(r.lost for r in runs)
    duplicates = sum(r.duplicates for r in runs)
    print_table("scaleout: gateway -> broker -> ingest workers -> PostgreSQL (one machine)", [
        ("readings per run", n),
        ("readings per message", per),
        ("one Mosquitto, 1 worker (readings/s)", round(mosquitto_1w.rate, 1)),
        ("one NATS node (R1), 1 worker (readings/s)", round(node_1w.rate, 1)),
        ("3-node NATS cluster (R3), 1 worker (readings/s)", round(cluster_1w.rate, 1)),
        ("3-node NATS cluster (R3), 2 workers (readings/s)", round(cluster_2w.rate, 1)),
        ("broker acks alone (readings/s): Mosquitto", round(mosquitto_1w.broker_rate, 1)),
        ("  one NATS node", round(node_1w.broker_rate, 1)),
        ("  3-node cluster, 1 worker", round(cluster_1w.broker_rate, 1)),
        ("  3-node cluster, 2 workers", round(cluster_2w.broker_rate, 1)),
        ("messages resent by the edge (Mosquitto, node, cluster 1w, 2w)",
         " ".join(str(r.resent) for r in runs)),
        ("lost readings (all runs)", lost),
        ("duplicated readings (all runs)", duplicates),
    ])
    print_figures({"mosquitto_1w": round(mosquitto_1w.rate, 1),
                   "cluster_1w": round(cluster_1w.rate, 1),
                   "cluster_2w": round(cluster_2w.rate, 1),
                   "lost": lost, "duplicates": duplicates})
    return 0 if lost == duplicates == 0 else 1
