"""EPC decoding, the adaptive departure window, lot presence and zones: values in, values out."""

from __future__ import annotations

import random

import pytest

from contract import TagObservation
from edge.rfid.epc import EpcDecoder, EpcError, Gs1Pattern, decode_epc, normalize_epc
from edge.rfid.presence import LotDefinition, LotPresence
from edge.rfid.reader import ReaderCycle
from edge.rfid.smoothing import SmoothingPolicy, false_departure_probability
from edge.rfid.zones import ZoneDefinition, ZoneTracker
from firmware_sim.tags import sgtin96

S = 1_000_000  # microseconds per second


# -- EPC -----------------------------------------------------------------------------------


def test_sgtin96_example_from_the_tag_data_standard() -> None:
    decoded = decode_epc("3034257BF7194E4000003039")
    assert decoded.scheme == "sgtin-96"
    assert decoded.uri == "urn:epc:id:sgtin:0614141.812345.12345"
    assert decoded.gtin == "80614141123458"
    assert (decoded.company_prefix, decoded.item_reference, decoded.serial) == (
        "0614141",
        "812345",
        "12345",
    )
    assert decoded.filter_value == 1


def test_sscc96_decodes_to_the_sscc() -> None:
    decoded = decode_epc("3114257BF4499602D2000000")
    assert decoded.scheme == "sscc-96"
    assert decoded.uri == "urn:epc:id:sscc:0614141.1234567890"
    assert decoded.sscc == "106141412345678908"


def test_other_epcs_pass_through_as_hex() -> None:
    assert decode_epc("E2801160600002080A6B1A3B").scheme is None
    assert decode_epc("AABB").as_json() == {"epc": "AABB", "scheme": None}
    # an SGTIN header with a reserved partition (7) is still a tag, kept by its hex
    broken = decode_epc("303C257BF7194E4000003039")
    assert broken.scheme is None and broken.note


def test_bad_input_is_refused_with_a_reason() -> None:
    assert normalize_epc(" 3034-257b f719 4e40 0000 3039 ") == "3034257BF7194E4000003039"
    for bad in ("", "xyz", "ABC", "0x12345"):
        with pytest.raises(EpcError):
            normalize_epc(bad)


def test_decoder_decodes_each_epc_once() -> None:
    decoder = EpcDecoder()
    for _ in range(100):
        decoder.decode("3034257BF7194E4000003039")
    assert decoder.misses == 1


def test_gs1_patterns() -> None:
    ranged = Gs1Pattern.parse("urn:epc:idpat:sgtin:0614141.812345.[100-199]")
    assert ranged.size == 100
    assert ranged.matches(decode_epc(sgtin96("0614141", "812345", 150)))
    assert not ranged.matches(decode_epc(sgtin96("0614141", "812345", 200)))
    assert not ranged.matches(decode_epc(sgtin96("0614141", "812346", 150)))
    anything = Gs1Pattern.parse("urn:epc:idpat:sgtin:0614141.812345.*")
    assert anything.size is None and anything.matches(decode_epc("3034257BF7194E4000003039"))
    sscc = Gs1Pattern.parse("urn:epc:idpat:sscc:0614141.*")
    assert sscc.matches(decode_epc("3114257BF4499602D2000000"))
    for bad in ("urn:epc:idpat:sgtin:0614141.*", "urn:epc:idpat:sgtin:1.2.[9-1]", "sgtin:1.2.3"):
        with pytest.raises(ValueError):
            Gs1Pattern.parse(bad)


# -- smoothing -----------------------------------------------------------------------------


def test_the_documented_bound_holds_for_bernoulli_reads() -> None:
    policy = SmoothingPolicy()
    for p in (0.1, 0.3, 0.6, 0.9):
        rounds_per_s = 4.0
        mean_gap_s = 1 / (p * rounds_per_s)
        window_s = policy.tail_multiplier * mean_gap_s
        exact = false_departure_probability(p, rounds_per_s * window_s)
        assert exact <= policy.false_departure_bound(mean_gap_s) + 1e-300
    assert policy.false_departure_bound(1.0) == pytest.approx(1e-10, rel=0.05)


