"""Pallet labels in every symbology a warehouse label carries, made by zxing-cpp's own encoder
and photographed (perspective, rotation, blur, glare, low contrast, JPEG); GS1 content parsed;
the OCR fallback kept off the frame loop."""

from __future__ import annotations

import argparse
import itertools
import json
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import zxingcpp

from edge.vision.gs1 import gtin_of_symbol, upc_e_as_upc_a
from edge.vision.label_text import JobQueue, LabelTextWorker, TextJob
from edge.vision.labels import LabelRead, read_symbols
from edge.vision.ocr import OcrBudget, TextLine, TextReader
from edge.vision.stack import LabelSpot, StackWatch, out_of_view
from firmware_sim.camera.label_photos import SYMBOLOGIES, label_photos, symbol
from firmware_sim.camera.plates import PlateSpec, render_plate
from firmware_sim.camera.scenes import stack_scene

REPO = Path(__file__).resolve().parents[1]


def _read(image: np.ndarray, truth: str) -> bool:
    return any(r.text == truth for r in read_symbols(image))


def test_every_symbology_reads_on_photographed_labels() -> None:
    right: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for photo in label_photos(6, seed=3, strength=0.5):
        total[photo.symbology] += 1
        right[photo.symbology] += _read(photo.image, photo.truth)
    assert set(total) == set(SYMBOLOGIES) and len(SYMBOLOGIES) == 14
    for name in SYMBOLOGIES:
        assert right[name] >= 4, (name, right[name], total[name])
    assert sum(right.values()) / sum(total.values()) >= 0.85


def _on_canvas(image: np.ndarray, angle: float,
               size: tuple[int, int] = (800, 600)) -> tuple[np.ndarray, np.ndarray]:
    """The symbol on a grey picture (800x600), turned by ``angle``; and where its centre is."""
    width, height = size
    label = np.full((image.shape[0] + 40, image.shape[1] + 40), 250, np.uint8)
    label[20:-20, 20:-20] = image
    canvas = np.full((height, width), 120, np.uint8)
    y, x = (height - label.shape[0]) // 2, (width - label.shape[1]) // 2
    canvas[y : y + label.shape[0], x : x + label.shape[1]] = label
    turn = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0)
    return (cv2.warpAffine(canvas, turn, (width, height), borderValue=120),
            np.array([width / 2, height / 2]))


def test_a_diagonal_barcode_is_read_by_the_second_pass_and_located_in_the_picture() -> None:
    image, truth, _ = symbol("GS1-128", random.Random(4))
    for angle in (40, -50, 135):
        picture, centre = _on_canvas(image, angle)
        # zxing-cpp's own search alone (90° steps) misses a bar code at this angle.
        code128 = zxingcpp.barcode_formats_from_str("Code128")
        assert not zxingcpp.read_barcodes(picture, formats=code128, try_invert=False)
        reads = [r for r in read_symbols(picture) if r.text == truth]
        assert reads, angle
        x, y, w, h = reads[0].box  # type: ignore[misc]
        assert abs(x + w / 2 - centre[0]) < 40 and abs(y + h / 2 - centre[1]) < 40


def test_an_upright_bar_code_in_a_busy_picture_is_read_and_located() -> None:
    # Lines of print all over the picture: the largest patches of dense edges are text, not the
    # bar code standing on its end; zxing-cpp's 90° search on the whole picture finds it.
    picture = np.full((600, 800), 255, np.uint8)
    for row in range(12):
        cv2.putText(picture, "LOT 2291 BEST BEFORE 12345", (10, 30 + 45 * row),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.9, 0, 2)
    code = np.array(zxingcpp.create_barcode("ABC-12345", zxingcpp.BarcodeFormat.Code128)
                    .to_image(scale=2))
    code = cv2.rotate(code, cv2.ROTATE_90_COUNTERCLOCKWISE)
    h, w = code.shape
    picture[100 : 100 + h, 500 : 500 + w] = code
    # Given the time (the crops of the print come first: see the next test).
    reads = read_symbols(cv2.cvtColor(picture, cv2.COLOR_GRAY2BGR), budget_ms=1000)
    assert [r.text for r in reads] == ["ABC-12345"]
    x, y, bw, bh = reads[0].box  # type: ignore[misc]
    assert 495 <= x < x + bw <= 505 + w and 95 <= y < y + bh <= 105 + h and bh > 2 * bw


