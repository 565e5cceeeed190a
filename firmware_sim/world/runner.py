"""The value-level runner: a world's raw signals fed, in process and on the simulated clock, to the
edge's real decision objects, and the alerts that come out, as the cloud would hold them.

Theory of operation. One ``SiteRun`` per site holds the gateway's decision objects, built the
way the agent's pipelines build them, and a thin layer that does only what the glue between
them does (edge/agent.py, edge/rfid/pipeline.py, edge/vision/events.py):

- RFID: a ``ReadReport`` becomes one batch of ``TagObservation`` (each tag at its last read)
  for ``RfidStation``; a reader heard from nothing (no report, no keepalive) for
  ``stale_after_s`` (3 keepalive periods, the LLRP session's default) is reported offline, and
  online again on its next message, as the adapter does. ``ReaderPower`` is never read: the
  gateway only sees the silence. The station is ticked every ``tick_s`` of simulated time,
  except (``skip_idle``, the default) the ticks no timer is due at, and quiet stretches of
  reports go to presence in one call (``feed_chunk``): the same decisions, tested against a
  tick every ``tick_s`` with each report on its own (docs/simulation.md).
- Everything the station emits or observes goes to ``EdgeAlerting`` exactly as the agent hands
  it on; the alerts it decides are emitted and fed back as facts.
- Doors (``DoorMonitor`` against the site's working hours), sensors (``RangeMonitor`` with the
  sensor's limits), trackers (``TrackerStation`` on the site's fences), camera blindness
  (``CameraBlindness`` on frames the world renders as small grey pictures), labels
  (``LabelWatch``) and plates (a passage per vehicle, the gate list judging it) likewise.
- The cloud: the approved releases and the gate list are sent to the gateway as the cloud
  would (a release enters at its window's start, leaves at its end). While the uplink is up
  the cloud's own rule engine (the same default rules, fed the same facts) decides the
  correlation alerts; while it is cut the gateway's messages wait in its outbox and reach the
  cloud when the link comes back, so an alert is *delivered* then, while the gateway's own
  decision (and its siren) happened during the cut.

The alerts are kept as the cloud keeps them: one active alert per (site, type, subject); a
raise while active is an update, a clear ends it. Pure: no I/O, no wall clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import numpy as np

from contract import AlertBody, MessageType, TagObservation
from decisions.alert_types import AlertType
from decisions.incident import (
    FOLD_BEFORE_S,
    FOLDED_TYPES,
    INCIDENT,
    departed_count,
    escalated,
    merge_evidence,
)
from decisions.rules import Decision, Fact, RuleEngine, default_rules
from decisions.trackers.station import TrackerStation
from decisions.trackers.watch import TrackedAsset
from decisions.vehicles import AuthorisedVehicle, AuthorisedVehicles, Release, ReleasePlan
from edge.alerting import FACT_TYPES, EdgeAlerting
from edge.rfid.presence import LotDefinition, QuietRows
from edge.rfid.reader import ReaderHealth
from edge.rfid.smoothing import SmoothingPolicy
from edge.rfid.station import RfidOutput, RfidStation
from edge.rfid.zones import ZoneDefinition
from edge.sensors.decisions import DoorMonitor, RangeMonitor, RangeRule
from edge.vision.events import VisionOutput, emit_outcome, emit_passage
from edge.vision.label_watch import LabelWatch
from edge.vision.passages import Passage, PlateSighting
from edge.vision.tamper import CameraBlindness, frame_stats
from firmware_sim.world.generate import Chunk, ReportRun, generate_chunks, generate_chunks_ahead
from firmware_sim.world.model import World, split_ref
from firmware_sim.world.signals import (
    DoorContact,
    GateFrame,
    GpsFix,
    LabelFrame,
    LinkState,
    ReaderKeepalive,
    ReadReport,
    SensorSample,
    Signal,
)
from geofences.crossing import CrossingRules, Fix
from geofences.fences import load_site
from geofences.schedule import Schedule, WeeklyWindow

US = 1_000_000
# Where an alert's evidence says how many pieces it is about (the first key present counts).
PIECE_KEYS = ("pieces", "excess_pieces", "missing_count", "departed", "tags")
_RANGE_TYPES = {"temperature": AlertType.TEMPERATURE, "humidity": AlertType.HUMIDITY,
                "shock": AlertType.SHOCK}


def _time(us: int) -> datetime:
    return datetime.fromtimestamp(us / US, UTC)


@dataclass
class Alert:
    """One alert as the cloud holds it: raised, updated, maybe cleared."""

    site: str
    alert_type: str
    subject: str
    raised_us: int  # when the cloud got the raise
    decided_us: int  # when it was decided (the gateway's moment, during a cut too)
    decided_at: str  # "edge" or "cloud"
    evidence: dict[str, Any]
    explanation: str
    updates: int = 0
    cleared_us: int | None = None
    updated_us: list[int] = field(default_factory=list)  # decided moments of its updates
    # The lot's incident it became a fact of (cloud/alerts.py folds door, plate and weight
    # alerts standing when an incident opens or grows): no alert of its own any more.
    folded_into: str | None = None
    lot: str | None = None

    def said_since(self, t_us: int) -> int | None:
        """The first moment at or after ``t_us`` it was raised or updated (a second theft
        from a lot whose alert is still open shows as an update)."""
        times = [x for x in (self.decided_us, *self.updated_us) if x >= t_us]
        return min(times) if times else None

    @property
    def last_said_us(self) -> int:
        return max([self.decided_us, *self.updated_us])

    @property
    def pieces(self) -> int | None:
        if self.alert_type == INCIDENT:  # counted over the incident (decisions/incident.py)
            return departed_count(self.evidence) or None
        for key in PIECE_KEYS:
            value = self.evidence.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            if isinstance(value, list):
                return len(value)
        return None

    def describe(self) -> str:
        return f"{self.alert_type} {self.subject}@{self.site}"


@dataclass
class Webhook:
    """A webhook a financier received about an alert (world names: site, subject)."""

    financier: str
    site: str
    alert_type: str
    subject: str
    event: str  # alert.opened, alert.updated, ...


@dataclass
class Outcome:
    """What one run produced: the alerts, the local alarms and the uplink's cuts."""

    alerts: list[Alert] = field(default_factory=list)
    # What the financiers received; None where the run has no cloud to send them (this
    # value-level runner): expectations on webhooks are then unjudged.
    webhooks: list[Webhook] | None = None
    # The gateway's siren: (at, alert type, subject, on); sirens of every site.
    alarms: list[tuple[int, str, str, bool]] = field(default_factory=list)
    link_cuts: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    signals: int = 0
    simulated_s: float = 0.0


