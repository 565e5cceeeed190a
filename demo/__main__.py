"""`python -m demo [--duration S]`: broker, database, ingest, API, one edge agent, a warehouse.

One site (demo-site), one gateway (gw-01), one simulated Impinj reader reading the tags of two
pledged lots (LOT-A pledged to bank-a, LOT-B to bank-b). After ``--theft-after`` seconds some
tags of LOT-A leave the field: the gateway raises ``theft.tag_missing`` and the API shows it.
Prints a line a second; Ctrl-C (or the end of ``--duration``) stops everything cleanly.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg

from contract import private_key_pem, public_key_b64
from demo.services import ROOT, Services, answers, find_broker, find_database, free_port
from firmware_sim.tags import demo_lots

SITE, GATEWAY = "demo-site", "gw-01"


@dataclass
class Demo:
    services: Services
    workdir: Path
    api_url: str = ""
    sim_url: str = ""
    admin_key: str = ""
    procs: dict[str, subprocess.Popen[bytes]] | None = None

    def env(self) -> dict[str, str]:
        return {**os.environ, "DATABASE_URL": self.services.database_url,
                "MQTT_URL": self.services.mqtt_url, "PYTHONUNBUFFERED": "1"}

    def spawn(self, name: str, *args: str) -> None:
        log = (self.workdir / f"{name}.log").open("wb")
        assert self.procs is not None
        self.procs[name] = subprocess.Popen(
            [sys.executable, *args], cwd=ROOT, env=self.env(), stdout=log, stderr=log,
            start_new_session=True,  # Ctrl-C reaches the demo only; it stops children in order
        )

    def cloud(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "cloud", "--log-level", "WARNING", *args], cwd=ROOT,
            env=self.env(), capture_output=True, text=True, check=False,
        )
        if done.returncode:
            raise RuntimeError(f"python -m cloud {' '.join(args)} failed:\n{done.stderr}")
        return done.stdout.strip()

    def stop(self) -> None:
        self.stop_processes()
        self.services.close()

    def stop_processes(self) -> None:
        # Edge first so its last messages can still be ingested, then the rest.
        for name in ("edge", "reader", "api", "ingest"):
            proc = (self.procs or {}).get(name)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(8)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def bootstrap(demo: Demo, tags_per_lot: int, absence_window_s: float) -> dict[str, list[str]]:
    demo.cloud("migrate")
    demo.cloud("operator", "--id", "demo-operator", "--name", "Demo Warehousing Co.")
    demo.cloud("financier", "--id", "bank-a", "--name", "Bank A")
    demo.cloud("financier", "--id", "bank-b", "--name", "Bank B")
    demo.cloud("site", "--id", SITE, "--operator", "demo-operator", "--name",
               "Waigaoqiao bonded warehouse 3", "--tz", "Asia/Shanghai")
    demo.admin_key = demo.cloud("apikey", "--role", "admin", "--label", "demo admin")
    keys = {
        "supervisor": demo.cloud("apikey", "--role", "supervisor", "--operator", "demo-operator"),
        "bank-a": demo.cloud("apikey", "--role", "financier", "--financier", "bank-a"),
        "bank-b": demo.cloud("apikey", "--role", "financier", "--financier", "bank-b"),
    }
    (demo.workdir / "api-keys.json").write_text(
        json.dumps({"admin": demo.admin_key, **keys}, indent=2)
    )
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    key_file = demo.workdir / "gw-01.key"
    key_file.write_bytes(private_key_pem(key))
    key_file.chmod(0o600)
    demo.cloud("gateway", "--id", GATEWAY, "--site", SITE, "--key", public_key_b64(key))
    lots = demo_lots(tags_per_lot)
    with psycopg.connect(demo.services.database_url, autocommit=True) as conn:
        for (lot_id, epcs), bank in zip(lots.items(), ("bank-a", "bank-b"), strict=True):
            conn.execute(
                "INSERT INTO lots (id, site_id, name, goods_kind, pieces, financier_id, "
                "absence_window_s) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (lot_id, SITE, f"Copper cathode {lot_id}", "copper cathode", len(epcs), bank,
                 absence_window_s),
            )
            conn.execute("INSERT INTO lot_tags (epc, lot_id) SELECT unnest(%s::text[]), %s",
                         (epcs, lot_id))
    return lots


def write_edge_config(demo: Demo, lots: dict[str, list[str]], absence_window_s: float,
                      run_id: str) -> Path:
    lot_tables = "".join(
        f'\n[[rfid.lots]]\nid = "{lot}"\nabsence_window_s = {absence_window_s}\n'
        f"epcs = {json.dumps(epcs)}\n"
        for lot, epcs in lots.items()
    )
    config = demo.workdir / "edge.toml"
    config.write_text(f"""# Written by `make demo`.
site = "{SITE}"
gateway = "{GATEWAY}"
key_file = "gw-01.key"
data_dir = "edge-data"
health_interval_s = 10

[broker]
url = "{demo.services.mqtt_url}"
client_id = "demo-{run_id}-{GATEWAY}"

[rfid]
lot_count_interval_s = 5

[[rfid.readers]]
kind = "impinj_iot"
id = "dock-reader-1"
url = "{demo.sim_url}/api/v1/data/stream"
stale_after_s = 5
{lot_tables}""")
    return config


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
        lots = bootstrap(demo, args.tags_per_lot, args.absence_window)
        api_port = args.api_port or (8000 if not answers("127.0.0.1", 8000) else free_port())
        sim_port = free_port()
        demo.api_url = f"http://127.0.0.1:{api_port}"
        demo.sim_url = f"http://127.0.0.1:{sim_port}"
        run_id = f"{os.getpid()}"
        config = write_edge_config(demo, lots, args.absence_window, run_id)
        reader_args = ["-m", "firmware_sim", "impinj-reader", "--port", str(sim_port),
                       "--tags-per-lot", str(args.tags_per_lot)]
        if args.theft_after >= 0:
            reader_args += ["--theft-after", str(args.theft_after), "--theft-lot", "LOT-A",
                            "--theft-count", "5"]
        demo.spawn("ingest", "-m", "cloud", "ingest", "--client-id", f"demo-{run_id}-ingest",
                   "--metrics-port", "0", "--subscription", "plain")
        demo.spawn("api", "-m", "cloud", "serve", "--port", str(api_port))
        demo.spawn("reader", *reader_args)
        wait_http(f"{demo.api_url}/health", 30)
        wait_http(f"{demo.sim_url}/sim/state", 15)
        demo.spawn("edge", "-m", "edge", "run", "--config", str(config))
        print(f"demo: API {demo.api_url}  (OpenAPI docs: {demo.api_url}/docs)", flush=True)
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
                if proc.poll() is not None:
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
    return run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
