"""Property-based fuzzing of every device decoder: each input is parsed, or refused with the
decoder's typed, documented error; nothing else escapes, and nothing accepted is out of range.

Inputs mix raw bytes, near-valid JSON documents and hostile classics (deep nesting, NaN,
5,000-digit integers, huge times). Bounded: ``max_examples`` keeps the whole file to seconds.
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contract import TagObservation
from contract.bounds import time_us_in_range
from contract.owntracks import LocationRefused, NotALocation, parse_location
from edge.refusals import DeviceInputRefused
from edge.rfid import impinj, llrp, zebra
from edge.rfid.checks import EPC_MAX_HEX, RSSI_CDBM_MAX, RSSI_CDBM_MIN
from edge.rfid.llrp_session import reports_to_observations
from edge.sensors.modbus import ModbusResponseRefused, RegisterMap, decode_registers
from edge.sensors.mqtt_json import SensorMessageRefused, parse_sensor_message

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

HOSTILE = [
    b"[" * 100_000,
    b"{" * 50_000,
    b'{"epcHex": "0x12"}',
    b"NaN",
    b"9" * 5000,
    b"\xff\xfe\x00",
    b"",
    b"null",
    b'"' * 1001,
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.sampled_from(["3034257BF7194E4000003039", "MDQle_cZTkAAADA5", "2026-11-27T10:00:00Z"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=20,
)


def _fields(keys: list[str]) -> st.SearchStrategy[dict[str, object]]:
    """Objects whose keys are the decoder's real field names, with any values."""
    return st.dictionaries(st.sampled_from(keys), json_values, max_size=len(keys))


def _as_bytes(document: object) -> bytes:
    return json.dumps(document, allow_nan=True).encode()


def _read_in_range(read: TagObservation) -> None:
    assert read.epc == read.epc.upper() and 0 < len(read.epc) <= EPC_MAX_HEX
    assert len(read.epc) % 4 == 0 and int(read.epc, 16) >= 0
    assert 0 <= read.antenna <= 65535
    assert read.rssi_cdbm is None or RSSI_CDBM_MIN <= read.rssi_cdbm <= RSSI_CDBM_MAX
    assert time_us_in_range(read.observed_at_us)


# -- Impinj NDJSON lines ---------------------------------------------------------------

impinj_inventory = _fields(
    ["epcHex", "epc", "antennaPort", "peakRssiCdbm", "lastSeenTime", "tidHex", "frequency"]
)
impinj_events = st.fixed_dictionaries(
    {},
    optional={
        "timestamp": st.one_of(scalars, st.datetimes().map(lambda d: d.isoformat() + "Z")),
        "eventType": st.sampled_from(["tagInventory", "antennaConnected", "inventoryStatus"]),
        "tagInventoryEvent": st.one_of(impinj_inventory, json_values),
        "hostname": st.text(max_size=10),
    },
)


def _impinj(line: bytes) -> None:
    try:
        read = impinj.parse_event(line, "r700")
    except DeviceInputRefused as err:
        assert err.reason and str(err)
        return
    if read is not None:
        _read_in_range(read)


@FUZZ
@given(st.one_of(st.binary(max_size=300), impinj_events.map(_as_bytes), st.sampled_from(HOSTILE)))
def test_impinj_lines_parse_or_are_refused(line: bytes) -> None:
    _impinj(line)


@FUZZ
@given(st.lists(st.binary(max_size=200), max_size=20), st.integers(min_value=8, max_value=300))
def test_impinj_line_splitter_holds_at_most_its_bound(chunks: list[bytes], bound: int) -> None:
    splitter = impinj.LineSplitter(bound)
    for chunk in chunks:
        for line in splitter.feed(chunk):
            assert b"\n" not in line and len(line) <= bound
        assert len(splitter._buffer) <= bound


# -- Zebra IoT Connector events -------------------------------------------------------

zebra_data = _fields(["idHex", "antenna", "peakRssi", "eventNum", "format", "reads", "PC"])
zebra_events = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["SIMPLE", "CUSTOM", "heartbeat", "HEARTBEAT"]),
        "timestamp": st.one_of(scalars, st.just("2024-05-01T10:00:00.123+0000")),
        "data": st.one_of(zebra_data, json_values),
    },
)


@FUZZ
@given(
    st.one_of(
        st.binary(max_size=300),
        zebra_events.map(_as_bytes),
        st.lists(zebra_events, max_size=5).map(_as_bytes),
        st.sampled_from(
            [*HOSTILE, b'{"data": {"peakRssi": NaN}}', b'{"data": {"peakRssi": Infinity}}']
        ),
    )
)
def test_zebra_messages_parse_or_are_refused(payload: bytes) -> None:
    parsed = zebra.parse_message(payload, "fx")  # refusals are returned, never raised
    assert all(isinstance(e, zebra.ZebraEventError) and e.reason for e in parsed.refused)
    for read in parsed.observations:
        _read_in_range(read)


