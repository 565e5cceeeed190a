"""`python -m edge rfid decode HEX...` and `python -m edge rfid llrp-decode FILE`.

decode: one JSON line per EPC (GS1 keys for SGTIN-96 / SSCC-96, the hex alone otherwise).
llrp-decode: one JSON line per tag observation in a capture of raw LLRP messages,
``{"epc": "<hex>", "antenna": n, "peak_rssi": n, "first_seen_us": n}`` with the fields the
reader did not report left out (``peak_rssi`` in dBm as LLRP sends it).
Bad input goes to stderr with the reason and a non-zero exit; the good part is still printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edge.rfid import llrp
from edge.rfid.epc import EpcDecoder, EpcError, normalize_epc


def _decode(args: argparse.Namespace) -> int:
    decoder = EpcDecoder()
    failed = 0
    for text in args.hex:
        try:
            decoded = decoder.decode(normalize_epc(text))
        except EpcError as err:
            failed += 1
            print(f"edge rfid decode: {err}", file=sys.stderr)
            continue
        print(json.dumps(decoded.as_json()))
    return 1 if failed else 0


def observation_json(report: llrp.TagReport) -> dict[str, object]:
    out: dict[str, object] = {"epc": report.epc}
    if report.antenna is not None:
        out["antenna"] = report.antenna
    if report.rssi_cdbm is not None:
        rssi = report.rssi_cdbm / 100
        out["peak_rssi"] = int(rssi) if rssi.is_integer() else rssi
    if report.first_seen_us is not None:
        out["first_seen_us"] = report.first_seen_us
    return out


def _llrp_decode(args: argparse.Namespace) -> int:
    try:
        data = Path(args.file).read_bytes()
    except OSError as err:
        print(f"edge rfid llrp-decode: {err}", file=sys.stderr)
        return 2
    framer = llrp.LlrpFramer()
    status = 0
    damage: llrp.LlrpFrameError | None = None
    try:
        frames = framer.feed(data)
    except llrp.LlrpFrameError as err:
        # Print what came before the damage, then say where it is.
        frames, damage = err.frames, err
    for frame in frames:
        if frame.msg_type != llrp.RO_ACCESS_REPORT:
            continue
        try:
            reports = llrp.parse_ro_access_report(frame.raw)
        except llrp.LlrpReportError as err:
            status = 1
            print(f"edge rfid llrp-decode: message {frame.msg_id}: {err}", file=sys.stderr)
            continue
        for report in reports:
            print(json.dumps(observation_json(report)))
    if damage is not None:
        print(f"edge rfid llrp-decode: {damage}", file=sys.stderr)
        return 1
    if framer.pending_bytes:
        print(
            f"edge rfid llrp-decode: capture ends inside a message "
            f"({framer.pending_bytes} bytes left)",
            file=sys.stderr,
        )
        status = 1
    return status


def add_command(commands: argparse._SubParsersAction) -> None:
    rfid = commands.add_parser("rfid", help="RFID tools: decode EPCs and LLRP captures")
    tools = rfid.add_subparsers(dest="rfid_command", required=True)
    decode = tools.add_parser("decode", help="decode EPC hex to GS1 keys (JSON lines)")
    decode.add_argument("hex", nargs="+", help="EPC hex, e.g. 3034257BF7194E4000003039")
    decode.set_defaults(func=_decode)
    capture = tools.add_parser(
        "llrp-decode", help="tag observations in a capture of raw LLRP bytes (JSON lines)"
    )
    capture.add_argument("file", help="file of raw LLRP messages, back to back")
    capture.set_defaults(func=_llrp_decode)
