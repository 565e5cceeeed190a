"""End-to-end delivery confirmation: the cloud tells a gateway which sequence numbers it stored.

A broker's PUBACK only says the broker took a message; a broker can still lose it (killed before
it saved its state, a shared subscription not restored after a restart). So the edge keeps every
message until ingest confirms, after its database commit, on ``cmd/stored``:
``{"v": 1, "stored": [[first, last], ...]}`` (inclusive ranges of seq), as the body of a command
signed by the cloud (contract/commands.py). A confirmation covers messages stored now, messages
stored before (duplicates) and messages that were verified but dead-lettered for their body: the
cloud has all of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from contract import safejson
from contract.bounds import INT64_MAX

STORED_COMMAND = "stored"
MAX_RANGES = 100_000


def seq_ranges(seqs: Iterable[int]) -> list[tuple[int, int]]:
    ranges: list[tuple[int, int]] = []
    for seq in sorted(set(seqs)):
        if ranges and seq == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], seq)
        else:
            ranges.append((seq, seq))
    return ranges


def stored_body(seqs: Iterable[int]) -> dict[str, Any]:
    return {"v": 1, "stored": [list(r) for r in seq_ranges(seqs)]}


def decode_stored(payload: bytes | dict[str, Any]) -> list[tuple[int, int]]:
    """The confirmed ranges; ValueError for anything else (bytes are decoded with limits)."""
    message = safejson.loads(payload) if isinstance(payload, bytes) else payload
    if not isinstance(message, dict) or message.get("v") != 1:
        raise ValueError("confirmation must be an object with v = 1")
    ranges = message.get("stored")
    if not isinstance(ranges, list):
        raise ValueError("confirmation needs a 'stored' list")
    if len(ranges) > MAX_RANGES:
        raise ValueError(f"{len(ranges)} ranges, more than {MAX_RANGES}")
    result = []
    for item in ranges:
        if (not isinstance(item, list) or len(item) != 2
                or not all(isinstance(x, int) and not isinstance(x, bool) for x in item)
                or not 1 <= item[0] <= item[1] <= INT64_MAX):
            raise ValueError(
                f"bad range {str(item)[:80]}: expected [first, last], 1 <= first <= last < 2**63"
            )
        result.append((item[0], item[1]))
    return result
