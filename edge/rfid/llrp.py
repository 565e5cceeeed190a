"""LLRP bytes: message framing and the fast path for RO_ACCESS_REPORT / TagReportData.

Theory of operation (sans-I/O, like h11): `LlrpFramer.feed(bytes)` collects bytes from any
transport and returns complete `LlrpFrame`s; a frame whose header cannot be LLRP (wrong
version, a length shorter than the header or beyond `max_frame_bytes`) raises `LlrpFrameError`,
after which the stream is unusable and the owner reconnects. `parse_ro_access_report` turns one
RO_ACCESS_REPORT body into `TagReport` tuples.

Why not pyllrp for the reports: it builds a Python object per parameter through `bitstring` and
takes about 0.4 ms per report, too slow for a busy reader. pyllrp stays in charge of the control
messages (llrp_session.py); this module only reads what the tag stream needs and skips every
other parameter by its length (vendor ``Custom`` parameters included), which the tests check
against pyllrp on the same bytes.

Layouts (LLRP 1.0.1, section 4 and 16): message header = 3 reserved bits, 3 version bits,
10 type bits, u32 length (header included), u32 message id. A TV parameter has its type in one
byte with the top bit set and a fixed length per type; a TLV parameter has 6 reserved bits,
10 type bits and a u16 length (header included).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, NamedTuple

# Message types used by the edge and the simulator.
GET_READER_CAPABILITIES = 1
GET_READER_CONFIG = 2
SET_READER_CONFIG = 3
CLOSE_CONNECTION_RESPONSE = 4
GET_READER_CAPABILITIES_RESPONSE = 11
GET_READER_CONFIG_RESPONSE = 12
SET_READER_CONFIG_RESPONSE = 13
CLOSE_CONNECTION = 14
ADD_ROSPEC = 20
DELETE_ROSPEC = 21
START_ROSPEC = 22
STOP_ROSPEC = 23
ENABLE_ROSPEC = 24
DISABLE_ROSPEC = 25
GET_ROSPECS = 26
ADD_ROSPEC_RESPONSE = 30
DELETE_ROSPEC_RESPONSE = 31
START_ROSPEC_RESPONSE = 32
STOP_ROSPEC_RESPONSE = 33
ENABLE_ROSPEC_RESPONSE = 34
DISABLE_ROSPEC_RESPONSE = 35
GET_ROSPECS_RESPONSE = 36
RO_ACCESS_REPORT = 61
KEEPALIVE = 62
READER_EVENT_NOTIFICATION = 63
KEEPALIVE_ACK = 72
ERROR_MESSAGE = 100
CUSTOM_MESSAGE = 1023

# Parameter types the fast path reads.
TV_ANTENNA_ID = 1
TV_FIRST_SEEN_UTC = 2
TV_LAST_SEEN_UTC = 4
TV_PEAK_RSSI = 6
TV_TAG_SEEN_COUNT = 8
TV_EPC_96 = 13
TLV_TAG_REPORT_DATA = 240
TLV_EPC_DATA = 241
TLV_CUSTOM = 1023
IMPINJ_VENDOR_ID = 25882
IMPINJ_PEAK_RSSI_SUBTYPE = 57  # ImpinjPeakRSSI: s16 in centi-dBm, finer than PeakRSSI

# Total length (type byte included) of every TV parameter LLRP 1.0.1 defines; a TV type not
# listed here cannot be skipped, so it makes the report unreadable.
TV_LENGTHS: dict[int, int] = {
    1: 3,  # AntennaID
    2: 9,  # FirstSeenTimestampUTC
    3: 9,  # FirstSeenTimestampUptime
    4: 9,  # LastSeenTimestampUTC
    5: 9,  # LastSeenTimestampUptime
    6: 2,  # PeakRSSI
    7: 3,  # ChannelIndex
    8: 3,  # TagSeenCount
    9: 5,  # ROSpecID
    10: 3,  # InventoryParameterSpecID
    11: 3,  # C1G2_CRC
    12: 3,  # C1G2_PC
    13: 13,  # EPC-96
    14: 3,  # SpecIndex
    15: 3,  # ClientRequestOpSpecResult
    16: 5,  # AccessSpecID
    17: 3,  # OpSpecID
    18: 5,  # C1G2SingulationDetails
    19: 3,  # C1G2XPCW1
    20: 3,  # C1G2XPCW2
}
_TV_SKIP: list[int] = [0] * 128
for _code, _length in TV_LENGTHS.items():
    _TV_SKIP[_code] = _length

# struct format of each TV parameter's value, for the cached-layout fast path
_TV_FORMATS: dict[int, str] = {
    1: "H", 2: "Q", 3: "Q", 4: "Q", 5: "Q", 6: "b", 7: "H", 8: "H", 9: "I", 10: "H",
    11: "H", 12: "H", 13: "12s", 14: "H", 15: "H", 16: "I", 17: "H", 18: "I", 19: "H", 20: "H",
}


class _Layout(NamedTuple):
    """A TagReportData made only of TV parameters, in one order: readers repeat the same
    layout for every tag, so after the first one a single struct unpack reads the next."""

    length: int
    unpack: Any  # struct.Struct.unpack_from
    codes: tuple[int, ...]  # type bytes, top bit set, as unpack returns them
    epc: int  # index of each field in the unpacked tuple, -1 when absent
    antenna: int
    rssi: int
    first: int
    last: int
    seen_count: int


_LAYOUTS: dict[tuple[int, ...], _Layout] = {}


def _layout(codes: tuple[int, ...]) -> _Layout | None:
    found = _LAYOUTS.get(codes)
    if found is not None or TV_EPC_96 not in codes or len(_LAYOUTS) > 64:
        return found
    compiled = struct.Struct(">4x" + "".join("B" + _TV_FORMATS[c] for c in codes))

    def where(code: int) -> int:
        return 2 * codes.index(code) + 1 if code in codes else -1

    found = _Layout(
        4 + sum(TV_LENGTHS[c] for c in codes),
        compiled.unpack_from,
        tuple(0x80 | c for c in codes),
        where(TV_EPC_96),
        where(TV_ANTENNA_ID),
        where(TV_PEAK_RSSI),
        where(TV_FIRST_SEEN_UTC),
        where(TV_LAST_SEEN_UTC),
        where(TV_TAG_SEEN_COUNT),
    )
    _LAYOUTS[codes] = found
    return found


HEADER_BYTES = 10
SUPPORTED_VERSIONS = (1, 2)  # 1.0.1 and 1.1 share the report layout
DEFAULT_MAX_FRAME_BYTES = 4 * 1024 * 1024

_HEADER = struct.Struct(">HII")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_I16 = struct.Struct(">h")


class LlrpFrameError(ValueError):
    """The byte stream is not (or no longer) LLRP: the connection must be dropped.

    ``frames`` holds the whole messages cut before the bad header, so nothing good is lost.
    """

    def __init__(self, message: str, frames: list[LlrpFrame] | None = None) -> None:
        super().__init__(message)
        self.frames = frames or []


class LlrpReportError(ValueError):
    """One report's body is malformed; frames around it are still usable."""


