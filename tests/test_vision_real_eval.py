"""The real-photograph evaluation of the plate detector: a fixed validation split, split by
video where frames are near-duplicates, and figures per source and region."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.vision import evaluate
from edge.vision.detector import DEFAULT_MODEL
from edge.vision.evaluate import REAL_DATA, SPLIT_FILE, evaluate_real, validation_split
from firmware_sim.camera.plates import PlateSpec
from firmware_sim.camera.scenes import gate_scene

_VIDEO = re.compile(r"(?:train|valid)_((?:day|night)ride_type\d+_\d+)\.mp4")


def test_the_split_holds_out_whole_videos_and_every_source() -> None:
    split = validation_split()
    rule = json.loads(SPLIT_FILE.read_text(encoding="utf-8"))["rule"]
    held = set(re.findall(r"(?:day|night)ride_type\d+_\d+", rule["robertlucian_ro"]))
    assert held == {"dayride_type1_003", "nightride_type3_001"}
    sources = {f.split("/")[1] for f in split}
    assert sources == {"robertlucian_ro", "openimages_plates_rf", "ccpd_demo",
                       "hyperlpr_scenes", "hyperlpr_crops"}
    for f in split:
        if "/robertlucian_ro/" in f:
            match = _VIDEO.search(f)
            assert match and match.group(1) in held, f
    labels = REAL_DATA / "labels.jsonl"
    if not labels.exists():  # the photographs live beside the repo, not in it
        pytest.skip(f"{labels} is not on this machine")
    rows = [json.loads(line) for line in labels.read_text(encoding="utf-8").splitlines()]
    assert split <= {r["file"] for r in rows}
    # No video on both sides: the training half has none of the held-out videos' frames.
    train_videos = {m.group(1) for r in rows if r["file"] not in split
                    and (m := _VIDEO.search(r["file"]))}
    assert not train_videos & held and train_videos


def test_evaluate_real_reports_per_source_with_boxes_and_texts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plate = PlateSpec("AB123CD", "AB-123-CD", "eu", "eu_fr")
    scene = gate_scene(random.Random(4), 1280, 720, plates=[plate], degrade_strength=0.2)
    empty = gate_scene(random.Random(5), 1280, 720, plates=[])
    (tmp_path / "images" / "a").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "images" / "a" / "scene.jpg"), scene.image)
    cv2.imwrite(str(tmp_path / "images" / "a" / "nothing.jpg"), empty.image)
    cv2.imwrite(str(tmp_path / "images" / "a" / "left_out.jpg"), scene.image)
    rows = [
        {"file": "images/a/scene.jpg", "source": "a", "region": "eu",
         "boxes": [list(scene.plates[0].box)], "texts": ["AB123CD"]},
        {"file": "images/a/nothing.jpg", "source": "a", "region": "eu",
         "boxes": [[10, 10, 80, 20]], "texts": []},  # a box where nothing is: a miss
        {"file": "images/a/left_out.jpg", "source": "a", "region": "eu",
         "boxes": [list(scene.plates[0].box)], "texts": ["AB123CD"]},
    ]
    (tmp_path / "labels.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    monkeypatch.setattr(evaluate, "validation_split",
                        lambda: {"images/a/scene.jpg", "images/a/nothing.jpg"})
    report = evaluate_real(DEFAULT_MODEL, tmp_path)
    assert report["images"] == 2  # the file outside the split is not looked at
    figures = report["by_source"]["a"]
    assert report["by_region"]["eu"] == figures  # one source, one region: the same figures
    assert figures["plates"] == 2
    assert figures["detector_recall_iou50"] == 0.5
    assert figures["read_exactly"] == "1/1"
    p50, p95 = figures["read_ms_p50_p95"]
    assert 0 < p50 <= p95
    # The plate of known text is read again as a crop with a margin, as recognize gets crops.
    assert figures["crops_read_exactly"] == "1/1"
    p50, p95 = figures["crop_read_ms_p50_p95"]
    assert 0 < p50 <= p95


def test_a_plate_crop_with_a_margin_is_the_same_every_run_and_holds_the_plate() -> None:
    image = np.zeros((720, 1280, 3), np.uint8)
    box = (600, 400, 100, 30)
    crops = [evaluate.margin_crop(image, box, "images/a/scene.jpg#0") for _ in range(2)]
    other = evaluate.margin_crop(image, box, "images/a/scene.jpg#1")
    assert crops[0].shape == crops[1].shape != other.shape
    for crop in (crops[0], other):
        h, w = crop.shape[:2]
        assert 100 * 1.1 <= w <= 100 * 1.6 and 30 * 1.2 <= h <= 30 * 2.0
    corner = evaluate.margin_crop(image, (0, 0, 100, 30), "images/a/scene.jpg#0")
    assert corner.shape[0] < crops[0].shape[0]  # the margin stops at the picture's side


def _french_plate_scene(tmp_path: Path, *names: str) -> list[int]:
    """A gate scene with the French plate AB-123-CD written under images/a/ as each name; the
    plate's box."""
    plate = PlateSpec("AB123CD", "AB-123-CD", "eu", "eu_fr")
    scene = gate_scene(random.Random(4), 1280, 720, plates=[plate], degrade_strength=0.2)
    (tmp_path / "images" / "a").mkdir(parents=True)
    for name in names:
        cv2.imwrite(str(tmp_path / "images" / "a" / name), scene.image)
    return list(scene.plates[0].box)


