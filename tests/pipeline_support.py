"""Run real edge agents and ingest consumers inside a test's event loop (and wait on the DB)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import psycopg

from cloud.ingest.consumer import Ingest, IngestOptions
from edge.agent import Agent
from edge.config import load_config


def write_agent_config(path: Path, *, site: str, gateway: str, key_file: Path, broker_url: str,
                       extra: str = "") -> Path:
    path.write_text(f"""
site = "{site}"
gateway = "{gateway}"
key_file = "{key_file}"
data_dir = "{path.parent / ("data-" + gateway)}"
health_interval_s = 3600

[broker]
url = "{broker_url}"
client_id = "test-{gateway}"
keepalive_s = 5
confirm_grace_s = 5
confirm_silence_s = 15
{extra}
""")
    return path


@contextlib.asynccontextmanager
async def running_agent(config_path: Path) -> AsyncIterator[Agent]:
    agent = Agent(load_config(config_path))
    task = asyncio.create_task(agent.run())
    try:
        yield agent
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def running_ingest(database_url: str, broker_url: str,
                         client_id: str = "ingest-test", subscription: str = "auto"
                         ) -> AsyncIterator[Ingest]:
    ingest = Ingest(IngestOptions(database_url=database_url, mqtt_url=broker_url,
                                  client_id=client_id, batch_ms=20, subscription=subscription))
    task = asyncio.create_task(ingest.run())
    try:
        yield ingest
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def scalar(database_url: str, sql: str, params: tuple[object, ...] = ()) -> object:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(sql, params).fetchone()  # type: ignore[arg-type]
    return None if row is None else row[0]


async def wait_until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
