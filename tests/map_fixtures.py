"""Helpers for the live-map tests: the real API served over a real socket (uvicorn, in the
test's event loop) and a headless Chromium driven by Playwright (Debian's binary, no download)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import uvicorn

from cloud.api.app import create_app
from cloud.settings import Settings
from tests.conftest import ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
ARTIFACTS = ROOT / "test-artifacts"


@contextlib.asynccontextmanager
async def running_api(database_url: str, port: int) -> AsyncIterator[str]:
    """The whole app (lifespan, pool, live feed) on 127.0.0.1:port; yields its base URL."""
    app = create_app(Settings(database_url=database_url, mqtt_url="mqtt://127.0.0.1:1"))
    server = uvicorn.Server(uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="on",
        timeout_graceful_shutdown=2, ws_ping_interval=None,
    ))
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started or task.done():
            break
        await asyncio.sleep(0.05)
    if not server.started:
        await task  # raises the reason it did not start
        pytest.fail("the API did not start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def cjk_font_installed() -> bool:
    found = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True,
                           check=False) if shutil.which("fc-list") else None
    return bool(found and found.stdout.strip())


# True when the page draws two different CJK characters differently in its own font: with no
# font covering them both become the same "missing glyph" box.
CJK_GLYPHS_DIFFER = """(() => {
    const draw = (ch) => {
        const c = document.createElement("canvas"); c.width = 40; c.height = 40;
        const g = c.getContext("2d");
        g.font = "32px " + getComputedStyle(document.body).fontFamily;
        g.fillText(ch, 2, 34);
        return Array.from(g.getImageData(0, 0, 40, 40).data).join(",");
    };
    return draw("告") !== draw("警") && draw("告") !== draw("\\uE000");
})()"""


@contextlib.asynccontextmanager
async def chromium(profile: Path) -> AsyncIterator[Any]:
    """A fresh headless Chromium profile; fails (never skips) when the browser is missing."""
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is required for the browser tests (apt-get install chromium)")
    if not cjk_font_installed():
        # Without one the Chinese UI renders as boxes (make test installs it).
        pytest.fail("a CJK font is required for the browser tests: ops/install-test-deps.sh "
                    "(apt-get install fonts-noto-cjk)")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        context = await pw.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
            viewport={"width": 1366, "height": 820}, locale="en-GB",
        )
        # A script error would otherwise show only as a page that never gets ready: print it,
        # so the failing test's output says why.
        context.on("page", lambda page: page.on(
            "pageerror", lambda err: print(f"page error: {err}", file=sys.stderr)))
        try:
            yield context
        finally:
            await context.close()


def add_lots(database_url: str, site: str, lots: dict[str, tuple[str, list[str]]]) -> None:
    """Lots at ``site``: id -> (financier, tag EPCs)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        for lot_id, (bank, epcs) in lots.items():
            conn.execute(
                "INSERT INTO lots (id, site_id, name, goods_kind, pieces, financier_id, "
                "absence_window_s) VALUES (%s, %s, %s, 'copper cathode', %s, %s, 2)",
                (lot_id, site, f"Copper cathode {lot_id}", len(epcs), bank),
            )
            conn.execute("INSERT INTO lot_tags (epc, lot_id) SELECT unnest(%s::text[]), %s",
                         (epcs, lot_id))
