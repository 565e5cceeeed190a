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

The gateway's own departure decision is one incident per lot, ``theft.unreleased_departure``
on ``lot:<id>`` (docs/alerts.md, "One incident, one alert"), decided whatever the link:

- a tag of the lot declared missing is a *departure*. During an approved release that covers
  it (window, and a plate of one of its vehicles read in the last ``PICKUP_VEHICLE_S``, or any
  plate the gate list authorises when the release names none) departures up to the release's
  pieces are release movements, no theft; only the excess departs.
- a departure is theft at once when something corroborates it: a door opened after hours or
  an unauthorised plate in the site's last ``CORROBORATION_S``, the lot's weight dropping, or
  other tags of the lot departing with it (``CORROBORATING_TAGS``: the lot's count dropping by
  more than one tag). An uncorroborated absence becomes theft once it lasted the lot's absence
  window (``absence_window_s``, default 300 s; :meth:`EdgeAlerting.tick` checks it).
- the incident counts every tag that departed since it began, not per batch; it is raised
  again (an update) when that count grows, and cleared only when every departed tag was *read*
  again (a tag that went missing -> unknown is no return).

The local siren sounds for the incident while the cloud is unreachable (the gateway's own
evidence), and is silenced when the incident clears. Reader-offline alerts are raised whatever
the link (the cloud keeps one active alert per site, type and subject and counts a repeat).
Other correlation decisions are emitted, and sound the siren, only while the cloud is
unreachable: the cloud knows more (other gateways), so while connected its decision is the one
that counts; the engine's own ``theft.unreleased_departure`` is left to the incident above.
The engine still sees every fact, so its windows are current when the link drops. A plate read
is a vehicle fact only once a gate list is known: with none, the gateway cannot tell an
authorised truck from a thief.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from contract import AlertBody, MessageType, PresenceChangeBody
from contract.messages import PlateReadBody
from decisions.alert_text import alert_text
from decisions.alert_types import AlertType
from decisions.incident import CORROBORATING_TAGS, INCIDENT
from decisions.plate_format import normalise
from decisions.rules import EDGE_ALERT_FACTS, Decision, Fact, RuleEngine, RuleSet
from decisions.vehicles import AuthorisedVehicles, Release, ReleasePlan, vehicle_authorised

READER_OFFLINE = AlertType.READER_OFFLINE
DECIDED_HERE = {"decided_at": "edge"}  # marks the rules' alerts (the cloud's rules decide too)
# The messages that are facts here; the agent hands the stage no others (tag reads are many).
FACT_TYPES = frozenset({MessageType.PRESENCE_CHANGE, MessageType.PLATE_READ, MessageType.ALERT})

ABSENCE_WINDOW_S = 300.0  # a lot's default: how long an uncorroborated absence waits
CORROBORATION_S = 600.0  # a door or plate this close to a departure corroborates it
PICKUP_VEHICLE_S = 1800.0  # a release's vehicle read this long before its goods leave
CORROBORATING_KINDS = frozenset({"door_opened_after_hours", "vehicle_unauthorised"})
UPDATE_EVERY_S = 10.0  # an incident in progress is re-raised with its new count at most this often
MAX_REMEMBERED = 256  # facts and plate sightings kept (bounded whatever the gate sees)
MAX_EVIDENCE_EPCS = 200


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
    @property
    def at_us(self) -> int: ...


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


@dataclass
class LotIncident:
    """What one lot's tags did since its incident began (values only)."""

    departed: dict[str, int | None] = field(default_factory=dict)  # epc -> last seen
    released: set[str] = field(default_factory=set)  # departures taken by a release
    first_us: int | None = None  # the first departure not yet decided theft
    corroboration: list[Fact] = field(default_factory=list)
    raised_count: int = 0  # departed tags when last raised (0: not raised)
    raised_us: int = 0
    alarmed: bool = False  # the siren sounds for it


