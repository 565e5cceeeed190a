"""`python -m benchmarks scenarios`: a simulated week of a 4-reader warehouse, from raw signals
through the edge's real decisions (firmware_sim/world), judged against the ground truth.

The world: 4 readers (2 antennas each, one pledge zone per reader, 2 read rounds/s, a report
every ``--report-s``), 2 lots per reader; every day 3 interference episodes per reader (read
probability 0.85 -> 0.45 for 20-60 min), 4 forklift reshuffles per reader in working hours
(pallets moved between the zone's two antennas, 8 s unread), one approved release on working
days (5 pieces, the authorised truck in its window, the door open); and one injected theft per
night (4 pieces, 01:00-04:00), corroborated (door open, unknown truck) on even nights and not on
odd ones. Each theft is a labelled incident.

Figures: ``simulated_hours_per_s`` is the whole pipeline, end to end: the week generated and
run through the value-level runner (``run_worlds``: every report drawn, every decision made)
over wall time, with the generation in a worker process where the machine has a second core
(``--single-process``: in one process; ``headline`` says which).
Both are measured each run: ``single_process_hours_per_s`` and ``pipelined_hours_per_s``
(the worker's start-up in its wall time; the ``*_per_cpu_s`` figures over the CPU time of
the process and its worker), and ``same_decisions_pipelined`` compares their alerts. Its
parts: ``generation_hours_per_s``, the generation alone as the runner takes it
(``generate_chunks``: reports as columns), and ``runner_hours_per_s``, the rest of the single
process's time; ``generation_ahead_hours_per_s``, the chunks as the worker delivers them;
``signals_hours_per_s`` is the object stream players take (``World.signals``: one
``ReadReport`` object per report). The runner skips ticks nothing is due at and takes quiet
stretches of reports at once (firmware_sim/world/runner.py ``feed_chunk``), deciding as the
per-tick path does: ``same_decisions_on_prefix`` compares the two on the baseline prefix.
``false_alarms_per_warehouse_day``: alerts not explained by a theft under way (a theft.* alert
on a stolen lot, or the door/plate of that theft, within an hour of it) per simulated day.
``theft_detect_p95_s``: p95 over incidents of the time from the first
piece leaving to the first theft alert on its lot, raised or updated (``corroborated_p95_s`` and
``uncorroborated_p95_s`` split it; the targets are 60 s and the lot's absence window).
``precision``: explained alerts over all alerts; ``recall``: incidents detected over incidents.

``hours_per_s_by_report_s``: the end-to-end rate of one day of the same warehouse with reports
every 1, 2, 10 and 30 s (its cost is per report row, not per read).

Baselines, same run, on a prefix of the week (``--baseline-hours``, which holds the first
night's theft): the per-tick runner (``baseline_per_tick_hours_per_s``: the object stream, each
report fed on its own, a tick every simulated second, the path before this one), the naive
per-read runner (``runner_per_read_hours_per_s``: each report's rows expanded into their reads
through the station's per-read path) and the naive generation (one Python random draw per tag
per read round, one ``TagRead`` per read, on the first half hour).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import time
from datetime import datetime, timedelta
from typing import Any

from benchmarks._report import peak_rss_mb, print_figures, print_table
from firmware_sim.world.generate import generate_chunks, generate_chunks_ahead
from firmware_sim.world.model import World
from firmware_sim.world.runner import Outcome, run_worlds
from firmware_sim.world.signals import TagRead

HOUR = 3600.0
DAY = 86400.0


def week_world(days: int, report_s: float, pieces: int, seed: int,
               absence_window_s: float) -> World:
    rng = random.Random(seed)
    start = datetime(2026, 11, 23, 0, 0)  # a Monday, local time
    readers = [{"name": f"r{i}", "rounds_per_s": 2, "report_interval_s": report_s,
                "antennas": [{"port": 1, "zone": f"pz-{i}"}, {"port": 2, "zone": f"pz-{i}"}]}
               for i in range(1, 5)]
    lots = [{"name": f"L{i}{j}", "pieces": pieces, "at": [f"r{i}/1", f"r{i}/2"],
             "absence_window_s": absence_window_s}
            for i in range(1, 5) for j in "ab"]
    interference, moves, departures, doors, vehicles, releases = [], [], [], [], [], []
    for d in range(days):
        day0 = d * DAY
        weekday = (start + timedelta(days=d)).weekday()
        for i in range(1, 5):
            for _ in range(3):
                interference.append({"at_s": day0 + rng.uniform(0, DAY - 4000),
                                     "for_s": rng.uniform(1200, 3600),
                                     "read_probability": 0.45, "at": [f"r{i}"]})
            if weekday < 5:
                for k in range(4):
                    lot = f"L{i}{'ab'[k % 2]}"
                    moves.append({"at_s": day0 + 8 * HOUR + k * 2 * HOUR + rng.uniform(0, 600),
                                  "lot": lot, "pieces": 3, "skip": 0,
                                  "path": [f"r{i}/{1 + (k + d) % 2}"], "gap_s": 8,
                                  "dwell_s": 0})
        if weekday < 5 and d < 7:
            i = 1 + d % 4
            lot = f"L{i}b"
            t = day0 + 10 * HOUR
            releases.append({"lot": lot, "pieces": 1, "vehicles": ["AB12345"],
                             "from_s": t, "to_s": t + 2 * HOUR})
            vehicles.append({"at_s": t + 600, "plate": "AB12345", "direction": "in"})
            doors.append({"at_s": t + 900, "door": "dock-1", "open_s": 900})
            departures.append({"at_s": t + 1000, "lot": lot, "pieces": 1, "spread_s": 60,
                               "kind": "release"})
            vehicles.append({"at_s": t + 2400, "plate": "AB12345", "direction": "out"})
        i = 1 + (d + 2) % 4
        lot = f"L{i}a"
        t = day0 + HOUR + rng.uniform(0, 3 * HOUR)
        departures.append({"at_s": t, "lot": lot, "pieces": 2, "spread_s": 20,
                           "incident": f"theft-{d}{'-c' if d % 2 == 0 else '-u'}"})
        if d % 2 == 0:
            doors.append({"at_s": t - 20, "door": "dock-1", "open_s": 180})
            vehicles.append({"at_s": t + 45, "plate": "ZZ99999", "direction": "out"})
    return World.model_validate({
        "site": "bench-wh", "start": start, "duration_s": days * DAY, "readers": readers,
        "lots": lots, "interference": interference, "moves": moves, "departures": departures,
        "doors": doors, "vehicles": vehicles, "releases": releases,
        "authorised_vehicles": ["AB12345"]})


def naive_hours_per_s(world: World, hours: float, seed: int) -> float:
    """One draw per tag per round, one TagRead per read: the first ``hours`` of the world
    (no moves or departures happen that early: the steady state, its cheapest part)."""
    rng = random.Random(seed)
    tags = [(r["name"] if isinstance(r, dict) else r, epc)
            for lot in world.lots for epc in world.epcs(lot.name)
            for r in [lot.at[0].split("/")[0]]]
    rounds = int(hours * HOUR * 2)
    t0 = time.perf_counter()
    out = []
    for k in range(rounds):
        t_us = world.epoch_us + k * 500_000
        for reader, epc in tags:
            if rng.random() < 0.85:
                out.append(TagRead(t_us, reader, 1, epc))
        if len(out) > 100_000:
            out.clear()
    return hours / (time.perf_counter() - t0)


def score(world: World, outcome: Outcome) -> dict[str, Any]:
    incidents = [(d.incident, d.lot, world.at_us(d.at_s)) for d in world.departures
                 if d.incident]
    explained, false = 0, []
    for a in outcome.alerts:
        ok = False
        for _name, lot, t0 in incidents:
            near = -900e6 <= a.decided_us - t0 <= 3600e6
            if near and (a.subject == f"lot:{lot}" or a.subject.startswith(("door:", "vehicle:"))):
                ok = True
        if ok:
            explained += 1
        else:
            false.append(a)
    times: dict[str, float | None] = {}
    for name, lot, t0 in incidents:
        hits = [t for a in outcome.alerts if a.alert_type.startswith("theft.")
                and a.subject == f"lot:{lot}" for t in [a.said_since(t0)] if t is not None]
        times[name] = (min(hits) - t0) / 1e6 if hits else None

    def p95(values: list[float]) -> float | None:
        values = sorted(values)
        return round(values[max(0, math.ceil(0.95 * len(values)) - 1)], 1) if values else None

    found = [t for t in times.values() if t is not None]
    days = world.duration_s / DAY
    return {
        "false_alarms_per_warehouse_day": round(len(false) / days, 2),
        "theft_detect_p95_s": p95(found),
        "corroborated_p95_s": p95([t for n, t in times.items() if n.endswith("-c") and t]),
        "uncorroborated_p95_s": p95([t for n, t in times.items() if n.endswith("-u") and t]),
        "precision": round(explained / len(outcome.alerts), 3) if outcome.alerts else 1.0,
        "recall": round(len(found) / len(incidents), 3) if incidents else 1.0,
        "false_alarms": sorted({a.describe() for a in false})[:10],
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks scenarios", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--report-s", type=float, default=2.0, help="reader report period")
    parser.add_argument("--pieces", type=int, default=5, help="pieces per lot (8 lots)")
    parser.add_argument("--absence-window-s", type=float, default=120.0)
    parser.add_argument("--tick-s", type=float, default=1.0, help="presence tick")
    parser.add_argument("--baseline-hours", type=float, default=4.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--single-process", action="store_true",
                        help="headline from the run in one process (default: with the "
                             "generation in a worker process where the machine has a "
                             "second core, as the simulator runs a week)")
    args = parser.parse_args(argv)
    headline_pipelined = not args.single_process and (os.cpu_count() or 1) >= 2

    world = week_world(args.days, args.report_s, args.pieces, args.seed, args.absence_window_s)
    hours = world.duration_s / HOUR
    # End to end: generation and the runner, every decision made; in this process, then with
    # the generation in a worker process (its start-up in the wall time, its CPU time in the
    # CPU time: os.times counts a child once it has been waited for).
    ends: dict[bool, tuple[Outcome, float, float]] = {}
    for pipelined in (False, True):
        t0, c0 = time.perf_counter(), _cpu_s()
        out = run_worlds([world], args.seed, tick_s=args.tick_s, pipeline=pipelined)
        ends[pipelined] = out, time.perf_counter() - t0, _cpu_s() - c0
    outcome, run_s, run_cpu_s = ends[headline_pipelined]
    single_s, single_cpu_s = ends[False][1:]
    piped_s, piped_cpu_s = ends[True][1:]
    t0 = time.perf_counter()
    for _ in generate_chunks(world, args.seed):
        pass
    gen_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in generate_chunks_ahead(world, args.seed):
        pass
    ahead_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    signals = sum(1 for _ in world.signals(args.seed))
    stream_s = time.perf_counter() - t0
    # Baselines on a prefix, and the same decisions from both paths on it.
    prefix = world.model_copy(update={"duration_s": args.baseline_hours * HOUR})
    rates, outcomes = {}, {}
    for name, kwargs in (("fast", {}), ("per_tick", {"skip_idle": False}),
                         ("per_read", {"per_read": True, "skip_idle": False})):
        t0 = time.perf_counter()
        outcomes[name] = run_worlds([prefix], args.seed, tick_s=args.tick_s, **kwargs)
        rates[name] = args.baseline_hours / (time.perf_counter() - t0)
    same = _decisions(outcomes["fast"]) == _decisions(outcomes["per_tick"])
    baseline = naive_hours_per_s(world, 0.5, args.seed)
    # The cost is per report row: how it scales with the report period (one day each).
    by_period = {}
    for period in (1.0, 2.0, 10.0, 30.0):
        day = week_world(1, period, args.pieces, args.seed, args.absence_window_s)
        t0 = time.perf_counter()
        run_worlds([day], args.seed, tick_s=args.tick_s)
        by_period[f"{period:g}"] = round(24 / (time.perf_counter() - t0), 1)
    figures: dict[str, Any] = {
        "simulated_hours_per_s": round(hours / run_s, 1),
        # The same over this process's CPU time: the figure other processes on the
        # machine's cores do not halve.
        "simulated_hours_per_cpu_s": round(hours / run_cpu_s, 1),
        "headline": "pipelined" if headline_pipelined else "single_process",
        "single_process_hours_per_s": round(hours / single_s, 1),
        "single_process_hours_per_cpu_s": round(hours / single_cpu_s, 1),
        "pipelined_hours_per_s": round(hours / piped_s, 1),
        "pipelined_hours_per_cpu_s": round(hours / piped_cpu_s, 1),
        "generation_hours_per_s": round(hours / gen_s, 1),
        "runner_hours_per_s": round(hours / max(single_s - gen_s, 1e-9), 1),
        # The chunks from the worker alone: what the pipelined runner can at best be fed.
        "generation_ahead_hours_per_s": round(hours / ahead_s, 1),
        "signals_hours_per_s": round(hours / stream_s, 1),
        **score(world, outcome),
        "baseline_per_tick_hours_per_s": round(rates["per_tick"], 2),
        "prefix_hours_per_s": round(rates["fast"], 1),
        "speedup_vs_per_tick": round(hours / run_s / rates["per_tick"], 1),
        "same_decisions_on_prefix": same,
        "same_decisions_pipelined": _decisions(ends[True][0]) == _decisions(ends[False][0]),
        "prefix_alerts": len(outcomes["fast"].alerts),
        "runner_per_read_hours_per_s": round(rates["per_read"], 2),
        "baseline_naive_generation_hours_per_s": round(baseline, 2),
        "hours_per_s_by_report_s": by_period,
        "simulated_days": args.days,
        "tags": sum(lot.pieces for lot in world.lots),
        "signals": signals,
        "alerts": len(outcome.alerts),
        "peak_rss_mb": peak_rss_mb(),
    }
    print_table("scenarios: a simulated warehouse week through the edge's decisions", [
        ("simulated hours", hours),
        ("end to end (generation + runner), simulated h/s", figures["simulated_hours_per_s"]),
        ("  in one process, simulated h/s", figures["single_process_hours_per_s"]),
        ("  generation in a worker process, simulated h/s", figures["pipelined_hours_per_s"]),
        ("  both decide the same", figures["same_decisions_pipelined"]),
        ("generation alone (columns), simulated h/s", figures["generation_hours_per_s"]),
        ("signal objects (players' stream), simulated h/s", figures["signals_hours_per_s"]),
        ("per-tick runner baseline (prefix), h/s", figures["baseline_per_tick_hours_per_s"]),
        ("naive per-read runner (prefix), h/s", figures["runner_per_read_hours_per_s"]),
        ("naive generation, simulated h/s", figures["baseline_naive_generation_hours_per_s"]),
        ("same decisions as per-tick (prefix)", figures["same_decisions_on_prefix"]),
        ("false alarms per warehouse-day", figures["false_alarms_per_warehouse_day"]),
        ("theft detection p95 (s)", figures["theft_detect_p95_s"]),
        ("precision", figures["precision"]),
        ("recall", figures["recall"]),
    ])
    print_figures(figures)
    return 0


def _cpu_s() -> float:
    """This process's CPU time and that of its children waited for (a pipelined run's worker)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _decisions(outcome: Outcome) -> list[tuple[Any, ...]]:
    """Everything the judge reads of an outcome's alerts, and the sirens."""
    return [(a.site, a.alert_type, a.subject, a.raised_us, a.decided_us, a.decided_at,
             a.updates, a.updated_us, a.cleared_us, a.folded_into, a.pieces, a.explanation)
            for a in outcome.alerts] + [tuple(x) for x in outcome.alarms]
