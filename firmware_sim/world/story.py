"""A raw-signal story: one or more sites' worlds (model.py) and what must and must not come out
of them, in a JSON file under firmware_sim/scenarios/raw/ (docs/simulation.md).

    {"name": "slow_bleed", "description": "...", "seed": 7,
     "sites": [{ World }],
     "must": [{"alert_type": "theft.incident", "subject": "lot:A", "count": 1,
               "incident": "bleed", "within_s": 60, "pieces": 40}],
     "must_not": [{"alert_type": "theft.tag_missing", "subject": "lot:B"}]}

Subjects are logical names from the world (``lot:A``, ``reader:r2``, ``vehicle:ZZ99999``,
``sensor:cold-1``, ``tracker:coil-1``, ``camera:gate-1``, ``door:dock-1``); ``site`` narrows to
one site when a story has several. An expectation's ``alert_type`` may end in ``*``
(``theft.*``). Timing is measured from a labelled incident (a departure's ``incident``):
``within_s`` of its first piece leaving; ``when`` says whether it must be raised while the
uplink was cut (``during_link_cut``) or after. ``webhook_to`` names a financier (a site's
``financier``, the pledgee of its lots): a ``must`` then also needs a webhook about the alert
to that financier, a ``must_not`` forbids any webhook to it about what it matches.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from firmware_sim.world.model import Name, World

RAW_STORIES = Path(__file__).resolve().parent.parent / "scenarios" / "raw"


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Expect(_M):
    alert_type: Annotated[str, Field(pattern=r"^[a-z_]+(\.[a-z_]+)*(\.\*)?$|^\*$")]
    subject: Annotated[str, Field(pattern=r"^[a-z_]+:[A-Za-z0-9_.-]+$")] | None = None
    site: str | None = None
    count: int | None = Field(None, ge=0, le=1000)  # exactly this many alerts (raise..clear)
    pieces: int | None = Field(None, ge=0, le=5000)  # pieces its latest evidence counts
    incident: str | None = None  # the ground-truth label timing is measured from
    within_s: float | None = Field(None, gt=0, le=86400)
    not_before_s: float | None = Field(None, gt=0, le=86400)  # and not sooner than this
    when: Literal["any", "during_link_cut", "after_link_cut"] = "any"
    cleared: bool | None = None  # False: still active at the end; True: cleared by then
    siren: bool | None = None  # True: the gateway's own siren sounded for its subject
    # A financier (a site's ``financier``): in ``must``, it received a webhook about the
    # alert; in ``must_not``, it received none about any alert this matches. Judged where the
    # run has webhooks (the raw player's cloud), unjudged by the value-level runner.
    webhook_to: Name | None = None
    why: str = Field("", max_length=500)  # the reason, for the reader of the story

    @model_validator(mode="after")
    def _timed(self) -> Expect:
        if (self.within_s is not None or self.not_before_s is not None) and not self.incident:
            raise ValueError("within_s and not_before_s need the incident they count from")
        return self


class Story(_M):
    name: Annotated[str, Field(pattern=r"^[a-z0-9_-]{1,64}$")]
    description: str = Field("", max_length=4000)
    seed: int = Field(0, ge=0, le=2**32 - 1)
    sites: list[World] = Field(min_length=1, max_length=8)
    must: list[Expect] = Field(default_factory=list, max_length=200)
    must_not: list[Expect] = Field(default_factory=list, max_length=200)

    @model_validator(mode="after")
    def _consistent(self) -> Story:
        sites = [w.site for w in self.sites]
        if len(set(sites)) != len(sites):
            raise ValueError("site names must be unique in a story")
        incidents = {d.incident for w in self.sites for d in w.departures if d.incident}
        for e in (*self.must, *self.must_not):
            if e.incident is not None and e.incident not in incidents:
                raise ValueError(f"expectation names incident {e.incident!r}, which no "
                                 f"departure carries (known: {sorted(incidents)})")
            if e.site is not None and e.site not in sites:
                raise ValueError(f"expectation names site {e.site!r} (known: {sites})")
            financiers = sorted({w.financier for w in self.sites if w.financier})
            if e.webhook_to is not None and e.webhook_to not in financiers:
                raise ValueError(f"expectation names financier {e.webhook_to!r}, whom no "
                                 f"site's lots are pledged to (known: {financiers})")
        if not self.must and not self.must_not:
            raise ValueError("a story states what must or must not come out")
        return self


def load_story(name_or_file: str) -> Story:
    """A story by file path or by name under firmware_sim/scenarios/raw/; a bad file is
    refused with pydantic's message naming the field."""
    path = Path(name_or_file)
    if not path.exists():
        path = RAW_STORIES / f"{name_or_file}.json"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in RAW_STORIES.glob("*.json")))
        raise ValueError(f"no raw story {name_or_file!r} (known: {known})")
    text = path.read_text()
    if len(text) > 2_000_000:
        raise ValueError(f"{path.name}: larger than 2 MB")
    return Story.model_validate_json(text)


def all_stories() -> list[Story]:
    return [load_story(str(p)) for p in sorted(RAW_STORIES.glob("*.json"))]
