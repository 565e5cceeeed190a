"""The raw-signal player: the real edge agent as its own process, on a simulated clock, fed by
simulated devices through the real device paths, against the running cloud.

The player registers a gateway and the scenario's lots through the API, starts one driven LLRP
reader simulator per reader (firmware_sim/llrp_reader.py; the agent's own LLRP adapter connects
to it), a cuttable link to the broker (link.py), and ``python -m edge run --clock sim:...``
attached to its clock controller (ops/clock_control.py). A story with several sites gets all
of that once per site (``play_sites``: one player per cloud site and financier, one agent
process each, one controller moving them all). Then it walks the world's signals in
simulated time, one step at a time, every site in each step:

1. every signal of the step goes to its device: a read cycle's tag reads become one
   RO_ACCESS_REPORT stamped with the cycle's time, followed by an end-of-AISpec event per
   round the world says ran (dated in simulated time: presence's proof that the reader was
   reading), a keepalive a KEEPALIVE, a power cut drops the reader's connections (and refuses
   new ones), a network cut silences them, a link cut cuts the gateway's uplink; sensor
   samples and door contacts go out as MQTT JSON, GPS fixes as OwnTracks, after the step;
   gate frames and labels are rendered and shown to the agent's simulated-time cameras after
   the step too, each answered once the camera pipeline has judged it (frames.py);
2. each live reader's barrier: a KEEPALIVE the agent must acknowledge, so it has read
   everything sent before (an LLRP client reads a connection in order);
3. the agent's clock moves to the end of the step; the answer comes when every timer due on the
   way has fired and the agent has settled (its stale timers, windows, ticks, flushes).

The cloud's decisions read the same simulated time (``ControllerTime``, handed to ingest), so
the envelopes' times fall inside its skew window and alerts carry simulated times: the judge's
time to alert is simulated seconds. The paper trail goes through the cloud's API on that clock
too: a story's approved release is approved when its time comes (``_approved``), and the
cloud's gate push sends ``cmd/lot_releases`` to the agent. Signals with no device path here yet
(weights) are counted in ``unplayed`` and reported, never dropped silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import sys
import time
from collections import defaultdict
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import aiomqtt
import httpx
from pydantic import Field

from contract.topics import cmd_topic
from edge.trackers.releases import COMMAND as RELEASES_COMMAND
from firmware_sim.llrp_reader import LlrpReaderSim, Seen, TagPopulation
from firmware_sim.scenario.api import bearer, call_api, register_gateway
from firmware_sim.scenario.frames import (
    LABEL_BOX,
    FrameFeed,
    gate_image,
    label_image,
    with_idle_frames,
)
from firmware_sim.scenario.judge import Verdict, judge
from firmware_sim.scenario.link import CuttableLink
from firmware_sim.scenario.receiver import WebhookInbox
from firmware_sim.scenario.schema import _M, Expected, LotSpec, RunNames
from firmware_sim.world.signals import (
    DoorContact,
    GateFrame,
    GpsFix,
    LabelFrame,
    LinkState,
    ReadCycle,
    ReaderKeepalive,
    ReaderPower,
    SensorSample,
    Signal,
    TagRead,
)
from ops import timeouts
from ops.clock_control import ClockController

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[2]
WEEK_US = 7 * 86400 * 1_000_000
# A reader that is powered and networked but has no session yet (the agent is reconnecting
# after its backoff): how long one step waits, in real time, for the session to come back.
RECONNECT_WAIT_S = 0.5
# ...and how long it looks for the agent's connection attempt at all (its backoff may still
# be sleeping in simulated time: then the reads of the next step are lost, as on a real site).
CONNECT_GRACE_S = 0.005
# Sensor samples reach the agent through the site's broker, which gives no acknowledgement of
# the agent's reading: a step that published samples waits this long (real time) before the
# agent's time moves on. The samples are dated by their own ``ts``, so a late one still counts
# at its time; only the alert's own date (the agent's time) can be a step late.
SAMPLE_GRACE_S = 0.02
# A release approved through the API: how long (real time) the cloud's gate push may take to
# publish it, and how long the agent is given to take it from the broker.
PUSH_WAIT_S = 15.0
PUSH_GRACE_S = 0.2
RECEIPT_WAIT_S = 10.0


class RawReader(_M):
    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,40}$")
    antennas: list[int] = Field(default_factory=lambda: [1], min_length=1)
    keepalive_s: float = Field(5.0, gt=0)
    zones: dict[int, str] = Field(default_factory=dict)  # antenna -> zone (bays, docks)


class RawSensor(_M):
    """A sensor publishing MQTT JSON to the site's broker (edge/sensors/mqtt_json.py) and the
    site's limits for it."""

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,60}$")
    kind: Literal["temperature", "humidity", "shock"] = "temperature"
    lot: str | None = None
    low: float | None = None
    high: float | None = None
    min_duration_s: float = Field(0.0, ge=0)
    hysteresis: float = Field(0.0, ge=0)