def test_a_slanted_bar_code_is_read_before_larger_sprawling_patches() -> None:
    # Two bent bundles of lines (a fence, a hedge) make larger patches of dense edges than the
    # bar code turned by 40°, which only the second pass can read. Read largest first, the two
    # patches read were the bundles'; the compact block of the bar code comes first now.
    picture = np.full((720, 960), 255, np.uint8)
    rng = np.random.default_rng(3)
    for start in ((10, 60), (420, 300)):
        bends = [start]
        for _ in range(14):
            x, y = bends[-1]
            bends.append((int(np.clip(x + rng.integers(-30, 90), 0, 959)),
                          int(np.clip(y + rng.integers(-60, 60), 0, 719))))
        for a, b in itertools.pairwise(bends):
            for k in range(5):
                cv2.line(picture, (a[0], a[1] + 10 * k), (b[0], b[1] + 10 * k), 0, 3)
    image, truth, _ = symbol("GS1-128", random.Random(4))
    code = cv2.resize(image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY),
                      None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    code = cv2.copyMakeBorder(code, 20, 20, 20, 20, cv2.BORDER_CONSTANT, value=255)
    h, w = code.shape
    turn = cv2.getRotationMatrix2D((w / 2, h / 2), 40, 1.0)
    side = int(h * 0.64 + w * 0.77) + 1  # |sin 40°|, |cos 40°|: the turned symbol's box
    turn[:, 2] += (side / 2 - w / 2, side / 2 - h / 2)
    turned = cv2.warpAffine(code, turn, (side, side), borderValue=255)
    picture[400 : 400 + side, 80 : 80 + side] = np.minimum(
        picture[400 : 400 + side, 80 : 80 + side], turned)
    reads = read_symbols(cv2.cvtColor(picture, cv2.COLOR_GRAY2BGR))
    assert [r.text for r in reads] == [truth]
    x, y, bw, bh = reads[0].box  # type: ignore[misc]
    assert x >= 80 and x + bw <= 80 + side and y >= 400 and y + bh <= 400 + side


def test_the_second_pass_stops_when_its_time_budget_is_spent() -> None:
    image, truth, _ = symbol("GS1-128", random.Random(4))
    picture, _ = _on_canvas(image, 40)  # only the second pass reads it (above)
    assert not read_symbols(picture, budget_ms=0.0)
    assert [r.text for r in read_symbols(picture)] == [truth]


def test_a_phone_photo_gets_its_second_pass_on_a_camera_sized_copy(monkeypatch: Any) -> None:
    # A 12-megapixel photo: zxing-cpp's plain pass over it costs more than the whole budget
    # (a clock that advances only when zxing-cpp reads: 40 ms for the full picture, 1 ms for
    # anything smaller). Counted from the call's start, the second pass never began and the
    # bar code at 40° (only the second pass reads it) was lost; it now gets its own budget on a
    # copy 1920 px wide, and the box found there is given in the photo's pixels.
    image, truth, _ = symbol("GS1-128", random.Random(4))
    enlarged = cv2.resize(image, None, fx=3, fy=3, interpolation=cv2.INTER_NEAREST)
    picture, centre = _on_canvas(enlarged, 40, size=(3840, 2880))
    now = [0.0]
    real = zxingcpp.read_barcodes

    def timed(image: np.ndarray, **options: Any) -> list[zxingcpp.Barcode]:
        now[0] += 0.040 if image.shape[:2] == picture.shape[:2] else 0.001
        return real(image, **options)

    monkeypatch.setattr(zxingcpp, "read_barcodes", timed)
    monkeypatch.setattr(time, "thread_time", lambda: now[0])
    reads = read_symbols(picture)
    assert [r.text for r in reads] == [truth]
    x, y, w, h = reads[0].box  # type: ignore[misc]
    assert abs(x + w / 2 - centre[0]) < 60 and abs(y + h / 2 - centre[1]) < 60
    assert w > 1000 and h > 700  # the turned symbol's box at full size, not the copy's
    assert not read_symbols(picture, budget_ms=0.0)  # a budget of none is still none


