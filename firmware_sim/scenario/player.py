"""The player: a gateway for one scenario, driving the edge's real ``Agent``.

It registers a fresh gateway key and the scenario's lots through the API, runs an ``Agent``
(signed envelopes, durable outbox, its one alerting stage and local siren) whose broker
connection goes through a link the scenario can cut, and emits what the site's devices report
at the scripted times. The agent decides the gateway's alerts; the player only stands in for
the devices and pipelines (what the camera reports, a reader's health) and for the cloud's
pushes to the gateway that do not exist yet (the gate list on ``cmd/authorised_vehicles``, the
released lots on ``cmd/lot_releases``), which it hands the agent as verified commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel

from contract import (
    AlertBody,
    MessageType,
    PresenceChangeBody,
    TagReadsBody,
)
from contract.messages import PlateReadBody
from decisions.alert_types import AlertType
from decisions.vehicles import AuthorisedVehicle, AuthorisedVehicles
from edge.rfid.reader import ReaderHealth
from edge.trackers.releases import COMMAND as RELEASES_COMMAND
from firmware_sim.scenario.api import bearer, call_api, register_gateway
from firmware_sim.scenario.judge import Verdict, judge
from firmware_sim.scenario.link import CuttableLink
from firmware_sim.scenario.receiver import WebhookInbox
from firmware_sim.scenario.schema import (
    Camera,
    Gps,
    LotSpec,
    Release,
    RunNames,
    Scenario,
    Step,
)

if TYPE_CHECKING:
    from edge.agent import Agent

DEMO_FENCES = Path(__file__).resolve().parents[2] / "geofences/sites/demo-site.geojson"
GATE_LIST_COMMAND = "authorised_vehicles"


@dataclass
class _Gateway:
    """The running agent, its cut-able uplink, and what the cloud would have pushed to it."""

    agent: Agent
    link: CuttableLink
    plates: set[str]  # the gate list: lots' vehicles, then approved releases' vehicles
    released: set[str] = field(default_factory=set)
    gate_version: int = 0

    def emit(self, msg_type: MessageType, body: BaseModel) -> None:
        self.agent.emit(msg_type, body, observed_at=datetime.now(UTC))

    def push_gate_list(self) -> None:
        self.gate_version += 1
        vehicles = [AuthorisedVehicle(plate=p) for p in sorted(self.plates)]
        gate = AuthorisedVehicles(version=self.gate_version, vehicles=vehicles)
        self.agent.command(GATE_LIST_COMMAND, gate.model_dump_json().encode())

    def push_releases(self) -> None:
        self.agent.command(RELEASES_COMMAND,
                           json.dumps({"released": sorted(self.released)}).encode())


@dataclass
class Player:
    api: httpx.AsyncClient
    admin_key: str
    financier_key: str
    financier: str
    site: str
    broker_url: str
    work_dir: Path
    time_scale: float = 1.0
    names: RunNames = field(default_factory=RunNames)

    @property
    def run_id(self) -> str:
        return self.names.run_id

    async def _post(self, path: str, key: str, body: Any = None, method: str = "POST") -> Any:
        return await call_api(self.api, path, key, body, method)

    async def run(self, sc: Scenario) -> Verdict:
        gateway = f"sim-{self.run_id}"
        key_file = await register_gateway(self.api, self.admin_key, self.site, gateway,
                                          self.work_dir)
        lots = {lot.id: lot for lot in sc.lots}
        for lot in sc.lots:
            await self._post("/api/v1/lots", self.admin_key, {
                "id": self.names.lot_id(lot.id), "site_id": self.site,
                "name": f"{sc.name} {lot.id}", "pieces": lot.tags,
                "financier_id": self.financier, "epcs": self.names.epcs(lot)})
        inbox = WebhookInbox()
        from edge.agent import Agent  # the edge's real agent; imported late (heavy)
        from edge.config import load_config

        broker = urlsplit(self.broker_url)
        host, port = broker.hostname or "127.0.0.1", broker.port or 1883
        async with inbox.serving(), CuttableLink(host, port) as link:
            await self._post("/api/v1/webhooks/endpoints", self.financier_key,
                             {"url": f"http://127.0.0.1:{inbox.port}/hooks"})
            config = self.work_dir / f"{gateway}.toml"
            # The uplink goes through the link; the siren is on the site's own broker.
            config.write_text(
                f'site = "{self.site}"\ngateway = "{gateway}"\nkey_file = "{key_file}"\n'
                f'data_dir = "{self.work_dir / gateway}"\nhealth_interval_s = 3600\n\n'
                f'[broker]\nurl = "mqtt://127.0.0.1:{link.local_port}"\nkeepalive_s = 5\n\n'
                f'[local_alarm]\nhost = "{host}"\nport = {port}\n')
            agent = Agent(load_config(config))
            gw = _Gateway(agent, link, {v for lot in sc.lots for v in lot.authorised_vehicles})
            gw.push_gate_list()
            agent_task = asyncio.create_task(agent.run())
            started = time.time()
            try:
                for lot in sc.lots:  # every tag read at its place first
                    read_at = int(time.time() * 1e6)
                    reads: list[tuple[str, int, int | None, int]] = [
                        (e, 1, -5500, read_at) for e in self.names.epcs(lot)]
                    gw.emit(MessageType.TAG_READS, TagReadsBody(reader="dock-1", reads=reads))
                    for epc in self.names.epcs(lot):  # what presence reports on first sight
                        gw.emit(MessageType.PRESENCE_CHANGE, PresenceChangeBody(
                            lot=self.names.lot_id(lot.id), epc=epc, state="present",
                            previous=None, last_seen_us=read_at, reader="dock-1"))
                for step in sorted(sc.steps, key=lambda s: s.at_s):
                    delay = started + step.at_s * self.time_scale - time.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    await self._step(step, lots, gw)
                await asyncio.sleep(sc.settle_s)
                await self._wait_drained(agent, link)
                await asyncio.sleep(sc.settle_s)
            finally:
                agent_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await agent_task
            rows = await self.api.get("/api/v1/alerts", params={"limit": 1000},
                                      headers=bearer(self.admin_key))
            rows.raise_for_status()
            return judge(sc, self.names, rows.json(), started=started,
                         webhooks=inbox.received, local_alarms=agent.alarms_sounded)

    async def _wait_drained(self, agent: Agent, link: CuttableLink, timeout_s: float = 20
                            ) -> None:
        deadline = time.time() + timeout_s
        # The outbox offers no event to wait on; its depth is a cheap read.
        while link.up and agent.outbox.depth and time.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)

    async def _step(self, step: Step, lots: dict[str, LotSpec], gw: _Gateway) -> None:
        if step.network == "down":
            gw.link.down()
        elif step.network == "up":
            gw.link.up = True
        if step.presence:
            p = step.presence
            lot = lots[p.lot]
            for epc in self.names.epcs(lot)[: p.tags or lot.tags]:
                gw.emit(MessageType.PRESENCE_CHANGE, PresenceChangeBody(
                    lot=self.names.lot_id(p.lot), epc=epc, state=p.state,
                    previous="present" if p.state != "present" else "missing",
                    last_seen_us=int(time.time() * 1e6) - 60_000_000, reader="dock-1"))
        if step.plate:
            now_us = int(time.time() * 1e6)
            gw.emit(MessageType.PLATE_READ, PlateReadBody(
                camera=step.plate.camera, plate=step.plate.plate, region="cn",
                plate_format="cn_blue", confidence_pct=95, reads=5,
                direction=step.plate.direction, first_seen_us=now_us - 2_000_000,
                last_seen_us=now_us, box=(10, 10, 120, 40)))
            if step.plate.plate not in gw.plates:  # what the gate camera pipeline raises
                gw.emit(MessageType.ALERT, AlertBody(
                    action="raise", alert_type=AlertType.UNAUTHORISED_VEHICLE,
                    subject=f"vehicle:{step.plate.plate}", severity="major",
                    explanation=f"vehicle {step.plate.plate} at {step.plate.camera} is not on "
                                "the site's gate list", evidence={"camera": step.plate.camera}))
        if step.reader:
            r = step.reader
            if not r.online:  # presence marks the tags behind it unknown, never missing
                for name in r.lots:
                    for epc in self.names.epcs(lots[name]):
                        gw.emit(MessageType.PRESENCE_CHANGE, PresenceChangeBody(
                            lot=self.names.lot_id(name), epc=epc, state="unknown",
                            previous="present", last_seen_us=None, reader=r.reader))
            # What the RFID pipeline hands the agent: the agent's stage decides the alert.
            gw.agent.observe(ReaderHealth(r.reader, r.online, r.reason, int(time.time() * 1e6)))
        if step.temperature:
            t = step.temperature
            hot = t.celsius > t.max_c
            gw.emit(MessageType.ALERT, AlertBody(
                action="raise" if hot else "clear", alert_type=AlertType.TEMPERATURE,
                subject=f"sensor:{t.sensor}", severity="major",
                lot=self.names.lot_id(t.lot) if t.lot else None,
                explanation=f"{t.sensor} reads {t.celsius:.1f} °C (limit {t.max_c:.1f} °C)",
                evidence={"celsius": t.celsius, "max_c": t.max_c}))
        if step.door_after_hours:
            gw.emit(MessageType.ALERT, AlertBody(
                action="raise", alert_type=AlertType.DOOR_OPEN_OUTSIDE_HOURS,
                subject=f"door:{step.door_after_hours}", severity="critical",
                explanation=f"door {step.door_after_hours} opened outside working hours"))
        if step.alert:
            gw.emit(MessageType.ALERT, AlertBody.model_validate(step.alert))
        if step.gps:
            await self._gps(step.gps, gw)
        if step.camera:
            await self._camera(step.camera, gw)
        if step.release:
            await self._release(step.release, lots[step.release.lot])
            # What the cloud would push to the gateway once the pledgee approved.
            gw.plates.add(step.release.vehicle)
            gw.released.add(self.names.lot_id(step.release.lot))
            gw.push_gate_list()
            gw.push_releases()

    async def _camera(self, cam: Camera, gw: _Gateway) -> None:
        import random
        from types import SimpleNamespace

        import numpy as np

        from edge.vision.motion import MotionGate
        from edge.vision.pipeline import emit_blindness
        from edge.vision.tamper import CameraBlindness, frame_stats
        from firmware_sim.camera.scenes import background

        rng, noise = random.Random(7), np.random.default_rng(7)
        scene = background(rng, 640, 360)
        gate, blindness = MotionGate(), CameraBlindness()
        # Seeing for 5 s, covered (a dim, featureless lens), then seeing again for 15 s.
        timeline = [(5.0, False), (cam.covered_s, True), (15.0, False)]
        emitted: list[tuple[MessageType, Any]] = []
        ctx = SimpleNamespace(emit=lambda t, body, observed_at=None: emitted.append((t, body)))
        t_us = int(time.time() * 1e6) - int(sum(d for d, _ in timeline) * 1e6)
        previous = None
        for duration, covered in timeline:
            for _ in range(int(duration * cam.fps)):
                base = np.full(scene.shape, 40.0) if covered else scene.astype(np.float64)
                frame = np.clip(base + noise.normal(0, 2, scene.shape), 0, 255).astype(np.uint8)
                grey = gate.small_grey(frame)
                change = blindness.feed(frame_stats(grey, previous), t_us)
                previous = grey
                if change is not None:
                    shared: Any = SimpleNamespace(ctx=ctx)  # the pipeline only uses ctx.emit
                    emit_blindness(shared, self.camera_name(cam.camera), change, t_us)
                t_us += int(1e6 / cam.fps)
        for msg_type, body in emitted:
            gw.emit(msg_type, body)

    def camera_name(self, logical: str) -> str:
        return f"{logical}-{self.run_id}"

    async def _gps(self, gps: Gps, gw: _Gateway) -> None:
        from decisions.trackers.station import TrackerStation
        from decisions.trackers.watch import TrackedAsset
        from firmware_sim import trackers
        from geofences.crossing import CrossingRules
        from geofences.fences import load_fence_file

        fences = load_fence_file(DEMO_FENCES)
        t0 = int(time.time() * 1e6) - int(gps.duration_s * 1e6)
        plays = {
            "drive_out": lambda: trackers.drive_out(fences, t0, device=f"coil-1-{self.run_id}"),
            "parked_at_edge": lambda: trackers.parked_at_edge(
                fences, t0, duration_s=gps.duration_s, device=f"coil-2-{self.run_id}"),
        }
        fixes = sorted((p for name in gps.trackers for p in plays[name]()),
                       key=lambda p: p.fix.t_us)
        assets = [TrackedAsset(p, "LOT-B", 3600) for p in {f.device for f in fixes}]
        station = TrackerStation(fences, assets, rules=CrossingRules(), source="sim",
                                 started_us=t0)
        for i, p in enumerate(fixes):
            for msg_type, body in station.add(p.fix, p.battery_pct, p.fix.t_us):
                gw.emit(msg_type, body)
            if i % 6 == 5 or i == len(fixes) - 1:
                for msg_type, body in station.flush(p.fix.t_us):
                    gw.emit(msg_type, body)

    async def _release(self, rel: Release, lot: LotSpec) -> None:
        lot_id = self.names.lot_id(rel.lot)
        number = f"WR-{lot_id}"
        await self._post(f"/api/v1/lots/{lot_id}/details", self.admin_key, {
            "quality": "A", "packaging": "bundles", "quantity": str(lot.tags), "unit": "t",
            "marks": "sim", "unit_value": "100.00", "fence": f"{self.site}-fence"}, "PUT")
        deadline = time.time() + 10
        while True:  # the tags must be verified present before a receipt is issued
            try:
                await self._post(f"/api/v1/lots/{lot_id}/receipts", self.admin_key, {
                    "number": number,
                    "storage_period": {"from": "2026-01-01", "to": "2027-01-01"}})
                break
            except RuntimeError:
                if time.time() > deadline:
                    raise
                await asyncio.sleep(0.3)
        await self._post(f"/api/v1/receipts/{number}/pledge", self.admin_key,
                         {"pledgee": self.financier})
        request = await self._post(f"/api/v1/receipts/{number}/releases", self.admin_key, {
            "quantity": str(Decimal(rel.tags)), "pieces": rel.tags,
            "tags": self.names.epcs(lot)[: rel.tags], "vehicle": rel.vehicle})
        await self._post(f"/api/v1/receipts/{number}/releases/{request['id']}/approve",
                         self.financier_key)
