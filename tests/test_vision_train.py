"""The training script end to end, tiny: a handful of rendered images, one epoch, ONNX export,
and the exported file loads and runs in ONNX Runtime through the gateway's detector."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from training.train_plates import render_dataset


def test_render_dataset_writes_yolo_labels_inside_the_image(tmp_path: Path) -> None:
    data = render_dataset(tmp_path, n_train=6, n_val=2, seed=1)
    assert "names:\n  0: plate" in data.read_text()
    labels = sorted((tmp_path / "labels" / "train").glob("*.txt"))
    assert len(labels) == 6
    rows = [line.split() for f in labels for line in f.read_text().splitlines()]
    assert rows, "some scene must contain a plate"
    for cls, *coords in rows:
        assert cls == "0"
        cx, cy, w, h = map(float, coords)
        assert 0 < w <= 1 and 0 < h <= 1
        assert cx - w / 2 >= 0 and cx + w / 2 <= 1.0001
        assert cy - h / 2 >= 0 and cy + h / 2 <= 1.0001


def test_one_epoch_trains_and_exports_an_onnx_the_gateway_loads(tmp_path: Path) -> None:
    from edge.vision.detector import PlateDetector
    from training.train_plates import main

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    out = tmp_path / "tiny.onnx"
    assert main(["--out", str(out), "--train-images", "6", "--val-images", "2", "--epochs", "1",
                 "--imgsz", "96", "--batch", "2", "--threads", "1",
                 "--workdir", str(tmp_path / "work")]) == 0
    detector = PlateDetector(out)
    assert detector.size == 96
    # An untrained network may find nothing; it must run and answer in the frame's terms.
    for det in detector.detect(np.zeros((120, 200, 3), np.uint8)):
        x, y, w, h = det.box
        assert x >= 0 and y >= 0 and x + w <= 200 and y + h <= 120


def test_real_photographs_join_the_training_half_except_the_validation_split(
    tmp_path: Path,
) -> None:
    import json

    import cv2

    from training.train_plates import add_real

    data = tmp_path / "real"
    (data / "images" / "s").mkdir(parents=True)
    for name in ("a", "b", "c"):
        cv2.imwrite(str(data / "images" / "s" / f"{name}.jpg"), np.zeros((100, 200, 3), np.uint8))
    rows = [{"file": "images/s/a.jpg", "boxes": [[20, 10, 40, 20]]},
            {"file": "images/s/b.jpg", "boxes": [[0, 0, 10, 10]]},   # held out for validation
            {"file": "images/s/c.jpg", "boxes": []}]                # nothing to learn from
    (data / "labels.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    root = tmp_path / "yolo"
    render_dataset(root, n_train=1, n_val=1, seed=1)
    assert add_real(root, data, skip={"images/s/b.jpg"}) == 1
    label = (root / "labels" / "train" / "real_00000.txt").read_text().split()
    assert label == ["0", "0.200000", "0.200000", "0.200000", "0.200000"]
    assert (root / "images" / "train" / "real_00000.jpg").exists()


def test_warm_start_gives_the_network_the_shipped_detectors_weights(tmp_path: Path) -> None:
    import onnxruntime as ort
    import torch
    from ultralytics import YOLO

    from edge.vision.detector import DEFAULT_MODEL
    from training.network import MODEL_YAML
    from training.warm_start import load_onnx_weights

    yaml = tmp_path / "plate_detector-p.yaml"  # the scale letter tells ultralytics which row
    yaml.write_bytes(MODEL_YAML.read_bytes())
    network = YOLO(str(yaml)).model
    assert load_onnx_weights(network, DEFAULT_MODEL) > 50
    network.eval()
    session = ort.InferenceSession(str(DEFAULT_MODEL), providers=["CPUExecutionProvider"])
    _, _, h, w = session.get_inputs()[0].shape
    x = np.random.default_rng(3).random((1, 3, h, w), dtype=np.float32)
    expected = session.run(None, {session.get_inputs()[0].name: x})[0]
    with torch.no_grad():
        got = network(torch.from_numpy(x))
    got = (got[0] if isinstance(got, (list, tuple)) else got).numpy()
    # Same boxes (input pixels) and scores, up to float32 rounding of the folded batch norms.
    assert np.abs(got - expected).max() < 0.05
    assert np.abs(got[0, 4] - expected[0, 4]).max() < 1e-3


def test_warm_started_epoch_exports_a_16_9_detector_that_maps_boxes_back(tmp_path: Path) -> None:
    from edge.vision.detector import DEFAULT_MODEL, PlateDetector
    from training.train_plates import main

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    out = tmp_path / "wide.onnx"
    assert main(["--out", str(out), "--train-images", "4", "--val-images", "2", "--epochs", "1",
                 "--imgsz", "128", "--batch", "2", "--threads", "1", "--export-shape", "64x128",
                 "--warm-start", str(DEFAULT_MODEL), "--workdir", str(tmp_path / "work")]) == 0
    detector = PlateDetector(out)
    assert (detector.input_height, detector.input_width) == (64, 128)
    frame = np.full((720, 1280, 3), 90, np.uint8)
    for det in detector.detect(frame):
        x, y, w, h = det.box
        assert x >= 0 and y >= 0 and x + w <= 1280 and y + h <= 720


def test_every_kth_real_photograph_validates_the_training_run(tmp_path: Path) -> None:
    import json

    import cv2

    from training.train_plates import add_real, render_dataset

    data = tmp_path / "real"
    (data / "images" / "s").mkdir(parents=True)
    rows = []
    for i in range(6):
        cv2.imwrite(str(data / "images" / "s" / f"{i}.jpg"), np.zeros((50, 80, 3), np.uint8))
        rows.append({"file": f"images/s/{i}.jpg", "boxes": [[10, 10, 20, 8]]})
    (data / "labels.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    root = tmp_path / "yolo"
    render_dataset(root, n_train=0, n_val=0, seed=1)
    assert add_real(root, data, skip=set(), val_every=3) == 6
    assert sorted(p.name for p in (root / "images" / "val").iterdir()) == [
        "real_00002.jpg", "real_00005.jpg"]
    assert len(list((root / "labels" / "train").iterdir())) == 4


def test_one_epoch_on_a_handful_of_real_photographs(tmp_path: Path) -> None:
    """The smoke test of training on real data: four real photographs of the training half
    (never the validation split), one epoch, warm-started, and the export loads."""
    import json
    import shutil

    import pytest

    from edge.vision.detector import DEFAULT_MODEL, PlateDetector
    from edge.vision.evaluate import REAL_DATA, validation_split
    from training.train_plates import main

    labels = REAL_DATA / "labels.jsonl"
    if not labels.exists():  # the photographs live beside the repo, not in it
        pytest.skip(f"{labels} is not on this machine")
    held_out = validation_split()
    rows = [json.loads(line) for line in labels.read_text(encoding="utf-8").splitlines()
            if line.strip()]
    picked = [r for r in rows if r["boxes"] and r["file"] not in held_out][::150][:4]
    assert len(picked) == 4
    real = tmp_path / "real"
    for row in picked:
        (real / row["file"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REAL_DATA / row["file"], real / row["file"])
    (real / "labels.jsonl").write_text("\n".join(json.dumps(r) for r in picked))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    out = tmp_path / "real.onnx"
    assert main(["--out", str(out), "--train-images", "2", "--val-images", "2", "--epochs", "1",
                 "--imgsz", "128", "--batch", "2", "--threads", "1", "--real", str(real),
                 "--real-val-every", "2", "--warm-start", str(DEFAULT_MODEL),
                 "--workdir", str(tmp_path / "work")]) == 0
    work = tmp_path / "work" / "data"
    assert len(list((work / "images" / "train").glob("real_*.jpg"))) == 2
    assert len(list((work / "images" / "val").glob("real_*.jpg"))) == 2
    assert PlateDetector(out).size == 128


def test_the_shipped_detector_is_exported_again_at_another_input_shape(tmp_path: Path) -> None:
    import onnxruntime as ort

    from edge.vision.detector import DEFAULT_MODEL, PlateDetector
    from training.warm_start import main

    shipped = PlateDetector(DEFAULT_MODEL)
    same = tmp_path / "same.onnx"
    shape = f"{shipped.input_height}x{shipped.input_width}"
    assert main([str(DEFAULT_MODEL), str(same), "--export-shape", shape]) == 0
    x = np.random.default_rng(5).random(
        (1, 3, shipped.input_height, shipped.input_width), dtype=np.float32)
    outputs = []
    for model in (DEFAULT_MODEL, same):
        session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        outputs.append(session.run(None, {session.get_inputs()[0].name: x})[0])
    assert np.abs(outputs[0] - outputs[1]).max() < 1e-3  # the same network, the same answers
    small = tmp_path / "small.onnx"
    assert main([str(DEFAULT_MODEL), str(small), "--export-shape", "96x160"]) == 0
    assert (PlateDetector(small).input_height, PlateDetector(small).input_width) == (96, 160)