@dataclass(frozen=True, slots=True)
class LlrpFrame:
    msg_type: int
    msg_id: int
    version: int
    raw: bytes  # the whole message, header included (what pyllrp unpacks)

    @property
    def body(self) -> memoryview:
        return memoryview(self.raw)[HEADER_BYTES:]


class TagReport(NamedTuple):
    """One TagReportData: what a reader said about one tag. None = not reported."""

    epc: str  # upper-case hex
    antenna: int | None
    rssi_cdbm: int | None  # PeakRSSI x 100, or ImpinjPeakRSSI as sent
    first_seen_us: int | None  # FirstSeenTimestampUTC
    last_seen_us: int | None  # LastSeenTimestampUTC
    seen_count: int | None  # TagSeenCount


def frame_header(msg_type: int, msg_id: int, body_len: int, version: int = 1) -> bytes:
    return _HEADER.pack((version << 10) | msg_type, HEADER_BYTES + body_len, msg_id)


def encode_message(msg_type: int, msg_id: int, body: bytes = b"", version: int = 1) -> bytes:
    return frame_header(msg_type, msg_id, len(body), version) + body


class LlrpFramer:
    """Cuts a TCP byte stream into LLRP messages."""

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        self._buffer = bytearray()
        self._max = max_frame_bytes

    def feed(self, data: bytes) -> list[LlrpFrame]:
        buffer = self._buffer
        buffer += data
        frames: list[LlrpFrame] = []
        start = 0
        end = len(buffer)
        while end - start >= HEADER_BYTES:
            word, length, msg_id = _HEADER.unpack_from(buffer, start)
            version = (word >> 10) & 0b111
            if version not in SUPPORTED_VERSIONS or word >> 13:
                del buffer[:start]
                raise LlrpFrameError(
                    f"not an LLRP header at byte {start} (version {version}, word {word:#06x})",
                    frames,
                )
            if length < HEADER_BYTES or length > self._max:
                del buffer[:start]
                raise LlrpFrameError(
                    f"LLRP message length {length} outside [{HEADER_BYTES}, {self._max}]",
                    frames,
                )
            if end - start < length:
                break
            frames.append(
                LlrpFrame(word & 0x3FF, msg_id, version, bytes(buffer[start : start + length]))
            )
            start += length
        del buffer[:start]
        return frames

    @property
    def pending_bytes(self) -> int:
        """Bytes of an incomplete message; non-zero at end of stream means truncation."""
        return len(self._buffer)


