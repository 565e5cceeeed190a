"""The plate detector's network: its definition, and its export to the ONNX file the gateway
runs. Shared by training from renderings (``train_plates``) and by re-exporting a shipped file's
weights (``warm_start``)."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

MODEL_YAML = Path(__file__).with_name("plate_detector.yaml")


def scaled_yaml(workdir: Path) -> Path:
    """A copy of the definition whose file name ends in the scale letter: that letter tells
    ultralytics which row of ``scales`` to build."""
    model_yaml = workdir / "plate_detector-p.yaml"
    shutil.copyfile(MODEL_YAML, model_yaml)
    return model_yaml


def export_onnx(checkpoint: Path, shape: tuple[int, int], out: Path) -> Path:
    """Export an ultralytics checkpoint with a fixed ``(height, width)`` input. The network is
    fully convolutional: any shape of multiples of 32 works, and a 16:9-like one spends few
    pixels on letterbox bars."""
    from ultralytics import YOLO

    exported = YOLO(str(checkpoint)).export(format="onnx", imgsz=list(shape), opset=17,
                                            simplify=True, dynamic=False)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(exported, out)
    return out


def parse_shape(text: str) -> tuple[int, int]:
    """An ONNX input shape given as HxW (both multiples of 32, as the network's strides ask)."""
    try:
        h, w = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not HxW, e.g. 384x672") from None
    if h % 32 or w % 32 or h <= 0 or w <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: both sides must be positive multiples of 32")
    return h, w
