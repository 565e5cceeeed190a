"""Evidence images at the edge: JPEG files named by their SHA-256, beside the outbox.

An event carries ``EvidenceRef`` values (hash, size, dimensions), never the bytes: MQTT messages
stay small and the signed envelope still pins the image, because the hash is inside the signed
body. The files wait in ``<data_dir>/evidence/ab/abcdef….jpg`` until uploaded (see ``upload``);
a file is written to a temporary name, flushed and renamed, so a crash never leaves half an
image under a real name.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from contract.messages import EvidenceRef

Kind = Literal["plate_crop", "frame", "label_crop"]


class EvidenceStore:
    def __init__(self, root: Path, *, quality: int = 85, fsync: bool = True) -> None:
        self.root = root
        self.quality = quality
        self.fsync = fsync
        root.mkdir(parents=True, exist_ok=True)

    def path_of(self, sha256: str) -> Path:
        return self.root / sha256[:2] / f"{sha256}.jpg"

    def put_image(self, image: np.ndarray, kind: Kind) -> EvidenceRef:
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            raise ValueError(f"cannot encode a {image.shape} image as JPEG")
        data = encoded.tobytes()
        sha = hashlib.sha256(data).hexdigest()
        path = self.path_of(sha)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            with tmp.open("wb") as handle:
                handle.write(data)
                if self.fsync:
                    handle.flush()
                    os.fsync(handle.fileno())
            tmp.replace(path)
        h, w = image.shape[:2]
        return EvidenceRef(kind=kind, sha256=sha, bytes=len(data), width=w, height=h)

    def pending(self) -> Iterator[Path]:
        """Stored images not yet uploaded, oldest first."""
        files = [p for p in self.root.glob("??/*.jpg") if p.is_file()]
        yield from sorted(files, key=lambda p: p.stat().st_mtime)

    def forget(self, sha256: str) -> None:
        self.path_of(sha256).unlink(missing_ok=True)
