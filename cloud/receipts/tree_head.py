"""Signed tree heads: the operator's Ed25519 signature over (log, size, root, time).

RFC 9162 signs a TLS-encoded structure; this log signs the contract's canonical JSON instead
(the same bytes rule every Pledgewatch signature uses), with a ``kind`` field so that a tree
head signature can never be replayed as a receipt signature or the other way round. The log is
named by the SHA-256 of the operator's raw public key, as CT names logs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from contract import canonical_bytes

TREE_HEAD_KIND = "pledgewatch/tree-head/v1"


class TreeHeadInvalid(ValueError):
    """A tree head is malformed or its signature does not verify with the operator's key."""


def log_id(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True, slots=True)
class SignedTreeHead:
    log_id: str
    size: int
    root: bytes
    timestamp_ms: int
    signature: bytes

    def signed_bytes(self) -> bytes:
        return tree_head_bytes(self.log_id, self.size, self.root, self.timestamp_ms)

    def as_json(self) -> dict[str, Any]:
        return {
            "log_id": self.log_id,
            "size": self.size,
            "root": self.root.hex(),
            "timestamp_ms": self.timestamp_ms,
            "signature": base64.b64encode(self.signature).decode("ascii"),
        }

    @classmethod
    def from_json(cls, obj: Any) -> SignedTreeHead:
        if not isinstance(obj, dict):
            raise TreeHeadInvalid("a tree head must be a JSON object")
        try:
            size, stamp = obj["size"], obj["timestamp_ms"]
            if not isinstance(size, int) or not isinstance(stamp, int) or size < 0:
                raise TreeHeadInvalid("tree head size and timestamp_ms must be integers >= 0")
            root = bytes.fromhex(obj["root"])
            signature = base64.b64decode(obj["signature"], validate=True)
            log = str(obj["log_id"])
        except KeyError as err:
            raise TreeHeadInvalid(f"tree head lacks {err.args[0]!r}") from None
        except (ValueError, TypeError, binascii.Error) as err:
            if isinstance(err, TreeHeadInvalid):
                raise
            raise TreeHeadInvalid(f"tree head is malformed: {err}") from None
        if len(root) != 32 or len(signature) != 64:
            raise TreeHeadInvalid("tree head root must be 32 bytes and signature 64 bytes")
        return cls(log_id=log, size=size, root=root, timestamp_ms=stamp, signature=signature)


def tree_head_bytes(log: str, size: int, root: bytes, timestamp_ms: int) -> bytes:
    return canonical_bytes(
        {
            "kind": TREE_HEAD_KIND,
            "log_id": log,
            "size": size,
            "root": root.hex(),
            "timestamp_ms": timestamp_ms,
        }
    )


def sign_tree_head(
    key: Ed25519PrivateKey, *, size: int, root: bytes, timestamp_ms: int
) -> SignedTreeHead:
    log = log_id(key)
    signature = key.sign(tree_head_bytes(log, size, root, timestamp_ms))
    return SignedTreeHead(log, size, root, timestamp_ms, signature)


def verify_tree_head(head: SignedTreeHead, public_key: Ed25519PublicKey) -> None:
    if head.log_id != log_id(public_key):
        raise TreeHeadInvalid(
            f"tree head is for log {head.log_id[:16]}…, not this operator's log "
            f"{log_id(public_key)[:16]}…"
        )
    try:
        public_key.verify(head.signature, head.signed_bytes())
    except InvalidSignature:
        raise TreeHeadInvalid(
            f"tree head of size {head.size} is not signed by the operator's key"
        ) from None
