"""What people read about an alert, in English and Chinese: one catalogue of message templates.

A producer never builds the sentence itself: it names a message and gives its parameters
(``alert_text("tag_missing.raise", lot="LOT-7", count=3)``). The English rendering becomes the
alert's ``explanation`` (what webhooks, logs and old clients read); the message id and its
parameters travel in ``evidence["message"]`` (docs/protocol.md), so the map renders the same
alert in the reader's language. Parameters are values (ids, numbers, already formatted
figures), never English fragments, and templates use plain ``{name}`` placeholders only, so
the browser can fill them in the same way (cloud/web/i18n.js).

Alert type names and receipt statuses are here too: the map's labels for them come from this
module (served as /map/assets/messages.js), not from a second list in the front end.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from contract import AlertBody
from contract.messages import Severity
from decisions.alert_types import AlertType

LANGUAGES = ("en", "zh")
MESSAGE_KEY = "message"  # evidence["message"] = {"id": ..., "params": {...}}

Param = str | int | float

# id -> {language: template}. Ids are "<what>.<raise|clear|...>"; grouped by producer.
MESSAGES: dict[str, dict[str, str]] = {
    # edge/alerting.py: the RFID decisions
    "tag_missing.raise": {
        "en": "{count} tag(s) of pledged lot {lot} not read for longer than the lot's absence "
              "window while their reader was online",
        "zh": "质押货批 {lot} 有 {count} 个标签在读写器在线期间超过缺席时限未被读到",
    },
    "tag_missing.clear": {
        "en": "all tags of lot {lot} are read again",
        "zh": "货批 {lot} 的全部标签已重新读到",
    },
    # edge/alerting.py: a lot's departure incident (theft.unreleased_departure, one per lot)
    "incident.raise": {
        "en": "{count} tag(s) of pledged lot {lot} left with no release to cover them "
              "({released} taken by an approved release), corroborated by {facts}",
        "zh": "质押货批 {lot} 有 {count} 个标签在无放货覆盖时离开（另有 {released} 个属已批准"
              "放货），佐证：{facts}",
    },
    "incident.raise_absent": {
        "en": "{count} tag(s) of pledged lot {lot} left with no release to cover them "
              "({released} taken by an approved release) and stayed unread for the lot's "
              "absence window of {window_s} s",
        "zh": "质押货批 {lot} 有 {count} 个标签在无放货覆盖时离开（另有 {released} 个属已批准"
              "放货），且超过该货批 {window_s} 秒的缺席时限未被读到",
    },
    "incident.clear": {
        "en": "every departed tag of lot {lot} is read again",
        "zh": "货批 {lot} 离开的全部标签已重新读到",
    },
    "incident.absorbed": {
        "en": "part of the departure incident of {subject} (alert {incident})",
        "zh": "已并入 {subject} 的离开事件（告警 {incident}）",
    },
    "reader_offline.raise": {
        "en": "reader {reader} went offline: {reason}",
        "zh": "读写器 {reader} 离线：{reason}",
    },
    "reader_offline.clear": {
        "en": "reader {reader} is back online",
        "zh": "读写器 {reader} 已恢复在线",
    },
    # edge/sensors/decisions.py
    "sensor_range.raise": {
        "en": "{subject}: {quantity} outside [{low}, {high}]{unit} for {duration_s} s "
              "(peak {peak}{unit})",
        "zh": "{subject}：读数超出 [{low}, {high}]{unit} 已持续 {duration_s} 秒"
              "（峰值 {peak}{unit}）",
    },
    "sensor_range.clear": {
        "en": "{subject}: back within [{low}, {high}]{unit} ({value}{unit})",
        "zh": "{subject}：已回到 [{low}, {high}]{unit} 以内（{value}{unit}）",
    },
    "door_open.raise": {
        "en": "{subject} opened outside its schedule",
        "zh": "{subject} 在作业时间以外被打开",
    },
    "door_open.clear": {
        "en": "{subject} closed",
        "zh": "{subject} 已关闭",
    },
    "seal_broken.raise": {
        "en": "{subject} reports open",
        "zh": "{subject} 报告已开启",
    },
    "seal_broken.clear": {
        "en": "{subject} is sealed again",
        "zh": "{subject} 已重新施封",
    },
    # decisions/trackers/watch.py
    "geofence_exit.raise": {
        "en": "tracker {tracker} on pledged lot {lot} left fence {fence} and the lot is not "
              "released",
        "zh": "质押货批 {lot} 上的定位器 {tracker} 离开围栏 {fence}，且该货批未放货",
    },
    "geofence_exit.clear": {
        "en": "tracker {tracker} is back inside {fence}",
        "zh": "定位器 {tracker} 已回到围栏 {fence} 内",
    },
    "tracker_silent.raise": {
        "en": "nothing heard from tracker {tracker} for {silent_s} s (reports every "
              "{interval_s} s)",
        "zh": "定位器 {tracker} 已 {silent_s} 秒无上报（应每 {interval_s} 秒上报一次）",
    },
    "tracker_silent.clear": {
        "en": "tracker {tracker} reports again",
        "zh": "定位器 {tracker} 已恢复上报",
    },
    # cloud/jt808/alarms.py (alarms: the terminal's own alarm names, comma-separated)
    "terminal_alarm.raise": {
        "en": "terminal of {tracker} reports {alarms}",
        "zh": "{tracker} 的车载终端报警：{alarms}",
    },
    "terminal_alarm.clear": {
        "en": "terminal of {tracker} no longer reports {alarms}",
        "zh": "{tracker} 的车载终端报警已解除：{alarms}",
    },
    # edge/vision (pipeline's alert lines)
    "unauthorised_vehicle.raise": {
        "en": "{reason}; seen leaving at camera {camera}",
        "zh": "未授权车辆 {plate} 在摄像头 {camera} 处驶出（{reason}）",
    },
    "camera_blocked.raise": {
        "en": "camera {camera} is blind ({cause}) since {since}Z",
        "zh": "摄像头 {camera} 自 {since}Z 起无法正常成像（{cause}）",
    },
    "camera_blocked.clear": {
        "en": "camera {camera} sees again",
        "zh": "摄像头 {camera} 画面已恢复",
    },
    "label_unreadable.raise": {
        "en": "the label of lot {lot} has not been readable at camera {camera} for "
              "{minutes} min",
        "zh": "货批 {lot} 的标签在摄像头 {camera} 处已 {minutes} 分钟无法识别",
    },
    "label_unreadable.clear": {
        "en": "the label of lot {lot} is readable again",
        "zh": "货批 {lot} 的标签已可识别",
    },
    # cloud/webhooks/worker.py
    "webhook_disabled.raise": {
        "en": "webhook endpoint {endpoint} disabled: {reason}; its undelivered messages are "
              "kept and are sent once it is re-enabled",
        "zh": "Webhook 端点 {endpoint} 已停用：{reason}；未送达的消息已保留，重新启用后发送",
    },
    # decisions/rules.py: the default rules (decisions/rules_defaults.json names them) and the
    # clearing of any rule's alert. facts: the rule's facts as the engine describes them.
    "rule.cleared": {
        "en": "cleared by {fact}",
        "zh": "已由以下事实解除：{fact}",
    },
    "rule.release_movement": {
        "en": "release movement of {subject}: {facts}",
        "zh": "{subject} 的放货出库：{facts}",
    },
    "rule.unreleased_departure": {
        "en": "tags of pledged {subject} departed with no release in progress, together with "
              "{facts} (within {window_s} s)",
        "zh": "质押的 {subject} 的标签在无放货流程时离开，同时发生：{facts}（{window_s} 秒内）",
    },
    "rule.reader_offline": {
        "en": "{subject} stopped answering ({facts}); the tags behind it are unknown, not missing",
        "zh": "{subject} 停止响应（{facts}）；其覆盖的标签状态未知，并非缺失",
    },
    "rule.temperature_excursion": {
        "en": "temperature of {subject} out of its limits: {facts}",
        "zh": "{subject} 的温度超出限值：{facts}",
    },
    # cloud/alerting/release_guard.py
    "movement_without_release.raise": {
        "en": "{count} tags pledged to {pledgee} under receipt {receipt} left without an "
              "approved release",
        "zh": "仓单 {receipt} 项下质押给 {pledgee} 的 {count} 个标签在未获放货批准时离开",
    },
    "movement_without_release.raise_seen": {
        "en": "{count} tags pledged to {pledgee} under receipt {receipt} left without an "
              "approved release and were read at {seen_at}",
        "zh": "仓单 {receipt} 项下质押给 {pledgee} 的 {count} 个标签在未获放货批准时离开，"
              "并在 {seen_at} 被读到",
    },
    # decisions/reconciliation.py, decisions/identity.py, decisions/shipments.py (integrity);
    # a source that reports nothing shows as "–"
    "integrity_count.raise": {
        "en": "lot {lot}: the sources disagree on the count since {since}; the receipt "
              "declares {pieces} pieces; RFID {rfid} tags, labels {labels} pieces, camera "
              "{camera} pallets",
        "zh": "货批 {lot}：自 {since} 起各来源的数量不一致；仓单记载 {pieces} 件；RFID {rfid} "
              "个标签，托盘标签 {labels} 件，摄像头 {camera} 托",
    },
    "integrity_weight.raise": {
        "en": "lot {lot}: the weight disagrees since {since}; the receipt declares {kg} kg, "
              "the load cell reads {load_cell} kg",
        "zh": "货批 {lot}：自 {since} 起重量不一致；仓单记载 {kg} 千克，称重读数 {load_cell} 千克",
    },
    "integrity_weight.raise_swapped": {
        "en": "lot {lot}: the weight disagrees since {since} while every tag is present (goods "
              "swapped?); the receipt declares {kg} kg, the load cell reads {load_cell} kg",
        "zh": "货批 {lot}：自 {since} 起重量不一致，而标签全部在位（货物被调包？）；仓单记载 "
              "{kg} 千克，称重读数 {load_cell} 千克",
    },
    "duplicate_identity.two_sites": {
        "en": "{kind} {value} seen at two sites: {first_site} at {first_at}, then {second_site} "
              "at {second_at}",
        "zh": "{kind} {value} 出现在两个站点：{first_at} 在 {first_site}，随后 {second_at} 在 "
              "{second_site}",
    },
    "duplicate_identity.two_lots": {
        "en": "{kind} {value} is under two lots: {first_lot} and {second_lot}",
        "zh": "{kind} {value} 同时属于两个货批：{first_lot} 与 {second_lot}",
    },
    "duplicate_identity.two_receipts": {
        "en": "{kind} {value} is pledged on two receipts: {first_receipt} and {second_receipt}",
        "zh": "{kind} {value} 被两张仓单质押：{first_receipt} 与 {second_receipt}",
    },
    "shipment_contradicted.raise": {
        "en": "shipment {shipment} is contradicted by what the sensors saw ({findings} "
              "findings in its evidence)",
        "zh": "运输 {shipment} 与传感器所见相矛盾（证据中 {findings} 条）",
    },
    # the gateway's own heartbeat (not raised by the cloud yet: its status is shown, not alerted)
    "gateway_offline.raise": {
        "en": "gateway {gateway} went offline",
        "zh": "网关 {gateway} 离线",
    },
    "gateway_offline.clear": {
        "en": "gateway {gateway} is back online",
        "zh": "网关 {gateway} 已恢复在线",
    },
}

ALERT_TYPE_NAMES: dict[str, dict[str, str]] = {
    AlertType.TAG_MISSING: {"en": "Tags missing", "zh": "标签缺失"},
    AlertType.UNRELEASED_DEPARTURE: {"en": "Departure without release", "zh": "未放货即离开"},
    AlertType.MOVEMENT_WITHOUT_RELEASE: {"en": "Moved without release", "zh": "未放货即移动"},
    AlertType.UNAUTHORISED_VEHICLE: {"en": "Unauthorised vehicle", "zh": "未授权车辆"},
    AlertType.GEOFENCE_EXIT: {"en": "Left the fence", "zh": "驶出围栏"},
    AlertType.DOOR_OPEN_OUTSIDE_HOURS: {"en": "Door open out of hours", "zh": "非作业时间开门"},
    AlertType.SEAL_BROKEN: {"en": "Seal broken", "zh": "封条被破坏"},
    AlertType.WEIGHT_DROP: {"en": "Weight drop", "zh": "重量减少"},
    AlertType.TERMINAL_THEFT_ALARM: {"en": "Terminal theft alarm", "zh": "终端防盗报警"},
    AlertType.READER_OFFLINE: {"en": "Reader offline", "zh": "读写器离线"},
    AlertType.GATEWAY_OFFLINE: {"en": "Gateway offline", "zh": "网关离线"},
    AlertType.CAMERA_BLOCKED: {"en": "Camera blocked", "zh": "摄像头遮挡"},
    AlertType.TRACKER_SILENT: {"en": "Tracker silent", "zh": "定位器失联"},
    AlertType.TERMINAL_TAMPER_ALARM: {"en": "Terminal tamper alarm", "zh": "终端防拆报警"},
    AlertType.TEMPERATURE: {"en": "Temperature", "zh": "温度异常"},
    AlertType.HUMIDITY: {"en": "Humidity", "zh": "湿度异常"},
    AlertType.SHOCK: {"en": "Shock", "zh": "冲击"},
    AlertType.LABEL_UNREADABLE: {"en": "Label unreadable", "zh": "标签无法识别"},
    AlertType.WEBHOOK_ENDPOINT_DISABLED: {"en": "Webhook endpoint disabled",
                                          "zh": "Webhook 端点已停用"},
    AlertType.COUNT_MISMATCH: {"en": "Count mismatch", "zh": "数量不符"},
    AlertType.WEIGHT_MISMATCH: {"en": "Weight mismatch", "zh": "重量不符"},
    AlertType.DUPLICATE_IDENTITY: {"en": "Duplicate identity", "zh": "标识重复"},
    AlertType.SHIPMENT_CONTRADICTED: {"en": "Shipment contradicted", "zh": "运输存疑"},
}

# cloud/migrations/0100_receipts.sql: warehouse_receipts.status
RECEIPT_STATUS_NAMES: dict[str, dict[str, str]] = {
    "issued": {"en": "Issued", "zh": "已签发"},
    "pledged": {"en": "Pledged", "zh": "已质押"},
    "partly_released": {"en": "Partly released", "zh": "部分放货"},
    "released": {"en": "Released", "zh": "已放货"},
    "cancelled": {"en": "Cancelled", "zh": "已注销"},
    "split": {"en": "Split", "zh": "已拆分"},
}

_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")


def placeholders(template: str) -> set[str]:
    """The ``{name}`` parameters of a template (tests hold every template to this form)."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def render(message_id: str, params: Mapping[str, Any], lang: str = "en") -> str:
    """The message in ``lang`` (English when the language has no template)."""
    templates = MESSAGES[message_id]
    template = templates.get(lang) or templates["en"]
    return _PLACEHOLDER.sub(lambda m: str(params[m.group(1)]), template)


