"""`python -m demo [--duration S]`: broker, database, ingest, API, one edge agent, a warehouse.

One site (demo-site), one gateway (gw-01), one simulated Impinj reader reading the tags of two
pledged lots (LOT-A pledged to bank-a, LOT-B to bank-b). After ``--theft-after`` seconds some
tags of LOT-A leave the field: the gateway raises ``theft.tag_missing`` and the API shows it.
Besides the reader (demo.showcase): a receipt for each lot, GPS trackers (a coil of LOT-B is
driven out), a gate camera read by the edge's vision pipeline, and MQTT sensors.
Prints a line a second; Ctrl-C (or the end of ``--duration``) stops everything cleanly.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sys
import time

import httpx
import psycopg

from demo.services import ROOT, Services, answers, find_broker, find_database, free_port
from demo.showcase import (
    DEVICES,
    edge_sections,
    gateway_api_key,
    issue_receipts_later,
    spawn_devices,
)
from demo.warehouse import GATEWAY, SITE, Demo, bootstrap, write_edge_config


def summary(demo: Demo, started: float, readings_in: int = 0) -> dict[str, int | float]:
    with psycopg.connect(demo.services.database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT (SELECT count(*) FROM tag_observations),"
            " (SELECT count(*) FROM envelopes),"
            " (SELECT count(*) FROM alerts WHERE state <> 'resolved'),"
            " (SELECT count(*) FROM alerts),"
            " (SELECT count(*) FROM dead_letters)"
        ).fetchone()
    assert rows is not None
    with contextlib.suppress(httpx.HTTPError, ValueError):
        readings_in = httpx.get(f"{demo.sim_url}/sim/state", timeout=2).json()["reads_sent"]
    return {
        "elapsed_s": round(time.monotonic() - started, 1),
        "readings_in": readings_in,
        "readings_stored": rows[0],
        "messages_stored": rows[1],
        "alerts_open": rows[2],
        "alerts_total": rows[3],
        "dead_letters": rows[4],
    }


def wait_http(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code < 500:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {seconds:.0f} s")


def print_alerts(demo: Demo, seen: set[int]) -> None:
    with contextlib.suppress(httpx.HTTPError, ValueError):
        alerts = httpx.get(f"{demo.api_url}/api/v1/alerts",
                           headers={"Authorization": f"Bearer {demo.admin_key}"}, timeout=2).json()
        for alert in alerts:
            if alert["id"] not in seen:
                seen.add(alert["id"])
                print(f"  ALERT #{alert['id']} {alert['severity']} {alert['alert_type']} "
                      f"{alert['subject']}: {alert['explanation']}", flush=True)


def clear_retained_status(mqtt_url: str) -> None:
    """A previous run's retained status was signed with its own key: clear it."""
    import asyncio
    from urllib.parse import urlsplit

    import aiomqtt

    from contract import status_topic

    url = urlsplit(mqtt_url)

    async def clear() -> None:
        async with aiomqtt.Client(url.hostname or "127.0.0.1", url.port or 1883,
                                  username=url.username, password=url.password,
                                  timeout=5) as client:
            await client.publish(status_topic(SITE, GATEWAY), b"", qos=1, retain=True)

    with contextlib.suppress(aiomqtt.MqttError, OSError):
        asyncio.run(clear())


