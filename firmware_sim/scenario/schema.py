"""What a scenario file says: the site's lots, the scripted steps, the alerts that must and must
not appear (JSON in firmware_sim/scenarios/; see docs/alerts.md), and how the logical names in
it become one run's names, so runs against the same system do not meet."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LotSpec(_M):
    id: str
    tags: int = Field(4, ge=1, le=1000)
    authorised_vehicles: list[str] = Field(default_factory=list)


class Presence(_M):
    lot: str
    state: Literal["missing", "present", "unknown"]
    tags: int | None = None  # the lot's first N tags; default all


class Plate(_M):
    plate: str
    camera: str = "gate-1"
    direction: Literal["in", "out"] | None = "out"


class Reader(_M):
    reader: str
    online: bool
    reason: str = "no answer"
    lots: list[str] = Field(default_factory=list)  # lots behind it: their tags become unknown


class Temperature(_M):
    sensor: str
    lot: str | None = None
    celsius: float
    max_c: float = 25.0


class Release(_M):
    """The real paper trail: receipt issued, pledged, release requested and approved."""

    lot: str
    vehicle: str
    tags: int = Field(2, ge=1)


class Gps(_M):
    """Trackers replayed through the gateway's real tracker decisions (edge/trackers) against
    the demo site's fences: ``drive_out`` takes a coil out of its pledge zone and off site,
    ``parked_at_edge`` leaves one on the zone's edge under 5-30 m of drifting GPS error."""

    trackers: list[Literal["drive_out", "parked_at_edge"]]
    duration_s: float = Field(1800, gt=0)  # of GPS time, replayed at once


class Camera(_M):
    """A camera covered for ``covered_s`` of camera time, rendered by the camera simulator and
    judged by the gateway's real blindness check (edge/vision/tamper), replayed at once."""

    camera: str = "gate-1"
    covered_s: float = Field(20, gt=0)
    fps: float = Field(2, gt=0, le=30)


class Step(_M):
    at_s: float = Field(ge=0)
    presence: Presence | None = None
    plate: Plate | None = None
    reader: Reader | None = None
    temperature: Temperature | None = None
    door_after_hours: str | None = None  # door name
    network: Literal["down", "up"] | None = None
    release: Release | None = None
    gps: Gps | None = None
    camera: Camera | None = None
    alert: dict[str, Any] | None = None  # any AlertBody the gateway raises


class Expected(_M):
    alert_type: str
    subject: str | None = None  # logical (lot:L1); matched after the run's renaming


class Scenario(_M):
    name: Annotated[str, Field(pattern=r"^[a-z0-9_-]+$")]
    description: str = ""
    lots: list[LotSpec]
    steps: list[Step]
    must: list[Expected] = Field(default_factory=list)
    must_not: list[Expected] = Field(default_factory=list)
    settle_s: float = Field(3.0, ge=0)
    requires: list[Literal["vision", "receipts"]] = Field(default_factory=list)


def load_scenario(name_or_file: str) -> Scenario:
    path = Path(name_or_file)
    if not path.exists():
        path = SCENARIOS / f"{name_or_file}.json"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in SCENARIOS.glob("*.json")))
        raise ValueError(f"no scenario {name_or_file!r} (known: {known})")
    return Scenario.model_validate_json(path.read_text())



@dataclass(frozen=True)
class RunNames:
    """``lot:L1`` in a scenario is ``lot:L1-<run>`` in the system; trackers and cameras too."""

    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:6])

    def lot_id(self, logical: str) -> str:
        return f"{logical}-{self.run_id}"

    def subject(self, logical: str) -> str:
        kind, _, name = logical.partition(":")
        if kind == "lot":
            return f"lot:{self.lot_id(name)}"
        if kind in ("tracker", "camera"):
            return f"{kind}:{name}-{self.run_id}"
        return logical

    def epcs(self, lot: LotSpec) -> list[str]:
        return [f"5057{self.run_id.upper()}{lot.id.encode().hex().upper()[:8]:0>8}{i:06X}"
                for i in range(lot.tags)]
