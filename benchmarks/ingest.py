"""`python -m benchmarks ingest`: readings/s from a gateway through Mosquitto into PostgreSQL.

Everything on this machine: a private Mosquitto with the project's config, a fresh database,
`python -m cloud ingest` as its own process (its peak RSS is reported), and a real edge agent
(outbox, signing, batching, MQTT) publishing N readings. Sustained rate = N / (time of the last
commit - time of the first publish).

Baseline, same run: one MQTT message per reading, and a subscriber that does one autocommitted
INSERT per message.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt
import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from benchmarks._report import print_figures, print_table
from cloud.command_key import load_command_key
from cloud.migrate import migrate
from contract import MessageType, TagReadsBody, private_key_pem, public_key_b64
from edge.agent import Agent
from edge.config import load_config
from ops import timeouts

ROOT = Path(__file__).resolve().parent.parent
_CREATED: list[tuple[str, str]] = []  # (server, database) this run made, dropped at exit


def base_us() -> int:
    """Readings' first timestamp (µs): a minute ago, so they sit inside every retention window
    and today's partitions whenever the benchmark runs."""
    return time.time_ns() // 1000 - 60_000_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_broker(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text((ROOT / "deploy/mosquitto/mosquitto.conf").read_text()
                    + f"\nlistener {port} 127.0.0.1\npersistence_location {workdir}/\nuser root\n"
                    + "allow_anonymous true\n")  # a private broker on loopback opts in
    proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    for _ in range(100):
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc, port
        time.sleep(0.05)
    raise RuntimeError("mosquitto did not start")