def test_a_vehicles_picture_gets_the_plain_label_pass_only(tmp_path: Path) -> None:
    from edge.vision import recognize
    from edge.vision.cli import DEFAULT_MODEL

    image, truth, _ = symbol("GS1-128", random.Random(4))
    picture, _ = _on_canvas(image, 40)  # only the second pass reads it (above)
    level, _ = _on_canvas(image, 0)  # zxing-cpp's plain pass reads it
    plate = cv2.cvtColor(render_plate(PlateSpec("7ABC123", "7ABC123", "us", "us_ca")),
                         cv2.COLOR_BGR2GRAY)
    plate = cv2.resize(plate, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    pictures = {"label.png": picture, "vehicle.png": picture.copy(),
                "vehicle_level.png": level.copy()}
    for name in ("vehicle.png", "vehicle_level.png"):
        pictures[name][500 : 500 + plate.shape[0], 20 : 20 + plate.shape[1]] = plate
    for name, image in pictures.items():
        cv2.imwrite(str(tmp_path / name), image)

    def run(*, labels_only: bool) -> dict[str, dict[str, Any]]:
        args = argparse.Namespace(plates_only=False, labels_only=labels_only, label_text=False,
                                  no_proposals=False, region="auto", country=None,
                                  model=str(DEFAULT_MODEL), threads=1)
        runner = recognize.Recognize(args)
        return {name: runner.one(str(tmp_path / name))[0] for name in pictures}

    both = run(labels_only=False)
    assert [x["text"] for x in both["vehicle.png"]["plates"]] == ["7ABC123"]
    assert [x["text"] for x in both["label.png"]["labels"]] == [truth]
    assert [x["text"] for x in both["vehicle_level.png"]["labels"]] == [truth]
    assert both["vehicle.png"]["labels"] == []  # the turned symbol needs the second pass
    labels_only = run(labels_only=True)
    assert [x["text"] for x in labels_only["vehicle.png"]["labels"]] == [truth]


def test_light_on_dark_symbols_are_read() -> None:
    image, truth, _ = symbol("QRCode", random.Random(5))
    picture, _ = _on_canvas(image, 10)
    assert _read(255 - picture, truth)


def test_gs1_content_is_parsed_per_symbology() -> None:
    rng = random.Random(6)
    parsed = {}
    for name in ("GS1-128", "ITF-14", "DataBar", "DataBarExpanded", "DataMatrix"):
        image, truth, _ = symbol(name, rng)
        picture, _ = _on_canvas(image, 0)
        read = next(r for r in read_symbols(picture) if r.text == truth)
        parsed[name] = read.gs1
    assert parsed["GS1-128"] is not None and len(parsed["GS1-128"]["00"]) == 18
    assert parsed["ITF-14"] is not None and len(parsed["ITF-14"]["01"]) == 14
    assert parsed["DataBar"] is not None and list(parsed["DataBar"]) == ["01"]
    assert parsed["DataBarExpanded"] is not None
    assert list(parsed["DataBarExpanded"]) == ["01", "10", "17"]
    assert parsed["DataMatrix"] is not None
    assert list(parsed["DataMatrix"]) == ["01", "10", "17", "21"]


def test_an_ean_or_upc_number_is_given_as_its_gtin_as_itf_14_is() -> None:
    # AI (01) writes a GTIN with 14 digits: the item's EAN-13, a UPC-A, an EAN-8, and a UPC-E
    # written out as its UPC-A (04252614 is UPC-A 042100005264; zxing-cpp 3 reads it so).
    for fmt, text, gtin in ((zxingcpp.BarcodeFormat.EAN13, "9780201310054", "09780201310054"),
                            (zxingcpp.BarcodeFormat.UPCA, "012345678905", "00012345678905"),
                            (zxingcpp.BarcodeFormat.EAN8, "96385074", "00000096385074"),
                            (zxingcpp.BarcodeFormat.UPCE, "04252614", "00042100005264")):
        made = zxingcpp.create_barcode(text, fmt)
        picture, _ = _on_canvas(np.asarray(zxingcpp.write_barcode_to_image(made, scale=3)), 0)
        assert [r.gs1 for r in read_symbols(picture)] == [{"01": gtin}], fmt
    assert upc_e_as_upc_a("01234565") == "012345000065"  # each of UPC-E's four patterns
    assert upc_e_as_upc_a("00123457") == "001234000057"
    assert upc_e_as_upc_a("03456733") == "034500000673"
    assert upc_e_as_upc_a("04563842") == "045630000082"
    assert upc_e_as_upc_a("24252614") is None and upc_e_as_upc_a("0425261") is None
    assert gtin_of_symbol("EAN13", "9780201310055") is None  # its check digit is 4
    assert gtin_of_symbol("UPCE", "04252614") == "00042100005264"  # as zxing-cpp 2 gave it


def test_plain_symbols_carry_no_gs1_and_a_bad_itf_check_digit_is_not_a_gtin() -> None:
    rng = random.Random(7)
    for name in ("Code128", "Code39", "QRCode", "PDF417", "Aztec"):
        image, truth, _ = symbol(name, rng)
        picture, _ = _on_canvas(image, 0)
        assert [r.gs1 for r in read_symbols(picture) if r.text == truth] == [None], name
    itf = zxingcpp.create_barcode("10012345678903", zxingcpp.BarcodeFormat.ITF)  # check is 2
    picture, _ = _on_canvas(np.asarray(zxingcpp.write_barcode_to_image(itf, scale=3)), 0)
    reads = read_symbols(picture)
    assert [r.text for r in reads] == ["10012345678903"] and reads[0].gs1 is None


def test_a_symbol_whose_element_string_is_hostile_reads_as_plain_text() -> None:
    # A QR code saying "(17)AB0101" looks like a GS1 expiry date: it raised a ValueError out of
    # the reader (int("AB")), which ended the camera's loop.
    for text in ("(17)AB0101", "(15)26-1-1", "(3103)12a456", "(37)", "(00)"):
        qr = zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.QRCode)
        picture, _ = _on_canvas(np.asarray(zxingcpp.write_barcode_to_image(qr, scale=6)), 0)
        reads = read_symbols(picture)
        assert [(r.text, r.gs1) for r in reads] == [(text, None)], text


