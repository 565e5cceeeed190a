"""Correlation rules as data, and the engine that runs them: the same code at the edge (on the
gateway's own facts, when the cloud is unreachable) and in the cloud (on every gateway's).

Theory of operation. A *fact* is a small value: what happened (``kind``), to what
(``subject``: ``lot:L1``, ``reader:dock-1``, ``vehicle:ABC123``), when (µs), and attributes.
A *rule* names the fact that triggers it, the facts it reads with a window each, its outcome
(an alert of a type and severity, or a recorded movement and no alert), its explanation
template and, optionally, facts that clear its alert (auto-resolve). The engine keeps the facts
of the longest window. Fed a fact, it evaluates every rule that reads it: a new trigger is
checked against the facts before it; a new supporting fact re-checks the triggers still in
its window that have not fired. Each (rule, trigger) fires at most once. No clock, no I/O:
the caller feeds facts and acts on the decisions it gets back.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from decisions.alert_text import MESSAGES, AlertText, alert_text, placeholders

DEFAULTS_FILE = Path(__file__).with_name("rules_defaults.json")

# Alerts the gateway raises itself that are facts for correlation:
# alert type -> (fact kind when raised, fact kind when cleared).
EDGE_ALERT_FACTS: dict[str, tuple[str, str | None]] = {
    "theft.unauthorized_vehicle": ("vehicle_unauthorised", None),
    "theft.door_open_outside_hours": ("door_opened_after_hours", None),
    "theft.weight_drop": ("weight_dropped", None),
    "tamper.reader_offline": ("reader_offline", "reader_online"),
    "damage.temperature": ("temperature_excursion", "temperature_normal"),
}

FactKind = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_.:]*$", max_length=96)]


@dataclass(frozen=True, slots=True, eq=False)
class Fact:
    kind: str
    subject: str
    at_us: int
    attrs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.kind, self.subject, self.at_us)

    def describe(self) -> str:
        at = datetime.fromtimestamp(self.at_us / 1e6, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        extra = ", ".join(f"{k}={v}" for k, v in sorted(self.attrs.items()) if k != "lot")
        return f"{self.kind} {self.subject} at {at}" + (f" ({extra})" if extra else "")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Condition(_Model):
    """A fact that must (or must not) be among those read around the trigger."""

    fact: FactKind
    within_s: float | None = Field(None, gt=0)  # default: the rule's window
    same_subject: bool = False  # the trigger's subject (e.g. the same lot)


# What a rule's explanation (and its catalogue message) may name.
RULE_PARAMS = ("subject", "facts", "window_s", "rule")


class Rule(_Model):
    name: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_.-]*$", max_length=64)]
    trigger: FactKind
    window_s: float = Field(300, gt=0)
    all_of: list[Condition] = Field(default_factory=list)
    any_of: list[Condition] = Field(default_factory=list)
    none_of: list[Condition] = Field(default_factory=list)
    outcome: Literal["alert", "record"] = "alert"
    alert_type: Annotated[str, StringConstraints(pattern=r"^[a-z]+\.[a-z_]+$")] | None = None
    severity: Literal["critical", "major", "minor", "warning"] = "major"
    clear_on: list[FactKind] = Field(default_factory=list)  # same subject; resolves the alert
    explanation: Annotated[str, StringConstraints(min_length=1, max_length=1000)]
    # The catalogue message (decisions/alert_text.py) readers see in their own language; the
    # English ``explanation`` above stays what webhooks and logs carry.
    message: str | None = None

    @model_validator(mode="after")
    def _alert_has_type(self) -> Rule:
        if self.outcome == "alert" and self.alert_type is None:
            raise ValueError(f"rule {self.name}: an alert rule needs alert_type")
        try:
            self.explanation.format(subject="", facts="", window_s=0, rule="")
        except (KeyError, IndexError, ValueError) as err:
            raise ValueError(f"rule {self.name}: explanation template: {err!r} (placeholders: "
                             "{subject}, {facts}, {window_s}, {rule})") from None
        if self.message is not None:
            if self.message not in MESSAGES:
                raise ValueError(f"rule {self.name}: no message {self.message!r} in the catalogue")
            extra = set().union(*map(placeholders, MESSAGES[self.message].values())) - set(
                RULE_PARAMS)
            if extra:
                raise ValueError(f"rule {self.name}: message {self.message} needs {sorted(extra)}")
        return self

    @property
    def reads(self) -> set[str]:
        kinds = {self.trigger, *self.clear_on}
        kinds.update(c.fact for c in (*self.all_of, *self.any_of, *self.none_of))
        return kinds

    @property
    def longest_window_s(self) -> float:
        windows = [c.within_s or self.window_s for c in (*self.all_of, *self.any_of,
                                                         *self.none_of)]
        return max([self.window_s, *windows])


class RuleSet(_Model):
    version: int = Field(ge=0)
    rules: list[Rule]

    @model_validator(mode="after")
    def _unique_names(self) -> RuleSet:
        names = [r.name for r in self.rules]
        if len(names) != len(set(names)):
            raise ValueError("rule names must be unique")
        return self


def load_rule_set(data: Mapping[str, Any] | str | bytes) -> RuleSet:
    """Parse and validate a rule set (JSON text or a mapping); ValueError says what is wrong."""
    raw = json.loads(data) if isinstance(data, (str, bytes)) else data
    return RuleSet.model_validate(raw)


def default_rules() -> RuleSet:
    return load_rule_set(DEFAULTS_FILE.read_text())


@dataclass(frozen=True, slots=True)
class Decision:
    action: Literal["raise", "clear", "record"]
    rule: str
    subject: str
    at_us: int
    alert_type: str | None
    severity: str
    explanation: str
    facts: tuple[Fact, ...]
    lot: str | None = None
    message: AlertText | None = None  # the explanation as a catalogue message, when it is one

    def evidence(self) -> dict[str, Any]:
        return {"rule": self.rule, "facts": [
            {"kind": f.kind, "subject": f.subject, "at_us": f.at_us, "attrs": dict(f.attrs)}
            for f in self.facts], **(self.message.evidence() if self.message else {})}


@dataclass
class RuleEngine:
    rules: RuleSet
    _facts: deque[Fact] = field(default_factory=deque)
    _fired: set[tuple[str, tuple[str, str, int]]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._horizon_us = int(max((r.longest_window_s for r in self.rules.rules), default=0)
                               * 1e6)

    def remember(self, facts: Iterable[Fact], fired: Iterable[tuple[str, Fact]] = ()) -> None:
        """Load history without deciding anything (e.g. the cloud's stored facts)."""
        for f in sorted(facts, key=lambda f: f.at_us):
            self._facts.append(f)
        self._fired.update((rule, f.key) for rule, f in fired)

    def feed(self, fact: Fact) -> list[Decision]:
        self._insert(fact)
        decisions: list[Decision] = []
        for rule in self.rules.rules:
            if fact.kind in rule.clear_on and rule.outcome == "alert":
                cleared = alert_text("rule.cleared", fact=fact.describe())
                decisions.append(Decision(
                    "clear", rule.name, fact.subject, fact.at_us, rule.alert_type, rule.severity,
                    cleared.english(), (fact,), fact.attrs.get("lot"), cleared))
            if fact.kind == rule.trigger:
                decisions.extend(self._check(rule, fact))
            elif fact.kind in {c.fact for c in (*rule.all_of, *rule.any_of)}:
                for trigger in list(self._facts):
                    if (trigger.kind == rule.trigger
                            and 0 <= fact.at_us - trigger.at_us <= rule.window_s * 1e6):
                        decisions.extend(self._check(rule, trigger))
        self._prune(fact.at_us)
        return decisions

    def fired(self, rule: str, fact: Fact) -> bool:
        return (rule, fact.key) in self._fired

    def _insert(self, fact: Fact) -> None:
        if self._facts and fact.at_us < self._facts[-1].at_us:
            items = sorted([*self._facts, fact], key=lambda f: f.at_us)
            self._facts = deque(items)
        else:
            self._facts.append(fact)

    def _prune(self, now_us: int) -> None:
        while self._facts and self._facts[0].at_us < now_us - self._horizon_us:
            old = self._facts.popleft()
            self._fired = {k for k in self._fired if k[1] != old.key}

    def _matches(self, rule: Rule, cond: Condition, trigger: Fact) -> list[Fact]:
        within = (cond.within_s or rule.window_s) * 1e6
        return [f for f in self._facts
                if f.kind == cond.fact and abs(f.at_us - trigger.at_us) <= within
                and (not cond.same_subject or f.subject == trigger.subject)]

    def _check(self, rule: Rule, trigger: Fact) -> list[Decision]:
        if (rule.name, trigger.key) in self._fired:
            return []
        fired_by = [trigger]
        for cond in rule.all_of:
            found = self._matches(rule, cond, trigger)
            if not found:
                return []
            fired_by.append(found[-1])
        if rule.any_of:
            found = [f for c in rule.any_of for f in self._matches(rule, c, trigger)]
            if not found:
                return []
            fired_by.extend(found)
        for cond in rule.none_of:
            if self._matches(rule, cond, trigger):
                return []
        self._fired.add((rule.name, trigger.key))
        unique = {f.key: f for f in fired_by}
        facts = tuple(sorted(unique.values(), key=lambda f: f.at_us))
        params = {"subject": trigger.subject, "rule": rule.name, "window_s": f"{rule.window_s:g}",
                  "facts": "; ".join(f.describe() for f in facts)}
        text = rule.explanation.format(**params)
        message = AlertText(rule.message, params) if rule.message else None
        return [Decision("raise" if rule.outcome == "alert" else "record", rule.name,
                         trigger.subject, trigger.at_us, rule.alert_type, rule.severity, text,
                         facts, trigger.attrs.get("lot"), message)]
