"""Offline verification of a receipt bundle: what `python -m cloud receipts verify` checks.

A bundle (the API's ``GET /receipts/{number}/bundle``) carries the signed receipt document, its
tag set, a signed tree head, and every ledger entry of the receipt and of the verifications it
relies on, each with an inclusion proof. Verification needs no database and no network: the
operator's public key (pinned by the verifier, or taken from the bundle with a warning), and
optionally a later signed tree head with a consistency proof, which shows the log was only
appended to since (an edited or removed entry cannot pass it).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from cloud.receipts import merkle
from cloud.receipts.document import (
    ReceiptSignatureInvalid,
    document_sha256,
    tag_set_sha256,
    verify_document,
)
from cloud.receipts.tree_head import SignedTreeHead, TreeHeadInvalid, verify_tree_head
from contract import load_public_key

BUNDLE_FORMAT = "pledgewatch/receipt-bundle/v1"


class BundleMalformed(ValueError):
    """The file is not a receipt bundle; says what is wrong with it."""


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str
    warning: bool = False  # passes, but the user should know


@dataclass(slots=True)
class Verdict:
    number: str
    checks: list[Check] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return all(c.ok for c in self.checks)

    def add(self, name: str, ok: bool, detail: str, *, warning: bool = False) -> bool:
        self.checks.append(Check(name, ok, detail, warning))
        return ok

    def render(self) -> str:
        lines = [f"Receipt {self.number}"]
        for c in self.checks:
            mark = "ok  " if c.ok and not c.warning else ("warn" if c.ok else "FAIL")
            lines.append(f"  [{mark}] {c.name}: {c.detail}")
        failed = [c.name for c in self.checks if not c.ok]
        if failed:
            lines.append(f"VERDICT: NOT VALID ({'; '.join(failed)})")
        else:
            lines.append("VERDICT: VALID: signed by the operator and logged in the evidence ledger")
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class LaterHead:
    tree_head: SignedTreeHead
    consistency_proof: list[bytes]


def _hashes(values: Any, what: str) -> list[bytes]:
    if not isinstance(values, list):
        raise BundleMalformed(f"{what} must be a list of hex hashes")
    try:
        return [bytes.fromhex(v) for v in values]
    except (TypeError, ValueError):
        raise BundleMalformed(f"{what} holds something that is not a hex hash") from None


def parse_later(obj: Any) -> LaterHead:
    if not isinstance(obj, dict) or "tree_head" not in obj:
        raise BundleMalformed("a later head is an object with tree_head and consistency_proof")
    try:
        head = SignedTreeHead.from_json(obj["tree_head"])
    except TreeHeadInvalid as err:
        raise BundleMalformed(f"later tree head: {err}") from None
    return LaterHead(head, _hashes(obj.get("consistency_proof", []), "consistency_proof"))


def _included(
    verdict: Verdict, item: Any, head: SignedTreeHead, label: str
) -> dict[str, Any] | None:
    """Check one logged entry's inclusion; return the parsed entry when it is proven."""
    if not isinstance(item, dict) or not isinstance(item.get("entry"), str):
        verdict.add(label, False, "malformed: needs index, entry and inclusion_proof")
        return None
    index = item.get("index")
    if not isinstance(index, int):
        verdict.add(label, False, "malformed: index must be an integer")
        return None
    try:
        proof = _hashes(item.get("inclusion_proof"), "inclusion_proof")
    except BundleMalformed as err:
        verdict.add(label, False, str(err))
        return None
    leaf = merkle.leaf_hash(item["entry"].encode("utf-8"))
    if not merkle.verify_inclusion(leaf, index, head.size, proof, head.root):
        verdict.add(
            label,
            False,
            f"entry {index} is not in the signed tree of size {head.size}: it was altered, "
            "or the proof is wrong",
        )
        return None
    try:
        parsed: dict[str, Any] = json.loads(item["entry"])
    except json.JSONDecodeError:
        verdict.add(label, False, f"entry {index} is proven but is not JSON")
        return None
    verdict.add(label, True, f"entry {index} ({parsed.get('kind')}) is in the signed tree")
    return parsed


