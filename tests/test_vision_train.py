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
