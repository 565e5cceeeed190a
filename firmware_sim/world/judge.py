"""The judge of a raw-signal story: the alerts a run produced against what must and must not come
out, with the ground truth's timing (time to alert per labelled incident), and precision and
recall over stories. Pure.

Scoring: each ``must`` is a positive (found or missed); each alert matching a ``must_not`` is a
false alarm. Thefts are scored on the ground truth too: a labelled theft incident is detected
when a ``theft.*`` alert on its lot is raised at or after the incident started (recall); a
``theft.*`` alert on a lot with no theft under way is a false alarm (precision). An expectation
with ``webhook_to`` is judged on what that financier received too (a webhook it must not get is
a false alarm); a run without webhooks (the value-level runner) lists it as unjudged.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass, field
from typing import Any

from firmware_sim.world.runner import Alert, Outcome, Webhook, run_worlds
from firmware_sim.world.story import Expect, Story

US = 1_000_000


@dataclass
class Verdict:
    story: str
    found: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # each with why it failed
    forbidden_seen: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)  # alerts no expectation names
    time_to_alert_s: dict[str, float | None] = field(default_factory=dict)  # incident -> s
    unjudged: list[str] = field(default_factory=list)  # webhook checks a run without webhooks
    alarms: int = 0
    signals: int = 0

    @property
    def passed(self) -> bool:
        return not self.missing and not self.forbidden_seen

    def as_dict(self) -> dict[str, Any]:
        return {"story": self.story, "passed": self.passed, "found": self.found,
                "missing": self.missing, "forbidden_seen": self.forbidden_seen,
                "other": self.other, "time_to_alert_s": self.time_to_alert_s,
                **({"unjudged": self.unjudged} if self.unjudged else {})}


def _label(e: Expect) -> str:
    return (f"{e.alert_type} {e.subject or '*'}" + (f"@{e.site}" if e.site else "")
            + (f" -> {e.webhook_to}" if e.webhook_to else ""))


def matches(e: Expect, a: Alert | Webhook) -> bool:
    return (fnmatch.fnmatchcase(a.alert_type, e.alert_type)
            and (e.subject is None or a.subject == e.subject)
            and (e.site is None or a.site == e.site))


def _incident_starts(story: Story) -> dict[str, tuple[str, str, int]]:
    """incident -> (site, lot, first piece leaving, simulated Unix µs)."""
    starts: dict[str, tuple[str, str, int]] = {}
    for w in story.sites:
        for d in w.departures:
            if d.incident and (d.incident not in starts
                               or w.at_us(d.at_s) < starts[d.incident][2]):
                starts[d.incident] = (w.site, d.lot, w.at_us(d.at_s))
    return starts


def _in_cut(outcome: Outcome, site: str, at_us: int) -> bool:
    return any(a <= at_us < b for a, b in outcome.link_cuts.get(site, []))


def judge(story: Story, outcome: Outcome) -> Verdict:
    v = Verdict(story.name, alarms=len(outcome.alarms), signals=outcome.signals)
    starts = _incident_starts(story)
    for e in story.must:
        hits = [a for a in outcome.alerts if matches(e, a)]
        problems = []
        if e.count is not None and len(hits) != e.count:
            problems.append(f"{len(hits)} alerts, not {e.count}")
        elif not hits:
            problems.append("none raised")
        if hits and e.pieces is not None and not any(a.pieces == e.pieces for a in hits):
            problems.append(f"pieces {[a.pieces for a in hits]}, not {e.pieces}")
        if hits and e.incident is not None:
            _site, _lot, t0 = starts[e.incident]
            said = [t for t in (a.said_since(t0) for a in hits) if t is not None]
            if not said:
                problems.append(f"none at or after incident {e.incident}")
            elif e.within_s is not None:
                first = min(said)
                if first - t0 > e.within_s * US:
                    problems.append(f"raised {(first - t0) / US:.0f} s after {e.incident}, "
                                    f"not within {e.within_s:g} s")
            if said and e.not_before_s is not None:
                first = min(said)
                if first - t0 < e.not_before_s * US:
                    problems.append(f"raised {(first - t0) / US:.0f} s after {e.incident}, "
                                    f"before {e.not_before_s:g} s")
        if hits and e.cleared is not None:
            state = [a.cleared_us is not None for a in hits]
            if e.cleared and not all(state):
                problems.append("still active at the end")
            if not e.cleared and any(state):
                problems.append("cleared before the end")
        if e.siren is not None:
            sounded = any(on and (e.subject is None or subj == e.subject)
                          for _at, _type, subj, on in outcome.alarms)
            if sounded != e.siren:
                problems.append("the siren " + ("never sounded" if e.siren else "sounded"))
        if e.webhook_to is not None and outcome.webhooks is None:
            v.unjudged.append(_label(e))
        elif e.webhook_to is not None and hits:
            heard = [w for w in outcome.webhooks or ()
                     if w.financier == e.webhook_to and matches(e, w)]
            if not heard:
                problems.append(f"no webhook to {e.webhook_to}")
        if hits and e.when != "any":
            during = [a for a in hits if _in_cut(outcome, a.site, a.decided_us)]
            if e.when == "during_link_cut" and not during:
                problems.append("not decided during the link cut")
            if e.when == "after_link_cut" and during:
                problems.append("decided during the link cut")
        (v.missing if problems else v.found).append(
            _label(e) + (f": {'; '.join(problems)}" if problems else ""))
    # A door, plate or weight alert the cloud folded into a lot's incident is that incident's
    # evidence, resolved by it (docs/alerts.md): not an alert of its own.
    standing = [a for a in outcome.alerts if a.folded_into is None]
    for e in story.must_not:
        if e.webhook_to is not None:  # what this financier must not hear about
            if outcome.webhooks is None:
                v.unjudged.append(_label(e))
            for w in outcome.webhooks or ():
                if w.financier == e.webhook_to and matches(e, w):
                    v.forbidden_seen.append(f"{w.event} to {w.financier}: {w.alert_type} "
                                            f"{w.subject}@{w.site}"
                                            + (f" ({e.why})" if e.why else ""))
            continue
        for a in standing:
            if matches(e, a):
                v.forbidden_seen.append(a.describe() + (f" ({e.why})" if e.why else ""))
    named = (*story.must, *(e for e in story.must_not if e.webhook_to is None))
    v.other = [a.describe() for a in standing if not any(matches(e, a) for e in named)]
    for incident, (site, lot, t0) in starts.items():
        kinds = {d.kind for w in story.sites for d in w.departures if d.incident == incident}
        if "theft" not in kinds:
            continue
        said = [t for a in outcome.alerts if a.site == site
                and a.alert_type.startswith("theft.") and a.subject == f"lot:{lot}"
                for t in [a.said_since(t0)] if t is not None]
        v.time_to_alert_s[incident] = round((min(said) - t0) / US, 1) if said else None
    return v


def run_story(story: Story, *, tick_s: float = 1.0) -> tuple[Verdict, Outcome]:
    outcome = run_worlds(story.sites, story.seed, tick_s=tick_s)
    return judge(story, outcome), outcome


def summary(verdicts: list[Verdict]) -> dict[str, Any]:
    tp = sum(len(v.found) for v in verdicts)
    fn = sum(len(v.missing) for v in verdicts)
    fp = sum(len(v.forbidden_seen) for v in verdicts)
    times = sorted(t for v in verdicts for t in v.time_to_alert_s.values() if t is not None)
    incidents = sum(len(v.time_to_alert_s) for v in verdicts)
    p95 = times[max(0, math.ceil(0.95 * len(times)) - 1)] if times else None
    return {
        "stories": len(verdicts),
        "passed": sum(v.passed for v in verdicts),
        "failed": [v.story for v in verdicts if not v.passed],
        "precision": round(tp / (tp + fp), 3) if tp + fp else 1.0,
        "recall": round(tp / (tp + fn), 3) if tp + fn else 1.0,
        "thefts_detected": f"{len(times)}/{incidents}",
        "time_to_alert_p95_s": p95,
    }
