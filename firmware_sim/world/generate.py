"""From a `World` to its time-ordered stream of raw signals, fast and deterministic per seed.

Theory of operation. First the world is compiled without randomness: each tag's position over
time (a list of "from t on, at antenna a / out of the field" points, built by playing the moves
and departures in time order), and per reader a time-ordered list of what changes its radio
(a tag arrives at or leaves one of its antennas, interference starts or ends, power or network
goes off or on). Then time is cut in chunks; per chunk and per reader the stretches between two
changes are constant, and all read rounds of a stretch are drawn at once with numpy:

- a tag with per-round read probability p answers each of a period's n rounds or not; the
  report sums that up as its first and last read and its count. A table per (n, p) lists
  every such outcome with its probability (not read at all: (1 - p) ** n), and one uniform
  per tag and period picks one by inversion (``_tables``): one draw, whatever the round rate.
  Periods of more than ``_TABLE_ROUNDS`` rounds draw the last read ``g`` rounds before the end
  with ``g + 1`` geometric(p), the count ``1 + Binomial(n - 1 - g, p)`` and the first read as
  a uniform's minimum (``_draw_rounds``);
- a period cut by a change (a stretch boundary) is drawn per stretch and merged (counts add,
  the latest read wins), so a move in mid-period is exact;
- rounds happen while the reader has power; its reports and keepalives reach the gateway only
  while its network is up too.

Other sources (doors, gate frames, sensors, GPS, link, cameras, labels) are a few values per
event or period. Each source has its own random stream spawned from the seed, so adding a
sensor does not change the reads.
"""

from __future__ import annotations

import bisect
import math
import mmap
import multiprocessing as mp
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field, replace
from functools import lru_cache
from itertools import repeat
from operator import attrgetter
from typing import Any

import numpy as np

from firmware_sim.world.model import Departure, Move, Reader, World, split_ref
from firmware_sim.world.signals import (
    DoorContact,
    GateFrame,
    GpsFix,
    LabelFrame,
    LinkState,
    ReaderKeepalive,
    ReaderPower,
    ReadReport,
    SensorSample,
    Signal,
)

US = 1_000_000
OUT = -1  # a tag's position out of every field
_METRES_PER_DEG_LAT = 111_320.0


@dataclass
class Compiled:
    """The world without randomness: tags, antennas and per-reader change lists."""

    epcs: list[str]
    epc_table: tuple[str, ...]
    lot_of: np.ndarray  # tag -> lot index
    base_p: np.ndarray  # tag -> read probability of its lot
    antennas: list[tuple[str, int]]  # global antenna index -> (reader, port)
    # Per tag: [(t_us, antenna index or OUT)], from t on the tag is there.
    positions: list[list[tuple[int, int]]]
    end_us: int


def _hops(origin: int, path: list[int], rounds: int) -> list[list[int]]:
    """Back and forth: odd rounds go along the path, even ones back to where they started."""
    tours = []
    back = [*reversed(path[:-1]), origin]
    for r in range(rounds):
        tours.append(path if r % 2 == 0 else back)
    return tours


def compile_world(world: World) -> Compiled:
    index = {}
    antennas: list[tuple[str, int]] = []
    for r in world.readers:
        for a in r.antennas:
            index[f"{r.name}/{a.port}"] = len(antennas)
            antennas.append((r.name, a.port))
    epcs: list[str] = []
    lot_of: list[int] = []
    base_p: list[float] = []
    positions: list[list[tuple[int, int]]] = []
    first_tag: dict[str, int] = {}
    t0 = world.epoch_us
    for li, lot in enumerate(world.lots):
        first_tag[lot.name] = len(epcs)
        for piece, epc in enumerate(world.epcs(lot.name)):
            epcs.append(epc)
            lot_of.append(li)
            base_p.append(lot.read_probability)
            positions.append([(t0, index[lot.at[piece % len(lot.at)]])])
    departed_at = [math.inf] * len(epcs)

    def set_from(tag: int, t: int, points: list[tuple[int, int]]) -> None:
        pos = positions[tag]
        while pos and pos[-1][0] >= t:
            pos.pop()
        pos.extend(points)

    def where(tag: int, t: int) -> int:
        pos = positions[tag]
        i = bisect.bisect_right(pos, (t, math.inf)) - 1
        return pos[i][1] if i >= 0 else OUT

    # Moves and departures in time order (moves first at the same moment).
    events: list[tuple[float, int, Move | Departure]] = []
    for i, m in enumerate(world.moves):
        events.append((m.at_s, i, m))
    for i, d in enumerate(world.departures):
        events.append((d.at_s, 10_000 + i, d))
    events.sort(key=lambda e: (e[0], e[1]))
    pieces = {lot.name: lot.pieces for lot in world.lots}
    for at_s, _, ev in events:
        first = first_tag[ev.lot]
        t = world.at_us(at_s)
        alive = [first + k for k in range(pieces[ev.lot]) if departed_at[first + k] > t]
        if isinstance(ev, Move):
            chosen = alive[ev.skip:]
            if ev.pieces is not None:
                chosen = chosen[:ev.pieces]
            path = [index[ref] for ref in ev.path]
            gap, dwell, every = int(ev.gap_s * US), int(ev.dwell_s * US), int(ev.every_s * US)
            for tag in chosen:
                origin = where(tag, t)
                points: list[tuple[int, int]] = []
                for rnd, tour in enumerate(_hops(origin, path, ev.repeat)):
                    at = t + rnd * every
                    if points and at < points[-1][0]:
                        at = points[-1][0]  # a round starts once the last one is done
                    for hop in tour:
                        points.append((at, OUT))
                        at += gap
                        points.append((at, hop))
                        at += dwell
                set_from(tag, t, points)
        else:
            chosen = alive[:ev.pieces]
            step = int(ev.spread_s * US / max(1, len(chosen)))
            for k, tag in enumerate(chosen):
                at = t + k * step
                set_from(tag, at, [(at, OUT)])
                departed_at[tag] = at
    return Compiled(epcs, tuple(epcs), np.array(lot_of, dtype=np.int64), np.array(base_p),
                    antennas, positions, world.at_us(world.duration_s))


