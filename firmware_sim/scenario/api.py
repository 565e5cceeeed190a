"""The players' calls to the cloud's API: one place says how a player authenticates and what a
refused call becomes (an error naming the call and the API's answer)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contract import private_key_pem, public_key_b64


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def call_api(api: httpx.AsyncClient, path: str, key: str, body: Any = None,
                   method: str = "POST") -> Any:
    r = await api.request(method, path, json=body, headers=bearer(key))
    if r.status_code >= 300:
        raise RuntimeError(f"{method} {path}: {r.status_code} {r.text}")
    return r.json() if r.content else None


async def register_gateway(api: httpx.AsyncClient, admin_key: str, site: str, gateway: str,
                           work_dir: Path) -> Path:
    """A fresh gateway key registered at ``site``; the key file and the cloud's command key
    (``cloud.pub``: the agent verifies every cmd/ message with it) are written to ``work_dir``.
    Returns the key file."""
    key = Ed25519PrivateKey.generate()
    key_file = work_dir / f"{gateway}.pem"
    key_file.write_bytes(private_key_pem(key))
    await call_api(api, "/api/v1/gateways", admin_key,
                   {"id": gateway, "site_id": site, "public_key": public_key_b64(key)})
    command_key = await call_api(api, "/api/v1/command-key", admin_key, method="GET")
    (work_dir / "cloud.pub").write_text(command_key["public_key"])
    return key_file
