"""GS1 element strings: ``(00)…(01)…(10)…`` or the raw form with FNC1 (GS, 0x1D) separators.

Parsed into application identifiers and values; fixed-length AIs need no separator, variable
ones end at a GS or at the end. SSCC and GTIN check digits are verified, dates checked. Only the
AIs pallet labels carry are known; an unknown AI stops parsing with an error (its length is
unknown, so what follows cannot be split reliably).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

GS = "\x1d"

# AI -> (fixed length or None for variable, maximum length, name)
_AIS: dict[str, tuple[int | None, int, str]] = {
    "00": (18, 18, "sscc"),
    "01": (14, 14, "gtin"),
    "02": (14, 14, "content_gtin"),
    "10": (None, 20, "batch"),
    "11": (6, 6, "production_date"),
    "13": (6, 6, "packaging_date"),
    "15": (6, 6, "best_before"),
    "17": (6, 6, "expiry"),
    "21": (None, 20, "serial"),
    "37": (None, 8, "count"),
    "400": (None, 30, "order_number"),
}
for _n in range(10):
    _AIS[f"310{_n}"] = (6, 6, "net_weight_kg")
    _AIS[f"330{_n}"] = (6, 6, "gross_weight_kg")

_CHECKED = {"00", "01", "02"}
_DATES = {"11", "13", "15", "17"}
# Digits only (GS1 "N" fields); batch, serial and order numbers may hold letters.
_NUMERIC = _CHECKED | _DATES | {"37"} | {ai for ai in _AIS if ai[:3] in ("310", "330")}
_HRI = re.compile(r"\((\d{2,4})\)([^(]*)")


class GS1Error(ValueError):
    """The string is not a valid GS1 element string."""


@dataclass(frozen=True, slots=True)
class ElementString:
    values: dict[str, str]  # AI -> value, in label order

    def named(self) -> dict[str, str]:
        return {_AIS[ai][2]: v for ai, v in self.values.items()}


def _digits(value: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also passes "²" and "٣", which ``int`` refuses or
    no label prints."""
    return value.isascii() and value.isdigit()


def check_digit_ok(digits: str) -> bool:
    if len(digits) < 2 or not _digits(digits):
        return False
    body, check = digits[:-1], digits[-1]
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return str((10 - total % 10) % 10) == check


def upc_e_as_upc_a(digits: str) -> str | None:
    """A UPC-E number (8 digits: number system 0 or 1, six, check) written out as the UPC-A
    number it stands for (GS1 General Specifications, 5.2.2.4.2), or None if it is no UPC-E."""
    if len(digits) != 8 or not _digits(digits) or digits[0] not in "01":
        return None
    system, d, check = digits[0], digits[1:7], digits[7]
    last = int(d[5])
    if last <= 2:
        body = d[0:2] + d[5] + "0000" + d[2:5]
    elif last == 3:
        body = d[0:3] + "00000" + d[3:5]
    elif last == 4:
        body = d[0:4] + "00000" + d[4]
    else:
        body = d[0:5] + "0000" + d[5]
    return system + body + check


def gtin_of_symbol(symbology: str, digits: str) -> str | None:
    """The GTIN, as AI (01) writes it (14 digits), that a symbol's number is by definition, or
    None where it is none or its check digit fails: an ITF-14 is the GTIN of a case or pallet;
    EAN-13 and UPC-A are GTIN-13 and GTIN-12, EAN-8 GTIN-8, UPC-E the GTIN-12 of its UPC-A
    (zxing-cpp 3 writes it out already; its 8 digits are written out here)."""
    if symbology == "ITF":
        return digits if len(digits) == 14 and check_digit_ok(digits) else None
    if symbology not in ("EAN13", "UPCA", "EAN8", "UPCE"):
        return None
    if symbology == "UPCE" and len(digits) == 8:
        expanded = upc_e_as_upc_a(digits)
        if expanded is None:
            return None
        digits = expanded
    if len(digits) not in (8, 12, 13) or not check_digit_ok(digits):
        return None
    return digits.zfill(14)


def _validate(ai: str, value: str) -> None:
    if ai not in _AIS:
        raise GS1Error(f"unknown application identifier ({ai})")
    fixed, longest, name = _AIS[ai]
    if fixed is not None and len(value) != fixed:
        raise GS1Error(f"({ai}) {name} must be {fixed} characters, got {len(value)}")
    if not 1 <= len(value) <= longest:
        raise GS1Error(f"({ai}) {name} must be 1-{longest} characters")
    if ai in _NUMERIC and not _digits(value):
        # A symbol's content is untrusted: "(17)AB0101" in a QR code is no date.
        raise GS1Error(f"({ai}) {name} {value!r} must be digits")
    if ai in _CHECKED and not check_digit_ok(value):
        raise GS1Error(f"({ai}) {name} {value} fails its check digit")
    if ai in _DATES:
        yy, mm, dd = int(value[:2]), int(value[2:4]), int(value[4:])
        try:
            date(2000 + yy, mm, dd or 1)  # day 00 means "end of month"
        except ValueError:
            raise GS1Error(f"({ai}) {name} {value} is not a date") from None


def parse(text: str) -> ElementString:
    """Parse an element string in HRI form or raw (with or without the ``]C1`` prefix)."""
    text = text.strip()
    values: dict[str, str] = {}
    if text.startswith("("):
        matched = _HRI.findall(text)
        if "".join(f"({a}){v}" for a, v in matched) != text:
            raise GS1Error("malformed element string")
        for ai, value in matched:
            _validate(ai, value)
            values[ai] = value
        return ElementString(values)
    for prefix in ("]C1", "]d2", "]Q3", GS):
        text = text.removeprefix(prefix)
    pos = 0
    while pos < len(text):
        ai = next((text[pos : pos + n] for n in (2, 3, 4) if text[pos : pos + n] in _AIS), None)
        if ai is None:
            raise GS1Error(f"unknown application identifier at {text[pos:pos + 4]!r}")
        pos += len(ai)
        fixed = _AIS[ai][0]
        if fixed is not None:
            value = text[pos : pos + fixed]
            pos += fixed
        else:
            end = text.find(GS, pos)
            end = len(text) if end < 0 else end
            value = text[pos:end]
            pos = end
        if pos < len(text) and text[pos] == GS:
            pos += 1
        _validate(ai, value)
        values[ai] = value
    if not values:
        raise GS1Error("empty element string")
    return ElementString(values)
