"""The printed receipt against the real app and PostgreSQL: a receipt full of Chinese prints every
character (read back from the PDF's text layer), its QR decodes from the rendered page to the
verification URL, and without a usable font the receipt is refused, never printed partially."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg
import pypdfium2
import pytest
import zxingcpp
from pypdf import PdfReader

from cloud.receipts import printable
from tests.receipts_fixtures import EPCS, auth, operator_key, see_tags, world

__all__ = ["operator_key", "world"]  # fixtures used by name

pytestmark = pytest.mark.integration

DEPOSITOR, KEEPER, SITE_NAME = "上海某某钢铁贸易有限公司", "中储仓库", "上海一号库"


async def chinese_receipt(
    client: httpx.AsyncClient, keys: dict[str, str], database_url: str, depositor: str = DEPOSITOR
) -> Any:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE sites SET name = %s WHERE id = 'site-1'", (SITE_NAME,))
        conn.execute(
            "UPDATE operators SET name = %s WHERE id = (SELECT operator_id FROM sites"
            " WHERE id = 'site-1')",
            (KEEPER,),
        )
    sup = auth(keys["supervisor"])
    created = await client.post(
        "/api/v1/lots",
        json={"id": "LOT-1", "site_id": "site-1", "name": "热轧卷 3号位", "depositor": depositor,
              "goods_kind": "热轧卷", "pieces": 10, "zone": "A区-3", "epcs": EPCS},
        headers=sup,
    )
    assert created.status_code == 201, created.text
    details = await client.put(
        "/api/v1/lots/LOT-1/details",
        json={"quality": "Q235B 国标", "packaging": "钢带捆扎", "quantity": "256.480",
              "unit": "吨", "marks": "宝钢 BG-2026-0815", "unit_value": "3980.00",
              "fence": "site-1-bonded"},
        headers=sup,
    )
    assert details.status_code == 200, details.text
    see_tags(database_url, EPCS)
    issued = await client.post(
        "/api/v1/lots/LOT-1/receipts",
        json={"number": "WR-SH-1", "storage_period": {"from": "2026-11-26", "to": "2027-05-26"}},
        headers=sup,
    )
    assert issued.status_code == 201, issued.text
    return issued.json()["receipt"]


def squeeze(s: str) -> str:
    # multi_cell wraps long values (hashes, signatures) over lines: compare without whitespace.
    return re.sub(r"\s+", "", s)


async def test_pdf_text_layer_carries_every_field_of_a_chinese_receipt(
    api_client: httpx.AsyncClient, world: dict[str, str], database_url: str, operator_key: Any
) -> None:
    receipt = await chinese_receipt(api_client, world, database_url)
    sup = auth(world["supervisor"])
    doc = receipt["document"]
    assert (doc["depositor"], doc["keeper"]["name"], doc["storage"]["site_name"]) == (
        DEPOSITOR, KEEPER, SITE_NAME
    )
    response = await api_client.get(f"/api/v1/receipts/{receipt['number']}/print.pdf", headers=sup)
    assert response.status_code == 200, response.text
    reader = PdfReader(io.BytesIO(response.content))
    text = squeeze("".join(page.extract_text() for page in reader.pages))
    # Field by field, in the order printed: label and value, every character of both.
    position = 0
    for label, value in printable._rows(receipt):
        for part in (label, str(value)):
            found = text.find(squeeze(part), position)
            assert found >= 0, f"{part!r} is not in the PDF's text layer after {position}"
            position = found + len(squeeze(part))
    for word in (DEPOSITOR, KEEPER, SITE_NAME, "热轧卷", "256.480 吨", "宝钢 BG-2026-0815"):
        assert squeeze(word) in text
    assert squeeze(doc["rights_notice"]) in text
    # The font travels in the PDF, as a subset: only the glyphs used, not 10 MB.
    fonts = [reader.pages[0]["/Resources"]["/Font"][name].get_object()
             for name in reader.pages[0]["/Resources"]["/Font"]]
    assert fonts and all(re.match(r"^/[A-Z]{6}\+", f["/BaseFont"]) for f in fonts)
    descriptor = fonts[0]["/DescendantFonts"][0].get_object()["/FontDescriptor"].get_object()
    assert "/FontFile2" in descriptor
    assert len(response.content) < 200_000


async def test_pdf_qr_decodes_to_the_verification_page_which_shows_the_printed_digest(
    api_client: httpx.AsyncClient, world: dict[str, str], database_url: str, operator_key: Any
) -> None:
    receipt = await chinese_receipt(api_client, world, database_url)
    sup = auth(world["supervisor"])
    response = await api_client.get(f"/api/v1/receipts/{receipt['number']}/print.pdf", headers=sup)
    assert response.status_code == 200, response.text
    page = pypdfium2.PdfDocument(response.content)[0]
    image = np.asarray(page.render(scale=4, grayscale=True).to_pil().convert("L"))
    decoded = [d.text for d in zxingcpp.read_barcodes(image)]
    number = receipt["number"]
    url = f"http://api/api/v1/receipts/{number}/verify?digest={receipt['document_sha256']}"
    assert decoded == [url]
    text = squeeze(PdfReader(io.BytesIO(response.content)).pages[0].extract_text())
    # The page the QR opens (public) states the same digest and signature the paper does.
    public = await api_client.get(url.removeprefix("http://api"))
    assert public.status_code == 200
    shown = public.json()
    assert shown["number"] == number and shown["presented_is_current"] is True
    assert shown["current_document_sha256"] == receipt["document_sha256"]
    assert shown["current_signature"] == receipt["signature"]
    assert squeeze(shown["current_document_sha256"]) in text
    assert squeeze(shown["current_signature"]) in text


async def test_no_font_or_a_character_without_a_glyph_is_a_503_never_a_partial_receipt(
    api_client: httpx.AsyncClient, world: dict[str, str], database_url: str, operator_key: Any,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Egyptian hieroglyph A001: no CJK font has it; the rest of the name prints fine.
    receipt = await chinese_receipt(api_client, world, database_url, depositor=DEPOSITOR + "𓀀")
    sup = auth(world["supervisor"])
    pdf_url = f"/api/v1/receipts/{receipt['number']}/print.pdf"
    refused = await api_client.get(pdf_url, headers=sup)
    assert refused.status_code == 503
    assert "no glyph for U+13000 EGYPTIAN HIEROGLYPH A001" in refused.json()["detail"]


    monkeypatch.setenv("PW_RECEIPT_FONT", str(tmp_path / "absent.ttf"))
    missing = await api_client.get(pdf_url, headers=sup)
    assert missing.status_code == 503
    assert "absent.ttf is missing" in missing.json()["detail"]
    assert (await api_client.get(printable.FONT_URL)).status_code == 503

    (tmp_path / "broken.ttf").write_bytes(b"\x00\x01\x00\x00" + b"not a font" * 10)
    monkeypatch.setenv("PW_RECEIPT_FONT", str(tmp_path / "broken.ttf"))
    broken = await api_client.get(pdf_url, headers=sup)
    assert broken.status_code == 503
    assert "not a readable TrueType/OpenType font" in broken.json()["detail"]


async def test_html_receipt_declares_the_served_font_with_its_licence(
    api_client: httpx.AsyncClient, world: dict[str, str], database_url: str, operator_key: Any
) -> None:
    receipt = await chinese_receipt(api_client, world, database_url)
    page = await api_client.get(
        f"/api/v1/receipts/{receipt['number']}/print", headers=auth(world["supervisor"])
    )
    assert page.status_code == 200 and DEPOSITOR in page.text
    assert f'src: url("{printable.FONT_URL}")' in page.text
    assert f'font-family: "{printable.FONT_FAMILY}"' in page.text
    css = (Path(printable.__file__).parent.parent / "web" / "style.css").read_text()
    assert f'src: url("{printable.FONT_URL}")' in css and printable.FONT_FAMILY in css
    font = await api_client.get(printable.FONT_URL)
    assert font.status_code == 200 and font.headers["content-type"] == "font/ttf"
    assert font.content == printable.DEFAULT_FONT.read_bytes()
    assert "max-age=2592000" in font.headers["cache-control"] and font.headers["etag"]
    etag = font.headers["etag"]
    cached = await api_client.get(printable.FONT_URL, headers={"If-None-Match": etag})
    assert cached.status_code == 304 and cached.content == b""
    licence = await api_client.get(printable.FONT_LICENCE_URL)
    assert licence.status_code == 200 and "SIL Open Font License" in licence.text
