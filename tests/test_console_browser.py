"""The supervisor's console in a real headless Chromium against the real API and PostgreSQL:
a clean login page, search, keyboard access, the missing tags and the incident report of an
alert, its actions in view on a tablet, gateway and reader details, track replay, the alert
history with its filters and CSV export, a lot's series as CSV, and a financier's map."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from psycopg import AsyncConnection

from cloud.alerts import raise_alert, transition
from decisions.alert_types import AlertType
from firmware_sim.tags import demo_lots
from tests.conftest import free_port
from tests.map_fixtures import ARTIFACTS, add_lots, chromium, running_api

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.slow]

SITE, GATEWAY, READER = "demo-site", "gw-01", "dock-reader-1"
ROUTE = [(121.59100, 31.34955), (121.59060, 31.34940), (121.59010, 31.34930),
         (121.59000, 31.34915), (121.58998, 31.34890)]


async def seed(
    database_url: str, lots: dict[str, list[str]], supervisor_key: str
) -> dict[str, Any]:
    """A gateway that reads and reports, a tracker's route, a theft and a resolved alert."""
    now = datetime.now(UTC)
    missing = lots["LOT-A"][:3]
    async with await AsyncConnection.connect(database_url, autocommit=False) as conn:
        for epc in lots["LOT-A"] + lots["LOT-B"]:
            gone = epc in missing
            await conn.execute(
                "INSERT INTO tag_state (epc, gateway_id, reader, antenna, last_seen_at, presence) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                (epc, GATEWAY, READER, 2 if gone else 1,
                 now - timedelta(minutes=5) if gone else now, "missing" if gone else "present"))
        for i in range(60):
            await conn.execute(
                "INSERT INTO tag_observations (observed_at, gateway_id, reader, epc, antenna, seq) "
                "VALUES (%s, %s, %s, %s, 1, %s)",
                (now - timedelta(seconds=i), GATEWAY, READER, lots["LOT-B"][0], i))
        await conn.execute(
            "INSERT INTO telemetry (observed_at, gateway_id, kind, body) "
            "VALUES (%s, %s, 'agent', %s)",
            (now, GATEWAY, json.dumps({"outbox_depth": 17, "outbox_bytes": 2048,
                                       "dropped_telemetry": 0, "reconnects": 1, "published": 9})))
        await conn.execute(
            "INSERT INTO raw_events (observed_at, gateway_id, seq, type, body) VALUES "
            "(%s, %s, 1, 'gateway_status', %s), (%s, %s, 2, 'plate_read', %s)",
            (now, GATEWAY, json.dumps({"state": "online", "agent_version": "0.1.0",
                                       "session_started_us": 1}),
             now, GATEWAY, json.dumps({"camera": "gate-south-cam", "plate": "沪A12345",
                                       "direction": "out", "evidence": []})))
        await conn.execute("UPDATE gateways SET online = true, last_seen_at = %s WHERE id = %s",
                           (now, GATEWAY))
        for i, (lon, lat) in enumerate(ROUTE):
            await conn.execute(
                "INSERT INTO tracker_positions (fix_at, gateway_id, tracker, lon, lat, "
                "battery_pct, source) VALUES (%s, %s, 'coil-7', %s, %s, %s, 'owntracks')",
                (now - timedelta(minutes=5 - i), GATEWAY, lon, lat, 90 - i))
        await conn.execute(
            "INSERT INTO tracker_state (tracker, gateway_id, source, fix_at, lon, lat) "
            "VALUES ('coil-7', %s, 'owntracks', %s, %s, %s)", (GATEWAY, now, *ROUTE[-1]))
        await conn.execute(
            "INSERT INTO lot_counts (observed_at, gateway_id, lot_id, expected, present, missing, "
            "unknown) VALUES (%s, %s, 'LOT-B', 6, 6, 0, 0)", (now, GATEWAY))
        theft, _ = await raise_alert(
            conn, alert_type=AlertType.TAG_MISSING, subject="lot:LOT-A", severity="critical",
            site_id=SITE, lot_id="LOT-A", explanation="3 of 6 tags of LOT-A missing",
            evidence={"missing_epcs": missing, "missing_count": 3},
            seen_at=now, actor=f"gateway:{GATEWAY}")
        heat, _ = await raise_alert(
            conn, alert_type=AlertType.TEMPERATURE, subject="sensor:t1", severity="minor",
            site_id=SITE, lot_id="LOT-B", explanation="2 °C above the lot's range",
            evidence={}, seen_at=now - timedelta(hours=1), actor=f"gateway:{GATEWAY}")
        await conn.commit()
        await transition(conn, heat, "resolve", supervisor_key.split("_")[1], "cooled down")
        await conn.commit()
    return {"theft": theft, "heat": heat, "missing": missing}


