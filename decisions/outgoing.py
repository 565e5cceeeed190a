"""What a decision hands to the rim to send: a message type and its body, not yet enveloped."""

from __future__ import annotations

from pydantic import BaseModel

from contract import MessageType

Outgoing = tuple[MessageType, BaseModel]
