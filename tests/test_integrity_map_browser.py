"""The lot panel on the map shows every source side by side against the receipt (headless
Chromium against the real API and PostgreSQL): a weight swap reads as the load cell disagreeing
while tags and labels agree; the lot's shipments show their verdicts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import free_port
from tests.map_fixtures import ARTIFACTS, add_lots, chromium, running_api

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.slow]

SITE = "demo-site"  # its fences ship in geofences/sites/


async def test_the_lot_panel_shows_the_sources_side_by_side(
    database_url: str, register_gateway: Any, api_keys: dict[str, str], tmp_path: Path,
) -> None:
    gw = register_gateway(SITE, "gw-01")
    add_lots(database_url, SITE, {"LOT-A": ("bank-a", [f"E2800000{n:04X}" for n in range(12)])})
    now = datetime.now(UTC)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO lot_integrity (lot_id, unit_weight_kg, tare_kg, pallets,"
                     " declared_at) VALUES ('LOT-A', 25, 40, 1, %s)", (now - timedelta(days=2),))
        conn.execute("INSERT INTO lot_counts (observed_at, gateway_id, lot_id, expected, present,"
                     " missing, unknown) VALUES (%s, %s, 'LOT-A', 12, 12, 0, 0)",
                     (now - timedelta(minutes=3), gw.gateway))
        conn.execute("INSERT INTO sensor_readings (observed_at, gateway_id, sensor, quantity,"
                     " unit, lot_id, value) VALUES (%s, %s, 'scale-1', 'weight', 'kg', 'LOT-A',"
                     " 212)", (now - timedelta(minutes=2), gw.gateway))
        label = {"camera": "stack-1", "lot": "LOT-A", "symbology": "GS1-128", "text": "…",
                 "gs1": {"00": "003690000000000001", "01": "09506000134352", "37": "12"}}
        conn.execute("INSERT INTO raw_events (observed_at, gateway_id, seq, type, body)"
                     " VALUES (%s, %s, 1, 'label_read', %s)",
                     (now - timedelta(minutes=4), gw.gateway, json.dumps(label)))
        place = json.dumps({"name": "yard", "lat": 31.7, "lon": 121.47, "radius_m": 300})
        evidence = [{"leg": "arrival", "kind": "track", "outcome": "contradicts",
                     "detail": "trk-7 never at yard", "at": None}]
        conn.execute(
            "INSERT INTO shipments (id, site_id, lot_id, direction, counterparty, origin,"
            " destination, plate, window_start, window_end, created_by, verdict, evidence)"
            " VALUES ('SHP-9', %s, 'LOT-A', 'outbound', 'Buyer Metals', %s, %s, 'AB123',"
            " %s, %s, 'k', 'contradicted', %s)",
            (SITE, place, place, now - timedelta(days=1), now - timedelta(hours=20),
             json.dumps(evidence)))
    async with running_api(database_url, free_port()) as url, chromium(tmp_path / "p") as browser:
        page = await browser.new_page()
        await page.goto(f"{url}/map")
        await page.evaluate(
            "localStorage.removeItem('pw.key'); localStorage.setItem('pw.lang', 'en')")
        await page.reload()
        await page.fill("#key", api_keys["supervisor"])
        await page.click("#login button[type=submit]")
        await page.wait_for_selector("#conn[data-state=live]", timeout=10_000)
        await page.click('.lot-label[data-lot="LOT-A"]')
        await page.wait_for_selector('table.sources[data-sources="LOT-A"]', timeout=10_000)
        states = {
            await row.get_attribute("data-source"): await row.get_attribute("data-state")
            for row in await page.locator("table.sources tr.src").all()
        }
        assert states == {"receipt": "disagrees", "rfid": "agrees", "labels": "agrees",
                          "load_cell": "disagrees", "camera": "silent"}
        text = await page.inner_text("table.sources")
        assert "Load cell" in text and "212 kg" in text and "340 ± 5" in text
        assert "12 pieces · 340 kg · 1 pallets" in text
        shipment = page.locator('table.shipments tr[data-shipment="SHP-9"]')
        assert await shipment.get_attribute("data-verdict") == "contradicted"
        assert "contradicted" in await shipment.inner_text()
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "map-lot-sources.png"))
        # The same panel in Chinese.
        await page.click("#lang")
        await page.click('.lot-label[data-lot="LOT-A"]')
        await page.wait_for_selector('table.sources tr[data-source="load_cell"]')
        assert "不一致" in await page.inner_text("table.sources")
        await page.close()
