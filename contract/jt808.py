"""JT/T 808 frames and message bodies (2013 edition, with the 2019 header where flagged).

A frame on the wire is ``7E | header | body | checksum | 7E``. The checksum is the XOR of
header and body; then 0x7E and 0x7D inside the frame are escaped as 7D 02 and 7D 01. The
header is: message id (WORD), body properties (WORD: bits 0-9 length, 10-12 encryption, 13
sub-packaged, 14 version flag of the 2019 edition), for 2019 a protocol version (BYTE), the
terminal's phone number (BCD[6], BCD[10] in 2019), a serial number (WORD) and, when
sub-packaged, the package count and index (WORD, WORD). All integers are big-endian; times are
BCD ``YYMMDDhhmmss`` in Beijing time (UTC+8); strings are GBK.

Everything here is bytes in, values out (and back): no sockets.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone

FLAG = 0x7E
ESCAPE = 0x7D
MAX_BODY = 0x3FF  # 10 bits of body length
# Longest escaped frame: every byte of a 2019 header (4 + 1 + 10 + 2 + 4) plus body and
# checksum doubled, plus the two flags.
MAX_FRAME = 2 * (21 + MAX_BODY + 1) + 2
BEIJING = timezone(timedelta(hours=8))


class MsgId:
    TERMINAL_RESPONSE = 0x0001
    HEARTBEAT = 0x0002
    REGISTER = 0x0100
    DEREGISTER = 0x0003
    AUTHENTICATE = 0x0102
    LOCATION = 0x0200
    LOCATION_BATCH = 0x0704
    PLATFORM_RESPONSE = 0x8001
    REGISTER_RESPONSE = 0x8100


class Result:
    """Result byte of the platform general response (0x8001)."""

    OK = 0
    FAILURE = 1
    MESSAGE_ERROR = 2
    NOT_SUPPORTED = 3
    ALARM_CONFIRMED = 4


class RegistrationResult:
    """Result byte of the registration response (0x8100)."""

    OK = 0
    VEHICLE_ALREADY_REGISTERED = 1
    NO_SUCH_VEHICLE = 2
    TERMINAL_ALREADY_REGISTERED = 3
    NO_SUCH_TERMINAL = 4


# Alarm flag bits of 0x0200 (JT/T 808-2013 table 24), as data.
ALARM_BITS: dict[int, str] = {
    0: "emergency",
    1: "overspeed",
    2: "fatigue_driving",
    3: "danger_warning",
    4: "gnss_module_fault",
    5: "gnss_antenna_disconnected",
    6: "gnss_antenna_short",
    7: "main_power_undervoltage",
    8: "main_power_off",
    9: "display_fault",
    10: "tts_fault",
    11: "camera_fault",
    12: "ic_card_fault",
    13: "overspeed_warning",
    14: "fatigue_warning",
    18: "driving_overtime_today",
    19: "parking_overtime",
    20: "area_in_out",
    21: "route_in_out",
    22: "route_time_abnormal",
    23: "route_deviation",
    24: "vss_fault",
    25: "fuel_abnormal",
    26: "vehicle_stolen",
    27: "illegal_ignition",
    28: "illegal_displacement",
    29: "collision_warning",
    30: "rollover_warning",
    31: "illegal_door_open",
}
# Status bits of 0x0200 (table 25) that matter here.
STATUS_ACC_ON = 1 << 0
STATUS_POSITIONED = 1 << 1
STATUS_SOUTH = 1 << 2
STATUS_WEST = 1 << 3
STATUS_BITS: dict[int, str] = {
    0: "acc_on",
    1: "positioned",
    4: "out_of_service",
    5: "coordinates_encrypted",
    10: "fuel_circuit_cut",
    11: "electric_circuit_cut",
    12: "doors_locked",
}


class MalformedFrame(ValueError):
    """The peer sent bytes that are not a valid frame; ``header`` is set when it could be read
    (so the platform can still answer with a general response)."""

    def __init__(self, reason: str, header: Header | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.header = header


@dataclass(frozen=True, slots=True)
class Header:
    msg_id: int
    phone: str  # the terminal's SIM number, digits
    serial: int
    body_length: int = 0
    encryption: int = 0
    version: int | None = None  # protocol version of the 2019 edition; None for 2011/2013
    packages: tuple[int, int] | None = None  # (count, index) when sub-packaged
    # Set when the header was read by a compatibility fallback (see ``decode_frame``).
    compat: str | None = None


@dataclass(frozen=True, slots=True)
class Frame:
    header: Header
    body: bytes


# -- escaping and checksum ---------------------------------------------------------------------


def escape(data: bytes) -> bytes:
    return data.replace(b"\x7d", b"\x7d\x01").replace(b"\x7e", b"\x7d\x02")


def unescape(data: bytes) -> bytes:
    if ESCAPE not in data:
        return data
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        byte = data[i]
        if byte == ESCAPE:
            if i + 1 >= n or data[i + 1] not in (0x01, 0x02):
                raise MalformedFrame(f"invalid escape sequence at byte {i}")
            out.append(0x7D if data[i + 1] == 0x01 else 0x7E)
            i += 2
        else:
            out.append(byte)
            i += 1
    return bytes(out)


def checksum(data: bytes) -> int:
    value = 0
    for byte in data:
        value ^= byte
    return value


# -- BCD ---------------------------------------------------------------------------------------


def bcd_encode(digits: str, size: int) -> bytes:
    if not digits.isdigit() or len(digits) > 2 * size:
        raise ValueError(f"{digits!r} is not at most {2 * size} decimal digits")
    return bytes.fromhex(digits.rjust(2 * size, "0"))


def bcd_decode(data: bytes) -> str:
    text = data.hex()
    if not text.isdigit():
        raise MalformedFrame(f"BCD field {text} has non-decimal nibbles")
    return text


def phone_of(data: bytes) -> str:
    """A terminal number without the BCD padding zeros (at least 11 digits kept)."""
    digits = bcd_decode(data).lstrip("0")
    return digits.rjust(11, "0")


def time_decode(data: bytes) -> int:
    """BCD[6] YYMMDDhhmmss in Beijing time -> microseconds since the Unix epoch (UTC)."""
    text = bcd_decode(data)
    try:
        local = datetime.strptime(text, "%y%m%d%H%M%S").replace(tzinfo=BEIJING)
    except ValueError:
        raise MalformedFrame(f"time {text} is not a valid YYMMDDhhmmss") from None
    return int(local.timestamp()) * 1_000_000


def time_encode(t_us: int) -> bytes:
    local = datetime.fromtimestamp(t_us // 1_000_000, UTC).astimezone(BEIJING)
    return bytes.fromhex(local.strftime("%y%m%d%H%M%S"))


# -- frames ------------------------------------------------------------------------------------


def encode_frame(header: Header, body: bytes) -> bytes:
    if len(body) > MAX_BODY:
        raise ValueError(f"body of {len(body)} bytes does not fit one package (max {MAX_BODY})")
    props = len(body) | (header.encryption & 0x7) << 10
    if header.packages is not None:
        props |= 1 << 13
    if header.version is not None:
        props |= 1 << 14
        raw = struct.pack(">HHB", header.msg_id, props, header.version)
        raw += bcd_encode(header.phone, 10)
    else:
        raw = struct.pack(">HH", header.msg_id, props) + bcd_encode(header.phone, 6)
    raw += struct.pack(">H", header.serial & 0xFFFF)
    if header.packages is not None:
        raw += struct.pack(">HH", *header.packages)
    raw += body
    return bytes([FLAG]) + escape(raw + bytes([checksum(raw)])) + bytes([FLAG])


def _decode_header(raw: bytes, *, layout_2019: bool | None = None) -> tuple[Header, int]:
    if len(raw) < 12:
        raise MalformedFrame(f"frame of {len(raw)} bytes is shorter than a header")
    msg_id, props = struct.unpack_from(">HH", raw)
    version: int | None = None
    if layout_2019 is None:
        layout_2019 = bool(props & (1 << 14))
    if layout_2019:
        if len(raw) < 17:
            raise MalformedFrame("2019 frame shorter than its header")
        version = raw[4]
        phone, offset = phone_of(raw[5:15]), 15
    else:
        phone, offset = phone_of(raw[4:10]), 10
    (serial,) = struct.unpack_from(">H", raw, offset)
    offset += 2
    packages = None
    if props & (1 << 13):
        if len(raw) < offset + 4:
            raise MalformedFrame("sub-packaged frame shorter than its header")
        packages = struct.unpack_from(">HH", raw, offset)
        offset += 4
    header = Header(
        msg_id=msg_id,
        phone=phone,
        serial=serial,
        body_length=props & MAX_BODY,
        encryption=(props >> 10) & 0x7,
        version=version,
        packages=packages,
    )
    return header, offset


def decode_frame(frame: bytes) -> Frame:
    """One frame, flags included or not. MalformedFrame says why it is refused."""
    if frame[:1] == b"\x7e":
        frame = frame[1:]
    if frame[-1:] == b"\x7e":
        frame = frame[:-1]
    raw = unescape(frame)
    if len(raw) < 13:
        raise MalformedFrame(f"frame of {len(raw)} bytes is too short")
    content, received = raw[:-1], raw[-1]
    try:
        header, offset = _decode_header(content)
    except (MalformedFrame, struct.error) as err:
        header, offset = _reserved_bit_14(content, err)
    if checksum(content) != received:
        raise MalformedFrame(
            f"checksum {received:#04x} does not match {checksum(content):#04x}", header
        )
    body = content[offset:]
    if len(body) != header.body_length and header.version is not None:
        # Field quirk: some 2013 terminals set bit 14 (reserved in 2013). When the frame only
        # adds up as a 2013 header, read it as one and say so (the session answers in kind).
        try:
            legacy, legacy_offset = _decode_header(content, layout_2019=False)
        except (MalformedFrame, struct.error):
            legacy_offset = -1
        if legacy_offset >= 0 and len(content) - legacy_offset == legacy.body_length:
            return Frame(header=_as_compat(legacy), body=content[legacy_offset:])
    if len(body) != header.body_length:
        raise MalformedFrame(
            f"body is {len(body)} bytes but the header says {header.body_length}", header
        )
    return Frame(header=header, body=body)


COMPAT_BIT_14 = "reserved_bit_14_on_2013_header"


def _as_compat(header: Header) -> Header:
    return Header(
        msg_id=header.msg_id,
        phone=header.phone,
        serial=header.serial,
        body_length=header.body_length,
        encryption=header.encryption,
        version=None,
        packages=header.packages,
        compat=COMPAT_BIT_14,
    )


def _reserved_bit_14(content: bytes, err: Exception) -> tuple[Header, int]:
    """A header unreadable as 2019 may be a 2013 one with bit 14 set (else: unreadable)."""
    if len(content) >= 4 and content[2] & 0x40:
        try:
            legacy, offset = _decode_header(content, layout_2019=False)
        except (MalformedFrame, struct.error):
            raise MalformedFrame(f"unreadable header: {err}") from None
        return _as_compat(legacy), offset
    raise MalformedFrame(f"unreadable header: {err}") from None


class FrameSplitter:
    """Cuts a TCP byte stream into frames between 0x7E flags (sans-I/O).

    Bytes before the first flag are discarded (a frame boundary is a flag); a run of bytes
    longer than any legal frame is dropped and reported, so a peer cannot grow the buffer.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._in_frame = False
        self.discarded_bytes = 0
        self.oversized_frames = 0

    def feed(self, data: bytes) -> list[bytes]:
        frames: list[bytes] = []
        start = 0
        while True:
            flag = data.find(b"\x7e", start)
            piece = data[start:] if flag < 0 else data[start:flag]
            if self._in_frame:
                self._buffer += piece
                if len(self._buffer) > MAX_FRAME:
                    self.oversized_frames += 1
                    self._buffer.clear()
                    self._in_frame = False
            else:
                self.discarded_bytes += len(piece)
            if flag < 0:
                return frames
            if self._in_frame and self._buffer:
                frames.append(bytes(self._buffer))
                self._buffer.clear()
            # A flag both ends one frame and may start the next (7E 7E between frames).
            self._in_frame = True
            start = flag + 1


