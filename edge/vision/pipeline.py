"""The camera pipeline of the edge agent: config section ``cameras``.

Per camera one supervised task: open the source (reconnecting with backoff when it fails or
vanishes; every loss is logged), read frames in a worker thread, run the gate or stack logic in
a worker thread, and turn what it decides into messages:

- a vehicle passage -> ``plate_read`` with the best crop and a downscaled frame as evidence;
  leaving (direction ``out``) without authorisation -> ``theft.unauthorized_vehicle`` alert;
- a label read or read differently -> ``label_read``; unreadable too long ->
  ``damage.label_unreadable`` alert (cleared when read again);
- blind (dark, covered, frozen) -> ``tamper.camera_blocked`` alert (cleared when seeing again).

Evidence images are stored beside the outbox (``evidence_dir``) and, when ``upload`` is set,
sent to the cloud by hash in the background (upload.py); events reference them by hash.

The authorised vehicles list arrives on ``cmd/authorised_vehicles`` (an ``AuthorisedVehicles``
JSON body); a newer version replaces the file named in the config, so it survives a restart.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from contract import MessageType
from contract.messages import AlertBody, EvidenceRef, LabelReadBody, PlateReadBody
from decisions.alert_text import alert_text
from decisions.alert_types import AlertType
from decisions.plate_format import RegionChoice
from decisions.vehicles import ALERT_TYPE as UNAUTHORISED
from decisions.vehicles import AuthorisedVehicles, judge_exit
from edge.pipelines import EdgeContext, Pipeline
from edge.vision.capture import CaptureError, FrameSource, open_source
from edge.vision.evidence import EvidenceStore
from edge.vision.label_watch import ALERT_TYPE as LABEL_UNREADABLE
from edge.vision.passages import CountingLine, Passage
from edge.vision.tamper import BlindnessChange
from ops.backoff import Backoff

log = logging.getLogger(__name__)

CAMERA_BLOCKED = AlertType.CAMERA_BLOCKED
AUTHORISED_COMMAND = "authorised_vehicles"
DEFAULT_MODEL = Path(__file__).parent / "models" / "plate_detector.onnx"

CameraName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LineSettings(_Settings):
    """A counting line in frame fractions; crossing towards ``inside`` is "in"."""

    x1: float = Field(ge=0, le=1)
    y1: float = Field(ge=0, le=1)
    x2: float = Field(ge=0, le=1)
    y2: float = Field(ge=0, le=1)
    inside: Literal["left", "right"] = "left"


class LabelSpotSettings(_Settings):
    lot: str = Field(min_length=1, max_length=128)
    box: tuple[int, int, int, int]  # x, y, w, h in pixels


class CameraSettings(_Settings):
    name: CameraName
    source: str = Field(min_length=1, description="rtsp://…, http://…, a video file, a folder, 0")
    role: Literal["gate", "stack"] = "gate"
    region: RegionChoice = "auto"
    line: LineSettings | None = None
    pace: bool = True  # play files at their own frame rate, as a live camera would deliver
    labels: list[LabelSpotSettings] = Field(default_factory=list)
    label_every_s: float = Field(default=30.0, gt=0)
    label_unreadable_after_s: float = Field(default=600.0, gt=0)
    blind_after_s: float = Field(default=10.0, gt=0)
    passage_gap_s: float = Field(default=2.0, gt=0)
    min_reads: int = Field(default=2, ge=1)


class UploadSettings(_Settings):
    """Where evidence images go (``PUT {url}/api/v1/evidence/{sha256}``, see upload.py)."""

    url: str = Field(pattern=r"^https?://")
    api_key_file: Path  # the gateway's API key, one line
    interval_s: float = Field(default=5.0, gt=0)


class VisionSettings(_Settings):
    cameras: list[CameraSettings] = Field(min_length=1)
    evidence_dir: Path = Path("var/edge/evidence")
    upload: UploadSettings | None = None
    authorised_vehicles_file: Path | None = None
    model: Path = DEFAULT_MODEL
    threads: int = Field(default=1, ge=1, le=16)
    reconnect_max_s: float = Field(default=30.0, gt=0)


@dataclass
class _Shared:
    settings: VisionSettings
    ctx: EdgeContext
    evidence: EvidenceStore
    authorised: AuthorisedVehicles | None


def _observed(at_us: int) -> datetime:
    return datetime.fromtimestamp(at_us / 1_000_000, UTC)


def _store(shared: _Shared, images: list[tuple[Any, str]]) -> list[EvidenceRef]:
    refs: list[EvidenceRef] = []
    for image, kind in images:
        try:
            refs.append(shared.evidence.put_image(image, kind))  # type: ignore[arg-type]
        except (OSError, ValueError) as err:
            # The event matters more than its picture: send it without, say so in the log.
            log.error("evidence image not stored", extra={"kind": kind, "error": str(err)})
    return refs


def emit_passage(shared: _Shared, camera: str, passage: Passage) -> None:
    evidence = passage.best.evidence
    refs = _store(shared, [(evidence.crop, "plate_crop"), (evidence.frame, "frame")]) if (
        evidence is not None) else []
    body = PlateReadBody(
        camera=camera, plate=passage.plate, region=passage.region,  # type: ignore[arg-type]
        plate_format=passage.plate_format, confidence_pct=round(passage.confidence * 100),
        reads=passage.reads, direction=passage.direction, first_seen_us=passage.first_seen_us,
        last_seen_us=passage.last_seen_us, box=passage.best.box, evidence=refs,
    )
    shared.ctx.emit(MessageType.PLATE_READ, body, observed_at=_observed(passage.best.at_us))
    if passage.direction != "out" or shared.authorised is None:
        return
    verdict = judge_exit(passage.plate, _observed(passage.last_seen_us), shared.authorised)
    if verdict.authorised:
        return
    text = alert_text("unauthorised_vehicle.raise", reason=verdict.reason, camera=camera,
                      plate=passage.plate)
    alert = AlertBody(
        action="raise", alert_type=UNAUTHORISED, subject=f"vehicle:{passage.plate}",
        severity="major", explanation=text.english(),
        evidence={"camera": camera, "plate": passage.plate, "images": [r.sha256 for r in refs],
                  "last_seen_us": passage.last_seen_us, **text.evidence()},
    )
    shared.ctx.emit(MessageType.ALERT, alert, observed_at=_observed(passage.last_seen_us))


def emit_blindness(shared: _Shared, camera: str, change: BlindnessChange, at_us: int) -> None:
    text = (alert_text("camera_blocked.raise", camera=camera, cause=change.cause,
                       since=f"{_observed(change.since_us):%H:%M:%S}")
            if change.action == "raise" else alert_text("camera_blocked.clear", camera=camera))
    alert = AlertBody(
        action=change.action, alert_type=CAMERA_BLOCKED, subject=f"camera:{camera}",
        severity="major", explanation=text.english(),
        evidence={"cause": change.cause, "brightness": round(change.stats.brightness, 1),
                  "detail": round(change.stats.detail, 2), "change": round(change.stats.change, 3),
                  **text.evidence()},
    )
    shared.ctx.emit(MessageType.ALERT, alert, observed_at=_observed(at_us))


async def _frames(source: FrameSource, pace_s: float | None) -> Any:
    while True:
        frame = await asyncio.to_thread(source.read)
        if frame is None:
            return
        yield frame
        if pace_s:
            await asyncio.sleep(pace_s)


def _processor(shared: _Shared, camera: CameraSettings) -> Any:
    """A factory, frame size -> the per-frame logic of this camera's role.

    Called in a thread: loading the models takes about a second."""
    from edge.vision.detector import PlateDetector
    from edge.vision.gate import GateWatch
    from edge.vision.ocr import TextReader
    from edge.vision.recognizer import PlateRecognizer
    from edge.vision.stack import LabelSpot, StackWatch

    reader = TextReader(threads=shared.settings.threads)
    now = shared.ctx.now_us()
    if camera.role == "stack":
        return lambda size: StackWatch(
            [LabelSpot(s.lot, s.box) for s in camera.labels], reader=reader, started_us=now,
            look_every_us=int(camera.label_every_s * 1e6),
            unreadable_after_us=int(camera.label_unreadable_after_s * 1e6),
            blind_hold_us=int(camera.blind_after_s * 1e6),
        )
    recognizer = PlateRecognizer(
        PlateDetector(shared.settings.model, threads=shared.settings.threads), reader,
        region=camera.region,
    )
    line = CountingLine(**camera.line.model_dump()) if camera.line else None
    return lambda size: GateWatch(
        recognizer, frame_size=size, line=line, gap_us=int(camera.passage_gap_s * 1e6),
        min_reads=camera.min_reads, blind_hold_us=int(camera.blind_after_s * 1e6),
    )


def _handle(shared: _Shared, camera: CameraSettings, outcome: Any, at_us: int) -> None:
    if outcome.blindness is not None:
        emit_blindness(shared, camera.name, outcome.blindness, at_us)
    for passage in getattr(outcome, "passages", []):
        emit_passage(shared, camera.name, passage)
    for reading in getattr(outcome, "readings", []):
        refs = _store(shared, [(reading.crop, "label_crop")])
        shared.ctx.emit(MessageType.LABEL_READ, LabelReadBody(
            camera=camera.name, lot=reading.lot, symbology=reading.label.symbology,
            text=reading.label.text[:512], gs1=reading.label.gs1, evidence=refs,
        ), observed_at=_observed(at_us))
    for verdict in getattr(outcome, "verdicts", []):
        minutes = verdict.unread_for_us / 60e6
        text = (alert_text("label_unreadable.raise", lot=verdict.lot, camera=camera.name,
                           minutes=f"{minutes:.0f}")
                if verdict.action == "raise"
                else alert_text("label_unreadable.clear", lot=verdict.lot))
        shared.ctx.emit(MessageType.ALERT, AlertBody(
            action=verdict.action, alert_type=LABEL_UNREADABLE, subject=f"lot:{verdict.lot}",
            severity="minor", lot=verdict.lot, explanation=text.english(),
            evidence={"camera": camera.name, "last_read_us": verdict.last_read_us,
                      **text.evidence()},
        ), observed_at=_observed(at_us))


async def run_camera(shared: _Shared, camera: CameraSettings) -> None:
    made = await asyncio.to_thread(_processor, shared, camera)
    backoff = Backoff(initial_s=1.0, maximum_s=shared.settings.reconnect_max_s)
    watch: Any = None
    while True:
        source: FrameSource | None = None
        try:
            source = await asyncio.to_thread(open_source, camera.source)
            pace = None
            if camera.pace and not source.live:
                pace = 0.1  # files and folders: about 10 frames per second
            # A live camera's frames happen now; a file's happen at their place in the file
            # (from when it was opened), however fast it is read: gaps between passages and
            # the blindness hold are judged in the picture's time.
            opened_us = shared.ctx.now_us()
            async for frame in _frames(source, pace):
                backoff.reset()
                if watch is None:
                    h, w = frame.image.shape[:2]
                    watch = made((w, h))
                at_us = shared.ctx.now_us() if source.live else opened_us + frame.at_us
                outcome = await asyncio.to_thread(watch.process, frame.image, at_us)
                _handle(shared, camera, outcome, at_us)
            if not source.live:
                log.info("camera source ended", extra={"camera": camera.name})
                _finish(shared, camera, watch)
                return
            raise CaptureError(f"{camera.source} ended")
        except CaptureError as err:
            _finish(shared, camera, watch)
            log.error("camera lost", extra={"camera": camera.name, "error": str(err),
                                            "attempt": backoff.attempts})
        finally:
            if source is not None:
                source.close()
        await asyncio.sleep(backoff.next_delay())


def _finish(shared: _Shared, camera: CameraSettings, watch: Any) -> None:
    """Passages still open when the picture stops are decided with what was seen."""
    if watch is not None and hasattr(watch, "finish"):
        for passage in watch.finish():
            emit_passage(shared, camera.name, passage)


def _authorised_handler(shared: _Shared) -> Any:
    def handle(payload: bytes) -> None:
        try:
            incoming = AuthorisedVehicles.model_validate_json(payload)
        except ValidationError as err:
            log.error("authorised vehicles list rejected", extra={"error": str(err)[:500]})
            return
        if shared.authorised is not None and incoming.version <= shared.authorised.version:
            log.info("authorised vehicles list not newer; kept",
                     extra={"have": shared.authorised.version, "got": incoming.version})
            return
        path = shared.settings.authorised_vehicles_file
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(incoming.model_dump_json().encode())
            os.replace(tmp, path)
        shared.authorised = incoming
        log.info("authorised vehicles list applied",
                 extra={"version": incoming.version, "vehicles": len(incoming.vehicles)})

    return handle


async def run(settings: VisionSettings, ctx: EdgeContext) -> None:
    authorised = None
    path = settings.authorised_vehicles_file
    if path is not None and path.exists():
        try:
            authorised = AuthorisedVehicles.load(path)
        except (OSError, ValidationError) as err:
            log.error("stored authorised vehicles list unreadable; waiting for the cloud's",
                      extra={"path": str(path), "error": str(err)[:500]})
    shared = _Shared(settings, ctx, EvidenceStore(settings.evidence_dir), authorised)
    ctx.on_command(AUTHORISED_COMMAND, _authorised_handler(shared))
    async with asyncio.TaskGroup() as group:
        for camera in settings.cameras:
            group.create_task(run_camera(shared, camera), name=f"camera:{camera.name}")
        if settings.upload is not None:
            from edge.vision.upload import EvidenceUploader

            key = settings.upload.api_key_file.read_text(encoding="utf-8").strip()
            uploader = EvidenceUploader(shared.evidence, base_url=settings.upload.url,
                                        api_key=key, interval_s=settings.upload.interval_s)
            group.create_task(uploader.run(), name="evidence-upload")


PIPELINE = Pipeline(section="cameras", config_model=VisionSettings, run=run)
