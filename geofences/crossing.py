"""The geofence crossing detector: GPS fixes in, enter / exit / dwell decisions out.

Theory of operation. Each tracker's fixes first pass a gate, in fix-time order: a fix with the
same time as the last accepted one is a duplicate, an older one is out of order, one whose
accuracy is worse than ``max_accuracy_m`` or that implies a speed above ``max_speed_mps`` from
the last accepted fix is rejected; every rejection is counted by reason. (Three speed rejections
in a row re-anchor the tracker on the newest fix: then the old anchor was the bad one.)

An accepted fix is *inside* a fence when it lies inside by more than its margin (its reported
accuracy times ``accuracy_factor``, at least ``min_margin_m``), *outside* when it lies outside
by more than that, and in the *band* otherwise. Per (tracker, fence) the detector keeps a
confirmed state and a pending run:

    relation == state or band    -> the pending run is dropped (the state holds)
    relation != state            -> the run grows (or starts, at this fix); when it has
                                    ``confirm_fixes`` consecutive fixes spanning
                                    ``confirm_seconds``, the state flips and geofence_enter /
                                    geofence_exit is decided by this fix

So a crossing needs consecutive fixes clearly beyond the fence for a while: GPS error wanders
across a boundary for tens of seconds at a time, and a band fix breaks the run.
    inside for ``dwell_seconds`` -> geofence_dwell, once per stay

A tracker's first fixes establish its state silently: a crossing is a change, and a tracker
switched on inside its yard has not entered it. A fence outside its active schedule holds its
state (its relation counts as band).

Everything runs on numpy arrays, a batch at a time, so that the cloud evaluates millions of
fixes per second; the edge feeds the same code a few fixes at a time. Within a batch a
tracker's fixes are taken in fix-time order, one "round" per fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from geofences.fences import FenceSet
from geofences.index import BAND, INSIDE, OUTSIDE, FenceIndex

CrossingKind = Literal["geofence_enter", "geofence_exit", "geofence_dwell"]
RejectReason = Literal["duplicate", "out_of_order", "bad_accuracy", "impossible_speed"]

_UNKNOWN = np.int8(0)
_NEVER = np.iinfo(np.int64).min
_SPEED_REJECTS_BEFORE_REANCHOR = 3


@dataclass(frozen=True, slots=True)
class CrossingRules:
    min_margin_m: float = 5.0
    # Android and OwnTracks report accuracy as a 68 % radius; twice that is beyond the noise.
    accuracy_factor: float = 2.0
    confirm_fixes: int = 3
    confirm_seconds: float = 30.0  # GPS error wanders for tens of seconds; outlast it
    dwell_seconds: float | None = None
    max_accuracy_m: float = 50.0
    max_speed_mps: float = 70.0  # 252 km/h: nothing in a bonded warehouse's life goes faster

    def __post_init__(self) -> None:
        if self.confirm_fixes < 1:
            raise ValueError("confirm_fixes must be at least 1")
        if not 0 <= self.min_margin_m <= self.max_accuracy_m:
            raise ValueError("min_margin_m must lie between 0 and max_accuracy_m")
        if self.confirm_seconds < 0 or (self.dwell_seconds is not None and self.dwell_seconds <= 0):
            raise ValueError("confirm_seconds must be >= 0 and dwell_seconds > 0")
        if self.max_speed_mps <= 0 or self.accuracy_factor <= 0:
            raise ValueError("max_speed_mps and accuracy_factor must be > 0")

    @property
    def max_margin_m(self) -> float:
        return max(self.accuracy_factor * self.max_accuracy_m, self.min_margin_m)

    def margin_m(self, accuracy_m: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """How far beyond a fence a fix must lie to count; NaN accuracy gets the minimum."""
        return np.fmax(accuracy_m * self.accuracy_factor, self.min_margin_m)


@dataclass(frozen=True, slots=True)
class Fix:
    """One GPS position of one tracker, as the tracker reported it."""

    tracker: str
    t_us: int  # fix time (the tracker's GPS time), microseconds since the Unix epoch
    lon: float
    lat: float
    accuracy_m: float | None = None  # None when the device does not report it (JT/T 808)


@dataclass(frozen=True, slots=True)
class GeofenceCrossing:
    kind: CrossingKind
    tracker: str
    fence_id: str
    lots: tuple[str, ...]
    fix: Fix  # the fix that decided it
    run_started_us: int  # time of the first fix of the run that confirmed it (enter time for dwell)
    run_fixes: int


@dataclass
class RejectCounts:
    accepted: int = 0
    duplicate: int = 0
    out_of_order: int = 0
    bad_accuracy: int = 0
    impossible_speed: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "accepted": self.accepted,
            "duplicate": self.duplicate,
            "out_of_order": self.out_of_order,
            "bad_accuracy": self.bad_accuracy,
            "impossible_speed": self.impossible_speed,
        }


@dataclass
class _PairTable:
    """State per (tracker, fence) that differs from 'outside, nothing pending', sorted by key."""

    key: npt.NDArray[np.int64] = field(default_factory=lambda: np.empty(0, np.int64))
    state: npt.NDArray[np.int8] = field(default_factory=lambda: np.empty(0, np.int8))
    pending: npt.NDArray[np.int8] = field(default_factory=lambda: np.empty(0, np.int8))
    run: npt.NDArray[np.int32] = field(default_factory=lambda: np.empty(0, np.int32))
    run_t0: npt.NDArray[np.int64] = field(default_factory=lambda: np.empty(0, np.int64))
    since: npt.NDArray[np.int64] = field(default_factory=lambda: np.empty(0, np.int64))
    dwelt: npt.NDArray[np.bool_] = field(default_factory=lambda: np.empty(0, np.bool_))

    COLUMNS = ("key", "state", "pending", "run", "run_t0", "since", "dwelt")


class CrossingDetector:
    def __init__(self, fences: FenceSet, rules: CrossingRules | None = None) -> None:
        self.rules = rules or CrossingRules()
        self.fences = fences
        self._index = FenceIndex(
            [f.area for f in fences.fences],
            [f.outline for f in fences.fences],
            max_margin_m=self.rules.max_margin_m,
        )
        self._fence_count = np.int64(len(fences.fences))
        self._scheduled = [i for i, f in enumerate(fences.fences) if f.schedule is not None]
        self._tracker_ids: list[str] = []
        self._tracker_no: dict[str, int] = {}
        self._last_t = np.empty(0, np.int64)
        self._last_x = np.empty(0, np.float64)
        self._last_y = np.empty(0, np.float64)
        self._speed_rejects = np.empty(0, np.int32)
        self._round_pos = np.empty(0, np.int64)  # scratch: tracker -> row in the current round
        self._pairs = _PairTable()
        self.counts = RejectCounts()

    # -- trackers ---------------------------------------------------------------------------

    def tracker_numbers(self, trackers: Sequence[str]) -> npt.NDArray[np.int64]:
        """Dense numbers for tracker ids, registering new ones (for feeding arrays)."""
        numbers = self._tracker_no
        out = np.empty(len(trackers), np.int64)
        for i, tracker in enumerate(trackers):
            no = numbers.get(tracker)
            if no is None:
                no = numbers[tracker] = len(self._tracker_ids)
                self._tracker_ids.append(tracker)
            out[i] = no
        self._grow(len(self._tracker_ids))
        return out

    def _grow(self, n: int) -> None:
        have = len(self._last_t)
        if n <= have:
            return
        extra = max(n - have, have)
        self._last_t = np.concatenate([self._last_t, np.full(extra, _NEVER, np.int64)])
        self._last_x = np.concatenate([self._last_x, np.zeros(extra)])
        self._last_y = np.concatenate([self._last_y, np.zeros(extra)])
        self._speed_rejects = np.concatenate([self._speed_rejects, np.zeros(extra, np.int32)])
        self._round_pos = np.full(len(self._last_t), -1, np.int64)

    def state_of(self, tracker: str, fence_id: str) -> Literal["inside", "outside", "unknown"]:
        no = self._tracker_no.get(tracker)
        if no is None or self._last_t[no] == _NEVER:
            return "unknown"
        fence_no = next(i for i, f in enumerate(self.fences.fences) if f.id == fence_id)
        key = np.int64(no) * self._fence_count + fence_no
        pos = int(np.searchsorted(self._pairs.key, key))
        if pos < len(self._pairs.key) and self._pairs.key[pos] == key:
            return {1: "inside", -1: "outside", 0: "unknown"}[int(self._pairs.state[pos])]  # type: ignore[return-value]
        return "outside"

    def last_fix_us(self, tracker: str) -> int | None:
        no = self._tracker_no.get(tracker)
        return None if no is None or self._last_t[no] == _NEVER else int(self._last_t[no])

    # -- feeding ----------------------------------------------------------------------------

    def feed(self, fixes: Sequence[Fix]) -> list[GeofenceCrossing]:
        if not fixes:
            return []
        numbers = self.tracker_numbers([f.tracker for f in fixes])
        crossings = self.feed_arrays(
            numbers,
            np.fromiter((f.t_us for f in fixes), np.int64, len(fixes)),
            np.fromiter((f.lon for f in fixes), np.float64, len(fixes)),
            np.fromiter((f.lat for f in fixes), np.float64, len(fixes)),
            np.fromiter(
                (np.nan if f.accuracy_m is None else f.accuracy_m for f in fixes),
                np.float64,
                len(fixes),
            ),
        )
        return [
            self._crossing(kind, fence, fixes[row], t0, n) for kind, fence, row, t0, n in crossings
        ]

    def feed_arrays(
        self,
        tracker: npt.NDArray[np.int64],
        t_us: npt.NDArray[np.int64],
        lon: npt.NDArray[np.float64],
        lat: npt.NDArray[np.float64],
        accuracy_m: npt.NDArray[np.float64],
    ) -> list[tuple[CrossingKind, int, int, int, int]]:
        """Feed a batch; returns (kind, fence number, batch row, run start, run fixes) tuples.

        ``tracker`` holds numbers from :meth:`tracker_numbers`; ``accuracy_m`` is NaN where
        unknown. Rows of one tracker are taken in fix-time order.
        """
        x, y = self.fences.projection.to_xy_arrays(lon, lat)
        n = len(tracker)
        out: list[tuple[CrossingKind, int, int, int, int]] = []
        per_tracker = np.bincount(tracker, minlength=1)
        if per_tracker.max(initial=0) <= 1:
            self._round(
                rows=np.arange(n, dtype=np.int64),
                tr=tracker,
                t=t_us,
                x=x,
                y=y,
                acc=accuracy_m,
                out=out,
            )
            return out
        order = np.lexsort((t_us, tracker))
        sorted_tr = tracker[order]
        group_start = np.flatnonzero(np.r_[True, sorted_tr[1:] != sorted_tr[:-1]])
        sizes = np.diff(np.r_[group_start, n])
        rank = np.arange(n) - np.repeat(group_start, sizes)
        for r in range(int(rank.max()) + 1):
            rows = order[rank == r]
            self._round(
                rows=rows,
                tr=tracker[rows],
                t=t_us[rows],
                x=x[rows],
                y=y[rows],
                acc=accuracy_m[rows],
                out=out,
            )
        return out

    # -- one round: each tracker at most once ------------------------------------------------

    def _round(
        self,
        *,
        rows: npt.NDArray[np.int64],
        tr: npt.NDArray[np.int64],
        t: npt.NDArray[np.int64],
        x: npt.NDArray[np.float64],
        y: npt.NDArray[np.float64],
        acc: npt.NDArray[np.float64],
        out: list[tuple[CrossingKind, int, int, int, int]],
    ) -> None:
        rules = self.rules
        last_t = self._last_t[tr]
        seen = last_t != _NEVER
        duplicate = seen & (t == last_t)
        out_of_order = seen & (t < last_t)
        bad_accuracy = ~(duplicate | out_of_order) & (acc > rules.max_accuracy_m)
        candidate = ~(duplicate | out_of_order | bad_accuracy)
        dt_s = np.where(candidate & seen, (t - last_t) / 1e6, 1.0)
        moved = np.hypot(x - self._last_x[tr], y - self._last_y[tr])
        margin = rules.margin_m(acc)
        allowance = rules.max_speed_mps * dt_s + margin  # what the fix's own error explains
        too_fast = candidate & seen & (moved > allowance)
        streak = np.where(too_fast, self._speed_rejects[tr] + 1, 0)
        reanchor = too_fast & (streak >= _SPEED_REJECTS_BEFORE_REANCHOR)
        impossible = too_fast & ~reanchor
        accepted = candidate & ~impossible
        self._speed_rejects[tr] = np.where(reanchor, 0, streak)

        counts = self.counts
        counts.duplicate += int(duplicate.sum())
        counts.out_of_order += int(out_of_order.sum())
        counts.bad_accuracy += int(bad_accuracy.sum())
        counts.impossible_speed += int(impossible.sum())
        n_accepted = int(accepted.sum())
        counts.accepted += n_accepted
        if n_accepted == 0:
            return
        if n_accepted < len(tr):
            rows, tr, t, x, y, margin, seen = (
                a[accepted] for a in (rows, tr, t, x, y, margin, seen)
            )
        self._last_t[tr] = t
        self._last_x[tr] = x
        self._last_y[tr] = y

        found = self._index.classify(x, y, margin)
        relation = found.relation
        if self._scheduled:
            now = int(t.max())
            closed = [i for i in self._scheduled if not self.fences.fences[i].is_active(now)]
            if closed:
                relation = np.where(np.isin(found.fence, closed), BAND, relation)
        self._advance(
            rows=rows,
            tr=tr,
            t=t,
            seen=seen,
            cand_pos=found.position,
            cand_fence=found.fence,
            cand_rel=relation,
            out=out,
        )

    def _advance(
        self,
        *,
        rows: npt.NDArray[np.int64],
        tr: npt.NDArray[np.int64],
        t: npt.NDArray[np.int64],
        seen: npt.NDArray[np.bool_],
        cand_pos: npt.NDArray[np.int64],
        cand_fence: npt.NDArray[np.int64],
        cand_rel: npt.NDArray[np.int8],
        out: list[tuple[CrossingKind, int, int, int, int]],
    ) -> None:
        rules = self.rules
        table = self._pairs
        nf = self._fence_count
        cand_keys = tr[cand_pos] * nf + cand_fence
        if len(table.key):
            slot = np.minimum(np.searchsorted(table.key, cand_keys), len(table.key) - 1)
            known = table.key[slot] == cand_keys
        else:
            slot = np.zeros(len(cand_keys), np.int64)
            known = np.zeros(len(cand_keys), np.bool_)
        # Pairs with remembered state for these trackers that the index did not list: the
        # tracker is now outside them by more than any margin.
        listed = np.zeros(len(table.key), np.bool_)
        listed[slot[known]] = True
        round_pos = self._round_pos
        round_pos[tr] = np.arange(len(tr))
        table_pos = round_pos[table.key // nf]
        round_pos[tr] = -1
        held = np.flatnonzero((table_pos >= 0) & ~listed)
        keys = np.concatenate([cand_keys, table.key[held]])
        pos = np.concatenate([cand_pos, table_pos[held]])
        rel = np.concatenate([cand_rel, np.full(len(held), OUTSIDE, np.int8)])
        exists = np.concatenate([known, np.ones(len(held), np.bool_)])
        es = np.concatenate([slot[known], held])

        default_state = np.where(seen[pos], OUTSIDE, _UNKNOWN).astype(np.int8)
        state = default_state.copy()
        state[exists] = table.state[es]
        pending = np.zeros(len(keys), np.int8)
        pending[exists] = table.pending[es]
        run = np.zeros(len(keys), np.int32)
        run[exists] = table.run[es]
        run_t0 = np.zeros(len(keys), np.int64)
        run_t0[exists] = table.run_t0[es]
        since = np.zeros(len(keys), np.int64)
        since[exists] = table.since[es]
        dwelt = np.zeros(len(keys), np.bool_)
        dwelt[exists] = table.dwelt[es]
        tt = t[pos]

        establish = (state == _UNKNOWN) & (rel != BAND)
        state[establish] = rel[establish]
        since[establish & (rel == INSIDE)] = tt[establish & (rel == INSIDE)]

        moving = ~establish & (rel != BAND) & (rel != state) & (state != _UNKNOWN)
        pending[~moving] = 0
        run[~moving] = 0
        continues = moving & (pending == rel)
        starts = moving & ~continues
        pending[starts] = rel[starts]
        run[starts] = 1
        run_t0[starts] = tt[starts]
        run[continues] += 1
        confirm_us = int(rules.confirm_seconds * 1e6)
        flip = moving & (run >= rules.confirm_fixes) & (tt - run_t0 >= confirm_us)
        flip_idx = np.flatnonzero(flip)
        fence_no = keys % nf
        for i in flip_idx:
            kind: CrossingKind = "geofence_enter" if rel[i] == INSIDE else "geofence_exit"
            out.append((kind, int(fence_no[i]), int(rows[pos[i]]), int(run_t0[i]), int(run[i])))
        state[flip] = rel[flip]
        entered = flip & (rel == INSIDE)
        since[entered] = tt[entered]
        dwelt[flip] = False
        pending[flip] = 0
        run[flip] = 0

        if rules.dwell_seconds is not None:
            dwell = (state == INSIDE) & ~dwelt & (tt - since >= int(rules.dwell_seconds * 1e6))
            for i in np.flatnonzero(dwell):
                out.append(
                    ("geofence_dwell", int(fence_no[i]), int(rows[pos[i]]), int(since[i]), 0)
                )
            dwelt |= dwell

        # Write back: update rows that exist, insert new non-quiescent rows, drop quiescent ones.
        quiet = (state == OUTSIDE) & (pending == 0)
        table.state[es] = state[exists]
        table.pending[es] = pending[exists]
        table.run[es] = run[exists]
        table.run_t0[es] = run_t0[exists]
        table.since[es] = since[exists]
        table.dwelt[es] = dwelt[exists]
        drop = es[quiet[exists]]
        new = ~exists & ~quiet
        if drop.size or new.any():
            keep = np.ones(len(table.key), np.bool_)
            keep[drop] = False
            fresh = {
                "key": keys[new],
                "state": state[new],
                "pending": pending[new],
                "run": run[new],
                "run_t0": run_t0[new],
                "since": since[new],
                "dwelt": dwelt[new],
            }
            merged = {c: np.concatenate([getattr(table, c)[keep], fresh[c]]) for c in table.COLUMNS}
            order = np.argsort(merged["key"], kind="stable")
            for column in table.COLUMNS:
                setattr(table, column, merged[column][order])

    def _crossing(
        self, kind: CrossingKind, fence_no: int, fix: Fix, run_started_us: int, run_fixes: int
    ) -> GeofenceCrossing:
        fence = self.fences.fences[fence_no]
        return GeofenceCrossing(
            kind=kind,
            tracker=fix.tracker,
            fence_id=fence.id,
            lots=fence.lots,
            fix=fix,
            run_started_us=run_started_us,
            run_fixes=run_fixes,
        )


def carry_over(old: CrossingDetector, fences: FenceSet) -> CrossingDetector:
    """A detector for new fences that keeps the old one's trackers and their state for every
    fence id present in both, so a fence update neither forgets a tracker inside a fence nor
    invents crossings. Pending runs are kept too; fences that are new start from silence."""
    new = CrossingDetector(fences, old.rules)
    new._tracker_ids = list(old._tracker_ids)
    new._tracker_no = dict(old._tracker_no)
    new._last_t = old._last_t.copy()
    new._last_x, new._last_y = _reproject(old, fences, old._last_x, old._last_y)
    new._speed_rejects = old._speed_rejects.copy()
    new._round_pos = old._round_pos.copy()
    new.counts = old.counts
    new_no = {f.id: i for i, f in enumerate(fences.fences)}
    remap = np.array([new_no.get(f.id, -1) for f in old.fences.fences], dtype=np.int64)
    table = old._pairs
    old_nf = old._fence_count
    fence = remap[table.key % old_nf] if len(table.key) else np.empty(0, np.int64)
    keep = fence >= 0
    keys = (table.key[keep] // old_nf) * new._fence_count + fence[keep]
    order = np.argsort(keys, kind="stable")
    for column in _PairTable.COLUMNS:
        values = keys if column == "key" else getattr(table, column)[keep]
        setattr(new._pairs, column, values[order])
    return new


def _reproject(
    old: CrossingDetector,
    fences: FenceSet,
    x: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Last positions in the new fences' projection (the site's centre may have moved)."""
    lon, lat = old.fences.projection.to_lonlat_arrays(x, y)
    return fences.projection.to_xy_arrays(lon, lat)
