// The supervisor's live map. Loads /api/v1/map/state once, then applies /api/v1/live events
// after the state's cursor; on a lost socket it shows the loss and resumes from its cursor.
"use strict";

const COLORS = { present: "#2f9e44", unknown: "#e6a700", missing: "#e8590c", alert: "#d6336c" };
const SEVERITY = { critical: 0, major: 1, minor: 2, warning: 3 };
const TRAIL = 20;

const S = {
  key: localStorage.getItem("pw.key") || "",
  role: null, cursor: null, ws: null, retry: 0, map: null, tiles: null,
  sites: new Map(), lots: new Map(), alerts: new Map(), gateways: new Map(), readers: new Map(),
  trackers: new Map(), vehicles: new Map(), fenceLayers: new Map(), lotLayers: new Map(),
  markers: new Map(), detail: null, evidenceLayer: null,
};

// ---- HTTP --------------------------------------------------------------------------------------
async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options, headers: { Authorization: `Bearer ${S.key}`, "Content-Type": "application/json" },
  });
  if (response.status === 401) { showLogin(t("bad_key")); throw new Error("unauthorised"); }
  if (!response.ok) throw new Error(`${path}: ${response.status} ${await response.text()}`);
  return response.json();
}

const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function ago(iso) {
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 10) return t("just_now");
  const [n, unit] = s < 90 ? [Math.round(s), lang === "zh" ? "秒" : "s"]
    : s < 5400 ? [Math.round(s / 60), lang === "zh" ? "分钟" : "min"]
    : [Math.round(s / 3600), lang === "zh" ? "小时" : "h"];
  return lang === "zh" ? `${n}${unit}${t("ago")}` : `${n} ${unit} ${t("ago")}`;
}

const clock = (iso) => iso ? new Date(iso).toLocaleTimeString(lang === "zh" ? "zh-CN" : "en-GB") : "";

// ---- geometry helpers --------------------------------------------------------------------------
function centroid(feature) {
  const layer = L.geoJSON(feature);
  return layer.getBounds().getCenter();
}

function siteFeatures(siteId) {
  const site = S.sites.get(siteId);
  return (site && site.geofences && site.geofences.features) || [];
}

function lotFeature(lot) {
  const features = siteFeatures(lot.site_id);
  const named = (f) => (f.properties.lots || []).includes(lot.id);
  return features.find((f) => f.properties.id === lot.fence)
    || features.find((f) => named(f) && f.properties.kind === "pledge_zone")
    || features.find(named) || null;
}

function siteAnchor(siteId, kind) {
  const feature = siteFeatures(siteId).find((f) => f.properties.kind === kind)
    || siteFeatures(siteId)[0];
  return feature ? centroid(feature) : null;
}

// ---- state -------------------------------------------------------------------------------------
function lotState(lot) {
  for (const a of S.alerts.values()) if (a.lot_id === lot.id && a.state !== "resolved") return "alert";
  if (lot.missing > 0) return "missing";
  if (lot.unknown > 0) return "unknown";
  return "present";
}

function sortedAlerts() {
  return [...S.alerts.values()].filter((a) => a.state !== "resolved").sort((a, b) =>
    (a.state === "open" ? 0 : 1) - (b.state === "open" ? 0 : 1)
    || SEVERITY[a.severity] - SEVERITY[b.severity]
    || Date.parse(b.last_seen_at) - Date.parse(a.last_seen_at));
}

// ---- drawing -----------------------------------------------------------------------------------
const FENCE_STYLE = {
  warehouse: { color: "#495057", weight: 2, fillColor: "#ced4da", fillOpacity: 0.55 },
  yard: { color: "#868e96", weight: 1.5, dashArray: "6 4", fillColor: "#e9ecef", fillOpacity: 0.5 },
  gate: { color: "#1971c2", weight: 2, fillColor: "#74c0fc", fillOpacity: 0.45 },
  route: { color: "#adb5bd", weight: 8, opacity: 0.8 },
  pledge_zone: { color: "#2f9e44", weight: 2.5, fillOpacity: 0.35 },
};