@dataclass(frozen=True)
class AlertText:
    """A message id and its parameters: what an alert says, in no language yet."""

    message_id: str
    params: Mapping[str, Param] = field(default_factory=dict)

    def english(self) -> str:
        return render(self.message_id, self.params, "en")

    def evidence(self) -> dict[str, Any]:
        """To merge into an alert's evidence: how the reader's language renders it."""
        return {MESSAGE_KEY: {"id": self.message_id, "params": dict(self.params)}}

    def alert(
        self, *, action: Literal["raise", "clear"], alert_type: str, subject: str,
        severity: Severity, lot: str | None = None, evidence: Mapping[str, Any] | None = None,
    ) -> AlertBody:
        """The alert that says this: its explanation is the English text, and its evidence
        carries the message for every other language."""
        return AlertBody(action=action, alert_type=alert_type, subject=subject,
                         severity=severity, lot=lot, explanation=self.english(),
                         evidence={**(evidence or {}), **self.evidence()})


def alert_text(message_id: str, **params: Param) -> AlertText:
    """Name a catalogue message; an unknown id or a missing parameter fails here, at the
    producer, not in a reader's browser."""
    if message_id not in MESSAGES:
        raise KeyError(f"no message {message_id!r} in decisions.alert_text.MESSAGES")
    needed = set().union(*(placeholders(t) for t in MESSAGES[message_id].values()))
    if missing := needed - set(params):
        raise KeyError(f"message {message_id!r} needs {sorted(missing)}")
    return AlertText(message_id, params)


def text_of(evidence: Mapping[str, Any] | None) -> AlertText | None:
    """The message an alert's evidence carries, if it names one from this catalogue."""
    message = (evidence or {}).get(MESSAGE_KEY)
    if not isinstance(message, Mapping) or message.get("id") not in MESSAGES:
        return None
    params = message.get("params")
    return AlertText(str(message["id"]), dict(params) if isinstance(params, Mapping) else {})


def catalogue() -> dict[str, Any]:
    """Everything the front end renders, as JSON-ready data."""
    return {
        "languages": list(LANGUAGES),
        "messages": MESSAGES,
        "alert_types": {str(k): v for k, v in ALERT_TYPE_NAMES.items()},
        "receipt_statuses": RECEIPT_STATUS_NAMES,
    }