# -- bodies ------------------------------------------------------------------------------------


def _is_text(raw: bytes) -> bool:
    try:
        text_field(raw, "")
    except MalformedFrame:
        return False
    return True


MAX_TEXT = 64  # characters of any text field kept (the longest fixed field is 30 bytes)


def text_field(data: bytes, name: str) -> str:
    """A GBK text field, its NUL (or space) padding removed. Text that PostgreSQL or a person
    could be fooled by (NUL or control characters inside, bytes that are not GBK, overlong) is
    refused here, so no session ever sends it to the database."""
    data = data.rstrip(b"\x00").strip()
    if b"\x00" in data:
        raise MalformedFrame(f"{name} has a NUL byte inside")
    try:
        text = data.decode("gbk")
    except UnicodeDecodeError:
        raise MalformedFrame(f"{name} is not GBK text") from None
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise MalformedFrame(f"{name} has control characters")
    if len(text) > MAX_TEXT:
        raise MalformedFrame(f"{name} is longer than {MAX_TEXT} characters")
    return text


@dataclass(frozen=True, slots=True)
class Registration:
    province: int
    city: int
    manufacturer: str
    model: str
    terminal_id: str
    plate_colour: int
    plate: str

    @classmethod
    def decode(cls, body: bytes, version: int | None) -> Registration:
        # 2013: 2 + 2 + 5 + 20 + 7 + 1; 2019: 2 + 2 + 11 + 30 + 30 + 1; 2011: model is 8 bytes
        sizes = (11, 30, 30) if version is not None else (5, 20, 7)
        fixed = 4 + sum(sizes) + 1
        if len(body) < fixed and version is None and len(body) >= 4 + 5 + 8 + 7 + 1:
            sizes = (5, 8, 7)  # 2011 edition
            fixed = 4 + sum(sizes) + 1
        if len(body) < fixed:
            raise MalformedFrame(f"registration body of {len(body)} bytes is too short")
        province, city = struct.unpack_from(">HH", body)
        i = 4
        fields = []
        for size, name in zip(sizes, ("manufacturer", "model", "terminal id"), strict=True):
            raw = body[i : i + size]
            if name == "terminal id" and any(raw) and not _is_text(raw):
                # Field quirk: some 2011 terminals put their number in BCD here. Compared as
                # its hex digits, so a provisioned binary ID still binds.
                fields.append("hex:" + raw.hex())
            else:
                fields.append(text_field(raw, name))
            i += size
        return cls(
            province=province,
            city=city,
            manufacturer=fields[0],
            model=fields[1],
            terminal_id=fields[2],
            plate_colour=body[i],
            plate=text_field(body[i + 1 :], "plate"),
        )

    def encode(self) -> bytes:
        def pad(text: str, size: int) -> bytes:
            return text.encode("gbk")[:size].ljust(size, b"\x00")

        return (
            struct.pack(">HH", self.province, self.city)
            + pad(self.manufacturer, 5)
            + pad(self.model, 20)
            + pad(self.terminal_id, 7)
            + bytes([self.plate_colour])
            + self.plate.encode("gbk")
        )