def test_texts_read_by_eye_count_only_for_a_read_of_that_text_on_that_plate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    box = _french_plate_scene(tmp_path, "right.jpg", "wrong.jpg", "unknown.jpg")
    rows = [{"file": f"images/a/{n}", "source": "a", "region": "eu", "boxes": [box],
             "texts": []} for n in ("right.jpg", "wrong.jpg", "unknown.jpg")]
    (tmp_path / "labels.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    texts = tmp_path / "texts.json"
    texts.write_text(json.dumps({"texts_sha256_16": {
        "images/a/right.jpg": [evaluate.text_key("AB123CD")],
        "images/a/wrong.jpg": [evaluate.text_key("AB123CE")],  # the same plate, misread by eye
        "images/a/unknown.jpg": [None]}}))
    monkeypatch.setattr(evaluate, "TEXTS_FILE", texts)
    monkeypatch.setattr(evaluate, "validation_split", lambda: {r["file"] for r in rows})
    figures = evaluate_real(DEFAULT_MODEL, tmp_path)["by_source"]["a"]
    assert figures["plates_read"] == "3/3"  # the plate is read in all three images
    assert figures["read_exactly"] == "1/2"  # only two have a known text; one matches
    assert "AB123CD" not in texts.read_text()  # the file holds no plain text


def test_a_source_without_boxes_is_measured_on_the_boxes_drawn_by_eye(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    box = _french_plate_scene(tmp_path, "scene.jpg")
    row = {"file": "images/a/scene.jpg", "source": "a", "region": "eu", "boxes": [],
           "texts": []}  # the source gives no box: only "was anything found" could be said
    (tmp_path / "labels.jsonl").write_text(json.dumps(row))
    texts = tmp_path / "texts.json"
    texts.write_text(json.dumps({
        "texts_sha256_16": {"images/a/scene.jpg": [evaluate.text_key("AB123CD")]},
        "boxes_by_eye": {"images/a/scene.jpg": [box]}}))
    monkeypatch.setattr(evaluate, "TEXTS_FILE", texts)
    monkeypatch.setattr(evaluate, "validation_split", lambda: {row["file"]})
    figures = evaluate_real(DEFAULT_MODEL, tmp_path)["by_source"]["a"]
    assert figures["plates"] == 1
    assert figures["detector_recall_iou50"] == 1.0
    assert figures["read_exactly"] == "1/1"


def test_the_development_texts_are_of_training_photos_only() -> None:
    # Rules are tried on these; the validation plates must stay unseen by that work.
    dev = json.loads(evaluate.DEV_TEXTS_FILE.read_text(encoding="utf-8"))["texts_sha256_16"]
    assert len(dev) > 100 and not set(dev) & validation_split()
    assert all(t is None or re.fullmatch(r"[0-9a-f]{16}", t) for v in dev.values() for t in v)


def test_evaluate_development_reads_the_training_photos_of_known_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plate = PlateSpec("AB123CD", "AB-123-CD", "eu", "eu_fr")
    scene = gate_scene(random.Random(4), 1280, 720, plates=[plate], degrade_strength=0.2)
    (tmp_path / "images" / "a").mkdir(parents=True)
    for name in ("train.jpg", "held_out.jpg", "unread.jpg"):
        cv2.imwrite(str(tmp_path / "images" / "a" / name), scene.image)
    rows = [{"file": f"images/a/{name}", "source": "a", "region": "eu",
             "boxes": [list(scene.plates[0].box)], "texts": []}
            for name in ("train.jpg", "held_out.jpg", "unread.jpg")]
    (tmp_path / "labels.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    key = evaluate.text_key("AB123CD")
    dev = tmp_path / "dev.json"
    dev.write_text(json.dumps({"texts_sha256_16": {"images/a/train.jpg": [key],
                                                   "images/a/held_out.jpg": [key]}}))
    monkeypatch.setattr(evaluate, "DEV_TEXTS_FILE", dev)
    monkeypatch.setattr(evaluate, "validation_split", lambda: {"images/a/held_out.jpg"})
    report = evaluate_real(DEFAULT_MODEL, tmp_path, development=True)
    # Only the training photo of known text: never a validation photo, even one listed there.
    assert report["images"] == 1 and report["split"].startswith("dev.json")
    assert report["by_source"]["a"]["read_exactly"] == "1/1"
    assert report["by_source"]["a"]["crops_read_exactly"] == "1/1"