function drawSite(site) {
  if (!site.geofences) return;
  const order = ["yard", "route", "warehouse", "gate", "pledge_zone"];
  const features = [...site.geofences.features].sort(
    (a, b) => order.indexOf(a.properties.kind) - order.indexOf(b.properties.kind));
  for (const feature of features) {
    const kind = feature.properties.kind;
    if (typeof isFinancierOtherZone === "function" && isFinancierOtherZone(feature)) continue;
    const layer = L.geoJSON(feature, {
      style: () => ({ ...(FENCE_STYLE[kind] || { color: "#666", weight: 1 }),
        className: `fence fence-${kind} fence-id-${feature.properties.id}` }),
    }).addTo(S.map);
    if (kind !== "pledge_zone") {
      layer.bindTooltip(esc(feature.properties.name || feature.properties.id),
        { sticky: true, className: "fence-tip" });
    }
    S.fenceLayers.set(`${site.id}/${feature.properties.id}`, layer);
    if (kind === "gate" || kind === "warehouse") {
      // Names at the top of buildings and under gates: the middle is for lots and vehicles.
      const b = layer.getBounds();
      const h = b.getNorth() - b.getSouth();
      const at = kind === "warehouse" ? L.latLng(b.getNorth() - h * 0.1, b.getCenter().lng)
        : L.latLng(b.getSouth() - h * 0.35, b.getCenter().lng);
      L.marker(at, { interactive: false, icon: L.divIcon({
        className: "place-marker",
        html: `<span class="place-label">${esc(feature.properties.name || feature.properties.id)}</span>`,
        iconSize: null }) }).addTo(S.map);
    }
  }
}

function drawLot(lot) {
  const state = lotState(lot);
  const color = COLORS[state];
  const feature = lotFeature(lot);
  let entry = S.lotLayers.get(lot.id);
  if (!entry) {
    const where = feature ? centroid(feature) : siteAnchor(lot.site_id, "warehouse");
    if (!where) return;
    const zone = feature ? L.geoJSON(feature, { style: () => ({ className: `lot-zone lot-zone-${lot.id}` }) })
      .addTo(S.map) : null;
    const label = L.marker(where, { icon: L.divIcon({ className: "lot-marker", html: "", iconSize: null }) })
      .addTo(S.map);
    const open = () => openLot(lot.id);
    label.on("click", open);
    if (zone) zone.on("click", open);
    entry = { zone, label };
    S.lotLayers.set(lot.id, entry);
  }
  if (entry.zone) entry.zone.setStyle({ color, fillColor: color, fillOpacity: state === "present" ? 0.3 : 0.5, weight: 3 });
  const el = entry.label.getElement();
  const html = `<div class="lot-label state-${state}" data-lot="${esc(lot.id)}" data-state="${state}" tabindex="0" role="button">
    <b>${esc(lot.id)}</b> <span class="n">${lot.present}/${lot.expected}</span>
    <small>${esc(t(`state_${state}`))}${lot.missing ? ` · ${t("missing")} ${lot.missing}` : ""}</small></div>`;
  if (el) el.innerHTML = html; else entry.label.setIcon(L.divIcon({ className: "lot-marker", html, iconSize: null }));
}

function buildingBox(siteId) {
  // Devices sit along the building's south-east edge, clear of its name and the lots' labels.
  const feature = siteFeatures(siteId).find((f) => f.properties.kind === "warehouse") || siteFeatures(siteId)[0];
  return feature ? L.geoJSON(feature).getBounds() : null;
}