def _simulate(
    presence: LotPresence,
    epcs: list[str],
    *,
    p: float,
    rounds_per_s: float,
    seconds: float,
    start_s: float,
    removed: dict[str, float] | None = None,
    seed: int = 7,
) -> list:  # type: ignore[type-arg]
    rng = random.Random(seed)
    removed = removed or {}
    changes = []
    step = 1 / rounds_per_s
    t = start_s
    next_tick = start_s + 1
    while t < start_s + seconds:
        rows = [
            (e, 1, -5000, int(t * S))
            for e in epcs
            if (e not in removed or t < removed[e]) and rng.random() < p
        ]
        changes += presence.observe_rows("r1", rows)
        presence.reader_cycle(ReaderCycle("r1", (0,), int(t * S)))  # the round ended
        t += step
        if t >= next_tick:
            changes += presence.tick(int(t * S))
            next_tick += 1
    return changes


def test_no_false_departure_at_read_probability_0_6_over_hours() -> None:
    epcs = [sgtin96("0614141", "812345", i) for i in range(100)]
    presence = LotPresence([LotDefinition("LOT-A", frozenset(epcs))], started_us=0)
    changes = _simulate(presence, epcs, p=0.6, rounds_per_s=1.0, seconds=4 * 3600, start_s=0)
    # 100 tags x 4 h: about 860,000 reads with 40 % of them missed, and not one false alarm
    assert [c for c in changes if c.event == "tag_departed"] == []
    assert {c.event for c in changes} == {"tag_seen"}
    assert presence.counts()[0].present == 100


def test_removed_tag_departs_within_the_documented_bound() -> None:
    policy = SmoothingPolicy()
    epcs = [sgtin96("0614141", "812345", i) for i in range(20)]
    presence = LotPresence([LotDefinition("LOT-A", frozenset(epcs))], 0, policy=policy)
    p, rate = 0.6, 1.0
    removed_at = 600.0
    changes = _simulate(
        presence,
        epcs,
        p=p,
        rounds_per_s=rate,
        seconds=1200,
        start_s=0,
        removed={epcs[3]: removed_at},
    )
    departed = [c for c in changes if c.event == "tag_departed"]
    assert [c.epc for c in departed] == [epcs[3]]
    delay_s = departed[0].at_us / S - removed_at
    # the window (23 x 1.67 s, over the lot's 30 s move window) or the 39 cycles of proof
    # after the round that read it
    bound_s = policy.detection_bound_s(1 / (p * rate), move_window_s=30, cycles_per_s=rate)
    assert bound_s == 40
    # the running mean is an estimate: allow it 50 % error, plus one tick
    assert 0 < delay_s <= 1.5 * bound_s + 1
    assert departed[0].previous == "present"


def test_window_adapts_to_each_tags_read_rate() -> None:
    fast, slow = "AAAA0001", "AAAA0002"
    presence = LotPresence(
        [LotDefinition("L", frozenset({fast, slow}), absence_window_s=5.0)], 0
    )
    for i in range(200):
        presence.observe_rows("r1", [(fast, 1, None, S + i * 33_000)])
    for i in range(30):
        presence.observe_rows("r1", [(slow, 1, None, S + i * 20 * S)])
    fast_window, slow_window = presence.window_of(fast), presence.window_of(slow)
    assert fast_window == 5.0  # 23 x 33 ms, floored at the lot's 5 s move window
    assert 400 < slow_window <= 600  # 23 x 20 s = 460 s
    # the slow tag survives a 6-minute silence that would condemn the fast one (the reader
    # cycling once a second all along)
    end = S + 29 * 20 * S + 360 * S
    for t in range(S, end + 1, S):
        presence.reader_cycle(ReaderCycle("r1", (0,), t))
    changes = presence.tick(end)
    assert [(c.epc, c.state) for c in changes] == [(fast, "missing")]


