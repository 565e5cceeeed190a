"""`python -m firmware_sim scenario NAME|FILE|all --against URL`: play scenarios through a
running system and print each verdict and the suite's precision and recall."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
from pathlib import Path

import httpx

from firmware_sim.scenario.judge import Verdict, summary
from firmware_sim.scenario.player import Player
from firmware_sim.scenario.schema import SCENARIOS, load_scenario


def _print(v: Verdict) -> None:
    status = "SKIP " + (v.skipped or "") if v.skipped else ("PASS" if v.passed else "FAIL")
    print(f"== {v.scenario}: {status}")
    for t in v.timings:
        hook = f", webhook at +{t['webhook_s']} s" if t["webhook_s"] is not None else ""
        print(f"   {t['alert']}: first seen +{t['first_seen_s']} s, count {t['count']}, "
              f"{t['state']}{hook}")
    for label, items in (("missing", v.missing), ("must not, but seen", v.forbidden_seen),
                         ("also seen", v.other)):
        if items:
            print(f"   {label}: {', '.join(items)}")
    if v.local_alarms:
        print(f"   local alarms while the link was down: {v.local_alarms}")


async def _main(args: argparse.Namespace) -> int:
    names = (sorted(p.stem for p in SCENARIOS.glob("*.json")) if args.scenario == "all"
             else [args.scenario])
    verdicts = []
    async with httpx.AsyncClient(base_url=args.against, timeout=30) as api:
        for name in names:
            sc = load_scenario(name)
            with tempfile.TemporaryDirectory() as tmp:
                player = Player(api, args.admin_key, args.financier_key, args.financier,
                                args.site, args.mqtt, Path(tmp))
                verdict = await player.run(sc)
            _print(verdict)
            verdicts.append(verdict)
    print(json.dumps(summary(verdicts)))
    return 0 if all(v.passed for v in verdicts) else 1


def add_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("scenario", help="play a scenario against a running system")
    p.add_argument("scenario", help="a name in firmware_sim/scenarios/, a JSON file, or 'all'")
    p.add_argument("--against", required=True, help="the API's base URL, e.g. http://127.0.0.1:8000")
    p.add_argument("--mqtt", default=os.environ.get("MQTT_URL", "mqtt://127.0.0.1:1883"))
    p.add_argument("--site", default="site-1")
    p.add_argument("--financier", default="bank-a")
    p.add_argument("--admin-key", default=os.environ.get("PW_ADMIN_KEY"))
    p.add_argument("--financier-key", default=os.environ.get("PW_FINANCIER_KEY"))
    p.set_defaults(func=lambda args: asyncio.run(_main(args)))