function drawGateway(gw) {
  const box = buildingBox(gw.site_id);
  if (!box) return;
  const h = box.getNorth() - box.getSouth();
  const east = box.getEast() - (box.getEast() - box.getWest()) * 0.2;
  const pos = L.latLng(box.getSouth() + h * 0.3, east);
  const html = `<div class="device gw ${gw.online ? "on" : "off"}" data-gateway="${esc(gw.id)}" tabindex="0" role="button">
    <span class="dot"></span>${esc(gw.id)} <small>${t(gw.online ? "online" : "offline")}</small></div>`;
  setMarker(`gw/${gw.id}`, pos, html);
  let i = 0;
  for (const r of S.readers.values()) {
    if (r.gateway_id !== gw.id) continue;
    const rpos = L.latLng(box.getSouth() + h * (0.3 - 0.17 * (i + 1)), east);
    setMarker(`reader/${gw.id}/${r.reader}`, rpos, `<div class="device reader ${r.online ? "on" : "off"}"
      data-reader="${esc(r.reader)}" data-gw="${esc(gw.id)}" tabindex="0" role="button"><span class="dot sq"></span>${esc(r.reader)} <small>${t(r.online ? "online" : "offline")}</small></div>`);
    i += 1;
  }
}

function setMarker(id, where, html) {
  const existing = S.markers.get(id);
  if (existing) {
    existing.setLatLng(where);
    const el = existing.getElement();
    if (el) el.innerHTML = html;
    return existing;
  }
  const marker = L.marker(where, { icon: L.divIcon({ className: "html-marker", html, iconSize: null }) }).addTo(S.map);
  S.markers.set(id, marker);
  return marker;
}

function drawTracker(tr) {
  let entry = S.trackers.get(tr.tracker);
  if (!entry) {
    entry = { data: tr, trail: L.polyline([], { color: "#5f3dc4", weight: 3, opacity: 0.6, className: "trail" }).addTo(S.map),
      dot: L.circleMarker([tr.lat, tr.lon], { radius: 7, color: "#fff", weight: 2, fillColor: "#5f3dc4", fillOpacity: 1,
        className: "tracker" }).addTo(S.map) };
    entry.dot.bindTooltip("", { direction: "top" });
    if (typeof openTracker === "function") entry.dot.on("click", () => openTracker(tr.tracker));
    entry.points = (tr.trail || []).map(([lon, lat]) => [lat, lon]);
    S.trackers.set(tr.tracker, entry);
  }
  entry.data = tr;
  const last = entry.points[entry.points.length - 1];
  if (!last || last[0] !== tr.lat || last[1] !== tr.lon) entry.points.push([tr.lat, tr.lon]);
  entry.points = entry.points.slice(-TRAIL);
  entry.trail.setLatLngs(entry.points);
  entry.dot.setLatLng([tr.lat, tr.lon]);
  entry.dot.setTooltipContent(`${esc(tr.tracker)} · ${clock(tr.fix_at)}`);
}

function drawVehicle(v) {
  const where = siteAnchor(v.site_id, "gate");
  if (!where) return;
  S.vehicles.set(v.camera || v.gateway_id, v);
  const arrow = v.direction === "in" ? "⬆" : v.direction === "out" ? "⬇" : "";
  // East of the gate, where the crossings' labels (drawn to the west) leave room.
  setMarker(`vehicle/${v.camera || v.gateway_id}`, L.latLng(where.lat, where.lng + 0.00042),
    `<div class="vehicle" data-plate="${esc(v.plate)}"><span class="plate">${esc(v.plate)}</span> ${arrow}
     <small>${clock(v.at)}</small></div>`);
}

function renderSummary() {
  const lots = [...S.lots.values()];
  const by = { present: 0, unknown: 0, missing: 0, alert: 0 };
  for (const lot of lots) by[lotState(lot)] += 1;
  const active = sortedAlerts();
  const critical = active.filter((a) => a.severity === "critical").length;
  const gwOff = [...S.gateways.values()].filter((g) => !g.online).length;
  document.getElementById("summary").innerHTML = `
    <span class="chip">${t("lots")} <b>${lots.length}</b></span>
    <span class="chip present">${t("ok")} <b>${by.present}</b></span>
    ${by.unknown ? `<span class="chip unknown">${t("state_unknown")} <b>${by.unknown}</b></span>` : ""}
    ${by.missing ? `<span class="chip missing">${t("state_missing")} <b>${by.missing}</b></span>` : ""}
    ${by.alert ? `<span class="chip alert">${t("state_alert")} <b>${by.alert}</b></span>` : ""}
    <span class="chip ${active.length ? "alert" : ""}" id="summary-alerts">${t("alerts")} <b>${active.length}</b>${critical ? ` (${critical} ${t("critical")})` : ""}</span>
    ${gwOff ? `<span class="chip missing">${t("gateways")} ${t("offline")} <b>${gwOff}</b></span>` : ""}`;
}

