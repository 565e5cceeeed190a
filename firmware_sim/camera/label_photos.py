"""Photographs of pallet labels, one symbol each, in every symbology a warehouse label carries.

Each symbol is made by zxing-cpp's own encoder (``create_barcode``), printed on a white label
with a few lines of text, and then photographed the way a handheld or fixed camera does it: the
label sits on a pallet wrap or carton at some angle (rotation, perspective), out of focus or
moving (blur), under a lamp (glare, uneven light), on a cheap printer (low contrast), and the
picture is compressed (JPEG). ``truth`` is the text the encoder reports for the symbol it made
(zxing-cpp's own canonical text: UPC-A as its 13-digit GTIN, GS1 content in HRI form), so a
reader is right when it returns exactly that.

Used by the label tests and by ``python -m benchmarks camera``; the rendering depends only on
the seed.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta

import cv2
import numpy as np

from firmware_sim.camera.scenes import gs1_check_digit


@dataclass(frozen=True, slots=True)
class LabelPhoto:
    symbology: str  # what the label carries, in warehouse words ("GS1-128", "ITF-14", ...)
    truth: str  # the encoder's own text for the symbol
    image: np.ndarray  # BGR


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def _gtin(rng: random.Random, n: int = 14) -> str:
    body = _digits(rng, n - 1)
    return body + gs1_check_digit(body)


def _sscc(rng: random.Random) -> str:
    body = "0" + _digits(rng, 16)
    return body + gs1_check_digit(body)


def _batch(rng: random.Random) -> str:
    return "".join(rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ0123456789") for _ in range(6))


def _expiry(rng: random.Random) -> str:
    return f"{date(2027, 1, 1) + timedelta(days=rng.randint(0, 700)):%y%m%d}"


# symbology -> (zxing-cpp format to create, GS1 mode? (DataBar is GS1 by itself), content from
# a random source, module size in pixels when printed)
_MAKERS: dict[str, tuple[str, bool, Callable[[random.Random], str], tuple[int, int]]] = {
    "GS1-128": ("Code128", True, lambda r: f"(00){_sscc(r)}", (2, 4)),
    "Code128": ("Code128", False, lambda r: f"PLT-{_batch(r)}{_digits(r, 4)}", (2, 4)),
    "ITF-14": ("ITF14", False, _gtin, (2, 4)),
    "Code39": ("Code39", False, lambda r: f"LOT-{_batch(r)}", (2, 4)),
    "EAN-13": ("EAN13", False, lambda r: _gtin(r, 13), (2, 4)),
    "EAN-8": ("EAN8", False, lambda r: _gtin(r, 8), (2, 4)),
    "UPC-A": ("UPCA", False, lambda r: _gtin(r, 12), (2, 4)),
    # UPC-E's last digit 5-9 keeps a five-digit maker code, whose last digit must not be 0.
    "UPC-E": ("UPCE", False, lambda r: f"0{_digits(r, 4)}{r.randint(1, 9)}{r.randint(5, 9)}",
              (2, 4)),
    "DataBar": ("DataBar", False, lambda r: f"(01){_gtin(r)}", (2, 4)),
    "DataBarExpanded": ("DataBarExp", False,
                        lambda r: f"(01){_gtin(r)}(10){_batch(r)}(17){_expiry(r)}", (2, 4)),
    "DataMatrix": ("DataMatrix", True,
                   lambda r: f"(01){_gtin(r)}(10){_batch(r)}(17){_expiry(r)}(21){_digits(r, 8)}",
                   (4, 7)),
    "QRCode": ("QRCode", False,
               lambda r: f"https://id.gs1.org/01/{_gtin(r)}/10/{_batch(r)}", (3, 6)),
    "PDF417": ("PDF417", False,
               lambda r: f"SSCC {_sscc(r)};SHIP TO DC-{_digits(r, 3)};PCS {r.randint(1, 99)}",
               (2, 3)),
    "Aztec": ("Aztec", False, lambda r: f"LOT {_batch(r)} QTY {r.randint(1, 999)}", (3, 6)),
}

SYMBOLOGIES: tuple[str, ...] = tuple(_MAKERS)
_MATRIX = {"DataMatrix", "QRCode", "PDF417", "Aztec"}  # stacked or 2D: cells, not bars


def symbol(symbology: str, rng: random.Random) -> tuple[np.ndarray, str, int]:
    """The clean symbol (grey, with its quiet zone), the encoder's text for it, its module px."""
    import zxingcpp

    fmt, gs1, content, modules = _MAKERS[symbology]
    kwargs = {"gs1": True} if gs1 else {}
    barcode = zxingcpp.create_barcode(content(rng), getattr(zxingcpp.BarcodeFormat, fmt), **kwargs)
    module = rng.randint(*modules)
    image = np.asarray(zxingcpp.write_barcode_to_image(barcode, scale=module,
                                                       add_quiet_zones=True))
    if image.shape[0] < 40:  # a linear symbol is printed with some height, not one line
        image = np.repeat(image[:1], rng.randint(60, 110), axis=0)
    return image, barcode.text, module


