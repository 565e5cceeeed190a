"""Which tags of which lot are present, missing or unknown: a pure state machine.

Theory of operation: every expected tag starts ``unknown``. A read, at any antenna of any
reader, makes it ``present``. A present tag becomes ``missing`` (a ``tag_departed``) only when
two things hold after its last read:

- its window has passed: its own adaptive window (smoothing.py: a multiple of the mean gap
  between its reads), never shorter than the lot's move window (a forklift trip between two
  antennas of the lot's zone, whatever the read rate), and
- the reader that last read it proved it was watching: it completed at least
  ``policy.proof_cycles`` read cycles since that read (an inventory round that ended, whether
  or not the tag answered: `reader_cycle`), the last of them after the window's end.

A tag whose window has passed without that proof (its reader stopped cycling: power, network,
a crashed reader still answering keepalives) becomes ``unknown``, never ``missing``, whatever
the adapter's stale timer says; once the reader proves the rest, it goes on to ``missing``. A
reader reported offline makes its present tags unknown at once. A missing tag stays missing
until it is read (``tag_returned``): a reader going down proves nothing about a tag already
proven gone. Time is passed in (microseconds, in the gateway's clock), so tests drive it
without sleeping.

Lots name their tags by an explicit EPC list, by GS1 id patterns (epc.py), or both. A pattern
member becomes a tracked tag on its first read; members of a bounded pattern never read at all
are counted (``unknown`` during the lot's first window, ``missing`` after it) but have no EPC to
report individually. Reads of tags in no lot are counted per EPC (``unexpected``), never
dropped silently.

Hot path: `observe_rows` costs one dictionary lookup and a few attribute updates per read;
decoding and pattern matching happen once per distinct EPC. The proof costs reads nothing:
each reader keeps the times of its last N + 1 cycles, and a tick asks, only for a tag past its
window, whether the oldest of them ended after the tag's last read.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from contract import TagObservation
from contract.messages import PresenceState
from edge.rfid.epc import EpcDecoder, Gs1Pattern
from edge.rfid.reader import ReaderCycle
from edge.rfid.smoothing import GAP_AVERAGE_SPAN, SmoothingPolicy

PresenceEvent = Literal["tag_departed", "tag_returned", "tag_seen", "tag_unknown"]
TagRow = tuple[str, int, int | None, int]  # epc, antenna, rssi_cdbm, observed_at_us
# One tag in a reader's aggregated report (LLRP TagReportData: FirstSeenTimestamp,
# LastSeenTimestamp, TagSeenCount): epc, antenna, peak rssi_cdbm, first, last, seen count.
SeenRow = tuple[str, int, int | None, int, int, int]

# (1 - 1/span) ** m: the weight left to the old mean after m equal gaps (observe_seen).
_KEEPS = tuple((1.0 - 1.0 / GAP_AVERAGE_SPAN) ** m for m in range(64))
_KEEP_TABLE = np.array(_KEEPS)
# observe_quiet's running mean: a row followed by this many gaps weighs (1 - 1/span) ** 1024,
# under 1e-28 of the mean, less than a double holds.
_MEAN_GAPS = 1024

def _group_starts(index: np.ndarray) -> np.ndarray:
    """Where each run of equal values of ``index`` starts (np.r_ costs more than the pass)."""
    new = np.empty(len(index), bool)
    new[:1] = True
    np.not_equal(index[1:], index[:-1], out=new[1:])
    return np.flatnonzero(new)


_PRESENT: PresenceState = "present"
_MISSING: PresenceState = "missing"
_UNKNOWN: PresenceState = "unknown"


@dataclass(frozen=True, slots=True)
class LotDefinition:
    lot_id: str
    epcs: frozenset[str] = frozenset()
    # Silence tolerated before a tag's read rate is learned (and for tags never read).
    absence_window_s: float = 30.0
    patterns: tuple[Gs1Pattern, ...] = ()
    # Readers that cover the lot: while one is offline, tags of the lot never read are unknown.
    # Empty: any offline reader makes them unknown.
    readers: frozenset[str] = frozenset()
    # The longest a tag of the lot may go unread while it is moved between antennas of the
    # lot's zone (a forklift trip, docs/rfid.md): no tag is declared missing sooner, however
    # fast its reader reads. None: the lot's absence window.
    move_window_s: float | None = None

    def __post_init__(self) -> None:
        if self.absence_window_s <= 0 or (self.move_window_s is not None
                                          and self.move_window_s <= 0):
            raise ValueError(f"lot {self.lot_id!r}: windows must be positive")

    @property
    def move_window_us(self) -> int:
        window = self.absence_window_s if self.move_window_s is None else self.move_window_s
        return int(window * 1_000_000)


@dataclass(frozen=True, slots=True)
class QuietRows:
    """Rows for ``LotPresence.observe_quiet``, as int64 columns: the tag (index into the
    caller's EPC table) and reader (index into its reader names) of each row, the moment its
    report came (``at``), its first and last read and seen count, and ``order``, the place
    of its report among the stretch's (rows of one report share it; a tag appears at most
    once per report)."""

    tag: np.ndarray
    reader: np.ndarray
    at: np.ndarray
    first: np.ndarray
    last: np.ndarray
    seen: np.ndarray
    order: np.ndarray


@dataclass(frozen=True, slots=True)
class PresenceChange:
    lot: str
    epc: str
    state: PresenceState
    previous: PresenceState | None
    last_seen_us: int | None
    reader: str | None
    at_us: int
    was_missing: bool = False  # the tag had been declared missing before this change

    @property
    def event(self) -> PresenceEvent:
        if self.state == _MISSING:
            return "tag_departed"
        if self.state == _UNKNOWN:
            return "tag_unknown"
        return "tag_returned" if self.was_missing else "tag_seen"


@dataclass(frozen=True, slots=True)
class LotCount:
    lot: str
    expected: int
    present: int
    missing: int
    unknown: int


@dataclass(frozen=True, slots=True)
class UnexpectedTag:
    epc: str
    reads: int
    first_seen_us: int
    last_seen_us: int
    reader: str


class _Tag:
    __slots__ = (
        "floor_us",
        "gaps",
        "last_seen_us",
        "lot",
        "mean_gap_us",
        "reader",
        "state",
        "warmup_window_us",
        "was_missing",
    )

    def __init__(self, lot: str, warmup_window_us: int, floor_us: int) -> None:
        self.lot = lot
        self.warmup_window_us = warmup_window_us
        self.floor_us = floor_us  # never missing sooner: the lot's move window (or the policy's)
        self.state: PresenceState = _UNKNOWN
        self.last_seen_us = 0  # 0: never read
        self.reader: str | None = None
        self.gaps = 0
        self.mean_gap_us = 0.0
        self.was_missing = False


class _ReaderLife:
    """What a reader has proved: the end times of its last read cycles (as many as a proof
    needs), over all its antennas and, for cycles that covered only some, per antenna."""

    __slots__ = ("all_antennas", "last_cycle_us", "need", "read_on", "some_antennas")

    def __init__(self, need: int) -> None:
        self.need = need
        self.all_antennas: deque[int] = deque(maxlen=need)
        self.some_antennas: dict[int, deque[int]] = {}
        # Antennas it read tags on, noted only once it reports cycles of some antennas: a
        # cycle of antenna 2 says nothing of a tag last read on antenna 1.
        self.read_on: set[int] = set()
        self.last_cycle_us = 0

    def add(self, antennas: tuple[int, ...], at_us: int) -> None:
        at_us = max(at_us, self.last_cycle_us)  # kept in order, so counting can bisect
        self.last_cycle_us = at_us
        if not antennas or 0 in antennas:
            self.all_antennas.append(at_us)
            return
        for antenna in set(antennas):
            ends = self.some_antennas.get(antenna)
            if ends is None:
                ends = self.some_antennas[antenna] = deque(maxlen=self.need)
            ends.append(at_us)

    def proved_since(self, since_us: int) -> bool:
        """At least ``need`` cycles ended after ``since_us`` on every antenna it inventories
        (a tag may have moved to any of them)."""
        every = self.all_antennas
        need = self.need
        if len(every) == need and every[0] > since_us:
            return True
        after = len(every) - bisect_right(every, since_us)
        some = self.some_antennas
        if not some:
            return False
        fewest = need
        for antenna in some.keys() | self.read_on:
            ends = some.get(antenna)
            fewest = min(fewest, 0 if ends is None else len(ends) - bisect_right(ends, since_us))
        return after + fewest >= need


class _Unexpected:
    __slots__ = ("first_seen_us", "last_seen_us", "reader", "reads", "reported")

    def __init__(self, at_us: int, reader: str) -> None:
        self.reads = 0
        self.first_seen_us = at_us
        self.last_seen_us = at_us
        self.reader = reader
        self.reported = False


@dataclass
class LotPresence:
    lots: Iterable[LotDefinition]
    started_us: int
    policy: SmoothingPolicy = field(default_factory=SmoothingPolicy)
    decoder: EpcDecoder = field(default_factory=EpcDecoder)
    max_unexpected_tags: int = 100_000
    unexpected_reads: int = 0
    _tags: dict[str, _Tag] = field(init=False, default_factory=dict)
    _lots: dict[str, LotDefinition] = field(init=False, default_factory=dict)
    _patterns: list[tuple[Gs1Pattern, LotDefinition]] = field(init=False, default_factory=list)
    _pattern_members: dict[str, int] = field(init=False, default_factory=dict)
    _unexpected: dict[str, _Unexpected] = field(init=False, default_factory=dict)
    _offline_readers: set[str] = field(init=False, default_factory=set)
    _readers: dict[str, _ReaderLife] = field(init=False, default_factory=dict)
    _now_us: int = field(init=False, default=0)
    # Per lot: since when its never-read tags have been given the chance to be read.
    _unread_since_us: dict[str, int] = field(init=False, default_factory=dict)
    _min_floor_us: int = field(init=False, default=0)  # the shortest floor of any lot
    _windows: dict[str, tuple[int, int]] = field(init=False, default_factory=dict)
    # No tick up to this moment can change a state: every tag not missing was read within its
    # floor at the last full tick. Reads only push that later, so it stays a lower bound until
    # a tag changes state, a tag is added or a reader's health changes (each resets it).
    _quiet_until_us: int = field(init=False, default=-1)
    # observe_quiet's table: (the EPC table, tags tracked then, its tags by index).
    _quiet_table: tuple[Sequence[str], int, list[_Tag | None]] | None = field(
        init=False, default=None)
    _quiet_known: frozenset[str] = field(init=False, default=frozenset())
    _quiet_outside: bool = field(init=False, default=True)  # tracked tags not in the table

    def __post_init__(self) -> None:
        self._now_us = self.started_us
        for lot in self.lots:
            if lot.lot_id in self._lots:
                raise ValueError(f"lot {lot.lot_id!r} defined twice")
            self._lots[lot.lot_id] = lot
            # One pair of int objects per lot, shared by its tags (100,000 tags: 6 MB less).
            floor = max(self.policy.min_window_us, lot.move_window_us)
            self._windows[lot.lot_id] = (max(int(lot.absence_window_s * 1_000_000), floor), floor)
            self._unread_since_us[lot.lot_id] = self.started_us
            for epc in lot.epcs:
                owner = self._tags.get(epc)
                if owner is not None:
                    raise ValueError(f"EPC {epc} is in lots {owner.lot!r} and {lot.lot_id!r}")
                self._tags[epc] = self._new_tag(lot)
            for pattern in lot.patterns:
                self._patterns.append((pattern, lot))
            self._pattern_members[lot.lot_id] = 0
        floors = [floor for _, floor in self._windows.values()]
        self._min_floor_us = min(floors, default=self.policy.min_window_us)

    def _new_tag(self, lot: LotDefinition) -> _Tag:
        self._quiet_until_us = -1
        warmup, floor = self._windows[lot.lot_id]
        return _Tag(lot.lot_id, warmup, floor)

    # -- reads ---------------------------------------------------------------------------

    def observe(self, obs: TagObservation) -> list[PresenceChange]:
        return self.observe_rows(
            obs.reader_id, ((obs.epc, obs.antenna, obs.rssi_cdbm, obs.observed_at_us),)
        )

    def observe_batch(self, batch: Iterable[TagObservation]) -> list[PresenceChange]:
        """Observations from any readers; each reader's reads keep their order."""
        by_reader: dict[str, list[TagRow]] = {}
        for obs in batch:
            rows = by_reader.get(obs.reader_id)
            if rows is None:
                rows = by_reader[obs.reader_id] = []
            rows.append((obs.epc, obs.antenna, obs.rssi_cdbm, obs.observed_at_us))
        changes: list[PresenceChange] = []
        for reader_id, rows in by_reader.items():
            changes += self.observe_rows(reader_id, rows)
        return changes

    def observe_rows(self, reader_id: str, rows: Iterable[TagRow]) -> list[PresenceChange]:
        """Reads of one reader; the hot path."""
        tags = self._tags
        changes: list[PresenceChange] = []
        span = GAP_AVERAGE_SPAN
        life = self._readers.get(reader_id)
        if life is not None and life.some_antennas:  # rare: cycles that cover some antennas
            rows = list(rows)
            life.read_on.update(row[1] for row in rows)
        # A reader reported offline may still deliver reads (one antenna of four cut): those
        # tags turn present, while the silent ones stay unknown until the reader is online.
        for epc, _antenna, _rssi, at_us in rows:
            tag = tags.get(epc)
            if tag is None:
                tag = self._first_read(epc, reader_id, at_us)
                if tag is None:
                    continue
            if tag.state is _PRESENT:
                last = tag.last_seen_us
                if at_us > last:
                    # Running mean of gaps (smoothing.updated_mean_gap, inlined).
                    gaps = tag.gaps + 1
                    tag.gaps = gaps
                    mean = tag.mean_gap_us
                    tag.mean_gap_us = mean + (at_us - last - mean) / (gaps if gaps < span else span)
                    tag.last_seen_us = at_us
                tag.reader = reader_id
            else:
                # The silence that ended here is not a sample of the tag's read rate.
                tag.last_seen_us = max(tag.last_seen_us, at_us)
                tag.reader = reader_id
                changes.append(self._move(epc, tag, _PRESENT, at_us))
        return changes

    def observe_seen(self, reader_id: str, rows: Iterable[SeenRow]) -> list[PresenceChange]:
        """One reader's aggregated report, one row per tag: decided as ``observe_rows`` decides
        the same tag's ``count`` reads, the first at ``first``, the last at ``last`` and the
        ones between evenly spaced (the report does not say when they were; their gaps are
        the only thing presence learns from them). Costs per row, not per read: ``count``
        equal gaps update the running mean in closed form once it weighs by the span.
        Rows of a tag keep their order; a tag appears at most once per report."""
        tags = self._tags
        changes: list[PresenceChange] = []
        span = GAP_AVERAGE_SPAN
        keep = 1.0 - 1.0 / span
        keeps = _KEEPS
        life = self._readers.get(reader_id)
        if life is not None and life.some_antennas:
            rows = list(rows)
            life.read_on.update(row[1] for row in rows)
        for epc, _antenna, _rssi, first_us, last, seen in rows:
            first = first_us if first_us <= last else last  # untrusted: nothing after the last
            tag = tags.get(epc)
            if tag is None:
                tag = self._first_read(epc, reader_id, first, max(1, seen), last)
                if tag is None:
                    continue
            if tag.state is not _PRESENT:
                tag.last_seen_us = max(tag.last_seen_us, first)
                tag.reader = reader_id
                changes.append(self._move(epc, tag, _PRESENT, first))
            else:
                tag.reader = reader_id
                prior = tag.last_seen_us
                if first > prior:  # the gap since its last report (_one_gap, inlined)
                    gaps = tag.gaps + 1
                    tag.gaps = gaps
                    mean = tag.mean_gap_us
                    tag.mean_gap_us = mean + (first - prior - mean) / (
                        gaps if gaps < span else span)
                    tag.last_seen_us = first
            inner = seen - 1
            if inner <= 0 or last <= tag.last_seen_us:
                continue
            gap = (last - first) / inner
            if first < tag.last_seen_us:
                # Its last read was dated later (a reader came back online): the reads at or
                # before it are no gap, as on the per-read path; the first after it is one.
                skip = int((tag.last_seen_us - first) // gap) + 1
                self._one_gap(tag, first + round(skip * gap))
                inner -= skip
            gaps, mean = tag.gaps, tag.mean_gap_us
            while inner and gaps + 1 < span:  # the plain average of the first few gaps
                gaps += 1
                mean += (gap - mean) / gaps
                inner -= 1
            if inner:  # then each gap weighs 1/span: m equal gaps, in one step
                gaps += inner
                mean = gap + (mean - gap) * (keeps[inner] if inner < 64 else keep**inner)
            tag.gaps, tag.mean_gap_us, tag.last_seen_us = gaps, mean, last
        return changes

    def observe_quiet(self, epcs: Sequence[str], readers: Sequence[str],
                      rows: QuietRows | Sequence[QuietRows], until_us: int) -> bool:
        """Reports of a stretch in which nothing can change state, taken in one call: each
        row (``rows``, in the order the reports came) is a tag's ``observe_seen`` row of its
        reader's report at ``at``, ticks running up to ``until_us`` between them. Applied only
        when, report by report with those ticks, every row's tag is present and past its
        warm-up, its reads come after its last one, and no tag that is not missing goes
        longer than its floor unread at any tick (so ``observe_seen`` would decide no change
        and every tick would be a no-op): then the tags end as those calls leave them (the
        running mean of gaps in closed form, equal to the row-by-row one up to rounding) and
        it returns True. Otherwise nothing is applied and it returns False: the caller feeds
        the reports one by one. Read cycles are the caller's (``reader_cycles``).

        ``rows`` may come in parts (one per reader, say: no copy into one table); a tag
        with rows in two parts has its parts taken as one table, in ``order``."""
        tag_of = self._quiet_index(epcs)
        parts = [rows] if isinstance(rows, QuietRows) else [r for r in rows if len(r.tag)]
        offline = self._offline_readers
        for part in parts:
            for r in np.flatnonzero(np.bincount(part.reader)).tolist():
                life = self._readers.get(readers[r])
                if readers[r] in offline or (life is not None and life.some_antennas):
                    return False
        found = [self._quiet_rows(tag_of, len(readers) > 1, part, until_us) for part in parts]
        if any(x is None for x in found):
            return False
        done = [x for x in found if x is not None]
        if sum(len(x[0]) for x in done) != len({id(t) for x in done for t in x[0]}):
            # A tag in two parts: its rows in one table, in the order they came.
            whole = QuietRows(*(np.concatenate([getattr(r, c) for r in parts]) for c in (
                "tag", "reader", "at", "first", "last", "seen", "order")))
            one = self._quiet_rows(tag_of, True, whole, until_us)
            if one is None:
                return False
            done = [one]
        floor = self._min_floor_us
        touched = {id(t) for x in done for t in x[0]}
        quiet = 2**63
        for tag in tag_of:
            if tag is None or id(tag) in touched or tag.state is _MISSING:
                continue
            end = tag.last_seen_us + max(floor, tag.floor_us)
            if until_us > end:
                return False
            quiet = min(quiet, end)
        for epc, tag in self._tags.items() if self._quiet_outside else ():
            # tags outside ``epcs`` (pattern members, another table's)
            if tag.state is not _MISSING and epc not in self._quiet_known:
                end = tag.last_seen_us + max(floor, tag.floor_us)
                if until_us > end:
                    return False
                quiet = min(quiet, end)
        for tags, gaps, means, final_last, final_reader in done:
            for tag, g, m, seen_us, r in zip(tags, gaps.tolist(), means.tolist(),
                                             final_last.tolist(), final_reader.tolist(),
                                             strict=True):
                tag.gaps += g
                tag.mean_gap_us = m
                tag.last_seen_us = seen_us
                tag.reader = readers[r]
                quiet = min(quiet, seen_us + max(floor, tag.floor_us))
        self._now_us = max(self._now_us, until_us)
        # What a full tick pass at until_us would leave: the earliest end of a floor.
        self._quiet_until_us = quiet
        return True

    def _quiet_rows(self, tag_of: list[_Tag | None], several_readers: bool, rows: QuietRows,
                    until_us: int
                    ) -> tuple[list[_Tag], np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        """``observe_quiet``'s checks and results for one table of rows, nothing applied:
        its tags, and for each the gaps to add, its new mean, last read and reader; None
        when the stretch must go report by report."""
        span = GAP_AVERAGE_SPAN
        index = rows.tag
        if not len(index):
            none = np.empty(0, np.int64)
            return [], none, np.empty(0), none, none
        # Rows grouped by tag, each tag's in the order they came: a stable sort by tag (radix
        # for small tables) keeps the caller's order, which is the reports' order unless a
        # tag's rows come from two readers' runs; then by (tag, order).
        key = index.astype(np.int16) if len(tag_of) < 2**15 else index
        order = np.argsort(key, kind="stable")
        index = index[order]
        if several_readers and rows.reader.min() != rows.reader.max():
            same = index[1:] == index[:-1]
            came = rows.order[order]
            if (same & (came[1:] < came[:-1])).any():
                order = np.lexsort((rows.order, rows.tag))
                index = rows.tag[order]
        at, last = rows.at[order], rows.last[order]
        first = np.minimum(rows.first[order], last)  # untrusted: nothing after the last
        seen = rows.seen[order]
        n_rows = len(index)
        starts = _group_starts(index)
        uniq = index[starts].tolist()
        tags: list[_Tag] = []
        for i in uniq:
            tag = tag_of[i]
            if tag is None or tag.state is not _PRESENT or tag.gaps < span - 1:
                return None
            tags.append(tag)
        floor = self._min_floor_us
        prior0 = np.array([t.last_seen_us for t in tags], dtype=np.int64)
        qfloor = np.array([max(floor, t.floor_us) for t in tags], dtype=np.int64)
        sizes = np.diff(starts, append=n_rows)
        ends = starts + sizes - 1
        second = (seen > 1) & (last > first)  # reads after the first: observe_seen's 2nd step
        now_last = np.where(second, last, first)
        prior = np.empty_like(now_last)
        prior[1:] = now_last[:-1]
        prior[starts] = prior0
        if ((first <= prior).any()
                or (at - prior > np.repeat(qfloor, sizes)).any()
                or (until_us - now_last[ends] > qfloor).any()):
            return None
        inner = np.where(second, seen - 1, 0)
        gaps = np.add.reduceat(1 + inner, starts)  # observe_seen's gaps, one per read
        # The running mean: each row is m -> m + (d - m) / span, then, with reads after
        # its first, m -> g + (m - g) * keep**inner; an affine map a*m + b, composed over
        # the tag's rows, of which only the last weigh anything a double holds.
        # (1 - 1/span) ** (1 + inner) per row: the rows whose later rows hold under
        # _MEAN_GAPS gaps in all, counted from each tag's end.
        steps = 1 + inner
        done = np.cumsum(steps)
        later = np.repeat(done[ends], sizes) - done  # gaps in the tag's rows after it
        tail = np.flatnonzero(later < _MEAN_GAPS)
        t_starts = _group_starts(index[tail])
        t_sizes = np.diff(t_starts, append=len(tail))
        t_ends = t_starts + t_sizes - 1
        inner_t = inner[tail]
        second_t = second[tail]
        keep = _KEEP_TABLE[np.minimum(inner_t, len(_KEEP_TABLE) - 1)]
        big = inner_t >= len(_KEEP_TABLE) - 1
        if big.any():
            keep[big] = np.power(1.0 - 1.0 / span, inner_t[big].astype(np.float64))
        gap = np.where(second_t, (last[tail] - first[tail]) / np.maximum(inner_t, 1), 0.0)
        a = (1.0 - 1.0 / span) * keep
        b = (first[tail] - prior[tail]) / span * keep + gap * (1.0 - keep)
        with np.errstate(divide="ignore"):
            log_a = np.log(a)
        if not np.isfinite(log_a).all():
            return None  # a count so large its weight underflows: left to observe_seen
        total = np.add.reduceat(log_a, t_starts)
        upto = np.cumsum(log_a)
        # The sum of log a up to each row within its tag, and the product after it.
        within = upto - np.repeat(upto[t_ends] - total, t_sizes)
        after = np.exp(np.repeat(total, t_sizes) - within)
        m0 = np.array([t.mean_gap_us for t in tags])
        means = np.add.reduceat(b * after, t_starts) + m0 * np.exp(total)
        final_last = now_last[ends]
        final_reader = rows.reader[order][ends]
        return tags, gaps, means, final_last, final_reader

    def _quiet_index(self, epcs: Sequence[str]) -> list[_Tag | None]:
        """``epcs``' tags, by index (kept while the table and the tracked tags stay)."""
        held = self._quiet_table
        if held is None or held[0] is not epcs or held[1] != len(self._tags):
            tags = [self._tags.get(e) for e in epcs]
            held = self._quiet_table = (epcs, len(self._tags), tags)
            self._quiet_known = frozenset(epcs)
            self._quiet_outside = sum(t is not None for t in tags) < len(self._tags)
        return held[2]

    @staticmethod
    def _one_gap(tag: _Tag, at_us: int) -> None:
        last = tag.last_seen_us
        if at_us > last:
            gaps = tag.gaps + 1
            tag.gaps = gaps
            mean = tag.mean_gap_us
            span = GAP_AVERAGE_SPAN
            tag.mean_gap_us = mean + (at_us - last - mean) / (gaps if gaps < span else span)
            tag.last_seen_us = at_us

    def _first_read(self, epc: str, reader_id: str, at_us: int, reads: int = 1,
                    last_us: int | None = None) -> _Tag | None:
        """A read of an EPC not tracked yet: a pattern member, or an unexpected tag."""
        seen = self._unexpected.get(epc)
        if seen is None and self._patterns:
            decoded = self.decoder.decode(epc)
            for pattern, lot in self._patterns:
                if pattern.matches(decoded):
                    tag = self._tags[epc] = self._new_tag(lot)
                    self._pattern_members[lot.lot_id] += 1
                    return tag
        self.unexpected_reads += reads
        if seen is None:
            if len(self._unexpected) >= self.max_unexpected_tags:
                return None  # still counted in unexpected_reads
            seen = self._unexpected[epc] = _Unexpected(at_us, reader_id)
        seen.reads += reads
        seen.last_seen_us = max(seen.last_seen_us, at_us if last_us is None else last_us)
        seen.reader = reader_id
        return None

    # -- reader health ---------------------------------------------------------------------

    def reader_cycle(self, cycle: ReaderCycle) -> None:
        """A reader finished an inventory round: proof that its silent tags were looked for."""
        life = self._readers.get(cycle.reader_id)
        if life is None:
            # The round that read a tag ends after the read, so it is among the cycles "after"
            # it: one more than the proof's N.
            life = self._readers[cycle.reader_id] = _ReaderLife(self.policy.proof_cycles + 1)
        life.add(cycle.antennas, cycle.at_us)

    def reader_cycles(self, reader_id: str, antennas: tuple[int, ...],
                      ends_us: Iterable[int]) -> None:
        """``reader_cycle`` for each end in order, the same antennas each time."""
        life = self._readers.get(reader_id)
        if life is None:
            life = self._readers[reader_id] = _ReaderLife(self.policy.proof_cycles + 1)
        if antennas and 0 not in antennas:
            for at_us in ends_us:
                life.add(antennas, at_us)
            return
        every, last = life.all_antennas, life.last_cycle_us
        for at_us in ends_us:  # _ReaderLife.add for all antennas, inlined
            last = max(at_us, last)
            every.append(last)
        life.last_cycle_us = last

    def reader_offline(self, reader_id: str, now_us: int) -> list[PresenceChange]:
        """Its present tags become unknown; missing ones stay missing (proven gone before)."""
        self._offline_readers.add(reader_id)
        self._quiet_until_us = -1
        return [
            self._move(epc, tag, _UNKNOWN, now_us)
            for epc, tag in self._tags.items()
            if tag.reader == reader_id and tag.state is _PRESENT
        ]

    def reader_online(self, reader_id: str, now_us: int) -> None:
        self._offline_readers.discard(reader_id)
        self._quiet_until_us = -1
        # Tags behind the returning reader get a fresh window before they can be missed,
        # and so do tags never read in the lots it covers (it has not inventoried them yet).
        for tag in self._tags.values():
            if tag.reader == reader_id and tag.state is _UNKNOWN:
                tag.last_seen_us = max(tag.last_seen_us, now_us)
        for lot_id, lot in self._lots.items():
            covers = not lot.readers or reader_id in lot.readers
            if covers:
                self._unread_since_us[lot_id] = max(self._unread_since_us[lot_id], now_us)

    # -- time ------------------------------------------------------------------------------

    def tick(self, now_us: int) -> list[PresenceChange]:
        """Declare departures (window passed, reader proven watching) and unknowns (window
        passed, reader not proven watching)."""
        self._now_us = max(self._now_us, now_us)
        if now_us <= self._quiet_until_us:
            return []  # every tag not missing is still within its floor: nothing can be due
        changes: list[PresenceChange] = []
        policy = self.policy
        floor = self._min_floor_us
        quiet = 2**63  # the earliest end of a floor, or no skipping if a tag is past its own
        warmup = policy.warmup_gaps
        window_us = policy.window_us
        silence = policy.cycle_silence_us
        offline = self._offline_readers
        readers = self._readers
        unread_proven: dict[str, bool] = {}
        for epc, tag in self._tags.items():
            state = tag.state
            if state is _MISSING:
                continue
            last = tag.last_seen_us
            if now_us - last <= floor or now_us - last <= tag.floor_us:
                ends = last + max(floor, tag.floor_us)
                quiet = min(quiet, ends)
                continue
            quiet = now_us - 1  # looked at again on every tick, one at this moment too
            if state is _PRESENT:
                if tag.reader in offline:
                    continue
                window = (
                    window_us(tag.mean_gap_us, tag.gaps, 0)
                    if tag.gaps >= warmup
                    else tag.warmup_window_us
                )
                window = max(window, tag.floor_us)
                if now_us - last <= window:
                    continue
                life = readers.get(tag.reader)  # type: ignore[arg-type]
                if (
                    life is not None
                    and life.last_cycle_us >= last + window
                    and life.proved_since(last)
                ):
                    changes.append(self._move(epc, tag, _MISSING, now_us))
                elif life is None or now_us - life.last_cycle_us > silence:
                    # Silent past its window, but its reader has stopped proving that it reads:
                    # the silence says nothing about the tag. (A reader still cycling is given
                    # the time to complete the proof.)
                    changes.append(self._move(epc, tag, _UNKNOWN, now_us))
                continue
            # unknown: never read, or its reader was offline or silent
            if tag.reader is None:
                if offline and self._covered_by_offline(tag.lot):
                    continue
                if now_us - self._unread_since_us[tag.lot] <= tag.warmup_window_us:
                    continue
                proven = unread_proven.get(tag.lot)
                if proven is None:
                    proven = unread_proven[tag.lot] = self._unread_proven(tag.lot)
                if proven:
                    changes.append(self._move(epc, tag, _MISSING, now_us))
                continue
            if tag.reader in offline:
                continue
            window = max(window_us(tag.mean_gap_us, tag.gaps, 0), tag.warmup_window_us)
            if now_us - last <= window:
                continue
            life = readers.get(tag.reader)
            if (
                life is not None
                and life.last_cycle_us >= last + window
                and life.proved_since(last)
            ):
                changes.append(self._move(epc, tag, _MISSING, now_us))
        self._quiet_until_us = quiet
        return changes

    def next_tick_due_us(self) -> int:
        """The earliest moment a ``tick`` can change anything, as far as the last full pass
        saw: every tag not missing was then within its floor until ``_quiet_until_us``, and
        reads only push that later. A caller may skip the ticks before it (they return no
        change and change no state); a reset (a change, a new tag, a reader's health) makes
        the next tick due at once."""
        return self._quiet_until_us + 1

    def _unread_window_us(self, lot: LotDefinition) -> int:
        return max(int(lot.absence_window_s * 1_000_000), lot.move_window_us,
                   self.policy.min_window_us)

    def _unread_proven(self, lot_id: str) -> bool:
        """Every reader covering the lot (its ``readers``, or every reader known) completed the
        proof since the lot's never-read tags were last given their chance, the last cycle
        after the lot's window."""
        lot = self._lots[lot_id]
        since = self._unread_since_us[lot_id] + self._unread_window_us(lot)
        covering = lot.readers or self._readers.keys()
        if not covering:
            return False
        start = self._unread_since_us[lot_id]
        for reader_id in covering:
            life = self._readers.get(reader_id)
            if life is None or life.last_cycle_us < since:
                return False
            if not life.proved_since(start):
                return False
        return True

    def _covered_by_offline(self, lot_id: str) -> bool:
        readers = self._lots[lot_id].readers
        return not readers or not readers.isdisjoint(self._offline_readers)

    # -- views -----------------------------------------------------------------------------

    def counts(self) -> list[LotCount]:
        tally = {lot: {_PRESENT: 0, _MISSING: 0, _UNKNOWN: 0} for lot in self._lots}
        for tag in self._tags.values():
            tally[tag.lot][tag.state] += 1
        result = []
        for lot_id, c in tally.items():
            unseen = self._unseen_pattern_members(lot_id)
            if unseen:
                lot = self._lots[lot_id]
                since = self._unread_since_us[lot_id]
                late = self._now_us - since > self._unread_window_us(lot)
                if (late and not (self._offline_readers and self._covered_by_offline(lot_id))
                        and self._unread_proven(lot_id)):
                    c[_MISSING] += unseen
                else:
                    c[_UNKNOWN] += unseen
            result.append(
                LotCount(
                    lot=lot_id,
                    expected=sum(c.values()),
                    present=c[_PRESENT],
                    missing=c[_MISSING],
                    unknown=c[_UNKNOWN],
                )
            )
        return result

    def _unseen_pattern_members(self, lot_id: str) -> int:
        lot = self._lots[lot_id]
        if not lot.patterns:
            return 0
        sizes = [p.size for p in lot.patterns]
        if any(size is None for size in sizes):
            return 0  # an open pattern: the lot is whatever matches
        bound = sum(s for s in sizes if s is not None)
        return max(0, bound - self._pattern_members[lot_id])

    def state_of(self, epc: str) -> PresenceState | None:
        tag = self._tags.get(epc)
        return tag.state if tag else None

    def lot_of(self, epc: str) -> str | None:
        tag = self._tags.get(epc)
        return tag.lot if tag else None

    def window_of(self, epc: str) -> float | None:
        """The tag's current departure window in seconds (for diagnostics and docs)."""
        tag = self._tags.get(epc)
        if tag is None:
            return None
        window = self.policy.window_us(tag.mean_gap_us, tag.gaps, tag.warmup_window_us)
        return max(window, tag.floor_us) / 1e6

    @property
    def tracked_tags(self) -> int:
        return len(self._tags)

    @property
    def unexpected_tags(self) -> int:
        return len(self._unexpected)

    def unexpected(
        self, *, only_new: bool = False, limit: int | None = None
    ) -> list[UnexpectedTag]:
        """Tags read that belong to no lot; ``only_new`` returns each EPC once, ever (those
        beyond ``limit`` wait for the next call)."""
        found: list[UnexpectedTag] = []
        for epc, seen in self._unexpected.items():
            if only_new and seen.reported:
                continue
            if limit is not None and len(found) >= limit:
                break
            seen.reported = True
            found.append(
                UnexpectedTag(epc, seen.reads, seen.first_seen_us, seen.last_seen_us, seen.reader)
            )
        return found

    def _move(self, epc: str, tag: _Tag, state: PresenceState, at_us: int) -> PresenceChange:
        change = PresenceChange(
            lot=tag.lot,
            epc=epc,
            state=state,
            previous=tag.state,
            last_seen_us=tag.last_seen_us or None,
            reader=tag.reader,
            at_us=at_us,
            was_missing=tag.was_missing,
        )
        if state is _MISSING:
            tag.was_missing = True
        elif state is _PRESENT:
            tag.was_missing = False
        tag.state = state
        self._quiet_until_us = -1
        return change
