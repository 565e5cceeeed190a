"""The supervisor's console in headless Chromium (issue 19, part A): /docs works with the
internet blocked; a critical alert rings, notifies and counts in the tab title; resolving asks
for a comment and shows the refusal while the lot's tags are still missing; snoozing stays
possible."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg import AsyncConnection

from cloud import alerts
from cloud.apikeys import create_key
from decisions.alert_types import AlertType
from firmware_sim.tags import demo_lots
from tests.conftest import free_port
from tests.map_fixtures import add_lots, chromium, running_api
from tests.test_map_browser import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.slow]

SITE, GATEWAY = "demo-site", "gw-01"

# Stands in for the browser's Notification (headless Chromium shows none): records what the
# page would have shown, as if the supervisor had allowed notifications.
FAKE_NOTIFICATION = """
window.__notes = [];
window.Notification = class {
  constructor(title, options) { window.__notes.push({ title, body: options.body }); }
  close() {}
  static requestPermission() { return Promise.resolve("granted"); }
};
window.Notification.permission = "granted";
"""


async def test_docs_render_their_operations_with_the_internet_blocked(
    database_url: str, tmp_path: Path
) -> None:
    async with running_api(database_url, free_port()) as url, \
            chromium(tmp_path / "profile") as browser:
        page = await browser.new_page()
        refused: list[str] = []

        async def only_local(route: Any) -> None:
            if urlsplit(route.request.url).hostname == "127.0.0.1":
                await route.continue_()
            else:
                refused.append(route.request.url)
                await route.abort()

        await page.route("**/*", only_local)
        await page.goto(f"{url}/docs")
        await page.wait_for_selector(".opblock", timeout=15_000)
        assert await page.locator(".opblock").count() > 20
        assert "/api/v1/alerts/{alert_id}/resolve" in await page.inner_text("#swagger-ui")
        assert refused == []


async def test_critical_alert_rings_and_cannot_be_resolved_while_tags_are_missing(
    database_url: str, register_gateway: Any, api_keys: dict[str, str], tmp_path: Path
) -> None:
    register_gateway(SITE, GATEWAY)
    epcs = demo_lots(4)["LOT-A"]
    add_lots(database_url, SITE, {"LOT-A": ("bank-a", epcs)})
    with psycopg.connect(database_url, autocommit=True) as conn:
        for epc in epcs[:2]:
            conn.execute("INSERT INTO tag_state (epc, gateway_id, presence, presence_changed_at) "
                         "VALUES (%s, %s, 'missing', now())", (epc, GATEWAY))
        op = conn.execute("SELECT operator_id FROM sites WHERE id = %s", (SITE,)).fetchone()
        assert op is not None
        wang = create_key(conn, "supervisor", operator_id=op[0], label="Wang Fang")
    async with running_api(database_url, free_port()) as url, \
            chromium(tmp_path / "profile") as browser:
        await browser.add_init_script(FAKE_NOTIFICATION)
        page = await sign_in(browser, url, wang)
        assert await page.get_attribute("#notify-sound", "aria-pressed") == "true"
        async with await AsyncConnection.connect(database_url) as conn:
            alert_id, _ = await alerts.raise_alert(
                conn, alert_type=AlertType.TAG_MISSING, subject="lot:LOT-A",
                severity="critical", site_id=SITE, lot_id="LOT-A",
                explanation="2 tag(s) of pledged lot LOT-A not read", evidence={},
                seen_at=datetime.now(UTC), actor=f"gateway:{GATEWAY}")
            await conn.commit()
        item = page.locator(f'li.alert[data-alert-id="{alert_id}"]')
        await item.wait_for(timeout=10_000)
        await page.wait_for_function("document.title.startsWith('(1) ')", timeout=5_000)
        assert await page.evaluate("NOTIFY.played") == 1
        notes = await page.evaluate("window.__notes")
        assert len(notes) == 1 and "LOT-A" in notes[0]["body"]
        wav = await page.evaluate(
            "fetch('/map/sounds/critical.wav').then(async (r) => "
            "[r.headers.get('content-type'), (await r.arrayBuffer()).byteLength])")
        assert wav[0] == "audio/wav" and 1_000 < wav[1] < 100_000

        await item.locator("button.resolve").click()
        dialog = page.locator("#resolve-dialog")
        await dialog.wait_for(state="visible")
        await dialog.locator("#resolve-comment").fill("counted them, all fine")
        await dialog.locator("button.confirm").click()
        error = dialog.locator("#resolve-error")
        await page.wait_for_function(
            "document.getElementById('resolve-error').textContent.includes('still missing')",
            timeout=5_000)
        assert "2 tag(s) of lot:LOT-A are still missing" in await error.inner_text()
        await dialog.locator("button.snooze").click()  # what a supervisor may do instead
        await dialog.wait_for(state="hidden")
        assert await item.count() == 1  # still listed, still critical
        history = await page.evaluate(
            f"api('/api/v1/alerts/{alert_id}').then((a) => a.history.map((h) => h.action))")
        assert history == ["opened", "snoozed"]

        await item.locator("button.ack").click()
        await page.wait_for_selector(f'li.alert[data-alert-id="{alert_id}"].st-acknowledged')
        await item.click()
        await page.wait_for_selector(f'[data-alert-panel="{alert_id}"]')
        assert "Wang Fang" in await page.inner_text("#detail .history")

        await page.click("#notify-sound")  # the preference sticks across a reload
        await page.reload()
        await page.wait_for_selector("#conn[data-state=live]", timeout=10_000)
        assert await page.get_attribute("#notify-sound", "aria-pressed") == "false"
        assert await page.evaluate("NOTIFY.played") == 0
