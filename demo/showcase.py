"""The rest of the product in the demo, so every panel of the map has something real in it:
a receipt issued (and pledged) for each lot, GPS trackers on a route, a rendered gate camera
through the edge's real vision pipeline, and MQTT sensors (temperature, humidity, shock,
door, seal). The devices are the firmware simulators; the gateway judges them as in the field.
"""

from __future__ import annotations

import contextlib
import threading
import time

import httpx

from demo.warehouse import GATEWAY, SITE, Demo
from geofences.fences import SITES_DIR

# Simulators that play a finite script and exit: their end is not the demo's failure.
DEVICES = ("trackers", "sensors", "camera")
LOT_FENCE = {"LOT-A": "pz-lot-a", "LOT-B": "pz-lot-b"}
LOT_BANK = {"LOT-A": "bank-a", "LOT-B": "bank-b"}


def edge_sections(demo: Demo, camera_url: str, gateway_key_file: str) -> str:
    """The gateway's tracker, sensor and camera sections (appended to the demo's edge.toml)."""
    mqtt = demo.services.mqtt_url
    evidence = demo.workdir / "evidence"
    return f"""
[trackers]
mqtt_url = "{mqtt}"
fences = "{SITES_DIR / f"{SITE}.geojson"}"
flush_s = 1

[trackers.rules]
confirm_seconds = 5

[[trackers.assets]]
tracker = "pw-coil-1"
lot = "LOT-B"
report_interval_s = 60

[[trackers.assets]]
tracker = "pw-coil-2"
lot = "LOT-B"
report_interval_s = 60

[[trackers.assets]]
tracker = "pw-truck-7"
report_interval_s = 600

[sensors]
mqtt_url = "{mqtt}"
flush_s = 2

[[sensors.devices]]
id = "cold-1"
lot = "LOT-A"
# The allowed 10 minutes, at demo.sensor_feed's 2 s per scenario minute.
temperature = {{high = 8.0, hysteresis = 0.5, min_duration_s = 20}}
humidity = {{low = 30.0, high = 80.0, min_duration_s = 20}}

[[sensors.devices]]
id = "shock-1"
lot = "LOT-A"
shock = {{high = 5.0}}

[[sensors.devices]]
id = "seal-7"
lot = "LOT-B"
seal = true

[cameras]
evidence_dir = "{evidence}"

[cameras.upload]
url = "{demo.api_url}"
api_key_file = "{gateway_key_file}"
interval_s = 3

[[cameras.cameras]]
name = "gate-south"
source = "{camera_url}"
line = {{x1 = 0.0, y1 = 0.6, x2 = 1.0, y2 = 0.6}}
"""


def gateway_api_key(demo: Demo) -> str:
    """The gateway's API key (evidence uploads), in a file beside its signing key."""
    key = demo.cloud("apikey", "--role", "gateway", "--gateway", GATEWAY, "--label", GATEWAY)
    path = demo.workdir / "gw-01.apikey"
    path.write_text(key + "\n")
    path.chmod(0o600)
    return str(path)


def spawn_devices(demo: Demo, camera_port: int) -> None:
    mqtt = demo.services.mqtt_url
    # Ten times real speed: coil-1 leaves pledge zone B within the first minutes.
    demo.spawn("trackers", "-m", "firmware_sim", "trackers", "--broker", mqtt, "--site", SITE,
               "--speedup", "10")
    # Two seconds per scenario minute (demo.sensor_feed): the temperature excursion at ~2 min.
    demo.spawn("sensors", "-m", "demo.sensor_feed", "--broker", mqtt)
    demo.spawn("camera", "-m", "firmware_sim", "camera", "serve", "--scene", "gate",
               "--port", str(camera_port), "--fps", "5", "--frames", "400",
               "--width", "960", "--height", "540")


def issue_receipts_later(demo: Demo, supervisor_key: str, lots: list[str]) -> threading.Thread:
    """Once the reader has seen the lots' tags, issue and pledge a receipt for each lot.

    In a thread: the demo's loop keeps printing meanwhile. Failures are printed, not fatal:
    the rest of the demo still shows the product.
    """
    def run() -> None:
        headers = {"Authorization": f"Bearer {supervisor_key}"}
        with httpx.Client(base_url=demo.api_url, headers=headers, timeout=10) as api:
            for n, lot in enumerate(lots, start=1):
                number, refusal = f"WR-DEMO-{n}", "the API did not answer"
                for _ in range(60):  # the tags must be read present first
                    time.sleep(1)
                    with contextlib.suppress(httpx.HTTPError):
                        r = api.put(f"/api/v1/lots/{lot}/details", json={
                            "quality": "Grade A, LME registered", "packaging": "bundles",
                            "quantity": "100.000", "unit": "t", "unit_value": "68000.00",
                            "fence": LOT_FENCE.get(lot, "warehouse-1")})
                        if r.status_code < 300:
                            r = api.post(f"/api/v1/lots/{lot}/receipts",
                                         json={"number": number})
                        if r.status_code == 201:
                            break
                        refusal = r.text[:300]
                else:
                    print(f"demo: no receipt for {lot}: {refusal}", flush=True)
                    continue
                with contextlib.suppress(httpx.HTTPError):
                    api.post(f"/api/v1/receipts/{number}/pledge",
                             json={"pledgee": LOT_BANK.get(lot, "bank-a")})
                print(f"demo: receipt {number} issued for {lot} and pledged", flush=True)

    thread = threading.Thread(target=run, name="receipts", daemon=True)
    thread.start()
    return thread