def _cycles(presence: LotPresence, from_s: float, to_s: float, per_s: float = 4.0) -> None:
    """The reader completes rounds (no tag answering) from ``from_s`` to ``to_s``."""
    t = from_s
    while t <= to_s:
        presence.reader_cycle(ReaderCycle("r1", (0,), int(t * S)))
        t += 1 / per_s


def test_returned_and_unknown_semantics() -> None:
    epc = "AAAA0001"
    presence = LotPresence([LotDefinition("L", frozenset({epc}), absence_window_s=10)], 0)
    assert presence.state_of(epc) == "unknown"
    [seen] = presence.observe(TagObservation(epc, 1, -5000, 1 * S, "r1"))
    assert (seen.event, seen.previous) == ("tag_seen", "unknown")
    _cycles(presence, 1.25, 20)
    [gone] = presence.tick(20 * S)
    assert gone.event == "tag_departed"
    [back] = presence.observe(TagObservation(epc, 1, -5000, 21 * S, "r1"))
    assert back.event == "tag_returned"
    # reader offline: unknown, never missing, however long it lasts
    [unknown] = presence.reader_offline("r1", 22 * S)
    assert unknown.state == "unknown" and unknown.event == "tag_unknown"
    assert presence.tick(3600 * S) == []
    presence.reader_online("r1", 3600 * S)
    _cycles(presence, 3600, 3605)
    assert presence.tick(3605 * S) == []  # a fresh window after the reader returns
    _cycles(presence, 3605.25, 3650)
    [after] = presence.tick(3650 * S)
    assert after.state == "missing"


def test_a_missing_tag_stays_missing_when_its_reader_goes_down() -> None:
    """Missing -> unknown would read as a return to whoever counts the missing; only a read is
    one."""
    epc = "AAAA0001"
    presence = LotPresence([LotDefinition("L", frozenset({epc}), absence_window_s=10)], 0)
    presence.observe(TagObservation(epc, 1, -5000, 1 * S, "r1"))
    _cycles(presence, 1.25, 20)
    [gone] = presence.tick(20 * S)
    assert gone.state == "missing"
    assert presence.reader_offline("r1", 21 * S) == []
    assert presence.tick(3600 * S) == [] and presence.state_of(epc) == "missing"
    presence.reader_online("r1", 3600 * S)
    [back] = presence.observe(TagObservation(epc, 1, -5000, 3601 * S, "r1"))
    assert (back.event, back.previous) == ("tag_returned", "missing")


def test_never_read_tags_go_missing_after_the_lot_window_unless_a_reader_is_down() -> None:
    presence = LotPresence([LotDefinition("L", frozenset({"AAAA0001"}), 30)], started_us=0)
    presence.reader_offline("r1", 1 * S)
    assert presence.tick(100 * S) == []
    presence.reader_online("r1", 100 * S)
    # the returning reader gets the lot's window to inventory it before anything is missed
    _cycles(presence, 100, 101)
    assert presence.tick(101 * S) == []
    # a window later, but the reader has not proved it was reading: still unknown
    assert presence.tick(131 * S) == []
    _cycles(presence, 101.25, 131)
    [missing] = presence.tick(131 * S)
    assert missing.previous == "unknown" and missing.state == "missing"


def test_unexpected_tags_are_counted_not_dropped() -> None:
    presence = LotPresence([LotDefinition("L", frozenset({"AAAA0001"}))], 0)
    rows = [("BBBB0001", 1, None, S), ("BBBB0001", 2, None, 2 * S), ("CCCC0001", 1, None, S)]
    assert presence.observe_rows("dock-1", rows) == []
    assert presence.unexpected_reads == 3
    assert presence.unexpected_tags == 2
    first = {u.epc: u for u in presence.unexpected(only_new=True)}
    assert first["BBBB0001"].reads == 2 and first["BBBB0001"].last_seen_us == 2 * S
    assert presence.unexpected(only_new=True) == []
    presence.observe_rows("dock-1", [("DDDD0001", 1, None, 3 * S)])
    assert [u.epc for u in presence.unexpected(only_new=True)] == ["DDDD0001"]