class RawLot(LotSpec):
    """A lot, its tags ``LOT:0`` .. ``LOT:n-1`` in the signals, and the readers covering it."""

    readers: list[str] = Field(min_length=1)
    absence_window_s: float = Field(30.0, gt=0)
    move_window_s: float | None = Field(None, gt=0)


class RawScenario(_M):
    """A hand-written raw-signal story's site and expectations (its signals come beside it;
    the world's stories, firmware_sim/world, are played by stories.py)."""

    name: str = Field(pattern=r"^[a-z0-9_-]+$")
    description: str = ""
    lots: list[RawLot] = Field(default_factory=list)
    readers: list[RawReader] = Field(default_factory=list)
    sensors: list[RawSensor] = Field(default_factory=list)
    must: list[Expected] = Field(default_factory=list)
    must_not: list[Expected] = Field(default_factory=list)
    step_s: float = Field(1.0, gt=0, le=60)  # simulated time per barrier
    # Simulated time played after the last signal: the world says nothing then (no reads, no
    # keepalives), so keep it short or let the world's stream run on.
    settle_s: float = Field(0.0, ge=0)


@dataclass(frozen=True)
class SimCamera:
    """A camera of the site, fed rendered frames at their simulated time (frames.py): a gate
    camera reads plates in ``region``; a stack camera watches the labels of ``labels`` (lots)."""

    name: str
    role: Literal["gate", "stack"] = "gate"
    region: str = "auto"
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class PaperRelease:
    """An approved release as a story states it: up to ``pieces`` of ``lot`` on ``vehicle``
    from ``from_us`` (the signals' time). The cloud's pickup window runs from the approval for
    its own fixed time (cloud/receipts/gate.py), so a story's window end is not sent."""

    lot: str
    pieces: int
    vehicle: str
    from_us: int


@dataclass(frozen=True)
class SiteSpec:
    """What the player sets up: the readers, and each lot with its tags as the signals name
    them (the player gives every tag a run-unique EPC, so runs in one cloud do not meet)."""

    name: str
    readers: list[RawReader]
    lots: list[tuple[RawLot, list[str]]]
    epoch_us: int = 0  # the signals' time at the story's start
    step_s: float = 1.0
    settle_s: float = 0.0
    sensors: list[RawSensor] = field(default_factory=list)
    # Door contacts (MQTT JSON, the agent's door monitor) and the site's working hours.
    doors: list[str] = field(default_factory=list)
    timezone: str = "UTC"
    working_hours: tuple[int, int] = (0, 24)
    # The paper trail, registered through the cloud's API so its gate push reaches the agent:
    # vehicles every lot of the site lists, and approved releases (approved at their start).
    authorised_vehicles: list[str] = field(default_factory=list)
    releases: list[PaperRelease] = field(default_factory=list)
    # GPS trackers (OwnTracks JSON on the site's broker, the agent's tracker pipeline): each
    # (name, the lot it rides on, its report period in s), and the site's shipped fences
    # (geofences/sites/<fences>.geojson).
    trackers: list[tuple[str, str | None, float]] = field(default_factory=list)
    fences: str | None = None
    # Cameras fed the world's gate frames and labels, and the site's label setting.
    cameras: list[SimCamera] = field(default_factory=list)
    label_unreadable_after_s: float = 600.0

    @classmethod
    def from_scenario(cls, sc: RawScenario) -> SiteSpec:
        return cls(sc.name, sc.readers, [(lot, [f"{lot.id}:{i}" for i in range(lot.tags)])
                                         for lot in sc.lots], 0, sc.step_s, sc.settle_s,
                   sc.sensors)


