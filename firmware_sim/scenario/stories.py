"""The world's raw-signal stories (firmware_sim/world, firmware_sim/scenarios/raw/) played
through the real edge agent as its own process and the running cloud, and judged by the world's
own judge (counts, pieces, time from the labelled incident, during or after a link cut).

``site_specs`` turns each of a story's sites into what the raw player sets up (readers, their
zones, lots and the EPCs the world gives their pieces); the player runs one gateway per site
(``play_sites``); ``outcome`` turns the cloud's alert rows back into the world's `Outcome`, in
the world's time and names, each site's alerts from its own cloud site. The world's modules are
imported when a story is played.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from firmware_sim.scenario.raw_player import (
    PaperRelease,
    RawLot,
    RawReader,
    RawRun,
    RawSensor,
    SimCamera,
    SiteSpec,
)

if TYPE_CHECKING:
    from firmware_sim.world.model import World
    from firmware_sim.world.runner import Outcome, Webhook
    from firmware_sim.world.story import Story

US = 1_000_000


class NotPlayable(ValueError):
    """A story this player cannot stage (several sites)."""


def site_specs(story: Story) -> list[SiteSpec]:
    """One spec per site of the story, in order (the player runs one gateway per site).

    The sites of a run share the cloud's lot ids (one run id names them) and the test
    broker's topics (sensors, doors, trackers: a real site has its own broker): a name that two
    sites use for those is not playable. Readers may share names (each site has its own
    simulated readers), which is what a story of the same names at two sites needs."""
    for kind, names in (("lot", [[x.name for x in w.lots] for w in story.sites]),
                        ("sensor or door", [[*(x.name for x in w.sensors),
                                             *{d.door for d in w.doors}] for w in story.sites]),
                        ("tracker", [[x.name for x in w.trackers] for w in story.sites])):
        seen = [name for per_site in names for name in set(per_site)]
        twice = sorted({name for name in seen if seen.count(name) > 1})
        if twice:
            raise NotPlayable(f"{story.name}: {kind} {', '.join(twice)} at two sites")
    return [_spec(story, world) for world in story.sites]


def site_spec(story: Story) -> SiteSpec:
    """A one-site story's spec."""
    if len(story.sites) != 1:
        raise NotPlayable(f"{story.name}: {len(story.sites)} sites; site_specs plays them")
    return _spec(story, story.sites[0])


def _spec(story: Story, world: World) -> SiteSpec:
    from firmware_sim.world.model import split_ref

    readers = [RawReader(id=r.name, antennas=[a.port for a in r.antennas],
                         keepalive_s=r.keepalive_s, zones={a.port: a.zone for a in r.antennas})
               for r in world.readers]
    lots = []
    for lot in world.lots:
        refs = [*lot.at, *(ref for m in world.moves if m.lot == lot.name for ref in m.path)]
        covering = sorted({split_ref(ref)[0] for ref in refs})
        lots.append((RawLot(id=lot.name, tags=lot.pieces, readers=covering,
                            absence_window_s=lot.absence_window_s,
                            move_window_s=lot.move_window_s), world.epcs(lot.name)))
    sensors = [RawSensor(id=x.name, kind=x.kind, lot=x.lot, low=x.low, high=x.high,
                         min_duration_s=x.min_duration_s, hysteresis=x.hysteresis)
               for x in world.sensors if x.kind != "weight"]  # weight: not played yet
    doors = sorted({d.door for d in world.doors})
    # The cloud's release names one vehicle; a story's release with several gets its first.
    releases = [PaperRelease(r.lot, r.pieces, r.vehicles[0], world.at_us(r.from_s))
                for r in world.releases]
    return SiteSpec(story.name, readers, lots, epoch_us=world.epoch_us, sensors=sensors,
                    doors=doors, timezone=world.timezone,
                    working_hours=tuple(world.working_hours),  # type: ignore[arg-type]
                    authorised_vehicles=list(world.authorised_vehicles), releases=releases,
                    trackers=[(t.name, t.lot, t.period_s) for t in world.trackers],
                    fences=world.fences, cameras=_cameras(world),
                    label_unreadable_after_s=world.label_unreadable_after_s)


def _cameras(world: Any) -> list[SimCamera]:
    """The world's cameras: a gate camera for each that vehicles pass or someone covers (set
    to the region its plates read in), a stack camera for each that is shown a lot's label."""
    from firmware_sim.scenario.frames import plate_style

    gates: dict[str, set[str]] = {}
    for v in world.vehicles:
        gates.setdefault(v.camera, set()).add(plate_style(v.plate)[0])
    for cover in world.camera_covers:
        gates.setdefault(cover.camera, set())
    lots = {lot.name for lot in world.lots}
    stacks: dict[str, set[str]] = {}
    for label in world.labels:
        stacks.setdefault(label.camera, set()).update({label.payload} & lots)
    return ([SimCamera(name, "gate", next(iter(regions)) if len(regions) == 1 else "auto")
             for name, regions in sorted(gates.items())]
            + [SimCamera(name, "stack", labels=tuple(sorted(shown)))
               for name, shown in sorted(stacks.items())])


