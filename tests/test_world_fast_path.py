"""The world runner's fast path decides as its per-tick path: ticks are skipped only where no
timer is due (presence, the absence window, the stale timer, passages), and a stretch of
reports is taken at once only where nothing in it can change a state; the decision objects
say when they are next due, and presence takes such a stretch in one call."""

from __future__ import annotations

import multiprocessing
from typing import Any

import numpy as np
import pytest

from benchmarks.scenarios import week_world
from edge.alerting import EdgeAlerting
from edge.rfid.presence import LotDefinition, LotPresence, PresenceChange, QuietRows
from edge.rfid.smoothing import SmoothingPolicy
from firmware_sim.world import load_story
from firmware_sim.world.generate import generate_chunks, generate_chunks_ahead
from firmware_sim.world.runner import Outcome, run_worlds

S = 1_000_000
T0 = 1_764_136_000_000_000


def _decisions(out: Outcome) -> list[tuple[Any, ...]]:
    return [(a.site, a.alert_type, a.subject, a.raised_us, a.decided_us, a.decided_at,
             a.updates, a.updated_us, a.cleared_us, a.folded_into, a.pieces, a.explanation)
            for a in out.alerts] + [tuple(x) for x in out.alarms]


@pytest.mark.parametrize("name", ["slow_bleed_night", "reader_power_cycle_theft",
                                  "gateway_outage_theft", "release_overrun",
                                  "forklift_reshuffle_4hz"])
def test_the_fast_path_decides_as_a_tick_every_second(name: str) -> None:
    story = load_story(name)
    per_tick = run_worlds(story.sites, story.seed, skip_idle=False)
    fast = run_worlds(story.sites, story.seed)
    assert _decisions(fast) == _decisions(per_tick)
    assert fast.signals == per_tick.signals
    if name != "forklift_reshuffle_4hz":
        assert fast.alerts  # each of these stories says something


def test_a_warehouse_night_with_a_theft_decides_the_same_on_both_paths() -> None:
    night = week_world(1, 2.0, 5, 1, 120.0)
    night = night.model_copy(update={"duration_s": 5 * 3600.0})  # the theft is 01:00-04:00
    fast, per_tick = run_worlds([night], 1), run_worlds([night], 1, skip_idle=False)
    assert any(a.alert_type.startswith("theft.") for a in fast.alerts)
    assert _decisions(fast) == _decisions(per_tick)


def test_the_chunks_columns_are_the_signal_stream() -> None:
    world = load_story("reader_network_loss").sites[0]
    stream = [s.key() if hasattr(s, "key") else s for s in world.signals(3)]
    from_chunks = []
    for chunk in generate_chunks(world, 3):
        items = [(r.t_us[i], 3 * r.part + 1, r.report(i)) for r in chunk.runs
                 for i in range(len(r.t_us))]
        items += [(s.t_us, rank, s) for s, rank in zip(chunk.others, chunk.ranks, strict=True)]
        items.sort(key=lambda x: (x[0], x[1]))
        from_chunks += [s.key() if hasattr(s, "key") else s for _, _, s in items]
    assert from_chunks == stream


def test_chunks_drawn_in_a_worker_process_are_the_same_stream() -> None:
    world = load_story("reader_network_loss").sites[0]

    def columns(chunk: Any) -> list[Any]:
        return [(r.reader, r.part, r.t_us.tolist(), r.rounds.tolist(), r.lo.tolist(),
                 r.hi.tolist(), [c.tolist() for c in r.block]) for r in chunk.runs] + [
            chunk.ranks, [s.key() if hasattr(s, "key") else s for s in chunk.others]]

    here = [columns(c) for c in generate_chunks(world, 3, chunk_s=600)]
    assert [columns(c) for c in generate_chunks_ahead(world, 3, chunk_s=600)] == here
    # A consumer that stops early leaves no worker behind.
    ahead = generate_chunks_ahead(world, 3, chunk_s=600)
    assert columns(next(ahead)) == here[0]
    ahead.close()
    assert not [p for p in multiprocessing.active_children() if p.name == "world-generation"]


