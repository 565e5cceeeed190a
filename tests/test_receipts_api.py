"""The receipts API against the real app and a real PostgreSQL: lifecycle, preconditions,
concurrency, roles and every denial, printing, and offline verification of what it serves."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg
import pytest
import segno
import zxingcpp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.receipts import printable
from cloud.receipts.verification import parse_later, verify_bundle
from contract import load_public_key, public_key_b64
from decisions.vehicles import AuthorisedVehicles
from tests.conftest import free_port
from tests.receipts_fixtures import EPCS, auth, issue, make_lot, operator_key, see_tags, world

__all__ = ["operator_key", "world"]  # fixtures used by name

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent


async def test_issue_refused_until_goods_are_verified_present(
    api_client: httpx.AsyncClient, world: dict[str, str], database_url: str, operator_key: Any
) -> None:
    await make_lot(api_client, world)
    sup = auth(world["supervisor"])
    refused = await api_client.post("/api/v1/lots/LOT-1/receipts", json={}, headers=sup)
    assert refused.status_code == 409
    assert refused.json()["missing"] == [
        "0 of the lot's tags are present; 10 pieces are declared (tolerance ±1)"
    ]
    # Nine of ten is within 2 % tolerance rounded up to one piece; two tags at the other site
    # are outside the fence, and an open theft alert blocks issue too.
    see_tags(database_url, EPCS[:7])
    see_tags(database_url, EPCS[7:9], gateway="gw-2")
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO alerts (alert_type, subject, severity, lot_id, explanation,"
            " first_seen_at, last_seen_at) VALUES ('theft.tag_missing', 'lot:LOT-1', 'critical',"
            " 'LOT-1', 'tags gone', now(), now())"
        )
    refused = await api_client.post("/api/v1/lots/LOT-1/receipts", json={}, headers=sup)
    assert refused.status_code == 409
    missing = refused.json()["missing"]
    assert missing[0].startswith("2 tags are outside fence site-1-bonded")
    assert missing[1] == "open theft alert: theft.tag_missing on lot:LOT-1"
    see_tags(database_url, EPCS[7:9])
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE alerts SET state = 'resolved'")
    verified = await api_client.post("/api/v1/lots/LOT-1/verify", headers=sup)
    assert verified.json()["ok"] is True and verified.json()["counted"] == 9
    receipt = await issue(api_client, world)
    assert receipt["status"] == "issued" and receipt["tag_count"] == 10
    doc = receipt["document"]
    assert doc["goods"]["quantity"] == "100.000" and doc["depositor"] == "Depositor Co"
    assert doc["evidence"]["issue_verification"]["counted"] == 9
    latest = receipt["latest_verification"]
    assert latest["counted"] == 9 and latest["missing"] == []
    assert latest["ledger_index"] == doc["evidence"]["issue_verification"]["ledger_index"]
    # The refused verifications are evidence too: all are in the lot's ledger history.
    history = await api_client.get("/api/v1/receipts/WR-1/history", headers=sup)
    assert [e["kind"] for e in history.json()] == ["receipt.issued"]
    with psycopg.connect(database_url) as conn:
        kinds = [r[0] for r in conn.execute("SELECT kind FROM ledger_entries ORDER BY idx")]
    assert kinds == ["lot.described"] + ["lot.verified"] * 4 + ["receipt.issued"]
    # The same goods cannot back a second receipt.
    again = await api_client.post(
        "/api/v1/lots/LOT-1/receipts", json={"number": "WR-2"}, headers=sup
    )
    assert again.status_code == 409 and "already back a live receipt" in again.text
    # Nor can the lot's tag list be swapped under a live receipt.
    swap = await api_client.put("/api/v1/lots/LOT-1/details", json={"epcs": EPCS[:5]}, headers=sup)
    assert swap.status_code == 409 and "backs live receipt WR-1" in swap.text


async def test_lifecycle_pledge_release_with_pledgee_approval_cancel(
    api_client: httpx.AsyncClient, world: dict[str, str], database_url: str, operator_key: Any
) -> None:
    await make_lot(api_client, world)
    see_tags(database_url, EPCS)
    await issue(api_client, world)
    sup, bank_a = auth(world["supervisor"]), auth(world["bank-a"])
    pledged = await api_client.post(
        "/api/v1/receipts/WR-1/pledge", json={"pledgee": "bank-a"}, headers=sup
    )
    assert pledged.status_code == 200 and pledged.json()["status"] == "pledged"
    assert pledged.json()["allowed_steps"] == ["release"]
    # Paper moves of pledged goods are refused with the reason.
    for path, body in (
        ("transfer", {"new_holder": "Other Co", "endorsed_by": "Depositor Co"}),
        ("cancel", {"reason": "oops"}),
    ):
        refused = await api_client.post(f"/api/v1/receipts/WR-1/{path}", json=body, headers=sup)
        assert refused.status_code == 409 and "pledged to bank-a" in refused.json()["detail"]

    request = await api_client.post(
        "/api/v1/receipts/WR-1/releases",
        json={"quantity": "40", "pieces": 4, "tags": EPCS[:4], "vehicle": "沪A12345"},
        headers=sup,
    )
    assert request.status_code == 201 and request.json()["state"] == "pending"
    rid = request.json()["id"]
    assert (await api_client.get("/api/v1/receipts/WR-1", headers=sup)).json()[
        "status"
    ] == "pledged"
    # Only the pledgee's key approves.
    denied = await api_client.post(f"/api/v1/receipts/WR-1/releases/{rid}/approve", headers=sup)
    assert denied.status_code == 403
    other_bank = auth(world["bank-b"])
    hidden = await api_client.post(
        f"/api/v1/receipts/WR-1/releases/{rid}/approve", headers=other_bank
    )
    assert hidden.status_code == 404
    approved = await api_client.post(
        f"/api/v1/receipts/WR-1/releases/{rid}/approve", headers=bank_a
    )
    assert approved.status_code == 200, approved.text
    body = approved.json()
    assert body["status"] == "partly_released" and body["quantity"] == "60.000"
    assert body["pieces"] == 6 and body["tag_count"] == 6
    # The approved vehicle is now on the site's gate list, in the edge's command format,
    # next to the lot's own authorised vehicles.
    described = await api_client.put(
        "/api/v1/lots/LOT-1/details", json={"authorised_vehicles": ["粤B-D12345"]}, headers=sup
    )
    assert described.status_code == 200
    gate = await api_client.get(
        "/api/v1/sites/site-1/authorised-vehicles", headers=auth(world["gateway"])
    )
    assert gate.status_code == 200, gate.text
    gate_list = AuthorisedVehicles.model_validate(gate.json())
    assert {v.plate: v.note for v in gate_list.vehicles} == {
        "沪A12345": f"release {rid} of receipt WR-1",
        "粤BD12345": "lot LOT-1",
    }
    assert gate_list.version > 0
    for who, code in ((world["bank-a"], 403), (world["supervisor-2"], 404)):
        denied = await api_client.get("/api/v1/sites/site-1/authorised-vehicles", headers=auth(who))
        assert denied.status_code == code
    other_site = await api_client.get(
        "/api/v1/sites/site-2/authorised-vehicles", headers=auth(world["gateway"])
    )
    assert other_site.status_code == 404
    twice = await api_client.post(f"/api/v1/receipts/WR-1/releases/{rid}/approve", headers=bank_a)
    assert twice.status_code == 409 and "already approved" in twice.text

    too_much = await api_client.post(
        "/api/v1/receipts/WR-1/releases", json={"quantity": "61", "pieces": 6}, headers=sup
    )
    assert too_much.status_code == 409 and "holds 60.000 t / 6 pieces" in too_much.text
    rest = await api_client.post(
        "/api/v1/receipts/WR-1/releases",
        json={"quantity": "60", "pieces": 6, "tags": EPCS[4:]},
        headers=sup,
    )
    rejected = await api_client.post(
        f"/api/v1/receipts/WR-1/releases/{rest.json()['id']}/reject", headers=bank_a
    )
    assert rejected.json()["status"] == "partly_released"
    rest = await api_client.post(
        "/api/v1/receipts/WR-1/releases",
        json={"quantity": "60", "pieces": 6, "tags": EPCS[4:]},
        headers=sup,
    )
    done = await api_client.post(
        f"/api/v1/receipts/WR-1/releases/{rest.json()['id']}/approve", headers=bank_a
    )
    assert done.json()["status"] == "released"
    cancelled = await api_client.post(
        "/api/v1/receipts/WR-1/cancel", json={"reason": "goods delivered"}, headers=sup
    )
    assert cancelled.json()["status"] == "cancelled"
    again = await api_client.post(
        "/api/v1/receipts/WR-1/pledge", json={"pledgee": "bank-b"}, headers=sup
    )
    assert again.status_code == 409 and "cancelled" in again.json()["detail"]

    history = (await api_client.get("/api/v1/receipts/WR-1/history", headers=sup)).json()
    assert [e["kind"] for e in history] == [
        "receipt.issued",
        "receipt.pledged",
        "receipt.partly_released",
        "receipt.released",
        "receipt.cancelled",
    ]
    assert history[2]["body"]["details"]["approved_by"] == "bank-a"
    assert history[2]["body"]["details"]["vehicle"] == "沪A12345"
    # The pledge ended with the release: the lot is no longer the bank's to watch.
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT financier_id FROM lots").fetchone() == (None,)


async def test_two_concurrent_pledges_exactly_one_wins(
    api_client: httpx.AsyncClient, world: dict[str, str], database_url: str, operator_key: Any
) -> None:
    await make_lot(api_client, world)
    see_tags(database_url, EPCS)
    await issue(api_client, world)
    sup = auth(world["supervisor"])
    answers = await asyncio.gather(
        *(
            api_client.post("/api/v1/receipts/WR-1/pledge", json={"pledgee": bank}, headers=sup)
            for bank in ("bank-a", "bank-b", "bank-a", "bank-b")
        )
    )
    codes = sorted(a.status_code for a in answers)
    assert codes == [200, 409, 409, 409], [a.text for a in answers]
    for loser in (a for a in answers if a.status_code == 409):
        assert "pledged" in loser.json()["detail"]
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute("SELECT pledgee FROM receipt_pledges WHERE ended_at IS NULL").fetchall()
        assert len(rows) == 1
        # The rule is the database's, not only the code's: a second active pledge row is refused.
        with pytest.raises(psycopg.errors.UniqueViolation, match="receipt_pledges_one_active"):
            conn.execute(
                "INSERT INTO receipt_pledges (receipt_number, pledgee, pledged_at)"
                " VALUES ('WR-1', 'bank-b', now())"
            )
    winner = next(a for a in answers if a.status_code == 200).json()["pledgee"]
    history = (await api_client.get("/api/v1/receipts/WR-1/history", headers=sup)).json()
    assert [e["kind"] for e in history] == ["receipt.issued", "receipt.pledged"]
    assert history[1]["body"]["details"]["pledgee"] == winner


async def test_split_and_transfer(
    api_client: httpx.AsyncClient,
    world: dict[str, str],
    database_url: str,
    operator_key: Ed25519PrivateKey,
) -> None:
    await make_lot(api_client, world)
    see_tags(database_url, EPCS)
    await issue(api_client, world)
    sup = auth(world["supervisor"])
    bad = await api_client.post(
        "/api/v1/receipts/WR-1/split",
        json={
            "parts": [
                {"quantity": "30", "pieces": 3, "tags": EPCS[:3]},
                {"quantity": "60", "pieces": 7, "tags": EPCS[3:]},
            ]
        },
        headers=sup,
    )
    assert bad.status_code == 409 and "quantities must be conserved" in bad.text
    overlap = await api_client.post(
        "/api/v1/receipts/WR-1/split",
        json={
            "parts": [
                {"quantity": "30", "pieces": 3, "tags": EPCS[:4]},
                {"quantity": "70", "pieces": 7, "tags": EPCS[3:]},
            ]
        },
        headers=sup,
    )
    assert overlap.status_code == 409 and "partitioned" in overlap.text
    parts = await api_client.post(
        "/api/v1/receipts/WR-1/split",
        json={
            "parts": [
                {"quantity": "30", "pieces": 3, "tags": EPCS[:3]},
                {"quantity": "70", "pieces": 7, "tags": EPCS[3:]},
            ]
        },
        headers=sup,
    )
    assert parts.status_code == 201, parts.text
    children = parts.json()
    assert [c["number"] for c in children] == ["WR-1-1", "WR-1-2"]
    assert [c["quantity"] for c in children] == ["30.000", "70.000"]
    assert all(c["parent_number"] == "WR-1" and c["status"] == "issued" for c in children)
    parent = (await api_client.get("/api/v1/receipts/WR-1", headers=sup)).json()
    assert parent["status"] == "split" and parent["allowed_steps"] == []

    forged = await api_client.post(
        "/api/v1/receipts/WR-1-1/transfer",
        json={"new_holder": "Trader Ltd", "endorsed_by": "Someone Else"},
        headers=sup,
    )
    assert forged.status_code == 409 and "only the holder Depositor Co" in forged.text
    moved = await api_client.post(
        "/api/v1/receipts/WR-1-1/transfer",
        json={"new_holder": "Trader Ltd", "endorsed_by": "Depositor Co"},
        headers=sup,
    )
    assert moved.json()["holder"] == "Trader Ltd" and moved.json()["version"] == 2
    # Each part can be pledged to a different financier.
    for number, bank in (("WR-1-1", "bank-a"), ("WR-1-2", "bank-b")):
        r = await api_client.post(
            f"/api/v1/receipts/{number}/pledge", json={"pledgee": bank}, headers=sup
        )
        assert r.status_code == 200
    bank_b = (await api_client.get("/api/v1/receipts", headers=auth(world["bank-b"]))).json()
    assert [r["number"] for r in bank_b] == ["WR-1-2"]
    # The parent and the parts each verify offline, each with its own logged history.
    pinned = load_public_key(public_key_b64(operator_key))
    for number in ("WR-1", "WR-1-1", "WR-1-2"):
        bundle = (await api_client.get(f"/api/v1/receipts/{number}/bundle", headers=sup)).json()
        verdict = verify_bundle(bundle, pinned)
        assert verdict.valid, verdict.render()


async def test_every_denial(
    api_client: httpx.AsyncClient, world: dict[str, str], database_url: str, operator_key: Any
) -> None:
    await make_lot(api_client, world)
    see_tags(database_url, EPCS)
    await issue(api_client, world)
    sup = auth(world["supervisor"])
    other_sup, bank_a, bank_b = (
        auth(world["supervisor-2"]),
        auth(world["bank-a"]),
        auth(world["bank-b"]),
    )
    gateway = auth(world["gateway"])

    async def status_of(method: str, path: str, headers: dict[str, str], body: Any = None) -> int:
        response = await api_client.request(method, path, headers=headers, json=body)
        return response.status_code

    # No key, or a wrong one.
    assert await status_of("GET", "/api/v1/receipts/WR-1", {}) == 401
    assert await status_of("GET", "/api/v1/receipts/WR-1", auth("pw_nope_nope")) == 401
    # Before the pledge no financier sees the receipt.
    for who in (bank_a, bank_b):
        assert await status_of("GET", "/api/v1/receipts/WR-1", who) == 404
    await api_client.post("/api/v1/receipts/WR-1/pledge", json={"pledgee": "bank-a"}, headers=sup)

    reads = [
        "/api/v1/receipts/WR-1",
        "/api/v1/receipts/WR-1/history",
        "/api/v1/receipts/WR-1/bundle",
        "/api/v1/receipts/WR-1/releases",
        "/api/v1/receipts/WR-1/print",
        "/api/v1/receipts/WR-1/print.pdf",
    ]
    for path in reads:
        assert await status_of("GET", path, bank_a) == 200, path
        assert await status_of("GET", path, sup) == 200, path
        # Another financier, another operator's supervisor, a gateway: not found, not leaked.
        assert await status_of("GET", path, bank_b) == 404, path
        assert await status_of("GET", path, other_sup) == 404, path
        assert await status_of("GET", path, gateway) == 404, path
    assert (await api_client.get("/api/v1/receipts", headers=bank_b)).json() == []
    assert (await api_client.get("/api/v1/receipts", headers=other_sup)).json() == []
    assert (await api_client.get("/api/v1/receipts", headers=gateway)).json() == []
    assert len((await api_client.get("/api/v1/receipts", headers=bank_a)).json()) == 1

    # Financiers and gateways may not take operator steps, even on receipts they can see.
    release = {"quantity": "10", "pieces": 1, "tags": EPCS[:1]}
    for who in (bank_a, gateway):
        for method, path, body in (
            ("PUT", "/api/v1/lots/LOT-1/details", {"marks": "x"}),
            ("GET", "/api/v1/lots/LOT-1/details", None),
            ("POST", "/api/v1/lots/LOT-1/verify", None),
            ("POST", "/api/v1/lots/LOT-1/receipts", {}),
            ("POST", "/api/v1/receipts/WR-1/pledge", {"pledgee": "bank-b"}),
            ("POST", "/api/v1/receipts/WR-1/releases", release),
            ("POST", "/api/v1/receipts/WR-1/cancel", {"reason": "x"}),
            ("POST", "/api/v1/receipts/WR-1/transfer", {"new_holder": "a", "endorsed_by": "b"}),
            (
                "POST",
                "/api/v1/receipts/WR-1/split",
                {"parts": [{"quantity": "1", "pieces": 1, "tags": []}] * 2},
            ),
        ):
            assert await status_of(method, path, who, body) == 403, (method, path)
    # Another operator's supervisor cannot reach this operator's lot or receipt.
    for method, path, body in (
        ("PUT", "/api/v1/lots/LOT-1/details", {"marks": "x"}),
        ("POST", "/api/v1/lots/LOT-1/verify", None),
        ("POST", "/api/v1/lots/LOT-1/receipts", {}),
        ("POST", "/api/v1/receipts/WR-1/releases", release),
        ("POST", "/api/v1/receipts/WR-1/cancel", {"reason": "x"}),
    ):
        assert await status_of(method, path, other_sup, body) == 404, (method, path)
    # Approving a release: supervisors may not (403); another bank cannot see it (404).
    rid = (
        await api_client.post("/api/v1/receipts/WR-1/releases", json=release, headers=sup)
    ).json()["id"]
    approve = f"/api/v1/receipts/WR-1/releases/{rid}/approve"
    assert await status_of("POST", approve, sup) == 403
    assert await status_of("POST", approve, other_sup) == 403
    assert await status_of("POST", approve, gateway) == 403
    assert await status_of("POST", approve, bank_b) == 404
    assert await status_of("POST", f"/api/v1/receipts/WR-1/releases/{rid}/reject", bank_b) == 404
    assert await status_of("POST", approve, bank_a) == 200


async def test_printable_receipt_qr_points_at_verification(
    api_client: httpx.AsyncClient, world: dict[str, str], database_url: str, operator_key: Any
) -> None:
    await make_lot(api_client, world)
    see_tags(database_url, EPCS)
    receipt = await issue(api_client, world)
    sup = auth(world["supervisor"])
    page = await api_client.get("/api/v1/receipts/WR-1/print", headers=sup)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    url = f"http://api/api/v1/receipts/WR-1/verify?digest={receipt['document_sha256']}"
    assert "<svg" in page.text and url in page.text and "JCC-2026" in page.text
    assert "质权人" in page.text
    pdf = await api_client.get("/api/v1/receipts/WR-1/print.pdf", headers=sup)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert pdf.headers["content-type"] == "application/pdf"
    # The QR the pages draw decodes (with an independent reader) to the verification URL...
    matrix = np.array(segno.make(url, error="m").matrix, dtype=np.uint8)
    image = np.kron(np.pad(1 - matrix, 4, constant_values=1), np.ones((6, 6), np.uint8)) * 255
    decoded = zxingcpp.read_barcodes(image)
    assert [d.text for d in decoded] == [url]
    assert (
        printable.receipt_html(
            (await api_client.get("/api/v1/receipts/WR-1", headers=sup)).json(), url
        ).count("<svg")
        == 1
    )
    # ...which anyone can open, and which says whether the printed version is current.
    public = await api_client.get(url.removeprefix("http://api"))
    assert public.status_code == 200
    assert public.json()["presented_is_current"] is True and public.json()["status"] == "issued"
    await api_client.post("/api/v1/receipts/WR-1/pledge", json={"pledgee": "bank-a"}, headers=sup)
    stale = (await api_client.get(url.removeprefix("http://api"))).json()
    assert stale["presented_is_current"] is False and stale["status"] == "pledged"


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cloud", "receipts", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


async def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(run_cli, *args, env=env)


async def test_offline_verification_and_tamper_detection(
    api_client: httpx.AsyncClient,
    world: dict[str, str],
    database_url: str,
    operator_key: Ed25519PrivateKey,
    tmp_path: Path,
) -> None:
    await make_lot(api_client, world)
    see_tags(database_url, EPCS)
    await issue(api_client, world)
    sup = auth(world["supervisor"])
    await api_client.post("/api/v1/receipts/WR-1/pledge", json={"pledgee": "bank-a"}, headers=sup)
    bank_a = auth(world["bank-a"])
    saved = (await api_client.get("/api/v1/receipts/WR-1/bundle", headers=bank_a)).json()
    path = tmp_path / "WR-1.json"
    path.write_text(json.dumps(saved))
    pinned = public_key_b64(operator_key)

    # Valid, offline, with the operator's key pinned.
    ok = await cli("verify", str(path), "--operator-key", pinned)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "VERDICT: VALID" in ok.stdout and "[ok  ] receipt signature" in ok.stdout

    # More steps happen; the later head still extends the one in the saved bundle.
    await api_client.post("/api/v1/lots/LOT-1/verify", headers=sup)
    later = await api_client.get(f"/api/v1/ledger/consistency?first={saved['tree_head']['size']}")
    later_path = tmp_path / "later.json"
    later_path.write_text(later.text)
    ok = await cli("verify", str(path), "--operator-key", pinned, "--later", str(later_path))
    assert ok.returncode == 0, ok.stdout
    assert "[ok  ] consistent with later head" in ok.stdout

    # A key that is not the operator's: nothing verifies.
    stranger = public_key_b64(Ed25519PrivateKey.generate())
    wrong = await cli("verify", str(path), "--operator-key", stranger)
    assert wrong.returncode == 1 and "NOT VALID" in wrong.stdout

    # Someone edits the receipt row (the quantity in the signed document) directly.
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE receipts SET document = replace(document, '\"100.000\"', '\"150.000\"'),"
            " quantity = 150"
        )
    edited = (await api_client.get("/api/v1/receipts/WR-1/bundle", headers=bank_a)).json()
    verdict = verify_bundle(edited, load_public_key(pinned))
    assert not verdict.valid
    failed = {c.name for c in verdict.checks if not c.ok}
    assert failed == {"receipt signature", "receipt is the logged version"}

    # Someone with database superuser rights edits a logged step (who the receipt was pledged
    # to) behind the append-only triggers.
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute(
            "UPDATE ledger_entries SET entry = replace(entry, 'bank-a', 'bank-b')"
            " WHERE kind = 'receipt.pledged'"
        )
    tampered = (await api_client.get("/api/v1/receipts/WR-1/bundle", headers=bank_a)).json()
    verdict = verify_bundle(tampered, load_public_key(pinned))
    assert not verdict.valid
    assert any(
        c.name == "history entry" and not c.ok and "not in the signed tree" in c.detail
        for c in verdict.checks
    )
    audit = await cli(
        "audit",
        "--operator-key",
        pinned,
        env={"DATABASE_URL": database_url, "PATH": "/usr/bin:/bin"},
    )
    assert audit.returncode == 1, audit.stdout + audit.stderr
    assert "does not match the entries" in audit.stdout

    # A stronger attacker also rewrites the tree and signs a new head with the operator's key;
    # the financier's saved head exposes it: the new log does not extend the old one.
    from cloud.receipts import merkle
    from cloud.receipts.tree_head import sign_tree_head

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        texts = [r[0] for r in conn.execute("SELECT entry FROM ledger_entries ORDER BY idx")]
        tree = merkle.MerkleTree()
        for text in texts:
            tree.append_entry(text.encode())
        for level, idx in conn.execute("SELECT level, idx FROM ledger_nodes").fetchall():
            conn.execute(
                "UPDATE ledger_nodes SET hash = %s WHERE level = %s AND idx = %s",
                (tree.node((level, idx)), level, idx),
            )
        conn.execute("DELETE FROM tree_heads")
        forged = sign_tree_head(operator_key, size=tree.size, root=tree.root(), timestamp_ms=1)
        conn.execute(
            "INSERT INTO tree_heads VALUES (%s, %s, %s, %s, %s)",
            (forged.size, forged.root, forged.timestamp_ms, forged.log_id, forged.signature),
        )
    later = await api_client.get(f"/api/v1/ledger/consistency?first={saved['tree_head']['size']}")
    verdict = verify_bundle(saved, load_public_key(pinned), parse_later(later.json()))
    assert not verdict.valid
    assert [c.name for c in verdict.checks if not c.ok] == ["consistent with later head"]


def test_verify_cli_reports_unusable_input(tmp_path: Path) -> None:
    path = tmp_path / "not-a-bundle.json"
    path.write_text('{"format": "something else"}')
    result = run_cli("verify", str(path))
    assert result.returncode == 2 and "not a receipt bundle" in result.stderr
    path.write_text("{nope")
    assert run_cli("verify", str(path)).returncode == 2


async def test_verify_by_number_against_a_running_api(
    api_client: httpx.AsyncClient,
    world: dict[str, str],
    database_url: str,
    operator_key: Ed25519PrivateKey,
    tmp_path: Path,
) -> None:
    await make_lot(api_client, world)
    see_tags(database_url, EPCS)
    await issue(api_client, world)
    await api_client.post(
        "/api/v1/receipts/WR-1/pledge",
        json={"pledgee": "bank-a"},
        headers=auth(world["supervisor"]),
    )
    port = free_port()
    key_file = tmp_path / "operator.pem"  # written by the operator_key fixture
    env = {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": database_url,
        "PW_OPERATOR_KEY_FILE": str(key_file),
    }
    log = (tmp_path / "api.log").open("wb")
    server = subprocess.Popen(  # noqa: ASYNC220  (a real server in its own process)
        [sys.executable, "-m", "cloud", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=log,
    )
    try:
        api = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient() as probe:
            for _ in range(150):
                try:
                    if (await probe.get(f"{api}/api/v1/ledger/tree-head")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            else:
                pytest.fail(f"the API did not start: {(tmp_path / 'api.log').read_text()}")
        pinned = public_key_b64(operator_key)
        common = ("--number", "WR-1", "--api", api, "--operator-key", pinned)
        result = await cli("verify", *common, "--api-key", world["bank-a"])
        assert result.returncode == 0, result.stdout + result.stderr
        assert "[ok  ] consistent with later head" in result.stdout
        assert "VERDICT: VALID" in result.stdout
        # Another bank's key cannot fetch the receipt.
        denied = await cli("verify", *common, "--api-key", world["bank-b"])
        assert denied.returncode == 2 and "404" in denied.stderr
    finally:
        server.terminate()
        await asyncio.to_thread(server.wait, 10)
