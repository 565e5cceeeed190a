"""Alert latency end to end: a sensor event at the gateway -> webhook at the financier.

Path: edge agent (signed, outbox) -> Mosquitto -> ingest (the alerting stage inside its batch
transaction) -> alert + webhook outbox row in one commit -> NOTIFY -> webhook worker ->
a local HTTP receiver, in a process of its own as the financier's server would be. The event
is a pledged lot's tags departing while an unauthorised truck is at the gate
(theft.unreleased_departure). Meanwhile the same agent publishes background RFID load (default
10,000 readings/s), as its readers would: the gateway that sees the theft is the busy one.

Baseline, same run: a gateway that forwards its reads and decides nothing, ingest without
rules (PW_RULES_IN_INGEST=0) and a polling rules engine that scans the events table once a
second and runs the same rules on what is new.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from psycopg import AsyncConnection

from benchmarks._report import print_figures, print_table
from benchmarks.ingest import ROOT, _fresh_database, _start_broker, drop_database
from cloud.alerting.stage import correlate
from cloud.ingest.decode import Accepted
from cloud.ingest.facts import site_batches
from contract import (
    MessageType,
    PresenceChangeBody,
    TagReadsBody,
    private_key_pem,
    public_key_b64,
    validate_body,
)
from contract.envelope import Envelope
from contract.messages import PlateReadBody
from edge.alerting import EdgeAlerting, Verdict
from firmware_sim.scenario.receiver import WebhookInbox
from ops import timeouts
from ops.runtime import settle_after_start_up


def _seed(database_url: str, key: Ed25519PrivateKey, lots: int, workdir: Path) -> None:
    from cloud.command_key import load_command_key

    with psycopg.connect(database_url, autocommit=True) as conn:
        (workdir / "cloud.pub").write_text(public_key_b64(load_command_key(conn)))
        conn.execute("INSERT INTO operators VALUES ('op', 'op')")
        conn.execute("INSERT INTO sites (id, operator_id, name) VALUES ('bench', 'op', 'b')")
        conn.execute("INSERT INTO financiers VALUES ('bank', 'Bank')")
        conn.execute("INSERT INTO gateways (id, site_id, public_key) VALUES ('gw-1', 'bench', %s)",
                     (public_key_b64(key),))
        for i in range(lots):
            conn.execute("INSERT INTO lots (id, site_id, name, financier_id) "
                         "VALUES (%s, 'bench', %s, 'bank')", (f"L{i}", f"lot {i}"))


def _add_endpoint(database_url: str, url: str) -> None:
    from cloud.webhooks.signing import new_secret

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO webhook_endpoints (id, financier_id, url) VALUES "
                     "('ep-bench', 'bank', %s)", (url,))
        conn.execute("INSERT INTO webhook_secrets (endpoint_id, secret) VALUES "
                     "('ep-bench', %s)", (new_secret(),))


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("wb")
    return subprocess.Popen([sys.executable, "-m", "cloud", *args], cwd=ROOT, env=env,
                            stdout=out, stderr=out)


class _Inbox:
    """The financier's receiver (WebhookInbox) in a process of its own, as it would be: in a
    thread of this process it shared the interpreter lock with the agent and its 10,000
    readings/s, and a request waited for the agent before it was even read."""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(target=_serve_inbox, args=(child,), daemon=True)
        self._process.start()
        if not self._conn.poll(30):
            raise RuntimeError("the webhook receiver did not start")
        self.port: int = self._conn.recv()

    def count(self) -> int:
        self._conn.send("count")
        return int(self._conn.recv())

    def stop(self) -> list[tuple[float, dict[str, str], bytes]]:
        """What the receiver got (time received, headers, body); ends its process."""
        self._conn.send("stop")
        received: list[tuple[float, dict[str, str], bytes]] = self._conn.recv()
        self._process.join(10)
        return received


def _serve_inbox(conn: Connection) -> None:
    async def serve() -> None:
        inbox = WebhookInbox()
        async with inbox.serving():
            conn.send(inbox.port)
            while (await asyncio.to_thread(conn.recv)) != "stop":  # off the loop: it serves
                conn.send(len(inbox.received))
        conn.send(inbox.received)

    asyncio.run(serve())


class _Forwarding(EdgeAlerting):
    """The baseline's gateway: it forwards what it reads and decides nothing, so the polling
    engine's alert is the one the financier gets (with the gateway's own incident decision,
    as the real agent makes it, the baseline would time that path instead)."""

    def on_emitted(self, *args: Any, **kwargs: Any) -> Verdict:
        return Verdict()

    def on_observed(self, *args: Any, **kwargs: Any) -> Verdict:
        return Verdict()

    def tick(self, *args: Any, **kwargs: Any) -> Verdict:
        return Verdict()


async def _poll_rules(database_url: str, stop: asyncio.Event) -> None:
    """The baseline rules engine: once a second, scan the events table for what is new."""
    last_seq = 0
    async with await AsyncConnection.connect(database_url) as conn:
        while not stop.is_set():
            started = time.monotonic()
            cur = await conn.execute(
                "SELECT e.gateway_id, e.seq, e.type, e.body, e.observed_at, g.site_id "
                "FROM raw_events e JOIN gateways g ON g.id = e.gateway_id "
                "WHERE e.seq > %s ORDER BY e.seq", (last_seq,))
            items = []
            for gw, seq, msg_type, body, at, site in await cur.fetchall():
                last_seq = max(last_seq, seq)
                env = Envelope(version=1, site=site, gateway=gw, seq=seq, observed_at=at,
                               observed_at_text=at.isoformat(), clock_offset_ms=None,
                               type=msg_type, body=body, signature=b"")
                items.append(Accepted(env, validate_body(msg_type, body), "", b""))
            for batch in site_batches(items):
                await correlate(conn, batch)
            await conn.commit()
            with contextlib.suppress(TimeoutError):
                await timeouts.wait_for(stop.wait(), max(0.0, 1.0 - (time.monotonic() - started)))


async def _run(mode: str, server: str, args: argparse.Namespace, workdir: Path
               ) -> tuple[list[float], float, tuple[float, float]]:
    from edge.agent import Agent
    from edge.config import load_config

    database_url = _fresh_database(server, f"pw_bench_alerts_{mode}")
    key = Ed25519PrivateKey.generate()
    (workdir / "gw.key").write_bytes(private_key_pem(key))
    _seed(database_url, key, args.events, workdir)
    broker, port = _start_broker(workdir)
    env = {**os.environ, "DATABASE_URL": database_url, "MQTT_URL": f"mqtt://127.0.0.1:{port}",
           "PW_WEBHOOK_ALLOW": "127.0.0.1", "PW_INGEST_BATCH_MS": "20",
           "PW_RULES_IN_INGEST": "1" if mode == "rules" else "0"}
    inbox = _Inbox()
    procs: list[subprocess.Popen[bytes]] = []
    stop = asyncio.Event()
    try:
        try:
            _add_endpoint(database_url, f"http://127.0.0.1:{inbox.port}/hooks")
            procs.append(_spawn(["ingest", "--client-id", f"bench-{mode}", "--metrics-port",
                                 "0"], env, workdir / "ingest.log"))
            procs.append(_spawn(["webhooks", "--poll-s", "1"], env, workdir / "webhooks.log"))
            for _ in range(200):
                if "ingest subscribed" in (workdir / "ingest.log").read_text():
                    break
                await asyncio.sleep(0.05)
            poller = (asyncio.create_task(_poll_rules(database_url, stop))
                      if mode == "polling" else None)
            config = workdir / "edge.toml"
            config.write_text(f'site = "bench"\ngateway = "gw-1"\nkey_file = "gw.key"\n'
                              f'data_dir = "edge-{mode}"\nhealth_interval_s = 3600\n'
                              f'[broker]\nurl = "mqtt://127.0.0.1:{port}"\nin_flight = 256\n')
            agent = Agent(load_config(config))
            if mode == "polling":  # the naive system's gateway decides nothing: it forwards
                agent.alerting = _Forwarding(None)
            settle_after_start_up()  # this process is the gateway's: as edge/__main__ does
            agent_task = asyncio.create_task(agent.run())

            async def background() -> None:
                per_msg = 100
                interval = per_msg / args.readings_per_s
                i, next_at = 0, time.monotonic()
                while not stop.is_set():
                    now_us = time.time_ns() // 1000
                    rows: list[tuple[str, int, int | None, int]] = [
                        (f"{0x3034257BF7194E4000000000 + (i + k) % 5000:024X}", 1, -5500, now_us)
                        for k in range(per_msg)]
                    agent.emit(MessageType.TAG_READS, TagReadsBody(reader="dock-1", reads=rows))
                    i += per_msg
                    next_at += interval
                    await asyncio.sleep(max(0.0, next_at - time.monotonic()))

            load = asyncio.create_task(background())
            await asyncio.sleep(1.0)
            now_us = time.time_ns() // 1000
            agent.emit(MessageType.PLATE_READ, PlateReadBody(
                camera="gate", plate="ZZ00001", region="cn", plate_format="cn_blue",
                confidence_pct=95, reads=4, first_seen_us=now_us, last_seen_us=now_us,
                box=(0, 0, 10, 10)))
            await asyncio.sleep(1.5)
            sent_at: dict[str, float] = {}
            for n in range(args.events):
                lot = f"L{n}"
                sent_at[lot] = time.time()
                agent.emit(MessageType.PRESENCE_CHANGE, PresenceChangeBody(
                    lot=lot, epc=f"BEEF{n:08X}", state="missing", previous="present",
                    last_seen_us=None))
                await asyncio.sleep(args.spacing_s)
            deadline = time.time() + 15
            # The receiver has no event to await; its count is a cheap question.
            while inbox.count() < args.events and time.time() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            stop.set()
            await load
            agent_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await agent_task
            if poller is not None:
                await poller
            readings_per_s = await _stored_rate(database_url)
            ingest_lag = await _ingest_lag_ms(database_url)
        finally:
            received = inbox.stop()
        latencies = []
        for at, _headers, body in received:
            lot = json.loads(body)["data"]["alert"]["lot_id"]
            if lot in sent_at:
                latencies.append((at - sent_at.pop(lot)) * 1000)
        if sent_at:
            print(f"  {mode}: {len(sent_at)} events never reached the receiver", file=sys.stderr)
        return latencies, readings_per_s, ingest_lag
    finally:
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        broker.terminate()
        broker.wait(10)
        drop_database(server, database_url)


async def _ingest_lag_ms(database_url: str) -> tuple[float, float]:
    """Median wait of the departures between the gateway and ingest (the queue), and from
    the alert's transaction to the webhook worker's attempt."""
    async with await AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM "
            "received_at - observed_at)) FROM envelopes WHERE type = 'presence_change'")
        queue = await cur.fetchone()
        cur = await conn.execute(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM "
            "a.at - h.at)) FROM webhook_attempts a JOIN webhook_deliveries d "
            "ON d.id = a.delivery_id JOIN webhook_messages m ON m.seq = d.message_seq "
            "JOIN alert_history h ON h.alert_id = m.alert_id AND h.action = 'opened'")
        outbox = await cur.fetchone()

    def ms(row: Any) -> float:
        return round(float(row[0]) * 1000, 1) if row and row[0] is not None else float("nan")

    return ms(queue), ms(outbox)


async def _stored_rate(database_url: str) -> float:
    async with await AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute("SELECT count(*), extract(epoch FROM max(received_at) - "
                                 "min(received_at)) FROM envelopes WHERE type = 'tag_reads'")
        row = await cur.fetchone()
    assert row is not None
    count, span = row
    return 0.0 if not span else round(count * 100 / float(span))


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks alerts", description=__doc__)
    parser.add_argument("--events", type=int, default=40)
    parser.add_argument("--spacing-s", type=float, default=0.25)
    parser.add_argument("--readings-per-s", type=int, default=10_000)
    parser.add_argument("--database", default=os.environ.get(
        "PW_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args(argv)
    results: dict[str, Any] = {}
    for mode in ("rules", "polling"):
        with tempfile.TemporaryDirectory() as tmp:
            results[mode] = asyncio.run(_run(mode, args.database, args, Path(tmp)))
    fast, fast_rate, (fast_lag, fast_outbox) = results["rules"]
    slow, _, (slow_lag, _) = results["polling"]
    rows = []
    for label, values in (("rules in ingest", fast), ("polling baseline (1 s scan)", slow)):
        rows += [(f"{label}: delivered", f"{len(values)}/{args.events}"),
                 (f"{label}: p50 ms", _pct(values, 0.5)),
                 (f"{label}: p95 ms", _pct(values, 0.95)),
                 (f"{label}: p99 ms", _pct(values, 0.99))]
    rows.append(("background readings/s (stored)", fast_rate))
    rows.append(("of which gateway -> ingest commit, p50 ms", fast_lag))
    rows.append(("of which alert commit -> webhook attempt, p50 ms", fast_outbox))
    rows.append(("(baseline run) gateway -> ingest commit, p50 ms", slow_lag))
    print_table(f"Alert latency, sensor event -> webhook, {datetime.now(UTC):%Y-%m-%d}", rows)
    p99, base = _pct(fast, 0.99), _pct(slow, 0.99)
    print_figures({
        "p50_ms": _pct(fast, 0.5), "p95_ms": _pct(fast, 0.95), "p99_ms": p99,
        "baseline_p50_ms": _pct(slow, 0.5), "baseline_p99_ms": base,
        "ratio": round(base / p99, 2) if p99 and p99 == p99 else None,
        "background_readings_per_s": args.readings_per_s,
        "background_stored_readings_per_s": fast_rate,
        "ingest_queue_p50_ms": fast_lag,
        "outbox_to_attempt_p50_ms": fast_outbox,
        "delivered": len(fast), "events": args.events,
        "mean_ms": round(statistics.fmean(fast), 1) if fast else None,
    })
    return 0