def decode_authentication(body: bytes, version: int | None) -> str:
    if version is not None:  # 2019: length-prefixed code, then IMEI and software version
        if not body or len(body) < 1 + body[0]:
            raise MalformedFrame("authentication body shorter than its code")
        return text_field(body[1 : 1 + body[0]], "authentication code")
    return text_field(body, "authentication code")


@dataclass(frozen=True, slots=True)
class Location:
    """A 0x0200 location report body."""

    alarm: int
    status: int
    lat: float
    lon: float
    altitude_m: int
    speed_kmh: float
    heading_deg: int
    t_us: int
    extras: dict[int, bytes] = field(default_factory=dict)
    # Bytes after the basic position that could not be read as items, set aside (with why)
    # rather than refusing a valid position: real terminals pad with zeros or overrun.
    set_aside: tuple[str, ...] = ()

    @property
    def alarms(self) -> list[str]:
        return [name for bit, name in ALARM_BITS.items() if self.alarm & (1 << bit)]

    @property
    def flags(self) -> list[str]:
        return [name for bit, name in STATUS_BITS.items() if self.status & (1 << bit)]

    @property
    def positioned(self) -> bool:
        return bool(self.status & STATUS_POSITIONED)

    @property
    def mileage_km(self) -> float | None:
        raw = self.extras.get(0x01)
        return struct.unpack(">I", raw)[0] / 10 if raw and len(raw) == 4 else None

    @property
    def satellites(self) -> int | None:
        raw = self.extras.get(0x31)
        return raw[0] if raw and len(raw) == 1 else None

    @classmethod
    def decode(cls, body: bytes) -> Location:
        if len(body) < 28:
            raise MalformedFrame(f"location body of {len(body)} bytes is shorter than 28")
        alarm, status, lat, lon, altitude, speed, heading = struct.unpack_from(">IIIIHHH", body)
        t_us = time_decode(body[22:28])
        extras, set_aside = _additional_items(body[28:])
        if lat > 90_000_000 or lon > 180_000_000:
            raise MalformedFrame(f"position {lat}, {lon} (1e-6 degrees) is out of range")
        return cls(
            alarm=alarm,
            status=status,
            lat=-lat / 1e6 if status & STATUS_SOUTH else lat / 1e6,
            lon=-lon / 1e6 if status & STATUS_WEST else lon / 1e6,
            altitude_m=struct.unpack(">h", struct.pack(">H", altitude))[0],
            speed_kmh=speed / 10,
            heading_deg=heading,
            t_us=t_us,
            extras=extras,
            set_aside=set_aside,
        )

    def encode(self) -> bytes:
        status = self.status & ~(STATUS_SOUTH | STATUS_WEST)
        status |= STATUS_SOUTH if self.lat < 0 else 0
        status |= STATUS_WEST if self.lon < 0 else 0
        body = struct.pack(
            ">IIIIhHH",
            self.alarm,
            status,
            round(abs(self.lat) * 1e6),
            round(abs(self.lon) * 1e6),
            self.altitude_m,
            round(self.speed_kmh * 10),
            self.heading_deg,
        ) + time_encode(self.t_us)
        for item, value in self.extras.items():
            body += bytes([item, len(value)]) + value
        return body


