"""Integrity: lots reconciled per second, shipments judged per second, and verdict accuracy.

Measured, on one core: 100,000 lots, each a receipt and four sensors (RFID, pallet labels, load
cell, stack camera) with two stored readings per sensor half an hour apart, reconciled from the
stored fact rows (grouped by lot in one pass, fed to a :class:`LotWatch`, evaluated after each
reading's batch so persistence is judged); then 10,000 shipments judged against their tracks
(a fix every 5 minutes), gate plate reads and tag movements.

The populations carry their ground truth: count frauds (a third of the tags and labels gone),
weight swaps (every tag present, 30 % of the weight gone), noise within tolerance, brief
disagreements that clear, stale wrong figures; genuine deliveries with full tracks or GPS gaps,
phantom deliveries (continuous track that never reaches the destination), goods that never left
(tags still read at the origin) and spoofed tracks (arrival faster than a vehicle). Issue 17's
stories (benchmarks/_integrity_stories.py) are scored with them. ``false_verdicts``: a genuine
lot or shipment called a fraud, or a fraud called the wrong one; ``missed_frauds``: a fraud not
caught.

Baseline (the naive store): the same decisions, but each lot's facts found by scanning every
stored row, as a query on an unindexed table would. Its cost per lot grows with the table, so it
runs for a capped time on the first lots against the full table: its per-lot rate is the rate at
full size, measured, not extrapolated.
"""

from __future__ import annotations

import argparse
import random
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from benchmarks._integrity_stories import STORIES
from benchmarks._report import peak_rss_mb, print_figures, print_table
from decisions.reconciliation import (
    Declaration,
    Family,
    Figure,
    LotWatch,
    MismatchFinding,
    Source,
    Tolerance,
)
from decisions.shipments import (
    Direction,
    Place,
    PlateRead,
    Shipment,
    ShipmentFacts,
    TagMovement,
    TrackFix,
    Verdict,
    judge,
)

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
EARLY, LATE = NOW - 30 * MIN, NOW - MIN
SENSORS = (Source.RFID, Source.LABELS, Source.LOAD_CELL, Source.CAMERA)

# Lot kinds and the finding each must produce (None: none).
LOT_KINDS: list[tuple[str, float, Family | None]] = [
    ("clean", 0.90, None),
    ("noise within tolerance", 0.03, None),
    ("brief disagreement", 0.02, None),
    ("stale wrong figure", 0.01, None),
    ("count fraud", 0.02, Family.COUNT),
    ("weight swap", 0.02, Family.WEIGHT),
]

FactRow = tuple[int, Source, float, datetime]


def _pick(rng: random.Random, kinds: list[tuple[str, float, Any]]) -> int:
    x = rng.random()
    for i, (_, share, _) in enumerate(kinds):
        x -= share
        if x < 0:
            return i
    return 0