def test_pictures_that_are_no_pictures_read_nothing() -> None:
    for image in (np.zeros((0, 0, 3), np.uint8), np.zeros((1, 1), np.uint8),
                  np.zeros((4, 4, 3, 2), np.uint8),
                  np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)):
        assert read_symbols(image) == []


# --- the OCR fallback stays off the frame loop ----------------------------------------------


def test_ocr_budget_allows_one_call_per_period() -> None:
    budget = OcrBudget(every_us=60_000_000)
    taken = [t for t in range(0, 180_000_000, 5_000_000) if budget.take(t)]
    assert taken == [0, 60_000_000, 120_000_000]


class CountingReader:
    """Stands in for RapidOCR: counts the calls and the pixels it was given."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def read_lines(self, image: np.ndarray, *, max_side: int | None = None) -> list[TextLine]:
        self.calls.append((max(image.shape[:2]), max_side or 0))
        return [TextLine("SSCC 012345678901234567", 0.9, (0, 0, 10, 10)),
                TextLine("handle with care", 0.9, (0, 20, 10, 10))]


def test_a_label_spot_mostly_outside_the_picture_is_out_of_view() -> None:
    spots = [LabelSpot("in", (100, 100, 200, 100)), LabelSpot("edge", (1200, 0, 100, 50)),
             LabelSpot("half-off", (1180, 0, 200, 50)), LabelSpot("gone", (1920, 1080, 300, 200))]
    # Set for a 1920x1080 picture, seen by a 1280x720 camera: "edge" has 80 of 100 columns in
    # the picture, "half-off" 100 of 200 (half: kept), "gone" none.
    assert [s.lot for s in out_of_view(spots, (1280, 720))] == ["gone"]
    # 1250 wide: "edge" keeps half its columns, "half-off" 70 of 200.
    assert [s.lot for s in out_of_view(spots, (1250, 720))] == ["half-off", "gone"]
    assert out_of_view(spots, (3840, 2160)) == []


def test_torn_labels_cost_one_ocr_call_per_period_not_one_per_frame() -> None:
    torn = stack_scene(random.Random(2), 1280, 720, damaged=True).image
    spots = [LabelSpot(f"LOT-{i}", ((i % 2) * 640, (i // 2) * 360, 640, 360)) for i in range(4)]
    reader = CountingReader()
    watch = StackWatch(spots, reader=reader, started_us=0,  # type: ignore[arg-type]
                       look_every_us=1_000_000, ocr_every_us=30_000_000,
                       blind_hold_us=10**12)  # a still picture is "frozen"; not the subject here
    texts = []
    for second in range(0, 150):  # 150 s of a still stack, one frame a second
        outcome = watch.process(torn, second * 1_000_000)
        texts += [(r.lot, r.label.text) for r in outcome.readings]
    texts += [(r.lot, r.label.text) for r in watch.flush(10).readings]
    watch.close()
    # Four lots unreadable for 150 s: one OCR call per 30 s, each lot once, not one per look.
    assert len(reader.calls) == 4
    assert all(side <= limit == watch.ocr_budget.max_side for side, limit in reader.calls)
    assert sorted(texts) == [(f"LOT-{i}", "SSCC 012345678901234567") for i in range(4)]


def test_a_readable_label_never_calls_ocr() -> None:
    scene = stack_scene(random.Random(1), 1280, 720)
    spots = [LabelSpot(f"LOT-{i}", ((i % 2) * 640, (i // 2) * 360, 640, 360)) for i in range(4)]
    reader = CountingReader()
    watch = StackWatch(spots, reader=reader, started_us=0,  # type: ignore[arg-type]
                       look_every_us=1_000_000, ocr_every_us=1)
    symbologies = set()
    for second in range(5):
        symbologies |= {r.label.symbology for r in watch.process(scene.image,
                                                                   second * 1_000_000).readings}
    assert reader.calls == []
    assert symbologies == {"Code128", "DataMatrix", "QRCode", "EAN13"}


def test_cli_reads_label_text_only_when_asked(tmp_path: Path) -> None:
    torn = tmp_path / "torn.png"
    cv2.imwrite(str(torn), stack_scene(random.Random(2), 1280, 720, damaged=True).image)

    def labels(*args: str) -> list[dict[str, str]]:
        done = subprocess.run([sys.executable, "-m", "edge", "recognize", "--labels-only", *args,
                               str(torn)], cwd=REPO, capture_output=True, text=True, timeout=240,
                              check=True)
        return json.loads(done.stdout)["labels"]

    assert labels() == []  # no symbol reads, and the slow text detector is not run
    printed = labels("--label-text")
    assert printed and {label["format"] for label in printed} == {"text"}
    assert any("SSCC" in label["text"].upper() for label in printed)


def _job(lot: str, queued_s: float) -> TextJob:
    return TextJob(lot, np.zeros((2, 2), np.uint8), 0, queued_s)


def test_the_text_queue_keeps_the_newest_jobs_and_passes_over_stale_ones() -> None:
    queue = JobQueue(1)
    assert queue.put(_job("A", 0.0)) == []
    assert [j.lot for j in queue.put(_job("B", 1.0))] == ["A"]  # the oldest makes room
    job, stale = queue.take(2.0, stale_after_s=5.0)
    assert job is not None and job.lot == "B" and stale == []
    two = JobQueue(2)
    two.put(_job("A", 0.0))
    two.put(_job("B", 8.0))
    job, stale = two.take(10.0, stale_after_s=5.0)
    assert job is not None and job.lot == "B" and [j.lot for j in stale] == ["A"]
    assert two.take(10.0, stale_after_s=5.0) == (None, [])


class HeldReader:
    """A text reader that does not finish until the test lets it: a slow OCR call, made long."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.seen: list[int] = []

    def __call__(self, crop: np.ndarray) -> list[LabelRead]:
        self.seen.append(int(crop[0, 0]))
        self.started.set()
        assert self.release.wait(30)
        return [LabelRead("text", f"SSCC {int(crop[0, 0])}", None, None)]


