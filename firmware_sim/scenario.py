"""`python -m firmware_sim scenario NAME|FILE --against URL`: play a scenario through a running
system and judge the alerts it produced.

The player is a gateway: it registers a fresh gateway key and the scenario's lots through the
API, runs a real edge ``Agent`` (signed envelopes, durable outbox) whose broker connection
goes through a TCP proxy the scenario can cut (a network outage), and emits what the site's
devices report at the scripted times. It also runs the edge's local rules (edge/rules_local)
and, while the link is cut, sounds the local alarm on the broker. A local HTTP receiver is
registered as the financier's webhook endpoint. At the end it reads the alerts through the
API and reports, per scenario, the alerts that must and must not appear, precision, recall
and timing. Scenario files are JSON; see docs/alerts.md and firmware_sim/scenarios/.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import h11
import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel, ConfigDict, Field

from contract import (
    AlertBody,
    MessageType,
    PresenceChangeBody,
    TagReadsBody,
    private_key_pem,
    public_key_b64,
)
from contract.messages import PlateReadBody
from decisions.alert_types import AlertType
from decisions.rules import Decision
from edge.local_alerts import LocalAlerts
from edge.rfid.reader import ReaderHealth
from edge.rules_alarm import LocalAlarm
from edge.rules_local import EdgeRules, alert_of

SCENARIOS = Path(__file__).with_name("scenarios")
DEMO_FENCES = Path(__file__).resolve().parent.parent / "geofences/sites/demo-site.geojson"


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LotSpec(_M):
    id: str
    tags: int = Field(4, ge=1, le=1000)
    authorised_vehicles: list[str] = Field(default_factory=list)


class Presence(_M):
    lot: str
    state: Literal["missing", "present", "unknown"]
    tags: int | None = None  # the lot's first N tags; default all


class Plate(_M):
    plate: str
    camera: str = "gate-1"
    direction: Literal["in", "out"] | None = "out"


class Reader(_M):
    reader: str
    online: bool
    reason: str = "no answer"
    lots: list[str] = Field(default_factory=list)  # lots behind it: their tags become unknown


class Temperature(_M):
    sensor: str
    lot: str | None = None
    celsius: float
    max_c: float = 25.0


class Release(_M):
    """The real paper trail: receipt issued, pledged, release requested and approved."""

    lot: str
    vehicle: str
    tags: int = Field(2, ge=1)


class Gps(_M):
    """Trackers replayed through the gateway's real tracker decisions (edge/trackers) against
    the demo site's fences: ``drive_out`` takes a coil out of its pledge zone and off site,
    ``parked_at_edge`` leaves one on the zone's edge under 5-30 m of drifting GPS error."""

    trackers: list[Literal["drive_out", "parked_at_edge"]]
    duration_s: float = Field(1800, gt=0)  # of GPS time, replayed at once


class Camera(_M):
    """A camera covered for ``covered_s`` of camera time, rendered by the camera simulator and
    judged by the gateway's real blindness check (edge/vision/tamper), replayed at once."""

    camera: str = "gate-1"
    covered_s: float = Field(20, gt=0)
    fps: float = Field(2, gt=0, le=30)


class Step(_M):
    at_s: float = Field(ge=0)
    presence: Presence | None = None
    plate: Plate | None = None
    reader: Reader | None = None
    temperature: Temperature | None = None
    door_after_hours: str | None = None  # door name
    network: Literal["down", "up"] | None = None
    release: Release | None = None
    gps: Gps | None = None
    camera: Camera | None = None
    alert: dict[str, Any] | None = None  # any AlertBody the gateway raises


class Expected(_M):
    alert_type: str
    subject: str | None = None  # logical (lot:L1); matched after the run's renaming


class Scenario(_M):
    name: Annotated[str, Field(pattern=r"^[a-z0-9_-]+$")]
    description: str = ""
    lots: list[LotSpec]
    steps: list[Step]
    must: list[Expected] = Field(default_factory=list)
    must_not: list[Expected] = Field(default_factory=list)
    settle_s: float = Field(3.0, ge=0)
    requires: list[Literal["vision", "receipts"]] = Field(default_factory=list)


def load_scenario(name_or_file: str) -> Scenario:
    path = Path(name_or_file)
    if not path.exists():
        path = SCENARIOS / f"{name_or_file}.json"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in SCENARIOS.glob("*.json")))
        raise ValueError(f"no scenario {name_or_file!r} (known: {known})")
    return Scenario.model_validate_json(path.read_text())


