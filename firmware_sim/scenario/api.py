"""The players' calls to the cloud's API: one place says how a player authenticates and what a
refused call becomes (an error naming the call and the API's answer)."""

from __future__ import annotations

from typing import Any

import httpx


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def call_api(api: httpx.AsyncClient, path: str, key: str, body: Any = None,
                   method: str = "POST") -> Any:
    r = await api.request(method, path, json=body, headers=bearer(key))
    if r.status_code >= 300:
        raise RuntimeError(f"{method} {path}: {r.status_code} {r.text}")
    return r.json() if r.content else None
