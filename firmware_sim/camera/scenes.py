"""Camera scenes: a gate with vehicles carrying plates, and a stack of pallets with labels.

Every scene comes with its truth (where each plate or label is and what it says), so it serves
three purposes: training data for the plate detector, test fixtures with known answers, and the
frames of the simulated camera streams. Nuisances real cameras have are drawn on purpose:
lighting (day, dusk, night with headlights), blur (focus and motion), perspective, partial
occlusion, sensor noise and JPEG artefacts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta

import cv2
import numpy as np

from firmware_sim.camera.plates import PlateSpec, random_plate, render_plate

Box = tuple[int, int, int, int]  # x, y, w, h in pixels


@dataclass(frozen=True, slots=True)
class PlateTruth:
    spec: PlateSpec
    box: Box


@dataclass(frozen=True, slots=True)
class LabelTruth:
    format: str  # zxing-cpp's format name, e.g. "Code128", "DataMatrix", "QRCode", "EAN13"
    text: str  # what a reader returns (GS1 in HRI form, "(00)...")
    box: Box


@dataclass
class Scene:
    image: np.ndarray  # BGR
    plates: list[PlateTruth] = field(default_factory=list)
    labels: list[LabelTruth] = field(default_factory=list)


def background(rng: random.Random, width: int, height: int) -> np.ndarray:
    """A gate or yard: sky, wall, ground, some clutter and sign text that is not a plate."""
    img = np.zeros((height, width, 3), np.uint8)
    horizon = int(height * rng.uniform(0.25, 0.5))
    sky = np.array([rng.randint(150, 235), rng.randint(120, 210), rng.randint(90, 180)])
    img[:horizon] = sky
    ground = rng.randint(70, 140)
    ramp = np.linspace(0.8, 1.2, height - horizon)[:, None, None]
    img[horizon:] = np.clip(ground * ramp, 0, 255).astype(np.uint8)
    for _ in range(rng.randint(2, 6)):  # buildings, posts, containers
        x, w = rng.randint(0, width), rng.randint(width // 20, width // 3)
        top = rng.randint(horizon // 3, horizon + 10)
        colour = tuple(rng.randint(40, 220) for _ in range(3))
        cv2.rectangle(img, (x, top), (x + w, horizon + rng.randint(0, 40)), colour, -1)
    for _ in range(rng.randint(0, 3)):  # lane markings
        y = rng.randint(horizon + 10, height - 5)
        cv2.line(img, (0, y), (width, y + rng.randint(-40, 40)), (220, 220, 220), rng.randint(2, 6))
    for _ in range(rng.randint(0, 2)):  # signs with text: things a detector must not call plates
        x, y = rng.randint(0, max(1, width - 200)), rng.randint(0, max(1, horizon))
        colour = tuple(rng.randint(0, 255) for _ in range(3))
        cv2.rectangle(img, (x, y), (x + rng.randint(80, 220), y + rng.randint(30, 70)), colour, -1)
        word = rng.choice(("EXIT", "GATE 2", "NO PARKING", "DOCK 4", "SLOW", "WAREHOUSE"))
        cv2.putText(img, word, (x + 6, y + 26), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2)
    return img


def _warp_plate(
    plate: np.ndarray, width: int, rng: random.Random, skew: float
) -> tuple[np.ndarray, np.ndarray]:
    """Scale the plate to ``width`` and tilt it; returns the image and its four corners."""
    h = max(4, round(plate.shape[0] * width / plate.shape[1]))
    small = cv2.resize(plate, (width, h), interpolation=cv2.INTER_AREA)
    src = np.array([[0, 0], [width, 0], [width, h], [0, h]], dtype=np.float32)
    jitter = skew * width
    dst = src + np.array([[rng.uniform(-jitter, jitter), rng.uniform(-jitter, jitter) * 0.5]
                          for _ in range(4)], dtype=np.float32)
    dst -= dst.min(axis=0)
    out_w, out_h = int(np.ceil(dst[:, 0].max())) + 1, int(np.ceil(dst[:, 1].max())) + 1
    matrix = cv2.getPerspectiveTransform(src, dst)
    warped = cv2.warpPerspective(small, matrix, (out_w, out_h), borderValue=(0, 0, 0))
    mask = cv2.warpPerspective(np.full((h, width), 255, np.uint8), matrix, (out_w, out_h))
    return warped, mask


def draw_vehicle(
    img: np.ndarray, rng: random.Random, *, x: int, y: int, w: int, spec: PlateSpec, skew: float
) -> PlateTruth | None:
    """A vehicle seen from the front or rear, ``w`` pixels wide, top-left at (x, y)."""
    h = int(w * rng.uniform(0.6, 0.85))
    colour = tuple(rng.randint(20, 240) for _ in range(3))
    cv2.rectangle(img, (x, y + h // 3), (x + w, y + h), colour, -1)  # body
    cv2.rectangle(img, (x + w // 8, y), (x + w - w // 8, y + h // 3), colour, -1)  # cabin
    glass = tuple(max(0, c // 3) for c in colour)
    cv2.rectangle(img, (x + w // 6, y + h // 20), (x + w - w // 6, y + h // 3 - 2), glass, -1)
    lamp = (235, 235, 225)
    cv2.rectangle(img, (x + w // 20, y + h // 2), (x + w // 5, y + h // 2 + h // 10), lamp, -1)
    cv2.rectangle(img, (x + w - w // 5, y + h // 2), (x + w - w // 20, y + h // 2 + h // 10),
                  lamp, -1)
    wheel = (25, 25, 25)
    cv2.rectangle(img, (x + w // 12, y + h - 2), (x + w // 4, y + h + h // 10), wheel, -1)
    cv2.rectangle(img, (x + w - w // 4, y + h - 2), (x + w - w // 12, y + h + h // 10), wheel, -1)
    plate_w = int(w * rng.uniform(0.28, 0.4) * (0.8 if spec.region == "us" else 1.0))
    warped, mask = _warp_plate(render_plate(spec), plate_w, rng, skew)
    px = x + (w - warped.shape[1]) // 2 + rng.randint(-w // 12, w // 12)
    py = y + int(h * 0.68)
    return paste(img, warped, mask, (px, py), spec)


def paste(
    img: np.ndarray, warped: np.ndarray, mask: np.ndarray, at: tuple[int, int], spec: PlateSpec
) -> PlateTruth | None:
    """Paste a warped plate; its truth box is clipped to the frame (None if mostly outside)."""
    px, py = at
    H, W = img.shape[:2]
    ph, pw = warped.shape[:2]
    x0, y0, x1, y1 = max(px, 0), max(py, 0), min(px + pw, W), min(py + ph, H)
    if x1 - x0 < pw * 0.7 or y1 - y0 < ph * 0.7:
        return None
    region = img[y0:y1, x0:x1]
    sub = warped[y0 - py : y1 - py, x0 - px : x1 - px]
    alpha = (mask[y0 - py : y1 - py, x0 - px : x1 - px, None] / 255.0).astype(np.float32)
    region[:] = (sub * alpha + region * (1 - alpha)).astype(np.uint8)
    ys, xs = np.nonzero(mask[y0 - py : y1 - py, x0 - px : x1 - px])
    return PlateTruth(spec, (x0 + int(xs.min()), y0 + int(ys.min()),
                             int(xs.max() - xs.min()) + 1, int(ys.max() - ys.min()) + 1))


def degrade(img: np.ndarray, rng: random.Random, strength: float = 1.0) -> np.ndarray:
    """Lighting, blur, noise and compression as a camera adds them."""
    out: np.ndarray = img.astype(np.float32)
    gain = rng.uniform(1 - 0.6 * strength, 1 + 0.3 * strength)
    out = out * gain + rng.uniform(-25, 25) * strength
    if rng.random() < 0.3 * strength:  # uneven light: a gradient across the frame
        ramp = np.linspace(rng.uniform(0.5, 1.0), rng.uniform(1.0, 1.4), img.shape[1])
        out *= ramp[None, :, None]
    if rng.random() < 0.5 * strength:
        k = rng.choice((3, 5))
        out = cv2.GaussianBlur(out, (k, k), 0)
    if rng.random() < 0.25 * strength:  # horizontal motion blur
        k = rng.randint(3, 9)
        kernel = np.zeros((k, k), np.float32)
        kernel[k // 2, :] = 1 / k
        out = cv2.filter2D(out, -1, kernel)
    out += np.random.default_rng(rng.randint(0, 2**31)).normal(0, 6 * strength, out.shape)
    out = np.clip(out, 0, 255).astype(np.uint8)
    if rng.random() < 0.7:
        quality = rng.randint(35, 90)
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, quality])
        decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else None
        if decoded is not None:
            out = decoded
    return out


def occlude(img: np.ndarray, rng: random.Random, box: Box, fraction: float) -> None:
    """Cover up to ``fraction`` of a plate's width (a tow bar, mud, a person)."""
    x, y, w, h = box
    cw = int(w * rng.uniform(0.05, fraction))
    cx = x + rng.choice((0, w - cw))
    colour = tuple(rng.randint(0, 120) for _ in range(3))
    cv2.rectangle(img, (cx, y - 2), (cx + cw, y + h + 2), colour, -1)


