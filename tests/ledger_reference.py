"""An independent RFC 9162 implementation for the ledger tests: the RFC's recursive
definitions (MTH, PATH, SUBPROOF) over plain lists, and verifiers that rebuild roots by the same
recursion. It shares no code or algorithm with cloud/receipts/merkle.py.
"""

from __future__ import annotations

import hashlib


def ref_leaf(entry: bytes) -> bytes:
    return hashlib.sha256(bytes([0]) + entry).digest()


def ref_node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(bytes([1]) + left + right).digest()


def ref_k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(entries: list[bytes]) -> bytes:
    n = len(entries)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return ref_leaf(entries[0])
    k = ref_k(n)
    return ref_node(ref_mth(entries[:k]), ref_mth(entries[k:]))


def ref_path(m: int, entries: list[bytes]) -> list[bytes]:
    n = len(entries)
    if n == 1:
        return []
    k = ref_k(n)
    if m < k:
        return [*ref_path(m, entries[:k]), ref_mth(entries[k:])]
    return [*ref_path(m - k, entries[k:]), ref_mth(entries[:k])]


def ref_subproof(m: int, entries: list[bytes], whole: bool) -> list[bytes]:
    n = len(entries)
    if m == n:
        return [] if whole else [ref_mth(entries)]
    k = ref_k(n)
    if m <= k:
        return [*ref_subproof(m, entries[:k], whole), ref_mth(entries[k:])]
    return [*ref_subproof(m - k, entries[k:], False), ref_mth(entries[:k])]


def ref_proof(m: int, entries: list[bytes]) -> list[bytes]:
    return ref_subproof(m, entries, True)


def ref_root_from_path(index: int, size: int, leaf: bytes, proof: list[bytes]) -> bytes | None:
    """Rebuild the root by walking the recursion top-down; None for a proof of wrong length."""
    if size == 1:
        return leaf if not proof else None
    if not proof:
        return None
    k = ref_k(size)
    if index < k:
        left = ref_root_from_path(index, k, leaf, proof[:-1])
        return None if left is None else ref_node(left, proof[-1])
    right = ref_root_from_path(index - k, size - k, leaf, proof[:-1])
    return None if right is None else ref_node(proof[-1], right)


def ref_roots_from_consistency(
    m: int, n: int, proof: list[bytes], whole: bool, first_root: bytes
) -> tuple[bytes, bytes] | None:
    if m == n:
        if whole:
            return (first_root, first_root) if not proof else None
        return (proof[0], proof[0]) if len(proof) == 1 else None
    if not proof:
        return None
    k = ref_k(n)
    if m <= k:
        inner = ref_roots_from_consistency(m, k, proof[:-1], whole, first_root)
        return None if inner is None else (inner[0], ref_node(inner[1], proof[-1]))
    inner = ref_roots_from_consistency(m - k, n - k, proof[:-1], False, first_root)
    if inner is None:
        return None
    return ref_node(proof[-1], inner[0]), ref_node(proof[-1], inner[1])


def ref_verify_consistency(m: int, n: int, r1: bytes, r2: bytes, proof: list[bytes]) -> bool:
    roots = ref_roots_from_consistency(m, n, proof, True, r1)
    return roots is not None and roots == (r1, r2)
