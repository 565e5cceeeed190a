"""The LLRP fast path, byte by byte, checked against pyllrp on the same bytes."""

from __future__ import annotations

import struct

import bitstring
import pytest
from pyllrp import pyllrp as P

from edge.rfid import llrp


def pyllrp_bytes(message: object) -> bytes:
    return bytes(message.pack(bitstring.BitStream()).tobytes())  # type: ignore[attr-defined]


def pyllrp_tags(raw: bytes) -> list[dict[str, object]]:
    message = P.UnpackMessage(bitstring.ConstBitStream(bytes=raw))
    return message.getTagData()


# RO_ACCESS_REPORT with two TagReportData laid out by hand from LLRP 1.0.1 sections 13.2.3
# (TagReportData, type 240) and 13.2.3.x (EPC-96 TV 13, AntennaID TV 1, PeakRSSI TV 6,
# FirstSeenTimestampUTC TV 2), then EPCData (TLV 241, 128 bits) with a vendor Custom
# parameter (TLV 1023) that must be skipped.
SPEC_VECTOR = bytes.fromhex(
    "043d" "00000054" "0000002a"  # v1 RO_ACCESS_REPORT, length 84, id 42
    "00f0" "001f"  # TagReportData, 31 bytes
    "8d" "3034257bf7194e4000003039"  # EPC-96
    "81" "0002"  # AntennaID 2
    "86" "c4"  # PeakRSSI -60 dBm
    "82" "0005f3e5a1b2c3d4"  # FirstSeenTimestampUTC
    "00f0" "002b"  # TagReportData, 43 bytes
    "00f1" "0016" "0080" "e2801160600002080a6b1a3b00112233"  # EPCData, 128 bits
    "81" "0004"  # AntennaID 4
    "03ff" "000e" "0000270f" "00000001" "abcd"  # Custom: vendor 9999, subtype 1, 2 bytes
)


def test_hand_built_report_from_the_spec_layout() -> None:
    reports = llrp.parse_ro_access_report(SPEC_VECTOR)
    assert reports == [
        llrp.TagReport("3034257BF7194E4000003039", 2, -6000, 0x0005F3E5A1B2C3D4, None, None),
        llrp.TagReport("E2801160600002080A6B1A3B00112233", 4, None, None, None, None),
    ]


def test_hand_built_report_agrees_with_pyllrp() -> None:
    theirs = pyllrp_tags(SPEC_VECTOR)
    ours = llrp.parse_ro_access_report(SPEC_VECTOR)
    assert theirs[0]["EPC"] == int(ours[0].epc, 16)
    assert theirs[0]["AntennaID"] == ours[0].antenna
    assert theirs[0]["PeakRSSI"] * 100 == ours[0].rssi_cdbm
    assert theirs[0]["Timestamp"] == ours[0].first_seen_us
    assert theirs[1]["EPC"].hex().upper() == ours[1].epc
    assert theirs[1]["AntennaID"] == ours[1].antenna


def test_report_built_by_pyllrp_parses_identically() -> None:
    tags = [
        P.TagReportData_Parameter(
            Parameters=[
                P.EPC_96_Parameter(EPC=0x3034257BF7194E4000000000 + i),
                P.ROSpecID_Parameter(ROSpecID=7),
                P.AntennaID_Parameter(AntennaID=1 + i % 4),
                P.PeakRSSI_Parameter(PeakRSSI=-40 - i),
                P.ChannelIndex_Parameter(ChannelIndex=3),
                P.FirstSeenTimestampUTC_Parameter(Microseconds=1_700_000_000_000_000 + i),
                P.LastSeenTimestampUTC_Parameter(Microseconds=1_700_000_000_500_000 + i),
                P.TagSeenCount_Parameter(TagCount=i + 1),
                P.C1G2_PC_Parameter(PC_Bits=0x3000),
                P.ImpinjPeakRSSI_Parameter(RSSI=-4012 - i),
            ]
        )
        for i in range(5)
    ]
    tags.append(
        P.TagReportData_Parameter(
            Parameters=[P.EPCData_Parameter(EPC=bytes.fromhex("e2003412013b0300"))]
        )
    )
    raw = pyllrp_bytes(P.RO_ACCESS_REPORT_Message(MessageID=9, Parameters=tags))
    ours = llrp.parse_ro_access_report(raw)
    theirs = pyllrp_tags(raw)
    assert len(ours) == len(theirs) == 6
    for i, (mine, ref) in enumerate(zip(ours[:5], theirs[:5], strict=True)):
        assert int(mine.epc, 16) == ref["EPC"]
        assert mine.antenna == ref["AntennaID"]
        assert mine.first_seen_us == ref["Timestamp"]
        assert mine.seen_count == ref["TagSeenCount"]
        assert mine.last_seen_us == 1_700_000_000_500_000 + i
        # ImpinjPeakRSSI (centi-dBm) wins over the whole-dBm PeakRSSI
        assert mine.rssi_cdbm == -4012 - i
    assert ours[5] == llrp.TagReport("E2003412013B0300", None, None, None, None, None)


