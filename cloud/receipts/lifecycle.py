"""The receipt lifecycle as a pure state machine.

Theory of operation. A receipt is a value (:class:`ReceiptState`); a lifecycle step is a small
frozen event (:class:`Pledge`, :class:`Release`, :class:`Split`, :class:`Transfer`,
:class:`Cancel`). :func:`apply` returns the receipt after the step (and, for a split, the new
receipts) or raises :class:`TransitionRefused` with the reason a person can act on. Nothing here
reads a clock or a database; ``steps.py`` feeds it rows and records what it returns.

    issued ──pledge──► pledged ──release (part)──► partly_released ──release (rest)──► released
      │  ▲                │                              │                                  │
      │  └─transfer       └──────release (all)───────────┴──────────────────────────────► released
      ├──split──► split (terminal; the parts are new issued receipts)                     │
      └──cancel─► cancelled ◄──────────────────────────────cancel───────────────────────────┘

Pledged goods belong to the pledgee's security: they cannot be transferred, split, pledged
again or cancelled, and leave only by a release the pledgee approves.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from enum import StrEnum


class ReceiptStatus(StrEnum):
    ISSUED = "issued"
    PLEDGED = "pledged"
    PARTLY_RELEASED = "partly_released"
    RELEASED = "released"
    CANCELLED = "cancelled"
    SPLIT = "split"


class TransitionRefused(Exception):
    """The step is not allowed for this receipt now; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Holding:
    """What a receipt still stands for."""

    quantity: Decimal
    pieces: int
    tags: frozenset[str]


@dataclass(frozen=True, slots=True)
class ReceiptState:
    number: str
    status: ReceiptStatus
    holder: str
    pledgee: str | None
    unit: str
    holding: Holding


@dataclass(frozen=True, slots=True)
class Pledge:
    pledgee: str


@dataclass(frozen=True, slots=True)
class Release:
    quantity: Decimal
    pieces: int
    tags: frozenset[str]
    approved_by: str | None  # the financier whose API key approved the release


@dataclass(frozen=True, slots=True)
class SplitPart:
    number: str
    quantity: Decimal
    pieces: int
    tags: frozenset[str]


@dataclass(frozen=True, slots=True)
class Split:
    parts: tuple[SplitPart, ...]


@dataclass(frozen=True, slots=True)
class Transfer:
    new_holder: str
    endorsed_by: str  # must be the current holder: endorsement is the holder's act


@dataclass(frozen=True, slots=True)
class Cancel:
    reason: str


Step = Pledge | Release | Split | Transfer | Cancel


@dataclass(frozen=True, slots=True)
class Transition:
    receipt: ReceiptState
    new_receipts: tuple[ReceiptState, ...] = ()


STEP_NAMES: dict[type, str] = {
    Pledge: "pledge",
    Release: "release",
    Split: "split",
    Transfer: "transfer",
    Cancel: "cancel",
}

# state -> step -> why it is refused (absent: allowed, subject to the step's own checks)
_REFUSED: dict[ReceiptStatus, dict[type, str]] = {
    ReceiptStatus.ISSUED: {
        Release: "the receipt is not pledged; the holder takes goods back by cancelling it",
    },
    ReceiptStatus.PLEDGED: {
        Pledge: "already pledged to {pledgee}; a receipt cannot be pledged twice",
        Split: "pledged to {pledgee}; split it before pledging or after release",
        Transfer: "pledged to {pledgee}; the pledge must be released before a transfer",
        Cancel: "pledged to {pledgee}; release the goods before cancelling",
    },
    ReceiptStatus.PARTLY_RELEASED: {
        Pledge: "already pledged to {pledgee}; a receipt cannot be pledged twice",
        Split: "partly released under the pledge to {pledgee}; it cannot be split",
        Transfer: "pledged to {pledgee}; the pledge must be released before a transfer",
        Cancel: "goods are still pledged to {pledgee}; release the rest before cancelling",
    },
    ReceiptStatus.RELEASED: {
        Pledge: "all goods were released; nothing is left to pledge",
        Release: "all goods were already released",
        Split: "all goods were released; nothing is left to split",
        Transfer: "all goods were released; nothing is left to transfer",
    },
    ReceiptStatus.CANCELLED: {
        Pledge: "the receipt is cancelled",
        Release: "the receipt is cancelled",
        Split: "the receipt is cancelled",
        Transfer: "the receipt is cancelled",
        Cancel: "the receipt is already cancelled",
    },
    ReceiptStatus.SPLIT: {
        Pledge: "the receipt was split; act on the receipts it was split into",
        Release: "the receipt was split; act on the receipts it was split into",
        Split: "the receipt was split; act on the receipts it was split into",
        Transfer: "the receipt was split; act on the receipts it was split into",
        Cancel: "the receipt was split; act on the receipts it was split into",
    },
}


def allowed_steps(state: ReceiptState) -> list[str]:
    refused = _REFUSED[state.status]
    return [name for step, name in STEP_NAMES.items() if step not in refused]


