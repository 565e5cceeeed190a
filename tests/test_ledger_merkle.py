"""The Merkle tree against RFC 6962/9162 published vectors and an independent implementation.

The independent implementation (tests/ledger_reference.py) follows the RFC's recursive
definitions (MTH, PATH, SUBPROOF) over lists of entries and rebuilds roots by the same
recursion: no code or algorithm shared with cloud/receipts/merkle.py, which stores complete
subtrees and verifies with the RFC's iterative bit-walk.
"""

from __future__ import annotations

import pytest

from cloud.receipts import merkle
from cloud.receipts.merkle import MerkleTree, ProofRequestError
from tests.ledger_reference import (
    ref_leaf,
    ref_mth,
    ref_path,
    ref_proof,
    ref_root_from_path,
    ref_verify_consistency,
)

# --- RFC 6962 test vectors (as published in transparency-dev/merkle testonly) ---------------

VECTOR_ENTRIES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
VECTOR_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",  # empty tree
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
H_96A2 = "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"
H_5F08 = "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"
H_6B47 = "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"
H_BC1A = "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"
H_CA85 = "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"
H_D37E = "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"
H_0EBC = "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"
H_6E34 = "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
H_FAC5 = "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"

VECTOR_INCLUSION = [  # (leaf index, tree size, proof)
    (0, 1, []),
    (0, 8, [H_96A2, H_5F08, H_6B47]),
    (5, 8, [H_BC1A, H_CA85, H_D37E]),
    (2, 3, [H_FAC5]),
    (1, 5, [H_6E34, H_5F08, H_BC1A]),
]
VECTOR_CONSISTENCY = [  # (first size, second size, proof)
    (1, 1, []),
    (1, 8, [H_96A2, H_5F08, H_6B47]),
    (6, 8, [H_0EBC, H_CA85, H_D37E]),
    (2, 5, [H_5F08, H_BC1A]),
    (2, 8, [H_5F08, H_6B47]),
]


def entries(n: int) -> list[bytes]:
    return [f"entry-{i}".encode() * (1 + i % 3) for i in range(n)]


def tree_of(items: list[bytes]) -> MerkleTree:
    tree = MerkleTree()
    for item in items:
        tree.append_entry(item)
    return tree


# --- published vectors ----------------------------------------------------------------------


def test_empty_tree_hashes_to_sha256_of_nothing() -> None:
    assert merkle.EMPTY_ROOT.hex() == VECTOR_ROOTS[0]
    assert MerkleTree().root().hex() == VECTOR_ROOTS[0]


def test_roots_of_small_trees_match_rfc6962_vectors() -> None:
    tree = MerkleTree()
    for n, entry in enumerate(VECTOR_ENTRIES, start=1):
        tree.append_entry(entry)
        assert tree.root().hex() == VECTOR_ROOTS[n], f"size {n}"
    for n in range(len(VECTOR_ENTRIES) + 1):
        assert tree.root(n).hex() == VECTOR_ROOTS[n], f"historical root at size {n}"


@pytest.mark.parametrize(("index", "size", "expected"), VECTOR_INCLUSION)
def test_inclusion_proofs_match_vectors(index: int, size: int, expected: list[str]) -> None:
    tree = tree_of(VECTOR_ENTRIES)
    proof = tree.inclusion_proof(index, size)
    assert [p.hex() for p in proof] == expected
    root = bytes.fromhex(VECTOR_ROOTS[size])
    leaf = merkle.leaf_hash(VECTOR_ENTRIES[index])
    assert merkle.verify_inclusion(leaf, index, size, proof, root)


@pytest.mark.parametrize(("first", "second", "expected"), VECTOR_CONSISTENCY)
def test_consistency_proofs_match_vectors(first: int, second: int, expected: list[str]) -> None:
    tree = tree_of(VECTOR_ENTRIES)
    proof = tree.consistency_proof(first, second)
    assert [p.hex() for p in proof] == expected
    r1, r2 = bytes.fromhex(VECTOR_ROOTS[first]), bytes.fromhex(VECTOR_ROOTS[second])
    assert merkle.verify_consistency(first, second, r1, r2, proof)


# --- against the independent implementation -------------------------------------------------


def test_incremental_roots_equal_recursive_mth_for_every_size() -> None:
    items = entries(130)
    tree = MerkleTree()
    assert tree.root() == ref_mth([])
    for n, item in enumerate(items, start=1):
        tree.append_entry(item)
        assert tree.root() == ref_mth(items[:n]), f"size {n}"


def test_every_inclusion_proof_equals_rfc_path_and_verifies_independently() -> None:
    items = entries(40)
    tree = tree_of(items)
    for size in range(1, 41):
        root = ref_mth(items[:size])
        for index in range(size):
            proof = tree.inclusion_proof(index, size)
            assert proof == ref_path(index, items[:size]), (index, size)
            assert ref_root_from_path(index, size, ref_leaf(items[index]), proof) == root
            assert merkle.verify_inclusion(ref_leaf(items[index]), index, size, proof, root)


def test_every_consistency_proof_equals_rfc_proof_and_verifies_independently() -> None:
    items = entries(40)
    tree = tree_of(items)
    for second in range(1, 41):
        r2 = ref_mth(items[:second])
        for first in range(1, second + 1):
            r1 = ref_mth(items[:first])
            proof = tree.consistency_proof(first, second)
            assert proof == ref_proof(first, items[:second]), (first, second)
            assert ref_verify_consistency(first, second, r1, r2, proof), (first, second)
            assert merkle.verify_consistency(first, second, r1, r2, proof), (first, second)