function renderAlerts() {
  const list = document.getElementById("alerts");
  const active = sortedAlerts();
  const manage = S.role === "admin" || S.role === "supervisor";
  list.innerHTML = active.map((a) => `
    <li class="alert sev-${a.severity} st-${a.state}" data-alert-id="${a.id}"
      data-type="${esc(a.alert_type)}" tabindex="0">
      <div class="row1"><span class="sev">${t(a.severity)}</span>
        <b class="type">${esc(alertTypeLabel(a.alert_type))}</b>
        <span class="when" title="${esc(a.last_seen_at)}">${ago(a.last_seen_at)}</span></div>
      <div class="row2">${esc(a.lot_id || a.subject)} · <span class="state">${t(a.state)}</span>
        ${a.count > 1 ? ` · ${a.count}${t("times")}` : ""}</div>
      <div class="expl">${esc(alertExplanation(a))}</div>
      ${manage ? `<div class="actions">
        ${a.state === "open" ? `<button type="button" class="ack" data-id="${a.id}">${t("acknowledge")}</button>` : ""}
        <button type="button" class="resolve" data-id="${a.id}">${t("resolve")}</button></div>` : ""}
    </li>`).join("");
  document.getElementById("alert-count").textContent = active.length ? String(active.length) : "";
  document.getElementById("no-alerts").hidden = active.length > 0;
  notifyAlerts(active); // notify.js: sound, desktop notification, tab title
}

function renderAll() {
  for (const lot of S.lots.values()) drawLot(lot);
  for (const gw of S.gateways.values()) drawGateway(gw);
  renderAlerts();
  renderSummary();
}

// ---- detail panels -----------------------------------------------------------------------------
function chart(rows, expectedFallback) {
  if (!rows.length) return `<p class="muted">${t("no_data")}</p>`;
  const W = 320, H = 90, P = 4;
  const max = Math.max(1, expectedFallback || 0, ...rows.map((r) => r.expected || 0));
  const x = (i) => P + (rows.length === 1 ? (W - 2 * P) / 2 : (i * (W - 2 * P)) / (rows.length - 1));
  const y = (v) => H - P - (v / max) * (H - 2 * P);
  const line = (key, color) => `<polyline fill="none" stroke="${color}" stroke-width="2"
    points="${rows.map((r, i) => `${x(i).toFixed(1)},${y(r[key] || 0).toFixed(1)}`).join(" ")}"/>`;
  return `<svg class="chart" viewBox="0 0 ${W} ${H}" role="img" aria-label="${t("tag_counts")}">
    <line x1="${P}" x2="${W - P}" y1="${y(max)}" y2="${y(max)}" stroke="#adb5bd" stroke-dasharray="4 3"/>
    ${line("present_min", COLORS.present)}${line("missing_max", COLORS.missing)}${line("unknown_max", COLORS.unknown)}
  </svg><div class="chart-legend"><span style="color:${COLORS.present}">■ ${t("present")}</span>
  <span style="color:${COLORS.missing}">■ ${t("missing")}</span><span style="color:${COLORS.unknown}">■ ${t("unknown")}</span>
  <span>${t("expected")} ${max}</span> · ${clock(rows[0].bucket)}–${clock(rows[rows.length - 1].bucket)}</div>`;
}

