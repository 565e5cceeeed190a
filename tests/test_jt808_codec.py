"""JT/T 808 frames against the standard's layouts: escaping, checksum, header, 0x0200, 0x0704,
and the platform's answers to good and bad frames."""

from __future__ import annotations

import random
import struct
from datetime import UTC, datetime

import pytest

from cloud.jt808.session import (
    Authenticated,
    Jt808Session,
    Positions,
    ProvisionedTerminal,
    ProvisionedTerminals,
    Refused,
    Registered,
    SetAside,
)
from contract.jt808 import (
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
    checksum,
    decode_frame,
    encode_frame,
    escape,
    unescape,
)

PHONE = "13800138000"

# 0x0200 written out by hand from JT/T 808-2013 section 8.18 (not produced by the encoder):
# alarm = emergency (bit 0), status = positioned (bit 1), lat 31.350000, lon 121.590000,
# altitude 126 m (0x007E, must be escaped), speed 12.5 km/h (0x007D, escaped), heading 90,
# time 2026-05-28 10:00:00 Beijing, extras: 0x01 mileage 1234.5 km, 0x31 nine satellites.
LOCATION_BODY = bytes.fromhex(
    # alarm   status   lat      lon      alt  speed head time (BCD)    0x01 mileage  0x31 sats
    "00000001 00000002 01de5cf0 073f50f0 007e 007d 005a 260528100000 0104 00003039 3101 09"
)
# id 0x0200, properties: body length 37, phone BCD 013800138000, serial 7
LOCATION_HEADER = bytes.fromhex("0200 0025 013800138000 0007")


def _wire(content: bytes) -> bytes:
    """Frame by the standard's recipe: checksum over header+body, then escape, then flags."""
    xor = 0
    for b in content:
        xor ^= b
    return b"\x7e" + escape(content + bytes([xor])) + b"\x7e"


def test_escape_example_from_the_standard():
    # JT/T 808 4.4.2: content 30 7E 08 7D 55 is sent as 7E 30 7D 02 08 7D 01 55 7E.
    assert escape(bytes.fromhex("307e087d55")) == bytes.fromhex("307d02087d0155")
    assert unescape(bytes.fromhex("307d02087d0155")) == bytes.fromhex("307e087d55")
    with pytest.raises(MalformedFrame, match="escape"):
        unescape(bytes.fromhex("307d03"))


def test_location_report_decodes_per_the_standard_layout():
    wire = _wire(LOCATION_HEADER + LOCATION_BODY)
    assert b"\x7d\x02" in wire and b"\x7d\x01" in wire  # 0x7E / 0x7D inside were escaped
    frame = decode_frame(wire)
    assert frame.header == Header(msg_id=0x0200, phone=PHONE, serial=7, body_length=37)
    location = Location.decode(frame.body)
    assert location.lat == pytest.approx(31.35)
    assert location.lon == pytest.approx(121.59)
    assert location.altitude_m == 126
    assert location.speed_kmh == pytest.approx(12.5)
    assert location.heading_deg == 90
    assert location.t_us == int(datetime(2026, 5, 28, 2, 0, tzinfo=UTC).timestamp() * 1e6)
    assert location.alarms == ["emergency"]
    assert location.positioned
    assert location.mileage_km == pytest.approx(1234.5)
    assert location.satellites == 9
    # And the encoder produces exactly the same bytes.
    assert encode_frame(Header(0x0200, PHONE, 7), location.encode()) == wire


def test_south_and_west_use_status_bits():
    location = Location(0, 2, -33.86, -70.65, 10, 0, 0, 1_780_000_000_000_000)
    body = location.encode()
    (status,) = struct.unpack_from(">I", body, 4)
    assert status & 0b1100 == 0b1100
    back = Location.decode(body)
    assert (back.lat, back.lon) == (pytest.approx(-33.86), pytest.approx(-70.65))


def test_wrong_checksum_is_refused_with_the_header_read():
    wire = bytearray(_wire(LOCATION_HEADER + LOCATION_BODY))
    wire[-2] ^= 0xFF  # the checksum byte (not an escaped one here)
    with pytest.raises(MalformedFrame, match="checksum") as caught:
        decode_frame(bytes(wire))
    assert caught.value.header is not None
    assert caught.value.header.serial == 7


