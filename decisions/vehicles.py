"""Which vehicles may take goods out, and when: the site's list, pushed from the cloud.

The cloud publishes the list on ``cmd/authorised_vehicles`` as an ``AuthorisedVehicles`` body; the
agent stores it (the camera pipeline reads it from the file named in its config, so a list
survives a restart). ``judge_exit`` is the decision: a plate leaving (direction ``out``) that is
not on the list, or is on it outside all of its windows, is a ``theft.unauthorized_vehicle``
candidate. Times are judged in the site's time zone.

``vehicle_authorised`` is the one answer to "may this plate take goods out now?" from every list
there is: the gate list above, the plates a lot lists, and the vehicles named by releases the
pledgee approved in the last day. Callers keep their own sources and feed the lists in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator

from decisions.alert_types import AlertType
from decisions.plate_format import normalise

ALERT_TYPE = AlertType.UNAUTHORISED_VEHICLE


class TimeWindow(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    days: list[int] = Field(default_factory=lambda: list(range(7)), description="0=Monday")
    start: time = time(0, 0)
    end: time = time(23, 59, 59)

    def covers(self, local: datetime) -> bool:
        if local.weekday() not in self.days:
            return False
        t = local.time()
        if self.start <= self.end:
            return self.start <= t <= self.end
        return t >= self.start or t <= self.end  # a window across midnight


class AuthorisedVehicle(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    plate: str
    windows: list[TimeWindow] = Field(default_factory=lambda: [TimeWindow()])
    note: str = ""

    @field_validator("plate")
    @classmethod
    def _canonical(cls, value: str) -> str:
        plate = normalise(value)
        if not plate:
            raise ValueError("plate is empty")
        return plate


class AuthorisedVehicles(BaseModel):
    """The list for one site (the body of the ``cmd/authorised_vehicles`` command)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = Field(ge=0)
    timezone: str = "UTC"
    vehicles: list[AuthorisedVehicle] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (KeyError, ValueError):  # ZoneInfoNotFoundError is a KeyError
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @classmethod
    def load(cls, path: Path) -> AuthorisedVehicles:
        return cls.model_validate_json(path.read_bytes())


@dataclass(frozen=True, slots=True)
class ExitVerdict:
    authorised: bool
    reason: str


def judge_exit(plate: str, at: datetime, vehicles: AuthorisedVehicles) -> ExitVerdict:
    """May ``plate`` take goods out at ``at`` (an aware datetime)?"""
    local = at.astimezone(ZoneInfo(vehicles.timezone))
    wanted = normalise(plate)
    entry = next((v for v in vehicles.vehicles if v.plate == wanted), None)
    if entry is None:
        return ExitVerdict(False, f"{plate} is not on the authorised list v{vehicles.version}")
    if any(w.covers(local) for w in entry.windows):
        return ExitVerdict(True, f"{plate} is authorised at {local:%a %H:%M}")
    when = f"{local:%a %H:%M} ({vehicles.timezone})"
    return ExitVerdict(False, f"{plate} is on the list but not authorised at {when}")


# How long after approval a release's named vehicle may collect the goods.
RELEASE_PICKUP = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class ApprovedRelease:
    """A release the pledgee approved, naming the vehicle that collects the goods."""

    vehicle: str
    decided_at: datetime


def vehicle_authorised(
    plate: str, at: datetime, *, gate_list: AuthorisedVehicles | None = None,
    lot_plates: Iterable[str] = (), releases: Iterable[ApprovedRelease] = (),
) -> ExitVerdict:
    """May ``plate`` take goods out at ``at`` (aware)? Listed on a lot: always; named by an
    approved release: for ``RELEASE_PICKUP`` after the approval; on the gate list: inside its
    windows. Plates compare in canonical form, so ``粤B-D12345`` is ``粤BD12345``."""
    wanted = normalise(plate)
    if any(normalise(p) == wanted for p in lot_plates):
        return ExitVerdict(True, f"{plate} is listed on a lot of the site")
    for release in releases:
        if normalise(release.vehicle) == wanted and release.decided_at > at - RELEASE_PICKUP:
            return ExitVerdict(True, f"{plate} collects a release approved at "
                                     f"{release.decided_at:%Y-%m-%d %H:%M}")
    if gate_list is not None:
        return judge_exit(plate, at, gate_list)
    return ExitVerdict(False, f"{plate} is on no authorised list")


@dataclass(frozen=True, slots=True)
class Release:
    """An approved release as the gateway holds it (``cmd/lot_releases``): up to ``pieces`` of
    ``lot`` may leave on one of ``vehicles`` between ``window_start_us`` and ``window_end_us``.
    ``pieces`` None: not stated (a cloud that sends only the released lots); no ``vehicles``:
    any vehicle the gate list authorises."""

    lot: str
    pieces: int | None
    vehicles: tuple[str, ...]
    window_start_us: int
    window_end_us: int

    def covers(self, at_us: int) -> bool:
        return self.window_start_us <= at_us <= self.window_end_us

    def names(self, plate: str) -> bool:
        wanted = normalise(plate)
        return any(normalise(v) == wanted for v in self.vehicles)


@dataclass(frozen=True, slots=True)
class ReleasePlan:
    """The body of ``cmd/lot_releases``: the released lots and what each release allows."""

    released: frozenset[str]
    releases: tuple[Release, ...] = ()
