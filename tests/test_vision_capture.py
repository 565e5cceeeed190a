"""Capture adapters and the camera pipeline on rendered streams: folders with bad files, video
files, an MJPEG camera that vanishes, and the events the pipeline emits (one plate_read per
passage with evidence, unauthorised exits, blocked camera, unreadable labels)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import struct
import zlib
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from pydantic import BaseModel

from contract import MessageType
from contract.messages import AlertBody, LabelReadBody, PlateReadBody
from edge.vision import pipeline
from edge.vision.capture import (
    CaptureError,
    CaptureLost,
    ImageFolderSource,
    VideoSource,
    decode_image,
)
from edge.vision.evidence import EvidenceStore
from firmware_sim.camera.plates import PlateSpec
from firmware_sim.camera.scenes import stack_scene
from firmware_sim.camera.streams import (
    MjpegServer,
    ScriptedPassage,
    gate_frames,
    stack_frames,
    write_images,
    write_video,
)

S = 1_000_000


class RecordingContext:
    """An EdgeContext that keeps what is emitted; its clock advances 0.1 s per look."""

    site = "site-1"
    gateway = "gw-1"

    def __init__(self) -> None:
        self.emitted: list[tuple[MessageType, BaseModel]] = []
        self.commands: dict[str, Callable[[bytes], None]] = {}
        self._now = 1_780_000_000 * S
        self.changed = asyncio.Event()  # set on anything a test may wait for
        self._loop = asyncio.get_running_loop()

    def poke(self) -> None:
        self._loop.call_soon_threadsafe(self.changed.set)

    def emit(self, msg_type: MessageType, body: BaseModel, *,
             observed_at: datetime | None = None) -> None:
        self.emitted.append((msg_type, body))
        self.poke()

    def now_us(self) -> int:
        self._now += 100_000
        return self._now

    def on_command(self, name: str, handler: Callable[[bytes], None]) -> None:
        self.commands[name] = handler
        self.poke()

    def of(self, msg_type: MessageType) -> list[Any]:
        return [body for t, body in self.emitted if t is msg_type]

    async def until(self, done: Callable[[], bool], timeout_s: float,
                    task: asyncio.Task[None] | None = None) -> None:
        """Wait for ``done()``; fail if the pipeline task ends first or time runs out."""
        if task is not None:
            task.add_done_callback(lambda _: self.poke())
        async with asyncio.timeout(timeout_s):
            while not done():
                if task is not None and task.done():
                    task.result()  # raise what failed
                    raise AssertionError("the pipeline ended before the awaited event")
                self.changed.clear()
                await self.changed.wait()


class Wake(logging.Handler):
    """Pokes the context on every log record, so a test can wait for a log line."""

    def __init__(self, ctx: RecordingContext) -> None:
        super().__init__(logging.INFO)
        self.ctx = ctx

    def emit(self, record: logging.LogRecord) -> None:
        self.ctx.poke()


# --- capture ------------------------------------------------------------------------------------


def test_image_folder_skips_and_logs_bad_files(tmp_path: Path, caplog: pytest.LogCaptureFixture
                                               ) -> None:
    frames = [f.image for f in gate_frames([], total_frames=3, width=320, height=180)]
    write_images(iter(frames), tmp_path / "a")
    (tmp_path / "a" / "frame_000001.jpg").write_bytes(b"\xff\xd8\xff garbage")  # corrupt JPEG
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "empty.png").write_bytes(b"")
    (tmp_path / "b" / "notes.txt").write_text("not an image")  # not an image suffix: ignored
    (tmp_path / "b" / "text.jpg").write_text("not an image either")
    source = ImageFolderSource(tmp_path)
    caplog.set_level(logging.ERROR)
    got = []
    while (frame := source.read()) is not None:
        got.append(Path(frame.origin).name)
    assert got == ["frame_000000.jpg", "frame_000002.jpg"]
    bad = sorted(Path(r.path).name for r in caplog.records if hasattr(r, "path"))  # type: ignore[attr-defined]
    assert bad == ["empty.png", "frame_000001.jpg", "text.jpg"]


def _png_declaring(width: int, height: int) -> bytes:
    """A PNG of a few dozen bytes whose header declares ``width`` x ``height`` pixels."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body)))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def test_an_image_declaring_more_pixels_than_any_camera_is_refused_before_decoding(
        tmp_path: Path) -> None:
    # Both are under OpenCV's own limit (2^30 pixels): it would allocate 192 MB and 1.2 GB.
    (tmp_path / "bomb.png").write_bytes(_png_declaring(8_000, 8_000))
    (tmp_path / "huge.png").write_bytes(_png_declaring(20_000, 20_000))
    ok, jpeg = cv2.imencode(".jpg", np.full((16, 16, 3), 128, np.uint8))
    assert ok
    data = bytearray(jpeg.tobytes())
    sof = data.index(b"\xff\xc0")  # baseline frame header: length, precision, height, width
    data[sof + 5 : sof + 9] = struct.pack(">HH", 8_000, 8_000)
    (tmp_path / "bomb.jpg").write_bytes(bytes(data))
    for name in ("bomb.png", "bomb.jpg"):
        with pytest.raises(ValueError, match="declares 8000x8000 pixels"):
            decode_image(tmp_path / name)
    with pytest.raises(ValueError, match=r"declares more than \d+ pixels"):
        decode_image(tmp_path / "huge.png")
    within = tmp_path / "small.png"
    within.write_bytes(_png_declaring(64, 48))  # declared small: left to the decoder to judge
    with pytest.raises(ValueError, match="not a readable image"):
        decode_image(within)


