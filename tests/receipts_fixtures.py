"""Shared pieces of the receipts tests: the operator key, a small world, a verified lot.

The conftest gives operators op-1/op-2 with site-1/site-2, financiers bank-a/bank-b and a key
per role; this adds a gateway at each site, the operator's signing key, and helpers that
create lot LOT-1 (ten tagged pieces, 100 t of copper) and issue receipts on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.apikeys import create_key
from contract import private_key_pem, public_key_b64

EPCS = [f"E28011700000020F{i:08X}" for i in range(10)]


@pytest.fixture
def operator_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Ed25519PrivateKey:
    key = Ed25519PrivateKey.generate()
    path = tmp_path / "operator.pem"
    path.write_bytes(private_key_pem(key))
    monkeypatch.setenv("PW_OPERATOR_KEY_FILE", str(path))
    return key


@pytest.fixture
def world(database_url: str, api_keys: dict[str, str]) -> dict[str, str]:
    """Gateways at both sites and a gateway key; the conftest made operators, sites, banks."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        for gw, site in (("gw-1", "site-1"), ("gw-2", "site-2")):
            pub = public_key_b64(Ed25519PrivateKey.generate())
            conn.execute(
                "INSERT INTO gateways (id, site_id, public_key) VALUES (%s, %s, %s)",
                (gw, site, pub),
            )
        gateway_key = create_key(conn, "gateway", gateway_id="gw-1")
    return {**api_keys, "gateway": gateway_key}


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def see_tags(database_url: str, epcs: list[str], gateway: str = "gw-1") -> None:
    """What ingest records when the lot's readers see the tags."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        for epc in epcs:
            conn.execute(
                "INSERT INTO tag_state (epc, gateway_id, presence, last_seen_at)"
                " VALUES (%s, %s, 'present', now()) ON CONFLICT (epc) DO UPDATE"
                " SET gateway_id = excluded.gateway_id, presence = 'present'",
                (epc, gateway),
            )


async def make_lot(client: httpx.AsyncClient, keys: dict[str, str], lot_id: str = "LOT-1") -> None:
    created = await client.post(
        "/api/v1/lots",
        json={
            "id": lot_id,
            "site_id": "site-1",
            "name": "Copper cathode, bay 3",
            "depositor": "Depositor Co",
            "goods_kind": "copper cathode",
            "pieces": 10,
            "zone": "bay-3",
            "epcs": EPCS,
        },
        headers=auth(keys["supervisor"]),
    )
    assert created.status_code == 201, created.text
    details = await client.put(
        f"/api/v1/lots/{lot_id}/details",
        json={
            "quality": "Grade A, LME registered",
            "packaging": "bundles",
            "quantity": "100.000",
            "unit": "t",
            "marks": "JCC-2026",
            "unit_value": "68000.00",
            "fence": "site-1-bonded",
        },
        headers=auth(keys["supervisor"]),
    )
    assert details.status_code == 200, details.text
    assert details.json()["quantity"] == "100.000"


async def issue(client: httpx.AsyncClient, keys: dict[str, str], number: str = "WR-1") -> Any:
    response = await client.post(
        "/api/v1/lots/LOT-1/receipts",
        json={"number": number, "storage_period": {"from": "2026-11-26", "to": "2027-05-26"}},
        headers=auth(keys["supervisor"]),
    )
    assert response.status_code == 201, response.text
    return response.json()["receipt"]
