"""The cloud's correlation rules, run at the gateway on what the gateway itself emits.

Pure: fed each message the agent emits (type, body, time), returns the ``AlertBody`` values
the rules raise or clear. The agent emits them like any alert (so the cloud gets them when
the link returns and keeps one alert per (type, subject): the cloud's own rules reach the same
decision and it only counts a repeat) and sounds the local alarm (edge/rules_alarm.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from contract import AlertBody, MessageType, PresenceChangeBody
from contract.messages import PlateReadBody
from decisions.rules import EDGE_ALERT_FACTS, Decision, Fact, RuleEngine, RuleSet, default_rules


def facts_of(msg_type: MessageType, body: Any, at_us: int, authorised: set[str]) -> list[Fact]:
    """The facts one emitted message stands for (the cloud maps a batch the same way)."""
    if msg_type is MessageType.PRESENCE_CHANGE and isinstance(body, PresenceChangeBody):
        if body.state == "missing":
            return [Fact("tags_departed", f"lot:{body.lot}", at_us,
                         {"lot": body.lot, "tags": 1, "epcs": [body.epc]})]
        if body.state == "present" and body.previous == "missing":
            return [Fact("tags_returned", f"lot:{body.lot}", at_us, {"lot": body.lot, "tags": 1})]
    elif msg_type is MessageType.PLATE_READ and isinstance(body, PlateReadBody):
        plate_kind = "vehicle_authorised" if body.plate in authorised else "vehicle_unauthorised"
        return [Fact(plate_kind, f"vehicle:{body.plate}", at_us,
                     {"plate": body.plate, "camera": body.camera})]
    elif msg_type is MessageType.ALERT and isinstance(body, AlertBody):
        kinds = EDGE_ALERT_FACTS.get(body.alert_type)
        if kinds is None:
            return []
        kind = kinds[0] if body.action == "raise" else kinds[1]
        if kind is None:
            return []
        attrs: dict[str, Any] = {"edge_alert": body.alert_type}
        subject = body.subject
        if body.lot:
            attrs["lot"] = body.lot
            subject = f"lot:{body.lot}" if kind == "weight_dropped" else subject
        return [Fact(kind, subject, at_us, attrs)]
    return []


def alert_of(decision: Decision) -> AlertBody | None:
    if decision.action == "record" or decision.alert_type is None:
        return None
    return AlertBody(
        action="raise" if decision.action == "raise" else "clear",
        alert_type=decision.alert_type, subject=decision.subject,
        severity=decision.severity,  # type: ignore[arg-type]
        lot=decision.lot, explanation=decision.explanation[:2000],
        evidence={**decision.evidence(), "decided_at": "edge"})


@dataclass
class EdgeRules:
    rules: RuleSet = field(default_factory=default_rules)
    authorised_vehicles: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._engine = RuleEngine(self.rules)

    def on_emitted(self, msg_type: MessageType, body: Any, at_us: int) -> list[Decision]:
        decisions: list[Decision] = []
        for fact in facts_of(msg_type, body, at_us, self.authorised_vehicles):
            decisions.extend(self._engine.feed(fact))
        # The gateway's own alerts for these facts are already emitted (reader, sensors).
        return [d for d in decisions if d.alert_type is None
                or not any(f.attrs.get("edge_alert") == d.alert_type for f in d.facts)]