def test_proofs_from_a_large_tree_verify_independently() -> None:
    items = entries(1000)
    tree = tree_of(items)
    root = tree.root()
    assert root == ref_mth(items)
    for index in (0, 1, 511, 512, 767, 998, 999):
        proof = tree.inclusion_proof(index)
        assert ref_root_from_path(index, 1000, ref_leaf(items[index]), proof) == root
    for first in (1, 3, 256, 511, 512, 513, 999):
        proof = tree.consistency_proof(first)
        assert ref_verify_consistency(first, 1000, ref_mth(items[:first]), root, proof)


# --- rejection, including the RFC 9162 edge cases ----------------------------------------


def test_consistency_verifier_requires_the_second_size_to_be_consumed_fully() -> None:
    # The proof from 1 to 2 leaves is [leaf 1]; its hashes reproduce both roots even when the
    # claimed second size is 4, so only the "second size consumed" check (sn == 0) refuses it.
    items = entries(4)
    tree = tree_of(items)
    proof = tree.consistency_proof(1, 2)
    r1, r2 = tree.root(1), tree.root(2)
    assert merkle.verify_consistency(1, 2, r1, r2, proof)
    assert not merkle.verify_consistency(1, 4, r1, r2, proof)
    assert not merkle.verify_consistency(1, 3, r1, r2, proof)


def test_inclusion_verifier_requires_the_tree_size_to_be_consumed_fully() -> None:
    items = entries(4)
    tree = tree_of(items)
    proof = tree.inclusion_proof(0, 2)
    leaf = merkle.leaf_hash(items[0])
    assert merkle.verify_inclusion(leaf, 0, 2, proof, tree.root(2))
    assert not merkle.verify_inclusion(leaf, 0, 4, proof, tree.root(2))
    assert not merkle.verify_inclusion(leaf, 0, 3, proof, tree.root(2))


def test_consistency_degenerate_sizes() -> None:
    tree = tree_of(entries(8))
    r4, r5 = tree.root(4), tree.root(5)
    assert merkle.verify_consistency(4, 4, r4, r4, [])
    assert not merkle.verify_consistency(4, 4, r4, r5, [])
    assert not merkle.verify_consistency(4, 4, r4, r4, [r4])
    assert merkle.verify_consistency(0, 8, merkle.EMPTY_ROOT, tree.root(), [])
    assert not merkle.verify_consistency(0, 8, r4, tree.root(), [])
    assert not merkle.verify_consistency(5, 4, r5, r4, tree.consistency_proof(4, 5))
    # A non-empty first tree always needs a proof.
    assert not merkle.verify_consistency(3, 8, tree.root(3), tree.root(), [])


def test_mangled_proofs_are_rejected() -> None:
    items = entries(21)
    tree = tree_of(items)
    root = tree.root()
    for index in range(21):
        leaf = merkle.leaf_hash(items[index])
        proof = tree.inclusion_proof(index)
        flipped = [*proof[:-1], bytes([proof[-1][0] ^ 1]) + proof[-1][1:]]
        assert not merkle.verify_inclusion(leaf, index, 21, flipped, root)
        assert not merkle.verify_inclusion(leaf, index, 21, proof[:-1], root)
        assert not merkle.verify_inclusion(leaf, index, 21, [*proof, root], root)
        assert not merkle.verify_inclusion(leaf, (index + 1) % 21, 21, proof, root)
        assert not merkle.verify_inclusion(leaf, index, 21, proof, tree.root(20))
    for first in range(1, 21):
        proof = tree.consistency_proof(first)
        r1 = tree.root(first)
        flipped = [bytes([proof[0][0] ^ 0x80]) + proof[0][1:], *proof[1:]]
        assert not merkle.verify_consistency(first, 21, r1, root, flipped)
        assert not merkle.verify_consistency(first, 21, r1, root, proof[:-1])
        assert not merkle.verify_consistency(first, 21, r1, root, [*proof, root])
        assert not merkle.verify_consistency(first, 21, tree.root(first - 1), root, proof)


def test_short_hashes_are_rejected_not_crashed() -> None:
    tree = tree_of(entries(8))
    proof = tree.inclusion_proof(5)
    leaf = tree.node((0, 5))
    assert not merkle.verify_inclusion(leaf[:31], 5, 8, proof, tree.root())
    assert not merkle.verify_inclusion(leaf, 5, 8, [proof[0][:31], *proof[1:]], tree.root())
    assert not merkle.verify_consistency(6, 8, tree.root(6)[:31], tree.root(), [])


def test_proofs_for_sizes_the_log_does_not_have_are_refused() -> None:
    tree = tree_of(entries(8))
    with pytest.raises(ProofRequestError):
        tree.inclusion_proof(8, 8)
    with pytest.raises(ProofRequestError):
        tree.inclusion_proof(0, 9)
    with pytest.raises(ProofRequestError):
        tree.consistency_proof(5, 3)
    with pytest.raises(ProofRequestError):
        tree.consistency_proof(1, 9)
    with pytest.raises(ProofRequestError):
        tree.root(9)


def test_append_touches_only_the_right_edge() -> None:
    # What the database ledger relies on: appending leaf i reads only append_siblings(i) and
    # writes the nodes it reports, and those are the nodes the in-memory tree holds.
    tree = MerkleTree()
    stored: dict[merkle.NodeId, bytes] = {}
    for i, item in enumerate(entries(70)):
        reads: list[merkle.NodeId] = []

        def lookup(node_id: merkle.NodeId, reads: list[merkle.NodeId] = reads) -> bytes:
            reads.append(node_id)
            return stored[node_id]

        created = merkle.new_nodes_on_append(i, merkle.leaf_hash(item), lookup)
        assert reads == merkle.append_siblings(i)
        stored.update(created)
        tree.append_entry(item)
        for node_id, value in created:
            assert tree.node(node_id) == value
    assert merkle.range_hash(0, 70, stored.__getitem__) == tree.root()
