"""docker-compose's one-shot setup: migrate, create the demo site, register the gateway.

Writes the gateway's key, its edge config and the API keys into ``--out`` (a shared volume) for
the edge container. Run after TimescaleDB and Mosquitto report healthy; even then it waits for
the database to answer a query (a container's health is only a hint), retrying with backoff.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

from demo.services import Services
from demo.warehouse import Demo, bootstrap, write_edge_config
from ops.backoff import Backoff


def wait_for_database(
    url: str, timeout_s: float, *, sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Return once ``url`` answers ``SELECT 1``; raise the last error after ``timeout_s``."""
    backoff = Backoff(initial_s=0.5, maximum_s=5)
    deadline = clock() + timeout_s
    while True:
        try:
            with psycopg.connect(url, connect_timeout=5) as conn:
                conn.execute("SELECT 1")
            return
        except psycopg.OperationalError as err:
            if clock() >= deadline:
                raise
            delay = max(0.2, backoff.next_delay())
            print(f"bootstrap: database not ready ({str(err).strip()[:120]}); "
                  f"retrying in {delay:.1f}s", flush=True)
            sleep(delay)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m demo.compose_bootstrap", description=__doc__)
    parser.add_argument("--out", default="/shared")
    parser.add_argument("--simulator-url", default="http://simulator:8081")
    parser.add_argument("--edge-broker-url", default="mqtt://mosquitto:1883")
    parser.add_argument("--absence-window", type=float, default=10)
    parser.add_argument("--tags-per-lot", type=int, default=40)
    parser.add_argument("--wait", type=float, default=120,
                        help="seconds to keep retrying the database before giving up")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if (out / "edge.toml").exists():
        print("bootstrap: already done", flush=True)  # the database keeps what it made
        return 0
    wait_for_database(os.environ["DATABASE_URL"], args.wait)
    services = Services(os.environ["DATABASE_URL"], args.edge_broker_url)
    demo = Demo(services, out, sim_url=args.simulator_url)
    lots = bootstrap(demo, args.tags_per_lot, args.absence_window)
    password = os.environ.get("GATEWAY_MQTT_PASSWORD", "")
    write_edge_config(demo, lots, args.absence_window, "compose",
                      broker_auth=("gw-01", password) if password else None)
    print(f"bootstrap: site demo-site, gateway gw-01, keys in {out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
