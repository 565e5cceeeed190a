"""Licence plates as the simulated cameras see them: random plates in real formats, drawn.

Formats, colours and proportions follow the real plates closely enough that a detector and a
reader trained or tested on them face the same layout problems:

- China (GA 36-2018): blue (white text) and yellow (black text) plates ``京A·12345``, 440x140 mm;
  green new-energy plates with eight characters ``粤B·D12345`` (small car: D/F then a letter or
  digit then four digits) on a white-to-green gradient; letters never include I or O.
- EU: white plate, blue band with the country code, formats DE ``B AB 1234``, FR ``AB-123-CD``,
  IT ``AB 123CD``, ES ``1234 BCD`` (no vowels), 520x110 mm.
- US: 12x6 inch plates with the state name above, CA ``7ABC123``, NY/TX ``ABC-1234``.

The generator knows the formats independently of the gateway's validator (edge/vision), so a
test that renders here and reads there checks the validator, not a copy of it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFont

Region = Literal["cn", "eu", "us"]

FONT_DIR = Path(__file__).parent / "fonts"
CJK_FONT = FONT_DIR / "NotoSansSC-Bold-plates.otf"
LATIN_FONT = FONT_DIR / "DejaVuSansCondensed-Bold-plates.ttf"

PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
CN_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"  # no I, no O
DIGITS = "0123456789"
LATIN = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
ES_LETTERS = "BCDFGHJKLMNPRSTVWXYZ"  # Spanish plates use consonants only (no Q, Ñ)
DE_CITIES = ("B", "M", "HH", "K", "F", "S", "D", "DO", "HB", "KA", "MZ", "LEV")


@dataclass(frozen=True, slots=True)
class PlateSpec:
    """A plate to draw: ``text`` is canonical (no separators), ``shown`` as printed."""

    text: str
    shown: str
    region: Region
    style: str  # cn_blue, cn_yellow, cn_green, eu_de, eu_fr, eu_it, eu_es, us_ca, us_ny, us_tx


def _pick(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def random_plate(rng: random.Random, region: Region | None = None) -> PlateSpec:
    region = region or rng.choice(("cn", "cn", "eu", "us"))
    if region == "cn":
        province = rng.choice(PROVINCES)
        office = rng.choice(CN_LETTERS)
        style = rng.choice(("cn_blue", "cn_blue", "cn_yellow", "cn_green", "cn_green"))
        if style == "cn_green":
            tail = rng.choice("DF") + rng.choice(CN_LETTERS + DIGITS) + _pick(rng, DIGITS, 4)
        else:
            # Ordinary series: five of letters/digits, at most two letters in practice.
            chars = [rng.choice(DIGITS) for _ in range(5)]
            for pos in rng.sample(range(5), rng.choice((0, 1, 1, 2))):
                chars[pos] = rng.choice(CN_LETTERS)
            tail = "".join(chars)
        return PlateSpec(province + office + tail, f"{province}{office}·{tail}", "cn", style)
    if region == "eu":
        style = rng.choice(("eu_de", "eu_fr", "eu_it", "eu_es"))
        if style == "eu_de":
            city = rng.choice(DE_CITIES)
            letters = _pick(rng, LATIN, rng.choice((1, 2)))
            number = str(rng.randint(1, 9999))
            return PlateSpec(city + letters + number, f"{city} {letters} {number}", "eu", style)
        if style == "eu_fr":
            a, n, b = _pick(rng, LATIN, 2), _pick(rng, DIGITS, 3), _pick(rng, LATIN, 2)
            return PlateSpec(a + n + b, f"{a}-{n}-{b}", "eu", style)
        if style == "eu_it":
            a, n, b = _pick(rng, LATIN, 2), _pick(rng, DIGITS, 3), _pick(rng, LATIN, 2)
            return PlateSpec(a + n + b, f"{a} {n}{b}", "eu", style)
        n, b = _pick(rng, DIGITS, 4), _pick(rng, ES_LETTERS, 3)
        return PlateSpec(n + b, f"{n} {b}", "eu", style)
    style = rng.choice(("us_ca", "us_ny", "us_tx"))
    if style == "us_ca":
        text = str(rng.randint(1, 9)) + _pick(rng, LATIN, 3) + _pick(rng, DIGITS, 3)
        return PlateSpec(text, text, "us", style)
    a, n = _pick(rng, LATIN, 3), _pick(rng, DIGITS, 4)
    return PlateSpec(a + n, f"{a}-{n}", "us", style)


@cache
def _font(path: Path, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), size)


def _text_layer(
    box: tuple[int, int, int, int], text: str, font_path: Path, fill: tuple[int, int, int]
) -> Image.Image:
    """Text drawn to fill ``box``'s height, narrowed if needed to fit its width."""
    x0, y0, x1, y1 = box
    size = max(8, int((y1 - y0) * 1.15))
    font = _font(font_path, size)
    left, top, right, bottom = (int(v) for v in font.getbbox(text))
    w, h = right - left, bottom - top
    layer = Image.new("RGBA", (w + 4, h + 4), (0, 0, 0, 0))
    ImageDraw.Draw(layer).text((2 - left, 2 - top), text, font=font, fill=(*fill, 255))
    target_w = min(x1 - x0, int(w * (y1 - y0) / max(h, 1)))
    layer = layer.resize((max(1, target_w), y1 - y0), Image.Resampling.LANCZOS)
    return layer