def split_messages(data: bytes, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> list[LlrpFrame]:
    """All messages in a capture; LlrpFrameError if it ends inside one."""
    framer = LlrpFramer(max_frame_bytes)
    frames = framer.feed(data)
    if framer.pending_bytes:
        raise LlrpFrameError(f"capture ends inside a message ({framer.pending_bytes} bytes left)")
    return frames


def parse_ro_access_report(raw: bytes, start: int = HEADER_BYTES) -> list[TagReport]:
    """TagReportData parameters of one RO_ACCESS_REPORT (``raw`` = the whole message).

    Every other parameter (RFSurveyReportData, Custom, ...) is skipped by its length.
    """
    end = len(raw)
    if end >= HEADER_BYTES:
        declared = _U32.unpack_from(raw, 2)[0]
        if declared != end:
            raise LlrpReportError(f"message length field {declared} but {end} bytes")
    reports: list[TagReport] = []
    append = reports.append
    pos = start
    new_report = tuple.__new__
    layout: _Layout | None = None
    u64 = _U64.unpack_from
    skip = _TV_SKIP
    while pos < end:
        if end - pos < 4:
            raise LlrpReportError(f"truncated parameter header at byte {pos}")
        word = (raw[pos] << 8) | raw[pos + 1]
        length = (raw[pos + 2] << 8) | raw[pos + 3]
        if word & 0x8000:
            raise LlrpReportError(f"TV parameter {word >> 8 & 0x7F} at report level, byte {pos}")
        stop = pos + length
        if length < 4 or stop > end:
            raise LlrpReportError(f"parameter length {length} at byte {pos} overruns the report")
        if word & 0x3FF != TLV_TAG_REPORT_DATA:
            pos = stop
            continue
        # TagReportData, inlined: this loop is the reader's whole tag stream.
        if layout is not None and length == layout.length:
            values = layout.unpack(raw, pos)
            if values[0::2] == layout.codes:
                i = layout.rssi
                append(
                    new_report(
                        TagReport,
                        (
                            values[layout.epc].hex().upper(),
                            values[layout.antenna] if layout.antenna >= 0 else None,
                            values[i] * 100 if i >= 0 else None,
                            values[layout.first] if layout.first >= 0 else None,
                            values[layout.last] if layout.last >= 0 else None,
                            values[layout.seen_count] if layout.seen_count >= 0 else None,
                        ),
                    )
                )
                pos = stop
                continue
        at = pos + 4
        epc = ""
        antenna = rssi = first = last = count = impinj_rssi = None
        codes: list[int] | None = []
        while at < stop:
            code = raw[at]
            if code & 0x80:
                code &= 0x7F
                if codes is not None:
                    codes.append(code)
                step = skip[code]
                if not step:
                    raise LlrpReportError(f"unknown TV parameter type {code} at byte {at}")
                if at + step > stop:
                    raise LlrpReportError(f"TV parameter {code} overruns TagReportData at {at}")
                if code == TV_EPC_96:
                    epc = raw[at + 1 : at + 13].hex().upper()
                elif code == TV_ANTENNA_ID:
                    antenna = (raw[at + 1] << 8) | raw[at + 2]
                elif code == TV_PEAK_RSSI:
                    value = raw[at + 1]
                    rssi = (value - 256 if value > 127 else value) * 100
                elif code == TV_FIRST_SEEN_UTC:
                    first = u64(raw, at + 1)[0]
                elif code == TV_LAST_SEEN_UTC:
                    last = u64(raw, at + 1)[0]
                elif code == TV_TAG_SEEN_COUNT:
                    count = (raw[at + 1] << 8) | raw[at + 2]
                at += step
                continue
            codes = None  # a TLV inside: no fixed layout
            if stop - at < 4:
                raise LlrpReportError(f"truncated parameter header in TagReportData at {at}")
            ptype = ((code << 8) | raw[at + 1]) & 0x3FF
            plen = (raw[at + 2] << 8) | raw[at + 3]
            if plen < 4 or at + plen > stop:
                raise LlrpReportError(f"parameter {ptype} length {plen} overruns TagReportData")
            if ptype == TLV_EPC_DATA:
                if plen < 6:
                    raise LlrpReportError(f"EPCData too short at byte {at}")
                bits = (raw[at + 4] << 8) | raw[at + 5]
                nbytes = (bits + 7) >> 3
                if 6 + nbytes > plen:
                    raise LlrpReportError(f"EPCData says {bits} bits but holds {plen - 6} bytes")
                epc = raw[at + 6 : at + 6 + nbytes].hex().upper()
            elif (
                ptype == TLV_CUSTOM
                and plen >= 14
                and _U32.unpack_from(raw, at + 4)[0] == IMPINJ_VENDOR_ID
                and _U32.unpack_from(raw, at + 8)[0] == IMPINJ_PEAK_RSSI_SUBTYPE
            ):
                impinj_rssi = _I16.unpack_from(raw, at + 12)[0]
            at += plen
        if not epc:
            raise LlrpReportError(f"TagReportData without an EPC parameter at byte {pos}")
        if impinj_rssi is not None:
            rssi = impinj_rssi
        append(new_report(TagReport, (epc, antenna, rssi, first, last, count)))
        if codes:
            layout = _layout(tuple(codes))
        pos = stop
    return reports


# -- encoding: what the simulated reader sends, and test vectors ---------------------------


def encode_tag_report_data(
    epc: str,
    *,
    antenna: int | None = None,
    peak_rssi_dbm: int | None = None,
    first_seen_us: int | None = None,
    last_seen_us: int | None = None,
    seen_count: int | None = None,
    custom: bytes = b"",
) -> bytes:
    """One TagReportData parameter, fields in the order LLRP requires.

    ``custom``: already-encoded trailing parameters (vendor Custom parameters in tests).
    """
    epc_bytes = bytes.fromhex(epc)
    if len(epc_bytes) == 12:
        out = bytearray(b"\x8d" + epc_bytes)
    else:
        out = bytearray(
            struct.pack(">HHH", TLV_EPC_DATA, 6 + len(epc_bytes), len(epc_bytes) * 8) + epc_bytes
        )
    if antenna is not None:
        out += struct.pack(">BH", 0x80 | TV_ANTENNA_ID, antenna)
    if peak_rssi_dbm is not None:
        out += struct.pack(">Bb", 0x80 | TV_PEAK_RSSI, peak_rssi_dbm)
    if first_seen_us is not None:
        out += struct.pack(">BQ", 0x80 | TV_FIRST_SEEN_UTC, first_seen_us)
    if last_seen_us is not None:
        out += struct.pack(">BQ", 0x80 | TV_LAST_SEEN_UTC, last_seen_us)
    if seen_count is not None:
        out += struct.pack(">BH", 0x80 | TV_TAG_SEEN_COUNT, seen_count)
    out += custom
    return struct.pack(">HH", TLV_TAG_REPORT_DATA, 4 + len(out)) + bytes(out)


def encode_custom_parameter(vendor: int, subtype: int, data: bytes) -> bytes:
    return struct.pack(">HHII", TLV_CUSTOM, 12 + len(data), vendor, subtype) + data


def encode_ro_access_report(msg_id: int, tag_report_data: list[bytes], version: int = 1) -> bytes:
    return encode_message(RO_ACCESS_REPORT, msg_id, b"".join(tag_report_data), version)
