"""docs/protocol.md shows one valid example of every message type the contract defines."""

from __future__ import annotations

import json
import re
from pathlib import Path

from contract import MessageType, decode_stored, validate_body

DOC = (Path(__file__).resolve().parent.parent / "docs" / "protocol.md").read_text()


def _examples() -> dict[str, dict[str, object]]:
    pattern = re.compile(r"^### `([a-z_]+)`\n(?:.*\n)*?```json\n(.*?)\n```", re.MULTILINE)
    return {name: json.loads(body) for name, body in pattern.findall(DOC)}


def test_every_message_type_has_a_documented_example() -> None:
    assert set(_examples()) == {t.value for t in MessageType}


def test_every_documented_example_is_valid() -> None:
    for name, body in _examples().items():
        validate_body(name, body)  # raises with the field if the doc is wrong


def test_the_documented_confirmation_parses() -> None:
    assert decode_stored(b'{"v": 1, "stored": [[4700, 4711], [4713, 4713]]}') == [
        (4700, 4711), (4713, 4713)]