def test_a_warehouse_night_generated_in_a_worker_decides_the_same() -> None:
    night = week_world(1, 2.0, 5, 1, 120.0)
    night = night.model_copy(update={"duration_s": 5 * 3600.0})
    here, ahead = run_worlds([night], 1), run_worlds([night], 1, pipeline=True)
    assert any(a.alert_type.startswith("theft.") for a in ahead.alerts)
    assert _decisions(ahead) == _decisions(here)
    assert ahead.signals == here.signals


def test_presence_is_due_when_a_tag_can_next_pass_its_floor() -> None:
    lot = LotDefinition("A", frozenset({"E1", "E2"}), move_window_s=30)
    presence = LotPresence([lot], T0)
    presence.observe_rows("r1", [("E1", 1, None, T0 + S), ("E2", 1, None, T0 + 4 * S)])
    assert presence.next_tick_due_us() <= T0 + 5 * S  # changes: due at once
    assert presence.tick(T0 + 5 * S) == []
    # The earliest floor to end is E1's: read at 1 s, 30 s of floor.
    assert presence.next_tick_due_us() == T0 + 31 * S + 1
    # Reads push it later, never sooner: the bound stays safe until the next full pass.
    presence.observe_rows("r1", [("E1", 1, None, T0 + 20 * S)])
    assert presence.next_tick_due_us() == T0 + 31 * S + 1
    assert presence.tick(T0 + 31 * S + 1) == []
    assert presence.next_tick_due_us() == T0 + 34 * S + 1  # now E2's


def test_alerting_is_due_when_an_absence_reaches_its_window() -> None:
    alerting = EdgeAlerting(None, absence_windows={"A": 120})
    assert alerting.next_deadline_us() is None
    gone = PresenceChange("A", "E1", "missing", "present", T0 - 30 * S, "r1", T0)
    alerting.on_observed([gone], cloud_reachable=True)
    assert alerting.next_deadline_us() == T0 + 120 * S
    assert alerting.tick(T0 + 120 * S - 1, cloud_reachable=True).alerts == []
    [theft] = alerting.tick(T0 + 120 * S, cloud_reachable=True).alerts
    assert theft.action == "raise"
    assert alerting.next_deadline_us() is None  # raised, nothing grew


