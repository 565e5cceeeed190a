"""May a receipt be issued for a lot now? A pure check over one physical verification.

A receipt is only worth what its evidence proves, so it is issued only when the goods are seen
present: enough of the lot's tags (within a tolerance of the declared pieces, since tags fail
and goods are counted in pieces), none of them outside the lot's fence, and no open theft alert
on the lot. The check returns everything that is missing at once, so the operator fixes the
lot in one pass rather than one 409 at a time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LotVerification:
    """What was observed about a lot at one moment (``lot_verification.py`` reads the tables)."""

    lot_id: str
    declared_pieces: int
    expected_tags: frozenset[str]
    present_tags: frozenset[str]  # lot tags seen present by a reader
    outside_fence_tags: frozenset[str]  # lot tags last seen outside the lot's fence
    fence: str | None
    open_theft_alerts: tuple[str, ...]  # "theft.tag_missing on lot:LOT-7", ...
    verified_at_us: int


@dataclass(frozen=True, slots=True)
class IssueCheck:
    counted: int
    tolerance: int
    missing: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.missing


def tolerance_pieces(declared_pieces: int, tolerance_ratio: float) -> int:
    """How far the tag count may stray from the declared pieces (rounded up, as a count)."""
    return math.ceil(declared_pieces * tolerance_ratio - 1e-9)


def check_issue(verification: LotVerification, tolerance_ratio: float) -> IssueCheck:
    if not 0 <= tolerance_ratio < 1:
        raise ValueError(f"tolerance ratio {tolerance_ratio} must be in [0, 1)")
    v = verification
    missing: list[str] = []
    counted = len(v.present_tags & v.expected_tags)
    tolerance = tolerance_pieces(v.declared_pieces, tolerance_ratio)
    if v.declared_pieces <= 0:
        missing.append("the lot declares no pieces")
    if not v.expected_tags:
        missing.append("the lot has no tags registered")
    if abs(counted - v.declared_pieces) > tolerance:
        missing.append(
            f"{counted} of the lot's tags are present; {v.declared_pieces} pieces are declared "
            f"(tolerance ±{tolerance})"
        )
    if v.fence is None:
        missing.append("the lot has no geofence to check the goods against")
    outside = sorted(v.outside_fence_tags & v.expected_tags)
    if outside:
        shown = ", ".join(outside[:5]) + (" …" if len(outside) > 5 else "")
        missing.append(f"{len(outside)} tags are outside fence {v.fence}: {shown}")
    missing.extend(f"open theft alert: {alert}" for alert in v.open_theft_alerts)
    return IssueCheck(counted=counted, tolerance=tolerance, missing=tuple(missing))
