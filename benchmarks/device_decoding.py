"""`python -m benchmarks device_decoding`: what the bounded, range-checked device decoders cost.

Impinj: an NDJSON stream of 20,000 tag events as an R700 sends them with its default fields
(base64url ``epc``, ``antennaPort``, ``peakRssiCdbm``), in 64 kB chunks, through
`LineSplitter` + `parse_event` (safejson limits, EPC/antenna/RSSI/time checks). Baseline, same
bytes: ``bytes.split(b"\\n")`` + ``json.loads`` + the dictionary look-ups and base64 decode with
no limit and no check (what an unguarded adapter does). Zebra: 200 batching-mode messages of 100
SIMPLE events through `parse_message`, against ``json.loads`` + look-ups. One core, best of 3.
"""

from __future__ import annotations

import argparse
import base64
import json
import time
from collections.abc import Callable
from datetime import datetime

from benchmarks._report import print_figures, print_table
from edge.rfid import impinj, zebra
from firmware_sim.tags import lot_tags


def _best(run: Callable[[], int], repeat: int = 3) -> tuple[float, int]:
    best, count = float("inf"), 0
    for _ in range(repeat):
        start = time.perf_counter()
        count = run()
        best = min(best, time.perf_counter() - start)
    return best, count


def _impinj_stream(events: int) -> bytes:
    tags = lot_tags(0, 1000)
    lines = []
    for i in range(events):
        epc = tags[i % len(tags)]
        event = {
            "timestamp": f"2026-03-02T08:15:{i % 60:02d}.{i % 1000:03d}Z",
            "hostname": "r700",
            "eventType": "tagInventory",
            "tagInventoryEvent": {
                "epc": base64.urlsafe_b64encode(bytes.fromhex(epc)).decode().rstrip("="),
                "antennaPort": 1 + i % 4,
                "peakRssiCdbm": -5000 - i % 900,
            },
        }
        lines.append(json.dumps(event).encode())
    return b"\n".join(lines) + b"\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks device_decoding")
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args(argv)

    stream = _impinj_stream(args.events)
    chunks = [stream[i : i + 65536] for i in range(0, len(stream), 65536)]

    def guarded() -> int:
        splitter, reads = impinj.LineSplitter(), 0
        for chunk in chunks:
            for line in splitter.feed(chunk):
                reads += impinj.parse_event(line, "r700") is not None
        return reads

    def naive() -> int:
        reads = 0
        for line in stream.split(b"\n"):
            if not line:
                continue
            event = json.loads(line)
            inv = event["tagInventoryEvent"]
            raw = inv["epc"]
            base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).hex().upper()
            datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
            reads += 1
        return reads

    t_guarded, n_guarded = _best(guarded)
    t_naive, n_naive = _best(naive)
    assert n_guarded == n_naive == args.events

    tags = lot_tags(1, 100)
    message = json.dumps(
        [
            {
                "type": "SIMPLE",
                "timestamp": "2024-05-01T10:00:00.123+0000",
                "data": {"idHex": t.lower(), "antenna": 1, "peakRssi": -55, "eventNum": i},
            }
            for i, t in enumerate(tags)
        ]
    ).encode()
    messages = [message] * 200

    def zebra_guarded() -> int:
        return sum(len(zebra.parse_message(m, "fx").observations) for m in messages)

    def zebra_naive() -> int:
        count = 0
        for m in messages:
            for event in json.loads(m):
                data = event["data"]
                data["idHex"].upper()
                datetime.strptime(event["timestamp"], "%Y-%m-%dT%H:%M:%S.%f%z")
                count += 1
        return count

    tz_guarded, nz = _best(zebra_guarded)
    tz_naive, nz_naive = _best(zebra_naive)
    assert nz == nz_naive

    impinj_rate, impinj_base = n_guarded / t_guarded, n_naive / t_naive
    zebra_rate, zebra_base = nz / tz_guarded, nz_naive / tz_naive
    print_table(
        "Device decoding: bounded and range-checked vs unguarded (one core, best of 3)",
        [
            ("Impinj events in the stream", f"{args.events:,} ({len(stream):,} bytes)"),
            ("Impinj guarded, events/s", impinj_rate),
            ("Impinj unguarded baseline, events/s", impinj_base),
            ("Zebra events", f"{nz:,} in {len(messages)} messages"),
            ("Zebra guarded, events/s", zebra_rate),
            ("Zebra unguarded baseline, events/s", zebra_base),
        ],
    )
    print_figures(
        {
            "impinj_events_per_s": round(impinj_rate),
            "impinj_baseline_events_per_s": round(impinj_base),
            "impinj_ratio": round(impinj_rate / impinj_base, 2),
            "zebra_events_per_s": round(zebra_rate),
            "zebra_baseline_events_per_s": round(zebra_base),
            "zebra_ratio": round(zebra_rate / zebra_base, 2),
        }
    )
    return 0