def start_for(epoch_us: int, now_us: int) -> int:
    """Where simulated time starts: the story's start moved on by whole weeks to at or after
    ``now_us`` (the cloud refuses envelopes dated before the gateway was registered), so the
    time of day and the weekday a story depends on stay what it says."""
    weeks = max(0, -(-(now_us - epoch_us) // WEEK_US))
    return epoch_us + weeks * WEEK_US


@dataclass
class RawRun:
    """What a run left: the cloud's alerts (API rows), the financier's webhooks, the link cuts
    in simulated µs, and how fast it went."""

    names: RunNames
    start_us: int
    shift_us: int  # simulated time minus the signals' time
    alerts: list[dict[str, Any]]
    webhooks: list[tuple[float, dict[str, str], bytes]]
    link_cuts: list[tuple[int, int]]
    simulated_s: float
    wall_s: float
    unplayed: dict[str, int] = field(default_factory=dict)
    # The gateway's local siren: (its time, alert type, subject, on) as it published them.
    alarms: list[tuple[int, str, str, bool]] = field(default_factory=list)
    site: str = ""  # the cloud's site this run's gateway is at ("": every alert is its own)
    financier: str = ""  # whose webhook endpoint ``webhooks`` are

    @property
    def simulated_per_wall(self) -> float:
        return self.simulated_s / self.wall_s if self.wall_s else 0.0

    def reader_id(self, logical: str) -> str:
        return f"{logical}-{self.names.run_id}"


def judge_scenario(sc: RawScenario, run: RawRun) -> Verdict:
    """The conclusion-level judge on a hand-written raw scenario's run (times: simulated s)."""
    alerts = [{**a, "subject": _logical_reader(a["subject"], run)} for a in run.alerts]
    verdict = judge(sc, run.names, alerts, started=run.start_us / 1e6, webhooks=run.webhooks,
                    local_alarms=0)
    for timing in verdict.timings:  # a webhook arrives in real time: no simulated delay
        timing["webhook_s"] = None
    return verdict


def _logical_reader(subject: str, run: RawRun) -> str:
    """Readers and sensors are named per run; their alerts' subjects back to the story's."""
    suffix = f"-{run.names.run_id}"
    if subject.startswith(("reader:", "sensor:")) and subject.endswith(suffix):
        return subject.removesuffix(suffix)
    return subject


@dataclass
class _Stage:
    """One run's devices and bookkeeping."""

    site: SiteSpec
    readers: dict[str, LlrpReaderSim]
    link: CuttableLink
    start_us: int
    shift_us: int
    broker: tuple[str, int]
    epcs: dict[str, str]  # the signals' name of a tag -> its EPC in this run
    pending: dict[str, list[tuple[str, int, int, int]]] = field(
        default_factory=lambda: defaultdict(list))  # reads of a cycle not yet reported
    unplayed: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    cut_at: int | None = None
    link_cuts: list[tuple[int, int]] = field(default_factory=list)
    sensors: aiomqtt.Client | None = None  # publishes the sensors' samples
    # (time, device, quantity, value) of this step, not yet sent
    samples: list[tuple[int, str, str, float | str | tuple[float, float, float]]] = field(
        default_factory=list)
    releases: list[PaperRelease] = field(default_factory=list)  # not yet approved, in order
    receipts: dict[str, str] = field(default_factory=dict)  # lot -> its receipt's number
    gateway: str = ""
    feeds: dict[str, FrameFeed] = field(default_factory=dict)  # camera -> its frame channel
    frames: list[GateFrame | LabelFrame] = field(default_factory=list)  # this step's, unsent
    player: RawPlayer | None = None  # the cloud site, financier and names of this gateway
    inbox: WebhookInbox | None = None  # this site's financier's webhook endpoint
    alarms: list[tuple[int, str, str, bool]] = field(default_factory=list)  # its siren
    data_dir: Path | None = None
    config: Path | None = None


class ControllerTime:
    """The cloud's clock during a run: the controller's simulated now (what the gateway's
    clock says at the last barrier); its waits stay real (they pace I/O, not decisions)."""

    def __init__(self, controller: ClockController) -> None:
        self._controller = controller

    def now_us(self) -> int:
        return self._controller.now_us

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._controller.now_us / 1e6, UTC)

    def monotonic(self) -> float:
        return self._controller.now_us / 1e6

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def wait_for(self, awaitable: Awaitable[T], timeout_s: float) -> T:
        return await timeouts.wait_for(awaitable, timeout_s)


@dataclass
class RawPlayer:
    api: httpx.AsyncClient
    admin_key: str
    financier_key: str
    financier: str
    site: str
    broker_url: str
    work_dir: Path
    controller: ClockController
    names: RunNames = field(default_factory=RunNames)

    async def _post(self, path: str, key: str, body: Any = None, method: str = "POST") -> Any:
        return await call_api(self.api, path, key, body, method)

    async def run(self, site: SiteSpec, signals: Iterable[Signal]) -> RawRun:
        """Play ``signals`` (dated from ``site.epoch_us``, moved to the controller's start)."""
        (run,) = await play_sites([(self, site, signals)])
        return run

    async def _prepare(self, stack: contextlib.AsyncExitStack, site: SiteSpec, start_us: int,
                       shift_us: int, index: int) -> _Stage:
        """This site's gateway registered, its lots, devices, webhook endpoint, siren listener
        and agent config; the agent itself is started by the caller."""
        # One gateway per site of a story: the first keeps the name a one-site run has.
        gateway = f"raw-{self.names.run_id}" + (f"-{index}" if index else "")
        key_file = await register_gateway(self.api, self.admin_key, self.site, gateway,
                                          self.work_dir)
        epcs: dict[str, str] = {}
        for lot, tags in site.lots:
            run_epcs = self.names.epcs(lot)
            epcs.update(zip(tags, run_epcs, strict=True))
            await self._post("/api/v1/lots", self.admin_key, {
                "id": self.names.lot_id(lot.id), "site_id": self.site,
                "name": f"{site.name} {lot.id}", "pieces": lot.tags,
                "financier_id": self.financier, "epcs": run_epcs})
        readers = {r.id: LlrpReaderSim(TagPopulation({}), driven=True,
                                       clock_us=lambda: self.controller.now_us)
                   for r in site.readers}
        broker = urlsplit(self.broker_url)
        host, port = broker.hostname or "127.0.0.1", broker.port or 1883
        inbox = WebhookInbox()
        await stack.enter_async_context(inbox.serving())
        link = await stack.enter_async_context(CuttableLink(host, port))
        for sim in readers.values():
            await stack.enter_async_context(sim)
        stage = _Stage(site, readers, link, start_us, shift_us, (host, port), epcs,
                       gateway=gateway, releases=sorted(site.releases, key=lambda r: r.from_us),
                       player=self, inbox=inbox, data_dir=self.work_dir / gateway,
                       config=self.work_dir / f"{gateway}.toml")
        if site.authorised_vehicles:
            for lot, _ in site.lots:
                await self._post(f"/api/v1/lots/{self.names.lot_id(lot.id)}/details",
                                 self.admin_key,
                                 {"authorised_vehicles": site.authorised_vehicles}, "PUT")
        if site.sensors or site.doors or site.trackers:
            stage.sensors = await stack.enter_async_context(aiomqtt.Client(host, port))
        for camera in site.cameras:
            stage.feeds[camera.name] = await stack.enter_async_context(FrameFeed(camera.name))
        await self._post("/api/v1/webhooks/endpoints", self.financier_key,
                         {"url": f"http://127.0.0.1:{inbox.port}/hooks"})
        stage.config.write_text(self._config(stage, gateway, key_file, stage.data_dir))
        listening = asyncio.create_task(self._listen_siren(host, port, gateway, stage.alarms))
        stack.push_async_callback(_cancelled, listening)
        return stage

    async def _listen_siren(self, host: str, port: int, gateway: str,
                            alarms: list[tuple[int, str, str, bool]]) -> None:
        """What the gateway's siren is told, on the site's own broker (edge/siren.py)."""
        async with aiomqtt.Client(host, port) as client:
            await client.subscribe(f"pw/local/{self.site}/{gateway}/alarm/#", qos=1)
            async for message in client.messages:
                if not isinstance(message.payload, bytes | bytearray):
                    continue
                alarm = json.loads(message.payload)
                alarms.append((int(alarm["at_us"]), str(alarm["alert_type"]),
                               str(alarm["subject"]), alarm["state"] == "on"))

    def _config(self, stage: _Stage, gateway: str, key_file: Path, data_dir: Path) -> str:
        site, link, readers = stage.site, stage.link, stage.readers
        host, port = stage.broker
        lines = [
            f'site = "{self.site}"', f'gateway = "{gateway}"', f'key_file = "{key_file}"',
            f'data_dir = "{data_dir}"', "health_interval_s = 3600", 'log_level = "WARNING"', "",
            "[broker]", f'url = "mqtt://127.0.0.1:{link.local_port}"', "keepalive_s = 5", "",
            "[local_alarm]", f'host = "{host}"', f"port = {port}", "",
        ]
        if site.readers:
            # A lot's absence window is the gateway's [alerting] setting for it (how long an
            # uncorroborated departure waits before it is theft), as the value-level runner
            # has it; presence keeps its own windows (move_window_s where the story sets one).
            lines += ["[alerting.lots]"] + [
                f'"{self.names.lot_id(lot.id)}" = {lot.absence_window_s}'
                for lot, _ in site.lots] + [""]
            lines += ["[rfid]", "tick_interval_s = 1.0", ""]
        for r in site.readers:
            lines += ["[[rfid.readers]]", 'kind = "llrp"', f'id = "{self._reader(r.id)}"',
                      'host = "127.0.0.1"', f"port = {readers[r.id].port}",
                      f"antennas = {r.antennas}", f"keepalive_s = {r.keepalive_s}",
                      "last_seen = true", ""]
        for r in site.readers:
            by_zone: dict[str, list[int]] = defaultdict(list)
            for antenna, zone in sorted(r.zones.items()):
                by_zone[zone].append(antenna)
            for zone, antennas in by_zone.items():
                lines += ["[[rfid.zones]]", f'name = "{zone}"', f"antennas = {antennas}",
                          f'reader = "{self._reader(r.id)}"', ""]
        for lot, _ in site.lots:
            epcs = ", ".join(f'"{e}"' for e in self.names.epcs(lot))
            covering = ", ".join(f'"{self._reader(r)}"' for r in lot.readers)
            lines += ["[[rfid.lots]]", f'id = "{self.names.lot_id(lot.id)}"',
                      f"epcs = [{epcs}]", f"readers = [{covering}]",
                      *([f"move_window_s = {lot.move_window_s}"] if lot.move_window_s else []),
                      ""]
        if site.sensors or site.doors:
            lines += ["[sensors]", f'mqtt_url = "mqtt://{host}:{port}"', "flush_s = 5.0", ""]
        h0, h1 = site.working_hours
        for door in site.doors:
            lines += ["[[sensors.devices]]", f'id = "{self._reader(door)}"',
                      "[sensors.devices.door_schedule]", f'timezone = "{site.timezone}"',
                      f'open = ["mon-sun {h0:02d}:00-{h1:02d}:00"]', ""]
        if site.trackers and site.fences:
            lines += ["[trackers]", f'mqtt_url = "mqtt://{host}:{port}"',
                      f'fences = "{self._fences(site.fences)}"', ""]
            for name, lot, period_s in site.trackers:
                lines += ["[[trackers.assets]]", f'tracker = "{self.tracker_id(name)}"',
                          f"report_interval_s = {period_s}"]
                lines += [f'lot = "{lot}"'] if lot else []
                lines.append("")
        lots = {lot.id for lot, _ in site.lots}
        for sensor in site.sensors:
            lines += ["[[sensors.devices]]", f'id = "{self._reader(sensor.id)}"']
            if sensor.lot in lots:
                lines.append(f'lot = "{self.names.lot_id(sensor.lot)}"')
            lines += [f"[sensors.devices.{sensor.kind}]",
                      f"min_duration_s = {sensor.min_duration_s}",
                      f"hysteresis = {sensor.hysteresis}"]
            lines += [f"{name} = {value}" for name, value in (("low", sensor.low),
                                                                ("high", sensor.high))
                      if value is not None]
            lines.append("")
        lines += self._cameras_config(stage, data_dir)
        return "\n".join(lines)

    def _cameras_config(self, stage: _Stage, data_dir: Path) -> list[str]:
        """The ``[cameras]`` section: each camera on its frame channel, judged as it comes
        (``label_every_s``: a stack camera looks at its labels in every frame it is shown, the
        world shows a label when someone could look)."""
        cameras = stage.site.cameras
        if not cameras:
            return []
        lines = ["[cameras]", f'evidence_dir = "{data_dir / "evidence"}"', ""]
        for camera in cameras:
            lines += ["[[cameras.cameras]]", f'name = "{self._reader(camera.name)}"',
                      f'source = "{stage.feeds[camera.name].source}"',
                      f'role = "{camera.role}"', f'region = "{camera.region}"', "pace = false"]
            if camera.role == "stack":
                if len(camera.labels) > 1:  # frames.py renders one label, at LABEL_BOX
                    raise ValueError(f"camera {camera.name}: one label per stack camera")
                x, y, w, h = LABEL_BOX
                lines += ["label_every_s = 1.0",
                          f"label_unreadable_after_s = {stage.site.label_unreadable_after_s}"]
                lines += [f'labels = [{{ lot = "{self.names.lot_id(lot)}", '
                          f"box = [{x}, {y}, {w}, {h}] }}]" for lot in camera.labels]
            lines.append("")
        return lines

    def _tracker_topic(self, logical: str) -> str:
        """owntracks/<user>/<device>: the agent names the tracker ``<user>-<device>``."""
        return f"owntracks/pw/{self._reader(logical)}"

    def tracker_id(self, logical: str) -> str:
        return f"pw-{self._reader(logical)}"

    def _fences(self, name: str) -> Path:
        """The site's shipped fences, as this run's site (the agent refuses another site's)."""
        fences = json.loads((REPO / "geofences" / "sites" / f"{name}.geojson").read_text())
        fences["site"] = self.site
        path = self.work_dir / f"fences-{self.site}-{self.names.run_id}.geojson"
        path.write_text(json.dumps(fences))
        return path

    def _reader(self, logical: str) -> str:
        """Reader and sensor ids are run-unique too: their alerts' subjects must not meet
        other runs' (nor their topics on the site's broker)."""
        return f"{logical}-{self.names.run_id}"

    async def _start_agent(self, config: Path, log_name: str = "agent.log"
                           ) -> asyncio.subprocess.Process:
        log = (self.work_dir / log_name).open("wb")
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "edge", "run", "--config", str(config),
            "--clock", self.controller.spec, cwd=REPO, env=env,
            stdout=log, stderr=asyncio.subprocess.STDOUT)

    async def _stop_agents(self, agents: list[asyncio.subprocess.Process]) -> None:
        await self.controller.close()  # an agent stops when its clock's controller goes
        for agent in agents:
            try:
                await timeouts.wait_for(agent.wait(), 10)
            except TimeoutError:
                agent.kill()
                await agent.wait()

    async def _play(self, stages: list[_Stage], signals: list[list[Signal]]) -> None:
        """Every site's signals, step by step on the one clock (``signals[k]``: stage k's, in
        time order): each step's signals to their devices and every reader's barrier, at
        every site, before the agents' time moves on."""
        step_us = round(min(stage.site.step_s for stage in stages) * 1_000_000)
        end_us = max((max(stage.start_us, sent[-1].t_us + stage.shift_us) if sent
                      else stage.start_us) + round(stage.site.settle_s * 1e6)
                     for stage, sent in zip(stages, signals, strict=True))
        nexts = [0] * len(stages)
        now = min(stage.start_us for stage in stages)
        while now < end_us:
            step_end = min(now + step_us, end_us)
            for k, stage in enumerate(stages):
                sent, player = signals[k], stage.player
                assert player is not None
                while nexts[k] < len(sent) and sent[nexts[k]].t_us + stage.shift_us <= step_end:
                    await player._signal(stage, sent[nexts[k]])
                    nexts[k] += 1
                for reader in list(stage.pending):  # reads whose cycle end the world did not state
                    await self._report(stage.readers, reader, stage.pending.pop(reader))
            for stage in stages:
                for sim in stage.readers.values():
                    await sim.barrier()
            await self.controller.advance_to(step_end)
            now = step_end
            for stage in stages:
                assert stage.player is not None
                await stage.player._sampled(stage)
                await stage.player._framed(stage)
                await self._reconnected(stage.readers)
                await stage.player._approved(stage)
            # Nothing until the next signal: one jump (every timer still fires on the way).
            upcoming = end_us
            for k, stage in enumerate(stages):
                if nexts[k] < len(signals[k]):
                    upcoming = min(upcoming, signals[k][nexts[k]].t_us + stage.shift_us)
                if stage.releases:
                    upcoming = min(upcoming,
                                   stage.releases[0].from_us + stage.shift_us + step_us)
            if upcoming - step_us > now:
                now = min(upcoming - step_us, end_us)
                await self.controller.advance_to(now)
                for stage in stages:
                    assert stage.player is not None
                    await self._reconnected(stage.readers)
                    await stage.player._approved(stage)

    async def _approved(self, stage: _Stage) -> None:
        """The releases whose time has come, through the cloud's API as the warehouse and the
        pledgee do it (receipt issued once the tags are verified present, pledged, release
        requested with its pieces and vehicle, approved): the cloud's gate push sends
        ``cmd/lot_releases`` and ``cmd/authorised_vehicles`` to the agent, which holds them
        before its time moves on."""
        while stage.releases and stage.releases[0].from_us + stage.shift_us <= \
                self.controller.now_us:
            release = stage.releases.pop(0)
            lot = next(lot for lot, _ in stage.site.lots if lot.id == release.lot)
            lot_id = self.names.lot_id(lot.id)
            number = stage.receipts.get(lot.id)
            if number is None:
                number = stage.receipts[lot.id] = await self._receipt(lot, lot_id)
            async with aiomqtt.Client(*stage.broker) as watch:
                await watch.subscribe(cmd_topic(self.site, stage.gateway, RELEASES_COMMAND),
                                      qos=1)
                request = await self._post(f"/api/v1/receipts/{number}/releases",
                                           self.admin_key, {
                    "quantity": str(release.pieces), "pieces": release.pieces,
                    "tags": self.names.epcs(lot)[: release.pieces],
                    "vehicle": release.vehicle})
                await self._post(f"/api/v1/receipts/{number}/releases/{request['id']}/approve",
                                 self.financier_key)
                async with asyncio.timeout(PUSH_WAIT_S):
                    async for message in watch.messages:  # the push naming this lot
                        if isinstance(message.payload, bytes | bytearray) and \
                                f'"{lot_id}"'.encode() in message.payload:
                            break
            await asyncio.sleep(PUSH_GRACE_S)  # the agent is subscribed to the same push

    async def _receipt(self, lot: RawLot, lot_id: str) -> str:
        """A pledged warehouse receipt for the lot (its goods must be verified present)."""
        number = f"WR-{lot_id}"
        await self._post(f"/api/v1/lots/{lot_id}/details", self.admin_key, {
            "quality": "A", "packaging": "pieces", "quantity": str(lot.tags), "unit": "pcs",
            "marks": "sim", "unit_value": "100.00", "fence": f"{self.site}-fence"}, "PUT")
        deadline = time.monotonic() + RECEIPT_WAIT_S
        while True:
            try:
                await self._post(f"/api/v1/lots/{lot_id}/receipts", self.admin_key, {
                    "number": number,
                    "storage_period": {"from": "2026-01-01", "to": "2030-01-01"}})
                break
            except RuntimeError:  # 409: not verified present yet (observations in flight)
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.3)
        await self._post(f"/api/v1/receipts/{number}/pledge", self.admin_key,
                         {"pledgee": self.financier})
        return number

    async def _sampled(self, stage: _Stage) -> None:
        """The step's sensor samples, sent once the agent's time has reached them (a sample
        cannot be read before it is taken), each carrying its own time (the device's clock)."""
        if not stage.samples or stage.sensors is None:
            return
        for t_us, device, quantity, value in stage.samples:
            at_s = (t_us + stage.shift_us) / 1e6
            if isinstance(value, tuple):  # a GPS fix: OwnTracks, the tracker's own fix time
                lat, lon, accuracy = value
                await stage.sensors.publish(
                    self._tracker_topic(device), json.dumps({
                        "_type": "location", "lat": lat, "lon": lon, "acc": accuracy,
                        "tst": at_s}), qos=1)
                continue
            payload = json.dumps({"ts": at_s, quantity: value})
            await stage.sensors.publish(f"sensors/{self._reader(device)}", payload, qos=1)
        stage.samples.clear()
        await asyncio.sleep(SAMPLE_GRACE_S)  # through the broker: let them reach the agent

    async def _framed(self, stage: _Stage) -> None:
        """The step's camera frames, rendered and shown once the agent's time has reached them,
        each at its own time; each returns once the agent's pipeline has judged it."""
        for frame in stage.frames:
            image = (gate_image(frame) if isinstance(frame, GateFrame) else label_image(frame))
            await stage.feeds[frame.camera].show(image, frame.t_us + stage.shift_us)
        stage.frames.clear()

    async def _reconnected(self, readers: dict[str, LlrpReaderSim]) -> None:
        """A reader up but without a session: the agent may be connecting after its backoff
        woke (real I/O); give it a moment, so the reads that follow are not lost to timing."""
        for sim in readers.values():
            if sim.powered and sim.networked and not sim.live_clients():
                await asyncio.sleep(CONNECT_GRACE_S)  # a backoff that just woke connects now
                if sim.connecting():
                    with contextlib.suppress(TimeoutError):
                        await sim.connected(timeout_s=RECONNECT_WAIT_S)

    async def _report(self, readers: dict[str, LlrpReaderSim], reader: str,
                      reads: list[tuple[str, int, int, int]], cycle_us: int | None = None,
                      ) -> None:
        """A cycle's reads, one report per read time; ``cycle_us``: the world said the round
        ended then (an end-of-AISpec event follows, read or not)."""
        sim = readers.get(reader)
        if sim is None:
            return
        by_time: dict[int, list[tuple[str, int, int]]] = defaultdict(list)
        for epc, antenna, rssi, at_us in reads:
            by_time[at_us].append((epc, antenna, rssi))
        for at_us in sorted(by_time):
            await sim.report(by_time[at_us], at_us)
        if cycle_us is not None:
            await sim.report([], cycle_us, rounds=1)

    async def _signal(self, stage: _Stage, s: Signal) -> None:
        readers, link, pending = stage.readers, stage.link, stage.pending
        at_us = s.t_us + stage.shift_us
        if _is_report(s):
            sim = readers.get(s.reader)  # type: ignore[union-attr]
            if sim is not None:
                await sim.report([Seen(stage.epcs.get(t.epc, t.epc), t.antenna,
                                       round(t.rssi_cdbm / 100), t.last_us + stage.shift_us,
                                       t.count)
                                  for t in s.tags],  # type: ignore[union-attr]
                                 at_us, empty=s.rounds > 0,  # type: ignore[union-attr]
                                 rounds=s.rounds,  # type: ignore[union-attr]
                                 since_us=s.since_us + stage.shift_us)  # type: ignore[union-attr]
        elif isinstance(s, TagRead):
            pending[s.reader].append(
                (stage.epcs.get(s.epc, s.epc), s.antenna, round(s.rssi_cdbm / 100), at_us))
        elif isinstance(s, ReadCycle):
            await self._report(readers, s.reader, pending.pop(s.reader, []), cycle_us=at_us)
        elif isinstance(s, ReaderKeepalive):
            if s.reader in readers:
                await readers[s.reader].keepalive()
        elif isinstance(s, ReaderPower):
            sim = readers.get(s.reader)
            if sim is not None:
                if s.cause == "power":
                    sim.set_power(s.on)
                else:
                    sim.set_network(s.on)
        elif isinstance(s, SensorSample) and stage.sensors is not None and any(
                x.id == s.sensor and x.kind == s.kind for x in stage.site.sensors):
            stage.samples.append((s.t_us, s.sensor, s.kind, s.value))
        elif isinstance(s, GpsFix) and any(s.tracker == t[0] for t in stage.site.trackers):
            stage.samples.append((s.t_us, s.tracker, "gps", (s.lat, s.lon, s.accuracy_m)))
        elif isinstance(s, GateFrame | LabelFrame) and s.camera in stage.feeds:
            stage.frames.append(s)
        elif isinstance(s, DoorContact) and s.door in stage.site.doors:
            stage.samples.append((s.t_us, s.door, "door", "open" if s.open else "closed"))
        elif isinstance(s, LinkState):
            if s.up:
                link.up = True
                if stage.cut_at is not None:
                    stage.link_cuts.append((stage.cut_at, at_us))
                    stage.cut_at = None
            else:
                link.down()
                stage.cut_at = at_us if stage.cut_at is None else stage.cut_at
        else:
            stage.unplayed[type(s).__name__] += 1

    async def _drained(self, outbox: Path, link: CuttableLink, timeout_s: float = 30) -> None:
        """Until the cloud confirmed everything the agent stored (its outbox is empty)."""
        deadline = time.monotonic() + timeout_s
        while link.up and time.monotonic() < deadline:
            with contextlib.closing(sqlite3.connect(f"file:{outbox}?mode=ro", uri=True)) as db:
                (depth,) = db.execute("SELECT count(*) FROM outbox").fetchone()
            if depth == 0:
                return
            await asyncio.sleep(0.2)