async def downloaded(page: Any, selector: str) -> bytes:
    async with page.expect_download() as info:
        await page.click(selector)
    download = await info.value
    return await asyncio.to_thread(Path(await download.path()).read_bytes)


async def test_the_console_finds_lists_replays_exports_and_works_from_the_keyboard(
    database_url: str, register_gateway: Any, api_keys: dict[str, str], tmp_path: Path,
) -> None:
    register_gateway(SITE, GATEWAY)
    lots = demo_lots(6)
    add_lots(database_url, SITE, {"LOT-A": ("bank-a", lots["LOT-A"]),
                                  "LOT-B": ("bank-b", lots["LOT-B"])})
    seeded = await seed(database_url, lots, api_keys["supervisor"])
    async with running_api(database_url, free_port()) as url, \
            chromium(tmp_path / "profile") as browser:
        page = await browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        await page.goto(f"{url}/map")
        await page.wait_for_selector("#login-form")
        # A clean login page: no "Disconnected", no "No active alerts", no empty site list.
        for hidden in ("#down-banner", "#conn", "#no-alerts", "#site-select", "#search"):
            assert not await page.is_visible(hidden), hidden
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "console-login.png"))
        await page.fill("#key", api_keys["supervisor"])
        await page.keyboard.press("Enter")
        await page.wait_for_selector("#conn[data-state=live]", timeout=10_000)

        # Enter on an alert card opens it; the missing tags are listed with their last read.
        card = page.locator('li.alert[data-type="theft.tag_missing"]')
        await card.focus()
        await page.keyboard.press("Enter")
        await page.wait_for_selector(f'[data-alert-panel="{seeded["theft"]}"]')
        await page.wait_for_selector("table.missing-tags")
        rows = await page.eval_on_selector_all(
            "table.missing-tags tr[data-epc]",
            "rows => rows.map(r => [...r.cells].map(c => c.textContent.trim()))")
        assert [r[0] for r in rows] == seeded["missing"]
        assert all(r[2] == READER and r[3] == "2" and r[1] for r in rows)
        pdf = await downloaded(page, "#detail button.incident-report")
        assert pdf.startswith(b"%PDF")

        # A tablet in portrait: the alert's actions stay in view once it is open.
        await page.set_viewport_size({"width": 820, "height": 1180})
        await page.click('li.alert[data-type="theft.tag_missing"]')
        await page.wait_for_selector(f'[data-alert-panel="{seeded["theft"]}"]')
        await page.wait_for_timeout(700)
        mirror = page.locator("#detail .detail-actions button.ack")
        box = await mirror.bounding_box()
        assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= 1180, box
        await page.screenshot(path=str(ARTIFACTS / "console-tablet-alert.png"))
        await mirror.click()
        await page.wait_for_selector(
            f'li.alert[data-alert-id="{seeded["theft"]}"].st-acknowledged', timeout=5_000)
        await page.set_viewport_size({"width": 1366, "height": 820})

        # Search: a gateway from the keyboard, with its last seen, read rate, outbox, version.
        await page.fill("#search", "gw-0")
        await page.wait_for_selector('#search-results button.hit[data-kind="gateway"]')
        await page.keyboard.press("Enter")
        panel = page.locator('[data-gateway-panel="gw-01"]')
        await panel.wait_for()
        assert await page.inner_text("#detail .version") == "0.1.0"
        assert await page.inner_text("#detail .outbox") == "17"
        assert await page.inner_text("#detail .read-rate") == "0.2"  # 60 reads in 5 minutes
        # The reader on the map, opened from the keyboard.
        await page.focus(f'.device.reader[data-reader="{READER}"]')
        await page.keyboard.press("Enter")
        await page.wait_for_selector(f'[data-reader-panel="{READER}"]')
        assert "2" in await page.inner_text("#detail .device-facts")

        # Search a plate and a tag (EPC): the tag opens its lot, whose series exports as CSV.
        await page.fill("#search", "A123")
        await page.wait_for_selector('#search-results button.hit[data-kind="plate"]')
        await page.fill("#search", lots["LOT-B"][2][-10:])
        await page.click('#search-results button.hit[data-kind="epc"]')
        await page.wait_for_selector('[data-lot-panel="LOT-B"]')
        series = (await downloaded(page, "#detail button.export-series")).decode("utf-8-sig")
        table = list(csv.DictReader(io.StringIO(series)))
        assert [(r["series"], r["value"], r["expected"]) for r in table] == [("tags", "6.0", "6")]

        # Track replay: the slider moves the tracker along its recorded fixes.
        await page.fill("#search", "coil")
        await page.click('#search-results button.hit[data-kind="tracker"]')
        await page.wait_for_selector('[data-tracker-panel="coil-7"] ~ .replay #replay-slider')
        assert await page.get_attribute("#replay-slider", "max") == "4"
        start = await page.evaluate("CONSOLE.replay.marker.getLatLng().lng")
        assert round(start, 5) == ROUTE[0][0]
        await page.focus("#replay-slider")
        for _ in range(4):
            await page.keyboard.press("ArrowRight")
        assert round(await page.evaluate("CONSOLE.replay.marker.getLatLng().lat"), 5) == \
            ROUTE[-1][1]
        assert "86%" in await page.inner_text("#replay-at")  # the battery at the last fix
        await page.click("#replay-play")  # plays from the start again
        await page.wait_for_function("Number(document.getElementById('replay-slider').value) >= 2",
                                     timeout=5_000)

        # The alert history: resolved alerts, filtered, with their timeline, and as CSV.
        await page.click("#filter-toggle")
        await page.select_option("#alert-filter select[name=state]", "resolved")
        await page.click("#alert-filter button[type=submit]")
        resolved = page.locator("#history li.history-row")
        await resolved.first.wait_for()
        assert await resolved.count() == 1
        assert await resolved.first.get_attribute("data-alert-id") == str(seeded["heat"])
        await resolved.first.focus()
        await page.keyboard.press("Enter")
        await page.wait_for_selector(f'[data-alert-panel="{seeded["heat"]}"]')
        assert "cooled down" in await page.inner_text("#detail .history")
        exported = (await downloaded(page, "#export-alerts")).decode("utf-8-sig")
        assert [r["id"] for r in csv.DictReader(io.StringIO(exported))] == [str(seeded["heat"])]
        await page.select_option("#alert-filter select[name=state]", "")
        await page.select_option("#alert-filter select[name=severity]", "critical")
        await page.click("#alert-filter button[type=submit]")
        await page.wait_for_selector(
            f'#history li.history-row[data-alert-id="{seeded["theft"]}"]')
        assert await resolved.count() == 1
        await page.screenshot(path=str(ARTIFACTS / "console-history.png"))

        # In Chinese, the console's own labels too.
        await page.click("#lang")
        assert await page.get_attribute("#search", "placeholder") == "货批、车牌、EPC、网关、仓单…"
        assert await page.inner_text("#filter-toggle") == "筛选与历史"
        await page.click("#lang")

        # A financier: no other bank's zone on the map, no pink dot when there is no alert.
        financier = await browser.new_page()
        await financier.goto(f"{url}/map")
        await financier.evaluate("localStorage.removeItem('pw.key')")
        await financier.reload()
        await financier.fill("#key", api_keys["bank-b"])
        await financier.click("#login button[type=submit]")
        await financier.wait_for_selector("#conn[data-state=live]", timeout=10_000)
        await financier.wait_for_selector('.lot-label[data-lot="LOT-B"]')
        assert await financier.locator("path.fence-id-pz-lot-b").count() == 1
        assert await financier.locator("path.fence-id-pz-lot-a").count() == 0
        assert not await financier.is_visible("#alert-count")
        await financier.fill("#search", "A123")
        await financier.wait_for_selector("#search-results li.muted")  # plates are not theirs
        await financier.close()
        assert errors == []  # no script error on the way
