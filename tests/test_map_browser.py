"""The supervisor's map in a real headless Chromium against a running system: simulated Impinj
reader -> edge agent -> Mosquitto -> ingest -> PostgreSQL -> API -> page over a WebSocket."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from firmware_sim.impinj_reader import STREAM_PATH, SimulatedImpinjReader, TagField
from firmware_sim.tags import demo_lots
from tests.conftest import free_port
from tests.map_fixtures import ARTIFACTS, CJK_GLYPHS_DIFFER, add_lots, chromium, running_api
from tests.pipeline_support import running_agent, running_ingest, write_agent_config

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.slow]

SITE, GATEWAY = "demo-site", "gw-01"  # demo-site: its fences ship in geofences/sites/


def rfid_section(sim_port: int, lots: dict[str, list[str]]) -> str:
    lot_tables = "".join(
        f'\n[[rfid.lots]]\nid = "{lot}"\nabsence_window_s = 2\nepcs = {json.dumps(epcs)}\n'
        for lot, epcs in lots.items()
    )
    return f"""
[rfid]
lot_count_interval_s = 1
min_window_s = 1
tick_interval_s = 0.2
# The simulated reader reads each tag with 0.6-0.9 per cycle: 16 cycles of proof, not 39.
cycle_read_probability = 0.6