def test_video_file_plays_to_its_end(tmp_path: Path) -> None:
    path = tmp_path / "gate.avi"
    frames = [f.image for f in gate_frames([], total_frames=12, width=320, height=180)]
    assert write_video(iter(frames), path, fps=10) == 12
    source = VideoSource(str(path))
    count = 0
    while (frame := source.read()) is not None:
        assert frame.image.shape == (180, 320, 3)
        count += 1
    source.close()
    assert count == 12


def test_missing_sources_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="no such video file"):
        VideoSource(str(tmp_path / "nope.mp4"))
    with pytest.raises(CaptureError, match="not a folder"):
        ImageFolderSource(tmp_path / "nope")


def test_a_vanishing_stream_raises_capture_lost() -> None:
    frames = [f.image for f in gate_frames([], total_frames=5, width=320, height=180)]
    with MjpegServer(frames, fps=50) as server:
        source = VideoSource(server.url, open_timeout_s=5)
        assert source.live
        assert source.read() is not None
        server.stop()
        with pytest.raises(CaptureLost):
            for _ in range(100):  # frames already buffered may still arrive
                source.read()
        source.close()


def test_evidence_store_names_files_by_content(tmp_path: Path) -> None:
    store = EvidenceStore(tmp_path)
    image = np.full((40, 120, 3), 200, np.uint8)
    ref = store.put_image(image, "plate_crop")
    path = store.path_of(ref.sha256)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == ref.sha256
    assert (ref.width, ref.height, ref.bytes) == (120, 40, path.stat().st_size)
    assert store.put_image(image, "plate_crop") == ref  # same picture, same file
    assert list(store.pending()) == [path]
    store.forget(ref.sha256)
    assert list(store.pending()) == []


# --- pipeline -----------------------------------------------------------------------------------


async def _run_until(ctx: RecordingContext, settings: pipeline.VisionSettings,
                     done: Callable[[], bool], timeout_s: float) -> None:
    task = asyncio.create_task(pipeline.run(settings, ctx))
    try:
        await ctx.until(done, timeout_s, task)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


PLATES = [PlateSpec("沪A12345", "沪A·12345", "cn", "cn_blue"),
          PlateSpec("粤BD12345", "粤B·D12345", "cn", "cn_green")]