def outcome(story: Story, runs: RawRun | Sequence[RawRun]) -> Outcome:
    """The cloud's alerts of a run as the world's judge reads them: world time (the run's
    shift taken off), logical subjects, the story's site. ``runs``: one per site of the story,
    in order (``play_sites``); each takes only its own cloud site's alerts."""
    from firmware_sim.world.runner import Outcome

    runs = [runs] if isinstance(runs, RawRun) else list(runs)
    if len(runs) != len(story.sites):
        raise ValueError(f"{story.name}: {len(story.sites)} sites, {len(runs)} runs")
    result = Outcome(webhooks=[])
    for world, run in zip(story.sites, runs, strict=True):
        one = _site_outcome(world, run)
        result.alerts += one.alerts
        result.alarms += one.alarms
        result.link_cuts |= one.link_cuts
        result.simulated_s = max(result.simulated_s, one.simulated_s)
    assert result.webhooks is not None
    for world, run in zip(story.sites, runs, strict=True):
        result.webhooks += _webhooks(story, world, run, runs)
    return result


def _webhooks(story: Story, world: World, run: RawRun, runs: Sequence[RawRun]
              ) -> list[Webhook]:
    """What ``run``'s financier (``world.financier``) received, about any site's alert: a
    webhook about another site's alert is one it should never have had."""
    from firmware_sim.world.runner import Webhook

    if world.financier is None:
        return []
    received = []
    for _at, _headers, body in run.webhooks:
        message = json.loads(body)
        alert = (message.get("data") or {}).get("alert") or {}
        for other, other_run in zip(story.sites, runs, strict=True):
            if other_run.site and alert.get("site_id") != other_run.site:
                continue
            subject = _logical(str(alert.get("subject")), *_names(other, other_run))
            if subject is not None:
                received.append(Webhook(world.financier, other.site,
                                        str(alert.get("alert_type")), subject,
                                        str(message.get("type"))))
                break
    return received


def _names(world: World, run: RawRun) -> tuple[dict[str, str], dict[str, str]]:
    """The run's lot ids and device subjects -> the world's names."""
    lots = {run.names.lot_id(lot.name): lot.name for lot in world.lots}
    readers = {f"reader:{run.reader_id(r.name)}": f"reader:{r.name}" for r in world.readers}
    readers |= {f"sensor:{run.reader_id(x.name)}": f"sensor:{x.name}" for x in world.sensors}
    # The gateway names a door contact's alerts after its sensor; the world after the door.
    readers |= {f"sensor:{run.reader_id(d.door)}": f"door:{d.door}" for d in world.doors}
    readers |= {f"tracker:pw-{run.reader_id(t.name)}": f"tracker:{t.name}"
                for t in world.trackers}
    cameras = {v.camera for v in world.vehicles} | {c.camera for c in world.camera_covers} | {
        label.camera for label in world.labels}
    readers |= {f"camera:{run.reader_id(c)}": f"camera:{c}" for c in cameras}
    return lots, readers


def _site_outcome(world: World, run: RawRun) -> Outcome:
    from firmware_sim.world.runner import Alert, Outcome

    lots, readers = _names(world, run)
    # The cloud folds a door, plate or weight alert into a lot's incident by resolving it
    # with ``resolved_by = incident:<id>`` (cloud/alerts.py): the world's ``folded_into``.
    incidents = {f"incident:{row['id']}": row["subject"] for row in run.alerts}
    alerts = []
    for row in run.alerts:
        if run.site and row.get("site_id") != run.site:
            continue  # another site's (the same reader name there is another reader)
        subject = _logical(row["subject"], lots, readers)
        if subject is None:
            continue  # another run's
        resolved_by = str(row.get("resolved_by") or "")
        folded_into = (_logical(incidents[resolved_by], lots, readers) or resolved_by
                       if resolved_by in incidents else None)
        decided = _us(row["first_seen_at"]) - run.shift_us
        if decided < world.epoch_us:
            continue
        alerts.append(Alert(
            site=world.site, alert_type=row["alert_type"], subject=subject,
            raised_us=decided, decided_us=decided,
            decided_at="cloud" if row.get("rule") else "edge",
            evidence=_world_evidence(row.get("evidence") or {}),
            explanation=row.get("explanation") or "",
            updates=max(0, int(row.get("count") or 1) - 1),
            cleared_us=(_us(row["last_seen_at"]) - run.shift_us
                        if row["state"] == "resolved" else None),
            folded_into=folded_into,
            lot=lots.get(row.get("lot_id") or "")))
    cuts = [(a - run.shift_us, b - run.shift_us) for a, b in run.link_cuts]
    alarms = [(at - run.shift_us, alert_type, subject, on)
              for at, alert_type, raw, on in run.alarms
              if (subject := _logical(raw, lots, readers)) is not None]
    return Outcome(alerts=alerts, alarms=alarms, link_cuts={world.site: cuts} if cuts else {},
                   simulated_s=run.simulated_s)


def _world_evidence(evidence: dict[str, Any]) -> dict[str, Any]:
    """The gateway's incident names its departed pieces inside ``incident``
    (edge/alerting.py); the world's judge reads a piece count at the top (``pieces``)."""
    incident = evidence.get("incident")
    if "pieces" not in evidence and isinstance(incident, dict):
        count = incident.get("departed_count")
        if isinstance(count, int) and not isinstance(count, bool):
            return {**evidence, "pieces": count}
    return evidence


def _logical(subject: str, lots: dict[str, str], readers: dict[str, str]) -> str | None:
    if subject in readers:
        return readers[subject]
    kind, _, name = subject.partition(":")
    if kind == "lot":
        return f"lot:{lots[name]}" if name in lots else None
    return None if kind in ("reader", "sensor", "tracker", "camera") else subject


def _us(stamp: Any) -> int:
    moment = stamp if isinstance(stamp, datetime) else datetime.fromisoformat(str(stamp))
    return int(moment.timestamp() * US)
