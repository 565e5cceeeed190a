"""The gateway's one alerting stage: every alert the gateway decides itself, and when the local
siren sounds.

Theory of operation. Pure: fed values, returns a ``Verdict`` (alerts to emit, alarms to sound);
no clock, no I/O. The agent feeds it outside ``emit`` (edge/agent.py) with:

- every message the gateway emitted (type, body, time): the facts of the correlation rules
  (``decisions.rules``, the cloud's engine and default rules);
- what the RFID pipeline saw that is not a message: batches of presence changes (a pledged
  lot's tag missing) and readers' health (a reader offline);
- the gate list (``AuthorisedVehicles``) and the lots with an approved release, as the cloud
  last sent them (``cmd/authorised_vehicles``, ``cmd/lot_releases``);
- whether the cloud is reachable now.

Tag-missing and reader-offline alerts are raised whatever the link (the cloud keeps one active
alert per type and subject and counts a repeat). Correlation decisions are emitted, and sound
the siren, only while the cloud is unreachable: the cloud knows more (releases, other
gateways), so while connected its decision is the one that counts. The engine still sees every
fact, so its windows are current when the link drops. A plate read is a vehicle fact only once
a gate list is known: with none, the gateway cannot tell an authorised truck from a thief.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from contract import AlertBody, MessageType, PresenceChangeBody
from contract.messages import PlateReadBody
from decisions.alert_text import alert_text
from decisions.alert_types import AlertType
from decisions.rules import EDGE_ALERT_FACTS, Decision, Fact, RuleEngine, RuleSet
from decisions.vehicles import AuthorisedVehicles, vehicle_authorised

TAG_MISSING = AlertType.TAG_MISSING
READER_OFFLINE = AlertType.READER_OFFLINE
DECIDED_HERE = {"decided_at": "edge"}  # marks the rules' alerts (the cloud's rules decide too)
# The messages that are facts here; the agent hands the stage no others (tag reads are many).
FACT_TYPES = frozenset({MessageType.PRESENCE_CHANGE, MessageType.PLATE_READ, MessageType.ALERT})


class PresenceSeen(Protocol):
    """A presence change as the RFID pipeline's ``LotPresence`` reports it."""

    @property
    def lot(self) -> str: ...
    @property
    def epc(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def last_seen_us(self) -> int | None: ...


class ReaderSeen(Protocol):
    """A reader's health as its adapter reports it."""

    @property
    def reader_id(self) -> str: ...
    @property
    def online(self) -> bool: ...
    @property
    def reason(self) -> str: ...
    @property
    def at_us(self) -> int: ...


# What a pipeline hands the agent beside messages (``EdgeContext.observe``).
Observation = Sequence[PresenceSeen] | ReaderSeen


@dataclass(frozen=True, slots=True)
class Alarm:
    """The local siren on (a rule raised) or off (it cleared), for edge/siren.py to publish."""

    on: bool
    alert_type: str
    subject: str
    severity: str
    explanation: str
    at_us: int


@dataclass
class Verdict:
    alerts: list[AlertBody] = field(default_factory=list)
    alarms: list[Alarm] = field(default_factory=list)

    def extend(self, other: Verdict) -> None:
        self.alerts.extend(other.alerts)
        self.alarms.extend(other.alarms)


def _time(at_us: int) -> datetime:
    return datetime.fromtimestamp(at_us / 1e6, UTC)


class EdgeAlerting:
    """``rules`` None: no correlation at the gateway (``local_rules = false``); the RFID
    alerts are raised all the same."""

    def __init__(self, rules: RuleSet | None, *, gate_list: AuthorisedVehicles | None = None,
                 released_lots: Iterable[str] = ()) -> None:
        self._engine = RuleEngine(rules) if rules is not None else None
        self.gate_list = gate_list
        self.released_lots: frozenset[str] = frozenset(released_lots)
        self._missing: dict[str, dict[str, int | None]] = {}  # lot -> epc -> last seen

    # -- what the cloud last sent --------------------------------------------------------------
    def gate_list_received(self, vehicles: AuthorisedVehicles) -> bool:
        """Take a newer list; an older or equal version is kept out (False)."""
        if self.gate_list is not None and vehicles.version <= self.gate_list.version:
            return False
        self.gate_list = vehicles
        return True

    def releases_received(self, lots: Iterable[str], at_us: int, *,
                          cloud_reachable: bool) -> Verdict:
        """The full set of lots with an approved release; each new one is a
        ``release_approved`` fact (a departure of its tags is then a release movement)."""
        lots = frozenset(lots)
        new = sorted(lots - self.released_lots)
        self.released_lots = lots
        return self._correlate([Fact("release_approved", f"lot:{lot}", at_us, {"lot": lot})
                                for lot in new], cloud_reachable)

    # -- what the gateway saw ------------------------------------------------------------------
    def on_emitted(self, msg_type: MessageType, body: Any, at_us: int, *,
                   cloud_reachable: bool) -> Verdict:
        if msg_type is MessageType.ALERT and (body.evidence or {}).get("decided_at") == "edge":
            return Verdict()  # the rules' own output: not a new fact
        return self._correlate(self.facts_of(msg_type, body, at_us), cloud_reachable)

    def on_observed(self, seen: Observation) -> Verdict:
        if isinstance(seen, Sequence):
            return Verdict(alerts=self.on_presence(seen))
        return Verdict(alerts=[self.on_reader_health(seen)])

    def on_presence(self, changes: Iterable[PresenceSeen]) -> list[AlertBody]:
        """A lot whose missing set grows raises (again); a lot whose tags are all read again
        clears."""
        touched: dict[str, bool] = {}  # lot -> did its missing set grow
        for change in changes:
            missing = self._missing.setdefault(change.lot, {})
            if change.state == "missing":
                grew = change.epc not in missing
                missing[change.epc] = change.last_seen_us
                touched[change.lot] = touched.get(change.lot, False) or grew
            elif change.state == "present" and change.epc in missing:
                # Only a read brings a tag back: a missing tag whose reader went down becomes
                # "unknown", which is no evidence that it returned.
                del missing[change.epc]
                touched.setdefault(change.lot, False)
        alerts = []
        for lot, grew in touched.items():
            missing = self._missing[lot]
            if grew:
                alerts.append(self._tag_missing(lot, missing))
            elif not missing:
                text = alert_text("tag_missing.clear", lot=lot)
                alerts.append(text.alert(
                    action="clear", alert_type=TAG_MISSING, subject=f"lot:{lot}",
                    severity="critical", lot=lot))
        return alerts

    def on_reader_health(self, health: ReaderSeen) -> AlertBody:
        text = (alert_text("reader_offline.clear", reader=health.reader_id) if health.online
                else alert_text("reader_offline.raise", reader=health.reader_id,
                                reason=health.reason))
        return text.alert(
            action="clear" if health.online else "raise",
            alert_type=READER_OFFLINE,
            subject=f"reader:{health.reader_id}",
            severity="major",
            evidence={"reason": health.reason, "at_us": health.at_us},
        )

    # -- the decisions -------------------------------------------------------------------------
    def facts_of(self, msg_type: MessageType, body: Any, at_us: int) -> list[Fact]:
        """The facts one emitted message stands for (the cloud maps a batch the same way)."""
        if msg_type is MessageType.PRESENCE_CHANGE and isinstance(body, PresenceChangeBody):
            if body.state == "missing":
                return [Fact("tags_departed", f"lot:{body.lot}", at_us,
                             {"lot": body.lot, "tags": 1, "epcs": [body.epc]})]
            if body.state == "present" and body.previous == "missing":
                return [Fact("tags_returned", f"lot:{body.lot}", at_us,
                             {"lot": body.lot, "tags": 1})]
        elif msg_type is MessageType.PLATE_READ and isinstance(body, PlateReadBody):
            authorised = self.vehicle_authorised(body.plate, at_us)
            if authorised is None:
                return []
            kind = "vehicle_authorised" if authorised else "vehicle_unauthorised"
            return [Fact(kind, f"vehicle:{body.plate}", at_us,
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

    def vehicle_authorised(self, plate: str, at_us: int) -> bool | None:
        """None while no gate list is known: unknown is neither authorised nor a thief."""
        if self.gate_list is None:
            return None
        return vehicle_authorised(plate, _time(at_us), gate_list=self.gate_list).authorised

    def _correlate(self, facts: list[Fact], cloud_reachable: bool) -> Verdict:
        verdict = Verdict()
        if self._engine is None:
            return verdict
        decisions: list[Decision] = []
        for fact in facts:
            decisions.extend(self._engine.feed(fact))
        if cloud_reachable:
            return verdict
        for d in decisions:
            if d.action == "record" or d.alert_type is None:
                continue
            # The gateway's own alert for this fact is already emitted (reader, sensors).
            if any(f.attrs.get("edge_alert") == d.alert_type for f in d.facts):
                continue
            verdict.alerts.append(AlertBody(
                action="raise" if d.action == "raise" else "clear",
                alert_type=d.alert_type, subject=d.subject,
                severity=d.severity,  # type: ignore[arg-type]
                lot=d.lot, explanation=d.explanation[:2000],
                evidence={**d.evidence(), **DECIDED_HERE}))
            verdict.alarms.append(Alarm(d.action == "raise", d.alert_type, d.subject,
                                        d.severity, d.explanation, d.at_us))
        return verdict

    def _tag_missing(self, lot: str, missing: dict[str, int | None]) -> AlertBody:
        epcs = sorted(missing)
        text = alert_text("tag_missing.raise", count=len(epcs), lot=lot)
        return text.alert(
            action="raise",
            alert_type=TAG_MISSING,
            subject=f"lot:{lot}",
            severity="critical",
            lot=lot,
            evidence={"missing_epcs": epcs[:200], "missing_count": len(epcs),
                      "last_seen_us": {e: missing[e] for e in epcs[:200]}},
        )