def test_pattern_lot_counts_members_never_read() -> None:
    pattern = Gs1Pattern.parse("urn:epc:idpat:sgtin:0614141.812345.[1-10]")
    lot = LotDefinition("P", patterns=(pattern,), absence_window_s=30)
    presence = LotPresence([lot], started_us=0)
    rows = [(sgtin96("0614141", "812345", s), 1, None, S) for s in range(1, 8)]
    rows.append((sgtin96("0614141", "812345", 11), 1, None, S))  # outside the range
    changes = presence.observe_rows("r1", rows)
    assert len(changes) == 7 and presence.unexpected_reads == 1
    [count] = presence.counts()
    assert (count.expected, count.present, count.unknown, count.missing) == (10, 7, 3, 0)
    presence.observe_rows("r1", [(e, 1, None, 30 * S) for e, *_ in rows[:7]])
    _cycles(presence, 0, 35)
    assert presence.tick(35 * S) == []  # past the lot's window: the 3 never read are missing
    [count] = presence.counts()
    assert (count.expected, count.present, count.missing) == (10, 7, 3)


def test_an_epc_in_two_lots_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="in lots"):
        LotPresence(
            [LotDefinition("A", frozenset({"AAAA"})), LotDefinition("B", frozenset({"AAAA"}))], 0
        )


# -- zones ---------------------------------------------------------------------------------


def test_zone_changes_need_a_clear_margin_and_several_reads() -> None:
    tracker = ZoneTracker(
        [
            ZoneDefinition("dock-1", frozenset({1})),
            ZoneDefinition("bay-A", frozenset({2}), min_rssi_cdbm=-7000),
        ],
        margin_cdbm=300,
        confirm_reads=3,
    )
    first = tracker.observe("r1", "E1", 1, -5000, 1)
    assert first is not None and (first.zone, first.previous) == ("dock-1", None)
    # the neighbour bay hears it about as loudly: no flapping
    for i in range(10):
        assert tracker.observe("r1", "E1", 2, -5100 + (i % 2) * 200, 10 + i) is None
        assert tracker.observe("r1", "E1", 1, -5000, 20 + i) is None
    # too weak to count at all for bay-A
    assert tracker.observe("r1", "E1", 2, -7500, 50) is None
    # clearly louder in bay-A, on three reads in a row
    moves = [tracker.observe("r1", "E1", 2, -3000, 100 + i) for i in range(6)]
    changed = [m for m in moves if m is not None]
    assert len(changed) == 1 and (changed[0].zone, changed[0].previous) == ("bay-A", "dock-1")
    assert tracker.zone_of("E1") == "bay-A"
    assert tracker.observe("r1", "E1", 9, -3000, 200) is None  # an antenna in no zone


def test_inline_running_mean_matches_the_documented_rule() -> None:
    """presence.py inlines smoothing.updated_mean_gap for speed; they must agree."""
    from edge.rfid.smoothing import updated_mean_gap

    policy = SmoothingPolicy(warmup_gaps=1, min_window_s=0.001)
    lot = LotDefinition("L", frozenset({"AAAA0001"}), absence_window_s=0.001)
    presence = LotPresence([lot], 0, policy=policy)
    rng = random.Random(11)
    t = S
    presence.observe_rows("r1", [("AAAA0001", 1, None, t)])
    mean = 0.0
    for gaps_before in range(100):
        gap = rng.randint(1_000, 3 * S)
        t += gap
        presence.observe_rows("r1", [("AAAA0001", 1, None, t)])
        mean = updated_mean_gap(mean, gaps_before, gap)
        expected = policy.window_us(mean, gaps_before + 1, 0) / 1e6
        assert presence.window_of("AAAA0001") == pytest.approx(expected, rel=1e-9)


# -- the aggregated report path (one row per tag per report) ------------------------------