function showDetail(html, kind) {
  const box = document.getElementById("detail");
  box.hidden = false;
  box.dataset.kind = kind;
  document.getElementById("detail-body").innerHTML = html;
  // On a laptop the alert list stays in view above the evidence; on a tablet, scroll to it.
  if (window.matchMedia("(max-width: 900px)").matches) box.scrollIntoView({ block: "nearest" });
  else box.scrollTop = 0;
}

function closeDetail() {
  document.getElementById("detail").hidden = true;
  S.detail = null;
  if (S.evidenceLayer) { S.evidenceLayer.remove(); S.evidenceLayer = null; }
}

async function openLot(lotId, refresh = false) {
  if (S.evidenceLayer) { S.evidenceLayer.remove(); S.evidenceLayer = null; }
  S.detail = { kind: "lot", id: lotId, loaded: Date.now() };
  const p = await api(`/api/v1/map/lots/${encodeURIComponent(lotId)}`);
  const lot = p.lot;
  const state = lotState(S.lots.get(lotId) || lot);
  const receipts = p.receipts.length ? `<table><tr><th>#</th><th>${t("status")}</th><th>${t("pledgee")}</th></tr>
    ${p.receipts.map((r) => `<tr><td>${esc(r.number)}</td><td data-status="${esc(r.status)}">${esc(receiptStatusLabel(r.status))}</td><td>${esc(r.pledgee || r.holder || "")}</td></tr>`).join("")}
    </table>` : `<p class="muted">${t("no_receipts")}</p>`;
  const sensors = p.sensors.length ? `<table>${p.sensors.map((s) => `<tr class="${s.ok ? "" : "bad"}">
    <td>${esc(s.sensor)}</td><td>${esc(s.quantity)}</td><td><b>${s.value} ${esc(s.unit)}</b></td>
    <td>${t("allowed")} ${s.min ?? "–"}…${s.max ?? "–"}</td><td>${s.ok ? "✓" : "✗"}</td></tr>`).join("")}</table>`
    : `<p class="muted">${t("no_sensors")}</p>`;
  // Sources side by side (cloud/web/integrity.js); the panel works without it.
  const sources = typeof integritySection === "function" ? await integritySection(lotId) : "";
  showDetail(`<h3 class="lot-title state-${state}" data-lot-panel="${esc(lotId)}">${t("lot")} ${esc(lot.id)}
      <span class="badge state-${state}">${t(`state_${state}`)}</span></h3>
    <p>${esc(lot.name)} · ${esc(lot.goods_kind)} · ${lot.pieces} ${t("pieces")}</p>
    <p class="counts"><b style="color:${COLORS.present}">${lot.present}</b> ${t("present")} ·
      <b style="color:${COLORS.missing}">${lot.missing}</b> ${t("missing")} ·
      <b style="color:${COLORS.unknown}">${lot.unknown}</b> ${t("unknown")} / ${lot.expected} ${t("expected")}</p>
    <h4>${t("tag_counts")}</h4>${chart(p.counts, lot.expected)}${sources}
    <h4>${t("receipts")}</h4>${receipts}
    <h4>${t("sensors")}</h4>${sensors}`, "lot");
  if (typeof afterLotShown === "function") afterLotShown(lotId);
  const entry = S.lotLayers.get(lotId);
  if (entry && entry.zone && !refresh) S.map.flyToBounds(entry.zone.getBounds(), { maxZoom: 18, duration: 0.6, padding: [60, 60] });
}

function alertPlace(alert, evidence) {
  if (evidence && evidence.fixes && evidence.fixes.length) {
    return L.latLngBounds(evidence.fixes.map((f) => [f.lat, f.lon]));
  }
  if (alert.lot_id && S.lotLayers.get(alert.lot_id)?.zone) return S.lotLayers.get(alert.lot_id).zone.getBounds();
  const subject = alert.subject || "";
  if (subject.startsWith("tracker:")) {
    const tr = S.trackers.get(subject.slice(8));
    if (tr) return L.latLngBounds([tr.dot.getLatLng()]);
  }
  const where = siteAnchor(alert.site_id, subject.startsWith("vehicle") ? "gate" : "warehouse");
  return where ? L.latLngBounds([where]) : null;
}

