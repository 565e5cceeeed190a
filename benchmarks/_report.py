"""What every benchmark prints: a human table, then one JSON line of figures, last."""

from __future__ import annotations

import json
import resource
import sys
from typing import Any


def peak_rss_mb() -> float:
    """Peak resident set size of this process (Linux reports kilobytes)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def print_table(title: str, rows: list[tuple[str, Any]]) -> None:
    width = max(len(label) for label, _ in rows)
    print(title)
    print("-" * len(title))
    for label, value in rows:
        shown = f"{value:,.1f}" if isinstance(value, float) else str(value)
        print(f"  {label:<{width}}  {shown}")
    sys.stdout.flush()


def print_figures(figures: dict[str, Any]) -> None:
    print(json.dumps(figures, sort_keys=False))
    sys.stdout.flush()
