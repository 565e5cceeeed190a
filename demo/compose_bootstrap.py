"""docker-compose's one-shot setup: migrate, create the demo site, register the gateway.

Writes the gateway's key, its edge config and the API keys into ``--out`` (a shared volume) for
the edge container. Run after TimescaleDB and Mosquitto are up.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from demo.services import Services
from demo.warehouse import Demo, bootstrap, write_edge_config


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m demo.compose_bootstrap", description=__doc__)
    parser.add_argument("--out", default="/shared")
    parser.add_argument("--simulator-url", default="http://simulator:8081")
    parser.add_argument("--edge-broker-url", default="mqtt://mosquitto:1883")
    parser.add_argument("--absence-window", type=float, default=10)
    parser.add_argument("--tags-per-lot", type=int, default=40)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if (out / "edge.toml").exists():
        print("bootstrap: already done", flush=True)  # the database keeps what it made
        return 0
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
