// Labels in English and Chinese; the page picks one with the language switch (kept per browser).
"use strict";

const LABELS = {
  en: {
    title: "Pledgewatch", logout: "Log out", login: "Sign in", login_hint: "Sign in with your API key.",
    bad_key: "Unknown or revoked API key.", alerts: "Alerts", no_alerts: "No active alerts.",
    live: "Live", down: "Disconnected", disconnected_long: "Live updates lost: reconnecting… The map may be out of date.",
    state_present: "All present", state_unknown: "Some unknown", state_missing: "Missing", state_alert: "Alert",
    lots: "Lots", lot: "Lot", ok: "OK", gateways: "Gateways", online: "online", offline: "offline",
    acknowledge: "Acknowledge", resolve: "Resolve", open: "open", acknowledged: "acknowledged", resolved: "resolved",
    critical: "critical", major: "major", minor: "minor", warning: "warning",
    explanation: "Explanation", history: "History", tag_counts: "Tags present over time",
    images: "Images", crossings: "Fence crossings", fixes: "fixes", no_data: "No data yet.",
    receipts: "Receipts", no_receipts: "No receipt.", status: "Status", sensors: "Sensors", no_sensors: "No sensor readings.",
    allowed: "allowed", expected: "expected", present: "present", missing: "missing", unknown: "unknown",
    pledgee: "Pledgee", goods: "Goods", pieces: "pieces", times: "×", ago: "ago", just_now: "just now",
    trackers: "Trackers", vehicle: "Vehicle", reader: "Reader", gateway: "Gateway", all_sites: "All sites",
    in: "in", out: "out", by: "by", seen: "seen", lot_alerts: "Alerts of this lot",
  },
  zh: {
    title: "质押监管", logout: "退出", login: "登录", login_hint: "请输入 API 密钥登录。",
    bad_key: "API 密钥无效或已吊销。", alerts: "告警", no_alerts: "暂无活动告警。",
    live: "实时", down: "已断开", disconnected_long: "实时连接中断：正在重连…地图可能不是最新状态。",
    state_present: "全部在位", state_unknown: "部分未知", state_missing: "缺失", state_alert: "告警",
    lots: "货批", lot: "货批", ok: "正常", gateways: "网关", online: "在线", offline: "离线",
    acknowledge: "确认", resolve: "解除", open: "未处理", acknowledged: "已确认", resolved: "已解除",
    critical: "严重", major: "重要", minor: "次要", warning: "提示",
    explanation: "说明", history: "处理记录", tag_counts: "在位标签数变化",
    images: "图像", crossings: "越界记录", fixes: "个定位点", no_data: "暂无数据。",
    receipts: "仓单", no_receipts: "无仓单。", status: "状态", sensors: "传感器", no_sensors: "暂无传感器读数。",
    allowed: "允许范围", expected: "应有", present: "在位", missing: "缺失", unknown: "未知",
    pledgee: "质权人", goods: "货物", pieces: "件", times: "次", ago: "前", just_now: "刚刚",
    trackers: "定位器", vehicle: "车辆", reader: "读写器", gateway: "网关", all_sites: "全部库点",
    in: "进", out: "出", by: "操作人", seen: "发生", lot_alerts: "本货批告警",
  },
};

// Alert type names, receipt statuses and alert explanations come from the catalogue the API
// serves as /map/assets/messages.js (decisions/alert_text.py), loaded before this file.
const CATALOGUE = (typeof PW_MESSAGES !== "undefined") ? PW_MESSAGES
  : { messages: {}, alert_types: {}, receipt_statuses: {} };

let lang = localStorage.getItem("pw.lang") || (navigator.language.startsWith("zh") ? "zh" : "en");

function t(key) {
  return (LABELS[lang] && LABELS[lang][key]) || LABELS.en[key] || key;
}

function named(table, key) {
  const names = table[key];
  return (names && (names[lang] || names.en)) || key;
}

function alertTypeLabel(type) {
  return named(CATALOGUE.alert_types, type);
}

function receiptStatusLabel(status) {
  return named(CATALOGUE.receipt_statuses, status);
}

// {name} placeholders filled from params; null when the template needs one it lacks.
function fillTemplate(template, params) {
  let complete = true;
  const text = template.replace(/\{([a-z_][a-z0-9_]*)\}/g, (_, name) => {
    if (params == null || params[name] === undefined || params[name] === null) { complete = false; return ""; }
    return String(params[name]);
  });
  return complete ? text : null;
}

// An alert's explanation in the page's language, from the message its evidence names;
// the stored (English) explanation when it names none, or one this page does not know.
function alertExplanation(alert) {
  const message = alert && alert.evidence && alert.evidence.message;
  const templates = message && CATALOGUE.messages[message.id];
  if (templates) {
    const text = fillTemplate(templates[lang] || templates.en, message.params);
    if (text !== null) return text;
  }
  return (alert && alert.explanation) || "";
}

function applyLabels() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  document.getElementById("lang").textContent = lang === "zh" ? "English" : "中文";
}

function setLanguage(next) {
  lang = next;
  localStorage.setItem("pw.lang", lang);
  applyLabels();
}
