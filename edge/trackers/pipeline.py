"""Tracker pipeline: OwnTracks JSON from the gateway's broker -> positions, geofence events,
theft and tamper alerts. Glue only: ``TrackerStation`` decides, the context emits.

Config section ``trackers``::

    trackers:
      mqtt_url: mqtt://127.0.0.1:1883      # where the trackers publish (owntracks/<user>/<dev>)
      fences: geofences/sites/demo-site.geojson
      rules: {confirm_fixes: 3, confirm_seconds: 30, min_margin_m: 5}
      assets:
        - {tracker: coil-1, lot: LOT-B, report_interval_s: 30}

Commands from the cloud: ``cmd/geofences`` (versioned fences; answered with
``geofences_applied``) and ``cmd/lot_releases`` (lots whose release is approved).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from contract.owntracks import TOPIC_FILTER
from decisions.outgoing import Outgoing
from decisions.trackers.station import TrackerStation
from decisions.trackers.watch import TrackedAsset
from edge.pipelines import EdgeContext, Pipeline, clock_of
from edge.refusals import REFUSALS
from edge.trackers.releases import on_releases
from geofences.crossing import CrossingRules
from geofences.fences import load_fence_file
from geofences.update import COMMAND as FENCES_COMMAND
from ops.owntracks import OwnTracksConfig, OwnTracksFeed
from ops.supervised import Health

log = logging.getLogger(__name__)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RulesSection(_Strict):
    min_margin_m: float = Field(5.0, ge=0)
    accuracy_factor: float = Field(2.0, gt=0)
    confirm_fixes: int = Field(3, ge=1)
    confirm_seconds: float = Field(30.0, ge=0)
    dwell_seconds: float | None = Field(None, gt=0)
    max_accuracy_m: float = Field(50.0, gt=0)
    max_speed_mps: float = Field(70.0, gt=0)

    def rules(self) -> CrossingRules:
        return CrossingRules(**self.model_dump())


class AssetSection(_Strict):
    tracker: str = Field(min_length=1, max_length=128)
    lot: str | None = None
    report_interval_s: float = Field(30.0, gt=0)


class TrackersSection(_Strict):
    mqtt_url: str = "mqtt://127.0.0.1:1883"
    topic: str = TOPIC_FILTER
    fences: Path
    rules: RulesSection = Field(default_factory=lambda: RulesSection.model_validate({}))
    assets: list[AssetSection] = Field(default_factory=list)
    released_lots: list[str] = Field(default_factory=list)
    flush_s: float = Field(2.0, gt=0)
    silent_after_intervals: float = Field(3.0, gt=1)


def _log_health(health: Health) -> None:
    log.info("tracker broker health",
             extra={"broker": health.source, "online": health.online, "reason": health.reason})


def _emit_all(ctx: EdgeContext, messages: list[Outgoing]) -> None:
    for msg_type, body in messages:
        ctx.emit(msg_type, body)


async def run(section: TrackersSection, ctx: EdgeContext) -> None:
    fences = load_fence_file(section.fences)
    if fences.site != ctx.site:
        raise ValueError(f"{section.fences} fences site {fences.site!r}, this gateway {ctx.site!r}")
    station = TrackerStation(
        fences,
        [TrackedAsset(a.tracker, a.lot, a.report_interval_s) for a in section.assets],
        rules=section.rules.rules(),
        source="owntracks",
        started_us=ctx.now_us(),
        silent_after_intervals=section.silent_after_intervals,
    )
    station.watch.set_released(section.released_lots)
    _emit_all(ctx, [station.applied()])
    ctx.on_command(FENCES_COMMAND, lambda payload: _emit_all(ctx, [station.update_fences(payload)]))
    on_releases(ctx, station.watch.set_released)

    async def flush_forever() -> None:
        while True:
            await clock_of(ctx).sleep(section.flush_s)
            _emit_all(ctx, station.flush(ctx.now_us()))

    feed = OwnTracksFeed(
        OwnTracksConfig(section.mqtt_url, f"pw-trackers-{ctx.gateway}", section.topic),
        _log_health, on_refused=lambda reason, detail: REFUSALS.refuse("owntracks", reason, detail),
    )
    flusher = asyncio.create_task(flush_forever())
    try:
        async with feed:
            async for batch in feed.batches():
                for report in batch:
                    _emit_all(ctx, station.add(report.fix, report.battery_pct, ctx.now_us()))
    finally:
        flusher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flusher
        _emit_all(ctx, station.flush(ctx.now_us()))


PIPELINE = Pipeline(section="trackers", config_model=TrackersSection, run=run)
