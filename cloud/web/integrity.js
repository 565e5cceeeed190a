// Integrity on the map (docs/integrity.md): the lot panel's sources side by side against the
// receipt (the alert types' names come with the message catalogue). Loaded after i18n.js,
// before app.js.
"use strict";

Object.assign(LABELS.en, {
  sources: "Sources against the receipt", no_declaration: "No integrity claim for this lot.",
  source_receipt: "Receipt", source_rfid: "RFID tags", source_labels: "Pallet labels",
  source_load_cell: "Load cell", source_camera: "Stack camera",
  src_agrees: "agrees", src_disagrees: "disagrees", src_silent: "silent", src_stale: "stale",
  src_value: "Reads", src_claim: "Receipt says", src_when: "When",
  unit_tags: "tags", unit_pieces: "pieces", unit_kg: "kg", unit_pallets: "pallets",
  disagrees_since: "disagrees since", shipments: "Shipments", counterparty: "Counterparty",
  verdict_corroborated: "corroborated", verdict_partly: "partly corroborated",
  verdict_contradicted: "contradicted", verdict_no_evidence: "no evidence", verdict_null: "not judged yet",
  dir_inbound: "inbound", dir_outbound: "outbound",
});
Object.assign(LABELS.zh, {
  sources: "多源核对（对照仓单）", no_declaration: "此货批尚无核对依据。",
  source_receipt: "仓单", source_rfid: "RFID 标签", source_labels: "托盘标签",
  source_load_cell: "称重", source_camera: "堆垛摄像头",
  src_agrees: "一致", src_disagrees: "不一致", src_silent: "无数据", src_stale: "过期",
  src_value: "读数", src_claim: "仓单记载", src_when: "时间",
  unit_tags: "个标签", unit_pieces: "件", unit_kg: "千克", unit_pallets: "托",
  disagrees_since: "不一致始于", shipments: "运输", counterparty: "交易对手",
  verdict_corroborated: "已印证", verdict_partly: "部分印证", verdict_contradicted: "相矛盾",
  verdict_no_evidence: "无证据", verdict_null: "尚未核验", dir_inbound: "入库", dir_outbound: "出库",
});
const SOURCE_UNIT = { receipt: "pieces", rfid: "tags", labels: "pieces", load_cell: "kg", camera: "pallets" };

function integrityNumber(value) {
  if (value === null || value === undefined) return "–";
  return Number(value).toLocaleString(lang === "zh" ? "zh-CN" : "en-GB", { maximumFractionDigits: 1 });
}

// The lot's shipments and their verdicts (decisions/shipments.py), newest first.
function shipmentsTable(list) {
  if (!list.length) return "";
  const rows = list.map((s) => `<tr class="shipment verdict-${esc(s.verdict || "null")}"
      data-shipment="${esc(s.id)}" data-verdict="${esc(s.verdict || "")}">
    <td>${esc(s.id)}</td><td>${t(`dir_${s.direction}`)} · ${esc(s.counterparty)}</td>
    <td title="${esc((s.evidence || []).map((e) => `${e.leg} ${e.kind}: ${e.outcome} (${e.detail})`).join("\n"))}">
      ${t(`verdict_${s.verdict || "null"}`)}</td></tr>`).join("");
  return `<h4>${t("shipments")}</h4><table class="shipments">${rows}</table>`;
}

// The section of the lot panel; empty when the API cannot answer (the rest of the panel stays).
async function integritySection(lotId) {
  let p, shipments;
  try {
    [p, shipments] = await Promise.all([
      api(`/api/v1/lots/${encodeURIComponent(lotId)}/integrity`),
      api(`/api/v1/shipments?lot_id=${encodeURIComponent(lotId)}&limit=20`),
    ]);
  } catch (err) {
    console.warn("integrity panel", err);
    return "";
  }
  if (!p.declared) {
    return `<h4>${t("sources")}</h4><p class="muted">${t("no_declaration")}</p>${shipmentsTable(shipments)}`;
  }
  const d = p.declared;
  const unit = (source) => t(`unit_${SOURCE_UNIT[source]}`);
  const rows = p.sources.map((s) => {
    const reads = s.source === "receipt"
      ? `${integrityNumber(d.pieces)} ${unit("receipt")} · ${integrityNumber(d.expected_kg)} ${t("unit_kg")}`
        + (d.pallets !== null ? ` · ${integrityNumber(d.pallets)} ${t("unit_pallets")}` : "")
      : s.value === null ? "–" : `${integrityNumber(s.value)} ${unit(s.source)}`;
    const claim = s.source === "receipt" || s.expected === null ? "–"
      : `${integrityNumber(s.expected)} ± ${integrityNumber(s.allowed)}`;
    const when = s.at ? ago(s.at) : "–";
    return `<tr class="src src-${esc(s.state)}" data-source="${esc(s.source)}" data-state="${esc(s.state)}">
      <td>${t(`source_${s.source}`)}</td><td><b>${reads}</b></td><td>${claim}</td>
      <td title="${esc(s.at || "")}">${when}</td><td class="src-state">${t(`src_${s.state}`)}</td></tr>`;
  }).join("");
  const since = Object.entries(p.disagreeing_since || {})
    .map(([family, at]) => `<p class="src-since">${esc(family)}: ${t("disagrees_since")} ${clock(at)}</p>`).join("");
  return `<h4>${t("sources")}</h4><table class="sources" data-sources="${esc(lotId)}">
    <tr><th></th><th>${t("src_value")}</th><th>${t("src_claim")}</th><th>${t("src_when")}</th><th></th></tr>
    ${rows}</table>${since}${shipmentsTable(shipments)}`;
}
