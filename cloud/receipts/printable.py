"""The printable receipt: HTML and PDF, each with a QR code that points at its verification.

Everything is drawn locally (segno for the QR matrix, fpdf2 for the PDF); nothing is fetched
at run time. The PDF is set in the project's own CJK font, Noto Sans SC (SIL OFL 1.1), which
the map's npm step installs next to Leaflet (``npm ci --prefix cloud/web``), or in the
TrueType/OpenType font named by ``PW_RECEIPT_FONT``. fpdf2 embeds only the glyphs a receipt
uses (a subset of some 10 kB) with a ToUnicode map, so the text layer reads back exactly.
A receipt is never printed partially: when the font is missing, unreadable, or lacks a glyph
for any character of the receipt, ``receipt_pdf`` raises ``FontUnavailable`` with the reason.
The HTML receipt and the map declare the same font through ``@font-face`` (``FONT_URL``).
"""

from __future__ import annotations

import html
import os
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import segno
from fontTools.ttLib import TTFont, TTLibError
from fpdf import FPDF

FONT_PACKAGE = (
    Path(__file__).resolve().parent.parent / "web" / "node_modules" / "@expo-google-fonts"
    / "noto-sans-sc"
)
DEFAULT_FONT = FONT_PACKAGE / "400Regular" / "NotoSansSC_400Regular.ttf"
FONT_LICENCE = FONT_PACKAGE / "LICENSE_FONT"
FONT_FAMILY = "Pledgewatch Receipt"
FONT_URL = "/api/v1/fonts/receipt.ttf"
FONT_LICENCE_URL = "/api/v1/fonts/OFL.txt"
# How many missing characters a refusal names: enough to fix the data, bounded for the log.
_MISSING_SHOWN = 8


class FontUnavailable(Exception):
    """No usable font, or a character of the receipt has no glyph in it: nothing is printed."""


@dataclass(frozen=True)
class ReceiptFont:
    path: Path
    codepoints: frozenset[int]

    def missing(self, texts: Iterable[str]) -> list[str]:
        """The characters of ``texts`` the font cannot draw (line breaks are layout, not ink)."""
        return sorted(
            {ch for t in texts for ch in t if ord(ch) not in self.codepoints and ch not in "\n\r"}
        )


@lru_cache(maxsize=4)
def _load(path: Path, mtime_ns: int, size: int) -> ReceiptFont:
    # mtime and size are in the key so that a font replaced on disk is read again.
    try:
        with TTFont(path, lazy=True) as font:
            if "glyf" not in font and "CFF " not in font:
                raise FontUnavailable(f"{path} has no outlines (neither glyf nor CFF)")
            codepoints = frozenset(font.getBestCmap() or {})
    except (TTLibError, OSError, ValueError, KeyError, AssertionError) as err:
        raise FontUnavailable(f"{path} is not a readable TrueType/OpenType font: {err}") from None
    if not codepoints:
        raise FontUnavailable(f"{path} maps no Unicode characters")
    return ReceiptFont(path=path, codepoints=codepoints)


def font_path() -> Path:
    named = os.environ.get("PW_RECEIPT_FONT")
    return Path(named) if named else DEFAULT_FONT


def receipt_font() -> ReceiptFont:
    """The font every receipt is printed in, or ``FontUnavailable`` saying why there is none."""
    path = font_path()
    try:
        stat = path.stat()
    except OSError:
        hint = (
            "check PW_RECEIPT_FONT" if os.environ.get("PW_RECEIPT_FONT")
            else "install it with `npm ci --prefix cloud/web`"
        )
        raise FontUnavailable(f"the receipt font {path} is missing: {hint}") from None
    return _load(path, stat.st_mtime_ns, stat.st_size)


def _describe(chars: list[str]) -> str:
    shown = ", ".join(
        f"U+{ord(c):04X} {unicodedata.name(c, 'unnamed')}" for c in chars[:_MISSING_SHOWN]
    )
    more = f" and {len(chars) - _MISSING_SHOWN} more" if len(chars) > _MISSING_SHOWN else ""
    return shown + more


