"""The printable receipt: HTML and PDF, each with a QR code that points at its verification.

Everything is drawn locally (segno for the QR matrix, fpdf2 for the PDF); nothing is fetched
at run time. The PDF uses a CJK font found on the machine (or named by PW_RECEIPT_FONT) so the
Chinese rights notice prints; without one it falls back to the built-in Helvetica and prints
the English text only, saying so.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

import segno
from fpdf import FPDF

_FONT_CANDIDATES = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
)


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
body {{ font-family: sans-serif; margin: 2em; }} table {{ border-collapse: collapse; }}
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


def _cjk_font() -> Path | None:
    named = os.environ.get("PW_RECEIPT_FONT")
    for candidate in ([named] if named else []) + list(_FONT_CANDIDATES):
        if Path(candidate).is_file():
            return Path(candidate)
    return None


def receipt_pdf(receipt: dict[str, Any], verify_url: str) -> bytes:
    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    font = _cjk_font()
    if font is not None:
        pdf.add_font("receipt", fname=str(font))
        pdf.set_font("receipt", size=9)

        def text(s: str) -> str:
            return s

    else:
        pdf.set_font("Helvetica", size=9)

        def text(s: str) -> str:
            # Helvetica has no CJK glyphs: keep the English half of bilingual labels.
            return s.encode("latin-1", "replace").decode("latin-1").replace("?", "").strip()

    # QR code, drawn as filled squares: crisp at any zoom, no image library needed.
    qr = segno.make(verify_url, error="m")
    module_mm, left, top = 1.0, 150.0, 12.0
    for qy, modules in enumerate(qr.matrix):
        for qx, dark in enumerate(modules):
            if dark:
                pdf.rect(left + qx * module_mm, top + qy * module_mm, module_mm, module_mm, "F")
    size = len(qr.matrix) * module_mm
    pdf.set_xy(left - 5, top + size + 1)
    pdf.multi_cell(size + 10, 4, text("扫码核验 Scan to verify"), align="C")

    pdf.set_xy(10, 12)
    pdf.set_font_size(14)
    pdf.multi_cell(135, 7, text(f"电子仓单 Electronic warehouse receipt {receipt['number']}"))
    pdf.set_font_size(8)
    pdf.set_y(max(pdf.get_y(), top + size + 10))
    for label, value in _rows(receipt):
        y = pdf.get_y()
        pdf.set_x(10)
        pdf.multi_cell(55, 4.5, text(label), border=1)
        label_end = pdf.get_y()
        pdf.set_xy(65, y)
        pdf.multi_cell(135, 4.5, text(str(value)), border=1)
        pdf.set_y(max(label_end, pdf.get_y()))
    pdf.ln(3)
    pdf.multi_cell(190, 4.5, text(receipt["document"]["rights_notice"]))
    pdf.ln(2)
    pdf.multi_cell(190, 4.5, text(f"Verify: {verify_url}"))
    return bytes(pdf.output())
