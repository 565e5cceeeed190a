"""JT/T 808 frames of the 2011, 2013 and 2019 editions from other implementations' test suites
and from real devices (tests/data/jt808_frames.json; each row names its source), including
their quirks: BCD terminal IDs, additional items that overrun the body, zero padding, a 2013
header with the reserved bit 14 set, theft alarm bits that terminals clear once answered.

The hex is transcribed from the source. Expected values follow the standard's layout and agree
with what the source states where it states them (xtream-codec's ``bodyJson``; Traccar's test
asserts that a position results, which our "basic position kept" rows match). Rows marked
"derived" are a captured frame changed as the note says, checksum recomputed."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cloud.jt808.alarms import TerminalAlarms
from cloud.jt808.session import (
    Jt808Session,
    Positions,
    ProvisionedTerminal,
    ProvisionedTerminals,
    SetAside,
)
from contract.jt808 import (
    FrameSplitter,
    GeneralResponse,
    Location,
    LocationBatch,
    MalformedFrame,
    MsgId,
    Registration,
    RegistrationResponse,
    decode_authentication,
    decode_frame,
)

ROWS = json.loads((Path(__file__).parent / "data" / "jt808_frames.json").read_text())
IDS = [f"{i:02d}-{row['note'][:40]}" for i, row in enumerate(ROWS)]


def _time(iso: str) -> int:
    return int(datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()) * (
        1_000_000
    )


def _location(location: Location) -> dict:
    return {
        "lat": location.lat,
        "lon": location.lon,
        "time_utc": datetime.fromtimestamp(location.t_us / 1e6, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "alarm": location.alarm,
        "status": location.status,
        "speed_kmh": location.speed_kmh,
        "altitude_m": location.altitude_m,
        "heading_deg": location.heading_deg,
        "extra_items": sorted(location.extras),
        "set_aside": list(location.set_aside),
    }


def test_the_vectors_cover_three_editions_and_at_least_two_implementations():
    assert {row["edition"] for row in ROWS} >= {"2011", "2013", "2019"}
    repos = {row["source"].split(" ")[0] for row in ROWS}
    assert {"traccar/traccar", "makeclan/xtream-codec"} <= repos
    assert all(row["source"] and row["hex"] and row["expected"] for row in ROWS)


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_frame_decodes_as_its_source_says(row):
    expected = row["expected"]
    if "refused" in expected:
        with pytest.raises(MalformedFrame, match=expected["refused"]):
            decode_frame(bytes.fromhex(row["hex"]))
        return
    frame = decode_frame(bytes.fromhex(row["hex"]))
    header = frame.header
    assert f"{header.msg_id:#06x}" == expected["msg_id"]
    assert (header.phone, header.serial, header.version, header.compat) == (
        expected["phone"],
        expected["serial"],
        expected["version"],
        expected["compat"],
    )
    if "location" in expected:
        assert _location(Location.decode(frame.body)) == expected["location"]
    if "batch" in expected:
        batch = LocationBatch.decode(frame.body)
        assert {
            "kind": batch.kind,
            "count": len(batch.locations),
            "set_aside": list(batch.set_aside),
            "first": _location(batch.locations[0]),
            "last": _location(batch.locations[-1]),
        } == expected["batch"]
    if "registration" in expected:
        registration = Registration.decode(frame.body, header.version)
        assert {k: getattr(registration, k) for k in expected["registration"]} == (
            expected["registration"]
        )
    if "auth_code" in expected:
        assert decode_authentication(frame.body, header.version) == expected["auth_code"]
    if "response" in expected:
        response = GeneralResponse.decode(frame.body)
        assert [response.serial, response.msg_id, response.result] == list(
            expected["response"].values()
        )
    if "registration_response" in expected:
        reply = RegistrationResponse.decode(frame.body)
        assert [reply.serial, reply.result, reply.auth_code] == list(
            expected["registration_response"].values()
        )


ANSWERED = [row for row in ROWS if row["expected"].get("answer") is not None]


@pytest.mark.parametrize("row", ANSWERED, ids=[r["note"][:40] for r in ANSWERED])
def test_platform_answers_as_the_standard_says_and_keeps_what_it_can(row):
    """A logged-in terminal sends the frame: the answer's result, the positions kept and what
    is set aside (counted) are as expected."""
    raw = bytes.fromhex(row["hex"])
    expected = row["expected"]
    phone = expected.get("phone") or decode_frame_header_phone(raw)
    session = Jt808Session(ProvisionedTerminals([ProvisionedTerminal(phone, "s", "code-1")]))
    session.authenticated = True
    times = [_time(loc["time_utc"]) for loc in _locations(expected)] or [0]
    events, out = session.receive(raw, max(times) + 60_000_000)
    [answer] = [decode_frame(f) for f in FrameSplitter().feed(out)]
    assert answer.header.msg_id == MsgId.PLATFORM_RESPONSE
    assert GeneralResponse.decode(answer.body).result == expected["answer"]
    if expected.get("version") is None and "msg_id" in expected:
        assert answer.header.version is None  # a 2013 terminal (bit-14 quirk too) gets 2013
    kept = [loc for e in events if isinstance(e, Positions) for loc in e.locations]
    if "batch" in expected:
        assert len(kept) == expected["batch"]["count"]
    else:
        assert len(kept) == len(_locations(expected))
    set_aside = sorted(e.reason for e in events if isinstance(e, SetAside))
    wanted = [*_set_aside(expected)]
    if expected.get("compat"):
        wanted.append(expected["compat"])
    assert set_aside == sorted(wanted)


def decode_frame_header_phone(raw: bytes) -> str:
    """Phone of a frame the codec refuses as a whole (the header is still read)."""
    try:
        decode_frame(raw)
    except MalformedFrame as err:
        assert err.header is not None
        return err.header.phone
    raise AssertionError("expected a refused frame")


def _locations(expected: dict) -> list[dict]:
    if "location" in expected:
        return [expected["location"]]
    if "batch" in expected:
        return [expected["batch"]["first"], expected["batch"]["last"]]
    return []


def _set_aside(expected: dict) -> list[str]:
    if "location" in expected:
        return expected["location"]["set_aside"]
    if "batch" in expected:
        return expected["batch"]["set_aside"]
    return []


def test_theft_bits_a_terminal_clears_once_answered_leave_the_alert_open():
    [row] = [r for r in ROWS if "illegal door open" in r["note"]]
    frame = decode_frame(bytes.fromhex(row["hex"]))
    location = Location.decode(frame.body)
    assert location.alarms == ["illegal_displacement", "illegal_door_open"]
    alarms = TerminalAlarms()
    [alert] = alarms.on_location("jt808-13578888888", location, "LOT-B")
    assert (alert.action, alert.alert_type, alert.severity) == (
        "raise",
        "theft.terminal_alarm",
        "critical",
    )
    # The platform answered; the terminal's next report has the bits cleared: no "clear".
    [calm] = [r for r in ROWS if r["note"] == "location with proprietary item 0xEB"]
    cleared = Location.decode(decode_frame(bytes.fromhex(calm["hex"])).body)
    assert cleared.alarm == 0
    assert alarms.on_location("jt808-13578888888", cleared, "LOT-B") == []