async function openAlert(alertId, refresh = false) {
  S.detail = { kind: "alert", id: alertId };
  const ev = await api(`/api/v1/map/alerts/${alertId}/evidence`);
  const a = ev.alert;
  if (S.evidenceLayer) S.evidenceLayer.remove();
  S.evidenceLayer = L.layerGroup().addTo(S.map);
  if (ev.fixes.length) {
    L.polyline(ev.fixes.map((f) => [f.lat, f.lon]), { color: "#d6336c", weight: 3, dashArray: "4 4" }).addTo(S.evidenceLayer);
  }
  for (const c of ev.crossings) {
    L.circleMarker([c.lat, c.lon], { radius: 8, color: "#d6336c", fillOpacity: 0.8 })
      .bindTooltip(`${esc(c.kind)} ${esc(c.fence_id)} ${clock(c.fix_at)}`, { permanent: true, direction: "left" }).addTo(S.evidenceLayer);
  }
  const place = alertPlace(a, ev);
  if (place && !refresh) S.map.flyToBounds(place, { maxZoom: 18, duration: 0.6, padding: [60, 60] });
  const history = a.history.map((h) => `<li>${clock(h.at)} · ${esc(h.action)} · ${t("by")} ${esc(h.actor_name || h.actor)}
    ${h.comment ? `· ${esc(h.comment)}` : ""}</li>`).join("");
  const images = ev.images.length ? `<h4>${t("images")}</h4><div class="images">${ev.images.map((i) =>
    `<figure><img alt="${esc(i.kind)}" data-src="${esc(i.url)}"><figcaption>${esc(i.kind)}</figcaption></figure>`).join("")}</div>` : "";
  const crossings = ev.crossings.length ? `<h4>${t("crossings")}</h4><ul>${ev.crossings.map((c) =>
    `<li>${clock(c.fix_at)} ${esc(c.kind)} ${esc(c.fence_id)} (${c.lat.toFixed(6)}, ${c.lon.toFixed(6)}
     ±${Math.round(c.accuracy_m || 0)} m)</li>`).join("")}</ul><p class="muted">${ev.fixes.length} ${t("fixes")}</p>` : "";
  showDetail(`<h3 class="alert-title sev-${a.severity}" data-alert-panel="${a.id}">
      <span class="sev">${t(a.severity)}</span> ${esc(alertTypeLabel(a.alert_type))}</h3>
    <p>${esc(a.subject)}${a.lot_id ? ` · ${t("lot")} <a href="#" class="lot-link" data-lot="${esc(a.lot_id)}">${esc(a.lot_id)}</a>` : ""}
      · <span class="state">${t(a.state)}</span> · ${t("seen")} ${clock(a.first_seen_at)}${a.count > 1 ? ` · ${a.count}${t("times")}` : ""}</p>
    <h4>${t("explanation")}</h4><p class="explanation">${esc(alertExplanation(a))}</p>
    ${a.lot_id ? `<h4>${t("tag_counts")}</h4>${chart(ev.counts)}` : ""}
    ${images}${crossings}
    <h4>${t("history")}</h4><ul class="history">${history}</ul>`, "alert");
  if (typeof afterAlertShown === "function") afterAlertShown(a, ev);
  // Images need the key too: fetch them as blobs rather than plain <img src>.
  for (const img of document.querySelectorAll("#detail img[data-src]")) {
    fetch(img.dataset.src, { headers: { Authorization: `Bearer ${S.key}` } })
      .then((r) => (r.ok ? r.blob() : null)).then((b) => { if (b) img.src = URL.createObjectURL(b); });
  }
}