def _reports(rng: np.random.Generator, n: int, epcs: list[str]) -> list[list[Any]]:
    """n reports 2 s apart of 4 rounds, each tag read with p 0.85 per round."""
    out = []
    for k in range(1, n + 1):
        end = T0 + k * 2 * S
        rows = []
        for epc in epcs:
            hits = np.flatnonzero(rng.random(4) < 0.85)
            if len(hits):
                at = [end - 2 * S + (h + 1) * S // 2 for h in hits.tolist()]
                rows.append((epc, 1, -5500, at[0], at[-1], len(at)))
        out.append([end, rows])
    return out


def _quiet_rows(epcs: list[str], reports: list[list[Any]]) -> QuietRows:
    cols: list[list[int]] = [[] for _ in range(7)]
    for order, (at, rows) in enumerate(reports):
        for epc, _a, _r, first, last, seen in rows:
            for c, v in zip(cols, (epcs.index(epc), 0, at, first, last, seen, order),
                            strict=True):
                c.append(v)
    return QuietRows(*(np.array(c, np.int64) for c in cols))


def test_a_quiet_stretch_at_once_leaves_presence_as_its_reports_one_by_one() -> None:
    epcs = [f"E{i}" for i in range(6)]
    lot = LotDefinition("A", frozenset(epcs), move_window_s=30)
    policy = SmoothingPolicy()
    rng = np.random.default_rng(7)
    warm, stretch = _reports(rng, 30, epcs), _reports(rng, 1500, epcs)  # > _MEAN_ROWS
    for r in stretch:  # after the warm-up's minute
        r[0] += 60 * S
        r[1] = [(e, a, x, f + 60 * S, last + 60 * S, n) for e, a, x, f, last, n in r[1]]
    one, bulk = LotPresence([lot], T0, policy=policy), LotPresence([lot], T0, policy=policy)
    for p in (one, bulk):
        for at, rows in warm:
            p.observe_seen("r1", rows)
            p.tick(at)
    for at, rows in stretch:
        assert one.observe_seen("r1", rows) == []
        assert one.tick(at) == []
    until = stretch[-1][0]
    assert bulk.observe_quiet(epcs, ["r1"], _quiet_rows(epcs, stretch), until)
    for epc in epcs:
        a, b = one._tags[epc], bulk._tags[epc]
        assert (a.state, a.last_seen_us, a.gaps, a.reader) == (
            b.state, b.last_seen_us, b.gaps, b.reader)
        assert b.mean_gap_us == pytest.approx(a.mean_gap_us, rel=1e-12)
    # And from there both decide alike: the tags fall silent.
    for t in range(until, until + 60 * S, S):
        assert one.tick(t) == bulk.tick(t)


def test_a_stretch_in_which_a_tag_passes_its_floor_is_refused_untouched() -> None:
    epcs = ["E0", "E1"]
    lot = LotDefinition("A", frozenset(epcs), move_window_s=30)
    presence = LotPresence([lot], T0)
    for at, rows in _reports(np.random.default_rng(1), 30, epcs):
        presence.observe_seen("r1", rows)
        presence.tick(at)
    before = [(t.last_seen_us, t.gaps, t.mean_gap_us) for t in presence._tags.values()]
    def later(keep: tuple[str, ...]) -> list[list[Any]]:
        return [[at + 60 * S, [(e, a, x, f + 60 * S, last + 60 * S, n)
                               for e, a, x, f, last, n in rows if e in keep]]
                for at, rows in _reports(np.random.default_rng(2), 20, epcs)]

    quiet, e1_silent = later(("E0", "E1")), later(("E0",))  # E1 unread 60 s to 100 s
    assert not presence.observe_quiet(epcs, ["r1"], _quiet_rows(epcs, e1_silent),
                                      e1_silent[-1][0])
    assert [(t.last_seen_us, t.gaps, t.mean_gap_us) for t in presence._tags.values()] == before
    assert presence.observe_quiet(epcs, ["r1"], _quiet_rows(epcs, quiet), quiet[-1][0])


def test_a_tag_read_by_two_readers_in_turn_is_taken_in_the_reports_order() -> None:
    epcs = ["E0", "E1"]
    lot = LotDefinition("A", frozenset(epcs), move_window_s=30)
    rng = np.random.default_rng(3)
    warm, stretch = _reports(rng, 30, epcs), _reports(rng, 200, epcs)
    for r in stretch:
        r[0] += 60 * S
        r[1] = [(e, a, x, f + 60 * S, last + 60 * S, n) for e, a, x, f, last, n in r[1]]
    one, bulk = LotPresence([lot], T0), LotPresence([lot], T0)
    for p in (one, bulk):
        for at, rows in warm:
            p.observe_seen("r1", rows)
            p.tick(at)
    readers = ["r1", "r2"]
    for k, (at, rows) in enumerate(stretch):  # the tags' reports alternate between readers
        assert one.observe_seen(readers[k % 2], rows) == []
        assert one.tick(at) == []
    rows = _quiet_rows(epcs, stretch)
    rows = QuietRows(rows.tag, rows.order % 2, rows.at, rows.first, rows.last, rows.seen,
                     rows.order)
    # The caller's rows grouped by reader, as the runner gathers them: not in time order.
    by_reader = np.argsort(rows.reader, kind="stable")
    rows = QuietRows(*(getattr(rows, c)[by_reader] for c in (
        "tag", "reader", "at", "first", "last", "seen", "order")))
    assert bulk.observe_quiet(epcs, readers, rows, stretch[-1][0])
    for epc in epcs:
        a, b = one._tags[epc], bulk._tags[epc]
        assert (a.last_seen_us, a.gaps, a.reader) == (b.last_seen_us, b.gaps, b.reader)
        assert b.mean_gap_us == pytest.approx(a.mean_gap_us, rel=1e-12)
