// The supervisor's console beyond the live map: search, alert filters and history, gateway and
// reader details, track replay, CSV exports, the incident report, the missing tags of an alert,
// and keyboard access. Loaded after i18n.js and before app.js; app.js calls the few hooks
// (afterAlertShown, afterLotShown, openTracker, DETAIL_OPENERS) where they exist.
"use strict";

Object.assign(LABELS.en, {
  search: "Search", search_hint: "Lot, plate, EPC, gateway, receipt…", no_results: "Nothing found.",
  kind_lot: "Lot", kind_receipt: "Receipt", kind_epc: "Tag", kind_gateway: "Gateway",
  kind_plate: "Plate", kind_tracker: "Tracker",
  filters: "Filter & history", severity: "Severity", type: "Type", site: "Site", state: "State",
  any: "any", active: "active", from: "From", to: "To", apply: "Show", export_csv: "Export CSV",
  history_none: "No alert matches.", alert_history: "Alert history",
  last_seen: "Last seen", read_rate: "Read rate", reads_per_s: "reads/s", outbox: "Outbox",
  outbox_msgs: "messages", version: "Version", antennas: "Antennas", tags_in_view: "Tags",
  readers: "Readers", never: "never",
  replay: "Track replay", play: "Play", pause: "Pause", no_track: "No fixes in the last two hours.",
  battery: "battery", export_series: "Export tags & sensors (CSV)",
  incident_report: "Incident report (PDF)", missing_tags: "Missing tags", last_read: "Last read",
  antenna: "Antenna", plate_seen: "Plate last seen",
});
Object.assign(LABELS.zh, {
  search: "搜索", search_hint: "货批、车牌、EPC、网关、仓单…", no_results: "未找到。",
  kind_lot: "货批", kind_receipt: "仓单", kind_epc: "标签", kind_gateway: "网关",
  kind_plate: "车牌", kind_tracker: "定位器",
  filters: "筛选与历史", severity: "级别", type: "类型", site: "场地", state: "状态",
  any: "全部", active: "活动", from: "从", to: "至", apply: "查询", export_csv: "导出 CSV",
  history_none: "没有符合条件的告警。", alert_history: "告警历史",
  last_seen: "最近上报", read_rate: "读取速率", reads_per_s: "次/秒", outbox: "待发队列",
  outbox_msgs: "条", version: "版本", antennas: "天线", tags_in_view: "标签数",
  readers: "读写器", never: "从未",
  replay: "轨迹回放", play: "播放", pause: "暂停", no_track: "近两小时无定位点。",
  battery: "电量", export_series: "导出标签与传感器数据（CSV）",
  incident_report: "事件报告（PDF）", missing_tags: "缺失标签", last_read: "最近读取",
  antenna: "天线", plate_seen: "车牌最近出现",
});

const CONSOLE = { searchTimer: null, hits: [], replay: null, replayLayer: null };