def _fresh_database(server: str, prefix: str) -> str:
    """A new migrated database named ``prefix`` plus a unique suffix (two runs at once never
    share one); dropped when this process exits, and only the ones this process made."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    if not _CREATED:
        atexit.register(drop_created_databases)
    _CREATED.append((server, name))
    url = server.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(url, autocommit=True) as conn:
        migrate(conn)
    return url


def drop_database(server: str, url: str) -> None:
    """Drop a database ``_fresh_database`` made (FORCE: our own ingest may still hold it)."""
    name = url.rsplit("/", 1)[1]
    if (server, name) not in _CREATED:
        raise ValueError(f"{name} was not made by this run; not dropping it")
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    _CREATED.remove((server, name))


def drop_created_databases() -> None:
    for server, name in list(_CREATED):
        with contextlib.suppress(psycopg.Error):
            drop_database(server, server.rsplit("/", 1)[0] + f"/{name}")


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def _start_ingest(env: dict[str, str], log_path: Path,
                  profile: Path | None = None) -> subprocess.Popen[bytes]:
    log = log_path.open("wb")
    command = [sys.executable, "-m", "cloud", "ingest", "--client-id", "bench-ingest",
               "--metrics-port", "0"]
    if profile is not None:  # where ingest's time goes, written when it stops
        command[1:1] = ["-m", "cProfile", "-o", str(profile)]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)


def _epc(i: int, tags: int) -> str:
    return f"{0x3034257BF7194E4000000000 + i % tags:024X}"


async def _run_pipeline(database_url: str, port: int, workdir: Path, readings: int,
                        per_message: int, tags: int,
                        profile: Path | None = None) -> tuple[float, float]:
    key = Ed25519PrivateKey.generate()
    (workdir / "gw.key").write_bytes(private_key_pem(key))
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO operators VALUES ('op', 'op')")
        conn.execute("INSERT INTO sites (id, operator_id, name) VALUES ('bench', 'op', 'b')")
        conn.execute("INSERT INTO gateways (id, site_id, public_key) VALUES ('gw-1', 'bench', %s)",
                     (public_key_b64(key),))
        (workdir / "cloud.pub").write_text(public_key_b64(load_command_key(conn)))
    config = workdir / "edge.toml"
    config.write_text(f'site = "bench"\ngateway = "gw-1"\nkey_file = "gw.key"\n'
                      f'data_dir = "edge"\nhealth_interval_s = 3600\n'
                      f'[broker]\nurl = "mqtt://127.0.0.1:{port}"\nin_flight = 256\n')
    env = {**os.environ, "DATABASE_URL": database_url, "MQTT_URL": f"mqtt://127.0.0.1:{port}",
           "PW_INGEST_BATCH_MESSAGES": "400", "PW_INGEST_BATCH_MS": "50"}
    ingest = _start_ingest(env, workdir / "ingest.log", profile)
    try:
        for _ in range(200):
            if "ingest subscribed" in (workdir / "ingest.log").read_text():
                break
            await asyncio.sleep(0.05)
        agent = Agent(load_config(config))
        task = asyncio.create_task(agent.run())
        await asyncio.sleep(0.5)
        started = datetime.now(UTC)
        first_us = base_us()
        for start in range(0, readings, per_message):
            rows = [(_epc(i, tags), 1 + i % 4, -5500 - i % 900, first_us + i)
                    for i in range(start, min(start + per_message, readings))]
            agent.emit(MessageType.TAG_READS, TagReadsBody(reader="dock-1", reads=rows))
            if start % (per_message * 20) == 0:
                await asyncio.sleep(0)  # let the publisher run while we produce
        with psycopg.connect(database_url, autocommit=True) as conn:
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                stored = conn.execute("SELECT count(*) FROM tag_observations").fetchone()[0]
                if stored >= readings:
                    break
                await asyncio.sleep(0.2)
            last = conn.execute("SELECT max(received_at) FROM envelopes").fetchone()[0]
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        rss = _peak_rss_mb(ingest.pid)
        return readings / (last - started).total_seconds(), rss
    finally:
        ingest.send_signal(signal.SIGINT)
        ingest.wait(30)


async def _run_baseline(database_url: str, port: int, readings: int, tags: int) -> float:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE naive_readings (observed_at timestamptz, epc text, "
                      "antenna int, rssi int)")
    done = asyncio.Event()
    count = 0

    async def consume() -> None:
        nonlocal count
        conn = await psycopg.AsyncConnection.connect(database_url, autocommit=True)
        async with aiomqtt.Client("127.0.0.1", port, identifier="naive-sub",
                                  clean_session=False) as client:
            await client.subscribe("naive/#", qos=1)
            subscribed.set()
            async for message in client.messages:
                epc, antenna, rssi, at_us = bytes(message.payload).decode().split(",")  # type: ignore[arg-type]
                await conn.execute(
                    "INSERT INTO naive_readings VALUES (to_timestamp(%s / 1e6), %s, %s, %s)",
                    (int(at_us), epc, int(antenna), int(rssi)))
                count += 1
                if count >= readings:
                    done.set()
                    return

    subscribed = asyncio.Event()
    consumer = asyncio.create_task(consume())
    await subscribed.wait()
    started = time.perf_counter()
    first_us = base_us()
    async with aiomqtt.Client("127.0.0.1", port, identifier="naive-pub") as client:
        for i in range(readings):
            payload = f"{_epc(i, tags)},{1 + i % 4},{-5500 - i % 900},{first_us + i}"
            await client.publish("naive/gw-1", payload, qos=1)
    await timeouts.wait_for(done.wait(), 600)
    elapsed = time.perf_counter() - started
    consumer.cancel()
    with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
        await consumer
    return readings / elapsed


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks ingest", description=__doc__)
    parser.add_argument("--readings", type=int, default=500_000)
    parser.add_argument("--baseline-readings", type=int, default=20_000)
    parser.add_argument("--per-message", type=int, default=500)
    parser.add_argument("--tags", type=int, default=10_000, help="distinct EPCs in the stream")
    parser.add_argument("--profile", type=Path, help="write a cProfile of the ingest process here")
    parser.add_argument("--pg", default=os.environ.get(
        "PW_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args(argv)
    if shutil.which("mosquitto") is None:
        print("benchmarks ingest: the mosquitto binary is required", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="pw-bench-") as tmp:
        workdir = Path(tmp)
        broker, port = _start_broker(workdir)
        try:
            url = _fresh_database(args.pg, "pw_bench_ingest")
            rate, rss = asyncio.run(_run_pipeline(url, port, workdir, args.readings,
                                                  args.per_message, args.tags, args.profile))
            url = _fresh_database(args.pg, "pw_bench_naive")
            baseline = asyncio.run(_run_baseline(url, port, args.baseline_readings, args.tags))
        finally:
            broker.terminate()
            broker.wait(10)
    print_table("ingest: gateway -> Mosquitto -> ingest -> PostgreSQL (one machine)", [
        ("readings", args.readings),
        ("readings per message", args.per_message),
        ("sustained readings/s", round(rate, 1)),
        ("baseline readings/s (1 msg + 1 INSERT each)", round(baseline, 1)),
        ("ratio", round(rate / baseline, 1)),
        ("ingest peak RSS (MB)", rss),
    ])
    print_figures({"readings_per_s": round(rate, 1), "baseline_readings_per_s": round(baseline, 1),
                   "ratio": round(rate / baseline, 1), "ingest_peak_rss_mb": rss})
    return 0