def test_our_encoder_is_read_back_by_pyllrp() -> None:
    raw = llrp.encode_ro_access_report(
        3,
        [
            llrp.encode_tag_report_data(
                "3034257BF7194E4000003039", antenna=3, peak_rssi_dbm=-71, first_seen_us=123456789
            ),
            llrp.encode_tag_report_data(
                "AABBCCDD",
                antenna=1,
                custom=llrp.encode_custom_parameter(4242, 5, b"\x00" * 7),
            ),
        ],
    )
    theirs = pyllrp_tags(raw)
    assert theirs[0] == {
        "EPC": 0x3034257BF7194E4000003039,
        "AntennaID": 3,
        "PeakRSSI": -71,
        "Timestamp": 123456789,
    }
    assert theirs[1] == {"EPC": bytes.fromhex("AABBCCDD"), "AntennaID": 1}
    assert [r.epc for r in llrp.parse_ro_access_report(raw)] == [
        "3034257BF7194E4000003039",
        "AABBCCDD",
    ]


def test_tv_lengths_match_pyllrps_definitions() -> None:
    for code, length in llrp.TV_LENGTHS.items():
        definition = P._ParameterPackUnpackLookup.get(code)
        if definition is not None:  # pyllrp lacks a few 1.1 TV types (15, 19, 20)
            assert definition.Length == length, definition.Name


def test_framer_reassembles_messages_split_anywhere() -> None:
    keepalive = llrp.encode_message(llrp.KEEPALIVE, 77)
    stream = SPEC_VECTOR + keepalive + SPEC_VECTOR
    for cut in range(1, len(stream)):
        framer = llrp.LlrpFramer()
        frames = framer.feed(stream[:cut]) + framer.feed(stream[cut:])
        report, keepalive_type = llrp.RO_ACCESS_REPORT, llrp.KEEPALIVE
        assert [f.msg_type for f in frames] == [report, keepalive_type, report]
        assert framer.pending_bytes == 0
    assert frames[1].msg_id == 77


def test_truncated_capture_is_reported_not_guessed() -> None:
    with pytest.raises(llrp.LlrpFrameError, match="ends inside"):
        llrp.split_messages(SPEC_VECTOR[:-5])


def test_oversized_and_garbage_frames_are_refused() -> None:
    framer = llrp.LlrpFramer(max_frame_bytes=1024)
    with pytest.raises(llrp.LlrpFrameError, match="length"):
        framer.feed(struct.pack(">HII", 0x0400 | 61, 50_000, 1))
    with pytest.raises(llrp.LlrpFrameError, match="not an LLRP header"):
        llrp.LlrpFramer().feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    with pytest.raises(llrp.LlrpFrameError, match="length"):
        llrp.LlrpFramer().feed(struct.pack(">HII", 0x0400 | 61, 4, 1))


@pytest.mark.parametrize(
    ("mangle", "error"),
    [
        # TagReportData claims more bytes than the message holds
        (lambda b: b[:12] + b"\x00\xff" + b[14:], "overruns"),
        # an EPC-96 cut short inside the TagReportData
        (lambda b: b[:10] + b"\x00\xf0\x00\x0a" + b[14:20] + b[42:], "overruns"),
        # a TV type LLRP does not define (0x7f) cannot be skipped
        (lambda b: b[:27] + b"\xff" + b[28:], "unknown TV"),
    ],
)
def test_malformed_reports_raise_a_report_error(mangle: object, error: str) -> None:
    raw = bytearray(mangle(SPEC_VECTOR))  # type: ignore[operator]
    raw[2:6] = struct.pack(">I", len(raw))
    with pytest.raises(llrp.LlrpReportError, match=error):
        llrp.parse_ro_access_report(bytes(raw))


def test_tag_report_without_epc_is_an_error() -> None:
    body = struct.pack(">HHBH", 240, 7, 0x81, 1)
    with pytest.raises(llrp.LlrpReportError, match="without an EPC"):
        llrp.parse_ro_access_report(llrp.encode_message(llrp.RO_ACCESS_REPORT, 1, body))


def test_other_report_parameters_are_skipped() -> None:
    survey = struct.pack(">HH", 242, 8) + b"\x89\x00\x00\x00"  # RFSurveyReportData, opaque
    raw = llrp.encode_message(llrp.RO_ACCESS_REPORT, 1, survey + SPEC_VECTOR[10:])
    assert len(llrp.parse_ro_access_report(raw)) == 2