def test_body_length_must_match_the_header():
    header = bytes.fromhex("0200 0030 013800138000 0007")  # says 48, body is 37
    with pytest.raises(MalformedFrame, match="header says 48"):
        decode_frame(_wire(header + LOCATION_BODY))


def test_batch_0704_round_trips_and_keeps_the_good_items_of_a_short_batch():
    one = Location.decode(LOCATION_BODY)
    two = Location(0, 2, 31.351, 121.591, 5, 30.0, 180, one.t_us + 30_000_000)
    batch = LocationBatch(kind=1, locations=(one, two))
    body = batch.encode()
    assert body[:3] == bytes.fromhex("000201")
    assert body[3:5] == struct.pack(">H", len(LOCATION_BODY))
    assert LocationBatch.decode(body) == batch
    # Issue 20: a batch cut short keeps its readable items and sets the rest aside.
    short = LocationBatch.decode(body[: 3 + 2 + len(LOCATION_BODY)])
    assert short.locations == (one,)
    assert short.set_aside == ("unreadable_batch_item",)
    # An unreadable item in the middle does not take its neighbours with it.
    bad = bytearray(body)
    bad[5 + 22] = 0xAA  # month nibble of the first item's time: not BCD
    partial = LocationBatch.decode(bytes(bad))
    assert partial.locations == (two,) and partial.set_aside == ("unreadable_batch_item",)
    with pytest.raises(MalformedFrame, match="no readable item"):
        LocationBatch.decode(bytes(bad)[: 3 + 2 + len(LOCATION_BODY)])


def test_2019_header_with_version_and_ten_byte_phone():
    header = Header(MsgId.HEARTBEAT, "13800138000", 3, version=1)
    wire = encode_frame(header, b"")
    raw = unescape(wire[1:-1])
    assert raw[:5] == bytes.fromhex("0002400001")  # bit 14 = version flag
    assert raw[5:15] == bytes.fromhex("00000000013800138000")
    assert decode_frame(wire).header == Header(MsgId.HEARTBEAT, PHONE, 3, version=1)


def test_splitter_handles_chunks_shared_flags_and_junk():
    a = encode_frame(Header(MsgId.HEARTBEAT, PHONE, 1), b"")
    b = encode_frame(Header(MsgId.HEARTBEAT, PHONE, 2), b"")
    stream = b"junk" + a + b + a[:5]
    splitter = FrameSplitter()
    frames = []
    for i in range(0, len(stream), 3):
        frames += splitter.feed(stream[i : i + 3])
    assert [decode_frame(f).header.serial for f in frames] == [1, 2]
    assert splitter.discarded_bytes == 4
    # Shared flag between frames (7E ... 7E ... 7E) also works.
    assert len(FrameSplitter().feed(a + b[1:])) == 2
    big = FrameSplitter()
    assert big.feed(b"\x7e" + b"\x00" * 5000) == []
    assert big.oversized_frames == 1


# -- the session: what the platform answers ---------------------------------------------------


def _responses(data: bytes) -> list[tuple[int, bytes]]:
    return [
        (f.header.msg_id, f.body) for f in (decode_frame(raw) for raw in FrameSplitter().feed(data))
    ]


REGISTRATION = Registration(31, 115, "PWSIM", "GT-808", "T000001", 1, "沪A12345")
CODE = "code-0123456789"
AUTHORITY = ProvisionedTerminals([ProvisionedTerminal(PHONE, "demo-site", CODE, "T000001")])
# The platform's clock: a minute after LOCATION_BODY's fix time.
NOW_US = int(datetime(2026, 5, 28, 2, 1, tzinfo=UTC).timestamp()) * 1_000_000


def _logged_in_session() -> Jt808Session:
    session = Jt808Session(AUTHORITY)
    session.receive(encode_frame(Header(MsgId.REGISTER, PHONE, 1), REGISTRATION.encode()), NOW_US)
    code = CODE.encode()
    session.receive(encode_frame(Header(MsgId.AUTHENTICATE, PHONE, 2), code), NOW_US)
    assert session.authenticated
    return session