def gate_scene(
    rng: random.Random,
    width: int = 640,
    height: int = 384,
    *,
    plates: list[PlateSpec] | None = None,
    max_vehicles: int = 2,
    degrade_strength: float = 1.0,
    occlusion: float = 0.15,
) -> Scene:
    """A still of the gate with 0..max_vehicles vehicles (or one per given plate)."""
    img = background(rng, width, height)
    specs = plates if plates is not None else [
        random_plate(rng) for _ in range(rng.randint(0 if max_vehicles > 1 else 1, max_vehicles))
    ]
    truths: list[PlateTruth] = []
    slot_w = width // max(1, len(specs))
    for i, spec in enumerate(specs):
        w = int(min(slot_w * 0.95, width * rng.uniform(0.22, 0.6)))
        x = i * slot_w + rng.randint(0, max(0, slot_w - w))
        y = rng.randint(int(height * 0.2), max(int(height * 0.2) + 1, int(height - w * 0.95)))
        truth = draw_vehicle(img, rng, x=x, y=y, w=w, spec=spec, skew=rng.uniform(0, 0.08))
        if truth is not None:
            truths.append(truth)
    for t in truths:
        if rng.random() < 0.2:
            occlude(img, rng, t.box, occlusion)
    return Scene(degrade(img, rng, degrade_strength), plates=truths)