// ---- downloads (the API wants the key in a header, so no plain links) -------------------------
async function downloadWithKey(path, filename) {
  const response = await fetch(path, { headers: { Authorization: `Bearer ${S.key}` } });
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  const url = URL.createObjectURL(await response.blob());
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

const stamp = (iso) => (iso ? `${new Date(iso).toLocaleDateString(lang === "zh" ? "zh-CN" : "en-GB")} ${clock(iso)}` : "–");

// ---- search -------------------------------------------------------------------------------------
function renderHits() {
  const list = document.getElementById("search-results");
  const q = document.getElementById("search").value.trim();
  if (q.length < 2) { list.hidden = true; return; }
  list.hidden = false;
  list.innerHTML = CONSOLE.hits.length ? CONSOLE.hits.map((h, i) => `<li role="option">
    <button type="button" class="hit" data-i="${i}" data-kind="${esc(h.kind)}" data-id="${esc(h.id)}">
      <span class="hit-kind">${t(`kind_${h.kind}`)}</span> <b>${esc(h.id)}</b>
      <small>${esc(h.label || "")}${h.lot_id && h.kind !== "lot" ? ` · ${esc(h.lot_id)}` : ""}</small></button></li>`).join("")
    : `<li class="muted">${t("no_results")}</li>`;
}

async function runSearch() {
  const q = document.getElementById("search").value.trim();
  if (q.length < 2) { CONSOLE.hits = []; renderHits(); return; }
  try {
    CONSOLE.hits = await api(`/api/v1/search?q=${encodeURIComponent(q)}`);
  } catch (err) { console.warn("search", err); CONSOLE.hits = []; }
  if (document.getElementById("search").value.trim() === q) renderHits();
}

function openHit(hit) {
  document.getElementById("search-results").hidden = true;
  if (hit.kind === "gateway") openGateway(hit.id);
  else if (hit.kind === "tracker") openTracker(hit.id);
  else if (hit.kind === "plate") openPlate(hit);
  else if (hit.lot_id) openLot(hit.lot_id);
}

function openPlate(hit) {
  stopReplay();
  S.detail = { kind: "plate", id: hit.id };
  showDetail(`<h3 data-plate-panel="${esc(hit.id)}">${t("kind_plate")} <span class="vehicle"><span class="plate">${esc(hit.id)}</span></span></h3>
    <p>${t("plate_seen")}: ${stamp(hit.at)} · ${esc(hit.label)} · ${esc(hit.site_id)}</p>`, "plate");
  const where = siteAnchor(hit.site_id, "gate");
  if (where) S.map.flyTo(where, 18, { duration: 0.6 });
}

// ---- alert filters and history ----------------------------------------------------------------
function filterParams() {
  const form = document.getElementById("alert-filter");
  const params = new URLSearchParams();
  for (const name of ["severity", "type", "site", "state"]) {
    const value = form.elements[name].value;
    if (value) params.set(name, value);
  }
  for (const name of ["from", "to"]) {
    const value = form.elements[name].value;
    if (value) params.set(name, new Date(value).toISOString());
  }
  return params;
}

function fillFilterChoices() {
  const form = document.getElementById("alert-filter");
  const keep = (el, html) => { const v = el.value; el.innerHTML = html; el.value = v; };
  keep(form.elements.severity, `<option value="">${t("any")}</option>`
    + Object.keys(SEVERITY).map((s) => `<option value="${s}">${t(s)}</option>`).join(""));
  keep(form.elements.type, `<option value="">${t("any")}</option>`
    + Object.keys(CATALOGUE.alert_types).sort().map((k) => `<option value="${esc(k)}">${esc(alertTypeLabel(k))}</option>`).join(""));
  keep(form.elements.site, `<option value="">${t("any")}</option>`
    + [...S.sites.values()].map((s) => `<option value="${esc(s.id)}">${esc(s.name)}</option>`).join(""));
  keep(form.elements.state, `<option value="">${t("any")}</option>`
    + ["active", "open", "acknowledged", "resolved"].map((s) => `<option value="${s}">${t(s)}</option>`).join(""));
}

async function showHistory() {
  const list = document.getElementById("history");
  const rows = await api(`/api/v1/alert-history?${filterParams()}`);
  list.hidden = false;
  list.innerHTML = rows.length ? rows.map((a) => `<li class="history-row sev-${a.severity} st-${a.state}"
      data-alert-id="${a.id}" data-type="${esc(a.alert_type)}" data-state="${esc(a.state)}" tabindex="0" role="button">
      <span class="sev">${t(a.severity)}</span> <b>${esc(alertTypeLabel(a.alert_type))}</b>
      <small>${esc(a.lot_id || a.subject)} · ${t(a.state)} · ${stamp(a.first_seen_at)}${a.resolved_at ? ` → ${stamp(a.resolved_at)}` : ""}</small></li>`).join("")
    : `<li class="muted">${t("history_none")}</li>`;
}

// ---- gateways and readers ---------------------------------------------------------------------
function deviceTable(rows) {
  return `<table class="device-facts">${rows.map(([k, v]) => `<tr><th>${k}</th><td>${v}</td></tr>`).join("")}</table>`;
}

async function openGateway(id, refresh = false) {
  stopReplay();
  S.detail = { kind: "gateway", id };
  const g = await api(`/api/v1/devices/gateways/${encodeURIComponent(id)}`);
  const readers = g.readers.length ? `<h4>${t("readers")}</h4><table>${g.readers.map((r) => `<tr>
    <td><a href="#" class="reader-link" data-gw="${esc(g.id)}" data-reader="${esc(r.reader)}">${esc(r.reader)}</a></td>
    <td>${r.read_rate_per_s} ${t("reads_per_s")}</td><td>${stamp(r.last_seen_at)}</td></tr>`).join("")}</table>` : "";
  showDetail(`<h3 data-gateway-panel="${esc(g.id)}">${t("gateway")} ${esc(g.id)}
      <span class="badge ${g.online ? "state-present" : "state-alert"}">${t(g.online ? "online" : "offline")}</span></h3>
    ${deviceTable([
      [t("last_seen"), `<span class="last-seen">${stamp(g.last_seen_at)}</span>`],
      [t("read_rate"), `<span class="read-rate">${g.read_rate_per_s}</span> ${t("reads_per_s")}`],
      [t("outbox"), `<span class="outbox">${g.outbox_depth ?? "–"}</span> ${t("outbox_msgs")}`],
      [t("version"), `<span class="version">${esc(g.version || "–")}</span>`],
    ])}${readers}`, "gateway");
  if (!refresh) { const where = buildingBox(g.site_id); if (where) S.map.flyToBounds(where, { maxZoom: 18, duration: 0.6 }); }
}

async function openReader(gatewayId, reader) {
  stopReplay();
  S.detail = { kind: "reader", id: `${gatewayId}/${reader}` };
  const r = await api(`/api/v1/devices/gateways/${encodeURIComponent(gatewayId)}/readers/${encodeURIComponent(reader)}`);
  const known = S.readers.get(`${gatewayId}/${reader}`);
  const online = known ? known.online : true;
  showDetail(`<h3 data-reader-panel="${esc(reader)}">${t("reader")} ${esc(reader)}
      <span class="badge ${online ? "state-present" : "state-alert"}">${t(online ? "online" : "offline")}</span></h3>
    ${deviceTable([
      [t("gateway"), `<a href="#" class="gateway-link" data-gw="${esc(gatewayId)}">${esc(gatewayId)}</a>`],
      [t("last_seen"), `<span class="last-seen">${stamp(r.last_seen_at)}</span>`],
      [t("read_rate"), `<span class="read-rate">${r.read_rate_per_s}</span> ${t("reads_per_s")}`],
      [t("tags_in_view"), String(r.tags)],
      [t("antennas"), esc(r.antennas.join(", ") || "–")],
      [t("version"), `<span class="version">${esc(r.gateway_version || "–")}</span>`],
    ])}`, "reader");
}

// ---- track replay -----------------------------------------------------------------------------
function stopReplay() {
  if (CONSOLE.replay && CONSOLE.replay.timer) clearInterval(CONSOLE.replay.timer);
  CONSOLE.replay = null;
  if (CONSOLE.replayLayer) { CONSOLE.replayLayer.remove(); CONSOLE.replayLayer = null; }
}

function replayTo(i) {
  const r = CONSOLE.replay;
  if (!r || !r.fixes.length) return;
  const f = r.fixes[Math.max(0, Math.min(i, r.fixes.length - 1))];
  r.marker.setLatLng([f.lat, f.lon]);
  r.done.setLatLngs(r.fixes.slice(0, i + 1).map((p) => [p.lat, p.lon]));
  const at = document.getElementById("replay-at");
  if (at) at.textContent = `${stamp(f.fix_at)}${f.battery_pct != null ? ` · ${t("battery")} ${f.battery_pct}%` : ""}`;
  const slider = document.getElementById("replay-slider");
  if (slider && Number(slider.value) !== i) slider.value = String(i);
}

async function openTracker(tracker) {
  stopReplay();
  S.detail = { kind: "tracker", id: tracker };
  const fixes = await api(`/api/v1/devices/trackers/${encodeURIComponent(tracker)}/track`);
  CONSOLE.replayLayer = L.layerGroup().addTo(S.map);
  const points = fixes.map((f) => [f.lat, f.lon]);
  CONSOLE.replay = {
    tracker, fixes, timer: null,
    done: L.polyline([], { color: "#5f3dc4", weight: 4, className: "replay-done" }).addTo(CONSOLE.replayLayer),
    marker: L.circleMarker(points[0] || [0, 0], { radius: 9, color: "#fff", weight: 3, fillColor: "#e8590c",
      fillOpacity: 1, className: "replay-marker" }).addTo(CONSOLE.replayLayer),
  };
  L.polyline(points, { color: "#5f3dc4", weight: 2, opacity: 0.4, dashArray: "4 4" }).addTo(CONSOLE.replayLayer);
  const body = fixes.length ? `<div class="replay">
      <button type="button" id="replay-play">${t("play")}</button>
      <input id="replay-slider" type="range" min="0" max="${fixes.length - 1}" value="0" step="1"
        aria-label="${t("replay")}">
    </div><p id="replay-at" aria-live="polite"></p><p class="muted">${fixes.length} ${t("fixes")}</p>`
    : `<p class="muted">${t("no_track")}</p>`;
  showDetail(`<h3 data-tracker-panel="${esc(tracker)}">${t("replay")} · ${esc(tracker)}</h3>${body}`, "tracker");
  if (points.length) { replayTo(0); S.map.flyToBounds(L.latLngBounds(points), { maxZoom: 18, duration: 0.6, padding: [40, 40] }); }
}

function togglePlay() {
  const r = CONSOLE.replay;
  const button = document.getElementById("replay-play");
  if (!r) return;
  if (r.timer) { clearInterval(r.timer); r.timer = null; button.textContent = t("play"); return; }
  const slider = document.getElementById("replay-slider");
  if (Number(slider.value) >= r.fixes.length - 1) slider.value = "0";
  button.textContent = t("pause");
  r.timer = setInterval(() => {
    const next = Number(slider.value) + 1;
    if (next >= r.fixes.length) { clearInterval(r.timer); r.timer = null; button.textContent = t("play"); return; }
    replayTo(next);
  }, 400);
}

// ---- hooks app.js calls -----------------------------------------------------------------------
function afterLotShown(lotId) {
  stopReplay(); // a replay belongs to its own panel
  document.getElementById("detail-body").insertAdjacentHTML("beforeend",
    `<p class="console-actions"><button type="button" class="export-series" data-lot="${esc(lotId)}">${t("export_series")}</button></p>`);
}

function closeStrayTooltips() {
  // A tooltip opened by a touch stays until another touch; a new panel clears it.
  S.map.eachLayer((layer) => {
    const tip = layer.getTooltip && layer.getTooltip();
    if (tip && !tip.options.permanent) layer.closeTooltip();
  });
}

async function afterAlertShown(alert) {
  stopReplay();
  closeStrayTooltips();
  const body = document.getElementById("detail-body");
  // The card's own buttons, mirrored at the top of the panel: in view on a tablet in portrait.
  const card = document.querySelector(`li.alert[data-alert-id="${alert.id}"] .actions`);
  const mirrored = card ? [...card.querySelectorAll("button")].map((b) =>
    `<button type="button" class="mirror ${esc(b.className)}" data-mirror="${esc(b.className)}">${esc(b.textContent)}</button>`).join("") : "";
  body.querySelector(".alert-title")?.insertAdjacentHTML("afterend", `<div class="detail-actions">${mirrored}
    <button type="button" class="incident-report" data-alert="${alert.id}">${t("incident_report")}</button></div>`);
  if (!(alert.evidence && alert.evidence.missing_epcs && alert.evidence.missing_epcs.length)) return;
  let tags;
  try { tags = await api(`/api/v1/incidents/${alert.id}/missing-tags`); } catch (err) { console.warn(err); return; }
  if (!S.detail || S.detail.kind !== "alert" || S.detail.id !== alert.id) return;
  const rows = tags.map((tag) => `<tr data-epc="${esc(tag.epc)}"><td class="epc">${esc(tag.epc)}</td>
    <td>${tag.last_seen_at ? stamp(tag.last_seen_at) : t("never")}</td><td>${esc(tag.reader || "–")}</td>
    <td>${tag.antenna ?? "–"}</td></tr>`).join("");
  const explanation = body.querySelector(".explanation");
  if (body.querySelector("table.missing-tags")) return;
  (explanation || body).insertAdjacentHTML("afterend", `<h4>${t("missing_tags")} (${tags.length})</h4>
    <table class="missing-tags"><tr><th>EPC</th><th>${t("last_read")}</th><th>${t("reader")}</th><th>${t("antenna")}</th></tr>${rows}</table>`);
}

const DETAIL_OPENERS = {
  gateway: (id) => openGateway(id, true),
  reader: (id) => openReader(...id.split("/")),
  tracker: (id) => openTracker(id),
};

function isFinancierOtherZone(feature) {
  // A financier sees their own pledge zones only: another bank's zone is none of their business.
  if (S.role !== "financier" || feature.properties.kind !== "pledge_zone") return false;
  return !(feature.properties.lots || []).some((id) => S.lots.has(id));
}

// ---- wiring -----------------------------------------------------------------------------------
function consoleLabels() {
  document.getElementById("search").placeholder = t("search_hint");
  document.getElementById("search").setAttribute("aria-label", t("search"));
  fillFilterChoices();
}

function activate(e, handler) {
  if (e.type === "keydown" && e.key !== "Enter" && e.key !== " ") return false;
  if (e.type === "keydown") e.preventDefault();
  handler();
  return true;
}

function startConsole() {
  consoleLabels();
  const input = document.getElementById("search");
  input.addEventListener("input", () => { clearTimeout(CONSOLE.searchTimer); CONSOLE.searchTimer = setTimeout(runSearch, 250); });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && CONSOLE.hits.length) { e.preventDefault(); openHit(CONSOLE.hits[0]); }
    if (e.key === "Escape") document.getElementById("search-results").hidden = true;
    if (e.key === "ArrowDown") { e.preventDefault(); document.querySelector("#search-results button")?.focus(); }
  });
  document.getElementById("search-results").addEventListener("click", (e) => {
    const hit = e.target.closest("button.hit");
    if (hit) openHit(CONSOLE.hits[Number(hit.dataset.i)]);
  });
  document.getElementById("lang").addEventListener("click", () => { consoleLabels(); renderHits(); });
  document.addEventListener("click", (e) => {  // a click elsewhere closes the suggestions
    if (!e.target.closest("#search-box")) document.getElementById("search-results").hidden = true;
  });
  input.addEventListener("focus", () => { if (input.value.trim().length >= 2) renderHits(); });
  document.getElementById("filter-toggle").addEventListener("click", () => {
    const form = document.getElementById("alert-filter");
    form.hidden = !form.hidden;
    document.getElementById("filter-toggle").setAttribute("aria-expanded", String(!form.hidden));
    if (!form.hidden) { fillFilterChoices(); form.elements.severity.focus(); }
    else document.getElementById("history").hidden = true;
  });
  document.getElementById("alert-filter").addEventListener("submit", (e) => { e.preventDefault(); showHistory(); });
  document.getElementById("export-alerts").addEventListener("click", () =>
    downloadWithKey(`/api/v1/exports/alerts.csv?${filterParams()}`, "alerts.csv"));
  const history = document.getElementById("history");
  for (const type of ["click", "keydown"]) {
    history.addEventListener(type, (e) => {
      const row = e.target.closest("li.history-row");
      if (row) activate(e, () => openAlert(Number(row.dataset.alertId)));
    });
    // Enter (or space) on an alert card opens it, as a click does.
    if (type === "keydown") {
      document.getElementById("alerts").addEventListener("keydown", (e) => {
        const item = e.target.closest("li.alert");
        if (item && e.target === item) activate(e, () => openAlert(Number(item.dataset.alertId)));
      });
    }
    document.getElementById("map").addEventListener(type, (e) => {
      const gw = e.target.closest(".device.gw[data-gateway]");
      const reader = e.target.closest(".device.reader[data-reader]");
      const lot = e.target.closest(".lot-label[data-lot]");
      if (gw) activate(e, () => openGateway(gw.dataset.gateway));
      else if (reader) activate(e, () => openReader(reader.dataset.gw, reader.dataset.reader));
      else if (lot && type === "keydown") activate(e, () => openLot(lot.dataset.lot));
    });
  }
  document.getElementById("detail-body").addEventListener("click", (e) => {
    const target = e.target.closest("button, a");
    if (!target) return;
    if (target.classList.contains("export-series")) {
      downloadWithKey(`/api/v1/exports/lots/${encodeURIComponent(target.dataset.lot)}/series.csv`, `${target.dataset.lot}-series.csv`);
    } else if (target.classList.contains("incident-report")) {
      downloadWithKey(`/api/v1/incidents/${target.dataset.alert}/report.pdf`, `incident-${target.dataset.alert}.pdf`);
    } else if (target.dataset.mirror && S.detail) {
      document.querySelector(`li.alert[data-alert-id="${S.detail.id}"] .actions button.${target.dataset.mirror.split(" ")[0]}`)?.click();
    } else if (target.id === "replay-play") {
      togglePlay();
    } else if (target.classList.contains("reader-link")) {
      e.preventDefault(); openReader(target.dataset.gw, target.dataset.reader);
    } else if (target.classList.contains("gateway-link")) {
      e.preventDefault(); openGateway(target.dataset.gw);
    }
  });
  document.getElementById("detail-body").addEventListener("input", (e) => {
    if (e.target.id === "replay-slider") replayTo(Number(e.target.value));
  });
  document.getElementById("detail-close").addEventListener("click", stopReplay);
}

document.addEventListener("DOMContentLoaded", startConsole);