def _paste_text(
    plate: Image.Image,
    box: tuple[int, int, int, int],
    text: str,
    font_path: Path,
    fill: tuple[int, int, int],
) -> None:
    layer = _text_layer(box, text, font_path, fill)
    x0, y0, x1, _ = box
    plate.paste(layer, (x0 + (x1 - x0 - layer.width) // 2, y0), layer)


def _cn_plate(spec: PlateSpec) -> Image.Image:
    w, h = 440, 140
    dark = (0, 0, 0)
    if spec.style == "cn_blue":
        bg, fg = (18, 60, 190), (245, 245, 245)
        plate = Image.new("RGB", (w, h), bg)
    elif spec.style == "cn_yellow":
        bg, fg = (245, 195, 10), dark
        plate = Image.new("RGB", (w, h), bg)
    else:
        fg = dark
        top, bottom = np.array([235, 250, 235]), np.array([40, 185, 90])
        ramp = np.linspace(0, 1, h)[:, None, None] ** 1.4
        grad = (top * (1 - ramp) + bottom * ramp).astype(np.uint8)
        plate = Image.fromarray(np.repeat(grad, w, axis=1))
    draw = ImageDraw.Draw(plate)
    draw.rounded_rectangle((4, 4, w - 5, h - 5), radius=10, outline=fg, width=4)
    # Character cells as in GA 36: 45 mm wide (43 on the 8-character plate), a dot after two.
    n = len(spec.text)
    cell = 45 if n == 7 else 40
    gap = 12 if n == 7 else 9
    x = (w - (n * cell + (n - 2) * gap + 34)) // 2
    for i, ch in enumerate(spec.text):
        _paste_text(plate, (x, 25, x + cell, 115), ch, CJK_FONT, fg)
        x += cell + gap
        if i == 1:
            draw.ellipse((x + 5, 64, x + 17, 76), fill=fg)
            x += 34 - gap
    return plate


def _eu_plate(spec: PlateSpec) -> Image.Image:
    w, h = 520, 110
    plate = Image.new("RGB", (w, h), (246, 246, 240))
    draw = ImageDraw.Draw(plate)
    draw.rounded_rectangle((2, 2, w - 3, h - 3), radius=10, outline=(10, 10, 10), width=5)
    draw.rectangle((7, 7, 50, h - 8), fill=(0, 51, 153))
    for k in range(12):  # the ring of stars, as small yellow dots
        a = 2 * np.pi * k / 12
        cx, cy = 28 + 13 * np.cos(a), 34 + 13 * np.sin(a)
        draw.ellipse((cx - 2, cy - 2, cx + 2, cy + 2), fill=(255, 204, 0))
    country = {"eu_de": "D", "eu_fr": "F", "eu_it": "I", "eu_es": "E"}[spec.style]
    _paste_text(plate, (12, 60, 46, 95), country, LATIN_FONT, (255, 255, 255))
    _paste_text(plate, (60, 14, w - 12, h - 14), spec.shown, LATIN_FONT, (10, 10, 10))
    return plate


def _us_plate(spec: PlateSpec) -> Image.Image:
    w, h = 360, 180
    state, bg, fg, head = {
        "us_ca": ("California", (248, 248, 248), (20, 30, 110), (190, 20, 30)),
        "us_ny": ("NEW YORK", (250, 245, 225), (15, 35, 95), (230, 140, 20)),
        "us_tx": ("TEXAS", (245, 245, 245), (15, 15, 15), (20, 40, 120)),
    }[spec.style]
    plate = Image.new("RGB", (w, h), bg)
    draw = ImageDraw.Draw(plate)
    draw.rounded_rectangle((2, 2, w - 3, h - 3), radius=14, outline=(60, 60, 60), width=3)
    _paste_text(plate, (90, 10, w - 90, 42), state, LATIN_FONT, head)
    _paste_text(plate, (20, 55, w - 20, 150), spec.shown, LATIN_FONT, fg)
    return plate


def render_plate(spec: PlateSpec) -> np.ndarray:
    """The plate, flat and sharp, as a BGR image (OpenCV order)."""
    if spec.region == "cn":
        plate = _cn_plate(spec)
    elif spec.region == "eu":
        plate = _eu_plate(spec)
    else:
        plate = _us_plate(spec)
    return np.ascontiguousarray(np.asarray(plate)[:, :, ::-1])