def test_the_worker_never_holds_up_its_caller_and_drops_the_oldest_waiting_crop() -> None:
    reader = HeldReader()
    worker = LabelTextWorker(reader, pending=1)
    crop = np.zeros((8, 8), np.uint8)
    assert worker.submit("LOT-1", crop + 1, 1) == []
    assert reader.started.wait(10)  # the first crop is being read, and will not finish yet
    assert worker.submit("LOT-2", crop + 2, 2) == []  # submitting returned: nobody waited
    assert [j.lot for j in worker.submit("LOT-3", crop + 3, 3)] == ["LOT-2"]
    assert worker.results() == []
    reader.release.set()
    assert worker.idle(10)
    done = worker.results()
    assert [(r.lot, r.at_us, r.reads[0].text) for r in done] == [("LOT-1", 1, "SSCC 1"),
                                                                 ("LOT-3", 3, "SSCC 3")]
    assert reader.seen == [1, 3]
    worker.close()


def test_a_stack_camera_reads_label_text_in_the_background_by_the_real_ocr() -> None:
    torn = stack_scene(random.Random(2), 1280, 720, damaged=True).image
    spots = [LabelSpot("LOT-0", (0, 0, 640, 360))]
    watch = StackWatch(spots, reader=TextReader(threads=1), started_us=0,
                       look_every_us=1_000_000, blind_hold_us=10**12)
    first = watch.process(torn, 0)
    assert first.looked == ["LOT-0"] and first.readings == []  # the frame did not wait for OCR
    assert watch.text_worker is not None and watch.text_worker.idle(60)
    later = watch.process(torn, 1_000_000)
    watch.close()
    assert [(r.lot, r.label.symbology, r.at_us) for r in later.readings] == [("LOT-0", "text", 0)]
    assert "SSCC" in later.readings[0].label.text.upper()