def _both_paths(reads_of: dict[int, list[tuple[str, int]]], rounds: int, round_us: int,
                per_report: int, lot: LotDefinition, policy: SmoothingPolicy, ticks_s: int
                ) -> tuple[list[tuple[str, str, int]], list[tuple[str, str, int]],
                           LotPresence, LotPresence]:
    """The same stream (reads per round) fed per read and as aggregated reports, with the same
    cycles and ticks; the decisions each path made, in order."""
    per_read = LotPresence([lot], 0, policy=policy)
    by_report = LotPresence([lot], 0, policy=policy)
    seen: list[list[tuple[str, str, int]]] = [[], []]
    next_tick = S
    for start in range(0, rounds, per_report):
        ends = [(r + 1) * round_us for r in range(start, min(start + per_report, rounds))]
        report_us = ends[-1]
        while next_tick <= report_us:  # the gateway's ticks before the report arrives
            for i, p in enumerate((per_read, by_report)):
                seen[i] += [(c.epc, c.state, c.at_us) for c in p.tick(next_tick)]
            next_tick += S
        reads = sorted((t, epc) for r in range(start, start + len(ends))
                       for epc, t in reads_of.get(r, []))
        changes = per_read.observe_rows("r1", [(epc, 1, -5000, t) for t, epc in reads])
        rows: dict[str, list[int]] = {}
        for t, epc in reads:
            row = rows.setdefault(epc, [t, t, 0])
            row[1], row[2] = t, row[2] + 1
        changes2 = by_report.observe_seen(
            "r1", [(epc, 1, -5000, f, last, n) for epc, (f, last, n) in rows.items()])
        seen[0] += [(c.epc, c.state, c.at_us) for c in changes]
        seen[1] += [(c.epc, c.state, c.at_us) for c in changes2]
        for end in ends:
            for p in (per_read, by_report):
                p.reader_cycle(ReaderCycle("r1", (), end))
    while next_tick <= ticks_s * S:
        for i, p in enumerate((per_read, by_report)):
            seen[i] += [(c.epc, c.state, c.at_us) for c in p.tick(next_tick)]
        next_tick += S
    return seen[0], seen[1], per_read, by_report


def test_aggregated_reports_decide_as_the_same_reads_one_by_one() -> None:
    # Evenly spaced reads (each tag every other round, then every round), a window the read
    # rate sets (no floor binds): the same departures at the same ticks, and the same learned
    # window as the rate changes.
    epcs = [sgtin96("0614141", "812345", n) for n in range(4)]
    lot = LotDefinition("L", frozenset(epcs), absence_window_s=2.0, move_window_s=0.1)
    policy = SmoothingPolicy(min_window_s=0.1, cycle_read_probability=0.5,
                             false_missing_bound=1e-3)
    round_us, rounds = 100_000, 600  # 10 rounds/s for 60 s
    gone = {epcs[0]: 300, epcs[1]: 450}  # last round each is read in
    reads_of: dict[int, list[tuple[str, int]]] = {}
    for r in range(rounds):
        if r % 2 == 0 or r >= 500:
            reads_of[r] = [(e, (r + 1) * round_us - 50_000) for e in epcs
                           if r <= gone.get(e, r)]
    a, b, per_read, by_report = _both_paths(reads_of, rounds, round_us, 10, lot, policy, 70)
    assert [x for x in a if x[1] == "missing"], "the test must see departures"
    assert a == b
    for e in epcs[2:]:
        assert by_report.window_of(e) == pytest.approx(per_read.window_of(e), rel=1e-9)
        # k x a mean on its way from the 0.2 s gap to the 0.1 s one
        assert 23 * 0.1 < by_report.window_of(e) < 23 * 0.2


