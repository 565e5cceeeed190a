"""EPC hex -> GS1 identity (SGTIN-96, SSCC-96), decoded once per distinct EPC.

`epcpy` does the decoding (about 40 µs a call), so `EpcDecoder` caches every answer: a reader
sees the same few thousand tags over and over, and only the first read of each costs anything.
Any other EPC (other GS1 schemes, proprietary encodings, random TID-like values) passes through
as hex with ``scheme=None``: an EPC we cannot decode is still a tag we track and count.

Lots can also be defined by a GS1 pattern in the EPC Tag Data Standard's id-pattern syntax,
with the ALE range extension for serials: ``urn:epc:idpat:sgtin:0614141.812345.*`` or
``urn:epc:idpat:sgtin:0614141.812345.[1-5000]``, ``urn:epc:idpat:sscc:0614141.*``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from epcpy import ConvertException, hex_to_tag_encodable

Scheme = Literal["sgtin-96", "sscc-96"]

_HEX = re.compile(r"^[0-9A-F]+$")
_SGTIN_96_HEADER = "30"
_SSCC_96_HEADER = "31"


class EpcError(ValueError):
    """The input is not an EPC at all (not hex, odd length, empty)."""


@dataclass(frozen=True, slots=True)
class DecodedEpc:
    epc: str  # upper-case hex as read from the tag
    scheme: Scheme | None  # None: passed through as hex
    uri: str | None = None  # pure-identity URI, urn:epc:id:...
    company_prefix: str | None = None
    item_reference: str | None = None  # SGTIN only
    serial: str | None = None  # SGTIN serial or SSCC serial reference
    gtin: str | None = None
    sscc: str | None = None
    filter_value: int | None = None
    note: str | None = None  # why a 0x30/0x31 header did not decode

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {"epc": self.epc, "scheme": self.scheme}
        out.update((k, getattr(self, k)) for k in self.__slots__ if getattr(self, k) is not None)
        return out


def normalize_epc(text: str) -> str:
    """Upper-case hex without separators; EpcError when it is not an EPC."""
    epc = text.strip().upper().replace(" ", "").replace(":", "").replace("-", "")
    if epc.startswith("0X"):
        epc = epc[2:]
    if not epc or not _HEX.match(epc) or len(epc) % 4:
        raise EpcError(f"not an EPC (hex digits, a multiple of 16 bits): {text!r}")
    return epc


def decode_epc(epc: str) -> DecodedEpc:
    """Decode one normalized EPC (no cache; use `EpcDecoder` on hot paths)."""
    header = epc[:2]
    if len(epc) != 24 or header not in (_SGTIN_96_HEADER, _SSCC_96_HEADER):
        return DecodedEpc(epc=epc, scheme=None)
    filter_value = (int(epc[2:4], 16) >> 5) & 0b111
    try:
        tag = hex_to_tag_encodable(epc)
        if header == _SGTIN_96_HEADER:
            return DecodedEpc(
                epc=epc,
                scheme="sgtin-96",
                uri=tag.epc_uri,
                company_prefix=tag._company_pref,  # type: ignore[attr-defined]
                item_reference=tag._item_ref,  # type: ignore[attr-defined]
                serial=tag._serial,  # type: ignore[attr-defined]
                gtin=tag.gs1_key(),  # type: ignore[attr-defined]
                filter_value=filter_value,
            )
        return DecodedEpc(
            epc=epc,
            scheme="sscc-96",
            uri=tag.epc_uri,
            company_prefix=tag._company_pref,  # type: ignore[attr-defined]
            serial=tag._serial,  # type: ignore[attr-defined]
            sscc=tag.gs1_key(),  # type: ignore[attr-defined]
            filter_value=filter_value,
        )
    except (ConvertException, ValueError) as err:
        # A reserved partition value or similar: still a tag, tracked by its hex.
        return DecodedEpc(epc=epc, scheme=None, note=str(err) or type(err).__name__)


class EpcDecoder:
    """`decode_epc` with a dictionary in front of it, bounded so a flood of random EPCs
    (a misbehaving reader) cannot grow memory without end."""

    def __init__(self, max_entries: int = 1_000_000) -> None:
        self._cache: dict[str, DecodedEpc] = {}
        self._max = max_entries
        self.misses = 0

    def decode(self, epc: str) -> DecodedEpc:
        found = self._cache.get(epc)
        if found is None:
            self.misses += 1
            found = decode_epc(epc)
            if len(self._cache) >= self._max:
                self._cache.clear()
            self._cache[epc] = found
        return found

    def __len__(self) -> int:
        return len(self._cache)


_PATTERN = re.compile(
    r"^urn:epc:idpat:(?P<scheme>sgtin|sscc):(?P<body>[0-9.\[\]*\-]+)$", re.IGNORECASE
)
_RANGE = re.compile(r"^\[(\d+)-(\d+)\]$")


@dataclass(frozen=True, slots=True)
class Gs1Pattern:
    """Company prefix + item reference + serial range; `serial_from/to` None means any."""

    scheme: Literal["sgtin", "sscc"]
    company_prefix: str
    item_reference: str | None = None
    serial_from: int | None = None
    serial_to: int | None = None

    @classmethod
    def parse(cls, text: str) -> Gs1Pattern:
        match = _PATTERN.match(text.strip())
        if not match:
            raise ValueError(
                f"not a GS1 id pattern (urn:epc:idpat:sgtin:CP.IR.SERIAL|*|[LO-HI]): {text!r}"
            )
        scheme = match["scheme"].lower()
        parts = match["body"].split(".")
        want = 3 if scheme == "sgtin" else 2
        if len(parts) != want or not parts[0].isdigit():
            raise ValueError(f"{scheme} pattern needs {want} dot-separated fields: {text!r}")
        item = parts[1] if scheme == "sgtin" else None
        if item is not None and not item.isdigit():
            raise ValueError(f"item reference must be digits: {text!r}")
        serial = parts[-1]
        low: int | None
        high: int | None
        if serial == "*":
            low = high = None
        elif serial.isdigit():
            low = high = int(serial)
        elif ranged := _RANGE.match(serial):
            low, high = int(ranged[1]), int(ranged[2])
            if low > high:
                raise ValueError(f"serial range is empty: {text!r}")
        else:
            raise ValueError(f"serial must be digits, * or [LO-HI]: {text!r}")
        return cls(scheme, parts[0], item, low, high)  # type: ignore[arg-type]

    @property
    def size(self) -> int | None:
        """How many identities the pattern names; None when unbounded."""
        if self.serial_from is None or self.serial_to is None:
            return None
        return self.serial_to - self.serial_from + 1

    def matches(self, decoded: DecodedEpc) -> bool:
        if decoded.scheme is None or not decoded.scheme.startswith(self.scheme):
            return False
        if decoded.company_prefix != self.company_prefix:
            return False
        if self.item_reference is not None and decoded.item_reference != self.item_reference:
            return False
        if self.serial_from is None or self.serial_to is None:
            return True
        serial = decoded.serial
        if serial is None or not serial.isdigit():
            return False
        return self.serial_from <= int(serial) <= self.serial_to