def test_control_messages_have_the_spec_layout() -> None:
    """What the session sends, against LLRP 1.0.1 section 16 byte layouts."""
    from edge.rfid.llrp_session import ROSPEC_ID, LlrpReaderConfig, add_rospec_message, pack

    # ENABLE_ROSPEC (type 24): header, then ROSpecID u32
    enable = pack(P.ENABLE_ROSPEC_Message(MessageID=0x0102, ROSpecID=ROSPEC_ID))
    assert enable == bytes.fromhex("0418" "0000000e" "00000102" "00005057")
    # DELETE_ROSPEC (type 21) with ROSpecID 0 = all
    delete = pack(P.DELETE_ROSPEC_Message(MessageID=7, ROSpecID=0))
    assert delete == bytes.fromhex("0415" "0000000e" "00000007" "00000000")
    # KEEPALIVE_ACK (type 72) echoes the KEEPALIVE's id, no body
    ack = llrp.encode_message(llrp.KEEPALIVE_ACK, 99)
    assert ack == bytes.fromhex("0448" "0000000a" "00000063")
    # the ROSpec we add survives pyllrp's own validation and carries the configured content
    config = LlrpReaderConfig(kind="llrp", id="r", host="h", antennas=[1, 3], last_seen=True)
    raw = pack(add_rospec_message(config, 5))
    parsed = P.UnpackMessage(bitstring.ConstBitStream(bytes=raw))
    assert parsed.getFirstParameterByClass(P.AISpec_Parameter).AntennaIDs == [1, 3]
    selector = parsed.getFirstParameterByClass(P.TagReportContentSelector_Parameter)
    assert selector.EnableAntennaID and selector.EnablePeakRSSI and selector.EnableLastSeenTimestamp
    assert not selector.EnableTagSeenCount


def test_repeated_layouts_read_fast_and_agree_with_pyllrp() -> None:
    """Readers repeat one TagReportData layout per tag; after the first, the parser reads the
    rest with one struct unpack. Same-length layouts with other parameters must not fool it."""
    rng = __import__("random").Random(4)
    tags = []
    for i in range(60):
        epc = P.EPC_96_Parameter(EPC=0x3034257BF7194E4000000000 + i)
        shape = rng.choice(["a", "b", "c", "d"])
        if shape == "a":  # EPC, AntennaID, PeakRSSI, FirstSeen: the common layout
            params = [
                epc,
                P.AntennaID_Parameter(AntennaID=rng.randint(1, 4)),
                P.PeakRSSI_Parameter(PeakRSSI=rng.randint(-90, -20)),
                P.FirstSeenTimestampUTC_Parameter(Microseconds=rng.randint(0, 2**63)),
            ]
        elif shape == "b":  # same length as "a": ChannelIndex instead of AntennaID
            params = [
                epc,
                P.PeakRSSI_Parameter(PeakRSSI=rng.randint(-90, -20)),
                P.ChannelIndex_Parameter(ChannelIndex=rng.randint(1, 50)),
                P.FirstSeenTimestampUTC_Parameter(Microseconds=rng.randint(0, 2**63)),
            ]
        elif shape == "d":  # last-seen time and seen count
            params = [
                epc,
                P.AntennaID_Parameter(AntennaID=rng.randint(1, 4)),
                P.FirstSeenTimestampUTC_Parameter(Microseconds=rng.randint(0, 2**62)),
                P.LastSeenTimestampUTC_Parameter(Microseconds=rng.randint(2**62, 2**63)),
                P.TagSeenCount_Parameter(TagCount=rng.randint(1, 9999)),
            ]
        else:  # same TV prefix plus a vendor parameter
            params = [
                epc,
                P.AntennaID_Parameter(AntennaID=rng.randint(1, 4)),
                P.PeakRSSI_Parameter(PeakRSSI=rng.randint(-90, -20)),
                P.FirstSeenTimestampUTC_Parameter(Microseconds=rng.randint(0, 2**63)),
                P.ImpinjPeakRSSI_Parameter(RSSI=rng.randint(-9000, -2000)),
            ]
        tags.append((shape, params))
    raw = pyllrp_bytes(
        P.RO_ACCESS_REPORT_Message(
            MessageID=1, Parameters=[P.TagReportData_Parameter(Parameters=p) for _, p in tags]
        )
    )
    ours = llrp.parse_ro_access_report(raw)
    theirs = pyllrp_tags(raw)
    assert len(ours) == len(theirs) == 60
    for (shape, params), mine, ref in zip(tags, ours, theirs, strict=True):
        assert int(mine.epc, 16) == ref["EPC"]
        assert mine.antenna == ref.get("AntennaID")
        assert mine.first_seen_us == ref["Timestamp"]
        if shape == "c":
            assert mine.rssi_cdbm == params[-1].RSSI
        elif shape == "d":
            assert mine.rssi_cdbm is None
            assert mine.last_seen_us == params[3].Microseconds
            assert mine.seen_count == ref["TagSeenCount"]
        else:
            assert mine.rssi_cdbm == ref["PeakRSSI"] * 100