# -- LLRP: the framer and the RO_ACCESS_REPORT parser ----------------------------------


@FUZZ
@given(st.lists(st.binary(max_size=120), max_size=8))
def test_llrp_framer_frames_or_refuses(chunks: list[bytes]) -> None:
    framer = llrp.LlrpFramer(max_frame_bytes=4096)
    for chunk in chunks:
        try:
            frames = framer.feed(chunk)
        except llrp.LlrpFrameError:
            return  # the connection is dropped: documented, typed
        assert all(len(f.raw) >= llrp.HEADER_BYTES for f in frames)


report_fields = st.fixed_dictionaries(
    {"epc": st.binary(min_size=2, max_size=16).map(bytes.hex)},
    optional={
        "antenna": st.integers(0, 65535),
        "peak_rssi_dbm": st.integers(-128, 127),
        "first_seen_us": st.integers(0, 2**64 - 1),
        "last_seen_us": st.integers(0, 2**64 - 1),
        "seen_count": st.integers(0, 65535),
    },
)


@FUZZ
@given(
    st.lists(report_fields, min_size=1, max_size=4),
    st.integers(0, 64),
    st.binary(max_size=8),
)
def test_llrp_reports_parse_or_are_refused(fields: list[dict], cut: int, junk: bytes) -> None:
    raw = llrp.encode_ro_access_report(7, [llrp.encode_tag_report_data(**f) for f in fields])
    for candidate in (raw, raw[: len(raw) - cut] + junk, raw[:10] + junk + raw[10:]):
        try:
            reports = llrp.parse_ro_access_report(candidate)
        except llrp.LlrpReportError:
            continue
        received = 1_780_000_000_000_000
        for read in reports_to_observations(reports, "llrp-1", received, 0):
            _read_in_range(read)  # a LastSeen of 2**63 is refused here, never signed and sent


def test_llrp_huge_last_seen_is_refused_not_sent() -> None:
    raw = llrp.encode_ro_access_report(
        1, [llrp.encode_tag_report_data("3034257BF7194E4000003039", antenna=1, last_seen_us=2**63)]
    )
    reports = llrp.parse_ro_access_report(raw)
    assert reports_to_observations(reports, "llrp-1", 1_780_000_000_000_000, 0) == []


# -- OwnTracks payloads ---------------------------------------------------------------

owntracks_messages = st.fixed_dictionaries(
    {"_type": st.sampled_from(["location", "transition", "lwt", "card", "waypoint"])},
    optional={
        k: st.one_of(scalars, st.floats(-200, 200))
        for k in ("lat", "lon", "tst", "acc", "batt", "tid", "vel", "created_at")
    },
)


@FUZZ
@given(
    st.sampled_from(["owntracks/pw/coil-1", "owntracks/pw", "owntracks//x", "other/a/b"]),
    st.one_of(st.binary(max_size=200), owntracks_messages.map(_as_bytes), st.sampled_from(HOSTILE)),
)
def test_owntracks_payloads_parse_or_are_refused(topic: str, payload: bytes) -> None:
    try:
        report = parse_location(topic, payload)
    except (LocationRefused, NotALocation):
        return
    assert time_us_in_range(report.fix.t_us)
    assert -90 <= report.fix.lat <= 90 and -180 <= report.fix.lon <= 180
    assert report.battery_pct is None or 0 <= report.battery_pct <= 100


# -- Sensor MQTT JSON and Modbus responses ---------------------------------------------

sensor_messages = _fields(["ts", "temperature", "humidity", "door", "seal", "weight", "tilt"])


@FUZZ
@given(
    st.sampled_from(["sensors/box-1", "sensors", "sensors/a/b"]),
    st.one_of(st.binary(max_size=200), sensor_messages.map(_as_bytes), st.sampled_from(HOSTILE)),
)
def test_sensor_json_parses_or_is_refused(topic: str, payload: bytes) -> None:
    try:
        readings = parse_sensor_message(topic, payload)
    except SensorMessageRefused as err:
        assert err.reason
        return
    for reading in readings:
        assert time_us_in_range(reading.t_us) and abs(reading.value) <= 1e9


@FUZZ
@given(
    st.lists(st.integers(-(2**20), 2**20), max_size=3),
    st.sampled_from([1, 2]),
    st.booleans(),
)
def test_modbus_responses_decode_or_are_refused(words: list[int], count: int, signed: bool) -> None:
    register = RegisterMap(quantity="weight", address=0, words=count, signed=signed, scale=0.1)
    try:
        value = decode_registers(words, register)
    except ModbusResponseRefused:
        return
    assert abs(value) <= 0.1 * 2**32