def _rows(receipt: dict[str, Any]) -> list[tuple[str, str]]:
    doc = receipt["document"]
    goods, storage, evidence = doc["goods"], doc["storage"], doc["evidence"]
    issue_check = evidence.get("issue_verification") or {}
    period = storage.get("period") or {}
    insurance = doc.get("insurance") or {}
    return [
        ("仓单编号 Receipt number", doc["number"]),
        ("版本 Version", f"{doc['version']} ({doc['status']})"),
        ("存货人 Depositor", doc["depositor"]),
        ("保管人 Keeper", f"{doc['keeper']['name']} ({doc['keeper']['operator']})"),
        ("持有人 Holder", doc["holder"]),
        ("质权人 Pledgee", doc["pledgee"] or "-"),
        ("货物 Goods", f"{goods['kind']} / {goods['quality']} / {goods['packaging']}"),
        ("数量 Quantity", f"{goods['quantity']} {goods['unit']}, {goods['pieces']} pieces"),
        ("标记 Marks", goods["marks"] or "-"),
        ("单价 Unit value", f"{goods['unit_value'] or '-'} {goods['currency']}"),
        ("仓储地点 Storage", f"{storage['site_name']} ({storage['site']}), zone {storage['zone']}"),
        ("电子围栏 Fence", storage["fence"] or "-"),
        ("仓储期限 Period", " - ".join(str(v) for v in period.values()) or "-"),
        ("保险 Insurance", ", ".join(f"{k}: {v}" for k, v in insurance.items()) or "-"),
        ("签发 Issued", f"{doc['issued']['place']}, {doc['issued']['at']}"),
        ("标签集 Tag set", f"{evidence['tag_count']} tags, SHA-256 {evidence['tag_set_sha256']}"),
        (
            "签发核验 Issue check",
            f"ledger entry {issue_check.get('ledger_index')}: {issue_check.get('counted')} of "
            f"{issue_check.get('declared_pieces')} pieces present at "
            f"{issue_check.get('verified_at')}",
        ),
        ("文件摘要 Document SHA-256", receipt["document_sha256"]),
        ("运营方签名 Signature", receipt["signature"]),
    ]


def receipt_html(receipt: dict[str, Any], verify_url: str) -> str:
    qr = segno.make(verify_url, error="m")
    rows = "\n".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in _rows(receipt)
    )
    notice = html.escape(receipt["document"]["rights_notice"])
    number = html.escape(receipt["number"])
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<title>电子仓单 Warehouse receipt {number}</title>
<style>
@font-face {{ font-family: "{FONT_FAMILY}"; src: url("{FONT_URL}") format("truetype");
  font-display: block; }}
body {{ font-family: "{FONT_FAMILY}", sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #999; padding: 4px 8px; text-align: left; vertical-align: top; }}
th {{ background: #f0f0f0; white-space: nowrap; }} td {{ word-break: break-all; }}
.qr {{ float: right; margin-left: 1em; text-align: center; font-size: small; }}
@media print {{ body {{ margin: 0; }} }}
</style></head><body>
<div class="qr">{qr.svg_inline(scale=4)}<br>扫码核验 Scan to verify<br>
<a href="{html.escape(verify_url)}">{html.escape(verify_url)}</a></div>
<h1>电子仓单 Electronic warehouse receipt {number}</h1>
<table>
{rows}
</table>
<p>{notice}</p>
<p>Verify offline: <code>python -m cloud receipts verify {number}.json</code> with the bundle
from <code>/api/v1/receipts/{number}/bundle</code>.</p>
</body></html>
"""


def receipt_pdf(receipt: dict[str, Any], verify_url: str) -> bytes:
    """The receipt as PDF, every character in the embedded font, or ``FontUnavailable``."""
    font = receipt_font()
    title = f"电子仓单 Electronic warehouse receipt {receipt['number']}"
    scan = "扫码核验 Scan to verify"
    rows = [(label, str(value)) for label, value in _rows(receipt)]
    notice = receipt["document"]["rights_notice"]
    verify = f"Verify: {verify_url}"
    missing = font.missing([title, scan, notice, verify, *(s for row in rows for s in row)])
    if missing:
        raise FontUnavailable(
            f"the receipt font {font.path.name} has no glyph for {_describe(missing)}"
        )

    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    try:
        pdf.add_font("receipt", fname=str(font.path))
    except (TTLibError, OSError, ValueError, KeyError, AssertionError) as err:
        raise FontUnavailable(f"fpdf2 cannot embed {font.path}: {err}") from None
    pdf.set_font("receipt", size=9)

    # QR code, drawn as filled squares: crisp at any zoom, no image library needed.
    qr = segno.make(verify_url, error="m")
    module_mm, left, top = 1.0, 150.0, 12.0
    for qy, modules in enumerate(qr.matrix):
        for qx, dark in enumerate(modules):
            if dark:
                pdf.rect(left + qx * module_mm, top + qy * module_mm, module_mm, module_mm, "F")
    size = len(qr.matrix) * module_mm
    pdf.set_xy(left - 5, top + size + 1)
    pdf.multi_cell(size + 10, 4, scan, align="C")

    pdf.set_xy(10, 12)
    pdf.set_font_size(14)
    pdf.multi_cell(135, 7, title)
    pdf.set_font_size(8)
    pdf.set_y(max(pdf.get_y(), top + size + 10))
    for label, value in rows:
        y = pdf.get_y()
        pdf.set_x(10)
        pdf.multi_cell(55, 4.5, label, border=1)
        label_end = pdf.get_y()
        pdf.set_xy(65, y)
        pdf.multi_cell(135, 4.5, value, border=1)
        pdf.set_y(max(label_end, pdf.get_y()))
    pdf.ln(3)
    pdf.multi_cell(190, 4.5, notice)
    pdf.ln(2)
    pdf.multi_cell(190, 4.5, verify)
    return bytes(pdf.output())