[[rfid.readers]]
kind = "impinj_iot"
id = "dock-reader-1"
url = "http://127.0.0.1:{sim_port}{STREAM_PATH}"
stale_after_s = 5
{lot_tables}"""


async def sign_in(context: Any, url: str, key: str) -> Any:
    page = await context.new_page()
    await page.goto(f"{url}/map")
    # One profile for both users: forget a key another tab saved, as "log out" would.
    await page.evaluate("localStorage.removeItem('pw.key')")
    await page.reload()
    await page.fill("#key", key)
    await page.click("#login button[type=submit]")
    await page.wait_for_selector("#conn[data-state=live]", timeout=10_000)
    return page


async def test_supervisor_sees_theft_acknowledges_it_and_a_financier_sees_only_their_lot(
    database_url: str, mqtt_broker: Any, register_gateway: Any, api_keys: dict[str, str],
    tmp_path: Path,
) -> None:
    gw = register_gateway(SITE, GATEWAY)
    lots = demo_lots(12)
    add_lots(database_url, SITE, {"LOT-A": ("bank-a", lots["LOT-A"]),
                                  "LOT-B": ("bank-b", lots["LOT-B"])})
    field = TagField(lots, read_rate=(0.85, 0.95))
    port = free_port()
    async with SimulatedImpinjReader(field, host="127.0.0.1", port=0, cycle_s=0.2) as sim:
        config = write_agent_config(
            tmp_path / "edge.toml", site=SITE, gateway=GATEWAY, key_file=gw.key_file,
            broker_url=mqtt_broker.url, extra=rfid_section(sim.port, lots))
        async with running_ingest(database_url, mqtt_broker.url), running_agent(config), \
                chromium(tmp_path / "profile") as browser:
            async with running_api(database_url, port) as url:
                page = await sign_in(browser, url, api_keys["supervisor"])
                # The map is set in the project's font, served by the API, as the receipt is.
                assert await page.evaluate(
                    """async () => {
                        await document.fonts.ready;
                        const faces = await document.fonts.load(
                            '16px "Pledgewatch Receipt"', '仓单');
                        return faces.length === 1 && faces[0].status === 'loaded'
                            && getComputedStyle(document.querySelector('.leaflet-container'))
                                   .fontFamily.startsWith('"Pledgewatch Receipt"');
                    }""")
                # Fences from the site's GeoJSON and both lots, all tags present at first.
                assert await page.locator("path.fence-id-warehouse-1").count() == 1
                assert await page.locator("path.fence-id-gate-south").count() == 1
                await page.wait_for_selector(
                    '.lot-label[data-lot="LOT-A"][data-state="present"]', timeout=20_000)
                await page.wait_for_selector('.lot-label[data-lot="LOT-B"]')
                await page.wait_for_selector('.device.gw.on[data-gateway="gw-01"]')

                field.remove("LOT-A", 4)  # a theft: four cathodes leave the reader's field
                stolen_at = time.monotonic()
                item = page.locator('li.alert[data-type="theft.unreleased_departure"]')
                await item.wait_for(timeout=20_000)
                seen_after_s = time.monotonic() - stolen_at
                # The absence window is 2 s; the alert reaches the page within seconds of it.
                assert seen_after_s < 12, seen_after_s
                await page.wait_for_selector('.lot-label[data-lot="LOT-A"][data-state="alert"]')
                alert_id = int(await item.get_attribute("data-alert-id") or 0)

                await item.click()  # flies to the lot and opens its evidence
                await page.wait_for_selector(f'[data-alert-panel="{alert_id}"]')
                assert "LOT-A" in await page.inner_text("#detail")
                await page.click(f'li.alert[data-alert-id="{alert_id}"] button.ack')
                await page.wait_for_selector(
                    f'li.alert[data-alert-id="{alert_id}"].st-acknowledged', timeout=5_000)
                async with httpx.AsyncClient(base_url=url) as api:
                    stored = (await api.get(
                        f"/api/v1/alerts/{alert_id}",
                        headers={"Authorization": f"Bearer {api_keys['supervisor']}"})).json()
                assert stored["state"] == "acknowledged"
                assert stored["acknowledged_by"] == api_keys["supervisor"].split("_")[1]
                await page.wait_for_timeout(800)  # let the fly-to settle for the picture
                ARTIFACTS.mkdir(exist_ok=True)
                await page.screenshot(path=str(ARTIFACTS / "map-supervisor-theft.png"))

                await page.click('.lot-label[data-lot="LOT-B"]')  # the lot panel
                await page.wait_for_selector('[data-lot-panel="LOT-B"]')
                assert "12 present" in await page.inner_text("#detail")
                await page.click(f'li.alert[data-alert-id="{alert_id}"]')
                await page.wait_for_selector(f'[data-alert-panel="{alert_id}"]')

                financier = await sign_in(browser, url, api_keys["bank-b"])
                await financier.wait_for_selector('.lot-label[data-lot="LOT-B"]')
                assert await financier.locator('.lot-label[data-lot="LOT-A"]').count() == 0
                assert await financier.locator(f'li.alert[data-alert-id="{alert_id}"]').count() == 0
                assert await financier.locator("button.ack").count() == 0
                await financier.close()

                await page.evaluate("window.__sameDocument = true")
            # The API is down: the page says so, and what happens meanwhile is not lost.
            await page.wait_for_selector("#conn[data-state=down]", timeout=10_000)
            assert await page.is_visible("#down-banner")
            field.remove("LOT-B", 3)
            await page.wait_for_timeout(4_000)  # the edge and ingest keep running meanwhile
            async with running_api(database_url, port):
                await page.wait_for_selector("#conn[data-state=live]", timeout=20_000)
                await page.wait_for_selector(
                    '.lot-label[data-lot="LOT-B"][data-state="alert"]', timeout=10_000)
                assert await page.evaluate("window.__sameDocument === true")  # resumed, no reload
                assert not await page.is_visible("#down-banner")


def jpeg(width: int = 120, height: int = 40) -> bytes:
    import cv2
    import numpy as np

    image = np.full((height, width, 3), (200, 120, 20), np.uint8)
    cv2.putText(image, "A12345", (6, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2)
    ok, data = cv2.imencode(".jpg", image)
    assert ok
    return bytes(data)


# A coil on its tracker leaves pledge zone B through the south gate on a truck.
ROUTE = [(121.59100, 31.34955), (121.59060, 31.34940), (121.59010, 31.34930),
         (121.59000, 31.34915), (121.58998, 31.34890)]


async def test_a_tracker_moves_with_its_trail_a_truck_shows_its_plate_and_evidence_opens(
    database_url: str, register_gateway: Any, api_keys: dict[str, str], tmp_path: Path,
) -> None:
    import hashlib
    from datetime import UTC, datetime

    from psycopg import AsyncConnection

    from cloud.alerts import raise_alert
    from cloud.ingest.geo_writers import store_geofence_events, store_positions
    from contract.messages import GeofenceEventBody, TrackerPositionsBody
    from decisions.alert_text import alert_text

    register_gateway(SITE, GATEWAY)
    add_lots(database_url, SITE, {"LOT-B": ("bank-b", demo_lots(6)["LOT-B"])})
    crop = jpeg()
    sha = hashlib.sha256(crop).hexdigest()
    async with running_api(database_url, free_port()) as url, \
            chromium(tmp_path / "profile") as browser, \
            await AsyncConnection.connect(database_url) as conn:
        page = await sign_in(browser, url, api_keys["supervisor"])
        start_us = time.time_ns() // 1000
        for i, (lon, lat) in enumerate(ROUTE):  # what ingest stores from the gateway's batches
            fix = (start_us + i * 1_000_000, round(lon * 1e7), round(lat * 1e7), 400, 80)
            async with conn.transaction():
                await store_positions(conn, GATEWAY, [TrackerPositionsBody(
                    tracker="coil-7", source="owntracks", fixes=[fix])])
                if i == 3:
                    await store_geofence_events(conn, GATEWAY, [(40 + i, "geofence_exit",
                        GeofenceEventBody(tracker="coil-7", fence="pz-lot-b",
                                          fence_kind="pledge_zone", lots=["LOT-B"], fix=fix,
                                          run_started_us=start_us, run_fixes=2,
                                          fences_version=1))])
        await page.wait_for_function(
            "S.trackers.get('coil-7') && S.trackers.get('coil-7').points.length === 5",
            timeout=10_000)
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO evidence_images (sha256, gateway_id, content_type, bytes, data) "
                "VALUES (%s, %s, 'image/jpeg', %s, %s)", (sha, GATEWAY, len(crop), crop))
            await conn.execute(
                "INSERT INTO raw_events (observed_at, gateway_id, seq, type, body) VALUES "
                "(now(), %s, 50, 'plate_read', %s)", (GATEWAY, json.dumps({
                    "camera": "gate-south-cam", "plate": "沪A12345", "direction": "out",
                    "confidence_pct": 93, "evidence": [{"kind": "plate_crop", "sha256": sha}]})))
            # As the gateway's tracker watch words it: a catalogue message with parameters.
            left = alert_text("geofence_exit.raise", tracker="coil-7", lot="LOT-B",
                              fence="pz-lot-b")
            await raise_alert(
                conn, alert_type="theft.geofence_exit", subject="tracker:coil-7",
                severity="critical", site_id=SITE, lot_id="LOT-B", explanation=left.english(),
                evidence={"plate_crop": {"kind": "plate_crop", "sha256": sha},
                          **left.evidence()},
                seen_at=datetime.now(UTC), actor=f"gateway:{GATEWAY}")
            await raise_alert(  # newer but minor: listed after the critical one
                conn, alert_type="damage.temperature", subject="sensor:t1", severity="minor",
                site_id=SITE, lot_id="LOT-B", explanation="2 °C above the lot's range",
                evidence={}, seen_at=datetime.now(UTC), actor=f"gateway:{GATEWAY}")
        await page.wait_for_selector('.vehicle[data-plate="沪A12345"]', timeout=10_000)
        await page.wait_for_selector('li.alert[data-type="damage.temperature"]')
        assert await page.eval_on_selector_all(
            "li.alert", "items => items.map(i => i.dataset.type)"
        ) == ["theft.geofence_exit", "damage.temperature"]
        await page.click('li.alert[data-type="theft.geofence_exit"]')
        await page.wait_for_selector("#detail .images img[src^='blob:']", timeout=10_000)
        assert await page.evaluate("document.querySelector('#detail .images img').naturalWidth"
                                   ) == 120
        detail = await page.inner_text("#detail")
        assert "geofence_exit pz-lot-b" in detail and "5 fixes" in detail
        assert "tracker coil-7 on pledged lot LOT-B left fence pz-lot-b" in detail

        await page.click("#lang")  # the same page in Chinese
        await page.wait_for_selector("#alerts-box h2 >> text=告警")
        # The detail pane is drawn again after the list (it fetches the alert's history): on a
        # loaded machine it came a moment after the heading.
        await page.wait_for_selector("#detail >> text=越界记录", timeout=10_000)
        assert "驶出围栏" in await page.inner_text("#alerts")
        # The explanation in Chinese, from the message and its parameters; an alert stored
        # with English text only keeps it.
        zh = "质押货批 LOT-B 上的定位器 coil-7 离开围栏 pz-lot-b，且该货批未放货"
        assert zh in await page.inner_text("#detail .explanation")
        assert zh in await page.inner_text('li.alert[data-type="theft.geofence_exit"] .expl')
        assert await page.inner_text('li.alert[data-type="damage.temperature"] .expl') == (
            "2 °C above the lot's range")
        assert "温度异常" in await page.inner_text("#alerts")
        # Real characters, not boxes: the page's font draws two different hanzi differently.
        assert await page.evaluate(CJK_GLYPHS_DIFFER)
        await page.wait_for_timeout(800)
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "map-tracker-evidence-zh.png"))
        await page.set_viewport_size({"width": 820, "height": 1180})  # a tablet, portrait
        await page.wait_for_timeout(500)
        assert (await page.locator("#side").bounding_box() or {}).get("width", 0) > 700
        await page.screenshot(path=str(ARTIFACTS / "map-tablet-portrait.png"))