def apply(state: ReceiptState, step: Step) -> Transition:
    refused = _REFUSED[state.status].get(type(step))
    if refused is not None:
        raise TransitionRefused(
            f"cannot {STEP_NAMES[type(step)]} receipt {state.number} ({state.status}): "
            + refused.format(pledgee=state.pledgee)
        )
    if isinstance(step, Pledge):
        return Transition(_pledge(state, step))
    if isinstance(step, Release):
        return Transition(_release(state, step))
    if isinstance(step, Split):
        return _split(state, step)
    if isinstance(step, Transfer):
        return Transition(_transfer(state, step))
    return Transition(replace(state, status=ReceiptStatus.CANCELLED))


def _pledge(state: ReceiptState, step: Pledge) -> ReceiptState:
    if not step.pledgee:
        raise TransitionRefused("a pledge needs a pledgee")
    if step.pledgee == state.holder:
        raise TransitionRefused(
            f"{step.pledgee} holds receipt {state.number}; cannot pledge to self"
        )
    return replace(state, status=ReceiptStatus.PLEDGED, pledgee=step.pledgee)


def _release(state: ReceiptState, step: Release) -> ReceiptState:
    if step.approved_by != state.pledgee:
        who = step.approved_by or "nobody"
        raise TransitionRefused(
            f"releasing goods of receipt {state.number} needs the approval of its pledgee "
            f"{state.pledgee}; approved by {who}"
        )
    held = state.holding
    if step.quantity < 0 or step.pieces < 0:
        raise TransitionRefused("released quantity and pieces cannot be negative")
    if step.quantity == 0 and step.pieces == 0:
        raise TransitionRefused("a release must take out a positive quantity or pieces")
    if step.quantity > held.quantity or step.pieces > held.pieces:
        raise TransitionRefused(
            f"cannot release {step.quantity} {state.unit} / {step.pieces} pieces: receipt "
            f"{state.number} holds {held.quantity} {state.unit} / {held.pieces} pieces"
        )
    unknown = step.tags - held.tags
    if unknown:
        raise TransitionRefused(
            f"tags {', '.join(sorted(unknown)[:5])} are not held by receipt {state.number}"
        )
    left = Holding(held.quantity - step.quantity, held.pieces - step.pieces, held.tags - step.tags)
    if (left.quantity == 0) != (left.pieces == 0):
        raise TransitionRefused(
            "a release must take the last pieces with the last quantity: it would leave "
            f"{left.quantity} {state.unit} in {left.pieces} pieces"
        )
    done = left.quantity == 0
    if done and left.tags:
        raise TransitionRefused(
            f"a full release must take every tag; {len(left.tags)} would stay on the receipt"
        )
    status = ReceiptStatus.RELEASED if done else ReceiptStatus.PARTLY_RELEASED
    return replace(state, status=status, holding=left)


def _split(state: ReceiptState, step: Split) -> Transition:
    parts = step.parts
    if len(parts) < 2:
        raise TransitionRefused("a split needs at least two parts")
    numbers = [p.number for p in parts]
    if len(set(numbers)) != len(numbers) or state.number in numbers:
        raise TransitionRefused("split parts need distinct new receipt numbers")
    held = state.holding
    for part in parts:
        if part.quantity <= 0 or part.pieces <= 0:
            raise TransitionRefused(f"part {part.number} must have positive quantity and pieces")
    total_quantity = sum((p.quantity for p in parts), Decimal(0))
    if total_quantity != held.quantity:
        raise TransitionRefused(
            f"parts add up to {total_quantity} {state.unit}, the receipt holds "
            f"{held.quantity} {state.unit}; quantities must be conserved"
        )
    total_pieces = sum(p.pieces for p in parts)
    if total_pieces != held.pieces:
        raise TransitionRefused(
            f"parts add up to {total_pieces} pieces, the receipt holds {held.pieces}"
        )
    seen: set[str] = set()
    for part in parts:
        overlap = seen & part.tags
        if overlap:
            raise TransitionRefused(
                f"tag {sorted(overlap)[0]} is in more than one part; tags must be partitioned"
            )
        seen |= part.tags
    if seen != held.tags:
        missing, extra = held.tags - seen, seen - held.tags
        problem = (
            f"{len(missing)} tags of the receipt are in no part (e.g. {sorted(missing)[0]})"
            if missing
            else f"tag {sorted(extra)[0]} is not held by receipt {state.number}"
        )
        raise TransitionRefused(f"tags must be partitioned: {problem}")
    children = tuple(
        ReceiptState(
            number=p.number,
            status=ReceiptStatus.ISSUED,
            holder=state.holder,
            pledgee=None,
            unit=state.unit,
            holding=Holding(p.quantity, p.pieces, p.tags),
        )
        for p in parts
    )
    return Transition(replace(state, status=ReceiptStatus.SPLIT), children)


def _transfer(state: ReceiptState, step: Transfer) -> ReceiptState:
    if step.endorsed_by != state.holder:
        raise TransitionRefused(
            f"only the holder {state.holder} can endorse receipt {state.number}, "
            f"not {step.endorsed_by}"
        )
    if not step.new_holder or step.new_holder == state.holder:
        raise TransitionRefused("a transfer needs a new holder different from the current one")
    return replace(state, holder=step.new_holder)