@dataclass
class _ReaderState:
    """One reader's sweep through its changes, kept across chunks."""

    spec: Reader
    ports: list[int]
    changes: list[tuple[int, int, int, int]]  # (t_us, order, kind, payload) sorted
    rng: np.random.Generator
    epoch_us: int
    # payload encodings per kind: 0 tag arrives (tag << 8 | port), 1 tag leaves (tag),
    # 2 interference starts (itf index), 3 ends, 4 power off, 5 power on, 6 net down, 7 up
    next_change: int = 0
    at_port: dict[int, int] = field(default_factory=dict)  # tag -> port
    interference: dict[int, tuple[float, frozenset[int]]] = field(default_factory=dict)
    # Per interference episode of the world: its probability and the ports it hits here.
    interference_specs: list[tuple[float, frozenset[int]]] = field(default_factory=list)
    powered: bool = True
    networked: bool = True
    # Drawn, not yet reported: per stretch (period k, tag, count, last read, port) rows and
    # (period k, rounds) rows.
    parts: list[tuple[np.ndarray, ...]] = field(default_factory=list)
    round_parts: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    keepalive_next: int = 0
    off_spans: list[tuple[int, int]] = field(default_factory=list)  # power off
    down_spans: list[tuple[int, int]] = field(default_factory=list)  # power off or net down
    sent: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))  # last reports


def _spans(changes: list[tuple[int, bool]], end_us: int) -> list[tuple[int, int]]:
    spans, since = [], None
    for t, up in sorted(changes):
        if not up and since is None:
            since = t
        elif up and since is not None:
            spans.append((since, t))
            since = None
    if since is not None:
        spans.append((since, end_us + 1))
    return spans


def _inside(spans: list[tuple[int, int]], t: int) -> bool:
    i = bisect.bisect_right(spans, (t, math.inf)) - 1
    return i >= 0 and spans[i][0] <= t < spans[i][1]


def _reader_states(world: World, comp: Compiled, seeds: list[np.random.SeedSequence]
                   ) -> list[_ReaderState]:
    states = []
    itf_ports: list[dict[str, frozenset[int]]] = []
    for itf in world.interference:
        per: dict[str, set[int]] = {}
        for r in world.readers:
            ports = {a.port for a in r.antennas}
            if not itf.at or r.name in itf.at:
                per[r.name] = ports
            for ref in itf.at:
                if "/" in ref:
                    name, port = split_ref(ref)
                    if name == r.name:
                        per.setdefault(r.name, set()).add(port)
        itf_ports.append({k: frozenset(v) for k, v in per.items()})
    for ri, r in enumerate(world.readers):
        changes: list[tuple[int, int, int, int]] = []
        mine = {i for i, (name, _) in enumerate(comp.antennas) if name == r.name}
        for tag, pos in enumerate(comp.positions):
            here = OUT
            for t, a in pos:
                if here in mine and a != here:
                    changes.append((t, 0, 1, tag))
                if a in mine and a != here:
                    changes.append((t, 1, 0, tag << 8 | comp.antennas[a][1]))
                here = a
        for i, itf in enumerate(world.interference):
            if r.name in itf_ports[i]:
                changes.append((world.at_us(itf.at_s), 2, 2, i))
                changes.append((world.at_us(itf.at_s + itf.for_s), 2, 3, i))
        power, net = [], []
        for ev in r.events:
            t = world.at_us(ev.at_s)
            if ev.power is not None:
                changes.append((t, 3, 4 if ev.power == "off" else 5, 0))
                power.append((t, ev.power == "on"))
            else:
                changes.append((t, 3, 6 if ev.network == "down" else 7, 0))
                net.append((t, ev.network == "up"))
        changes.sort()
        off = _spans(power, comp.end_us)
        st = _ReaderState(r, [a.port for a in r.antennas], changes,
                          np.random.default_rng(seeds[ri]), world.epoch_us)
        st.off_spans = off
        st.down_spans = sorted(off + _spans(net, comp.end_us))
        st.keepalive_next = world.epoch_us + int(r.keepalive_s * US)
        st.interference_specs = [
            (itf.read_probability, itf_ports[i].get(r.name, frozenset()))
            for i, itf in enumerate(world.interference)]
        states.append(st)
    return states