class _Context:
    """What the decision glue emits into: an EdgeContext for edge/vision/events.py."""

    def __init__(self, run: SiteRun) -> None:
        self._run = run

    def emit(self, msg_type: MessageType, body: Any, *, observed_at: datetime | None = None
             ) -> int:
        at = int(observed_at.timestamp() * US) if observed_at else self._run.now_us
        self._run.emitted(msg_type, body, at)
        return 0

    def observe(self, seen: Any) -> None:
        self._run.observed(seen)

    def now_us(self) -> int:
        return self._run.now_us

    def on_command(self, name: str, handler: Any) -> None:  # commands come from the runner
        del name, handler


class SiteRun:
    def __init__(self, world: World, outcome: Outcome, *, tick_s: float = 1.0,
                 per_read: bool = False, skip_idle: bool = True) -> None:
        self.world = world
        # False: a tick every tick_s whatever is due (the reference the skipping is tested on).
        self.skip_idle = skip_idle
        # The naive feed, for the benchmark's baseline: each row expanded into its reads (evenly
        # spaced from first to last seen) through the station's per-read path.
        self.per_read = per_read
        self.site = world.site
        self.outcome = outcome
        self.now_us = world.epoch_us
        self.tick_us = int(tick_s * US)
        self._next_tick = self.now_us + self.tick_us
        covering: dict[str, set[str]] = {}
        for lot in world.lots:
            covering[lot.name] = {split_ref(ref)[0] for ref in lot.at}
        for m in world.moves:
            covering[m.lot] |= {split_ref(ref)[0] for ref in m.path}
        # The lot's absence window is the site's [alerting] setting for it (edge/config.py):
        # how long an uncorroborated departure waits before it is theft. Presence keeps its
        # own defaults (edge/rfid/pipeline.py), as a site configures them.
        lots = [LotDefinition(lot.name, frozenset(world.epcs(lot.name)),
                              readers=frozenset(covering[lot.name]),
                              move_window_s=lot.move_window_s)
                for lot in world.lots]
        zones = [ZoneDefinition(f"{zone}", frozenset(a.port for a in r.antennas
                                                    if a.zone == zone), r.name)
                 for r in world.readers for zone in sorted({a.zone for a in r.antennas})]
        policy = SmoothingPolicy()
        self._proof_rounds = policy.proof_cycles + 1
        self.station = RfidStation(lots, zones, world.epoch_us, policy=policy,
                                   batch_max_reads=500, zone_margin_cdbm=300,
                                   zone_confirm_reads=3, zone_stale_s=10.0,
                                   telemetry=False)  # tag_reads, tag_zone: no fact (emitted)
        vehicles = sorted({*world.authorised_vehicles,
                           *(v for rel in world.releases for v in rel.vehicles)})
        self.gate_list = AuthorisedVehicles(
            version=1, timezone=world.timezone,
            vehicles=[AuthorisedVehicle(plate=p) for p in vehicles])
        self.alerting = EdgeAlerting(
            default_rules(), gate_list=self.gate_list,
            absence_windows={lot.name: lot.absence_window_s for lot in world.lots})
        self.cloud = RuleEngine(default_rules())
        self.link_up = True
        self._outbox: list[tuple[MessageType, Any, int]] = []  # waiting for the uplink
        self._active: dict[tuple[str, str], Alert] = {}
        self._ctx = _Context(self)
        # Reader liveness as the adapter sees it.
        self._stale_us = {r.name: int(3 * r.keepalive_s * US) for r in world.readers}
        self._heard: dict[str, int] = dict.fromkeys(self._stale_us, world.epoch_us)
        self._online: dict[str, bool] = dict.fromkeys(self._stale_us, True)
        # Releases as the cloud sends them (cmd/lot_releases): the plan in force changes when a
        # release's window opens (at, 0) or ends (at, 1); the gateway gets the whole plan.
        self._releases = [Release(r.lot, r.pieces, tuple(r.vehicles), world.at_us(r.from_s),
                                  world.at_us(r.to_s)) for r in world.releases]
        self._release_events = sorted(
            [(r.window_start_us, 0, i) for i, r in enumerate(self._releases)]
            + [(r.window_end_us, 1, i) for i, r in enumerate(self._releases)])
        self._in_force: set[int] = set()
        h0, h1 = world.working_hours
        hours = Schedule(world.timezone, (WeeklyWindow(frozenset(range(7)), h0 * 60,
                                                       h1 * 60),))
        self._doors: dict[str, DoorMonitor] = {}
        self._hours = hours
        self._sensors = {
            s.name: RangeMonitor(RangeRule(str(_RANGE_TYPES.get(s.kind, AlertType.TEMPERATURE)),
                                           low=s.low, high=s.high, hysteresis=s.hysteresis,
                                           min_duration_s=s.min_duration_s),
                                 subject=f"sensor:{s.name}", lot=s.lot)
            for s in world.sensors if s.low is not None or s.high is not None}
        self._trackers = None
        if world.fences is not None:
            self._trackers = TrackerStation(
                load_site(world.fences),
                [TrackedAsset(t.name, t.lot, t.period_s) for t in world.trackers],
                rules=CrossingRules(), source="owntracks", started_us=world.epoch_us)
            self._trackers.watch.set_released(set())
        self._cameras: dict[str, tuple[CameraBlindness, np.ndarray | None]] = {}
        self._vision = VisionOutput(settings=None, ctx=self._ctx,  # type: ignore[arg-type]
                                    evidence=None, authorised=self.gate_list)  # type: ignore[arg-type]
        self._passages: dict[str, list[GateFrame]] = {}
        labelled = sorted({lab.payload for lab in world.labels} & {x.name for x in world.lots})
        self._labels = LabelWatch(labelled, unreadable_after_us=int(
            world.label_unreadable_after_s * US), started_us=world.epoch_us)
        self._rng = np.random.default_rng(0)  # the camera's scene texture: fixed
        self._scene = self._rng.integers(40, 220, (48, 64)).astype(np.uint8)
        # Per reader, the column block whose rows _seen_rows last built, with its EPC table,
        # RSSI and rows (held, so no other block can take its identity).
        self._blocks: dict[str, tuple[Any, tuple[str, ...], int, list[Any]]] = {}
        self._columns = False  # fed from chunks' columns (feed_chunk)
        self._refused = 0  # stretches refused in a row (feed_chunk)

    # -- time ----------------------------------------------------------------------------------
    def advance(self, t_us: int) -> None:
        """Run the gateway's timers up to ``t_us``: releases, reader staleness, presence ticks,
        passages that ended, tracker flushes. With ``skip_idle`` the ticks before the earliest
        moment any timer can act (``due_us``) are skipped: each would decide nothing and
        change nothing, so the decisions are those of a tick every ``tick_s``."""
        while self._next_tick <= t_us:
            if self.skip_idle:
                # To the first tick of the grid at or after it, but no further than t_us: what
                # happens at t_us (a signal) may bring a timer closer.
                due = min(self.due_us(), t_us + 1)
                if due > self._next_tick:
                    self._next_tick += -(-(due - self._next_tick) // self.tick_us) * self.tick_us
                    if self._next_tick > t_us:
                        break
            now = self._next_tick
            self._step_to(now)
            self._timers(now)
            self._next_tick += self.tick_us
        self._step_to(t_us)

    def due_us(self) -> int:
        """The earliest moment a tick can act: presence's next due tick, an absence reaching
        its window or an incident's update, a reader's stale timer, a passage that ended.
        Trackers (their flush) and telemetry batches are taken as due on every tick."""
        if self._trackers is not None or self.station.telemetry:
            return 0
        due = self.station.presence.next_tick_due_us()
        alerting = self.alerting.next_deadline_us()
        if alerting is not None:
            due = min(due, alerting)
        for reader, heard in self._heard.items():
            if self._online[reader]:  # offline at the first tick past the stale time
                due = min(due, heard + self._stale_us[reader] + 1)
        for frames in self._passages.values():
            if frames:  # a passage ends at the first tick more than 2 s after its last frame
                due = min(due, frames[-1].t_us + 2 * US + 1)
        return due

    def _step_to(self, t_us: int) -> None:
        while self._release_events and self._release_events[0][0] <= t_us:
            at, ending, index = self._release_events.pop(0)
            self.now_us = at
            if ending:
                self._in_force.discard(index)
            else:
                self._in_force.add(index)
            releases = tuple(self._releases[i] for i in sorted(self._in_force))
            lots = {r.lot for r in releases}
            self._act(self.alerting.releases_received(
                ReleasePlan(frozenset(lots), releases), at, cloud_reachable=self.link_up))
            for x in lots:
                self._to_cloud_fact(Fact("release_approved", f"lot:{x}", at, {"lot": x}))
            if self._trackers is not None:
                self._trackers.watch.set_released(lots)
        self.now_us = max(self.now_us, t_us)

    def _timers(self, now: int) -> None:
        for reader, heard in self._heard.items():
            if self._online[reader] and now - heard > self._stale_us[reader]:
                self._online[reader] = False
                self._rfid(self.station.on_health(ReaderHealth(
                    reader, False, f"no message from the reader for "
                    f"{self._stale_us[reader] / US:g} s", now)))
        self._rfid(self.station.tick(now))
        self._rfid(self.station.flush())
        # The agent's judge, woken every tick: an absence becomes theft at its window's end.
        self._act(self.alerting.tick(now, cloud_reachable=self.link_up))
        for camera, frames in list(self._passages.items()):
            if frames and now - frames[-1].t_us > 2 * US:
                self._passage(camera, frames)
                del self._passages[camera]
        if self._trackers is not None:
            for msg_type, body in self._trackers.flush(now):
                self.emitted(msg_type, body, now)

    # -- signals -------------------------------------------------------------------------------
    def feed(self, sig: Signal) -> None:
        self.advance(sig.t_us)
        if isinstance(sig, ReadReport):
            self._heard_from(sig.reader, sig.t_us)
            if len(sig) and self.per_read:
                self._rfid(self.station.on_observations(_reads(sig)))
            elif len(sig):
                # One aggregated row per tag (seen count, first and last read): the station's
                # report path, which decides as its per-read path would on the same reads.
                # (A report fed from a chunk's columns is one of few: its own rows.)
                rows = sig.seen_rows() if self._columns else self._seen_rows(sig)
                self._rfid(self.station.on_report(sig.reader, rows))
            self._cycles(sig)
        elif isinstance(sig, ReaderKeepalive):
            self._heard_from(sig.reader, sig.t_us)
        elif isinstance(sig, DoorContact):
            door = self._doors.get(sig.door)
            if door is None:
                door = self._doors[sig.door] = DoorMonitor(self._hours, subject=f"door:{sig.door}")
            alert = door.feed(sig.open, sig.t_us)
            if alert is not None:
                self.emitted(MessageType.ALERT, alert, sig.t_us)
        elif isinstance(sig, SensorSample):
            monitor = self._sensors.get(sig.sensor)
            if monitor is not None:
                alert = monitor.feed(sig.value, sig.t_us)
                if alert is not None:
                    self.emitted(MessageType.ALERT, alert, sig.t_us)
        elif isinstance(sig, GpsFix):
            if self._trackers is not None:
                fix = Fix(sig.tracker, sig.t_us, sig.lon, sig.lat, sig.accuracy_m)
                for msg_type, body in self._trackers.add(fix, None, sig.t_us):
                    self.emitted(msg_type, body, sig.t_us)
        elif isinstance(sig, GateFrame):
            self._frame(sig)
        elif isinstance(sig, LabelFrame):
            if sig.payload in {x.name for x in self.world.lots}:
                verdict = self._labels.report(sig.payload, sig.readable, sig.t_us)
                if verdict is not None:
                    emit_outcome(self._vision, sig.camera,
                                 SimpleNamespace(blindness=None, verdicts=[verdict]), sig.t_us)
        elif isinstance(sig, LinkState):
            self._link(sig.up, sig.t_us)
        # ReaderPower, TagRead, ReadCycle: not what this gateway sees (see the module doc).

    # -- a chunk's reports as columns (skip_idle) ------------------------------------------
    def feed_chunk(self, chunk: Chunk) -> int:
        """A chunk of the stream (``generate_chunks``), decided as ``feed`` decides its
        signals one by one: its other signals go through ``feed``; its reports, between two
        of them and before any timer is due, are taken a stretch at a time by
        ``LotPresence.observe_quiet`` when nothing in the stretch can change state (the
        reports' tags present and read within their floor, their readers online and heard
        within the stale time), else one by one. Returns the signals fed."""
        self._columns = True
        runs = chunk.runs
        # A reader's keepalives go with its reports: each only says the reader is alive.
        alive = [(sig, rank) for sig, rank in zip(chunk.others, chunk.ranks, strict=True)
                 if isinstance(sig, ReaderKeepalive)]
        others = [(sig, rank) for sig, rank in zip(chunk.others, chunk.ranks, strict=True)
                  if not isinstance(sig, ReaderKeepalive)]
        t = np.concatenate([r.t_us for r in runs]
                           + [np.array([s.t_us for s, _ in alive], np.int64)])
        rank = np.concatenate([np.full(len(r.t_us), 3 * r.part + 1, np.int64) for r in runs]
                              + [np.array([k for _, k in alive], np.int64)])
        which = np.concatenate([np.full(len(r.t_us), k, np.int64) for k, r in enumerate(runs)]
                               + [np.full(len(alive), -1, np.int64)])
        index = np.concatenate([np.arange(len(r.t_us), dtype=np.int64) for r in runs]
                               + [np.arange(len(alive), dtype=np.int64)])
        order = np.lexsort((rank, t))
        t, rank, which, index = t[order], rank[order], which[order], index[order]
        stream = _Reports(runs, [s for s, _ in alive], t, part=rank // 3, which=which,
                          index=index)
        n, i = len(t), 0
        for sig, at_rank in others:
            # The reports before it in the stream's order (time, then rank).
            j = int(np.searchsorted(t, sig.t_us, side="left"))
            while j < n and t[j] == sig.t_us and rank[j] < at_rank:
                j += 1
            if j > i:
                self._reports(stream, i, j)
                i = j
            self.feed(sig)
        if i < n:
            self._reports(stream, i, n)
        return n + len(others)

    def _reports(self, stream: _Reports, i: int, j: int) -> None:
        """Reports ``i:j`` of the chunk: stretches before the next due timer through
        ``observe_quiet``, halved on refusal down to a few fed one by one (more after each
        refusal in a row: a site that is never quiet costs little more than feeding it)."""
        trial = j - i
        while i < j:
            due = self._due_but_presence()
            k = int(np.searchsorted(stream.t, due, side="left")) if due < 2**62 else j
            k = min(max(k, i), j)
            # A timer due before the next report, or presence already due by then (a tag past
            # its floor at its last pass, where observe_quiet would refuse): through feed,
            # whose ticks bring presence's bound up to date.
            if k == i or self.station.presence.next_tick_due_us() <= stream.t[i]:
                self.feed(stream.report(i))
                i += 1
                continue
            size = min(k - i, max(trial, 1))
            if size <= _ONE_BY_ONE:
                # Too few to be worth a try, or refused down to this: one by one.
                size = min(k - i, _ONE_BY_ONE << min(self._refused, 8))
                for x in range(i, i + size):
                    self.feed(stream.report(x))
                i += size
                trial = 2 * _ONE_BY_ONE
            elif self._quiet(stream, i, i + size):
                i += size
                trial = 2 * size
                self._refused = 0
            else:
                trial = size // 2
                if trial <= _ONE_BY_ONE:
                    self._refused += 1

    def _due_but_presence(self) -> int:
        """``due_us`` without presence and reader staleness (``_quiet`` checks those over
        the stretch itself), with the next release window's change (it acts between
        reports)."""
        if self._trackers is not None or self.station.telemetry:
            return 0
        due = 2**62
        alerting = self.alerting.next_deadline_us()
        if alerting is not None:
            due = min(due, alerting)
        for frames in self._passages.values():
            if frames:
                due = min(due, frames[-1].t_us + 2 * US + 1)
        if self._release_events:
            due = min(due, self._release_events[0][0])
        return due

    def _quiet(self, stream: _Reports, i: int, j: int) -> bool:
        """Reports ``i:j`` in one step if, fed one by one with a tick every tick_s, none
        would change a state (see ``feed_chunk``); False, and nothing done, otherwise."""
        t = stream.t
        t_end = int(t[j - 1])
        # The last tick the stretch covers (ticks at a report's moment come before it).
        last_tick = self._next_tick + max(0, (t_end - self._next_tick) // self.tick_us
                                           ) * self.tick_us
        if last_tick > t_end:
            last_tick = self._next_tick - self.tick_us
        part = stream.part[i:j]
        names = [r.name for r in self.world.readers]
        for p, reader in enumerate(names):
            heard = self._heard[reader]
            mine = t[i:j][part == p]
            if not self._online[reader]:
                if len(mine):
                    return False  # its next message brings it back: one by one
                continue
            stale = self._stale_us[reader]
            if len(mine):
                if (mine[0] - heard > stale or last_tick - mine[-1] > stale
                        or (np.diff(mine) > stale).any()):
                    return False
            elif last_tick - heard > stale:
                return False
        rows = stream.rows(i, j)
        if not self.station.presence.observe_quiet(stream.epcs, names, rows, last_tick):
            return False
        for p, reader in enumerate(names):
            sel = np.flatnonzero(part == p)
            if not len(sel):
                continue
            self._heard[reader] = max(self._heard[reader], int(t[i + sel[-1]]))
            # Its rounds as read cycles: only the last proof's worth can matter (_cycles).
            ends: list[int] = []
            for x in sel[::-1].tolist():
                report = stream.report(i + x)
                if not isinstance(report, ReadReport):
                    continue  # a keepalive
                n, since, span = report.rounds, report.since_us, report.t_us - report.since_us
                ends[:0] = [since + span * (r + 1) // n for r in range(n)]
                if len(ends) >= self._proof_rounds:
                    break
            self.station.on_cycles(reader, (), ends[-self._proof_rounds:])
        self._step_to(t_end)
        if self._next_tick <= t_end:
            self._next_tick = last_tick + self.tick_us
        return True

    def _seen_rows(self, report: ReadReport) -> list[tuple[str, int, int, int, int, int]]:
        """``report.seen_rows()``, sliced from its column block's rows built once: the
        generator shares one block among a reader's reports of a stretch (an hour's),
        so converting the block's arrays once costs less than each report's slice."""
        block = report.block
        held = self._blocks.get(report.reader)
        if (held is None or held[0] is not block or held[1] is not report.epcs
                or held[2] != report.rssi_cdbm):
            rows = replace(report, lo=0, hi=len(block[0])).seen_rows()
            held = self._blocks[report.reader] = (block, report.epcs, report.rssi_cdbm, rows)
        return held[3][report.lo:report.hi]

    def _cycles(self, report: ReadReport) -> None:
        """The report's inventory rounds as the read cycles presence counts, one per round,
        each dated at its end (the rounds share the period evenly): the proof is sized per
        round (docs/rfid.md), and a report of n rounds proves n of them (docs/simulation.md).
        Only the last ones can matter: presence keeps as many as its proof needs."""
        n, since, span = report.rounds, report.since_us, report.t_us - report.since_us
        # () : all its antennas, which each report covers (its ``antennas``).
        self.station.on_cycles(report.reader, (), [
            since + span * (i + 1) // n for i in range(max(0, n - self._proof_rounds), n)])

    def _heard_from(self, reader: str, at: int) -> None:
        self._heard[reader] = max(self._heard.get(reader, at), at)
        if not self._online.get(reader, True):
            self._online[reader] = True
            self._rfid(self.station.on_health(ReaderHealth(reader, True, "answering", at)))

    def _frame(self, sig: GateFrame) -> None:
        blind, previous = self._cameras.get(sig.camera, (CameraBlindness(), None))
        grey = (np.full((48, 64), 12, np.uint8) if sig.covered
                else np.roll(self._scene, sig.t_us // 100_000 % 64, axis=1))
        change = blind.feed(frame_stats(grey, previous), sig.t_us)
        self._cameras[sig.camera] = (blind, grey)
        if change is not None:
            emit_outcome(self._vision, sig.camera,
                         SimpleNamespace(blindness=change, verdicts=[]), sig.t_us)
        if sig.plate is not None:
            frames = self._passages.setdefault(sig.camera, [])
            if frames and (frames[-1].plate != sig.plate or sig.t_us - frames[-1].t_us > 2 * US):
                self._passage(sig.camera, frames)
                frames = self._passages[sig.camera] = []
            frames.append(sig)

    def _passage(self, camera: str, frames: list[GateFrame]) -> None:
        """The frames of one vehicle as the passage the gate pipeline would decide (plate
        recognition itself is the camera benchmark's; here the plate is read as shown)."""
        last = frames[-1]
        best = PlateSighting(box=(10, 10, 40, 12), text=last.plate, confidence=0.95,
                             at_us=last.t_us, region="eu", plate_format="generic")
        passage = Passage(track=1, plate=last.plate or "", region="eu", plate_format="generic",
                          confidence=0.95, reads=len(frames), first_seen_us=frames[0].t_us,
                          last_seen_us=last.t_us, direction=last.direction, best=best)
        emit_passage(self._vision, camera, passage)

    # -- what the gateway's decisions produce --------------------------------------------------
    def _rfid(self, out: RfidOutput) -> None:
        for msg_type, body, at in out.messages:
            self.emitted(msg_type, body, int(at.timestamp() * US) if at else self.now_us)
        for seen in out.observed:
            self.observed(seen)

    def emitted(self, msg_type: MessageType, body: Any, at_us: int) -> None:
        if msg_type not in FACT_TYPES:
            return  # reads, counts, positions: not facts for any decision here
        if msg_type is MessageType.ALERT:
            self._deliver(body, self.now_us, "edge")
        self._act(self.alerting.on_emitted(msg_type, body, self.now_us,
                                           cloud_reachable=self.link_up))
        self._to_cloud(msg_type, body, self.now_us)

    def observed(self, seen: Any) -> None:
        self._act(self.alerting.on_observed(seen))

    def _act(self, verdict: Any) -> None:
        for alert in verdict.alerts:
            self.emitted(MessageType.ALERT, alert, self.now_us)
        for alarm in verdict.alarms:
            self.outcome.alarms.append((self.now_us, alarm.alert_type, alarm.subject,
                                        alarm.on))

    # -- the cloud side ------------------------------------------------------------------------
    def _to_cloud(self, msg_type: MessageType, body: Any, at_us: int) -> None:
        if self.link_up:
            self._cloud_decides(msg_type, body, at_us)
        else:
            self._outbox.append((msg_type, body, at_us))

    def _cloud_decides(self, msg_type: MessageType, body: Any, at_us: int) -> None:
        if msg_type is MessageType.ALERT and (body.evidence or {}).get("decided_at") == "edge":
            return  # delivered as it is (_deliver); not a fact
        for fact in self.alerting.facts_of(msg_type, body, at_us):
            self._to_cloud_fact(fact)

    def _to_cloud_fact(self, fact: Fact) -> None:
        for d in self.cloud.feed(fact):
            self._cloud_decision(d)

    def _cloud_decision(self, d: Decision) -> None:
        if d.action == "record" or d.alert_type is None:
            return
        if any(f.attrs.get("edge_alert") == d.alert_type for f in d.facts):
            return  # the gateway's own alert stands for it
        body = AlertBody(action="raise" if d.action == "raise" else "clear",
                         alert_type=d.alert_type, subject=d.subject,
                         severity=d.severity, lot=d.lot, explanation=d.explanation[:2000],
                         evidence={**d.evidence(), "decided_at": "cloud"})
        self._deliver(body, self.now_us, "cloud")

    def _link(self, up: bool, at_us: int) -> None:
        cuts = self.outcome.link_cuts.setdefault(self.site, [])
        if not up and self.link_up:
            cuts.append((at_us, 2**62))  # until it comes back (or for ever)
        elif up and not self.link_up and cuts:
            cuts[-1] = (cuts[-1][0], at_us)
        self.link_up = up
        if up:
            waiting, self._outbox = self._outbox, []
            # The backlog arrives as the cloud's stage takes a batch (cloud/alerting/stage.py):
            # the gateway's alerts absorbed first, then the rules decide on its facts.
            for msg_type, body, at in waiting:
                if msg_type is MessageType.ALERT:
                    self._deliver(body, at_us, "edge", decided_us=at)
            for msg_type, body, at in waiting:
                self._cloud_decides(msg_type, body, at)

    def _deliver(self, body: AlertBody, at_us: int, decided_at: str, *,
                 decided_us: int | None = None) -> None:
        """The cloud's active-alert book, keyed by site, type and subject."""
        if decided_at == "edge" and not self.link_up and decided_us is None:
            return  # waits in the outbox; delivered on reconnection (_link)
        decided_at = str((body.evidence or {}).get("decided_at", decided_at))
        key = (body.alert_type, body.subject)
        active = self._active.get(key)
        decided = decided_us if decided_us is not None else at_us
        if body.action == "raise":
            if active is None:
                alert = Alert(self.site, body.alert_type, body.subject, at_us, decided,
                              decided_at, dict(body.evidence or {}), body.explanation,
                              lot=body.lot)
                self._active[key] = alert
                self.outcome.alerts.append(alert)
                if body.alert_type == INCIDENT:
                    self._fold_standing(alert, decided)
            else:
                before = active.evidence
                active.updates += 1
                active.updated_us.append(decided)
                if body.alert_type == INCIDENT:
                    active.evidence = merge_evidence(before, dict(body.evidence or {}))
                    if departed_count(body.evidence) >= departed_count(before):
                        active.explanation = body.explanation  # else the incident's sentence
                    if escalated(before, active.evidence):
                        self._fold_standing(active, decided)
                else:
                    active.evidence = dict(body.evidence or {})
                    active.explanation = body.explanation
        elif active is not None:
            active.cleared_us = at_us
            del self._active[key]

    def _fold_standing(self, incident: Alert, at_us: int) -> None:
        """The site's door, plate and weight alerts said in the FOLD_BEFORE_S before the lot's
        incident opened or grew become its facts, resolved as part of it (cloud/alerts.py)."""
        since = at_us - int(FOLD_BEFORE_S * US)
        for key, alert in list(self._active.items()):
            if (alert.alert_type in FOLDED_TYPES and alert.last_said_us >= since
                    and alert.lot in (None, incident.lot)):
                alert.cleared_us = at_us
                alert.folded_into = incident.subject
                del self._active[key]

    def finish(self, end_us: int) -> None:
        self.advance(end_us)
        self._rfid(self.station.flush())


_ONE_BY_ONE = 16  # a stretch refused at this size is fed report by report


class _Reports:
    """A chunk's reports of every reader in stream order, as columns."""

    def __init__(self, runs: list[ReportRun], alive: list[ReaderKeepalive], t: np.ndarray, *,
                 part: np.ndarray, which: np.ndarray, index: np.ndarray) -> None:
        self.runs, self.alive = runs, alive
        self.t, self.part, self.which, self.index = t, part, which, index  # which -1: alive
        self.epcs: tuple[str, ...] = runs[0].epcs if runs else ()

    def report(self, x: int) -> ReadReport | ReaderKeepalive:
        k = int(self.which[x])
        return self.alive[int(self.index[x])] if k < 0 else self.runs[k].report(
            int(self.index[x]))

    def rows(self, i: int, j: int) -> list[QuietRows]:
        """The rows of reports ``i:j`` for ``LotPresence.observe_quiet``, a part per reader
        (no copy into one table: its rows are in order already)."""
        parts = []
        which, index = self.which[i:j], self.index[i:j]
        present = np.flatnonzero(np.bincount(which + 1, minlength=len(self.runs) + 1)) - 1
        for k in present.tolist():
            if k < 0:
                continue  # keepalives: no rows
            run = self.runs[k]
            at = np.flatnonzero(which == k)
            lo, hi = run.lo[index[at]], run.hi[index[at]]
            sizes = hi - lo
            rows: slice | np.ndarray
            if (lo[1:] == hi[:-1]).all():  # back to back in the block (no report unsent)
                rows = slice(int(lo[0]), int(hi[-1]))
            else:  # row numbers of every report's lo:hi, in order
                rows = np.repeat(lo - np.r_[0, np.cumsum(sizes)[:-1]], sizes) + np.arange(
                    int(sizes.sum()))
            tag, _antenna, count, last, first = run.block
            n = int(sizes.sum())
            parts.append(QuietRows(tag[rows], np.full(n, run.part, np.int64),
                                   np.repeat(run.t_us[index[at]], sizes), first[rows],
                                   last[rows], count[rows], np.repeat(at, sizes)))
        return parts


def _reads(report: ReadReport) -> list[TagObservation]:
    """A report's rows as the reads they stand for, in time order (the per-read baseline)."""
    reads = []
    for epc, antenna, rssi, first, last, count in report.seen_rows():
        step = (last - first) / (count - 1) if count > 1 else 0.0
        reads += [TagObservation(epc, antenna, rssi, first + round(i * step), report.reader)
                  for i in range(count)]
    reads.sort(key=lambda o: o.observed_at_us)
    return reads


def run_worlds(worlds: Iterable[World], seed: int, *, tick_s: float = 1.0,
               per_read: bool = False, skip_idle: bool = True, pipeline: bool = False
               ) -> Outcome:
    """Every site's world on its own gateway, all in one simulated time line. ``pipeline``:
    each site's chunks drawn in a worker process while this one decides (the same stream,
    ``generate_chunks_ahead``); only where reports are taken as columns (``skip_idle``)."""
    outcome = Outcome()
    runs: list[tuple[SiteRun, Iterator[Signal]]] = []
    for world in worlds:
        runs.append((SiteRun(world, outcome, tick_s=tick_s, per_read=per_read,
                             skip_idle=skip_idle),
                     world.signals(seed)))
        outcome.simulated_s = max(outcome.simulated_s, world.duration_s)
    for run, stream in runs:  # sites share no state: each runs its own time line
        n = 0
        if run.skip_idle and not run.per_read:
            # Reports as columns, quiet stretches at once (feed_chunk): the same decisions.
            chunks = (generate_chunks_ahead if pipeline else generate_chunks)(run.world, seed)
            for chunk in chunks:
                n += run.feed_chunk(chunk)
        else:
            for sig in stream:
                run.feed(sig)
                n += 1
        run.finish(run.world.at_us(run.world.duration_s))
        outcome.signals += n
    return outcome
