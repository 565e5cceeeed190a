"""One refusal counter for every device adapter: what a device sent that did not become a read.

Theory of operation: an adapter that cannot turn a device message into a read, a fix or a
reading calls ``REFUSALS.refuse(adapter, reason, detail)``. ``reason`` is a short code written in
the adapter's source (never text from the device), so the Prometheus label set stays bounded;
``detail`` says what was wrong with this message and goes only to the log. The counter is exposed
on the agent's /metrics as ``pw_edge_device_refused_total{adapter, reason}``, and the log gets
one line per (adapter, reason) per minute, carrying how many were refused since the last line,
so a reader spraying garbage cannot flood the gateway's disk.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from contract.refusals import DeviceInputRefused

__all__ = ["REFUSALS", "DeviceInputRefused", "Refusals"]

log = logging.getLogger(__name__)

MAX_DETAIL_CHARS = 200  # a device chooses the detail text; the log line stays short


@dataclass
class _Entry:
    total: int = 0
    since_logged: int = 0
    logged_at: float | None = None


@dataclass
class Refusals:
    log_every_s: float = 60.0
    clock: Callable[[], float] = time.monotonic
    _entries: dict[tuple[str, str], _Entry] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)  # /metrics scrapes in a thread

    def refuse(self, adapter: str, reason: str, detail: str = "") -> None:
        now = self.clock()
        with self._lock:
            entry = self._entries.setdefault((adapter, reason), _Entry())
            entry.total += 1
            entry.since_logged += 1
            due = entry.logged_at is None or now - entry.logged_at >= self.log_every_s
            if due:
                count, entry.since_logged, entry.logged_at = entry.since_logged, 0, now
        if due:
            log.warning(
                "device input refused",
                extra={
                    "adapter": adapter,
                    "reason": reason,
                    "count_since_last_line": count,
                    "example": detail[:MAX_DETAIL_CHARS],
                },
            )

    def count(self, adapter: str, reason: str) -> int:
        with self._lock:
            entry = self._entries.get((adapter, reason))
            return 0 if entry is None else entry.total

    def totals(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return {key: entry.total for key, entry in self._entries.items()}


REFUSALS = Refusals()
"""The process's counter: adapters keep their constructor shape, so they share this one."""


class RefusalMetrics(Collector):
    """Prometheus view of a `Refusals`, read at scrape time."""

    def __init__(self, refusals: Refusals = REFUSALS) -> None:
        self._refusals = refusals

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "pw_edge_device_refused",
            "Device messages that became no read, by adapter and reason",
            labels=["adapter", "reason"],
        )
        for (adapter, reason), total in sorted(self._refusals.totals().items()):
            family.add_metric([adapter, reason], total)
        yield family