def _gate_video(path: Path) -> None:
    script = [ScriptedPassage(PLATES[0], "in", start_frame=5, frames=25),
              ScriptedPassage(PLATES[1], "out", start_frame=45, frames=25)]
    frames = (f.image for f in gate_frames(script, total_frames=80, width=960, height=540, seed=3))
    write_video(frames, path, fps=10)


async def test_pipeline_emits_one_plate_read_per_passage_with_evidence(tmp_path: Path) -> None:
    video = tmp_path / "gate.avi"
    _gate_video(video)
    listed = tmp_path / "authorised.json"
    settings = pipeline.VisionSettings.model_validate({
        "cameras": [{"name": "gate-1", "source": str(video), "pace": False,
                     "line": {"x1": 0, "y1": 0.6, "x2": 1, "y2": 0.6, "inside": "left"}}],
        "evidence_dir": str(tmp_path / "evidence"),
        "authorised_vehicles_file": str(listed),
    })
    ctx = RecordingContext()
    # The list arrives from the cloud before the vehicles do: the first one only.
    listed.write_text('{"version": 1, "vehicles": [{"plate": "沪A12345"}]}')
    await _run_until(ctx, settings, lambda: len(ctx.of(MessageType.PLATE_READ)) >= 2, 90)
    reads: list[PlateReadBody] = ctx.of(MessageType.PLATE_READ)
    assert [(r.plate, r.direction) for r in reads] == [("沪A12345", "in"), ("粤BD12345", "out")]
    store = EvidenceStore(tmp_path / "evidence")
    for read in reads:
        assert read.camera == "gate-1" and read.reads >= 2 and read.confidence_pct > 50
        kinds = {e.kind for e in read.evidence}
        assert kinds == {"plate_crop", "frame"}
        for ref in read.evidence:
            image = cv2.imread(str(store.path_of(ref.sha256)))
            assert image is not None and image.shape[:2] == (ref.height, ref.width)
    alerts: list[AlertBody] = ctx.of(MessageType.ALERT)
    assert [(a.alert_type, a.subject) for a in alerts] == [
        ("theft.unauthorized_vehicle", "vehicle:粤BD12345")]
    assert "not on the authorised list" in alerts[0].explanation


class _FailingOn:
    """A camera's frame logic that raises on the given frames (counted from 0): a fault of ours
    that some picture sets off."""

    def __init__(self, watch: Any, frames: set[int]) -> None:
        self.watch, self.frames, self.seen = watch, frames, 0

    def process(self, image: np.ndarray, at_us: int) -> Any:
        self.seen += 1
        if self.seen - 1 in self.frames:
            raise RuntimeError("a fault on this frame")
        return self.watch.process(image, at_us)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.watch, name)


async def test_a_frame_whose_processing_fails_is_skipped_and_the_camera_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    video = tmp_path / "gate.avi"
    _gate_video(video)
    factory = pipeline._watch_factory

    def failing_factory(shared: Any, camera: Any) -> Callable[[Any], _FailingOn]:
        made = factory(shared, camera)
        # Before the first passage, and inside the second.
        return lambda size: _FailingOn(made(size), {2, 3, 4, 50})

    monkeypatch.setattr(pipeline, "_watch_factory", failing_factory)
    settings = pipeline.VisionSettings.model_validate({
        "cameras": [{"name": "gate-1", "source": str(video), "pace": False,
                     "line": {"x1": 0, "y1": 0.6, "x2": 1, "y2": 0.6, "inside": "left"}}],
        "evidence_dir": str(tmp_path / "evidence"),
    })
    ctx = RecordingContext()
    caplog.set_level(logging.INFO)
    await _run_until(ctx, settings, lambda: len(ctx.of(MessageType.PLATE_READ)) >= 2, 90)
    reads: list[PlateReadBody] = ctx.of(MessageType.PLATE_READ)
    assert [(r.plate, r.direction) for r in reads] == [("沪A12345", "in"), ("粤BD12345", "out")]
    failed = [r for r in caplog.records if r.getMessage() == "frame processing failed"]
    # Logged with its traceback at the 1st, 2nd and 4th failure: not at every frame.
    assert [(r.camera, r.failures) for r in failed] == [  # type: ignore[attr-defined]
        ("gate-1", 1), ("gate-1", 2), ("gate-1", 4)]
    assert all(r.exc_info is not None for r in failed)


