"""The RFC 9162 (Certificate Transparency v2) Merkle tree over the evidence ledger.

Theory of operation. Leaves are ``SHA-256(0x00 || entry)``, interior nodes
``SHA-256(0x01 || left || right)``, and the hash of ``n`` leaves splits at the largest power of
two below ``n`` (RFC 9162 §2.1.1); the empty tree hashes to ``SHA-256("")``.

Every range a proof or a root needs is a run of *complete* subtrees: aligned blocks of ``2^k``
leaves, named ``(level, index)``, covering leaves ``[index << level, (index + 1) << level)``.
A complete subtree never changes once its last leaf is appended, so it is computed once, at
append time, and stored (in memory here, in PostgreSQL by the ledger). Appending leaf ``n``
creates exactly as many new complete subtrees as ``n + 1`` has trailing zero bits: O(1)
amortised, never a recomputation from all leaves. A proof is then a handful of lookups.

The proof functions here are pure: they say which ranges a proof is made of
(:func:`inclusion_ranges`, :func:`consistency_ranges`), which stored nodes those ranges need
(:func:`range_nodes`), and fold node hashes into range hashes. Where the nodes come from (a list,
a database) is the caller's business. Verification follows RFC 9162 §2.1.3.2 and §2.1.4.2
literally, including the final check that the second tree size is consumed fully.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

NodeId = tuple[int, int]  # (level, index): the complete subtree of 2**level leaves at index
NodeLookup = Callable[[NodeId], bytes]


class ProofRequestError(ValueError):
    """A proof was asked for sizes or indexes the tree does not have."""


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def split_point(n: int) -> int:
    """The largest power of two strictly below ``n`` (n >= 2): where RFC 9162 splits."""
    return 1 << ((n - 1).bit_length() - 1)


def range_nodes(start: int, end: int) -> list[NodeId]:
    """The complete subtrees that make up leaves ``[start, end)``, left to right.

    Only meaningful for ranges the RFC recursion produces (``start`` aligned to a power of two
    at least ``end - start``): their hash is the right fold of these subtrees.
    """
    nodes: list[NodeId] = []
    while start < end:
        remaining = end - start
        block = 1 << (remaining.bit_length() - 1)
        if start:
            block = min(block, start & -start)
        level = block.bit_length() - 1
        nodes.append((level, start >> level))
        start += block
    return nodes


def fold(hashes: Sequence[bytes]) -> bytes:
    """Hash of a range from its complete subtrees (largest first): a right fold."""
    if not hashes:
        return EMPTY_ROOT
    acc = hashes[-1]
    for left in reversed(hashes[:-1]):
        acc = node_hash(left, acc)
    return acc


def range_hash(start: int, end: int, node: NodeLookup) -> bytes:
    return fold([node(n) for n in range_nodes(start, end)])


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """Ranges whose hashes form PATH(index, D[0:size]), in proof order (leaf to root)."""
    if not 0 <= index < size:
        raise ProofRequestError(f"leaf {index} is not in a tree of {size} entries")
    top_down: list[tuple[int, int]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = split_point(hi - lo)
        if index < lo + k:
            top_down.append((lo + k, hi))
            hi = lo + k
        else:
            top_down.append((lo, lo + k))
            lo = lo + k
    return top_down[::-1]


def consistency_ranges(first: int, second: int) -> list[tuple[int, int]]:
    """Ranges whose hashes form PROOF(first, D[0:second]) (RFC 9162 §2.1.4.1), in order."""
    if not 0 <= first <= second:
        raise ProofRequestError(f"no consistency proof from size {first} to size {second}")
    if first in (0, second):
        return []
    top_down: list[tuple[int, int]] = []
    lo, hi, m, whole = 0, second, first, True
    while True:
        n = hi - lo
        if m == n:
            if not whole:
                top_down.append((lo, hi))
            break
        k = split_point(n)
        if m <= k:
            top_down.append((lo + k, hi))
            hi = lo + k
        else:
            top_down.append((lo, lo + k))
            lo, m, whole = lo + k, m - k, False
    return top_down[::-1]


def nodes_for(ranges: Iterable[tuple[int, int]]) -> set[NodeId]:
    """Every stored node a list of ranges needs: fetch them in one query."""
    return {n for start, end in ranges for n in range_nodes(start, end)}


def inclusion_proof(index: int, size: int, node: NodeLookup) -> list[bytes]:
    return [range_hash(a, b, node) for a, b in inclusion_ranges(index, size)]


def consistency_proof(first: int, second: int, node: NodeLookup) -> list[bytes]:
    return [range_hash(a, b, node) for a, b in consistency_ranges(first, second)]


def new_nodes_on_append(index: int, leaf: bytes, node: NodeLookup) -> list[tuple[NodeId, bytes]]:
    """The complete subtrees that appending ``leaf`` at ``index`` completes, leaf first.

    Needs only the left siblings on the right edge (one per trailing one bit of ``index``).
    """
    created: list[tuple[NodeId, bytes]] = [((0, index), leaf)]
    level, position, acc = 0, index, leaf
    while position & 1:
        acc = node_hash(node((level, position - 1)), acc)
        level, position = level + 1, position >> 1
        created.append(((level, position), acc))
    return created


def append_siblings(index: int) -> list[NodeId]:
    """Which stored nodes :func:`new_nodes_on_append` will read for leaf ``index``."""
    needed: list[NodeId] = []
    level, position = 0, index
    while position & 1:
        needed.append((level, position - 1))
        level, position = level + 1, position >> 1
    return needed


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == HASH_SIZE


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 §2.1.3.2: does ``proof`` show ``leaf`` at ``index`` in the tree ``root``?"""
    if not (_is_hash(leaf) and _is_hash(root) and all(_is_hash(p) for p in proof)):
        return False
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2: is the tree ``second_root`` an append-only extension of ``first_root``?"""
    if not (_is_hash(first_root) and _is_hash(second_root) and all(_is_hash(p) for p in proof)):
        return False
    if not 0 <= first <= second:
        return False
    if first == second:
        return not proof and first_root == second_root
    if first == 0:
        # Every tree extends the empty one; there is nothing to prove.
        return not proof and first_root == EMPTY_ROOT
    if not proof:
        return False
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return fr == first_root and sr == second_root and sn == 0


class MerkleTree:
    """An in-memory tree that stores every complete subtree, appended to incrementally.

    Each level is one ``bytearray`` of concatenated 32-byte hashes: a million entries cost
    about 64 MB and no per-node Python objects.
    """

    def __init__(self) -> None:
        self._levels: list[bytearray] = [bytearray()]
        self._size = 0

    @property
    def size(self) -> int:
        return self._size

    def node(self, node_id: NodeId) -> bytes:
        level, index = node_id
        if level >= len(self._levels) or (index + 1) << level > self._size:
            raise ProofRequestError(f"subtree {node_id} is not complete in a tree of {self._size}")
        offset = index * HASH_SIZE
        return bytes(self._levels[level][offset : offset + HASH_SIZE])

    def append_entry(self, entry: bytes) -> int:
        return self.append_leaf(leaf_hash(entry))

    def append_leaf(self, leaf: bytes) -> int:
        """Append a leaf hash; returns its index."""
        index = self._size
        levels = self._levels
        levels[0] += leaf
        level, position, acc = 0, index, leaf
        while position & 1:
            offset = (position - 1) * HASH_SIZE
            acc = node_hash(bytes(levels[level][offset : offset + HASH_SIZE]), acc)
            level, position = level + 1, position >> 1
            if level == len(levels):
                levels.append(bytearray())
            levels[level] += acc
        self._size = index + 1
        return index

    def root(self, size: int | None = None) -> bytes:
        size = self._size if size is None else size
        if not 0 <= size <= self._size:
            raise ProofRequestError(f"no tree of size {size}; the log has {self._size} entries")
        return range_hash(0, size, self.node)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        size = self._size if size is None else size
        if size > self._size:
            raise ProofRequestError(f"no tree of size {size}; the log has {self._size} entries")
        return inclusion_proof(index, size, self.node)

    def consistency_proof(self, first: int, second: int | None = None) -> list[bytes]:
        second = self._size if second is None else second
        if second > self._size:
            raise ProofRequestError(f"no tree of size {second}; the log has {self._size} entries")
        return consistency_proof(first, second, self.node)
