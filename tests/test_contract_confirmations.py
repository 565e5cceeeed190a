"""Delivery confirmations: compact ranges that round-trip, and garbage refused."""

from __future__ import annotations

import pytest

from contract import decode_stored, seq_ranges, stored_body


def test_ranges_are_compact_sorted_and_deduplicated() -> None:
    assert seq_ranges([5, 1, 2, 3, 3, 9, 10]) == [(1, 3), (5, 5), (9, 10)]
    assert decode_stored(stored_body([7, 8, 1])) == [(1, 1), (7, 8)]


@pytest.mark.parametrize("payload", [
    b"nope", b"[]", b'{"v":2,"stored":[]}', b'{"v":1}', b'{"v":1,"stored":[[3,1]]}',
    b'{"v":1,"stored":[[0,1]]}', b'{"v":1,"stored":[[1,true]]}', b'{"v":1,"stored":[1]}',
])
def test_malformed_confirmations_are_refused(payload: bytes) -> None:
    with pytest.raises(ValueError):
        decode_stored(payload)
