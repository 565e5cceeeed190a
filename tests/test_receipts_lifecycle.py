"""The receipt lifecycle, the issue precondition and signed tree heads, as values."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.receipts import lifecycle as lc
from cloud.receipts.issuance import LotVerification, check_issue
from cloud.receipts.lifecycle import ReceiptStatus, TransitionRefused
from cloud.receipts.tree_head import (
    SignedTreeHead,
    TreeHeadInvalid,
    sign_tree_head,
    verify_tree_head,
)

TAGS = frozenset(f"E2800000{i:04X}" for i in range(10))


def issued() -> lc.ReceiptState:
    return lc.ReceiptState(
        number="WR-1",
        status=ReceiptStatus.ISSUED,
        holder="depositor-a",
        pledgee=None,
        unit="t",
        holding=lc.Holding(Decimal("100.000"), 10, TAGS),
    )


def pledged() -> lc.ReceiptState:
    return lc.apply(issued(), lc.Pledge("bank-1")).receipt


def refused(state: lc.ReceiptState, step: lc.Step) -> str:
    with pytest.raises(TransitionRefused) as err:
        lc.apply(state, step)
    return err.value.reason


def release(q: str, pieces: int, tags: frozenset[str], by: str | None = "bank-1") -> lc.Release:
    return lc.Release(Decimal(q), pieces, tags, by)


def test_pledge_then_partial_then_full_release_then_cancel() -> None:
    state = pledged()
    assert state.status is ReceiptStatus.PLEDGED and state.pledgee == "bank-1"
    first = sorted(TAGS)[:4]
    state = lc.apply(state, release("40", 4, frozenset(first))).receipt
    assert state.status is ReceiptStatus.PARTLY_RELEASED
    assert state.holding == lc.Holding(Decimal("60.000"), 6, TAGS - set(first))
    state = lc.apply(state, release("60", 6, state.holding.tags)).receipt
    assert state.status is ReceiptStatus.RELEASED
    assert state.holding == lc.Holding(Decimal(0), 0, frozenset())
    state = lc.apply(state, lc.Cancel("goods delivered")).receipt
    assert state.status is ReceiptStatus.CANCELLED


def test_a_receipt_cannot_be_pledged_twice() -> None:
    reason = refused(pledged(), lc.Pledge("bank-2"))
    assert "already pledged to bank-1" in reason


def test_release_needs_the_pledgees_approval() -> None:
    assert "approval of its pledgee bank-1" in refused(
        pledged(), release("10", 1, frozenset(), "bank-2")
    )
    assert "approved by nobody" in refused(pledged(), release("10", 1, frozenset(), None))


def test_release_of_an_unpledged_receipt_is_refused_with_the_way_out() -> None:
    assert "not pledged" in refused(issued(), release("10", 1, frozenset()))


def test_release_cannot_take_more_than_the_receipt_holds_or_foreign_tags() -> None:
    assert "holds 100.000 t / 10 pieces" in refused(pledged(), release("101", 1, frozenset()))
    assert "not held" in refused(pledged(), release("1", 1, frozenset({"FFFF"})))
    assert "negative" in refused(pledged(), release("-1", 1, frozenset()))
    assert "positive" in refused(pledged(), release("0", 0, frozenset()))
    # The last quantity goes with the last pieces and every remaining tag.
    assert "last pieces" in refused(pledged(), release("100", 9, TAGS))
    assert "every tag" in refused(pledged(), release("100", 10, frozenset(sorted(TAGS)[:3])))


@pytest.mark.parametrize(
    ("step", "phrase"),
    [
        (lc.Transfer("depositor-b", "depositor-a"), "released before a transfer"),
        (lc.Cancel("no"), "release the goods before cancelling"),
        (lc.Split((lc.SplitPart("WR-2", Decimal(50), 5, frozenset()),) * 2), "split it before"),
    ],
)
def test_pledged_goods_cannot_be_moved_on_paper(step: lc.Step, phrase: str) -> None:
    assert phrase in refused(pledged(), step)


def test_terminal_states_refuse_everything_with_a_reason() -> None:
    cancelled = lc.apply(issued(), lc.Cancel("returned")).receipt
    for step in (lc.Pledge("bank-1"), lc.Cancel("again"), lc.Transfer("x", "depositor-a")):
        assert "cancelled" in refused(cancelled, step)
    assert lc.allowed_steps(cancelled) == []
    assert lc.allowed_steps(issued()) == ["pledge", "split", "transfer", "cancel"]
    assert lc.allowed_steps(pledged()) == ["release"]


def test_transfer_by_endorsement_of_the_holder_only() -> None:
    state = lc.apply(issued(), lc.Transfer("depositor-b", "depositor-a")).receipt
    assert state.holder == "depositor-b" and state.status is ReceiptStatus.ISSUED
    assert "only the holder depositor-b" in refused(state, lc.Transfer("x", "depositor-a"))
    assert "different" in refused(state, lc.Transfer("depositor-b", "depositor-b"))


def split_parts(tag_groups: list[list[str]], quantities: list[str], pieces: list[int]) -> lc.Split:
    return lc.Split(
        tuple(
            lc.SplitPart(f"WR-1-{i}", Decimal(q), p, frozenset(t))
            for i, (t, q, p) in enumerate(zip(tag_groups, quantities, pieces, strict=True), 1)
        )
    )


def test_split_partitions_tags_and_conserves_quantities() -> None:
    tags = sorted(TAGS)
    result = lc.apply(issued(), split_parts([tags[:3], tags[3:]], ["30.5", "69.5"], [3, 7]))
    assert result.receipt.status is ReceiptStatus.SPLIT
    assert [c.number for c in result.new_receipts] == ["WR-1-1", "WR-1-2"]
    assert all(
        c.status is ReceiptStatus.ISSUED and c.holder == "depositor-a" for c in result.new_receipts
    )
    assert sum((c.holding.quantity for c in result.new_receipts), Decimal(0)) == Decimal("100.000")
    assert frozenset().union(*(c.holding.tags for c in result.new_receipts)) == TAGS
    assert "act on the receipts it was split into" in refused(result.receipt, lc.Pledge("bank-1"))


@pytest.mark.parametrize(
    ("groups", "quantities", "pieces", "phrase"),
    [
        ([slice(0, 3), slice(3, 10)], ["30", "60"], [3, 7], "quantities must be conserved"),
        ([slice(0, 3), slice(3, 10)], ["30", "70"], [3, 6], "add up to 9 pieces"),
        ([slice(0, 4), slice(3, 10)], ["30", "70"], [3, 7], "more than one part"),
        ([slice(0, 3), slice(4, 10)], ["30", "70"], [3, 7], "in no part"),
        ([slice(0, 10)], ["100"], [10], "at least two parts"),
        ([slice(0, 3), slice(3, 10)], ["0", "100"], [3, 7], "positive"),
    ],
)
def test_split_refusals(
    groups: list[slice], quantities: list[str], pieces: list[int], phrase: str
) -> None:
    tags = sorted(TAGS)
    assert phrase in refused(issued(), split_parts([tags[g] for g in groups], quantities, pieces))


def test_split_refuses_duplicate_numbers() -> None:
    part = lc.SplitPart("WR-9", Decimal(50), 5, frozenset())
    assert "distinct" in refused(issued(), lc.Split((part, part)))


# --- the issue precondition ------------------------------------------------------------------


def verification(**changes: object) -> LotVerification:
    base = LotVerification(
        lot_id="LOT-7",
        declared_pieces=100,
        expected_tags=frozenset(f"T{i:03d}" for i in range(100)),
        present_tags=frozenset(f"T{i:03d}" for i in range(99)),
        outside_fence_tags=frozenset(),
        fence="zone-a",
        open_theft_alerts=(),
        verified_at_us=1,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_issue_allowed_when_count_within_tolerance_inside_fence_no_alert() -> None:
    check = check_issue(verification(), tolerance_ratio=0.02)
    assert check.ok and check.counted == 99 and check.tolerance == 2


def test_issue_refused_lists_everything_missing() -> None:
    v = verification(
        present_tags=frozenset(f"T{i:03d}" for i in range(90)) | {"FOREIGN"},
        outside_fence_tags=frozenset({"T001", "T002"}),
        open_theft_alerts=("theft.tag_missing on lot:LOT-7",),
    )
    check = check_issue(v, tolerance_ratio=0.02)
    assert not check.ok
    assert check.counted == 90  # a tag that is not the lot's does not count
    assert check.missing == (
        "90 of the lot's tags are present; 100 pieces are declared (tolerance ±2)",
        "2 tags are outside fence zone-a: T001, T002",
        "open theft alert: theft.tag_missing on lot:LOT-7",
    )


def test_issue_refused_without_fence_or_tags() -> None:
    check = check_issue(verification(fence=None), tolerance_ratio=0.02)
    assert check.missing == ("the lot has no geofence to check the goods against",)
    empty = check_issue(
        verification(expected_tags=frozenset(), present_tags=frozenset(), declared_pieces=0), 0.02
    )
    assert "the lot has no tags registered" in empty.missing
    assert "the lot declares no pieces" in empty.missing


def test_exact_count_needed_with_zero_tolerance() -> None:
    assert not check_issue(verification(), tolerance_ratio=0).ok
    full = frozenset(f"T{i:03d}" for i in range(100))
    assert check_issue(verification(present_tags=full), tolerance_ratio=0).ok


# --- signed tree heads ----------------------------------------------------------------------


def test_tree_head_signature_round_trip_and_tampering() -> None:
    key = Ed25519PrivateKey.generate()
    head = sign_tree_head(key, size=5, root=b"\x11" * 32, timestamp_ms=1_700_000_000_000)
    again = SignedTreeHead.from_json(head.as_json())
    verify_tree_head(again, key.public_key())
    with pytest.raises(TreeHeadInvalid, match="not signed"):
        verify_tree_head(replace(again, size=6), key.public_key())
    with pytest.raises(TreeHeadInvalid, match="not this operator"):
        verify_tree_head(again, Ed25519PrivateKey.generate().public_key())
    with pytest.raises(TreeHeadInvalid, match="lacks 'root'"):
        SignedTreeHead.from_json({k: v for k, v in head.as_json().items() if k != "root"})
    with pytest.raises(TreeHeadInvalid):
        SignedTreeHead.from_json({**head.as_json(), "root": "zz"})
