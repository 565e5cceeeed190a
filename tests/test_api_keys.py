"""Revoking an API key from the command line: the key stops working for the API at once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.integration


def _cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "cloud", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)


async def test_apikey_revoke_ends_the_key(
    api_client: httpx.AsyncClient, api_keys: dict[str, str], database_url: str
) -> None:
    key = api_keys["bank-a"]
    headers = {"Authorization": f"Bearer {key}"}
    assert (await api_client.get("/api/v1/sites", headers=headers)).status_code == 200
    done = _cli(database_url, "apikey-revoke", key)  # the whole key or its id
    assert done.returncode == 0, done.stderr
    assert (await api_client.get("/api/v1/sites", headers=headers)).status_code == 401
    again = _cli(database_url, "apikey-revoke", key.split("_")[1])
    assert again.returncode == 1 and "no unrevoked API key" in again.stderr
    other = {"Authorization": f"Bearer {api_keys['bank-b']}"}
    assert (await api_client.get("/api/v1/sites", headers=other)).status_code == 200
