"""End-to-end delivery confirmation: the cloud tells a gateway which sequence numbers it stored.

A broker's PUBACK only says the broker took a message; a broker can still lose it (killed before
it saved its state, a shared subscription not restored after a restart). So the edge keeps every
message until ingest confirms, after its database commit, on ``cmd/stored``:
``{"v": 1, "stored": [[first, last], ...]}`` (inclusive ranges of seq). A confirmation covers
messages stored now, messages stored before (duplicates) and messages that were verified but
dead-lettered for their body: the cloud has all of them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

STORED_COMMAND = "stored"


def seq_ranges(seqs: Iterable[int]) -> list[tuple[int, int]]:
    ranges: list[tuple[int, int]] = []
    for seq in sorted(set(seqs)):
        if ranges and seq == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], seq)
        else:
            ranges.append((seq, seq))
    return ranges


def encode_stored(seqs: Iterable[int]) -> bytes:
    return json.dumps({"v": 1, "stored": seq_ranges(seqs)}, separators=(",", ":")).encode()


def decode_stored(payload: bytes) -> list[tuple[int, int]]:
    """The confirmed ranges; ValueError for anything else."""
    try:
        message = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"confirmation is not JSON: {err}") from None
    if not isinstance(message, dict) or message.get("v") != 1:
        raise ValueError("confirmation must be an object with v = 1")
    ranges = message.get("stored")
    if not isinstance(ranges, list):
        raise ValueError("confirmation needs a 'stored' list")
    result = []
    for item in ranges:
        if (not isinstance(item, list) or len(item) != 2
                or not all(isinstance(x, int) and not isinstance(x, bool) for x in item)
                or not 1 <= item[0] <= item[1]):
            raise ValueError(f"bad range {item!r}: expected [first, last] with 1 <= first <= last")
        result.append((item[0], item[1]))
    return result