def test_register_then_authenticate_then_report():
    session = Jt808Session(AUTHORITY)
    events, out = session.receive(
        encode_frame(Header(MsgId.REGISTER, PHONE, 1), REGISTRATION.encode()), NOW_US
    )
    assert events == [Registered(PHONE, REGISTRATION, accepted=True)]
    [(msg_id, body)] = _responses(out)
    reply = RegistrationResponse.decode(body)
    assert (msg_id, reply.serial, reply.result) == (MsgId.REGISTER_RESPONSE, 1, 0)
    assert reply.auth_code == CODE

    events, out = session.receive(
        encode_frame(Header(MsgId.AUTHENTICATE, PHONE, 2), b"wrong"), NOW_US
    )
    assert events == [
        Authenticated(PHONE, accepted=False),
        Refused(PHONE, MsgId.AUTHENTICATE, "authentication refused", "authentication_refused"),
    ]
    assert GeneralResponse.decode(_responses(out)[0][1]).result == Result.FAILURE

    code = reply.auth_code.encode()
    events, out = session.receive(encode_frame(Header(MsgId.AUTHENTICATE, PHONE, 3), code), NOW_US)
    assert events == [Authenticated(PHONE, accepted=True)]
    assert GeneralResponse.decode(_responses(out)[0][1]) == GeneralResponse(
        3, MsgId.AUTHENTICATE, Result.OK
    )

    events, out = session.receive(_wire(LOCATION_HEADER + LOCATION_BODY), NOW_US)
    [positions] = events
    assert isinstance(positions, Positions) and not positions.backfill
    assert positions.locations[0].alarms == ["emergency"]
    assert GeneralResponse.decode(_responses(out)[0][1]) == GeneralResponse(
        7, MsgId.LOCATION, Result.OK
    )


def test_position_before_authentication_is_answered_failure():
    events, out = Jt808Session(AUTHORITY).receive(_wire(LOCATION_HEADER + LOCATION_BODY), NOW_US)
    assert isinstance(events[0], Refused)
    assert GeneralResponse.decode(_responses(out)[0][1]).result == Result.FAILURE


def test_bad_checksum_is_answered_message_error_and_session_continues():
    session = _logged_in_session()
    bad = bytearray(_wire(LOCATION_HEADER + LOCATION_BODY))
    bad[-2] ^= 0x55
    events, out = session.receive(bytes(bad) + _wire(LOCATION_HEADER + LOCATION_BODY), NOW_US)
    assert isinstance(events[0], Refused) and "checksum" in events[0].reason
    assert isinstance(events[1], Positions)
    answers = [GeneralResponse.decode(body) for _, body in _responses(out)]
    assert answers == [
        GeneralResponse(7, MsgId.LOCATION, Result.MESSAGE_ERROR),
        GeneralResponse(7, MsgId.LOCATION, Result.OK),
    ]


def test_unknown_encrypted_and_subpackaged_messages_are_not_supported():
    session = _logged_in_session()
    frames = (
        encode_frame(Header(0x0900, PHONE, 9), b"\x01"),
        encode_frame(Header(MsgId.LOCATION, PHONE, 10, encryption=1), LOCATION_BODY),
        encode_frame(Header(MsgId.LOCATION, PHONE, 11, packages=(2, 1)), LOCATION_BODY),
    )
    _, out = session.receive(b"".join(frames), NOW_US)
    assert [GeneralResponse.decode(b).result for _, b in _responses(out)] == [
        Result.NOT_SUPPORTED
    ] * 3


def test_random_bytes_never_crash_the_session():
    rng = random.Random(808)
    session = _logged_in_session()
    valid = _wire(LOCATION_HEADER + LOCATION_BODY)
    for _ in range(300):
        junk = bytearray(valid)
        for _ in range(rng.randint(1, 6)):
            junk[rng.randrange(len(junk))] = rng.choice([0x7E, 0x7D, rng.randrange(256)])
        events, out = session.receive(
            bytes(junk) + bytes(rng.randrange(256) for _ in range(20)), NOW_US
        )
        assert all(isinstance(e, Refused | Positions | SetAside) for e in events), (
            "garbage must only be refused or, by chance, parse"
        )
        _responses(out)  # whatever we answer is itself a valid frame


def test_checksum_is_plain_xor():
    assert checksum(bytes([0x01, 0x02, 0x04])) == 0x07


