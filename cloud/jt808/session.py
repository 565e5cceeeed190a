"""One terminal's JT/T 808 conversation with the platform, as a sans-I/O state machine.

Theory of operation. ``receive(data)`` takes bytes from the socket and returns what happened
(events) and the bytes to send back. A connection belongs to one terminal (the phone number of
its first valid frame). The terminal registers (0x0100, answered by 0x8100 with an
authentication code), authenticates (0x0102) and then reports positions (0x0200, 0x0704) and
heartbeats (0x0002); each is answered with a platform general response (0x8001).

Terminals are provisioned, never self-registered: ``ProvisionedTerminals`` knows the terminals
an administrator provisioned for one site. A registration is accepted (and answered with the
terminal's code) only from a provisioned phone number whose registration carries the provisioned
terminal ID; an unknown number gets result 4, a number bound to another terminal ID (or one
given its code out of band) result 3. The code is never sent anywhere else.

A fix is dated by the terminal: one more than ``MAX_FUTURE_US`` ahead of the platform's clock or
older than ``MAX_PAST_US`` is refused and counted; so are additional items a report carries that
cannot be read (the position itself is kept). A terminal whose 2013 headers carry the reserved
bit 14 is read and answered as 2013 (``codec.COMPAT_BIT_14``), and noted once per connection.

Per the standard, a frame whose header can be read but which is otherwise wrong (checksum,
length, body layout) is answered with result 2 "message error"; one whose header cannot be
read is dropped. Encrypted and sub-packaged messages are answered "not supported"; positions
before authentication "failure". Every refusal is also an event, so the server logs it; no
input makes the session raise.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from contract.jt808 import (
    COMPAT_BIT_14,
    FrameSplitter,
    GeneralResponse,
    Header,
    Location,
    LocationBatch,
    MalformedFrame,
    MsgId,
    Registration,
    RegistrationResponse,
    RegistrationResult,
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


# Kinds of refusal, the bounded label of the server's counter (the reason text is for the log).
UNREADABLE_FRAME = "unreadable_frame"
MALFORMED_FRAME = "malformed_frame"
OVERSIZED_FRAME = "oversized_frame"
WRONG_PHONE = "phone_of_another_connection"
NOT_SUPPORTED = "not_supported"
UNAUTHENTICATED = "position_before_authentication"
REGISTRATION_REFUSED = "registration_refused"
AUTHENTICATION_REFUSED = "authentication_refused"
FIX_IN_FUTURE = "fix_dated_in_the_future"
FIX_TOO_OLD = "fix_dated_too_far_back"

MAX_FUTURE_US = 10 * 60 * 1_000_000  # GNSS time: a terminal ahead by more is broken or lying
MAX_PAST_US = 30 * 86_400 * 1_000_000  # blind-area backfill of a terminal offline for weeks


@dataclass(frozen=True, slots=True)
class Refused:
    phone: str | None
    msg_id: int | None
    reason: str
    kind: str = MALFORMED_FRAME


@dataclass(frozen=True, slots=True)
class SetAside:
    """Read but not placed (an item, a fix, a header quirk); the rest of the message is kept."""

    phone: str
    msg_id: int
    reason: str  # one of the codec's SET_ASIDE_* / COMPAT_* or FIX_* constants (bounded)


SessionEvent = Registered | Authenticated | Heartbeat | Positions | Refused | SetAside


class TerminalAuthority(Protocol):
    def register(self, phone: str, registration: Registration) -> tuple[int, str]:
        """(0x8100 result, authentication code: empty unless the result is 0)."""
        ...

    def authenticate(self, phone: str, code: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class ProvisionedTerminal:
    """A terminal an administrator provisioned for a site (``jt808_terminals``)."""

    phone: str
    site: str
    auth_code: str
    terminal_id: str | None = None  # None: the code was given to the terminal out of band
    lot: str | None = None
    report_interval_s: float = 600.0


class ProvisionedTerminals:
    """The ``TerminalAuthority`` of one site's server: only its provisioned terminals."""

    def __init__(self, terminals: Iterable[ProvisionedTerminal] = ()) -> None:
        self._by_phone = {t.phone: t for t in terminals}

    def replace(self, terminals: Iterable[ProvisionedTerminal]) -> None:
        """Take a fresh list (newly provisioned terminals; removed ones are refused)."""
        self._by_phone = {t.phone: t for t in terminals}

    def get(self, phone: str) -> ProvisionedTerminal | None:
        return self._by_phone.get(phone)

    def register(self, phone: str, registration: Registration) -> tuple[int, str]:
        terminal = self._by_phone.get(phone)
        if terminal is None:
            return RegistrationResult.NO_SUCH_TERMINAL, ""
        if terminal.terminal_id is None or not hmac.compare_digest(
            registration.terminal_id.encode(), terminal.terminal_id.encode()
        ):
            # Bound to another terminal (or to a code given out of band): a SIM number alone
            # proves nothing, so neither the binding nor the code is handed over.
            return RegistrationResult.TERMINAL_ALREADY_REGISTERED, ""
        return RegistrationResult.OK, terminal.auth_code

    def authenticate(self, phone: str, code: str) -> bool:
        terminal = self._by_phone.get(phone)
        if terminal is None:
            return False
        return hmac.compare_digest(code.encode(), terminal.auth_code.encode())