async def test_authorised_list_pushed_on_cmd_is_stored_and_applied(tmp_path: Path) -> None:
    video = tmp_path / "gate.avi"
    _gate_video(video)
    listed = tmp_path / "state" / "authorised.json"
    settings = pipeline.VisionSettings.model_validate({
        "cameras": [{"name": "gate-1", "source": str(video), "pace": False,
                     "line": {"x1": 0, "y1": 0.6, "x2": 1, "y2": 0.6}}],
        "evidence_dir": str(tmp_path / "evidence"),
        "authorised_vehicles_file": str(listed),
    })
    ctx = RecordingContext()
    task = asyncio.create_task(pipeline.run(settings, ctx))
    await ctx.until(lambda: "authorised_vehicles" in ctx.commands, 10, task)
    push = ctx.commands["authorised_vehicles"]
    push(b'{"version": 2, "vehicles": [{"plate": "\\u7ca4B-D12345"}]}')
    push(b'{"version": 1, "vehicles": []}')  # older: ignored
    push(b'{"version": 3, "vehicles": [], "oops": 1}')  # invalid: ignored, logged
    assert '"version":2' in listed.read_text().replace(" ", "")
    try:
        await ctx.until(lambda: len(ctx.of(MessageType.PLATE_READ)) >= 2, 90, task)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert ctx.of(MessageType.ALERT) == []  # the one leaving is authorised now


async def test_pipeline_blocked_camera_raises_tamper_alert(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    frames = [f.image for f in gate_frames([], total_frames=5, width=320, height=180)]
    frames += [np.clip(rng.normal(4, 2, (180, 320, 3)), 0, 255).astype(np.uint8)
               for _ in range(40)]  # the lens is covered: black
    write_images(iter(frames), tmp_path / "frames")
    settings = pipeline.VisionSettings.model_validate({
        "cameras": [{"name": "gate-2", "source": str(tmp_path / "frames"), "pace": False,
                     "blind_after_s": 1.0}],
        "evidence_dir": str(tmp_path / "evidence"),
    })
    ctx = RecordingContext()
    await _run_until(ctx, settings, lambda: bool(ctx.of(MessageType.ALERT)), 60)
    [alert] = ctx.of(MessageType.ALERT)
    assert (alert.alert_type, alert.subject, alert.action) == (
        "tamper.camera_blocked", "camera:gate-2", "raise")
    assert alert.evidence["cause"] == "dark"


async def test_vanished_stream_is_logged_and_retried_without_crashing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    frames = [f.image for f in gate_frames([], total_frames=5, width=320, height=180)]
    server = MjpegServer(frames, fps=30)
    server.__enter__()
    settings = pipeline.VisionSettings.model_validate({
        "cameras": [{"name": "yard", "source": server.url}],
        "evidence_dir": str(tmp_path / "evidence"), "reconnect_max_s": 0.2,
    })
    ctx = RecordingContext()
    caplog.set_level(logging.INFO)
    wake = Wake(ctx)
    logging.getLogger("edge.vision").addHandler(wake)
    task = asyncio.create_task(pipeline.run(settings, ctx))
    await asyncio.sleep(3)  # it runs on the live stream for a while
    server.stop()

    def lost() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.getMessage() == "camera lost"]

    try:
        await ctx.until(lambda: len(lost()) >= 2, 40, task)  # lost, a failed retry, still on
        assert not task.done()
    finally:
        logging.getLogger("edge.vision").removeHandler(wake)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert all(r.levelno == logging.ERROR and r.camera == "yard" for r in lost())  # type: ignore[attr-defined]


