"""`python -m firmware_sim.world [story ...] [--json]`: run raw-signal stories through the edge's
real decisions (value level, in process) and print each verdict and the suite's precision,
recall and time to alert. No story named: all of firmware_sim/scenarios/raw/. Exit 1 when any
story fails."""

from __future__ import annotations

import argparse
import json
import sys
import time

from firmware_sim.world.judge import run_story, summary
from firmware_sim.world.story import all_stories, load_story


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m firmware_sim.world", description=__doc__)
    parser.add_argument("stories", nargs="*", help="names or files (default: all)")
    parser.add_argument("--json", action="store_true", help="one JSON verdict per line")
    args = parser.parse_args(argv)
    stories = [load_story(s) for s in args.stories] if args.stories else all_stories()
    verdicts = []
    for story in stories:
        started = time.perf_counter()
        verdict, outcome = run_story(story)
        verdicts.append(verdict)
        if args.json:
            print(json.dumps(verdict.as_dict()))
            continue
        took = time.perf_counter() - started
        hours = outcome.simulated_s / 3600
        print(f"{'PASS' if verdict.passed else 'FAIL'} {story.name} "
              f"({hours:.1f} simulated h in {took:.1f} s)")
        for line in verdict.missing:
            print(f"  missing: {line}")
        for line in verdict.forbidden_seen:
            print(f"  forbidden: {line}")
        for line in verdict.other:
            print(f"  also: {line}")
        for incident, seconds in verdict.time_to_alert_s.items():
            print(f"  {incident}: {'undetected' if seconds is None else f'{seconds} s to alert'}")
    print(json.dumps(summary(verdicts)))
    return 0 if all(v.passed for v in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