class Jt808Session:
    def __init__(self, authority: TerminalAuthority) -> None:
        self._authority = authority
        self._splitter = FrameSplitter()
        self._serial = 0
        self._now_us = 0
        self.phone: str | None = None
        self.authenticated = False
        self.compat: str | None = None  # the header quirk this terminal was read with

    def receive(self, data: bytes, now_us: int) -> tuple[list[SessionEvent], bytes]:
        """Bytes from the terminal at platform time ``now_us``: (events, bytes to send)."""
        self._now_us = now_us
        events: list[SessionEvent] = []
        out = bytearray()
        oversized = self._splitter.oversized_frames
        for raw in self._splitter.feed(data):
            self._handle(raw, events, out)
        if self._splitter.oversized_frames > oversized:
            events.append(
                Refused(
                    self.phone, None, "run of bytes longer than any frame dropped", OVERSIZED_FRAME
                )
            )
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
            kind = MALFORMED_FRAME if header is not None else UNREADABLE_FRAME
            events.append(Refused(header.phone if header else self.phone, None, err.reason, kind))
            return
        header = frame.header
        if self.phone is None:
            self.phone = header.phone
        elif header.phone != self.phone:
            self._answer(header, Result.FAILURE, out)
            events.append(
                Refused(
                    header.phone,
                    header.msg_id,
                    f"connection belongs to {self.phone}",
                    WRONG_PHONE,
                )
            )
            return
        if header.compat is not None and self.compat is None:
            self.compat = header.compat
            events.append(SetAside(header.phone, header.msg_id, COMPAT_BIT_14))
        if header.encryption or header.packages is not None:
            self._answer(header, Result.NOT_SUPPORTED, out)
            what = "encrypted" if header.encryption else "sub-packaged"
            events.append(
                Refused(
                    header.phone, header.msg_id, f"{what} messages not supported", NOT_SUPPORTED
                )
            )
            return
        try:
            self._dispatch(frame.header, frame.body, events, out)
        except MalformedFrame as err:
            self._answer(header, Result.MESSAGE_ERROR, out)
            events.append(Refused(header.phone, header.msg_id, err.reason, MALFORMED_FRAME))

    def _dispatch(
        self, header: Header, body: bytes, events: list[SessionEvent], out: bytearray
    ) -> None:
        msg_id, phone = header.msg_id, header.phone
        if msg_id == MsgId.REGISTER:
            registration = Registration.decode(body, header.version)
            result, code = self._authority.register(phone, registration)
            accepted = result == RegistrationResult.OK
            reply = RegistrationResponse(header.serial, result, code if accepted else "")
            self._send(header, MsgId.REGISTER_RESPONSE, reply.encode(), out)
            events.append(Registered(phone, registration, accepted=accepted))
            if not accepted:
                events.append(
                    Refused(phone, msg_id, f"registration refused ({result})", REGISTRATION_REFUSED)
                )
        elif msg_id == MsgId.AUTHENTICATE:
            code = decode_authentication(body, header.version)
            self.authenticated = self._authority.authenticate(phone, code)
            self._answer(header, Result.OK if self.authenticated else Result.FAILURE, out)
            events.append(Authenticated(phone, self.authenticated))
            if not self.authenticated:
                events.append(
                    Refused(phone, msg_id, "authentication refused", AUTHENTICATION_REFUSED)
                )
        elif msg_id == MsgId.HEARTBEAT:
            self._answer(header, Result.OK, out)
            events.append(Heartbeat(phone))
        elif msg_id in (MsgId.LOCATION, MsgId.LOCATION_BATCH):
            if not self.authenticated:
                self._answer(header, Result.FAILURE, out)
                events.append(
                    Refused(phone, msg_id, "position before authentication", UNAUTHENTICATED)
                )
                return
            if msg_id == MsgId.LOCATION:
                locations: tuple[Location, ...] = (Location.decode(body),)
                set_aside = list(locations[0].set_aside)
                backfill = False
            else:
                batch = LocationBatch.decode(body)
                locations, set_aside = batch.locations, list(batch.set_aside)
                backfill = batch.kind == 1
            kept = []
            for location in locations:
                set_aside += location.set_aside if msg_id == MsgId.LOCATION_BATCH else ()
                if location.t_us > self._now_us + MAX_FUTURE_US:
                    set_aside.append(FIX_IN_FUTURE)
                elif location.t_us < self._now_us - MAX_PAST_US:
                    set_aside.append(FIX_TOO_OLD)
                else:
                    kept.append(location)
            # The message was read: answered OK even when parts of it were set aside (the
            # terminal would otherwise resend the same bytes forever).
            self._answer(header, Result.OK, out)
            events += [SetAside(phone, msg_id, reason) for reason in set_aside]
            if kept:
                events.append(Positions(phone, tuple(kept), backfill=backfill))
        elif msg_id == MsgId.DEREGISTER:
            self.authenticated = False
            self._answer(header, Result.OK, out)
        elif msg_id == MsgId.TERMINAL_RESPONSE:
            GeneralResponse.decode(body)  # a terminal acknowledging us: nothing to answer
        else:
            self._answer(header, Result.NOT_SUPPORTED, out)
            events.append(Refused(phone, msg_id, f"message {msg_id:#06x} not supported"))
