"""Start training from the shipped ONNX detector instead of from random weights.

The repository ships only the ONNX file (the ``.pt`` checkpoints are hundreds of megabytes of
optimizer state and stay out of git), and CPU time is scarce: fine-tuning the shipped network
on real photographs costs a fraction of training it again. The export keeps ultralytics' module
names on its initializers and folds each batch norm into its convolution, so every ``Conv``
block gets the folded weight and bias back with its batch norm set to the identity (scale 1,
mean 0, variance ``1 - eps``); the plain convolutions of the head take theirs as they are.

The network is fully convolutional, so the same weights can also be exported at another fixed
input shape, without training (a larger input sees smaller plates, at a higher cost):

    python -m training.warm_start edge/vision/models/plate_detector.onnx OUT.onnx \
        --export-shape 384x672
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from training.network import export_onnx, parse_shape, scaled_yaml


class WarmStartError(RuntimeError):
    """The ONNX file does not fit the network built from the YAML."""


def load_onnx_weights(model: object, onnx_path: Path) -> int:
    """Copy the ONNX initializers into ``model`` (an ultralytics ``DetectionModel``); returns
    how many convolutions were filled. Raises ``WarmStartError`` on any mismatch."""
    import onnx
    import torch
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path)).graph
    weights = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    modules = dict(model.named_modules())  # type: ignore[attr-defined]
    filled = 0
    with torch.no_grad():
        for name, module in modules.items():
            if not isinstance(module, torch.nn.Conv2d) or name.endswith("dfl.conv"):
                continue  # the DFL convolution is a fixed arange, not learned
            w = weights.get(f"{name}.weight")
            b = weights.get(f"{name}.bias")
            if w is None or b is None or tuple(w.shape) != tuple(module.weight.shape):
                raise WarmStartError(f"{onnx_path}: no weights of shape "
                                     f"{tuple(module.weight.shape)} for {name}")
            module.weight.copy_(torch.from_numpy(np.array(w)))
            parent = name.rsplit(".", 1)[0]
            bn = modules.get(f"{parent}.bn")
            if module.bias is not None:
                module.bias.copy_(torch.from_numpy(np.array(b)))
            elif isinstance(bn, torch.nn.BatchNorm2d):
                bn.weight.fill_(1.0)
                bn.bias.copy_(torch.from_numpy(np.array(b)))
                bn.running_mean.zero_()
                bn.running_var.fill_(1.0 - bn.eps)
            else:
                raise WarmStartError(f"{onnx_path}: {name} has a bias but no place for it")
            filled += 1
    return filled


def warm_checkpoint(model_yaml: Path, onnx_path: Path, out: Path) -> Path:
    """Write an ultralytics checkpoint of the YAML's network holding the ONNX file's weights,
    for ``train(pretrained=out)``."""
    import torch
    from ultralytics import YOLO

    network = YOLO(str(model_yaml)).model
    load_onnx_weights(network, onnx_path)
    torch.save({"model": network, "train_args": {}}, out)
    return out


def reexport(onnx_path: Path, shape: tuple[int, int], out: Path) -> Path:
    """The exported detector's weights, exported again with a fixed ``(height, width)`` input
    (``out`` may be ``onnx_path`` itself)."""
    with tempfile.TemporaryDirectory(prefix="plate-reexport-") as tmp:
        checkpoint = warm_checkpoint(scaled_yaml(Path(tmp)), onnx_path, Path(tmp) / "weights.pt")
        return export_onnx(checkpoint, shape, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.warm_start", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="an exported detector (ONNX)")
    parser.add_argument("out", type=Path)
    parser.add_argument("--export-shape", type=parse_shape, required=True, metavar="HxW")
    args = parser.parse_args(argv)
    out = reexport(args.source, args.export_shape, args.out)
    print(json.dumps({"model": str(out), "bytes": out.stat().st_size}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