class EdgeAlerting:
    """``rules`` None: no correlation at the gateway (``local_rules = false``); the gateway's
    own decisions (departure incidents, reader offline) are made all the same."""

    def __init__(self, rules: RuleSet | None, *, gate_list: AuthorisedVehicles | None = None,
                 released_lots: Iterable[str] = (), absence_window_s: float = ABSENCE_WINDOW_S,
                 absence_windows: dict[str, float] | None = None) -> None:
        self._engine = RuleEngine(rules) if rules is not None else None
        self.gate_list = gate_list
        self.released_lots: frozenset[str] = frozenset(released_lots)
        self.releases: tuple[Release, ...] = ()
        self.absence_window_s = absence_window_s
        self.absence_windows = dict(absence_windows or {})  # lot -> seconds
        self.incidents: dict[str, LotIncident] = {}
        self._release_used: dict[tuple[str, int, int], int] = {}  # release -> pieces taken
        self._plates: deque[tuple[str, int]] = deque(maxlen=MAX_REMEMBERED)
        self._corroborating: deque[Fact] = deque(maxlen=MAX_REMEMBERED)

    # -- what the cloud last sent --------------------------------------------------------------
    def gate_list_received(self, vehicles: AuthorisedVehicles) -> bool:
        """Take a newer list; an older or equal version is kept out (False)."""
        if self.gate_list is not None and vehicles.version <= self.gate_list.version:
            return False
        self.gate_list = vehicles
        return True

    def releases_received(self, plan: ReleasePlan | Iterable[str], at_us: int, *,
                          cloud_reachable: bool) -> Verdict:
        """The full set of lots with an approved release and what each release allows; each
        newly released lot is a ``release_approved`` fact for the rules."""
        if not isinstance(plan, ReleasePlan):
            plan = ReleasePlan(frozenset(plan))
        new = sorted(plan.released - self.released_lots)
        self.released_lots = plan.released
        detailed = {r.lot for r in plan.releases}
        # A lot released without details (an older cloud): its departures with an authorised
        # vehicle are release movements, as the rules always treated them, uncapped.
        self.releases = plan.releases + tuple(
            Release(lot, None, (), 0, 2**62) for lot in sorted(plan.released - detailed))
        keys = {_release_key(r) for r in self.releases}
        self._release_used = {k: v for k, v in self._release_used.items() if k in keys}
        return self._correlate([Fact("release_approved", f"lot:{lot}", at_us, {"lot": lot})
                                for lot in new], cloud_reachable)

    # -- what the gateway saw ------------------------------------------------------------------
    def on_emitted(self, msg_type: MessageType, body: Any, at_us: int, *,
                   cloud_reachable: bool) -> Verdict:
        if msg_type is MessageType.ALERT and (body.evidence or {}).get("decided_at") == "edge":
            return Verdict()  # the stage's own output: not a new fact
        if msg_type is MessageType.PLATE_READ and isinstance(body, PlateReadBody):
            self._plates.append((normalise(body.plate), at_us))
        facts = self.facts_of(msg_type, body, at_us)
        verdict = self._correlate(facts, cloud_reachable)
        if msg_type is MessageType.PRESENCE_CHANGE and isinstance(body, PresenceChangeBody):
            # The same change comes as an observation (the pipeline's batch), which decides
            # for the whole batch at once; noted here too for a producer that only emits (the
            # next tick decides then). Noting a tag twice changes nothing.
            returned = self._note(body.lot, body.epc, body.state, body.last_seen_us, at_us)
            if returned:
                verdict.extend(self._clear(returned, self.incidents[returned], at_us))
        news = [f for f in facts if f.kind in CORROBORATING_KINDS or f.kind == "weight_dropped"]
        if news:
            self._corroborating.extend(news)
            verdict.extend(self._decide(at_us, cloud_reachable))
        return verdict

    def on_observed(self, seen: Observation, *, cloud_reachable: bool = True,
                    at_us: int | None = None) -> Verdict:
        if isinstance(seen, Sequence):
            return self.on_departures(seen, cloud_reachable=cloud_reachable, at_us=at_us)
        return Verdict(alerts=[self.on_reader_health(seen)])

    def on_presence(self, changes: Iterable[PresenceSeen]) -> list[AlertBody]:
        """The incident alerts a batch of presence changes causes (the link taken as up)."""
        return self.on_departures(list(changes), cloud_reachable=True).alerts

    def on_departures(self, changes: Sequence[PresenceSeen], *, cloud_reachable: bool,
                      at_us: int | None = None) -> Verdict:
        """Missing tags depart (or are taken by a release); only a read brings one back."""
        if not changes:
            return Verdict()
        now = at_us if at_us is not None else max(c.at_us for c in changes)
        verdict = Verdict()
        returned = {lot for c in changes
                    if (lot := self._note(c.lot, c.epc, c.state, c.last_seen_us, now))}
        for lot in sorted(returned):
            verdict.extend(self._clear(lot, self.incidents[lot], now))
        verdict.extend(self._decide(now, cloud_reachable))
        return verdict

    def _note(self, lot: str, epc: str, state: str, last_seen_us: int | None, at_us: int
              ) -> str | None:
        """One tag's change into its lot's incident; the lot when its last departed tag was
        read again (the incident's end), else None."""
        incident = self.incidents.setdefault(lot, LotIncident())
        if state == "missing":
            if epc in incident.departed or epc in incident.released:
                return None
            release = self._release_for(lot, at_us)
            if release is not None:
                incident.released.add(epc)
                key = _release_key(release)
                self._release_used[key] = self._release_used.get(key, 0) + 1
                return None
            incident.departed[epc] = last_seen_us
            if incident.first_us is None:
                incident.first_us = at_us
        elif state == "present":
            # Only a read brings a tag back: a missing tag whose reader went down becomes
            # "unknown", which is no evidence that it returned.
            if incident.departed.pop(epc, False) is not False:
                return None if incident.departed else lot
            incident.released.discard(epc)  # back on the floor: not taken after all
        return None

    def tick(self, now_us: int, *, cloud_reachable: bool) -> Verdict:
        """Absences that have now lasted their lot's absence window become theft."""
        return self._decide(now_us, cloud_reachable)

    def next_deadline_us(self) -> int | None:
        """The earliest moment a ``tick`` can decide something (None: no tick can until a new
        fact or change arrives): an uncorroborated absence reaching its lot's window, or an
        incident that grew since its last raise reaching ``UPDATE_EVERY_S``. A caller may skip
        the ticks before it: ``tick`` would return nothing and change nothing."""
        due: int | None = None
        for lot, incident in self.incidents.items():
            if not incident.departed:
                continue
            if incident.raised_count:
                if len(incident.departed) <= incident.raised_count:
                    continue
                at = incident.raised_us + math.ceil(UPDATE_EVERY_S * 1e6)
            elif self._corroborated(lot, incident):
                at = 0  # decided on the next tick (facts decide at once, so rarely here)
            else:
                assert incident.first_us is not None
                window = self.absence_windows.get(lot, self.absence_window_s)
                at = incident.first_us + math.ceil(window * 1e6)
            due = at if due is None else min(due, at)
        return due

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
            fact_kind = kinds[0] if body.action == "raise" else kinds[1]
            if fact_kind is None:
                return []
            kind = fact_kind
            attrs: dict[str, Any] = {"edge_alert": body.alert_type}
            subject = body.subject
            if body.lot:
                attrs["lot"] = body.lot
                subject = f"lot:{body.lot}" if kind == "weight_dropped" else subject
            return [Fact(kind, subject, at_us, attrs)]
        return []

    def vehicle_authorised(self, plate: str, at_us: int) -> bool | None:
        """None while no gate list is known: unknown is neither authorised nor a thief. A
        vehicle named by a release in its window is authorised whatever the list says."""
        if any(r.covers(at_us) and r.names(plate) for r in self.releases):
            return True
        if self.gate_list is None:
            return None
        return vehicle_authorised(plate, _time(at_us), gate_list=self.gate_list).authorised

    def _release_for(self, lot: str, at_us: int) -> Release | None:
        """The release that takes one more piece of ``lot`` leaving now, if any."""
        for release in self.releases:
            if release.lot != lot or not release.covers(at_us):
                continue
            if (release.pieces is not None
                    and self._release_used.get(_release_key(release), 0) >= release.pieces):
                continue
            if self._pickup_vehicle_seen(release, at_us):
                return release
        return None

    def _pickup_vehicle_seen(self, release: Release, at_us: int) -> bool:
        since = at_us - int(PICKUP_VEHICLE_S * 1e6)
        for plate, seen_us in reversed(self._plates):
            if not since <= seen_us <= at_us:
                continue
            if release.vehicles:
                if release.names(plate):
                    return True
            elif self.vehicle_authorised(plate, seen_us):
                return True
        return False

    def _corroborated(self, lot: str, incident: LotIncident) -> list[Fact]:
        """What corroborates the lot's departures (empty: nothing does)."""
        assert incident.first_us is not None
        near = int(CORROBORATION_S * 1e6)
        found = [f for f in self._corroborating
                 if f.at_us >= incident.first_us - near
                 and (f.kind in CORROBORATING_KINDS or f.subject == f"lot:{lot}")]
        if len(incident.departed) >= CORROBORATING_TAGS:
            found.append(Fact("tags_departed", f"lot:{lot}", incident.first_us,
                              {"tags": len(incident.departed)}))
        return found

    def _decide(self, now_us: int, cloud_reachable: bool) -> Verdict:
        verdict = Verdict()
        for lot in sorted(self.incidents):
            incident = self.incidents[lot]
            if not incident.departed:
                continue
            if incident.raised_count:  # already theft: more tags left is an update
                # (at most every UPDATE_EVERY_S: a pallet read out in ten batches is one
                # update for the financier, not ten; the tick sends the rest)
                if (len(incident.departed) > incident.raised_count
                        and now_us - incident.raised_us >= UPDATE_EVERY_S * 1e6):
                    verdict.extend(self._raise(lot, incident, now_us, cloud_reachable))
                continue
            window = self.absence_windows.get(lot, self.absence_window_s)
            assert incident.first_us is not None
            if (self._corroborated(lot, incident)
                    or now_us - incident.first_us >= window * 1e6):
                verdict.extend(self._raise(lot, incident, now_us, cloud_reachable))
        return verdict

    def _raise(self, lot: str, incident: LotIncident, now_us: int, cloud_reachable: bool
               ) -> Verdict:
        epcs = sorted(incident.departed)
        incident.corroboration = self._corroborated(lot, incident)
        first = incident.first_us or now_us
        departed = Fact("tags_departed", f"lot:{lot}", first, {"tags": len(epcs)})
        facts = [departed, *[f for f in incident.corroboration if f.kind != "tags_departed"]]
        described = "; ".join(f.describe() for f in facts[:20])
        window = self.absence_windows.get(lot, self.absence_window_s)
        if incident.corroboration:
            text = alert_text("incident.raise", count=len(epcs), lot=lot,
                              released=len(incident.released), facts=described)
        else:
            text = alert_text("incident.raise_absent", count=len(epcs), lot=lot,
                              released=len(incident.released), window_s=f"{window:g}")
        incident.raised_count, incident.raised_us = len(epcs), now_us
        alert = text.alert(
            action="raise", alert_type=INCIDENT, subject=f"lot:{lot}", severity="critical",
            lot=lot,
            evidence={"incident": {"departed_count": len(epcs),
                                   "departed_epcs": epcs[:MAX_EVIDENCE_EPCS],
                                   "released_count": len(incident.released),
                                   "since_us": first,
                                   "corroborated_by": [f.kind for f in facts[1:]],
                                   "last_seen_us": {e: incident.departed[e]
                                                    for e in epcs[:MAX_EVIDENCE_EPCS]}},
                      "facts": [{"kind": f.kind, "subject": f.subject, "at_us": f.at_us,
                                 "attrs": dict(f.attrs)} for f in facts[:20]],
                      **DECIDED_HERE})
        verdict = Verdict(alerts=[alert])
        if not cloud_reachable or incident.alarmed:
            incident.alarmed = True
            verdict.alarms.append(Alarm(True, INCIDENT, f"lot:{lot}", "critical",
                                        alert.explanation, now_us))
        return verdict

    def _clear(self, lot: str, incident: LotIncident, now_us: int) -> Verdict:
        was_raised, alarmed = incident.raised_count > 0, incident.alarmed
        self.incidents[lot] = LotIncident(released=incident.released)
        if not was_raised:
            return Verdict()
        text = alert_text("incident.clear", lot=lot)
        alert = text.alert(action="clear", alert_type=INCIDENT, subject=f"lot:{lot}",
                           severity="critical", lot=lot, evidence=dict(DECIDED_HERE))
        alarms = ([Alarm(False, INCIDENT, f"lot:{lot}", "critical", alert.explanation, now_us)]
                  if alarmed else [])
        return Verdict(alerts=[alert], alarms=alarms)

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
            if d.alert_type == INCIDENT:
                continue  # the lot's incident is decided above, on the gateway's own evidence
            # The gateway's own alert for this fact is already emitted (reader, sensors).
            if any(f.attrs.get("edge_alert") == d.alert_type for f in d.facts):
                continue
            verdict.alerts.append(AlertBody(
                action="raise" if d.action == "raise" else "clear",
                alert_type=d.alert_type, subject=d.subject,
                severity=d.severity,
                lot=d.lot, explanation=d.explanation[:2000],
                evidence={**d.evidence(), **DECIDED_HERE}))
            verdict.alarms.append(Alarm(d.action == "raise", d.alert_type, d.subject,
                                        d.severity, d.explanation, d.at_us))
        return verdict


def _release_key(release: Release) -> tuple[str, int, int]:
    return (release.lot, release.window_start_us, release.window_end_us)
