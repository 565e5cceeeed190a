"""The camera pipeline of the edge agent (config section ``cameras``): glue only.

Per camera: the `Camera` adapter (camera.py) yields timed frames, reconnecting itself; the
camera's watch (``GateWatch`` or ``StackWatch``, the pure per-frame decisions) judges each frame
in a worker thread; events.py turns what it decides into messages. Evidence images are stored
beside the outbox and, when ``upload`` is set, sent to the cloud by hash in the background
(upload.py). The gate list is kept by authorised.py.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from edge.pipelines import EdgeContext, Pipeline, clock_of
from edge.vision.authorised import (
    AUTHORISED_COMMAND,
    authorised_vehicles_handler,
    load_authorised,
)
from edge.vision.camera import Camera
from edge.vision.events import (
    VisionOutput,
    emit_blindness,
    emit_finished,
    emit_outcome,
)
from edge.vision.evidence import EvidenceStore
from edge.vision.passages import CountingLine
from edge.vision.pushed import PushedCamera, pushed
from edge.vision.settings import CameraSettings, VisionSettings
from ops.supervised import Health

log = logging.getLogger(__name__)

# At the end of a file, label text the background OCR is still reading is waited for this long
# (one call of the text detector on a 640 px crop takes 0.3-1 s on one core).
_TEXT_FLUSH_S = 5.0

# The scenario player (firmware_sim) judges a covered lens with the pipeline's own wording.
__all__ = ["PIPELINE", "VisionSettings", "emit_blindness", "run", "run_camera"]


def _watch_factory(shared: VisionOutput, camera: CameraSettings) -> Any:
    """A factory, frame size -> the per-frame logic of this camera's role.

    Called in a thread: loading the models takes about a second."""
    from decisions.plate_candidates import ProposalBudget
    from edge.vision.detector import PlateDetector
    from edge.vision.gate import GateWatch
    from edge.vision.ocr import TextReader
    from edge.vision.proposals import PlateProposer
    from edge.vision.recognizer import PlateRecognizer
    from edge.vision.stack import LabelSpot, StackWatch, out_of_view

    reader = TextReader(threads=shared.settings.threads)
    now = shared.ctx.now_us()
    if camera.role == "stack":
        spots = [LabelSpot(s.lot, s.box) for s in camera.labels]

        def stack_watch(size: tuple[int, int]) -> StackWatch:
            unseen = out_of_view(spots, size)
            for spot in unseen:
                log.error("label spot outside the camera's picture: not watched", extra={
                    "camera": camera.name, "lot": spot.lot, "box": list(spot.box),
                    "picture": f"{size[0]}x{size[1]}"})
            return StackWatch(
                [s for s in spots if s not in unseen], reader=reader, started_us=now,
                look_every_us=int(camera.label_every_s * 1e6),
                unreadable_after_us=int(camera.label_unreadable_after_s * 1e6),
                blind_hold_us=int(camera.blind_after_s * 1e6),
            )

        return stack_watch
    recognizer = PlateRecognizer(
        PlateDetector(shared.settings.model, threads=shared.settings.threads), reader,
        region=camera.region, country=camera.country,
    )
    line = CountingLine(**camera.line.model_dump()) if camera.line else None
    proposer = (PlateProposer(reader, region=camera.region, country=camera.country)
                if camera.plate_proposals else None)
    return lambda size: GateWatch(
        recognizer, frame_size=size, line=line, gap_us=int(camera.passage_gap_s * 1e6),
        min_reads=camera.min_reads, blind_hold_us=int(camera.blind_after_s * 1e6),
        proposer=proposer,
        proposal_budget=ProposalBudget(every_us=int(camera.proposal_every_s * 1e6)),
    )


def _log_health(health: Health) -> None:
    log.info("camera health",
             extra={"camera": health.source, "online": health.online, "reason": health.reason})


async def run_camera(shared: VisionOutput, camera: CameraSettings) -> None:
    made = await asyncio.to_thread(_watch_factory, shared, camera)
    watch: Any = None
    last_at_us: int | None = None
    source: Camera | PushedCamera
    if pushed(camera.source):  # frames with their own (simulated) capture time
        source = PushedCamera(camera.name, camera.source, _log_health,
                              clock=clock_of(shared.ctx),
                              reconnect_max_s=shared.settings.reconnect_max_s)
    else:
        source = Camera(camera, _log_health, now_us=shared.ctx.now_us,
                        reconnect_max_s=shared.settings.reconnect_max_s)
    failures = 0
    async with source:
        async for batch in source.batches():
            if not batch:  # the picture stopped: passages still open are decided now
                emit_finished(shared, camera.name, watch)
            for frame in batch:
                if watch is None:
                    h, w = frame.image.shape[:2]
                    watch = made((w, h))
                try:
                    outcome = await asyncio.to_thread(watch.process, frame.image, frame.at_us)
                except Exception:
                    # A fault of ours on one picture skips that frame: raised, it would end every
                    # camera of the agent, and the same scene would end the restarted one again.
                    failures += 1
                    if failures & (failures - 1) == 0:  # the 1st, 2nd, 4th...: no log flood
                        log.exception("frame processing failed",
                                      extra={"camera": camera.name, "failures": failures})
                    continue
                emit_outcome(shared, camera.name, outcome, frame.at_us)
                last_at_us = frame.at_us
    emit_finished(shared, camera.name, watch)  # a file read to its end
    if hasattr(watch, "flush"):  # a stack camera: label text still read in the background
        if last_at_us is not None:
            outcome = await asyncio.to_thread(watch.flush, _TEXT_FLUSH_S)
            emit_outcome(shared, camera.name, outcome, last_at_us)
        watch.close()


async def run(settings: VisionSettings, ctx: EdgeContext) -> None:
    authorised = load_authorised(settings.authorised_vehicles_file)
    shared = VisionOutput(settings, ctx, EvidenceStore(settings.evidence_dir), authorised)
    ctx.on_command(AUTHORISED_COMMAND, authorised_vehicles_handler(shared))
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
