"""Live map updates: delay from ingest to browser over the WebSocket feed vs REST polling.

``python -m benchmarks live [--trackers 1000] [--clients 100] [--seconds 20]``

A scratch database on the local PostgreSQL; the real API as its own process (``python -m
cloud serve``), whose CPU is measured. An ingest stand-in writes tracker fixes through the
ingest's own ``store_positions`` (the database triggers then feed ``live_events``), every
tracker once a second in 50 ms batches like ingest's default. Phase 1: ``clients`` WebSocket
clients on ``/api/v1/live``. Phase 2, the baseline: as many clients polling
``GET /api/v1/map/trackers`` once a second. Delay = client receive time - the time ingest began
writing the fix (same clock). Last line: JSON figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing import get_context
from typing import Any

import httpx
import psutil
import psycopg
import websockets
from psycopg import AsyncConnection
from psycopg.conninfo import make_conninfo

from benchmarks._report import print_figures, print_table
from cloud.apikeys import create_key
from cloud.ingest.geo_writers import store_positions
from cloud.migrate import migrate
from contract.messages import TrackerPositionsBody
from ops import timeouts

BATCH_S = 0.05
WARMUP_S = 3.0
CONNECT_S = 5.0  # clients connect before ingest starts
SITE_LON, SITE_LAT = 121.59, 31.35


@dataclass
class Delays:
    values_ms: list[float] = field(default_factory=list)
    updates: int = 0

    def add(self, ms: float, weight: int = 1) -> None:
        self.values_ms.extend([ms] * weight)
        self.updates += weight


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# -- the system under test ---------------------------------------------------------------------
@contextlib.contextmanager
def scratch_database(server_url: str) -> AsyncIterator[str]:  # type: ignore[misc]
    name = f"pw_bench_live_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = make_conninfo(server_url, dbname=name)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            migrate(conn)
            conn.execute("INSERT INTO operators VALUES ('op', 'Operator')")
            conn.execute("INSERT INTO sites (id, operator_id, name) VALUES ('s', 'op', 'Site')")
            conn.execute("INSERT INTO gateways (id, site_id, public_key) VALUES ('gw', 's', 'k')")
        yield url
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def api_process(database_url: str, port: int) -> AsyncIterator[psutil.Process]:  # type: ignore[misc]
    env = {**os.environ, "DATABASE_URL": database_url}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cloud", "--log-level", "WARNING", "serve", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            time.sleep(0.2)
        else:
            raise RuntimeError("the API did not start within 30 s")
        yield psutil.Process(proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)


async def ingest(database_url: str, trackers: int, stop: asyncio.Event) -> int:
    """Every tracker once a second, in batches every 50 ms; returns fixes written."""
    rng = random.Random(7)
    where = {f"T{i:04d}": [SITE_LON + rng.uniform(-0.01, 0.01),
                           SITE_LAT + rng.uniform(-0.01, 0.01)] for i in range(trackers)}
    names = list(where)
    per_batch = max(1, round(trackers * BATCH_S))
    written, index = 0, 0
    loop = asyncio.get_running_loop()
    async with await AsyncConnection.connect(database_url) as conn:
        next_at = loop.time()
        while not stop.is_set():
            t_us = time.time_ns() // 1000
            bodies = []
            for _ in range(per_batch):
                name = names[index % trackers]
                index += 1
                pos = where[name]
                pos[0] += rng.uniform(-2e-5, 2e-5)
                pos[1] += rng.uniform(-2e-5, 2e-5)
                bodies.append(TrackerPositionsBody(tracker=name, source="sim", fixes=[
                    (t_us, round(pos[0] * 1e7), round(pos[1] * 1e7), 500, 90)]))
            async with conn.transaction():
                await store_positions(conn, "gw", bodies)
            written += len(bodies)
            next_at += BATCH_S
            await asyncio.sleep(max(0.0, next_at - loop.time()))
    return written


def _delay_ms(received: float, fix_at: str) -> float:
    return (received - datetime.fromisoformat(fix_at).timestamp()) * 1000


# -- clients (in worker processes, so the clients' own CPU does not become the delay) ------------
@dataclass(frozen=True)
class Window:
    measure_from: float  # wall clock (time.time())
    measure_to: float

    def counts(self, at: float) -> bool:
        return self.measure_from <= at < self.measure_to


async def ws_client(url: str, key: str, delays: Delays, window: Window) -> None:
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send(json.dumps({"key": key, "after": None}))
        await ws.recv()
        while time.time() < window.measure_to:
            try:
                frame = await timeouts.wait_for(ws.recv(decode=False), 0.5)
            except TimeoutError:
                continue
            received = time.time()
            if not window.counts(received):
                continue
            # Cheap per frame: the oldest fix in it bounds the delay of every fix it carries.
            start = frame.find(b'"fix_at": "') + 11
            if start > 10:
                fix_at = frame[start:frame.index(b'"', start)].decode()
                delays.add(_delay_ms(received, fix_at), frame.count(b'"fix_at"'))


async def poll_client(client: httpx.AsyncClient, key: str, delays: Delays, window: Window,
                      errors: list[str]) -> None:
    seen: dict[str, str] = {}
    await asyncio.sleep(random.random())  # browsers do not poll in lockstep
    loop = asyncio.get_running_loop()
    next_at = loop.time()
    while time.time() < window.measure_to:
        try:
            response = await client.get("/api/v1/map/trackers",
                                        headers={"Authorization": f"Bearer {key}"})
            received = time.time()
            rows = response.json()
        except (httpx.HTTPError, ValueError) as err:
            errors.append(type(err).__name__)
            rows, received = [], time.time()
        for row in rows:
            fix_at = row["fix_at"]
            if seen.get(row["tracker"]) != fix_at:
                if window.counts(received) and row["tracker"] in seen:
                    delays.add(_delay_ms(received, fix_at))
                seen[row["tracker"]] = fix_at
        next_at += 1.0
        await asyncio.sleep(max(0.0, next_at - loop.time()))


async def _clients(kind: str, base: str, key: str, n: int, window: Window
                   ) -> tuple[list[float], int, int, float]:
    delays, errors = Delays(), []
    cpu0 = psutil.Process().cpu_times()
    if kind == "ws":
        url = base.replace("http", "ws") + "/api/v1/live"
        results = await asyncio.gather(*(ws_client(url, key, delays, window) for _ in range(n)),
                                       return_exceptions=True)
        errors = [type(r).__name__ for r in results if isinstance(r, BaseException)]
    else:
        limits = httpx.Limits(max_connections=n)
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as http:
            await asyncio.gather(*(poll_client(http, key, delays, window, errors)
                                   for _ in range(n)))
    cpu1 = psutil.Process().cpu_times()
    busy = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    # Keep what comes back small: a sample of at most 200,000 delays per worker.
    sample = delays.values_ms if len(delays.values_ms) <= 200_000 else random.Random(1).sample(
        delays.values_ms, 200_000)
    return sample, delays.updates, len(errors), busy


def client_worker(kind: str, base: str, key: str, n: int, window: Window
                  ) -> tuple[list[float], int, int, float]:
    return asyncio.run(_clients(kind, base, key, n, window))


# -- phases --------------------------------------------------------------------------------------
async def phase(kind: str, url: str, base: str, key: str, api: psutil.Process,
                args: argparse.Namespace) -> dict[str, float]:
    start = time.time() + CONNECT_S
    window = Window(start + WARMUP_S, start + WARMUP_S + args.seconds)
    per = [args.clients // args.client_procs + (i < args.clients % args.client_procs)
           for i in range(args.client_procs)]
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(args.client_procs, mp_context=get_context("spawn")) as pool:
        futures = [loop.run_in_executor(pool, client_worker, kind, base, key, n, window)
                   for n in per if n]
        await asyncio.sleep(max(0.0, start - time.time()))
        stop = asyncio.Event()
        writer = asyncio.create_task(ingest(url, args.trackers, stop))
        await asyncio.sleep(max(0.0, window.measure_from - time.time()))
        cpu0 = api.cpu_times()
        await asyncio.sleep(max(0.0, window.measure_to - time.time()))
        cpu1 = api.cpu_times()
        stop.set()
        await writer
        results = await asyncio.gather(*futures)
    busy = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    delays = [d for r in results for d in r[0]]
    return {
        "p50_ms": percentile(delays, 0.5), "p99_ms": percentile(delays, 0.99),
        "updates": sum(r[1] for r in results), "errors": sum(r[2] for r in results),
        "api_cpu_pct": 100 * busy / args.seconds,
        "clients_cpu_pct": 100 * sum(r[3] for r in results) / (args.seconds + WARMUP_S),
    }


async def run(args: argparse.Namespace) -> int:
    port = args.port or _free_port()
    with scratch_database(args.database_url) as url, api_process(url, port) as api:
        with psycopg.connect(url, autocommit=True) as conn:
            key = create_key(conn, "admin")
        base = f"http://127.0.0.1:{port}"
        live = await phase("ws", url, base, key, api, args)
        poll = await phase("poll", url, base, key, api, args)

    expected = args.trackers * args.clients * args.seconds
    rows: list[tuple[str, Any]] = [
        ("trackers (1 Hz each)", args.trackers), ("clients", args.clients),
        ("seconds measured per phase", args.seconds),
        ("fix deliveries expected per phase", int(expected)),
    ]
    for name, figures in (("WebSocket", live), ("polling", poll)):
        rows += [
            (f"{name}: fix deliveries received", int(figures["updates"])),
            (f"{name}: delay p50 ms", figures["p50_ms"]),
            (f"{name}: delay p99 ms", figures["p99_ms"]),
            (f"{name}: API CPU % (of one core)", figures["api_cpu_pct"]),
            (f"{name}: client processes CPU %", figures["clients_cpu_pct"]),
            (f"{name}: client errors", int(figures["errors"])),
        ]
    print_table("Live map: ingest -> client delay, WebSocket feed vs REST polling each second",
                rows)
    print_figures({
        "p99_ms": round(live["p99_ms"], 1), "baseline_p99_ms": round(poll["p99_ms"], 1),
        "clients": args.clients, "api_cpu_pct": round(live["api_cpu_pct"], 1),
        "p50_ms": round(live["p50_ms"], 1), "baseline_p50_ms": round(poll["p50_ms"], 1),
        "baseline_api_cpu_pct": round(poll["api_cpu_pct"], 1), "trackers": args.trackers,
        "delivered_pct": round(100 * live["updates"] / expected, 1),
        "baseline_delivered_pct": round(100 * poll["updates"] / expected, 1),
        "ratio_p99": round(poll["p99_ms"] / live["p99_ms"], 1) if live["p99_ms"] else None,
    })
    return 0


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks live", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trackers", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=20.0, help="measured per phase")
    parser.add_argument("--client-procs", type=int, default=2,
                        help="worker processes the clients run in")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--database-url", default=os.environ.get(
        "PW_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="server to create the scratch database on")
    return asyncio.run(run(parser.parse_args(argv)))