def verify_bundle(
    bundle: Any,
    operator_key: Ed25519PublicKey | None = None,
    later: LaterHead | None = None,
) -> Verdict:
    if not isinstance(bundle, dict) or bundle.get("format") != BUNDLE_FORMAT:
        raise BundleMalformed(f"not a receipt bundle (format must be {BUNDLE_FORMAT!r})")
    document = bundle.get("receipt")
    if not isinstance(document, dict):
        raise BundleMalformed("bundle has no receipt document")
    number = str(document.get("number"))
    verdict = Verdict(number)

    if operator_key is None:
        try:
            operator_key = load_public_key(str(bundle.get("operator_public_key")))
        except ValueError as err:
            raise BundleMalformed(f"operator_public_key: {err}") from None
        verdict.add(
            "operator key",
            True,
            "taken from the bundle itself; pin the operator's published key with "
            "--operator-key to rule out a forged bundle",
            warning=True,
        )

    try:
        signature = base64.b64decode(str(bundle.get("signature")), validate=True)
        verify_document(document, signature, operator_key)
        verdict.add("receipt signature", True, f"version {document.get('version')} signed")
    except (ReceiptSignatureInvalid, binascii.Error, ValueError) as err:
        verdict.add("receipt signature", False, str(err))

    evidence = document.get("evidence") or {}
    tags = bundle.get("tags")
    if isinstance(tags, list) and all(isinstance(t, str) for t in tags):
        same = tag_set_sha256(tags) == evidence.get("tag_set_sha256") and len(tags) == evidence.get(
            "tag_count"
        )
        verdict.add(
            "tag set",
            same,
            f"{len(tags)} tags match the receipt's tag set hash"
            if same
            else "the listed tags do not match the receipt's tag set hash and count",
        )
    else:
        verdict.add("tag set", False, "the bundle does not list the receipt's tags")

    try:
        head = SignedTreeHead.from_json(bundle.get("tree_head"))
        verify_tree_head(head, operator_key)
    except TreeHeadInvalid as err:
        verdict.add("signed tree head", False, str(err))
        return verdict
    verdict.add("signed tree head", True, f"size {head.size}, root {head.root.hex()[:16]}…")

    history = bundle.get("history")
    if not isinstance(history, list) or not history:
        verdict.add("history", False, "the bundle carries no ledger entries for the receipt")
        return verdict
    proven = [_included(verdict, item, head, "history entry") for item in history]
    if all(p is not None for p in proven):
        foreign = [p for p in proven if p and p.get("receipt") != number]
        verdict.add(
            "history belongs to the receipt",
            not foreign,
            "every entry names this receipt"
            if not foreign
            else f"{len(foreign)} entries name another receipt",
        )
        last = proven[-1] or {}
        digest = document_sha256(document)
        current = (last.get("body") or {}).get("document_sha256") == digest
        verdict.add(
            "receipt is the logged version",
            current,
            f"the latest logged step ({last.get('kind')}) carries this document's SHA-256"
            if current
            else "the document differs from the one the ledger logged last for this receipt",
        )

    issue_check = evidence.get("issue_verification") or {}
    wanted = issue_check.get("ledger_index")
    found = False
    for item in bundle.get("verifications") or []:
        parsed = _included(verdict, item, head, "verification entry")
        if parsed is not None and item.get("index") == wanted:
            found = not (parsed.get("body") or {}).get("missing")
    verdict.add(
        "issued on a passing verification",
        found,
        f"ledger entry {wanted} shows the goods verified present"
        if found
        else f"no proven passing verification at ledger entry {wanted}",
    )

    if later is not None:
        try:
            verify_tree_head(later.tree_head, operator_key)
        except TreeHeadInvalid as err:
            verdict.add("later tree head", False, str(err))
            return verdict
        consistent = merkle.verify_consistency(
            head.size,
            later.tree_head.size,
            head.root,
            later.tree_head.root,
            later.consistency_proof,
        )
        verdict.add(
            "consistent with later head",
            consistent,
            f"the log of size {later.tree_head.size} extends the one of size {head.size}"
            if consistent
            else f"the log of size {later.tree_head.size} is NOT an append-only extension of "
            f"size {head.size}: entries were changed or removed",
        )
    else:
        verdict.add(
            "consistent with later head",
            True,
            "not checked (pass --later FILE or --api URL to check against a newer head)",
            warning=True,
        )
    return verdict