def _label(symbol_image: np.ndarray, rng: random.Random) -> np.ndarray:
    sh, sw = symbol_image.shape
    w, h = sw + 40, sh + 90
    canvas = np.full((h, w), 250, np.uint8)
    canvas[15 : 15 + sh, 20 : 20 + sw] = symbol_image
    for i in range(2):
        text = f"{rng.choice(('BATCH', 'LOT', 'SSCC', 'QTY'))} {_digits(rng, rng.randint(4, 10))}"
        cv2.putText(canvas, text, (20, sh + 45 + 30 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.7, 30, 2,
                    cv2.LINE_AA)
    return cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR)


def _background(rng: random.Random, width: int, height: int) -> np.ndarray:
    colour = np.array([rng.randint(60, 200) for _ in range(3)], np.float32)
    noise = np.random.default_rng(rng.randint(0, 2**31)).normal(0, 12, (height // 8, width // 8))
    texture = cv2.resize(noise.astype(np.float32), (width, height))
    return np.clip(colour[None, None, :] + texture[:, :, None], 0, 255).astype(np.uint8)


def photograph(label: np.ndarray, module: int, rng: random.Random, strength: float = 1.0, *,
               matrix: bool = False,
               size: tuple[int, int] = (960, 720)) -> np.ndarray:
    """The label as a camera sees it; ``strength`` 0 is a square-on, sharp, well-lit shot.

    A photo taken to read a label shows its narrowest bar over 1.6 to 3.5 pixels, a matrix
    cell over 2.5 to 5 (less is out of any reader's reach); the label stays inside the picture.
    """
    width, height = size
    img: np.ndarray = _background(rng, width, height).astype(np.float32)
    lh, lw = label.shape[:2]
    scale = (rng.uniform(2.5, 5.0) if matrix else rng.uniform(1.6, 3.5)) / module
    scale = min(scale, 0.9 * min(width, height) / max(lh, lw))
    cx, cy = rng.uniform(0.4, 0.6) * width, rng.uniform(0.4, 0.6) * height
    # Mostly upright (a fixed camera, a person holding the phone level), sometimes any angle.
    angle = (rng.uniform(-180, 180) if rng.random() < 0.3 * strength
             else rng.uniform(-15, 15) * strength)
    rot = cv2.getRotationMatrix2D((0.0, 0.0), angle, scale)
    corners = np.array([[0, 0], [lw, 0], [lw, lh], [0, lh]], np.float32) - [lw / 2, lh / 2]
    placed = corners @ rot[:, :2].T + [cx, cy]
    tilt = 0.08 * strength * max(lw, lh) * scale  # perspective: corners pulled toward the camera
    placed += np.array([[rng.uniform(-tilt, tilt), rng.uniform(-tilt, tilt)] for _ in range(4)])
    src = np.array([[0, 0], [lw, 0], [lw, lh], [0, lh]], np.float32)
    warp = cv2.getPerspectiveTransform(src, placed.astype(np.float32))
    warped = cv2.warpPerspective(label, warp, (width, height), flags=cv2.INTER_LINEAR)
    mask = cv2.warpPerspective(np.ones((lh, lw), np.float32), warp, (width, height))
    img = img * (1 - mask[:, :, None]) + warped.astype(np.float32) * mask[:, :, None]
    if rng.random() < 0.5 * strength:  # a faded ribbon or a cheap thermal printer
        low, high = rng.uniform(40, 110), rng.uniform(170, 235)
        img = low + img * (high - low) / 255.0
    gain = rng.uniform(1 - 0.5 * strength, 1 + 0.2 * strength)
    img = img * gain
    if rng.random() < 0.4 * strength:  # uneven light across the picture
        ramp = np.linspace(rng.uniform(0.5, 1.0), rng.uniform(1.0, 1.3), width, dtype=np.float32)
        img *= ramp[None, :, None]
    if rng.random() < 0.4 * strength:  # glare from a lamp on glossy wrap
        gx, gy = rng.uniform(0.2, 0.8) * width, rng.uniform(0.2, 0.8) * height
        radius = rng.uniform(0.05, 0.15) * min(width, height)
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        blob = np.exp(-((xx - gx) ** 2 + (yy - gy) ** 2) / (2 * radius**2))
        img += rng.uniform(60, 160) * blob[:, :, None]
    if rng.random() < 0.6 * strength:
        sigma = rng.uniform(0.5, 1.2) * strength
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    if rng.random() < 0.25 * strength:  # the pallet or the hand moved
        k = rng.randint(3, 7)
        kernel: np.ndarray = np.zeros((k, k), np.float32)
        kernel[k // 2, :] = 1 / k
        kernel = cv2.warpAffine(kernel, cv2.getRotationMatrix2D(((k - 1) / 2, (k - 1) / 2),
                                                                rng.uniform(0, 180), 1.0), (k, k))
        img = cv2.filter2D(img, -1, kernel / max(kernel.sum(), 1e-6))
    img += np.random.default_rng(rng.randint(0, 2**31)).normal(0, 2 + 5 * strength, img.shape)
    out = np.clip(img, 0, 255).astype(np.uint8)
    quality = int(90 - 55 * strength * rng.random())
    ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, quality])
    decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else None
    return decoded if decoded is not None else out


def label_photo(symbology: str, rng: random.Random, strength: float = 1.0,
                size: tuple[int, int] = (960, 720)) -> LabelPhoto:
    image, truth, module = symbol(symbology, rng)
    matrix = symbology in _MATRIX
    return LabelPhoto(symbology, truth, photograph(_label(image, rng), module, rng, strength,
                                                   matrix=matrix, size=size))


def label_photos(per_symbology: int, *, seed: int, strength: float = 1.0,
                 size: tuple[int, int] = (960, 720)) -> Iterator[LabelPhoto]:
    """``per_symbology`` photos of each symbology, interleaved, the same for the same seed."""
    rng = random.Random(seed)
    for _ in range(per_symbology):
        for name in SYMBOLOGIES:
            yield label_photo(name, rng, strength, size)


def in_busy_picture(photo: LabelPhoto, background: np.ndarray, rng: random.Random) -> LabelPhoto:
    """The label photo shrunk to 35-60 % and set at a random place into ``background`` (a
    street, a loading bay: edges and print everywhere), turned a quarter half of the time: the
    label is a small part of what the camera sees, and bars may stand on end."""
    height, width = background.shape[:2]
    label = photo.image
    if rng.random() < 0.5:
        label = cv2.rotate(label, cv2.ROTATE_90_CLOCKWISE)
    scale = rng.uniform(0.35, 0.6)
    scale = min(scale, 0.95 * width / label.shape[1], 0.95 * height / label.shape[0])
    label = cv2.resize(label, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    h, w = label.shape[:2]
    y, x = rng.randint(0, height - h), rng.randint(0, width - w)
    picture = background.copy()
    picture[y : y + h, x : x + w] = label
    return LabelPhoto(photo.symbology, photo.truth, picture)
