"""The printable incident report of one alert: what happened, who did what, the missing tags,
the evidence images and the ledger proof of the lot's receipts, as a PDF.

Set in the receipts' embedded font (cloud/receipts/printable.py) so that Chinese text prints
on every machine; like a receipt, a report is never printed partially: a character the font
cannot draw raises ``FontUnavailable``. The PDF is drawn from values only; the SQL is in
:func:`gather`.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fpdf import FPDF
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from cloud import alerts, console
from cloud.apikeys import Principal
from cloud.map_state import image_refs
from cloud.receipts import ledger, merkle
from cloud.receipts.printable import FontUnavailable, receipt_font
from cloud.registry import NotFound
from cloud.scope import alert_condition, site_condition

LEDGER_ENTRIES_SHOWN = 6  # the lot's latest entries: issue, pledge, verifications...
IMAGES_SHOWN = 6
IMAGES_TITLE = "证据图像 Evidence images"


@dataclass
class Incident:
    alert: dict[str, Any]
    names: dict[str, str]
    missing: list[dict[str, Any]]
    images: list[tuple[str, bytes]]  # (kind, JPEG)
    head: dict[str, Any] | None = None
    entries: list[dict[str, Any]] = field(default_factory=list)
    printed_at: datetime = field(default_factory=lambda: datetime.now(UTC))


async def gather(conn: AsyncConnection, p: Principal, alert_id: int) -> Incident:
    alert = await alerts.get_alert(conn, alert_condition(p), alert_id)
    if alert is None:
        raise NotFound(f"no alert {alert_id}")
    names = await console.people(conn, [h["actor"] for h in alert["history"]])
    missing = await console.missing_tags(conn, p, alert_id)
    cond, params = site_condition(p, "g.site_id")
    images: list[tuple[str, bytes]] = []
    for ref in image_refs(alert["evidence"])[:IMAGES_SHOWN]:
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute("SELECT i.data FROM evidence_images i JOIN gateways g "
                              f"ON g.id = i.gateway_id WHERE i.sha256 = %s AND {cond}",
                              [ref["sha256"], *params])
            row = await cur.fetchone()
        if row is not None:
            images.append((str(ref["kind"]), bytes(row["data"])))
    incident = Incident(alert=alert, names=names, missing=missing, images=images)
    head = await ledger.latest_tree_head(conn)
    if alert["lot_id"] is not None and head is not None:
        incident.head = head.as_json()
        logged = [e for e in await ledger.entries(conn, lot=alert["lot_id"]) if e.index < head.size]
        for e in logged[-LEDGER_ENTRIES_SHOWN:]:
            proof = await ledger.inclusion_proof(conn, e.index, head.size)
            incident.entries.append({
                "index": e.index, "kind": json.loads(e.text).get("kind", ""),
                "leaf": merkle.leaf_hash(e.text.encode()).hex(),
                "proof": [h.hex() for h in proof]})
    return incident


def _when(value: Any) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if value else "-"


def _lines(incident: Incident) -> list[tuple[str, str]]:
    """(style, text) in print order; style is h1, h2, row or mono."""
    a = incident.alert
    out: list[tuple[str, str]] = [
        ("h1", f"事件报告 Incident report · alert {a['id']}"),
        ("row", f"类型 Type: {a['alert_type']} ({a['severity']})"),
        ("row", f"状态 State: {a['state']}"),
        ("row", f"对象 Subject: {a['subject']}"),
        ("row", f"场地 Site: {a['site_id'] or '-'} · 货批 Lot: {a['lot_id'] or '-'}"),
        ("row", f"首次 First seen: {_when(a['first_seen_at'])} · 最近 Last seen: "
                f"{_when(a['last_seen_at'])} · {a['count']}×"),
        ("h2", "说明 Explanation"), ("row", a["explanation"]),
        ("h2", "经过 Timeline"),
    ]
    for h in a["history"]:
        who = incident.names.get(h["actor"], h["actor"])
        comment = f" · “{h['comment']}”" if h["comment"] else ""
        out.append(("row", f"{_when(h['at'])} · {h['action']} · {who}{comment}"))
    if incident.missing:
        out.append(("h2", f"缺失标签 Missing tags ({len(incident.missing)})"))
        for t in incident.missing:
            out.append(("mono", f"{t['epc']}  last read {_when(t['last_seen_at'])}  "
                                f"{t['reader'] or '-'} antenna {t['antenna'] or '-'}"))
    out.append(("h2", "账本证明 Ledger proof"))
    if incident.head is None:
        out.append(("row", "No signed tree head covers this alert's lot yet."))
    else:
        h = incident.head
        out += [("mono", f"tree head: size {h['size']}, root {h['root']}"),
                ("mono", f"log {h['log_id']}, signed at "
                         f"{_when(datetime.fromtimestamp(h['timestamp_ms'] / 1000, UTC))}"),
                ("mono", f"signature {h['signature']}")]
        if not incident.entries:
            out.append(("row", "The ledger holds no entry for this lot."))
        for e in incident.entries:
            out.append(("mono", f"entry {e['index']} ({e['kind']}) leaf {e['leaf']}"))
            out += [("mono", f"  proof {i}: {p}") for i, p in enumerate(e["proof"])]
    out.append(("row", f"Printed {_when(incident.printed_at)}. Verify the entries with "
                       "`python -m cloud receipts verify` and the receipt's bundle."))
    return out


def incident_pdf(incident: Incident) -> bytes:
    font = receipt_font()
    lines = _lines(incident)
    captions = [IMAGES_TITLE, *(kind for kind, _ in incident.images)]
    missing = font.missing([*(text for _, text in lines), *captions])
    if missing:
        raise FontUnavailable(f"the report font has no glyph for {''.join(missing[:8])!r}")
    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    pdf.add_font("receipt", fname=str(font.path))
    sizes = {"h1": 14, "h2": 11, "row": 9, "mono": 7}
    for style, text in lines:
        if style == "h2":
            pdf.ln(2)
        pdf.set_font("receipt", size=sizes[style])
        pdf.multi_cell(190, sizes[style] * 0.55, text, new_x="LMARGIN", new_y="NEXT")
    if incident.images:
        pdf.ln(2)
        pdf.set_font("receipt", size=11)
        pdf.multi_cell(190, 6, IMAGES_TITLE, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("receipt", size=8)
        for kind, data in incident.images:
            if pdf.get_y() > 230:
                pdf.add_page()
            pdf.image(io.BytesIO(data), w=80)
            pdf.multi_cell(190, 4, kind, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())