def closeup_scene(rng: random.Random, width: int = 640, height: int = 384) -> Scene:
    """A plate filling much of the frame, as in a tight crop or a close camera."""
    img = background(rng, width, height)
    spec = random_plate(rng)
    pw = int(width * rng.uniform(0.4, 0.95))
    warped, mask = _warp_plate(render_plate(spec), pw, rng, rng.uniform(0, 0.05))
    if warped.shape[0] >= height:
        scale = (height - 4) / warped.shape[0]
        warped = cv2.resize(warped, None, fx=scale, fy=scale)
        mask = cv2.resize(mask, None, fx=scale, fy=scale)
    px = rng.randint(0, width - warped.shape[1])
    py = rng.randint(0, height - warped.shape[0])
    truth = paste(img, warped, mask, (px, py), spec)
    return Scene(degrade(img, rng, 0.6), plates=[truth] if truth else [])


# --- labels -------------------------------------------------------------------------------------


def gs1_check_digit(digits: str) -> str:
    """GS1 mod-10 check digit (GTIN, SSCC)."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(digits)))
    return str((10 - total % 10) % 10)


@dataclass(frozen=True, slots=True)
class PalletLabel:
    sscc: str  # 18 digits
    gtin: str  # 14 digits
    batch: str
    expiry: date

    @property
    def gs1_hri(self) -> str:
        return (f"(00){self.sscc}(01){self.gtin}(10){self.batch}"
                f"(17){self.expiry:%y%m%d}")


def random_pallet_label(rng: random.Random) -> PalletLabel:
    sscc17 = "0" + "".join(rng.choice("0123456789") for _ in range(16))
    gtin13 = "0" + "".join(rng.choice("0123456789") for _ in range(12))
    batch = "".join(rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ0123456789") for _ in range(6))
    expiry = date(2027, 1, 1) + timedelta(days=rng.randint(0, 700))
    return PalletLabel(sscc17 + gs1_check_digit(sscc17), gtin13 + gs1_check_digit(gtin13),
                       batch, expiry)


def _symbol(content: str, fmt: str, scale: int) -> np.ndarray:
    import zxingcpp

    barcode_format = getattr(zxingcpp.BarcodeFormat, fmt)
    if fmt == "Code128":
        barcode = zxingcpp.create_barcode(content, barcode_format, gs1=True)
    else:
        barcode = zxingcpp.create_barcode(content, barcode_format)
    return np.asarray(zxingcpp.write_barcode_to_image(barcode, scale=scale, add_quiet_zones=True))


def render_label(label: PalletLabel, fmt: str) -> tuple[np.ndarray, str]:
    """A white pallet label with one symbol and printed text; returns (BGR image, truth text)."""
    if fmt == "Code128":  # the SSCC symbol of a GS1 logistic label carries (00) alone
        content = truth = f"(00){label.sscc}"
        symbol = _symbol(content, fmt, 3)
    elif fmt == "EAN13":
        content = truth = label.gtin[1:]
        symbol = _symbol(content, fmt, 3)
    else:  # DataMatrix / QRCode carry the GS1 string as plain text here
        content = truth = label.gs1_hri
        symbol = _symbol(content, fmt, 5)
    sh, sw = symbol.shape
    w, h = max(sw + 40, 520), sh + 150
    canvas = np.full((h, w, 3), 250, np.uint8)
    canvas[20 : 20 + sh, (w - sw) // 2 : (w - sw) // 2 + sw] = symbol[:, :, None]
    lines = (f"SSCC {label.sscc}", f"BATCH {label.batch}  EXP {label.expiry:%Y-%m-%d}")
    for i, line in enumerate(lines):
        cv2.putText(canvas, line, (20, sh + 65 + 45 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.9,
                    (20, 20, 20), 2, cv2.LINE_AA)
    cv2.rectangle(canvas, (1, 1), (w - 2, h - 2), (60, 60, 60), 2)
    return canvas, truth


LABEL_FORMATS = ("Code128", "DataMatrix", "QRCode", "EAN13")


def stack_scene(
    rng: random.Random,
    width: int = 1280,
    height: int = 720,
    *,
    formats: tuple[str, ...] = LABEL_FORMATS,
    damaged: bool = False,
) -> Scene:
    """Pallets in a row under a stack camera, each with a label facing it."""
    img = np.full((height, width, 3), rng.randint(90, 140), np.uint8)
    truths: list[LabelTruth] = []
    columns = 2 if len(formats) > 2 else len(formats)
    rows = -(-len(formats) // columns)
    cell_w, cell_h = width // columns, height // rows
    for i, fmt in enumerate(formats):
        x, y = (i % columns) * cell_w, (i // columns) * cell_h
        cv2.rectangle(img, (x + 8, y + 8), (x + cell_w - 8, y + cell_h - 8), (60, 110, 160), -1)
        cv2.line(img, (x + 8, y + cell_h // 2), (x + cell_w - 8, y + cell_h // 2), (40, 80, 120), 3)
        label, truth = render_label(random_pallet_label(rng), fmt)
        scale = min((cell_w - 60) / label.shape[1], (cell_h - 40) / label.shape[0], 1.0)
        label = cv2.resize(label, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        lh, lw = label.shape[:2]
        lx, ly = x + (cell_w - lw) // 2, y + (cell_h - lh) // 2
        img[ly : ly + lh, lx : lx + lw] = label
        if damaged:  # torn and smeared: the symbol is unreadable
            cv2.rectangle(img, (lx, ly), (lx + lw, ly + int(lh * 0.6)), (70, 90, 120), -1)
        truths.append(LabelTruth(fmt, truth, (lx, ly, lw, lh)))
    return Scene(img, labels=[] if damaged else truths)