def test_the_whole_picture_is_read_again_after_the_crops_and_only_within_the_budget(
        monkeypatch: Any) -> None:
    # A clock that advances only when zxing-cpp reads: the whole picture costs 10 ms, a crop 1.
    # The crops come first (read whole again first, the turned picture took their budget on
    # large photos); the turned picture and DataMatrix's search follow where each would end
    # within the budget (each costs what the plain pass did).
    picture = np.full((720, 960), 255, np.uint8)
    for row in range(12):
        cv2.putText(picture, "LOT 2291 BEST BEFORE 12345", (10, 30 + 55 * row),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.9, 0, 2)
    now = [0.0]
    calls: list[str] = []
    real = zxingcpp.read_barcodes

    def timed(image: np.ndarray, **options: Any) -> list[zxingcpp.Barcode]:
        whole = image.shape[:2] in ((720, 960), (960, 720))
        calls.append("whole" if whole else "crop")
        now[0] += 0.010 if whole else 0.001
        return real(image, **options)

    monkeypatch.setattr(zxingcpp, "read_barcodes", timed)
    monkeypatch.setattr(time, "thread_time", lambda: now[0])
    assert read_symbols(picture, budget_ms=1000) == []
    assert calls[0] == "whole" and calls[1] == "crop"  # the plain pass, then the crops
    assert calls.count("whole") == 3 and calls[-1] == "crop"  # turned, DataMatrix; inverted
    assert calls.index("whole", 1) > max(i for i, c in enumerate(calls[:-1]) if c == "crop")
    calls.clear()
    assert read_symbols(picture, budget_ms=15) == []  # 10 + crops + 10 would pass 15 ms
    assert calls.count("whole") == 1 and "crop" in calls
