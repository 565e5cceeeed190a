"""How a kind of input plugs into the agent: a config section and a coroutine that runs it.

Each pipeline module (RFID, cameras, trackers, sensors) exposes ``PIPELINE``: the name of its
section in the agent's config file, the pydantic model of that section (``extra="forbid"``, so a
typo fails at start) and ``run(section, context)``, a coroutine that runs until cancelled and
hands everything it produces to ``context.emit``. The agent supervises these coroutines; the
pipelines never see MQTT, the outbox or the signing key. Their timers (flushes, stale checks,
ticks) sleep on the context's clock (``clock_of``), so a simulated clock drives them too.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel

from contract import MessageType
from edge.alerting import Observation
from ops.clock import SYSTEM_CLOCK, Clock

# Modules that define a PIPELINE. Add yours here.
PIPELINE_MODULES: tuple[str, ...] = (
    "edge.rfid.pipeline",
    "edge.vision.pipeline",
    "edge.trackers.pipeline",
    "edge.sensors.pipeline",
)


class EdgeContext(Protocol):
    site: str
    gateway: str
    clock: Clock  # what every decision and timer of a pipeline reads (ops/clock.py)

    def emit(
        self, msg_type: MessageType, body: BaseModel, *, observed_at: datetime | None = None
    ) -> int:
        """Durably queue a message (written to the outbox before this returns); its seq."""
        ...

    def observe(self, seen: Observation) -> None:
        """Hand the alerting stage what is no message: presence changes, a reader's health."""
        ...

    def now_us(self) -> int:
        """The context's clock: microseconds since the Unix epoch (UTC)."""
        ...

    def on_command(self, name: str, handler: Callable[[bytes], None]) -> None:
        """Call ``handler(payload)`` for messages on ``cmd/{name}`` from the cloud."""
        ...


def clock_of(ctx: object) -> Clock:
    """The context's clock; a context without one (a test's minimal fake) reads the system's."""
    clock: Clock = getattr(ctx, "clock", SYSTEM_CLOCK)
    return clock


@dataclass(frozen=True)
class Pipeline:
    section: str
    config_model: type[BaseModel]
    run: Callable[[Any, EdgeContext], Coroutine[Any, Any, None]]


def load_pipelines() -> dict[str, Pipeline]:
    pipelines: dict[str, Pipeline] = {}
    for name in PIPELINE_MODULES:
        pipeline: Pipeline = importlib.import_module(name).PIPELINE
        pipelines[pipeline.section] = pipeline
    return pipelines