def run(args: argparse.Namespace) -> int:
    workdir = (ROOT / "var" / "demo").resolve()
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    services = Services("", "")
    demo = Demo(services, workdir, procs={})
    interrupted = False

    def on_sigint(*_: object) -> None:
        nonlocal interrupted
        interrupted = True

    try:
        find_database(services, workdir)
        find_broker(services, workdir)
        for note in services.notes:
            print(f"demo: {note}", flush=True)
        clear_retained_status(services.mqtt_url)
        lots = bootstrap(demo, args.tags_per_lot, args.absence_window)
        api_port = args.api_port or (8000 if not answers("127.0.0.1", 8000) else free_port())
        sim_port = free_port()
        demo.api_url = f"http://127.0.0.1:{api_port}"
        demo.sim_url = f"http://127.0.0.1:{sim_port}"
        run_id = f"{os.getpid()}"
        camera_port = free_port()
        extra = "" if args.bare else edge_sections(
            demo, f"http://127.0.0.1:{camera_port}/stream.mjpg", gateway_api_key(demo))
        config = write_edge_config(demo, lots, args.absence_window, run_id, extra=extra)
        reader_args = ["-m", "firmware_sim", "impinj-reader", "--port", str(sim_port),
                       "--tags-per-lot", str(args.tags_per_lot)]
        if args.theft_after >= 0:
            reader_args += ["--theft-after", str(args.theft_after), "--theft-lot", "LOT-A",
                            "--theft-count", "5"]
        demo.spawn("ingest", "-m", "cloud", "ingest", "--client-id", f"demo-{run_id}-ingest",
                   "--metrics-port", "0", "--subscription", "plain")
        demo.spawn("api", "-m", "cloud", "serve", "--port", str(api_port))
        demo.spawn("webhooks", "-m", "cloud", "webhooks")  # financiers' endpoints, via the API
        demo.spawn("reader", *reader_args)
        wait_http(f"{demo.api_url}/health", 30)
        wait_http(f"{demo.sim_url}/sim/state", 15)
        if not args.bare:
            spawn_devices(demo, camera_port)
        demo.spawn("edge", "-m", "edge", "run", "--config", str(config))
        if not args.bare:
            keys = json.loads((workdir / "api-keys.json").read_text())
            issue_receipts_later(demo, keys["supervisor"], sorted(lots))
        print(f"demo: API {demo.api_url}  (OpenAPI docs: {demo.api_url}/docs)", flush=True)
        print(f"demo: live map {demo.api_url}/map  (log in with a key below)", flush=True)
        print(f"demo: API keys in {workdir / 'api-keys.json'}; logs in {workdir}", flush=True)
        if args.theft_after >= 0:
            print(f"demo: 5 tags of LOT-A leave the field after {args.theft_after:g} s; "
                  f"the lot's absence window is {args.absence_window:g} s", flush=True)
        signal.signal(signal.SIGINT, on_sigint)
        signal.signal(signal.SIGTERM, on_sigint)
        started = time.monotonic()
        seen: set[int] = set()
        s = summary(demo, started)
        while not interrupted:
            time.sleep(1)
            for name, proc in (demo.procs or {}).items():
                if proc.poll() is not None and (name not in DEVICES or proc.returncode):
                    raise RuntimeError(f"{name} exited with {proc.returncode}; "
                                       f"see {workdir / (name + '.log')}")
            s = summary(demo, started, int(s["readings_in"]))
            print(f"[{s['elapsed_s']:>6.1f}s] readings in {s['readings_in']:>7}  stored "
                  f"{s['readings_stored']:>7}  messages {s['messages_stored']:>5}  alerts open "
                  f"{s['alerts_open']}  dead letters {s['dead_letters']}", flush=True)
            print_alerts(demo, seen)
            if args.duration and time.monotonic() - started >= args.duration:
                break
        # Give ingest a moment to commit what the edge sent last, then stop and count.
        demo.stop_processes()
        final = summary(demo, started, int(s["readings_in"]))
        demo.services.close()
        print("demo: final summary " + json.dumps(final), flush=True)
        return 0
    except (RuntimeError, psycopg.Error, OSError) as err:
        print(f"demo: failed: {err}", file=sys.stderr)
        demo.stop()
        return 1


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__)
    parser.add_argument("--duration", type=float, default=0, help="stop after S seconds (0: run "
                        "until Ctrl-C)")
    parser.add_argument("--theft-after", type=float, default=20,
                        help="seconds until tags of LOT-A leave (-1: never)")
    parser.add_argument("--absence-window", type=float, default=10,
                        help="seconds a present tag may go unread before it is missing")
    parser.add_argument("--tags-per-lot", type=int, default=40)
    parser.add_argument("--api-port", type=int, default=0)
    parser.add_argument("--bare", action="store_true",
                        help="the reader only: no receipts, trackers, camera or sensors")
    return run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