# -- a link we can cut --------------------------------------------------------------------
class CuttableLink:
    """A TCP proxy to the broker: ``down()`` drops every connection and refuses new ones."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.up = True
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self.local_port = 0

    async def __aenter__(self) -> CuttableLink:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.local_port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.down()
        assert self._server is not None
        self._server.close()

    def down(self) -> None:
        self.up = False
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers.difference_update((writer, up_writer))


# -- the financier's receiver ---------------------------------------------------------------
@dataclass
class WebhookInbox:
    received: list[tuple[float, dict[str, str], bytes]] = field(default_factory=list)
    port: int = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER)
        headers: dict[str, str] = {}
        body = b""
        with contextlib.suppress(ConnectionError, h11.RemoteProtocolError):
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    if not (data := await reader.read(65536)):
                        return
                    conn.receive_data(data)
                elif isinstance(event, h11.Request):
                    headers = {k.decode().lower(): v.decode() for k, v in event.headers}
                elif isinstance(event, h11.Data):
                    body += bytes(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    break
            self.received.append((time.time(), headers, body))
            writer.write(conn.send(h11.Response(status_code=204, headers=[])))
            writer.write(conn.send(h11.EndOfMessage()))
            await writer.drain()
        writer.close()

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[WebhookInbox]:
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            server.close()


# -- the run --------------------------------------------------------------------------------
@dataclass
class Verdict:
    scenario: str
    found: list[str]
    missing: list[str]
    forbidden_seen: list[str]
    other: list[str]
    timings: list[dict[str, Any]]
    webhooks: int
    local_alarms: int
    skipped: str | None = None

    @property
    def passed(self) -> bool:
        return self.skipped is None and not self.missing and not self.forbidden_seen


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
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    alarms: list[Decision] = field(default_factory=list)

    def lot_id(self, logical: str) -> str:
        return f"{logical}-{self.run_id}"

    def subject(self, logical: str) -> str:
        kind, _, name = logical.partition(":")
        if kind == "lot":
            return f"lot:{self.lot_id(name)}"
        if kind in ("tracker", "camera"):
            return f"{kind}:{name}-{self.run_id}"
        return logical

    def _auth(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    async def _post(self, path: str, key: str, body: Any = None, method: str = "POST") -> Any:
        r = await self.api.request(method, path, json=body, headers=self._auth(key))
        if r.status_code >= 300:
            raise RuntimeError(f"{method} {path}: {r.status_code} {r.text}")
        return r.json() if r.content else None

    def epcs(self, lot: LotSpec) -> list[str]:
        return [f"5057{self.run_id.upper()}{lot.id.encode().hex().upper()[:8]:0>8}{i:06X}"
                for i in range(lot.tags)]

    async def run(self, sc: Scenario) -> Verdict:
        gateway = f"sim-{self.run_id}"
        key = Ed25519PrivateKey.generate()
        key_file = self.work_dir / f"{gateway}.pem"
        key_file.write_bytes(private_key_pem(key))
        await self._post("/api/v1/gateways", self.admin_key,
                         {"id": gateway, "site_id": self.site, "public_key": public_key_b64(key)})
        # The agent verifies every cmd/ message with the cloud's key, kept beside its own.
        command_key = await self._post("/api/v1/command-key", self.admin_key, method="GET")
        (self.work_dir / "cloud.pub").write_text(command_key["public_key"])
        lots = {lot.id: lot for lot in sc.lots}
        authorised = {v for lot in sc.lots for v in lot.authorised_vehicles}
        for lot in sc.lots:
            await self._post("/api/v1/lots", self.admin_key, {
                "id": self.lot_id(lot.id), "site_id": self.site, "name": f"{sc.name} {lot.id}",
                "pieces": lot.tags, "financier_id": self.financier, "epcs": self.epcs(lot)})
        inbox = WebhookInbox()
        from edge.agent import Agent  # the edge's real agent; imported late (heavy)
        from edge.config import load_config

        broker = urlsplit(self.broker_url)
        async with inbox.serving(), CuttableLink(broker.hostname or "127.0.0.1",
                                                 broker.port or 1883) as link:
            await self._post("/api/v1/webhooks/endpoints", self.financier_key,
                             {"url": f"http://127.0.0.1:{inbox.port}/hooks"})
            config = self.work_dir / f"{gateway}.toml"
            config.write_text(
                f'site = "{self.site}"\ngateway = "{gateway}"\nkey_file = "{key_file}"\n'
                f'data_dir = "{self.work_dir / gateway}"\nhealth_interval_s = 3600\n\n'
                f'[broker]\nurl = "mqtt://127.0.0.1:{link.local_port}"\nkeepalive_s = 5\n')
            agent = Agent(load_config(config))
            agent_task = asyncio.create_task(agent.run())
            rules = EdgeRules(authorised_vehicles=authorised)  # grows with approved releases
            presence_alerts = LocalAlerts()
            alarm = LocalAlarm(broker.hostname or "127.0.0.1", broker.port or 1883,
                               self.site, gateway)
            started = time.time()

            async def emit(msg_type: MessageType, body: Any) -> None:
                now = datetime.now(UTC)
                agent.emit(msg_type, body, observed_at=now)
                for d in rules.on_emitted(msg_type, body, int(now.timestamp() * 1e6)):
                    alert = alert_of(d)
                    if alert is not None:
                        agent.emit(MessageType.ALERT, alert, observed_at=now)
                    if not link.up and d.action != "record":
                        self.alarms.append(d)
                        await alarm.sound(d)

            try:
                for lot in sc.lots:  # every tag read at its place first
                    read_at = int(time.time() * 1e6)
                    reads: list[tuple[str, int, int | None, int]] = [
                        (e, 1, -5500, read_at) for e in self.epcs(lot)]
                    await emit(MessageType.TAG_READS, TagReadsBody(reader="dock-1", reads=reads))
                    for epc in self.epcs(lot):  # what presence reports on first sight
                        await emit(MessageType.PRESENCE_CHANGE, PresenceChangeBody(
                            lot=self.lot_id(lot.id), epc=epc, state="present", previous=None,
                            last_seen_us=read_at, reader="dock-1"))
                for step in sorted(sc.steps, key=lambda s: s.at_s):
                    delay = started + step.at_s * self.time_scale - time.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    await self._step(step, lots=lots, emit=emit, link=link,
                                     presence_alerts=presence_alerts, authorised=authorised)
                await asyncio.sleep(sc.settle_s)
                await self._wait_drained(agent, link)
                await asyncio.sleep(sc.settle_s)
            finally:
                agent_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await agent_task
            return await self._judge(sc, started, inbox)

    async def _wait_drained(self, agent: Any, link: CuttableLink, timeout_s: float = 20) -> None:
        deadline = time.time() + timeout_s
        # The outbox offers no event to wait on; its depth is a cheap read.
        while link.up and agent.outbox.depth and time.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)

    async def _step(self, step: Step, *, lots: dict[str, LotSpec], emit: Any,
                    link: CuttableLink, presence_alerts: LocalAlerts, authorised: set[str]
                    ) -> None:
        if step.network == "down":
            link.down()
        elif step.network == "up":
            link.up = True
        if step.presence:
            p = step.presence
            lot = lots[p.lot]
            for epc in self.epcs(lot)[: p.tags or lot.tags]:
                await emit(MessageType.PRESENCE_CHANGE, PresenceChangeBody(
                    lot=self.lot_id(p.lot), epc=epc, state=p.state,
                    previous="present" if p.state != "present" else "missing",
                    last_seen_us=int(time.time() * 1e6) - 60_000_000, reader="dock-1"))
        if step.plate:
            now_us = int(time.time() * 1e6)
            await emit(MessageType.PLATE_READ, PlateReadBody(
                camera=step.plate.camera, plate=step.plate.plate, region="cn",
                plate_format="cn_blue", confidence_pct=95, reads=5,
                direction=step.plate.direction, first_seen_us=now_us - 2_000_000,
                last_seen_us=now_us, box=(10, 10, 120, 40)))
            if step.plate.plate not in authorised:  # what the gate camera pipeline raises
                await emit(MessageType.ALERT, AlertBody(
                    action="raise", alert_type=AlertType.UNAUTHORISED_VEHICLE,
                    subject=f"vehicle:{step.plate.plate}", severity="major",
                    explanation=f"vehicle {step.plate.plate} at {step.plate.camera} is not on "
                                "the site's gate list", evidence={"camera": step.plate.camera}))
        if step.reader:
            r = step.reader
            await emit(MessageType.ALERT, presence_alerts.on_reader_health(ReaderHealth(
                r.reader, r.online, r.reason, int(time.time() * 1e6))))
            if not r.online:  # presence marks the tags behind it unknown, never missing
                for name in r.lots:
                    for epc in self.epcs(lots[name]):
                        await emit(MessageType.PRESENCE_CHANGE, PresenceChangeBody(
                            lot=self.lot_id(name), epc=epc, state="unknown",
                            previous="present", last_seen_us=None, reader=r.reader))
        if step.temperature:
            t = step.temperature
            hot = t.celsius > t.max_c
            await emit(MessageType.ALERT, AlertBody(
                action="raise" if hot else "clear", alert_type=AlertType.TEMPERATURE,
                subject=f"sensor:{t.sensor}", severity="major",
                lot=self.lot_id(t.lot) if t.lot else None,
                explanation=f"{t.sensor} reads {t.celsius:.1f} °C (limit {t.max_c:.1f} °C)",
                evidence={"celsius": t.celsius, "max_c": t.max_c}))
        if step.door_after_hours:
            await emit(MessageType.ALERT, AlertBody(
                action="raise", alert_type="theft.door_open_outside_hours",
                subject=f"door:{step.door_after_hours}", severity="critical",
                explanation=f"door {step.door_after_hours} opened outside working hours"))
        if step.alert:
            await emit(MessageType.ALERT, AlertBody.model_validate(step.alert))
        if step.gps:
            await self._gps(step.gps, emit)
        if step.camera:
            await self._camera(step.camera, emit)
        if step.release:
            await self._release(step.release, lots[step.release.lot])
            authorised.add(step.release.vehicle)  # the gate list the cloud pushes to the edge

    async def _camera(self, cam: Camera, emit: Any) -> None:
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
            await emit(msg_type, body)

    def camera_name(self, logical: str) -> str:
        return f"{logical}-{self.run_id}"

    async def _gps(self, gps: Gps, emit: Any) -> None:
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
                await emit(msg_type, body)
            if i % 6 == 5 or i == len(fixes) - 1:
                for msg_type, body in station.flush(p.fix.t_us):
                    await emit(msg_type, body)

    async def _release(self, rel: Release, lot: LotSpec) -> None:
        lot_id = self.lot_id(rel.lot)
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
            "tags": self.epcs(lot)[: rel.tags], "vehicle": rel.vehicle})
        await self._post(f"/api/v1/receipts/{number}/releases/{request['id']}/approve",
                         self.financier_key)

    async def _judge(self, sc: Scenario, started: float, inbox: WebhookInbox) -> Verdict:
        rows = await self.api.get("/api/v1/alerts", params={"limit": 1000},
                                  headers=self._auth(self.admin_key))
        rows.raise_for_status()
        ours = {f"lot:{self.lot_id(lot.id)}" for lot in sc.lots}
        logical = {f"lot:{self.lot_id(lot.id)}": f"lot:{lot.id}" for lot in sc.lots}
        seen = [a for a in rows.json()
                if datetime.fromisoformat(a["first_seen_at"]).timestamp() >= started - 1
                and not a["alert_type"].startswith("webhook.")]

        def matches(e: Expected, a: dict[str, Any]) -> bool:
            return a["alert_type"] == e.alert_type and (
                e.subject is None or a["subject"] == self.subject(e.subject))

        found = [f"{e.alert_type} {e.subject or '*'}" for e in sc.must
                 if any(matches(e, a) for a in seen)]
        missing = [f"{e.alert_type} {e.subject or '*'}" for e in sc.must
                   if not any(matches(e, a) for a in seen)]
        forbidden = [f"{a['alert_type']} {logical.get(a['subject'], a['subject'])}"
                     for a in seen for e in sc.must_not if matches(e, a)]
        other = [f"{a['alert_type']} {logical.get(a['subject'], a['subject'])}" for a in seen
                 if not any(matches(e, a) for e in (*sc.must, *sc.must_not))
                 and (a["subject"] in ours or a["lot_id"] is None)]
        hooks: dict[int, float] = {}
        for at, _headers, body in inbox.received:
            alert = json.loads(body)["data"]["alert"]
            hooks.setdefault(alert["id"], at)
        timings = [{
            "alert": f"{a['alert_type']} {logical.get(a['subject'], a['subject'])}",
            "first_seen_s": round(datetime.fromisoformat(a["first_seen_at"]).timestamp()
                                  - started, 2),
            "count": a["count"], "state": a["state"],
            "webhook_s": round(hooks[a["id"]] - started, 2) if a["id"] in hooks else None,
        } for a in seen if a["subject"] in ours or a["lot_id"] is None
            or a["subject"].startswith(("vehicle:", "reader:", "sensor:", "door:", "tracker:",
                                          "camera:"))]
        return Verdict(sc.name, found, missing, forbidden, other, timings,
                       len(inbox.received), len(self.alarms))


def summary(verdicts: list[Verdict]) -> dict[str, Any]:
    """Precision and recall over the suite: must alerts are the positives, must-nots the
    known negatives (an alert outside both lists is reported, not scored)."""
    tp = sum(len(v.found) for v in verdicts)
    fn = sum(len(v.missing) for v in verdicts)
    fp = sum(len(v.forbidden_seen) for v in verdicts)
    return {
        "scenarios": len(verdicts),
        "passed": sum(v.passed for v in verdicts),
        "skipped": [v.scenario for v in verdicts if v.skipped],
        "precision": round(tp / (tp + fp), 3) if tp + fp else 1.0,
        "recall": round(tp / (tp + fn), 3) if tp + fn else 1.0,
    }


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
