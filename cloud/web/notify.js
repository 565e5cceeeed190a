// Notifications and the honest resolve (issue 19): a critical alert rings (a chime the API
// serves), raises a desktop notification when permitted and puts the count in the tab title,
// each switchable per user (localStorage); resolving asks for a comment and shows the API's
// refusal while the alert's condition still holds. Loaded after i18n.js, before app.js.
"use strict";

Object.assign(LABELS.en, {
  notify_sound: "Sound", notify_desktop: "Desktop alerts",
  notify_sound_title: "Play a sound when a critical alert arrives",
  notify_desktop_title: "Show a desktop notification when a critical alert arrives",
  resolve_title: "Resolve alert", resolve_comment: "What was done? (required)",
  resolve_confirm: "Resolve", cancel: "Cancel", resolve_refused: "Not resolved",
  critical_alert: "Critical alert", snooze_hour: "Snooze 1 h",
});
Object.assign(LABELS.zh, {
  notify_sound: "声音", notify_desktop: "桌面通知",
  notify_sound_title: "严重告警到达时播放提示音",
  notify_desktop_title: "严重告警到达时显示桌面通知",
  resolve_title: "解除告警", resolve_comment: "做了什么处理？（必填）",
  resolve_confirm: "解除", cancel: "取消", resolve_refused: "未能解除",
  critical_alert: "严重告警", snooze_hour: "静默 1 小时",
});

const NOTIFY = {
  prefs: { sound: true, desktop: true, ...JSON.parse(localStorage.getItem("pw.notify") || "{}") },
  heard: new Set(), // critical alerts already announced in this tab
  baseTitle: document.title,
  audio: null,
  played: 0, // how many times the chime played (the browser test reads it)
};

function saveNotifyPrefs() {
  localStorage.setItem("pw.notify", JSON.stringify(NOTIFY.prefs));
}

function renderNotifyToggles() {
  for (const kind of ["sound", "desktop"]) {
    const button = document.getElementById(`notify-${kind}`);
    button.setAttribute("aria-pressed", String(NOTIFY.prefs[kind]));
    button.title = t(`notify_${kind}_title`);
    button.querySelector(".label").textContent = t(`notify_${kind}`);
    button.querySelector(".mark").textContent = NOTIFY.prefs[kind] ? "✓" : "✕";
  }
}

function setupNotify() {
  const bar = document.getElementById("bar");
  const logout = document.getElementById("logout");
  for (const kind of ["sound", "desktop"]) {
    const button = document.createElement("button");
    button.type = "button";
    button.id = `notify-${kind}`;
    button.className = "notify-toggle";
    button.innerHTML = `<span class="mark" aria-hidden="true"></span> <span class="label"></span>`;
    button.onclick = () => {
      NOTIFY.prefs[kind] = !NOTIFY.prefs[kind];
      saveNotifyPrefs();
      // Asking needs a user's gesture: this click is one.
      if (kind === "desktop" && NOTIFY.prefs.desktop && "Notification" in window
          && Notification.permission === "default") Notification.requestPermission();
      renderNotifyToggles();
    };
    bar.insertBefore(button, logout);
  }
  document.getElementById("lang").addEventListener("click", renderNotifyToggles);
  renderNotifyToggles();
}

function playChime() {
  if (!NOTIFY.audio) NOTIFY.audio = new Audio("/map/sounds/critical.wav");
  NOTIFY.audio.currentTime = 0;
  NOTIFY.played += 1;
  // Browsers refuse sound before the page's first user gesture; signing in is one.
  NOTIFY.audio.play().catch(() => {});
}

function desktopNotice(alert) {
  if (!("Notification" in window) || Notification.permission !== "granted") return;
  const note = new Notification(`${t("critical_alert")}: ${alertTypeLabel(alert.alert_type)}`, {
    body: `${alert.lot_id || alert.subject}: ${alert.explanation}`, tag: `pw-alert-${alert.id}`,
  });
  note.onclick = () => { window.focus(); openAlert(alert.id); note.close(); };
}

// Called by app.js each time the alert list is drawn, with the active alerts.
function notifyAlerts(active) {
  const critical = active.filter((a) => a.severity === "critical");
  const open = critical.filter((a) => a.state === "open" && !a.suppressed_by);
  document.title = critical.length ? `(${critical.length}) ${NOTIFY.baseTitle}` : NOTIFY.baseTitle;
  const fresh = open.filter((a) => !NOTIFY.heard.has(a.id));
  for (const a of fresh) NOTIFY.heard.add(a.id);
  if (!fresh.length || !S.key) return;
  if (NOTIFY.prefs.sound) playChime();
  if (NOTIFY.prefs.desktop) for (const a of fresh) desktopNotice(a);
}

// Resolve with a comment; the API refuses (409) while the condition holds and says why, which
// the dialog shows. Resolves to the updated alert, or null if the supervisor gave up.
function resolveAlert(alertId) {
  let dialog = document.getElementById("resolve-dialog");
  if (!dialog) {
    dialog = document.createElement("dialog");
    dialog.id = "resolve-dialog";
    document.body.appendChild(dialog);
  }
  dialog.innerHTML = `<form method="dialog" class="resolve-form">
      <h3>${t("resolve_title")}</h3>
      <label for="resolve-comment">${t("resolve_comment")}</label>
      <textarea id="resolve-comment" rows="3" required maxlength="2000"></textarea>
      <p id="resolve-error" class="error" role="alert"></p>
      <div class="buttons"><button type="button" class="cancel">${t("cancel")}</button>
        <button type="button" class="snooze">${t("snooze_hour")}</button>
        <button type="submit" class="confirm">${t("resolve_confirm")}</button></div></form>`;
  dialog.dataset.alertId = String(alertId);
  return new Promise((done) => {
    const form = dialog.querySelector("form");
    const error = dialog.querySelector("#resolve-error");
    dialog.querySelector(".cancel").onclick = () => { dialog.close(); done(null); };
    dialog.oncancel = () => done(null);
    // Snoozing is what a supervisor may do while the condition holds: its reopenings stay quiet.
    const send = async (action) => {
      const comment = dialog.querySelector("#resolve-comment").value.trim();
      if (!comment) { error.textContent = t("resolve_comment"); return; }
      const body = action === "snooze"
        ? { until: new Date(Date.now() + 3600e3).toISOString(), comment } : { comment };
      const response = await fetch(`/api/v1/alerts/${alertId}/${action}`, {
        method: "POST", body: JSON.stringify(body),
        headers: { Authorization: `Bearer ${S.key}`, "Content-Type": "application/json" },
      });
      const answer = await response.json().catch(() => ({}));
      if (!response.ok) {
        error.textContent = `${t("resolve_refused")}: ${answer.detail || response.status}`;
        return;
      }
      dialog.close();
      done(answer);
    };
    dialog.querySelector(".snooze").onclick = () => send("snooze");
    form.onsubmit = (e) => { e.preventDefault(); send("resolve"); };
    dialog.showModal();
    dialog.querySelector("#resolve-comment").focus();
  });
}

setupNotify();
