"""`python -m benchmarks hostile`: ingest throughput with poison and cross-site messages mixed in.

Same rig as `benchmarks ingest` (private Mosquitto with the project's config, a fresh database,
`python -m cloud ingest` as its own process), but the messages are sealed up front and published
straight to the broker so the mix is exact. Site ``bench`` has a lot holding every EPC of the
stream, so the cross-site check really joins every read against ``lot_tags``.

- clean: N readings in messages of ``--per-message`` reads from the site's gateway;
- hostile, same process, fresh database: the same messages plus ``--poison-pct`` % more, a mix
  of 100,000-deep JSON, 5,000-digit seq, a time of 2**62, a far-future ts, a NUL, a forged
  signature and a valid gateway of another site naming this site's tags.

Readings/s = good readings / (last commit - first publish). The ingest process is watched: if
it exits it is restarted and counted (``ingest_restarts``; the target is 0).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt
import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from benchmarks._report import print_figures, print_table
from benchmarks.ingest import _epc, _fresh_database, _start_broker, _start_ingest, base_us
from contract import public_key_b64, seal, telemetry_topic


def _setup(database_url: str, tags: int) -> tuple[Ed25519PrivateKey, Ed25519PrivateKey]:
    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO operators VALUES ('op', 'op')")
        conn.execute("INSERT INTO sites (id, operator_id, name) VALUES ('bench', 'op', 'b'), "
                     "('other', 'op', 'o')")
        conn.execute("INSERT INTO gateways (id, site_id, public_key) VALUES ('gw-1', 'bench', %s),"
                     " ('gw-2', 'other', %s)", (public_key_b64(key), public_key_b64(other)))
        conn.execute("INSERT INTO lots (id, site_id, name) VALUES ('LOT-1', 'bench', 'l')")
        conn.execute("INSERT INTO lot_tags SELECT e, 'LOT-1' FROM unnest(%s::text[]) AS e",
                     ([_epc(i, tags) for i in range(tags)],))
    return key, other


def _messages(key: Ed25519PrivateKey, other: Ed25519PrivateKey, readings: int,
              per_message: int, tags: int, poison_pct: float) -> tuple[list[tuple[str, bytes]],
                                                                        int, int]:
    """(topic, payload) in publishing order; how many readings are good; how many poison."""
    topic = telemetry_topic("bench", "gw-1", "rfid")
    now = datetime.now(UTC)
    first_us = base_us()
    good: list[tuple[str, bytes]] = []
    for seq, start in enumerate(range(0, readings, per_message), start=1):
        rows = [[_epc(i, tags), 1 + i % 4, -5500 - i % 900, first_us + i]
                for i in range(start, min(start + per_message, readings))]
        good.append((topic, seal(key, site="bench", gateway="gw-1", seq=seq, type="tag_reads",
                                 body={"reader": "dock-1", "reads": rows}, observed_at=now)))
    stranger = Ed25519PrivateKey.generate()
    sample = [[_epc(i, tags), 1, -5500, first_us + i] for i in range(per_message)]

    def poison(n: int) -> tuple[str, bytes]:
        seq = 1_000_000 + n
        body = {"reader": "dock-1", "reads": sample}
        match n % 7:
            case 0:
                return topic, b"[" * 100_000
            case 1:
                return topic, b'{"seq":' + b"9" * 5000 + b"}"
            case 2:
                return topic, seal(key, site="bench", gateway="gw-1", seq=seq, type="tag_reads",
                                   body={"reader": "r", "reads": [[sample[0][0], 1, 0, 2**62]]},
                                   observed_at=now)
            case 3:
                return topic, seal(key, site="bench", gateway="gw-1", seq=seq, type="tag_reads",
                                   body=body, observed_at=datetime(2099, 1, 1, tzinfo=UTC))
            case 4:
                return topic, seal(key, site="bench", gateway="gw-1", seq=seq, type="tag_reads",
                                   body={"reader": "dock\x00", "reads": sample}, observed_at=now)
            case 5:
                return topic, seal(stranger, site="bench", gateway="gw-1", seq=seq,
                                   type="tag_reads", body=body, observed_at=now)
        return telemetry_topic("other", "gw-2", "rfid"), seal(
            other, site="other", gateway="gw-2", seq=n + 1, type="tag_reads", body=body,
            observed_at=now)

    count = round(len(good) * poison_pct / 100)
    every = max(1, len(good) // max(count, 1))
    mixed: list[tuple[str, bytes]] = []
    bad = 0
    for i, message in enumerate(good):
        mixed.append(message)
        if i % every == 0 and bad < count:
            mixed.append(poison(bad))
            bad += 1
    return mixed, readings, bad


async def _run(database_url: str, port: int, workdir: Path, messages: list[tuple[str, bytes]],
               readings: int) -> tuple[float, int, int]:
    """Readings/s, dead letters, ingest restarts."""
    env = {**os.environ, "DATABASE_URL": database_url, "MQTT_URL": f"mqtt://127.0.0.1:{port}",
           "PW_INGEST_BATCH_MESSAGES": "400", "PW_INGEST_BATCH_MS": "50"}
    log_path = workdir / "ingest.log"
    log_path.write_text("")
    ingest = _start_ingest(env, log_path)
    restarts = 0
    try:
        for _ in range(200):
            if "ingest subscribed" in log_path.read_text():
                break
            await asyncio.sleep(0.05)
        started = datetime.now(UTC)
        async with aiomqtt.Client("127.0.0.1", port, identifier="bench-pub") as client:
            for i in range(0, len(messages), 64):
                await asyncio.gather(*(client.publish(t, p, qos=1)
                                       for t, p in messages[i:i + 64]))
        with psycopg.connect(database_url, autocommit=True) as conn:
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                if ingest.poll() is not None:  # it died: restart it, and say so
                    restarts += 1
                    ingest = _start_ingest(env, log_path)
                row = conn.execute("SELECT count(*) FROM tag_observations").fetchone()
                if row is not None and row[0] >= readings:
                    break
                await asyncio.sleep(0.2)
            await asyncio.sleep(1.0)  # dead letters of the last batch
            figures = conn.execute("SELECT (SELECT max(received_at) FROM envelopes), "
                                   "(SELECT count(*) FROM dead_letters)").fetchone()
            assert figures is not None
            last, letters = figures
        return readings / (last - started).total_seconds(), int(letters), restarts
    finally:
        ingest.send_signal(signal.SIGINT)
        ingest.wait(30)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks hostile", description=__doc__)
    parser.add_argument("--readings", type=int, default=200_000)
    parser.add_argument("--per-message", type=int, default=500)
    parser.add_argument("--tags", type=int, default=10_000, help="distinct EPCs in the stream")
    parser.add_argument("--poison-pct", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2, help="clean/hostile pairs; best kept")
    parser.add_argument("--pg", default=os.environ.get(
        "PW_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args(argv)
    if shutil.which("mosquitto") is None:
        print("benchmarks hostile: the mosquitto binary is required", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="pw-bench-") as tmp:
        workdir = Path(tmp)
        broker, port = _start_broker(workdir)
        try:
            # Alternate the two runs and keep the best of each: the machine may be shared.
            cleans: list[float] = []
            hostiles: list[float] = []
            letters, poisoned, restarts = 0, 0, 0
            for _ in range(args.rounds):
                url = _fresh_database(args.pg, "pw_bench_hostile_clean")
                key, other = _setup(url, args.tags)
                clean_msgs, readings, _ = _messages(key, other, args.readings, args.per_message,
                                                    args.tags, 0.0)
                rate, _, n = asyncio.run(_run(url, port, workdir, clean_msgs, readings))
                cleans.append(rate)
                restarts += n
                url = _fresh_database(args.pg, "pw_bench_hostile_mixed")
                key, other = _setup(url, args.tags)
                mixed, readings, bad = _messages(key, other, args.readings, args.per_message,
                                                 args.tags, args.poison_pct)
                rate, dead, n = asyncio.run(_run(url, port, workdir, mixed, readings))
                hostiles.append(rate)
                letters, poisoned, restarts = letters + dead, poisoned + bad, restarts + n
            clean, hostile = max(cleans), max(hostiles)
        finally:
            broker.terminate()
            broker.wait(10)
    figures = {
        "clean_readings_per_s": round(clean, 1),
        "hostile_readings_per_s": round(hostile, 1),
        "ratio": round(hostile / clean, 3),
        "poison_dead_lettered_pct": round(100 * letters / poisoned, 1),
        "ingest_restarts": restarts,
    }
    print_table("hostile: ingest with poison and cross-site messages mixed in (one machine)", [
        ("readings", args.readings),
        ("readings per message", args.per_message),
        ("rounds (best of each kept)", args.rounds),
        ("poison messages (all rounds)", poisoned),
        *((k.replace("_", " "), v) for k, v in figures.items()),
    ])
    print_figures(figures)
    return 0