SET_ASIDE_PADDING = "zero_padding_after_location"
SET_ASIDE_OVERRUN = "additional_item_overruns_body"
SET_ASIDE_BATCH_ITEM = "unreadable_batch_item"


def _additional_items(data: bytes) -> tuple[dict[int, bytes], tuple[str, ...]]:
    """Additional information items (id, length, value) after the basic position. Reading
    stops at the first item that does not fit; the rest is set aside, not the position."""
    extras: dict[int, bytes] = {}
    i = 0
    while i < len(data):
        if not any(data[i:]):
            return extras, (SET_ASIDE_PADDING,)
        if i + 2 > len(data) or i + 2 + data[i + 1] > len(data):
            return extras, (SET_ASIDE_OVERRUN,)
        item, size = data[i], data[i + 1]
        extras[item] = data[i + 2 : i + 2 + size]
        i += 2 + size
    return extras, ()


@dataclass(frozen=True, slots=True)
class LocationBatch:
    """0x0704: several location bodies; kind 0 = normal batch, 1 = blind-area backfill."""

    kind: int
    locations: tuple[Location, ...]
    set_aside: tuple[str, ...] = ()  # one reason per item (or tail) that could not be read

    @classmethod
    def decode(cls, body: bytes) -> LocationBatch:
        """The readable items are kept; an unreadable item, or a count or length that runs
        past the body, is set aside (the good items of a batch are never lost with it)."""
        if len(body) < 3:
            raise MalformedFrame("batch body shorter than its count and type")
        count, kind = struct.unpack_from(">HB", body)
        i, items, set_aside = 3, [], []
        for _ in range(count):
            if i + 2 > len(body):
                set_aside.append(SET_ASIDE_BATCH_ITEM)
                break
            (size,) = struct.unpack_from(">H", body, i)
            if i + 2 + size > len(body):
                set_aside.append(SET_ASIDE_BATCH_ITEM)
                break
            try:
                items.append(Location.decode(body[i + 2 : i + 2 + size]))
            except MalformedFrame:
                set_aside.append(SET_ASIDE_BATCH_ITEM)
            i += 2 + size
        else:
            if i != len(body) and any(body[i:]):
                set_aside.append(SET_ASIDE_BATCH_ITEM)
        if not items and set_aside:
            raise MalformedFrame("no readable item in the 0x0704 batch")
        return cls(kind=kind, locations=tuple(items), set_aside=tuple(set_aside))

    def encode(self) -> bytes:
        body = struct.pack(">HB", len(self.locations), self.kind)
        for location in self.locations:
            item = location.encode()
            body += struct.pack(">H", len(item)) + item
        return body


