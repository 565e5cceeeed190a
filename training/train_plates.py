"""Train the plate detector on rendered gate scenes and export it to ONNX.

    python -m training.train_plates --out edge/vision/models/plate_detector.onnx

Needs the ``train`` extra (torch, torchvision, ultralytics, onnx, onnxslim); never imported on
the gateway. The network is built from ``plate_detector.yaml`` (no pretrained weights, nothing
downloaded; ``plots=False`` keeps ultralytics from fetching a font). It runs on a CPU with the
defaults (small images, few epochs) and uses the GPU when torch sees one.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import shutil
import sys
import tempfile
from pathlib import Path

import cv2

from firmware_sim.camera.scenes import Scene, closeup_scene, gate_scene
from training.network import export_onnx, parse_shape, scaled_yaml

log = logging.getLogger(__name__)

DEFAULT_OUT = Path(__file__).parent / "models" / "plate_detector.onnx"


def render_dataset(root: Path, n_train: int, n_val: int, seed: int) -> Path:
    """Write a YOLO dataset (images/, labels/, data.yaml) of rendered scenes under ``root``."""
    rng = random.Random(seed)
    for split, count in (("train", n_train), ("val", n_val)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            scene = _training_scene(rng)
            write_example(root, split, f"{i:05d}", scene)
    data = root / "data.yaml"
    data.write_text(
        f"path: {root}\ntrain: images/train\nval: images/val\nnames:\n  0: plate\n",
        encoding="utf-8",
    )
    return data


def add_real(root: Path, data: Path, skip: set[str], val_every: int = 0) -> int:
    """Add the real photographs with boxes, except those in ``skip`` (the validation split),
    to the YOLO dataset under ``root``; returns how many. With ``val_every`` = k, every k-th
    goes to the dataset's own validation half, so that the checkpoint kept as best is judged on
    real photographs too (never on the evaluation split, which training does not see)."""
    added = 0
    for line in (data / "labels.jsonl").read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        if row["file"] in skip or not row["boxes"]:
            continue
        image = cv2.imread(str(data / row["file"]))
        if image is None:
            continue
        h, w = image.shape[:2]
        name = f"real_{added:05d}"
        split = "val" if val_every and added % val_every == val_every - 1 else "train"
        shutil.copyfile(data / row["file"], root / "images" / split / f"{name}.jpg")
        rows = [f"0 {(x + bw / 2) / w:.6f} {(y + bh / 2) / h:.6f} {bw / w:.6f} {bh / h:.6f}"
                for x, y, bw, bh in row["boxes"]]
        (root / "labels" / split / f"{name}.txt").write_text("\n".join(rows), encoding="utf-8")
        added += 1
    return added


def _training_scene(rng: random.Random) -> Scene:
    roll = rng.random()
    if roll < 0.15:
        return closeup_scene(rng)
    width, height = rng.choice(((640, 384), (640, 360), (512, 384)))
    return gate_scene(rng, width, height, max_vehicles=rng.choice((1, 2, 2, 3)))


def write_example(root: Path, split: str, name: str, scene: Scene) -> None:
    h, w = scene.image.shape[:2]
    cv2.imwrite(str(root / "images" / split / f"{name}.jpg"), scene.image)
    lines = []
    for plate in scene.plates:
        x, y, bw, bh = plate.box
        lines.append(f"0 {(x + bw / 2) / w:.6f} {(y + bh / 2) / h:.6f} {bw / w:.6f} {bh / h:.6f}")
    (root / "labels" / split / f"{name}.txt").write_text("\n".join(lines), encoding="utf-8")


def train(
    data: Path,
    *,
    out: Path,
    epochs: int,
    imgsz: int,
    batch: int,
    workdir: Path,
    threads: int,
    hours: float | None = None,
    warm_start: Path | None = None,
    export_shape: tuple[int, int] | None = None,
) -> Path:
    import torch
    from ultralytics import YOLO

    torch.set_num_threads(threads)
    device = "0" if torch.cuda.is_available() else "cpu"
    model_yaml = scaled_yaml(workdir)
    model = YOLO(str(model_yaml))
    start: dict[str, object] = {"pretrained": False}
    if warm_start is not None:
        from training.warm_start import warm_checkpoint

        start["pretrained"] = str(warm_checkpoint(model_yaml, warm_start, workdir / "warm.pt"))
    model.train(
        data=str(data),
        epochs=epochs,
        imgsz=imgsz,
        batch=batch,
        device=device,
        workers=0 if device == "cpu" else 4,
        project=str(workdir),
        name="run",
        exist_ok=True,
        plots=False,
        amp=False,  # the AMP self-check downloads a model
        mosaic=0.5,
        fliplr=0.0,  # mirrored characters are not plates
        close_mosaic=max(1, epochs // 5),
        patience=max(5, epochs),
        verbose=False,
        seed=0,
        deterministic=False,
        **({"time": hours} if hours else {}),  # a time limit overrides epochs
        **start,
    )
    best = workdir / "run" / "weights" / "best.pt"
    return export_onnx(best, export_shape or (imgsz, imgsz), out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.train_plates", description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--train-images", type=int, default=1200)
    parser.add_argument("--val-images", type=int, default=150)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--imgsz", type=int, default=384)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--real", type=Path, default=None, metavar="DIR",
                        help="add the real photographs in DIR (labels.jsonl), less the "
                             "validation split of edge/vision/plates_real_split.json")
    parser.add_argument("--real-val-every", type=int, default=10, metavar="K",
                        help="every K-th real training photograph validates instead (0: none)")
    parser.add_argument("--hours", type=float, default=None, help="stop training after this")
    parser.add_argument("--warm-start", type=Path, default=None, metavar="ONNX",
                        help="begin from this exported detector's weights (same YAML)")
    parser.add_argument("--export-shape", type=parse_shape, default=None, metavar="HxW",
                        help="ONNX input shape (default: imgsz square), e.g. 288x512")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep the dataset and run here (default: a temporary folder)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    with tempfile.TemporaryDirectory(prefix="plate-train-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        data = render_dataset(workdir / "data", args.train_images, args.val_images, args.seed)
        if args.real is not None:
            from edge.vision.evaluate import validation_split

            log.info("real photographs added", extra={
                "count": add_real(workdir / "data", args.real, validation_split(),
                                  args.real_val_every)})
        out = train(data, out=args.out, epochs=args.epochs, imgsz=args.imgsz, batch=args.batch,
                    workdir=workdir, threads=args.threads, hours=args.hours,
                    warm_start=args.warm_start, export_shape=args.export_shape)
    print(json.dumps({"model": str(out), "bytes": out.stat().st_size}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