def _apply(st: _ReaderState, kind: int, payload: int) -> None:
    if kind == 0:
        st.at_port[payload >> 8] = payload & 0xFF
    elif kind == 1:
        st.at_port.pop(payload, None)
    elif kind == 2:
        st.interference[payload] = st.interference_specs[payload]
    elif kind == 3:
        st.interference.pop(payload, None)
    elif kind == 4:
        st.powered = False
    elif kind == 5:
        st.powered = True
    elif kind == 6:
        st.networked = False
    elif kind == 7:
        st.networked = True


def _draw_stretch(st: _ReaderState, comp: Compiled, a: int, b: int) -> None:
    """All rounds of [a, b) with the reader's state constant, as arrays in ``st.parts``."""
    if not st.powered or b <= a:
        return
    spec = st.spec
    dt = max(1, round(US / spec.rounds_per_s))
    e = st.epoch_us
    i0 = -(-(a - e) // dt)
    i1 = -(-(b - e) // dt)
    if i1 <= i0:
        return
    interval = round(spec.report_interval_s * US)
    if interval > 0:  # report k holds the rounds in (k-1, k] periods
        k0 = -(-(i0 * dt) // interval)
        k1 = -(-((i1 - 1) * dt) // interval)
        uk = np.arange(k0, k1 + 1, dtype=np.int64)
        # First round of period k: the first i with i*dt > (k-1)*interval.
        first = np.maximum((uk - 1) * interval // dt + 1, i0)
        last = np.minimum(uk * interval // dt, i1 - 1)
        keep = last >= first
        uk, first, last = uk[keep], first[keep], last[keep]
        n = last - first + 1
    else:
        uk = np.arange(i0, i1, dtype=np.int64)
        last = uk
        n = np.ones(len(uk), dtype=np.int64)
    last_t = e + last * dt
    st.round_parts.append((uk, n))
    if not st.at_port:
        return
    tags = np.fromiter(st.at_port, dtype=np.int64, count=len(st.at_port))
    ports = np.fromiter(st.at_port.values(), dtype=np.int64, count=len(tags))
    p = comp.base_p[tags].copy()
    for prob, where in st.interference.values():
        hit = np.isin(ports, np.fromiter(where, dtype=np.int64))
        p[hit] = np.minimum(p[hit], prob)
    readable = p > 0
    if not readable.any():
        return
    if int(n.max()) > _TABLE_ROUNDS:
        _draw_rounds(st, uk, n, last_t=last_t, dt=dt, tags=tags, ports=ports, p=p,
                     readable=readable)
        return
    # One uniform per tag and period, looked up in its (rounds, probability) table: which
    # rounds it answered is summed up as its first and last read and its count.
    n_vals, n_of = np.unique(n, return_inverse=True)
    p_vals, p_of = np.unique(p, return_inverse=True)
    cdf, guide, pos_first, pos_last, count = _tables(tuple(n_vals.tolist()),
                                                     tuple(p_vals.tolist()))
    u = st.rng.random((len(uk), len(tags)))
    combo = (n_of * len(p_vals))[:, None] + p_of[None, :]
    at = guide[(u * _GUIDE_BINS).astype(np.intp) + combo * _GUIDE_BINS]
    u, at = u.ravel(), at.ravel()
    step = np.flatnonzero(cdf[at] <= u)  # past the bin's first outcome: walk the few
    while len(step):
        at[step] += 1
        step = step[cdf[at[step]] <= u[step]]
    counts = count[at]
    flat = np.flatnonzero(counts)  # row-major: the periods in order, tags in their order
    rows, cols = np.divmod(flat, len(tags))
    at = at[flat]
    opens = last_t[rows] - (n[rows] - 1) * dt  # the period's first round
    st.parts.append((uk[rows], tags[cols], counts[flat], opens + pos_last[at] * dt,
                     ports[cols], opens + pos_first[at] * dt))


# A period of up to this many rounds is drawn from its table of outcomes (n ** 3 / 6 of them,
# about one per guide bin at most); longer ones (a 30 s report at 2 rounds/s) by _draw_rounds.
_TABLE_ROUNDS = 24
_GUIDE_BINS = 4096


@lru_cache(maxsize=256)
def _outcomes(n: int, p: float) -> tuple[np.ndarray, ...]:
    """Every way a tag read with probability ``p`` per round can answer ``n`` rounds, summed
    up as a report sees it: its first and last read (round of the period, from 0) and its
    count (0: not read at all, (1 - p) ** n), with its probability.
    First f, last l and c reads: the c - 2 others fall on any of the l - f - 1 rounds between,
    comb(l - f - 1, c - 2) ways, each p ** c (1 - p) ** (n - c). The table is exact: the
    first read is no longer the continuous approximation the draws needed."""
    q = 1.0 - p
    # Read once: first = last, any round. Then every pair of rounds f < l (l - f - 1 between)
    # with 2 to l - f + 1 reads.
    last_one = np.arange(n)
    f, l_ = np.triu_indices(n, 1)
    between = l_ - f - 1
    reps = between + 1
    c = 2 + np.arange(int(reps.sum())) - np.repeat(np.cumsum(reps) - reps, reps)
    f, l_, between = np.repeat(f, reps), np.repeat(l_, reps), np.repeat(between, reps)
    pascal = np.array([[math.comb(m, k) for k in range(n)] for m in range(n)], np.float64)
    first = np.concatenate([[-1], last_one, f])
    last = np.concatenate([[-1], last_one, l_])
    count = np.concatenate([[0], np.ones(n, np.int64), c])
    prob = np.concatenate([[q ** n], np.full(n, p * q ** (n - 1)),
                           pascal[between, c - 2] * p ** c * q ** (n - c)])
    # Likeliest first: the many unlikely outcomes of a long period end up together near 1,
    # where few uniforms fall, so the guide's bins hold few boundaries where most of them do.
    order = np.argsort(-prob, kind="stable")
    return (first.astype(np.int64)[order], last.astype(np.int64)[order],
            count.astype(np.int64)[order], prob[order])


@lru_cache(maxsize=64)
def _tables(n_vals: tuple[int, ...], p_vals: tuple[float, ...]
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The (rounds, probability) tables of a stretch, end to end: each table's cumulative
    probabilities (its last entry infinite, so rounding never walks past it) and a guide per
    table, ``_GUIDE_BINS`` bins of [0, 1) each giving the first outcome a uniform in it can
    take (inversion by table look-up: the uniform's outcome is the first whose cumulative
    probability exceeds it)."""
    cdfs, guides, firsts, lasts, counts = [], [], [], [], []
    base = 0
    bins = np.arange(_GUIDE_BINS) / _GUIDE_BINS
    for n in n_vals:
        for p in p_vals:
            first, last, count, prob = _outcomes(n, p)
            cdf = np.cumsum(prob)
            cdf[-1] = np.inf
            guides.append(base + np.searchsorted(cdf, bins, side="right"))
            cdfs.append(cdf)
            firsts.append(first)
            lasts.append(last)
            counts.append(count)
            base += len(cdf)
    return (np.concatenate(cdfs), np.concatenate(guides), np.concatenate(firsts),
            np.concatenate(lasts), np.concatenate(counts))


def _draw_rounds(st: _ReaderState, uk: np.ndarray, n: np.ndarray, *, last_t: np.ndarray,
                 dt: int, tags: np.ndarray, ports: np.ndarray, p: np.ndarray,
                 readable: np.ndarray) -> None:
    """Long periods: the tag's last read ``g`` rounds before the period's end with ``g + 1``
    geometric(p) (in the report iff ``g < n``), its count ``1 + Binomial(n - 1 - g, p)``, its
    first read the earliest of the other reads, uniform on the rounds before the last (drawn
    as the minimum of that many uniforms, the continuous form of the discrete draw)."""
    p_safe = np.where(readable, p, 0.5)
    g1 = st.rng.geometric(p_safe, size=(len(uk), len(tags)))  # g + 1
    seen = g1 <= n[:, None]  # g < n
    if not readable.all():
        seen &= readable[None, :]
    flat = np.flatnonzero(seen)  # row-major, as np.nonzero orders them
    rows, cols = np.divmod(flat, len(tags))
    g1 = g1.ravel()[flat]
    gs = g1 - 1
    before = n[rows] - g1  # rounds of the period before its last read: n - 1 - g
    counts = 1 + st.rng.binomial(before, p_safe[cols])
    others = counts - 1
    u = st.rng.random(len(rows))
    ahead = np.floor(before * (1.0 - u ** (1.0 / np.maximum(others, 1)))).astype(np.int64)
    ahead = np.where(others > 0, np.minimum(ahead, before - 1), before)
    last_read = last_t[rows] - gs * dt
    st.parts.append((uk[rows], tags[cols], counts, last_read, ports[cols],
                     last_read - (before - ahead) * dt))


@dataclass(eq=False)
class ReportRun:
    """One reader's reports of a chunk as columns: report ``i`` is the ``ReadReport`` sent at
    ``t_us[i]``, its rows ``lo[i]:hi[i]`` of the shared column ``block``. What ``generate``
    yields as objects, for a consumer that takes a stretch of reports at once."""

    reader: str
    part: int  # the reader's place in the world (ties at one moment keep this order)
    period_us: int
    t_us: np.ndarray
    rounds: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    antennas: tuple[int, ...]
    epcs: tuple[str, ...]
    block: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]
    rssi_cdbm: int

    def report(self, i: int) -> ReadReport:
        t = int(self.t_us[i])
        return ReadReport(t, self.reader, t - self.period_us, int(self.rounds[i]),
                          self.antennas, self.epcs, self.block, int(self.lo[i]),
                          int(self.hi[i]), self.rssi_cdbm)

    def reports(self) -> list[Signal]:
        # One object per report, built without a Python-level loop body (a week has 10^6).
        sent = self.t_us
        return list(map(ReadReport, sent.tolist(), repeat(self.reader),
                        (sent - self.period_us).tolist(), self.rounds.tolist(),
                        repeat(self.antennas), repeat(self.epcs), repeat(self.block),
                        self.lo.tolist(), self.hi.tolist(), repeat(self.rssi_cdbm)))


@dataclass(eq=False)
class Chunk:
    """A chunk of the stream with its reports as columns (``ReportRun`` per reader) and every
    other signal as objects, ``others`` in stream order; ``ranks[i]`` places ``others[i]``
    among the reports of its moment: a report of reader ``part`` ranks ``3 * part + 1``, and
    the stream's order is (``t_us``, rank)."""

    runs: list[ReportRun]
    others: list[Signal]
    ranks: list[int]


def _reports(st: _ReaderState, comp: Compiled, upto: int, final: bool, *, part: int = 0
             ) -> ReportRun | None:
    """Reports whose period ended before ``upto`` (all of them when ``final``); the rest wait
    in ``st.parts`` for the next chunk. Rows of one tag in one period drawn in two stretches
    (a change mid-period) are merged: counts add, the later read wins."""
    spec = st.spec
    interval = round(spec.report_interval_s * US)
    dt = max(1, round(US / spec.rounds_per_s))
    period = interval if interval > 0 else dt
    if not st.round_parts:
        return None
    rk = np.concatenate([k for k, _ in st.round_parts])
    rn = np.concatenate([n for _, n in st.round_parts])
    cols = [np.concatenate(c) for c in zip(*st.parts, strict=True)] if st.parts else [
        np.empty(0, np.int64)] * 6
    k, tag, cnt, last, port, first = cols
    # Periods are drawn in time order (rk and k are sorted), so the periods reported now are
    # a prefix of both: the rest are held for the next chunk.
    n_cut = len(rk) if final else int(np.searchsorted(rk, -(-(upto - st.epoch_us) // period),
                                                       side="left"))
    st.round_parts = [(rk[n_cut:], rn[n_cut:])] if n_cut < len(rk) else []
    done_k = rk[:n_cut]
    n_rows = int(np.searchsorted(k, done_k[-1], side="right")) if n_cut else 0
    st.parts = [(k[n_rows:], tag[n_rows:], cnt[n_rows:], last[n_rows:], port[n_rows:],
                 first[n_rows:])] if n_rows < len(k) else []
    if not n_cut:
        return None
    # Rounds per period.
    dn = rn[:n_cut]
    starts = np.flatnonzero(np.r_[True, done_k[1:] != done_k[:-1]])
    pk, pn = done_k[starts], np.add.reduceat(dn, starts)
    # Tag rows, in period order already; only a period cut by a change (drawn in two
    # stretches) can hold a tag twice: merge those few rows (counts add, later read wins).
    k, tag, cnt, last, port, first = (k[:n_rows], tag[:n_rows], cnt[:n_rows], last[:n_rows],
                                      port[:n_rows], first[:n_rows])
    split = np.unique(done_k[1:][done_k[1:] == done_k[:-1]])
    if len(split) and len(k):
        # A split period's rows are a run of k (sorted): merged, they take the run's first
        # places, by tag, and the rest of the run is dropped.
        run_lo = np.searchsorted(k, split, side="left")
        run_hi = np.searchsorted(k, split, side="right")
        dup = np.repeat(run_lo - np.cumsum(np.r_[0, (run_hi - run_lo)[:-1]]),
                        run_hi - run_lo) + np.arange(int((run_hi - run_lo).sum()))
        dk, dt_, dc, dl, dp, df = k[dup], tag[dup], cnt[dup], last[dup], port[dup], first[dup]
        order = np.lexsort((dl, dt_, dk))
        dup = dup[order]
        dk, dt_, dc, dl, dp, df = (dk[order], dt_[order], dc[order], dl[order], dp[order],
                                   df[order])
        new_k = np.r_[True, dk[1:] != dk[:-1]]
        g = np.flatnonzero(new_k | np.r_[True, dt_[1:] != dt_[:-1]])
        ends = np.r_[g[1:], len(dk)] - 1
        # Where each merged row goes: its period's first place, plus its rank in the period.
        period_of = np.cumsum(new_k[g]) - 1
        first_of = np.flatnonzero(new_k[g])
        to = run_lo[period_of] + np.arange(len(g)) - first_of[period_of]
        keep = np.ones(len(k), bool)
        keep[dup] = False
        keep[to] = True
        k[to], tag[to], last[to], port[to] = dk[ends], dt_[ends], dl[ends], dp[ends]
        cnt[to], first[to] = np.add.reduceat(dc, g), np.minimum.reduceat(df, g)
        k, tag, cnt, last, port, first = (k[keep], tag[keep], cnt[keep], last[keep],
                                          port[keep], first[keep])
    # Each period's rows: k is sorted and holds only periods of pk.
    per: np.ndarray = np.bincount(k - pk[0], minlength=int(pk[-1] - pk[0]) + 1)[
        pk - pk[0]] if len(k) else np.zeros(len(pk), np.int64)
    hi = np.cumsum(per)
    lo = hi - per
    at = st.epoch_us + pk * period
    # Sent only while the reader has power and network, and within the world's time.
    sendable = at <= comp.end_us
    for a, b in st.down_spans:
        sendable &= ~((at >= a) & (at < b))
    name, antennas, epcs, rssi = spec.name, tuple(st.ports), comp.epc_table, spec.rssi_cdbm
    pick = np.flatnonzero(sendable & (pn > 0))
    block = (tag, port, cnt, last, first)
    sent = at[pick]
    st.sent = sent
    return ReportRun(name, part, period, sent, pn[pick], lo[pick], hi[pick], antennas, epcs,
                     block, rssi)


def _reader_chunk(st: _ReaderState, comp: Compiled, c0: int, c1: int, final: bool, *,
                  part: int = 0) -> tuple[list[Signal], ReportRun | None, list[Signal]]:
    """The reader's signals of a chunk: power changes, its reports, its keepalives."""
    out: list[Signal] = []
    t = c0
    ch = st.changes
    while st.next_change < len(ch) and ch[st.next_change][0] < c1:
        at, _, kind, payload = ch[st.next_change]
        if at > t:
            _draw_stretch(st, comp, t, at)
            t = at
        _apply(st, kind, payload)
        if kind in (4, 5):
            out.append(ReaderPower(at, st.spec.name, kind == 5, "power"))
        elif kind in (6, 7):
            out.append(ReaderPower(at, st.spec.name, kind == 7, "network"))
        st.next_change += 1
    _draw_stretch(st, comp, t, c1)
    run = _reports(st, comp, c1, final, part=part)
    alive: list[Signal] = []
    # Keepalives: every keepalive period in which the reader sent nothing else (any message
    # proves it alive to the gateway, so the ones beside reports carry nothing and a week of
    # them would cost as much as the reports).
    step = int(st.spec.keepalive_s * US)
    if st.keepalive_next < c1:
        ticks = np.arange(st.keepalive_next, c1, step, dtype=np.int64)
        st.keepalive_next = int(ticks[-1]) + step
        sent = st.sent
        recent = np.searchsorted(sent, ticks, side="right")
        quiet = (recent == 0) | (ticks - sent[np.maximum(recent - 1, 0)] >= step) if len(
            sent) else np.full(len(ticks), True)
        for a, b in st.down_spans:
            quiet &= ~((ticks >= a) & (ticks < b))
        name = st.spec.name
        alive = [ReaderKeepalive(t, name) for t in ticks[quiet].tolist()]
    return out, run, alive


def _other_sources(world: World) -> list[Signal]:
    """Doors, gate frames, link, cameras and labels: a few values per event, all at once."""
    out: list[Signal] = []
    for d in world.doors:
        out.append(DoorContact(world.at_us(d.at_s), d.door, True))
        out.append(DoorContact(world.at_us(d.at_s + d.open_s), d.door, False))
    for v in world.vehicles:
        for f in range(v.frames):
            out.append(GateFrame(world.at_us(v.at_s + f / v.fps), v.camera, v.plate,
                                 v.direction))
    for cut in world.link_cuts:
        out.append(LinkState(world.at_us(cut.at_s), False))
        out.append(LinkState(world.at_us(cut.at_s + cut.for_s), True))
    for cov in world.camera_covers:
        n = int((cov.for_s + 2 * cov.lead_s) * cov.fps)
        for f in range(n):
            off = -cov.lead_s + f / cov.fps
            covered = 0 <= off < cov.for_s
            out.append(GateFrame(world.at_us(max(0.0, cov.at_s + off)), cov.camera, None,
                                 None, covered))
    for lab in world.labels:
        out.append(LabelFrame(world.at_us(lab.at_s), lab.camera, lab.payload, lab.readable))
    return out


@dataclass
class _Series:
    """A periodic source (sensor, tracker) generated chunk by chunk with its own stream."""

    rng: np.random.Generator
    next_s: float
    state: tuple[float, float] = (0.0, 0.0)


def _sensor_chunk(world: World, i: int, s: _Series, c0_s: float, c1_s: float) -> list[Signal]:
    spec = world.sensors[i]
    start = s.next_s
    times = np.arange(start, c1_s, spec.period_s)
    if not len(times):
        return []
    s.next_s = float(times[-1] + spec.period_s)
    values = spec.value + s.rng.normal(0.0, spec.noise, len(times)) if spec.noise else \
        np.full(len(times), spec.value)
    for ex in spec.excursions:
        hit = (times >= ex.at_s) & (times < ex.at_s + ex.for_s)
        values[hit] = ex.value + (values[hit] - spec.value)
    return [SensorSample(world.at_us(t), spec.name, spec.kind, round(v, 3), spec.lot)
            for t, v in zip(times.tolist(), values.tolist(), strict=True)]


def _tracker_chunk(world: World, i: int, s: _Series, c0_s: float, c1_s: float
                   ) -> list[Signal]:
    spec = world.trackers[i]
    times = np.arange(s.next_s, c1_s, spec.period_s)
    if not len(times):
        return []
    s.next_s = float(times[-1] + spec.period_s)
    wt = np.array([w.at_s for w in spec.waypoints])
    lat = np.interp(times, wt, [w.lat for w in spec.waypoints])
    lon = np.interp(times, wt, [w.lon for w in spec.waypoints])
    rho = spec.correlation
    innov = spec.noise_m * math.sqrt(1 - rho * rho)
    ex, ey = s.state
    shocks = s.rng.normal(0.0, innov, (len(times), 2))
    errs = np.empty((len(times), 2))
    for k in range(len(times)):  # AR(1): a drifting error, as a parked receiver sees it
        ex = rho * ex + shocks[k, 0]
        ey = rho * ey + shocks[k, 1]
        errs[k] = (ex, ey)
    s.state = (ex, ey)
    dlat = errs[:, 1] / _METRES_PER_DEG_LAT
    dlon = errs[:, 0] / (_METRES_PER_DEG_LAT * np.cos(np.radians(lat)))
    return [GpsFix(world.at_us(t), spec.name, round(la, 7), round(lo, 7), spec.accuracy_m)
            for t, la, lo in zip(times.tolist(), (lat + dlat).tolist(), (lon + dlon).tolist(),
                                 strict=True)]


def generate(world: World, seed: int, *, chunk_s: float = 3600.0) -> Iterator[Signal]:
    for chunk in generate_chunks(world, seed, chunk_s=chunk_s):
        # The stream's order: by time, ties by rank (a reader's power changes, its report,
        # its keepalives, then the next reader's, then sensors, trackers and the rest).
        parts: list[list[Signal]] = []
        runs = {run.part: run for run in chunk.runs}
        for part in range(len(world.readers)):
            run = runs.get(part)
            parts.append(run.reports() if run is not None else [])
        parts.append(chunk.others)
        ranks = [[3 * part + 1] * len(p) for part, p in enumerate(parts[:-1])]
        ranks.append(chunk.ranks)
        merged = [sig for part in parts for sig in part]
        order = sorted(range(len(merged)), key=[
            (sig.t_us, rank) for part, rk in zip(parts, ranks, strict=True)
            for sig, rank in zip(part, rk, strict=True)].__getitem__)
        yield from (merged[i] for i in order)


def generate_chunks(world: World, seed: int, *, chunk_s: float = 3600.0) -> Iterator[Chunk]:
    """The stream a chunk at a time, its reports as columns (``generate`` yields the same
    signals as objects, in order)."""
    comp = compile_world(world)
    n_series = len(world.sensors) + len(world.trackers)
    seeds = np.random.SeedSequence(seed).spawn(len(world.readers) + n_series + 1)
    readers = _reader_states(world, comp, seeds[:len(world.readers)])
    base = len(world.readers)
    sensors = [_Series(np.random.default_rng(seeds[base + i]), 0.0)
               for i in range(len(world.sensors))]
    trackers = [_Series(np.random.default_rng(seeds[base + len(sensors) + i]), 0.0)
                for i in range(len(world.trackers))]
    for tr, spec in zip(trackers, world.trackers, strict=True):
        # The error starts where it would be after a long time: drawn at its full spread.
        ex, ey = tr.rng.normal(0.0, spec.noise_m, 2).tolist()
        tr.state = (ex, ey)
    # What the world says happens after its end does not happen.
    others = sorted((s for s in _other_sources(world) if s.t_us <= comp.end_us),
                    key=attrgetter("t_us"))
    oi = 0
    key = attrgetter("t_us")
    end_s = world.duration_s
    c0_s = 0.0
    while c0_s < end_s:
        c1_s = min(end_s, c0_s + chunk_s)
        final = c1_s >= end_s
        c0, c1 = world.at_us(c0_s), world.at_us(c1_s) + (1 if final else 0)
        parts: list[list[Signal]] = []
        ranks: list[int] = []
        runs: list[ReportRun] = []
        for part, st in enumerate(readers):
            power, run, alive = _reader_chunk(st, comp, c0, c1, final, part=part)
            parts += [power, alive]
            ranks += [3 * part] * len(power) + [3 * part + 2] * len(alive)
            if run is not None:
                runs.append(run)
        n_parts = len(parts)
        for i, s in enumerate(sensors):
            parts.append(_sensor_chunk(world, i, s, c0_s, c1_s + (1e-9 if final else 0)))
        for i, tr in enumerate(trackers):
            parts.append(_tracker_chunk(world, i, tr, c0_s, c1_s + (1e-9 if final else 0)))
        j = oi
        while j < len(others) and (others[j].t_us < c1 or final):
            j += 1
        parts.append(others[oi:j])
        oi = j
        rest = parts[n_parts:]
        ranks += [3 * len(readers)] * sum(len(p) for p in rest)
        merged = [sig for part in parts for sig in part]
        # Stable: ties keep the sources' fixed order (by rank, then as each source said them).
        order = sorted(range(len(merged)), key=lambda i: (key(merged[i]), ranks[i]))
        yield Chunk(runs, [merged[i] for i in order], [ranks[i] for i in order])
        c0_s = c1_s



@dataclass
class _Failed:
    """A worker's error, sent to the consumer in place of a chunk."""

    error: str


# generate_chunks_ahead's ring: its worker writes a chunk's columns into one of these slots of
# shared memory (mapped before the fork, pages taken only when written) and sends the rest.
_SLOTS = 4
_SLOT_BYTES = 32 << 20


_Place = tuple[int, str, int]  # a column in a slot: offset, dtype, length
_EMPTY = np.empty(0, np.int64)


def _pack(chunk: Chunk, slot: memoryview) -> tuple[Chunk, list[list[_Place]]] | None:
    """The chunk with its runs' arrays written into ``slot`` (and emptied in the chunk), and
    each run's places of them; None when they do not fit (the chunk then goes pickled)."""
    runs, places = [], []
    offset = 0
    for run in chunk.runs:
        mine: list[_Place] = []
        for column in (run.t_us, run.rounds, run.lo, run.hi, *run.block):
            a = np.ascontiguousarray(column)
            if offset + a.nbytes > len(slot):
                return None
            np.frombuffer(slot, a.dtype, a.size, offset)[...] = a
            mine.append((offset, a.dtype.str, a.size))
            offset += -(-a.nbytes // 8) * 8
        places.append(mine)
        runs.append(replace(run, t_us=_EMPTY, rounds=_EMPTY, lo=_EMPTY, hi=_EMPTY,
                            block=(_EMPTY,) * 5))
    return Chunk(runs, chunk.others, chunk.ranks), places


def _unpack(chunk: Chunk, places: list[list[_Place]], slot: memoryview) -> Chunk:
    """``_pack``'s chunk with its arrays copied out of the slot (so the slot can be reused
    while the consumer still holds the chunk)."""
    def take(place: _Place) -> np.ndarray:
        offset, dtype, size = place
        return np.frombuffer(slot, np.dtype(dtype), size, offset).copy()

    runs = []
    for run, mine in zip(chunk.runs, places, strict=True):
        t_us, rounds, lo, hi, tag, port, count, last, first = map(take, mine)
        runs.append(replace(run, t_us=t_us, rounds=rounds, lo=lo, hi=hi,
                            block=(tag, port, count, last, first)))
    return Chunk(runs, chunk.others, chunk.ranks)


def _produce(world: World, seed: int, *, chunk_s: float, queue: Any, free: Any,
             ring: mmap.mmap) -> None:
    """The worker's side of ``generate_chunks_ahead``: every chunk (its columns in the ring's
    next slot once the consumer freed it), then None, or the error."""
    try:
        view = memoryview(ring)
        for i, chunk in enumerate(generate_chunks(world, seed, chunk_s=chunk_s)):
            free.acquire()
            k = i % _SLOTS
            packed = _pack(chunk, view[k * _SLOT_BYTES:(k + 1) * _SLOT_BYTES])
            queue.put((k, *packed) if packed is not None else (-1, chunk, []))
        queue.put(None)
    except Exception as exc:  # noqa: BLE001 - the consumer raises it: a worker has no one to tell
        queue.put(_Failed(repr(exc)))


def generate_chunks_ahead(world: World, seed: int, *, chunk_s: float = 3600.0
                          ) -> Generator[Chunk, None, None]:
    """``generate_chunks``' chunks, the same stream, drawn in a worker process while the
    caller consumes them: with a core to spare the two stages overlap, so the pair costs
    about the slower of them in wall time instead of their sum. The columns (a few MB a
    chunk) go through a ring of shared memory, copied once in and once out; at most
    ``_SLOTS`` chunks are ahead. The worker is forked where the platform can (no start-up
    imports), spawned elsewhere."""
    fork = "fork" in mp.get_all_start_methods()
    ctx = mp.get_context("fork") if fork else mp.get_context("spawn")
    ring = mmap.mmap(-1, _SLOTS * _SLOT_BYTES)  # shared with the worker
    view = memoryview(ring)
    queue = ctx.Queue()
    free = ctx.Semaphore(_SLOTS)
    worker = ctx.Process(target=_produce, args=(world, seed), daemon=True,
                         kwargs={"chunk_s": chunk_s, "queue": queue, "free": free,
                                 "ring": ring}, name="world-generation")
    worker.start()
    try:
        while True:
            item = queue.get()
            if item is None:
                break
            if isinstance(item, _Failed):
                raise RuntimeError(f"world generation failed in its worker: {item.error}")
            k, chunk, places = item
            if k >= 0:
                chunk = _unpack(chunk, places, view[k * _SLOT_BYTES:(k + 1) * _SLOT_BYTES])
            free.release()
            yield chunk
        worker.join()
    finally:
        if worker.is_alive():  # the consumer stopped early: nothing more is wanted
            worker.terminate()
            worker.join()
        queue.close()
        view.release()
        ring.close()