def make_lots(n: int, seed: int = 1) -> tuple[list[Declaration], list[FactRow], list[int]]:
    rng = random.Random(seed)
    declarations: list[Declaration] = []
    rows: list[FactRow] = []
    kinds: list[int] = []
    for i in range(n):
        pieces = rng.randint(20, 400)
        unit = rng.choice([12.5, 25.0, 50.0, 1000.0])
        pallets = -(-pieces // 20)
        decl = Declaration(f"LOT-{i:06d}", pieces, unit, NOW - timedelta(days=rng.randint(1, 60)),
                           pallets=pallets, tare_kg=pallets * 20.0)
        kind = _pick(rng, LOT_KINDS)
        declarations.append(decl)
        kinds.append(kind)
        name = LOT_KINDS[kind][0]
        for at in (EARLY, LATE):
            tags, labels, kg, cams = float(pieces), float(pieces), decl.expected_kg, float(pallets)
            if name == "noise within tolerance":
                kg *= 1 + rng.uniform(-0.008, 0.008)
            elif name == "brief disagreement" and at == EARLY:
                kg += 900.0  # a forklift on the scale
            elif name == "count fraud":
                tags = labels = float(pieces - max(1, pieces // 3))
                kg = decl.expected_kg - (pieces - tags) * unit
                cams = float(-(-int(tags) // 20))
            elif name == "weight swap":
                kg *= 0.7
            figures = {Source.RFID: tags, Source.LABELS: labels, Source.LOAD_CELL: kg,
                       Source.CAMERA: cams}
            for source in SENSORS:
                rows.append((i, source, figures[source], at))
        if name == "stale wrong figure":
            rows.append((i, Source.CAMERA, float(pallets + 3), NOW - timedelta(days=2)))
    rng.shuffle(rows)  # stored rows come back in no particular order
    return declarations, rows, kinds


def reconcile_lot(decl: Declaration, facts: list[FactRow], tolerance: Tolerance) -> list[
    MismatchFinding
]:
    watch = LotWatch(decl, tolerance)
    findings: list[MismatchFinding] = []
    for batch_at in (EARLY, LATE):
        for _, source, value, at in facts:
            if at <= batch_at:
                watch.observe(Figure(source, value, at))
        findings = watch.evaluate(batch_at)[1]
    return findings


def reconcile_all(
    declarations: list[Declaration], rows: list[FactRow], tolerance: Tolerance
) -> list[list[MismatchFinding]]:
    by_lot: dict[int, list[FactRow]] = defaultdict(list)
    for row in rows:
        by_lot[row[0]].append(row)
    return [reconcile_lot(d, by_lot.get(i, []), tolerance) for i, d in enumerate(declarations)]


def score_lots(kinds: list[int], results: list[list[MismatchFinding]]) -> tuple[int, int]:
    false_verdicts = missed = 0
    for kind, findings in zip(kinds, results, strict=True):
        expected = LOT_KINDS[kind][2]
        families = {f.family for f in findings}
        if expected is None:
            false_verdicts += bool(families)
        elif expected not in families:
            missed += 1
        elif expected is Family.WEIGHT and families != {Family.WEIGHT}:
            false_verdicts += 1
    return false_verdicts, missed


# Shipments ------------------------------------------------------------------------------------

SHIPMENT_KINDS: list[tuple[str, float, bool]] = [  # name, share, is a fraud
    ("genuine, full track", 0.76, False),
    ("genuine, GPS gap", 0.08, False),
    ("genuine, destination readers down", 0.04, False),
    ("phantom delivery", 0.06, True),
    ("goods never left", 0.03, True),
    ("spoofed track", 0.03, True),
]
ORIGIN = Place("warehouse-a", 31.23, 121.47, 300.0, site="site-a")


def make_shipments(n: int, seed: int = 2) -> tuple[list[Shipment], list[ShipmentFacts], list[int]]:
    rng = random.Random(seed)
    shipments: list[Shipment] = []
    facts: list[ShipmentFacts] = []
    kinds: list[int] = []
    for i in range(n):
        kind = _pick(rng, SHIPMENT_KINDS)
        name = SHIPMENT_KINDS[kind][0]
        dest = Place(f"dest-{i}", 31.23 + rng.uniform(-0.5, 0.5), 121.47 + rng.uniform(0.3, 0.8),
                     300.0, site=f"site-{i % 50}")
        start = NOW - timedelta(days=2) + timedelta(minutes=rng.randint(0, 600))
        epcs = frozenset(f"E{i:06d}{k:03d}" for k in range(10))
        s = Shipment(f"SHP-{i}", "site-a", Direction.OUTBOUND, "Buyer", ORIGIN, dest,
                     f"沪A{i % 100000:05d}", start, start + timedelta(hours=4), tracker=f"trk-{i}",
                     epcs=epcs)
        target = (dest.lat, dest.lon)
        if name == "phantom delivery":
            target = (ORIGIN.lat - 0.3, ORIGIN.lon - 0.3)
        fixes = [TrackFix(start + k * 5 * MIN, ORIGIN.lat, ORIGIN.lon) for k in range(3)]
        legs = 30  # 150 minutes out
        for k in range(1, legs + 1):
            fixes.append(TrackFix(start + (10 + 5 * k) * MIN,
                                  ORIGIN.lat + (target[0] - ORIGIN.lat) * k / legs,
                                  ORIGIN.lon + (target[1] - ORIGIN.lon) * k / legs))
        arrive = fixes[-1].at
        fixes += [TrackFix(arrive + k * 5 * MIN, *target) for k in range(1, 13)]
        if name == "phantom delivery":  # parked elsewhere, reporting all along
            fixes += [TrackFix(arrive + k * 5 * MIN, *target) for k in range(13, 12 * 11)]
        fixes += [TrackFix(arrive + timedelta(hours=8) + k * 5 * MIN, *target) for k in range(6)]
        if name == "genuine, GPS gap":
            fixes = [f for f in fixes if not start + 30 * MIN < f.at < arrive + timedelta(hours=8)]
        if name == "spoofed track":
            fixes = [*fixes[:3], TrackFix(start + 20 * MIN, dest.lat, dest.lon)]
        plates = [PlateRead("site-a", s.plate, True, start + 12 * MIN)]
        tags = [TagMovement(e, "site-a", True, start + 12 * MIN) for e in epcs]
        if name == "goods never left":
            tags = [TagMovement(e, "site-a", False, start + timedelta(hours=9)) for e in epcs]
        elif name != "phantom delivery":
            plates.append(PlateRead(dest.site or "", s.plate, False, arrive))
            if name != "genuine, destination readers down":
                tags += [TagMovement(e, dest.site or "", False, arrive + 5 * MIN) for e in epcs]
        # The destination's readers are proven reading after the window, unless they are down.
        alive = frozenset() if name == "genuine, destination readers down" else frozenset(
            {dest.site or ""})
        shipments.append(s)
        facts.append(ShipmentFacts(fixes=fixes, plates=plates, tags=tags, readers_alive=alive))
        kinds.append(kind)
    return shipments, facts, kinds


def score_shipments(kinds: list[int], verdicts: list[Verdict]) -> tuple[int, int]:
    false_verdicts = missed = 0
    for kind, verdict in zip(kinds, verdicts, strict=True):
        fraud = SHIPMENT_KINDS[kind][2]
        if fraud:
            missed += verdict is not Verdict.CONTRADICTED
        else:
            false_verdicts += verdict is Verdict.CONTRADICTED
    return false_verdicts, missed


def _naive_lot_rate(
    declarations: list[Declaration], rows: list[FactRow], tolerance: Tolerance, seconds: float
) -> tuple[int, float]:
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds and done < len(declarations):
        facts = [row for row in rows if row[0] == done]  # the unindexed query
        reconcile_lot(declarations[done], facts, tolerance)
        done += 1
    return done, done / (time.perf_counter() - t0)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks integrity")
    parser.add_argument("--lots", type=int, default=100_000)
    parser.add_argument("--shipments", type=int, default=10_000)
    parser.add_argument("--baseline-seconds", type=float, default=5.0)
    args = parser.parse_args(argv)
    tolerance = Tolerance()

    declarations, rows, lot_kinds = make_lots(args.lots)
    t0 = time.perf_counter()
    lot_results = reconcile_all(declarations, rows, tolerance)
    lots_s = time.perf_counter() - t0
    lot_false, lot_missed = score_lots(lot_kinds, lot_results)

    shipments, facts, shipment_kinds = make_shipments(args.shipments)
    t0 = time.perf_counter()
    verdicts = [judge(s, f, NOW).verdict for s, f in zip(shipments, facts, strict=True)]
    shipments_s = time.perf_counter() - t0
    ship_false, ship_missed = score_shipments(shipment_kinds, verdicts)

    stories = [story() for story in STORIES]
    story_false = sum(o.false_alarm or (not o.fraud and not o.as_expected) for o in stories)
    story_missed = sum(o.fraud and not o.as_expected for o in stories)

    # Baseline: same decisions, each lot's facts found by a scan of every row.
    sampled, naive_capped_rate = _naive_lot_rate(
        declarations, rows, tolerance, args.baseline_seconds
    )
    # The scan's cost is proportional to the table; the capped run already scans the full table,
    # so its per-lot rate is the rate at full size.
    naive_lots_per_s = naive_capped_rate

    lots_per_s = args.lots / lots_s
    shipments_per_s = args.shipments / shipments_s
    false_verdicts = lot_false + ship_false + story_false
    missed_frauds = lot_missed + ship_missed + story_missed
    print_table(
        f"Integrity: {args.lots:,} lots x 5 sources, {args.shipments:,} shipments (one core)",
        [
            ("lots reconciled/s", round(lots_per_s, 1)),
            (f"{args.lots:,} lots, s", round(lots_s, 2)),
            ("shipments judged/s", round(shipments_per_s, 1)),
            (f"{args.shipments:,} shipments, s", round(shipments_s, 2)),
            ("baseline (row scan per lot): lots sampled", sampled),
            ("baseline lots/s (at full table size)", round(naive_lots_per_s, 2)),
            ("lots: false verdicts / missed", f"{lot_false} / {lot_missed}"),
            ("shipments: false verdicts / missed", f"{ship_false} / {ship_missed}"),
            ("stories: false verdicts / missed", f"{story_false} / {story_missed}"),
            ("peak RSS MB", peak_rss_mb()),
        ],
    )
    for outcome in stories:
        print(f"  story: {outcome.name}: expected {outcome.expected}, "
              f"{'ok' if outcome.as_expected else 'WRONG'}")
    print_figures(
        {
            "lots": args.lots,
            "shipments": args.shipments,
            "lots_per_s": round(lots_per_s, 1),
            "shipments_per_s": round(shipments_per_s, 1),
            "baseline_lots_per_s": round(naive_lots_per_s, 2),
            "baseline_lots_sampled": sampled,
            "ratio": round(lots_per_s / naive_lots_per_s, 1),
            "false_verdicts": false_verdicts,
            "missed_frauds": missed_frauds,
        }
    )
    return 0
