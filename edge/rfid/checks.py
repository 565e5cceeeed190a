"""The ranges every tag read must fall in before it is signed and sent, for every reader family.

A reader's bytes choose nothing the gateway cannot handle: an EPC is hex, whole 16-bit words, at
most 496 bits (the EPC bank's largest Gen2 size); an antenna is a port number (0 = the reader did
not say which, see docs/rfid.md); RSSI is in centi-dBm within what a receiver can report; the time
is within contract/bounds.py's wire range. A read outside any of them is refused with a
`DeviceInputRefused` whose reason is one of the codes below.
"""

from __future__ import annotations

import re

from contract import TagObservation
from contract.bounds import time_us_in_range
from edge.refusals import DeviceInputRefused

EPC_MAX_HEX = 124  # 496 bits
ANTENNA_MAX = 65535  # LLRP AntennaID is 16 bits
RSSI_CDBM_MIN = -15000  # -150 dBm: below any receiver's floor
RSSI_CDBM_MAX = 3000  # +30 dBm: above any reader's transmit power, so never a real backscatter

_HEX = re.compile(r"[0-9A-Fa-f]+")


def checked_epc(text: object, field: str = "EPC") -> str:
    if not isinstance(text, str) or not text:
        raise DeviceInputRefused("bad_epc", f"{field} {str(text)[:40]!r} is not a string")
    if len(text) > EPC_MAX_HEX or len(text) % 4 or not _HEX.fullmatch(text):
        raise DeviceInputRefused(
            "bad_epc", f"{field} {text[:40]!r} is not 16-bit words of hex, at most 496 bits"
        )
    return text.upper()


def tag_read(
    *, epc: str, antenna: object, rssi_cdbm: object, observed_at_us: int, reader_id: str
) -> TagObservation:
    """A `TagObservation` once every field is in range; `DeviceInputRefused` says which is not."""
    if isinstance(antenna, bool) or not isinstance(antenna, int) or not 0 <= antenna <= ANTENNA_MAX:
        raise DeviceInputRefused("bad_antenna", f"antenna {str(antenna)[:40]} is not a port")
    if rssi_cdbm is not None and (
        isinstance(rssi_cdbm, bool)
        or not isinstance(rssi_cdbm, int)
        or not RSSI_CDBM_MIN <= rssi_cdbm <= RSSI_CDBM_MAX
    ):
        raise DeviceInputRefused("bad_rssi", f"RSSI {str(rssi_cdbm)[:40]} cdBm is out of range")
    if not time_us_in_range(observed_at_us):
        raise DeviceInputRefused(
            "time_out_of_range", f"read time {str(observed_at_us)[:40]} us is outside 2000-2100"
        )
    return TagObservation(checked_epc(epc), antenna, rssi_cdbm, observed_at_us, reader_id)