async def test_stack_camera_reads_labels_then_flags_the_torn_ones(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    frames = list(stack_frames(40, seed=2, damaged_after=10, width=1280, height=720))
    write_images(iter(frames), tmp_path / "stack")
    spots = [{"lot": f"LOT-{i}", "box": [(i % 2) * 640, (i // 2) * 360, 640, 360]}
             for i in range(4)]
    # A spot set for a larger picture: its label cannot be seen, so it is never called damaged.
    spots.append({"lot": "LOT-UNSEEN", "box": [1400, 800, 300, 200]})
    settings = pipeline.VisionSettings.model_validate({
        "cameras": [{"name": "stack-1", "role": "stack", "source": str(tmp_path / "stack"),
                     "pace": False, "labels": spots, "label_every_s": 0.5,
                     "label_unreadable_after_s": 1.5}],
        "evidence_dir": str(tmp_path / "evidence"),
    })
    ctx = RecordingContext()
    caplog.set_level(logging.INFO)
    # The printed text is read by OCR in the background: it comes when it is read.
    await _run_until(ctx, settings, lambda: len(ctx.of(MessageType.ALERT)) >= 4 and any(
        r.symbology == "text" for r in ctx.of(MessageType.LABEL_READ)), 90)
    reads: list[LabelReadBody] = ctx.of(MessageType.LABEL_READ)
    symbols = {r.lot: r.symbology for r in reads if r.symbology != "text"}
    assert symbols == {"LOT-0": "Code128", "LOT-1": "DataMatrix", "LOT-2": "QRCode",
                       "LOT-3": "EAN13"}
    sscc = next(r for r in reads if r.lot == "LOT-0")
    assert sscc.gs1 is not None and len(sscc.gs1["00"]) == 18
    alerts: list[AlertBody] = ctx.of(MessageType.ALERT)
    assert sorted(a.lot for a in alerts if a.alert_type == "damage.label_unreadable") == [
        "LOT-0", "LOT-1", "LOT-2", "LOT-3"]
    [unseen] = [r for r in caplog.records if "outside the camera's picture" in r.getMessage()]
    assert (unseen.levelno, unseen.lot, unseen.picture) == (  # type: ignore[attr-defined]
        logging.ERROR, "LOT-UNSEEN", "1280x720")
    # With the symbols torn off, the printed SSCC is still read by OCR and reported as text.
    intact = stack_scene(random.Random(2), 1280, 720).labels  # same seed: the same labels
    sscc = {f"LOT-{i}": label.text[4:22] for i, label in enumerate(intact)
            if label.text.startswith("(00)")}
    printed = [r for r in reads if r.symbology == "text"]
    assert printed and all(r.gs1 is None for r in printed)
    assert any(sscc.get(r.lot or "", "-") in r.text.replace(" ", "") for r in printed)


def test_config_typos_fail_loudly() -> None:
    with pytest.raises(ValueError, match="extra"):
        pipeline.VisionSettings.model_validate(
            {"cameras": [{"name": "g", "source": "x", "regoin": "cn"}]})
    with pytest.raises(ValueError):
        pipeline.VisionSettings.model_validate({"cameras": []})
    for box in ([-10, 0, 100, 50], [0, 0, 0, 50], [0, 0, 100, 10**9]):
        with pytest.raises(ValueError, match=r"labels\.0\.box"):
            pipeline.VisionSettings.model_validate({"cameras": [{
                "name": "s", "source": "x", "role": "stack",
                "labels": [{"lot": "L", "box": box}]}]})


def test_random_is_seeded_so_rendered_fixtures_repeat() -> None:
    a = [f.image for f in gate_frames([], total_frames=2, width=64, height=36, seed=5)]
    b = [f.image for f in gate_frames([], total_frames=2, width=64, height=36, seed=5)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
