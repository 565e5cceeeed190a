"""The shipped plate detector and the recogniser on rendered scenes and crops, and the
`python -m edge recognize` command line (JSON lines, videos, bad files)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from decisions.plate_format import PlateText, match
from edge.vision.detector import DEFAULT_MODEL, Box, Detection, PlateDetector
from edge.vision.ocr import TextLine, TextReader
from edge.vision.recognizer import (
    PlateRead,
    PlateRecognizer,
    _clearer_of_nested,
    _without_faint_edge,
    repairs_a_clear_character,
)
from firmware_sim.camera.plates import PlateSpec, random_plate, render_plate
from firmware_sim.camera.scenes import gate_scene, stack_scene
from firmware_sim.camera.streams import ScriptedPassage, gate_frames, write_video
from training.evaluate_plates import iou

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def recognizer() -> PlateRecognizer:
    return PlateRecognizer(PlateDetector(), TextReader())


def test_shipped_model_is_small_and_is_a_one_class_detector() -> None:
    assert DEFAULT_MODEL.stat().st_size < 8_000_000
    detector = PlateDetector()
    assert (detector.input_height, detector.input_width) == (384, 672)  # near 16:9: few bars


def test_detector_finds_rendered_plates(recognizer: PlateRecognizer) -> None:
    rng = random.Random(2024)  # training used seed 7; these scenes are new to the model
    truths = found = false_alarms = 0
    for _ in range(25):
        scene = gate_scene(rng, 640, 384, max_vehicles=2)
        detections = recognizer.detector.detect(scene.image)
        truths += len(scene.plates)
        found += sum(1 for t in scene.plates if any(iou(d.box, t.box) >= 0.5 for d in detections))
        false_alarms += sum(1 for d in detections
                            if not any(iou(d.box, t.box) >= 0.3 for t in scene.plates))
    assert truths >= 20
    assert found / truths >= 0.85
    assert false_alarms <= 3


def test_scenes_are_read_per_region(recognizer: PlateRecognizer) -> None:
    rng = random.Random(77)
    right = total = 0
    for region in ("cn", "eu", "us") * 5:
        spec = random_plate(rng, region)  # type: ignore[arg-type]
        scene = gate_scene(rng, 1280, 720, plates=[spec], degrade_strength=0.3)
        if not scene.plates:
            continue
        total += 1
        reads = recognizer.read(scene.image)
        right += bool(reads) and reads[0].plate.text == spec.text
    assert total >= 12
    assert right / total >= 0.7


def test_tight_crops_are_read_exactly(recognizer: PlateRecognizer) -> None:
    rng = random.Random(5)
    specs = [random_plate(rng, r) for r in ("cn", "eu", "us") for _ in range(4)]  # type: ignore[arg-type]
    right = 0
    for spec in specs:
        reads = recognizer.read(render_plate(spec))
        right += bool(reads) and reads[0].plate.text == spec.text
    assert right >= 10  # of 12


@pytest.mark.parametrize("shown", ["CCD 1111", "TTW 0088", "BBX 3499"])
def test_repeated_characters_of_a_plate_seen_at_an_angle_stay_apart(
        recognizer: PlateRecognizer, shown: str) -> None:
    # A US plate seen at 45 degrees is 70 % of its width: the recogniser gets fewer steps per
    # character than it needs to keep two equal ones apart, unless the crop is widened first.
    spec = PlateSpec(shown.replace(" ", ""), shown, "us", "us_tx")
    for height in (40, 90):
        crop = cv2.resize(render_plate(spec), (round(height * 2 * 0.7), height),
                          interpolation=cv2.INTER_AREA)
        reads = recognizer.read(cv2.GaussianBlur(crop, (3, 3), 0))
        assert [r.plate.text for r in reads] == [spec.text], height


def test_a_picture_shrunk_inside_the_detectors_input_gives_boxes_in_its_own_pixels(
        recognizer: PlateRecognizer) -> None:
    # Close-ups are looked at again shrunk (fill < 1): the boxes must still be the picture's.
    spec = PlateSpec("AB123CD", "AB-123-CD", "eu", "eu_fr")
    scene = gate_scene(random.Random(4), 1280, 720, plates=[spec], degrade_strength=0.2)
    x, y, w, h = scene.plates[0].box
    crop = scene.image[max(0, y - 2 * h) : y + 3 * h, max(0, x - w // 2) : x + w + w // 2]
    truth = (x - max(0, x - w // 2), y - max(0, y - 2 * h), w, h)
    for fill in (1.0, 0.6, 0.4):
        found = recognizer.detector.detect(crop, fill=fill)
        assert found and iou(found[0].box, truth) >= 0.6, fill


def test_a_scene_without_vehicles_reads_no_plate(recognizer: PlateRecognizer) -> None:
    rng = random.Random(9)
    for _ in range(5):
        scene = gate_scene(rng, 1280, 720, plates=[])
        assert recognizer.read(scene.image, crop_fallback=False) == []


@pytest.mark.parametrize("shape", [(20, 3000), (3000, 20), (24, 3000), (8, 2100), (2, 4000)])
def test_a_strip_too_thin_to_hold_a_line_reads_no_text(recognizer: PlateRecognizer,
                                                       shape: tuple[int, int]) -> None:
    # RapidOCR shrinks a picture to 2000 px and rounds its sides to multiples of 32: these
    # sides become 0, and its resize raised (a thin PNG ended `recognize --label-text`).
    strip = np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8)
    reader = recognizer.reader
    assert reader.read_line(strip) is None
    assert reader.read_lines(strip) == []
    assert reader.read_lines(strip, max_side=640) == []
    assert reader.find_lines(strip, max_side=640) == []
    assert recognizer.read(strip) == []
    # A strip a little thicker is rounded to 32 px and read (blank here: no text).
    h, w = shape
    thick = np.full((26, 3000, 3) if w > h else (3000, 26, 3), 255, np.uint8)
    assert reader.read_lines(thick) == []


def test_a_long_picture_reaches_the_text_detector_padded_to_four_to_one(
        recognizer: PlateRecognizer, monkeypatch: pytest.MonkeyPatch) -> None:
    # RapidOCR scales a picture's shorter side up to 736 px and the longer follows: a 1598x9
    # strip became ~130,000x736 and took over 7 GB (found by fuzzing `read_labels`).
    reader = recognizer.reader
    engine = reader._engine
    given: list[tuple[int, ...]] = []

    def engine_seeing(image: np.ndarray, **kwargs: Any) -> Any:
        given.append(image.shape)
        h, w = image.shape[:2]
        assert max(h, w) <= 4 * min(h, w) + 1  # checked before the 7 GB are asked for
        return engine(image, **kwargs)

    monkeypatch.setattr(reader, "_engine", engine_seeing)
    strip = np.random.default_rng(2).integers(0, 256, (1598, 9, 3), dtype=np.uint8)
    assert reader.read_lines(strip) == []
    assert len(given) == 1
    # Text on a long white strip is still read, and its box lies in the strip.
    line = np.full((60, 900, 3), 255, np.uint8)
    cv2.putText(line, "SSCC 12345678", (10, 45), cv2.FONT_HERSHEY_SIMPLEX, 1.5, (0, 0, 0), 3)
    [read] = reader.read_lines(line)
    assert "12345678" in read.text
    assert read.box is not None and read.box[1] + read.box[3] <= 60


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge", "recognize", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=240, check=False)


def test_cli_prints_one_json_line_per_file(tmp_path: Path) -> None:
    plate = PlateSpec("京A12345", "京A·12345", "cn", "cn_blue")
    scene = gate_scene(random.Random(4), 1280, 720, plates=[plate], degrade_strength=0.2)
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    cv2.imwrite(str(folder / "scene.jpg"), scene.image)
    cv2.imwrite(str(folder / "sub" / "crop.png"),
                render_plate(PlateSpec("AB123CD", "AB-123-CD", "eu", "eu_fr")))
    cv2.imwrite(str(folder / "sub" / "stack.png"), stack_scene(random.Random(1)).image)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    (folder / "zero.png").write_bytes(b"")
    text_file = tmp_path / "notes.txt"
    text_file.write_text("hello")
    result = _cli(str(folder), str(text_file))
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    by_file = {line["file"]: line for line in lines}
    assert list(by_file) == [str(folder / n) for n in
                             ("broken.jpg", "scene.jpg", "zero.png", "sub/crop.png",
                              "sub/stack.png")] + [str(text_file)]
    for line in lines:
        assert set(line) - {"error"} == {"file", "plates", "labels", "ms"}
        assert isinstance(line["ms"], float) and line["ms"] >= 0
    scene_line = by_file[str(folder / "scene.jpg")]
    assert scene_line["plates"][0]["text"] == "京A12345"
    x, y, w, h = scene_line["plates"][0]["box"]
    assert iou((x, y, w, h), scene.plates[0].box) >= 0.5
    assert 0 < scene_line["plates"][0]["confidence"] <= 1
    assert by_file[str(folder / "sub" / "crop.png")]["plates"][0]["text"] == "AB123CD"
    labels = by_file[str(folder / "sub" / "stack.png")]["labels"]
    assert sorted(label["format"] for label in labels) == ["Code128", "DataMatrix", "EAN13",
                                                           "QRCode"]
    sscc = next(label for label in labels if label["format"] == "Code128")
    assert sscc["text"].startswith("(00)") and len(sscc["gs1"]["00"]) == 18
    for bad in ("broken.jpg", "zero.png"):
        assert by_file[str(folder / bad)]["plates"] == [] and by_file[str(folder / bad)]["error"]
    assert "error" in by_file[str(text_file)]
    assert result.returncode == 1
    assert "cannot recognise file" in result.stderr


def test_cli_reads_a_thin_picture_and_goes_on_to_the_next(tmp_path: Path) -> None:
    strip = tmp_path / "strip.png"
    cv2.imwrite(str(strip), np.random.default_rng(1).integers(0, 256, (20, 3000, 3), np.uint8))
    crop = tmp_path / "crop.png"
    cv2.imwrite(str(crop), render_plate(PlateSpec("AB123CD", "AB-123-CD", "eu", "eu_fr")))
    result = _cli("--label-text", str(strip), str(crop))
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["file"] for line in lines] == [str(strip), str(crop)]
    assert "error" not in lines[0] and lines[0]["labels"] == []
    assert lines[1]["plates"][0]["text"] == "AB123CD"
    assert result.returncode == 0


def test_cli_options_select_what_is_read(tmp_path: Path) -> None:
    image = tmp_path / "crop.png"
    cv2.imwrite(str(image), render_plate(PlateSpec("7ABC123", "7ABC123", "us", "us_ca")))
    stack = tmp_path / "stack.png"
    cv2.imwrite(str(stack), stack_scene(random.Random(2)).image)
    plates_only = [json.loads(x) for x in _cli("--plates-only", str(stack)).stdout.splitlines()]
    assert plates_only[0]["labels"] == []
    labels_only = [json.loads(x) for x in _cli("--labels-only", str(image)).stdout.splitlines()]
    assert labels_only[0]["plates"] == []
    as_cn = json.loads(_cli("--region", "cn", str(image)).stdout)
    as_us = json.loads(_cli("--region", "us", str(image)).stdout)
    assert as_cn["plates"] == [] and as_us["plates"][0]["text"] == "7ABC123"


def test_cli_video_reports_each_passage_once(tmp_path: Path) -> None:
    plates = [PlateSpec("苏E12345", "苏E·12345", "cn", "cn_yellow"),
              PlateSpec("1234BCD", "1234 BCD", "eu", "eu_es")]
    script = [ScriptedPassage(plates[0], "in", start_frame=3, frames=20),
              ScriptedPassage(plates[1], "out", start_frame=35, frames=20)]
    video = tmp_path / "gate.avi"
    write_video((f.image for f in gate_frames(script, total_frames=60, width=960, height=540,
                                               seed=1)), video, fps=10)
    result = _cli("--plates-only", str(video))
    line = json.loads(result.stdout)
    assert line["file"] == str(video)
    assert sorted(p["text"] for p in line["plates"]) == ["1234BCD", "苏E12345"]
    confidences = [p["confidence"] for p in line["plates"]]
    assert confidences == sorted(confidences, reverse=True)


def test_a_plate_crop_with_a_margin_and_a_slogan_is_read_by_its_tallest_line(
    recognizer: PlateRecognizer,
) -> None:
    # A Texas plate of a format no listed country has, cropped with a margin above and below
    # (so not plate-shaped: 1.5:1) and its slogan under the number.
    plate = render_plate(PlateSpec("303WVD", "303-WVD", "us", "us_tx"))
    cv2.putText(plate, "THE LONE STAR STATE", (70, 170), cv2.FONT_HERSHEY_SIMPLEX, 0.6,
                (120, 40, 20), 2)
    crop = cv2.copyMakeBorder(plate, 40, 40, 20, 20, cv2.BORDER_CONSTANT, value=(70, 70, 70))
    assert 1.3 < crop.shape[1] / crop.shape[0] < 1.9
    reads = recognizer.read(crop)
    assert [(r.plate.text, r.plate.format) for r in reads] == [("303WVD", "world")]


def test_a_plate_at_the_pictures_side_is_read_when_whole_and_not_when_cut_short(
    recognizer: PlateRecognizer,
) -> None:
    plate = render_plate(PlateSpec("AB123CD", "AB-123-CD", "eu", "eu_fr"))
    plate = cv2.resize(plate, None, fx=0.45, fy=0.45, interpolation=cv2.INTER_AREA)
    h, w = plate.shape[:2]
    whole = gate_scene(random.Random(5), 1280, 720, plates=[]).image
    cut = whole.copy()
    whole[400 : 400 + h, :w] = plate  # touching the left side, all of it in the picture
    shown = int(w * 0.7)
    cut[400 : 400 + h, 1280 - shown :] = plate[:, :shown]  # "AB-123-" and the rest outside
    assert "AB123CD" in [r.plate.text for r in recognizer.read(whole, crop_fallback=False)]
    # What is left of the cut plate would pass as a shorter plate of a loose format.
    assert not [r for r in recognizer.read(cut, crop_fallback=False) if r.box[0] > 1000]


def test_a_box_the_detector_is_unsure_of_is_read_only_in_a_listed_format() -> None:
    # A score threshold above any score makes every box the detector finds an unsure one.
    unsure = PlateRecognizer(PlateDetector(score_threshold=1.01, weak_threshold=0.25),
                             TextReader())
    sure = PlateRecognizer(PlateDetector(), TextReader())
    listed = PlateSpec("ABC1234", "ABC-1234", "us", "us_tx")  # Texas
    unlisted = PlateSpec("4783WX", "4783 WX", "us", "us_tx")  # no listed format: "world"
    for spec, unsure_reads in ((listed, ["ABC1234"]), (unlisted, [])):
        scene = gate_scene(random.Random(3), 1280, 720, plates=[spec], degrade_strength=0.2)
        assert [r.plate.text for r in sure.read(scene.image, crop_fallback=False)] == [spec.text]
        found = unsure.read(scene.image, crop_fallback=False)
        assert [r.plate.text for r in found] == unsure_reads


class _BoxesGiven(PlateDetector):
    """The shipped detector with its boxes replaced by given ones: real boxes are a few pixels
    off, and which way cannot be arranged with renderings."""

    def __init__(self, boxes: list[Box]) -> None:
        super().__init__()
        self.boxes = boxes

    def detect(self, image: np.ndarray, *, weak: bool = False) -> list[Detection]:
        return [Detection(box, 0.9) for box in self.boxes]


@pytest.mark.parametrize("spec", [PlateSpec("ABC1234", "ABC-1234", "us", "us_tx"),
                                  PlateSpec("AB123CD", "AB-123-CD", "eu", "eu_fr")])
def test_a_box_that_cuts_a_plate_short_is_read_by_the_text_lines_around_it(
        spec: PlateSpec) -> None:
    scene = gate_scene(random.Random(4), 1280, 720, plates=[spec], degrade_strength=0.2)
    x, y, w, h = scene.plates[0].box
    cut = (x, y, int(w * 0.8), h)  # the last character or two outside the box
    recognizer = PlateRecognizer(_BoxesGiven([cut]), TextReader())
    # Within the box alone what is left is read, and passes as a plate of the loose German
    # pattern ("ABC123", "AB1230").
    inside = recognizer.read_box(scene.image, cut)
    assert inside is not None and inside.plate.text != spec.text
    reads = recognizer.read(scene.image, crop_fallback=False)
    assert [(r.plate.text, r.box) for r in reads] == [(spec.text, cut)]


def _read(text: str, chars: tuple[float, ...] = ()) -> PlateRead:
    return PlateRead(PlateText(text, "other", "world", 0), 0.9, (0, 0, 10, 5),
                     np.zeros((5, 10, 3), np.uint8), text, chars)


def test_of_two_nested_reads_the_added_characters_decide_by_how_clearly_they_were_read() -> None:
    # The EU band's edge read as a faint L before B 58 DTK; a real A read clearly before B12345.
    band_edge, plate = _read("LB58DTK", (0.46, 0.98, 1.0, 0.99, 1.0, 1.0, 1.0)), _read("B58DTK")
    assert _clearer_of_nested(band_edge, plate) is plate
    whole, cut = _read("AB12345", (0.99, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0)), _read("B12345")
    assert _clearer_of_nested(cut, whole) is whole
    faint_end, french = _read("AB123CDX", (1.0,) * 7 + (0.3,)), _read("AB123CD")
    assert _clearer_of_nested(faint_end, french) is french
    # Within the plate: a blurred run of ones lost one (real: 66-111-72 read "6611-72" in its
    # box, "66111-72" around it); any one of the run may be the added one, the clearest counts.
    run, short = _read("6611172", (0.96, 0.56, 0.45, 0.86, 0.82, 0.98, 1.0)), _read("661172")
    assert _clearer_of_nested(short, run) is run
    faint_run = _read("6611172", (0.96, 0.56, 0.45, 0.5, 0.6, 0.98, 1.0))
    assert _clearer_of_nested(short, faint_run) is short
    # The frame's edge before a plate's own A: the end decides, not the clearer A.
    edge, avf = _read("AAVF198", (0.63, 0.98, 0.8, 0.93, 1.0, 1.0, 0.92)), _read("AVF198")
    assert _clearer_of_nested(edge, avf) is avf
    # Not nested, three characters more, or the longer's characters unknown: no verdict.
    assert _clearer_of_nested(_read("B58DTK"), _read("B59DTK")) is None
    assert _clearer_of_nested(_read("ABC1234", (0.99,) * 7), _read("1234")) is None
    assert _clearer_of_nested(_read("B58DTK"), _read("LB58DTK")) is None


def test_a_single_lines_character_probabilities_follow_the_plates_characters(
        recognizer: PlateRecognizer) -> None:
    plate = render_plate(PlateSpec("AB123CD", "AB-123-CD", "eu", "eu_fr"))
    line = recognizer.reader.read_line(plate)
    assert line is not None and len(line.char_confidences) == len(line.text)
    read = recognizer.read_box(plate, (0, 0, plate.shape[1], plate.shape[0]))
    assert read is not None and read.plate.text == "AB123CD"
    assert len(read.char_confidences) == 7  # the hyphens dropped, as the format drops them
    assert all(0.5 < c <= 1.0 for c in read.char_confidences)


def test_a_character_read_clearly_is_not_repaired_into_its_look_alike() -> None:
    # Real reads: a Dutch-style UM 96 201 read right with every character at 1.0 fits the French
    # format only as UM962OI; a blurred Bucharest plate's O at 0.61 is the 0 of B04RXL.
    french = match("UM96201", on_plate=True)
    assert french is not None and french.text == "UM962OI"
    assert repairs_a_clear_character("UM96201", (1.0,) * 7, french)
    blurred = match("BO4RXL", on_plate=True)
    assert blurred is not None and blurred.text == "B04RXL"
    assert not repairs_a_clear_character("BO4RXL", (0.99, 0.61, 1.0, 1.0, 1.0, 1.0), blurred)
    # A plate found inside a longer read (a state name before it, a separator in it).
    romanian = match("815VNV", on_plate=True)
    assert romanian is not None and romanian.text == "B15VNV"
    assert repairs_a_clear_character("WA 815-VNV", (0.9,) * 3 + (0.998,) + (0.9,) * 6, romanian)
    # O and 0 are one glyph on many plates: the recogniser's certainty does not decide them.
    californian = match("8C00973", on_plate=True)
    assert californian is not None and californian.text == "8COO973"
    assert not repairs_a_clear_character("8C00973", (1.0,) * 7, californian)
    # Probabilities unknown, or not one per character: no verdict.
    assert not repairs_a_clear_character("UM96201", (), french)
    assert not repairs_a_clear_character("UM96201", (1.0,) * 6, french)


def test_a_plate_read_right_with_clear_characters_is_kept_as_read(
        recognizer: PlateRecognizer) -> None:
    # The text as read fits a listed format only by repairing a character the recogniser was
    # sure of: the read as it stands is the plate (a plate of an unlisted country).
    image = np.full((60, 260, 3), 255, np.uint8)
    cv2.putText(image, "VY 90540", (8, 45), cv2.FONT_HERSHEY_DUPLEX, 1.4, (0, 0, 0), 3)
    line = recognizer.reader.read_line(image)
    assert line is not None and line.text.replace(" ", "") == "VY90540"
    assert min(line.char_confidences[-2:]) >= 0.99  # the "4" and "0" a format would repair
    reads = recognizer.read(image)
    assert [r.plate.text for r in reads] == ["VY90540"]


def test_a_faint_band_edge_before_a_plate_is_not_read_as_its_first_character() -> None:
    # Real: a Bucharest B 58 DTK read "LB58DTK" (a valid British plate as it stands), the EU
    # band's edge as an L at 0.46, the plate's characters at 0.99-1.0.
    band = TextLine("LB58DTK", 0.92, None, (0.46, 0.99, 1.0, 0.99, 0.99, 0.99, 0.99))
    assert _without_faint_edge(band, "auto", None).text == "B58DTK"
    # A leading L read clearly is the plate's own (LB58DTK in Britain).
    british = TextLine("LB58DTK", 0.99, None, (0.99,) * 7)
    assert _without_faint_edge(british, "auto", None) is british
    # Edges at both ends (a picture's frame read "IBJ03LBT", the T at 0.39): no plate's.
    framed = TextLine("IBJ03LBT", 0.8, None, (0.46, 0.98, 0.99, 0.95, 0.99, 0.98, 0.96, 0.39))
    assert _without_faint_edge(framed, "auto", None) is framed
    # What is left must be a listed plate; unknown probabilities: the line as read.
    assert _without_faint_edge(TextLine("LAB", 0.9, None, (0.3, 1.0, 1.0)), "auto", None).text \
        == "LAB"
    unknown = TextLine("LB58DTK", 0.92, None)
    assert _without_faint_edge(unknown, "auto", None) is unknown


def test_a_chinese_plate_keeps_its_repairs_however_clear_the_character() -> None:
    # Chinese plates have no I: a 1 read as I is the plate's 1, and without the repair the read
    # would be no plate at all (no unlisted Chinese plates).
    plate = match("京A·I2345", on_plate=True)
    assert plate is not None and plate.text == "京A12345"
    assert not repairs_a_clear_character("京A·I2345", (1.0,) * 8, plate)
