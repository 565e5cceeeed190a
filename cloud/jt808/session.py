"""One terminal's JT/T 808 conversation with the platform, as a sans-I/O state machine.

Theory of operation. ``receive(data)`` takes bytes from the socket and returns what happened
(events) and the bytes to send back. A connection belongs to one terminal (the phone number of
its first valid frame). The terminal registers (0x0100, answered by 0x8100 with an
authentication code), authenticates (0x0102) and then reports positions (0x0200, 0x0704) and
heartbeats (0x0002); each is answered with a platform general response (0x8001).

Per the standard, a frame whose header can be read but which is otherwise wrong (checksum,
length, body layout) is answered with result 2 "message error"; one whose header cannot be
read is dropped. Encrypted and sub-packaged messages are answered "not supported"; positions
before authentication "failure". Every refusal is also an event, so the server logs it; no
input makes the session raise.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Protocol

from cloud.jt808.codec import (
    FrameSplitter,
    GeneralResponse,
    Header,
    Location,
    LocationBatch,
    MalformedFrame,
    MsgId,
    Registration,
    RegistrationResponse,
    Result,
    decode_authentication,
    decode_frame,
    encode_frame,
)


@dataclass(frozen=True, slots=True)
class Registered:
    phone: str
    registration: Registration
    accepted: bool


@dataclass(frozen=True, slots=True)
class Authenticated:
    phone: str
    accepted: bool


@dataclass(frozen=True, slots=True)
class Heartbeat:
    phone: str


@dataclass(frozen=True, slots=True)
class Positions:
    phone: str
    locations: tuple[Location, ...]
    backfill: bool  # 0x0704 type 1: positions stored while the terminal had no network


@dataclass(frozen=True, slots=True)
class Refused:
    phone: str | None
    msg_id: int | None
    reason: str


SessionEvent = Registered | Authenticated | Heartbeat | Positions | Refused


class TerminalAuthority(Protocol):
    def register(self, phone: str, registration: Registration) -> tuple[int, str]:
        """(0x8100 result, authentication code)."""
        ...

    def authenticate(self, phone: str, code: str) -> bool: ...


class HmacAuthority:
    """Authentication codes derived from a platform secret: HMAC-SHA256(secret, phone).

    Nothing to store per terminal, and a code survives platform restarts. ``allowed`` limits
    registration to known terminal numbers (result 4, "no such terminal", otherwise).
    """

    def __init__(self, secret: bytes, allowed: frozenset[str] | None = None) -> None:
        if len(secret) < 16:
            raise ValueError("the JT/T 808 secret must be at least 16 bytes")
        self._secret = secret
        self._allowed = allowed

    def code_for(self, phone: str) -> str:
        return hmac.new(self._secret, phone.encode(), hashlib.sha256).hexdigest()[:16]

    def register(self, phone: str, registration: Registration) -> tuple[int, str]:
        if self._allowed is not None and phone not in self._allowed:
            return 4, ""
        return 0, self.code_for(phone)

    def authenticate(self, phone: str, code: str) -> bool:
        if self._allowed is not None and phone not in self._allowed:
            return False
        return hmac.compare_digest(code, self.code_for(phone))


class Jt808Session:
    def __init__(self, authority: TerminalAuthority) -> None:
        self._authority = authority
        self._splitter = FrameSplitter()
        self._serial = 0
        self.phone: str | None = None
        self.authenticated = False

    def receive(self, data: bytes) -> tuple[list[SessionEvent], bytes]:
        events: list[SessionEvent] = []
        out = bytearray()
        oversized = self._splitter.oversized_frames
        for raw in self._splitter.feed(data):
            self._handle(raw, events, out)
        if self._splitter.oversized_frames > oversized:
            events.append(Refused(self.phone, None, "run of bytes longer than any frame dropped"))
        return events, bytes(out)

    # -- internals --------------------------------------------------------------------------

    def _send(self, request: Header, msg_id: int, body: bytes, out: bytearray) -> None:
        self._serial = (self._serial + 1) & 0xFFFF
        header = Header(
            msg_id=msg_id, phone=request.phone, serial=self._serial, version=request.version
        )
        out += encode_frame(header, body)

    def _answer(self, request: Header, result: int, out: bytearray) -> None:
        body = GeneralResponse(request.serial, request.msg_id, result).encode()
        self._send(request, MsgId.PLATFORM_RESPONSE, body, out)

    def _handle(self, raw: bytes, events: list[SessionEvent], out: bytearray) -> None:
        try:
            frame = decode_frame(raw)
        except MalformedFrame as err:
            header = err.header
            if header is not None and header.msg_id not in (
                MsgId.TERMINAL_RESPONSE,
                MsgId.PLATFORM_RESPONSE,
            ):
                self._answer(header, Result.MESSAGE_ERROR, out)
            events.append(Refused(header.phone if header else self.phone, None, err.reason))
            return
        header = frame.header
        if self.phone is None:
            self.phone = header.phone
        elif header.phone != self.phone:
            self._answer(header, Result.FAILURE, out)
            events.append(
                Refused(header.phone, header.msg_id, f"connection belongs to {self.phone}")
            )
            return
        if header.encryption or header.packages is not None:
            self._answer(header, Result.NOT_SUPPORTED, out)
            what = "encrypted" if header.encryption else "sub-packaged"
            events.append(Refused(header.phone, header.msg_id, f"{what} messages not supported"))
            return
        try:
            self._dispatch(frame.header, frame.body, events, out)
        except MalformedFrame as err:
            self._answer(header, Result.MESSAGE_ERROR, out)
            events.append(Refused(header.phone, header.msg_id, err.reason))

    def _dispatch(
        self, header: Header, body: bytes, events: list[SessionEvent], out: bytearray
    ) -> None:
        msg_id, phone = header.msg_id, header.phone
        if msg_id == MsgId.REGISTER:
            registration = Registration.decode(body, header.version)
            result, code = self._authority.register(phone, registration)
            reply = RegistrationResponse(header.serial, result, code).encode()
            self._send(header, MsgId.REGISTER_RESPONSE, reply, out)
            events.append(Registered(phone, registration, accepted=result == 0))
        elif msg_id == MsgId.AUTHENTICATE:
            code = decode_authentication(body, header.version)
            self.authenticated = self._authority.authenticate(phone, code)
            self._answer(header, Result.OK if self.authenticated else Result.FAILURE, out)
            events.append(Authenticated(phone, self.authenticated))
        elif msg_id == MsgId.HEARTBEAT:
            self._answer(header, Result.OK, out)
            events.append(Heartbeat(phone))
        elif msg_id in (MsgId.LOCATION, MsgId.LOCATION_BATCH):
            if not self.authenticated:
                self._answer(header, Result.FAILURE, out)
                events.append(Refused(phone, msg_id, "position before authentication"))
                return
            if msg_id == MsgId.LOCATION:
                positions = Positions(phone, (Location.decode(body),), backfill=False)
            else:
                batch = LocationBatch.decode(body)
                positions = Positions(phone, batch.locations, backfill=batch.kind == 1)
            self._answer(header, Result.OK, out)
            events.append(positions)
        elif msg_id == MsgId.DEREGISTER:
            self.authenticated = False
            self._answer(header, Result.OK, out)
        elif msg_id == MsgId.TERMINAL_RESPONSE:
            GeneralResponse.decode(body)  # a terminal acknowledging us: nothing to answer
        else:
            self._answer(header, Result.NOT_SUPPORTED, out)
            events.append(Refused(phone, msg_id, f"message {msg_id:#06x} not supported"))