async def play_sites(plays: Sequence[tuple[RawPlayer, SiteSpec, Iterable[Signal]]]
                     ) -> list[RawRun]:
    """A story's sites, one agent process per site, on one simulated time. Each player is one
    site of the cloud: its own gateway registration, key, config, devices, lots, financier and
    webhook endpoint; the players share the API and the clock controller (made with one
    follower per site), so the sites step together. The signals' times are moved by one shift
    (the first site's start to the controller's): the sites' clocks agree, as they do in the
    world. Returns one run per site, in order, each with the cloud's alerts of every site (the
    run's ``site`` tells its own) and its own financier's webhooks."""
    first = plays[0][0]
    controller = first.controller
    if controller.followers != len(plays) or any(p.controller is not controller
                                                 for p, _, _ in plays):
        raise ValueError("one controller with one follower per site")
    start_us = controller.now_us
    shift_us = start_us - plays[0][1].epoch_us
    ordered = [sorted(signals, key=lambda s: s.t_us) for _, _, signals in plays]
    wall_started = time.monotonic()
    async with contextlib.AsyncExitStack() as stack:
        stages = [await player._prepare(stack, site, start_us, shift_us, k)
                  for k, (player, site, _) in enumerate(plays)]
        # A camera sends the empty gate around a vehicle.
        ordered = [with_idle_frames(sent) if stage.feeds else sent
                   for sent, stage in zip(ordered, stages, strict=True)]
        await asyncio.sleep(0.2)  # subscribed before the agent can sound anything
        agents: list[asyncio.subprocess.Process] = []
        try:
            for k, stage in enumerate(stages):
                assert stage.config is not None
                agents.append(await plays[k][0]._start_agent(
                    stage.config, f"agent-{stage.gateway}.log" if k else "agent.log"))
            await controller.attached()
            for stage in stages:
                for sim in stage.readers.values():
                    await sim.connected(timeout_s=30)
            await first._play(stages, ordered)
            for k, stage in enumerate(stages):
                assert stage.data_dir is not None
                await plays[k][0]._drained(stage.data_dir / "outbox.db", stage.link)
            await asyncio.sleep(0.5)  # a siren call in flight (one connection per alarm)
        finally:
            await first._stop_agents(agents)
        rows = await first.api.get("/api/v1/alerts", params={"limit": 1000},
                                   headers=bearer(first.admin_key))
        rows.raise_for_status()
    runs = []
    for (player, _, _), stage in zip(plays, stages, strict=True):
        assert stage.inbox is not None
        if stage.cut_at is not None:
            stage.link_cuts.append((stage.cut_at, controller.now_us))
        runs.append(RawRun(player.names, start_us, stage.shift_us, rows.json(),
                           stage.inbox.received, stage.link_cuts,
                           (controller.now_us - start_us) / 1e6,
                           time.monotonic() - wall_started, dict(stage.unplayed), stage.alarms,
                           site=player.site, financier=player.financier))
    return runs


async def _cancelled(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _is_report(s: object) -> bool:
    """The world's `ReadReport` (one per reader per report period), recognised by shape: the
    per-read signals (`TagRead`, `ReadCycle`) are played too."""
    return hasattr(s, "rounds") and hasattr(s, "tags") and hasattr(s, "since_us")