@dataclass(frozen=True, slots=True)
class GeneralResponse:
    """0x0001 (terminal) and 0x8001 (platform): which message is answered, and how."""

    serial: int
    msg_id: int
    result: int

    @classmethod
    def decode(cls, body: bytes) -> GeneralResponse:
        if len(body) != 5:
            raise MalformedFrame(f"general response body is {len(body)} bytes, not 5")
        serial, msg_id, result = struct.unpack(">HHB", body)
        return cls(serial, msg_id, result)

    def encode(self) -> bytes:
        return struct.pack(">HHB", self.serial, self.msg_id, self.result)


@dataclass(frozen=True, slots=True)
class RegistrationResponse:
    """0x8100: result 0 success (with the authentication code), 1-4 refusals."""

    serial: int
    result: int
    auth_code: str = ""

    def encode(self) -> bytes:
        body = struct.pack(">HB", self.serial, self.result)
        return body + (self.auth_code.encode("gbk") if self.result == 0 else b"")

    @classmethod
    def decode(cls, body: bytes) -> RegistrationResponse:
        if len(body) < 3:
            raise MalformedFrame("registration response shorter than 3 bytes")
        serial, result = struct.unpack_from(">HB", body)
        return cls(serial, result, text_field(body[3:], "authentication code"))
