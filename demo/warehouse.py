"""The simulated warehouse's setup: the demo's organisations, keys, lots and edge config.

Shared by `make demo` (demo/__main__.py) and docker-compose's one-shot bootstrap
(`python -m demo.compose_bootstrap`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contract import private_key_pem, public_key_b64
from demo.services import ROOT, Services
from firmware_sim.tags import demo_lots

SITE, GATEWAY = "demo-site", "gw-01"


def _die_with_parent() -> None:
    """Linux: the child gets SIGTERM if the demo dies without stopping it (killed, crashed)."""
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


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
                "MQTT_URL": self.services.mqtt_url, "PYTHONUNBUFFERED": "1",
                "PW_OPERATOR_KEY_FILE": str(self.workdir / "operator.pem")}

    def spawn(self, name: str, *args: str) -> None:
        log = (self.workdir / f"{name}.log").open("wb")
        assert self.procs is not None
        self.procs[name] = subprocess.Popen(
            [sys.executable, *args], cwd=ROOT, env=self.env(), stdout=log, stderr=log,
            start_new_session=True,  # Ctrl-C reaches the demo only; it stops children in order
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - the demo starts no threads
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
        # Edge first so its last messages can still be ingested, then the rest; the simulated
        # devices (demo.showcase) after the services.
        order = ("edge", "reader", "api", "webhooks", "ingest")
        for name in (*order, *sorted(set(self.procs or {}) - set(order))):
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
    # The operator's Ed25519 key signs receipts and the evidence ledger's tree heads.
    demo.cloud("receipts", "operator-key", "--out", str(demo.workdir / "operator.pem"))
    demo.cloud("operator", "--id", "demo-operator", "--name", "Demo Warehousing Co.")
    demo.cloud("financier", "--id", "bank-a", "--name", "Bank A")
    demo.cloud("financier", "--id", "bank-b", "--name", "Bank B")
    demo.cloud("site", "--id", SITE, "--operator", "demo-operator", "--name",
               "Waigaoqiao bonded warehouse 3", "--tz", "Asia/Shanghai")
    demo.admin_key = demo.cloud("apikey", "--role", "admin", "--label", "demo admin")
    keys = {
        # The label is the person's name the console shows in an alert's history.
        "supervisor": demo.cloud("apikey", "--role", "supervisor", "--operator", "demo-operator",
                                 "--label", "Li Wei (supervisor)"),
        "bank-a": demo.cloud("apikey", "--role", "financier", "--financier", "bank-a"),
        "bank-b": demo.cloud("apikey", "--role", "financier", "--financier", "bank-b"),
    }
    (demo.workdir / "api-keys.json").write_text(
        json.dumps({"admin": demo.admin_key, **keys}, indent=2)
    )
    key = Ed25519PrivateKey.generate()
    key_file = demo.workdir / "gw-01.key"
    key_file.write_bytes(private_key_pem(key))
    key_file.chmod(0o600)
    demo.cloud("gateway", "--id", GATEWAY, "--site", SITE, "--key", public_key_b64(key))
    # The cloud's command key, where the agent looks for it (beside its own key).
    demo.cloud("command-key", "--out", str(demo.workdir / "cloud.pub"))
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
                      run_id: str, *, broker_auth: tuple[str, str] | None = None,
                      extra: str = "") -> Path:
    lot_tables = "".join(
        f'\n[[rfid.lots]]\nid = "{lot}"\nabsence_window_s = {absence_window_s}\n'
        f"epcs = {json.dumps(epcs)}\n"
        for lot, epcs in lots.items()
    )
    auth = (f'username = "{broker_auth[0]}"\npassword = "{broker_auth[1]}"\n'
            if broker_auth else "")
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
{auth}
[rfid]
lot_count_interval_s = 5

[[rfid.readers]]
kind = "impinj_iot"
id = "dock-reader-1"
url = "{demo.sim_url}/api/v1/data/stream"
stale_after_s = 5
{lot_tables}{extra}""")
    return config