def test_aggregated_reports_decide_as_random_reads_one_by_one() -> None:
    # Reads drawn per round (p 0.4-0.9), tags leaving at random: the report path hides
    # when the inner reads were, yet decides the same departures at the same moments.
    rng = random.Random(7)
    epcs = [sgtin96("0614141", "812345", n) for n in range(30)]
    p_of = {e: rng.uniform(0.4, 0.9) for e in epcs}
    gone = {e: rng.randrange(200, 900) for e in rng.sample(epcs, 10)}
    lot = LotDefinition("L", frozenset(epcs), absence_window_s=20.0)
    round_us, rounds = 250_000, 1600  # 4 rounds/s for 400 s, a report per 8 rounds
    reads_of = {r: [(e, r * round_us + rng.randrange(1, round_us)) for e in epcs
                    if r <= gone.get(e, rounds) and rng.random() < p_of[e]]
                for r in range(rounds)}
    a, b, _, _ = _both_paths(reads_of, rounds, round_us, 8, lot, SmoothingPolicy(), 420)
    assert len([x for x in a if x[1] == "missing"]) == 10
    assert a == b


def test_aggregated_report_is_bounded_whatever_its_count_says() -> None:
    # An untrusted report: a count of 10^9 costs one row, a first read after the last is
    # taken as the last, and a tag in no lot counts every read it claims.
    tag = sgtin96("0614141", "812345", 1)
    stranger = sgtin96("0614141", "812345", 99)
    p = LotPresence([LotDefinition("L", frozenset({tag}))], 0)
    changes = p.observe_seen("r1", [(tag, 1, None, 9 * S, 5 * S, 10**9),
                                    (stranger, 1, None, S, 2 * S, 7)])
    assert [(c.state, c.at_us) for c in changes] == [("present", 5 * S)]
    assert p.unexpected_reads == 7
    assert p.unexpected()[0].last_seen_us == 2 * S
    assert p.window_of(tag) == pytest.approx(30.0)  # warm-up: the lot's window


def test_ticks_within_every_floor_decide_as_full_passes() -> None:
    # A tick skips its pass while every tag not missing is within its floor (the runner's
    # speed). On a random stream (tags leaving, coming back, a reader down for a while, a
    # report's rounds given at once) it decides what a pass on every tick decides, at the same
    # moments.
    rng = random.Random(11)
    epcs = [sgtin96("0614141", "812345", n) for n in range(30)]
    away = {e: (rng.randrange(100, 500), rng.randrange(500, 900)) for e in epcs[:12]}
    lots = [LotDefinition("L", frozenset(epcs[:20]), absence_window_s=20.0),
            LotDefinition("M", frozenset(epcs[20:]), absence_window_s=60.0, move_window_s=40.0)]
    skipping = LotPresence(lots, 0)
    full = LotPresence(lots, 0)
    seen: list[list[tuple[str, str, int]]] = [[], []]
    for second in range(1, 1000):
        now = second * S
        if second % 2 == 0 and not 300 <= second < 360:  # a report every 2 s, r1 down a while
            rows = [(e, 1, -5000, now - S + rng.randrange(S // 2), now - rng.randrange(S // 2),
                     rng.randrange(2, 5)) for e in epcs
                    if not away.get(e, (0, 0))[0] <= second < away.get(e, (0, 0))[1]
                    and rng.random() < 0.7]
            seen[0] += [(c.epc, c.state, c.at_us) for c in skipping.observe_seen("r1", rows)]
            seen[1] += [(c.epc, c.state, c.at_us) for c in full.observe_seen("r1", rows)]
            ends = [now - S, now - S // 2, now]
            skipping.reader_cycles("r1", (), ends)
            for end in ends:
                full.reader_cycle(ReaderCycle("r1", (), end))
        if second == 330:
            seen[0] += [(c.epc, c.state, c.at_us) for c in skipping.reader_offline("r1", now)]
            seen[1] += [(c.epc, c.state, c.at_us) for c in full.reader_offline("r1", now)]
        if second == 360:
            skipping.reader_online("r1", now)
            full.reader_online("r1", now)
        full._quiet_until_us = -1  # a pass on every tick
        seen[0] += [(c.epc, c.state, c.at_us) for c in skipping.tick(now)]
        seen[1] += [(c.epc, c.state, c.at_us) for c in full.tick(now)]
    states = {state for _, state, _ in seen[1]}
    assert {"missing", "present", "unknown"} <= states, "the stream must exercise every move"
    assert seen[0] == seen[1]