async function act(alertId, action) {
  // Resolving asks for a comment and shows a refusal (notify.js); null: nothing changed.
  const updated = action === "resolve" ? await resolveAlert(alertId)
    : await api(`/api/v1/alerts/${alertId}/${action}`, { method: "POST", body: "{}" });
  if (!updated) return;
  S.alerts.set(updated.id, updated);
  renderAll();
  if (S.detail && S.detail.kind === "alert" && S.detail.id === updated.id) openAlert(updated.id, true);
}

// ---- live feed ---------------------------------------------------------------------------------
function setConnected(live) {
  const conn = document.getElementById("conn");
  conn.dataset.state = live ? "live" : "down";
  conn.querySelector(".text").textContent = t(live ? "live" : "down");
  document.getElementById("down-banner").hidden = live;
  document.body.classList.toggle("offline", !live);
}

function applyEvent(e) {
  const p = e.payload;
  switch (e.kind) {
    case "alert": {
      S.alerts.set(p.id, { ...(S.alerts.get(p.id) || {}), ...p });
      // A reader is offline exactly while its tamper.reader_offline alert is active.
      const reader = p.alert_type === "tamper.reader_offline" && p.source_gateway
        && S.readers.get(`${p.source_gateway}/${p.subject.replace(/^reader:/, "")}`);
      if (reader) reader.online = p.state === "resolved";
      break;
    }
    case "gateway": S.gateways.set(p.id, { ...(S.gateways.get(p.id) || {}), ...p }); break;
    case "tracker": drawTracker({ ...p, site_id: e.site_id }); break;
    case "vehicle": drawVehicle({ ...p, site_id: e.site_id }); break;
    case "lot_count": {
      const lot = S.lots.get(p.lot_id);
      if (lot) Object.assign(lot, { expected: p.expected, present: p.present, missing: p.missing, unknown: p.unknown });
      break;
    }
    case "presence": {
      const lot = S.lots.get(p.lot_id);
      const prev = p.previous || "unknown";
      if (lot && prev !== p.state && lot[prev] > 0) { lot[prev] -= 1; lot[p.state] += 1; }
      break;
    }
    case "crossing": break; // shown with the alert it raises
    default: break;
  }
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/api/v1/live`);
  S.ws = ws;
  ws.onopen = () => ws.send(JSON.stringify({ key: S.key, after: S.cursor }));
  ws.onmessage = (message) => {
    const frame = JSON.parse(message.data);
    if (frame.type === "hello") { S.retry = 0; setConnected(true); return; }
    if (frame.type !== "events") return;
    let alertsChanged = false;
    for (const e of frame.events) { applyEvent(e); if (e.kind === "alert") alertsChanged = true; }
    S.cursor = frame.cursor;
    renderAll();
    // Open panels follow live changes without moving the map under the supervisor.
    if (alertsChanged && S.detail && S.detail.kind === "alert") openAlert(S.detail.id, true);
    // An open lot panel follows its lot, at most every 5 s.
    if (S.detail && S.detail.kind === "lot" && Date.now() - (S.detail.loaded || 0) > 5000
        && frame.events.some((e) => e.lot_id === S.detail.id)) openLot(S.detail.id, true);
  };
  ws.onclose = (event) => {
    if (S.ws !== ws) return;
    setConnected(false);
    if (event.code === 4401) { showLogin(t("bad_key")); return; }
    if (event.code === 4409) { S.retry = 0; setTimeout(load, 500); return; }
    const delay = Math.min(10000, 500 * 2 ** S.retry) * (0.5 + Math.random() / 2);
    S.retry += 1;
    setTimeout(connect, delay);
  };
}

// ---- start -------------------------------------------------------------------------------------
function resetLayers() {
  for (const [, m] of S.markers) m.remove();
  for (const [, l] of S.fenceLayers) l.remove();
  for (const [, e] of S.lotLayers) { e.label.remove(); if (e.zone) e.zone.remove(); }
  for (const [, tr] of S.trackers) { tr.dot.remove(); tr.trail.remove(); }
  for (const store of [S.markers, S.fenceLayers, S.lotLayers, S.trackers, S.sites, S.lots, S.alerts,
    S.gateways, S.readers, S.vehicles]) store.clear();
}

async function load() {
  if (S.ws) { const old = S.ws; S.ws = null; old.close(); }
  const state = await api("/api/v1/map/state");
  resetLayers();
  S.role = state.role;
  document.body.classList.remove("signed-out");
  for (const l of state.lots) S.lots.set(l.id, l); // before the sites: a financier's zones need them
  S.cursor = state.cursor;
  document.getElementById("who").textContent = state.financier_id ? `${state.role} · ${state.financier_id}` : state.role;
  if (state.tile_url && !S.tiles) S.tiles = L.tileLayer(state.tile_url, { maxZoom: 20 }).addTo(S.map);
  for (const s of state.sites) { S.sites.set(s.id, s); drawSite(s); }
  fitSites(); // a view first: a tracker's marker cannot be drawn on a map without one
  for (const a of state.alerts) S.alerts.set(a.id, a);
  for (const g of state.gateways) S.gateways.set(g.id, g);
  for (const r of state.readers) S.readers.set(`${r.gateway_id}/${r.reader}`, r);
  for (const tr of state.trackers) drawTracker(tr);
  for (const v of [...state.vehicles].reverse()) drawVehicle(v);
  const select = document.getElementById("site-select");
  select.innerHTML = state.sites.map((s) => `<option value="${esc(s.id)}">${esc(s.name)}</option>`).join("");
  select.hidden = state.sites.length < 2;
  renderAll();
  connect();
}

function fitSites(siteId) {
  const layers = [...S.fenceLayers.entries()].filter(([k]) => !siteId || k.startsWith(`${siteId}/`)).map(([, l]) => l);
  if (layers.length) S.map.fitBounds(L.featureGroup(layers).getBounds(), { padding: [20, 20] });
  else S.map.setView([31.35, 121.59], 16);
}

function showLogin(message) {
  document.getElementById("login").hidden = false;
  document.body.classList.add("signed-out");
  document.getElementById("login-error").textContent = message || "";
}

function start() {
  applyLabels();
  setConnected(false);
  S.map = L.map("map", { zoomSnap: 0.25, maxZoom: 21, attributionControl: false });
  document.getElementById("lang").onclick = () => {
    setLanguage(lang === "zh" ? "en" : "zh");
    renderAll();
    setConnected(Boolean(S.ws && S.ws.readyState === WebSocket.OPEN));
    const openers = { lot: openLot, alert: openAlert, ...(typeof DETAIL_OPENERS === "object" ? DETAIL_OPENERS : {}) };
    if (S.detail && openers[S.detail.kind]) openers[S.detail.kind](S.detail.id, true);
  };
  document.getElementById("logout").onclick = () => { localStorage.removeItem("pw.key"); location.reload(); };
  document.getElementById("detail-close").onclick = closeDetail;
  document.getElementById("site-select").onchange = (e) => fitSites(e.target.value);
  document.getElementById("alerts").addEventListener("click", (e) => {
    const button = e.target.closest("button");
    if (button) { e.stopPropagation(); act(Number(button.dataset.id), button.classList.contains("ack") ? "acknowledge" : "resolve"); return; }
    const item = e.target.closest("li.alert");
    if (item) openAlert(Number(item.dataset.alertId));
  });
  document.getElementById("detail-body").addEventListener("click", (e) => {
    const link = e.target.closest(".lot-link");
    if (link) { e.preventDefault(); openLot(link.dataset.lot); }
  });
  document.getElementById("login-form").onsubmit = async (e) => {
    e.preventDefault();
    S.key = document.getElementById("key").value.trim();
    try {
      await load();
      localStorage.setItem("pw.key", S.key);
      document.getElementById("login").hidden = true;
    } catch (err) { if (err.message !== "unauthorised") showLogin(String(err)); }
  };
  setInterval(() => { renderAlerts(); }, 15000); // keep "n min ago" honest
  if (S.key) load().catch(() => showLogin()); else showLogin();
}

start();
