"""Property-based fuzzing of everything that reads a terminal's bytes: the frame splitter, the
unescaper, the frame and body decoders and the session. Each either parses or raises the one
documented error (``MalformedFrame``); the session never raises and answers only with frames
that are themselves valid."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud.jt808.session import (
    Authenticated,
    Heartbeat,
    Jt808Session,
    Positions,
    ProvisionedTerminal,
    ProvisionedTerminals,
    Refused,
    Registered,
    SetAside,
)
from contract.jt808 import (
    MAX_FRAME,
    MAX_TEXT,
    FrameSplitter,
    GeneralResponse,
    Header,
    Location,
    LocationBatch,
    MalformedFrame,
    MsgId,
    Registration,
    RegistrationResponse,
    decode_authentication,
    decode_frame,
    encode_frame,
    escape,
    unescape,
)

PHONE = "13800138000"
NOW_US = int(datetime(2026, 5, 28, 2, 1, tzinfo=UTC).timestamp()) * 1_000_000
AUTHORITY = ProvisionedTerminals([ProvisionedTerminal(PHONE, "demo-site", "code-0123", "T1")])
LOCATION = bytes.fromhex(
    "00000001 00000002 01de5cf0 073f50f0 007e 007d 005a 260528100000 0104 00003039 3101 09"
)
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _readable(text: str) -> bool:
    return len(text) <= MAX_TEXT and not any(ord(c) < 0x20 or ord(c) == 0x7F for c in text)


@FUZZ
@given(st.binary(max_size=300))
def test_unescape_gives_bytes_or_a_malformed_frame(data: bytes) -> None:
    try:
        raw = unescape(data)
    except MalformedFrame:
        return
    assert len(raw) <= len(data)


@FUZZ
@given(st.binary(max_size=300))
def test_escape_then_unescape_is_identity_and_hides_flags(data: bytes) -> None:
    escaped = escape(data)
    assert 0x7E not in escaped
    assert unescape(escaped) == data


@FUZZ
@given(st.lists(st.binary(max_size=1500), max_size=8))
def test_splitter_yields_flagless_bounded_frames_for_any_chunking(chunks: list[bytes]) -> None:
    splitter = FrameSplitter()
    for chunk in chunks:
        for frame in splitter.feed(chunk):
            assert frame and 0x7E not in frame and len(frame) <= MAX_FRAME
    assert len(splitter._buffer) <= MAX_FRAME  # a peer cannot grow the buffer


@FUZZ
@given(st.binary(max_size=200))
def test_decode_frame_parses_or_refuses(data: bytes) -> None:
    try:
        frame = decode_frame(data)
    except MalformedFrame:
        return
    assert len(frame.body) == frame.header.body_length
    assert frame.header.phone.isdigit()


@FUZZ
@given(
    msg_id=st.integers(0, 0xFFFF),
    phone=st.from_regex(r"[1-9][0-9]{10,19}", fullmatch=True),
    serial=st.integers(0, 0xFFFF),
    version=st.none() | st.integers(0, 255),
    body=st.binary(max_size=300),
)
def test_encoded_frames_decode_to_what_was_sent(msg_id, phone, serial, version, body) -> None:
    if version is None and len(phone) > 12:
        phone = phone[:12]
    header = Header(msg_id, phone, serial, body_length=len(body), version=version)
    frame = decode_frame(encode_frame(header, body))
    assert (frame.header, frame.body) == (header, body)


@FUZZ
@given(st.binary(max_size=120), st.none() | st.just(1))
def test_registration_decodes_to_clean_text_or_is_refused(body: bytes, version) -> None:
    try:
        registration = Registration.decode(body, version)
    except MalformedFrame:
        return
    for text in (
        registration.manufacturer,
        registration.model,
        registration.terminal_id,
        registration.plate,
    ):
        assert "\x00" not in text and _readable(text)


@FUZZ
@given(st.binary(max_size=80), st.none() | st.just(1))
def test_authentication_code_is_clean_text_or_refused(body: bytes, version) -> None:
    try:
        code = decode_authentication(body, version)
    except MalformedFrame:
        return
    assert "\x00" not in code and _readable(code)


@FUZZ
@given(st.binary(max_size=120))
def test_location_keeps_a_valid_basic_position_whatever_follows(tail: bytes) -> None:
    location = Location.decode(LOCATION[:28] + tail)  # never raises: the 28 bytes are valid
    assert (location.lat, location.lon) == (31.35, 121.59)
    assert all(reason for reason in location.set_aside)


@FUZZ
@given(st.binary(max_size=120))
def test_location_of_random_bytes_parses_or_refuses(body: bytes) -> None:
    try:
        location = Location.decode(body)
    except MalformedFrame:
        return
    assert -90 <= location.lat <= 90 and -180 <= location.lon <= 180


@FUZZ
@given(st.binary(max_size=400))
def test_batch_parses_or_refuses(body: bytes) -> None:
    try:
        batch = LocationBatch.decode(body)
    except MalformedFrame:
        return
    assert len(batch.locations) <= max(0, (len(body) - 3) // 30)


@FUZZ
@given(st.binary(max_size=40))
def test_responses_parse_or_refuse(body: bytes) -> None:
    for decode in (GeneralResponse.decode, RegistrationResponse.decode):
        try:
            decode(body)
        except MalformedFrame:
            continue


def _good_frames() -> list[bytes]:
    registration = Registration(31, 115, "PWSIM", "GT-808", "T1", 1, "沪A12345")
    return [
        encode_frame(Header(MsgId.REGISTER, PHONE, 1), registration.encode()),
        encode_frame(Header(MsgId.AUTHENTICATE, PHONE, 2), b"code-0123"),
        encode_frame(Header(MsgId.LOCATION, PHONE, 3), LOCATION),
        encode_frame(Header(MsgId.HEARTBEAT, PHONE, 4, version=1), b""),
        encode_frame(
            Header(MsgId.LOCATION_BATCH, PHONE, 5),
            LocationBatch(1, (Location.decode(LOCATION),)).encode(),
        ),
    ]


@st.composite
def _mutated_streams(draw) -> list[bytes]:
    """Good frames with bytes flipped, cut, duplicated or interleaved with random bytes."""
    chunks = []
    for frame in draw(st.lists(st.sampled_from(_good_frames()), min_size=1, max_size=6)):
        data = bytearray(frame)
        for _ in range(draw(st.integers(0, 4))):
            at = draw(st.integers(0, len(data) - 1))
            data[at] = draw(st.sampled_from([0x00, 0x7D, 0x7E, 0xFF, draw(st.integers(0, 255))]))
        if draw(st.booleans()):
            data = data[: draw(st.integers(0, len(data)))]
        chunks.append(bytes(data) + draw(st.binary(max_size=20)))
    return chunks


@FUZZ
@given(_mutated_streams())
def test_session_never_raises_and_answers_only_valid_frames(chunks: list[bytes]) -> None:
    session = Jt808Session(AUTHORITY)
    for chunk in chunks:
        events, out = session.receive(chunk, NOW_US)
        allowed = Registered | Authenticated | Heartbeat | Positions | Refused | SetAside
        assert all(isinstance(e, allowed) for e in events)
        for raw in FrameSplitter().feed(out):
            decode_frame(raw)  # the platform never sends a malformed frame


@FUZZ
@given(st.lists(st.binary(max_size=200), max_size=6))
def test_session_survives_random_bytes(chunks: list[bytes]) -> None:
    session = Jt808Session(AUTHORITY)
    for chunk in chunks:
        session.receive(b"\x7e" + chunk, NOW_US)
    assert not session.authenticated  # random bytes do not log in
