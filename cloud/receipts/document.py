"""The receipt document: what a receipt says, as canonical JSON signed by the operator.

Its fields are those PRC Civil Code art. 909 and GB/T 30332 require of a warehouse receipt
(number, depositor, keeper, goods with quantity, pieces and marks, storage place and period,
insurance, issue place and date, holder, pledgee, a rights notice) plus the IoT evidence: the
hash and count of the tag set behind it, its fence, and the physical verification that allowed
the issue (a ledger index anyone can check). Every lifecycle step makes a new version, signed
and logged; the ledger entry of the step carries the version's SHA-256.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from contract import canonical_bytes

RECEIPT_KIND = "pledgewatch/receipt/v1"
RIGHTS_NOTICE = (
    "本仓单为可流转的电子仓单。持有人凭背书转让或出质；出质期间提货须经质权人同意。"
    " This electronic warehouse receipt passes by endorsement; while pledged, goods are "
    "released only with the pledgee's approval."
)


class ReceiptSignatureInvalid(ValueError):
    """The receipt document is not signed by the operator's key (or was altered)."""


def tag_set_sha256(tags: Iterable[str]) -> str:
    """Order-free hash of a tag set: sorted EPCs, one per line."""
    return hashlib.sha256("\n".join(sorted(tags)).encode("ascii")).hexdigest()


def document_bytes(document: dict[str, Any]) -> bytes:
    return canonical_bytes(document)


def document_sha256(document: dict[str, Any]) -> str:
    return hashlib.sha256(document_bytes(document)).hexdigest()


def sign_document(key: Ed25519PrivateKey, document: dict[str, Any]) -> bytes:
    if document.get("kind") != RECEIPT_KIND:
        raise ValueError(f"a receipt document has kind {RECEIPT_KIND!r}")
    return key.sign(document_bytes(document))


def verify_document(document: dict[str, Any], signature: bytes, key: Ed25519PublicKey) -> None:
    if document.get("kind") != RECEIPT_KIND:
        raise ReceiptSignatureInvalid(f"not a receipt document (kind {document.get('kind')!r})")
    try:
        key.verify(signature, document_bytes(document))
    except InvalidSignature:
        raise ReceiptSignatureInvalid(
            f"receipt {document.get('number')!r} version {document.get('version')} "
            "is not signed by the operator's key, or was altered after signing"
        ) from None


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