def test_watched_alarm_bits_raise_once_and_clear():
    from cloud.jt808.alarms import TerminalAlarms

    alarms = TerminalAlarms()
    reference = Location.decode(LOCATION_BODY)
    stolen = Location(1 << 26 | 1 << 28, 2, 31.35, 121.59, 0, 0, 0, reference.t_us + 1_000_000)
    raised = alarms.on_location("jt808-1", stolen, "LOT-B")
    assert [(a.alert_type, a.action, a.evidence["alarms"]) for a in raised] == [
        ("theft.terminal_alarm", "raise", ["illegal_displacement", "vehicle_stolen"])
    ]
    assert alarms.on_location("jt808-1", stolen, "LOT-B") == []  # still on: no repeat
    calm = Location(0, 2, 31.35, 121.59, 0, 0, 0, reference.t_us + 2_000_000)
    # Issue 20: the terminal drops theft bits once answered; the alert stays open for a person.
    assert alarms.on_location("jt808-1", calm, "LOT-B") == []
    again = alarms.on_location("jt808-1", stolen, "LOT-B")
    assert [(a.alert_type, a.action) for a in again] == [("theft.terminal_alarm", "raise")]


def test_power_and_antenna_alarms_clear_when_the_terminal_stops_reporting_them():
    from cloud.jt808.alarms import TerminalAlarms

    alarms = TerminalAlarms()
    t_us = Location.decode(LOCATION_BODY).t_us
    cut = Location(1 << 8, 2, 31.35, 121.59, 0, 0, 0, t_us)
    assert [a.action for a in alarms.on_location("jt808-1", cut, None)] == ["raise"]
    calm = Location(0, 2, 31.35, 121.59, 0, 0, 0, t_us + 1_000_000)
    assert [(a.alert_type, a.action) for a in alarms.on_location("jt808-1", calm, None)] == [
        ("tamper.terminal_alarm", "clear")
    ]


def test_fixes_dated_far_ahead_or_far_back_are_refused_and_counted_the_rest_kept():
    from cloud.jt808.session import MAX_FUTURE_US, MAX_PAST_US

    session = _logged_in_session()
    fix = Location.decode(LOCATION_BODY)
    ahead = Location(0, 2, 31.35, 121.59, 0, 0, 0, NOW_US + MAX_FUTURE_US + 60_000_000)
    behind = Location(0, 2, 31.35, 121.59, 0, 0, 0, NOW_US - MAX_PAST_US - 60_000_000)
    batch = LocationBatch(1, (ahead, fix, behind)).encode()
    events, out = session.receive(
        encode_frame(Header(MsgId.LOCATION_BATCH, PHONE, 20), batch), NOW_US
    )
    assert [e for e in events if isinstance(e, Positions)] == [
        Positions(PHONE, (fix,), backfill=True)
    ]
    assert sorted(e.reason for e in events if isinstance(e, SetAside)) == [
        "fix_dated_in_the_future",
        "fix_dated_too_far_back",
    ]
    # Answered OK: the message was read; resending it would not make its dates better.
    assert GeneralResponse.decode(_responses(out)[0][1]).result == Result.OK
    year_2060 = Location(0, 2, 31.35, 121.59, 0, 0, 0, 2_840_140_800_000_000)
    events, _ = session.receive(
        encode_frame(Header(MsgId.LOCATION, PHONE, 21), year_2060.encode()), NOW_US
    )
    assert events == [SetAside(PHONE, MsgId.LOCATION, "fix_dated_in_the_future")]


def test_a_2013_header_with_bit_14_is_read_and_answered_as_2013_and_noted_once():
    session = _logged_in_session()
    content = bytearray(LOCATION_HEADER + LOCATION_BODY)
    content[2] |= 0x40  # the reserved bit some 2013 terminals set
    events, out = session.receive(_wire(bytes(content)) * 2, NOW_US)
    assert [type(e).__name__ for e in events] == ["SetAside", "Positions", "Positions"]
    assert session.compat == "reserved_bit_14_on_2013_header"
    answers = [decode_frame(raw) for raw in FrameSplitter().feed(out)]
    assert [a.header.version for a in answers] == [None, None]
    assert [GeneralResponse.decode(a.body).result for a in answers] == [Result.OK, Result.OK]
