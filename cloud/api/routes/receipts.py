"""Receipts: lot details, verification, the receipt lifecycle, history, proofs, printing.

Handlers translate HTTP to the cloud/receipts modules and back; the SQL lives there. The
operator's signing key is ``app.state.operator_key`` when the app was given one, else it is
read from the PEM file named by ``PW_OPERATOR_KEY_FILE``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from cloud.api.deps import CurrentPrincipal, DbConn
from cloud.receipts import (
    gate,
    ledger,
    lot_verification,
    lots,
    printable,
    proofs,
    records,
    steps,
)
from cloud.receipts.access import Clerk, Forbidden
from contract import load_private_key
from ops.clock import SYSTEM_CLOCK

router = APIRouter(prefix="/api/v1", tags=["receipts"])
log = logging.getLogger(__name__)

T = TypeVar("T")


def operator_key(request: Request) -> Ed25519PrivateKey:
    key = getattr(request.app.state, "operator_key", None)
    if key is None:
        path = os.environ.get("PW_OPERATOR_KEY_FILE")
        if not path:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                "the operator's signing key is not configured (PW_OPERATOR_KEY_FILE)",
            )
        key = load_private_key(Path(path))
        request.app.state.operator_key = key
    return key


OperatorKey = Annotated[Ed25519PrivateKey, Depends(operator_key)]


def clock_now(request: Request) -> datetime:
    """When a step is recorded: ``app.state.clock`` when the app was given one (a simulated
    run's clock, so a release approved in a story is approved in its time), else the system's."""
    return getattr(request.app.state, "clock", SYSTEM_CLOCK).now()


Now = Annotated[datetime, Depends(clock_now)]


def _clerk(principal: Any, key: Ed25519PrivateKey, now: datetime) -> Clerk:
    return Clerk(principal=principal, key=key, now=now)


async def _run(call: Awaitable[T]) -> T:
    try:
        return await call
    except Forbidden as err:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(err)) from None
    except ledger.LedgerError as err:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(err)) from None


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# Columns of a lot that always hold a value: null in a details update is refused, not stored.
_NOT_NULL = ("depositor", "goods_kind", "pieces", "quality", "packaging", "unit", "marks",
             "currency")


class LotDetails(_In):
    depositor: str | None = None
    goods_kind: str | None = None
    pieces: int | None = Field(None, ge=0)
    zone: str | None = None
    quality: str | None = None
    packaging: str | None = None
    quantity: Decimal | None = Field(None, ge=0)
    unit: str | None = None
    marks: str | None = None
    unit_value: Decimal | None = Field(None, ge=0)
    currency: str | None = None
    fence: str | None = None
    tag_pattern: str | None = None
    expected_labels: list[str] | None = None
    temperature_c_min: float | None = Field(None, ge=-273.15, le=1000)
    temperature_c_max: float | None = Field(None, ge=-273.15, le=1000)
    humidity_pct_min: float | None = Field(None, ge=0, le=100)
    humidity_pct_max: float | None = Field(None, ge=0, le=100)
    authorised_vehicles: list[str] | None = None
    epcs: list[str] | None = Field(None, max_length=100_000)

    @model_validator(mode="after")
    def _no_null_where_a_value_is_kept(self) -> LotDetails:
        nulls = [f for f in _NOT_NULL if f in self.model_fields_set and getattr(self, f) is None]
        if nulls:
            raise ValueError(f"{', '.join(nulls)} may be left out but not null")
        return self


class IssueTerms(_In):
    number: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    holder: str | None = None
    storage_period: dict[str, str] | None = None
    insurance: dict[str, str] | None = None
    issue_place: str | None = None
    tolerance: float = Field(lot_verification.DEFAULT_TOLERANCE, ge=0, lt=1)


class PledgeBody(_In):
    pledgee: str = Field(min_length=1)


class ReleaseBody(_In):
    quantity: Decimal = Field(ge=0)
    pieces: int = Field(ge=0)
    tags: list[str] = Field(default_factory=list)
    vehicle: str | None = None


class SplitPartBody(_In):
    number: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    quantity: Decimal = Field(gt=0)
    pieces: int = Field(gt=0)
    tags: list[str]


class SplitBody(_In):
    parts: list[SplitPartBody] = Field(min_length=2, max_length=100)


class TransferBody(_In):
    new_holder: str = Field(min_length=1)
    endorsed_by: str = Field(min_length=1)


class CancelBody(_In):
    reason: str = Field(min_length=1, max_length=2000)


# --- lots -------------------------------------------------------------------------------------


@router.put("/lots/{lot_id}/details")
async def set_lot_details(
    lot_id: str, body: LotDetails, conn: DbConn, principal: CurrentPrincipal, key: OperatorKey,
    *, now: Now,
) -> dict[str, Any]:
    """Describe the goods as the receipt will: quality, packaging, quantity, fence, tags..."""
    details = body.model_dump(exclude_unset=True, exclude={"epcs"})
    return await _run(
        lots.set_lot_details(conn, _clerk(principal, key, now), lot_id, details, body.epcs)
    )


@router.get("/lots/{lot_id}/details")
async def get_lot_details(lot_id: str, conn: DbConn, principal: CurrentPrincipal) -> dict[str, Any]:
    return await _run(lots.lot_details(conn, principal, lot_id))


@router.post("/lots/{lot_id}/verify")
async def verify_lot(
    lot_id: str,
    conn: DbConn,
    principal: CurrentPrincipal,
    key: OperatorKey,
    *, now: Now,
    tolerance: float = Query(lot_verification.DEFAULT_TOLERANCE, ge=0, lt=1),
) -> dict[str, Any]:
    """Check the goods now (tags present, inside the fence, no theft alert) and log it."""
    clerk = _clerk(principal, key, now)
    result = await _run(lot_verification.verify_lot(conn, clerk, lot_id, tolerance))
    return result.as_json()


@router.post("/lots/{lot_id}/receipts", status_code=status.HTTP_201_CREATED, response_model=None)
async def issue_receipt(
    lot_id: str, body: IssueTerms, conn: DbConn, principal: CurrentPrincipal, key: OperatorKey,
    *, now: Now,
) -> dict[str, Any] | JSONResponse:
    """Issue a receipt when the goods are verified present; 409 lists what is missing."""
    terms = body.model_dump(exclude={"tolerance"})
    result, receipt = await _run(
        steps.issue_receipt(
            conn, _clerk(principal, key, now), lot_id, terms=terms, tolerance=body.tolerance
        )
    )
    if receipt is None:
        # Returned, not raised, so the failed verification still commits as evidence.
        return JSONResponse(
            {
                "detail": f"lot {lot_id} is not verified present; no receipt issued",
                "missing": list(result.check.missing),
                "verification": result.as_json(),
            },
            status_code=status.HTTP_409_CONFLICT,
        )
    return {"receipt": receipt, "verification": result.as_json()}


# --- receipts ---------------------------------------------------------------------------------


@router.get("/receipts")
async def list_receipts(
    conn: DbConn,
    principal: CurrentPrincipal,
    status_: Annotated[
        Literal["issued", "pledged", "partly_released", "released", "cancelled", "split"] | None,
        Query(alias="status"),
    ] = None,
) -> list[dict[str, Any]]:
    return await _run(records.list_receipts(conn, principal, status=status_))


@router.get("/receipts/{number}")
async def get_receipt(number: str, conn: DbConn, principal: CurrentPrincipal) -> dict[str, Any]:
    return await _run(records.get_receipt(conn, principal, number))


@router.post("/receipts/{number}/pledge")
async def pledge(
    number: str, body: PledgeBody, conn: DbConn, principal: CurrentPrincipal, key: OperatorKey,
    *, now: Now,
) -> dict[str, Any]:
    return await _run(steps.pledge(conn, _clerk(principal, key, now), number, body.pledgee))


@router.post("/receipts/{number}/releases", status_code=status.HTTP_201_CREATED)
async def request_release(
    number: str, body: ReleaseBody, conn: DbConn, principal: CurrentPrincipal, now: Now
) -> dict[str, Any]:
    """Ask to take goods out; the pledgee approves with its own API key."""
    return await _run(
        steps.request_release(
            conn,
            principal,
            number,
            quantity=body.quantity,
            pieces=body.pieces,
            tags=body.tags,
            vehicle=body.vehicle,
            now=now,
        )
    )


@router.get("/receipts/{number}/releases")
async def list_releases(
    number: str, conn: DbConn, principal: CurrentPrincipal
) -> list[dict[str, Any]]:
    return await _run(steps.list_releases(conn, principal, number))


@router.post("/receipts/{number}/releases/{request_id}/approve")
async def approve_release(
    number: str, request_id: int, conn: DbConn, principal: CurrentPrincipal, key: OperatorKey,
    *, now: Now,
) -> dict[str, Any]:
    return await _run(
        steps.decide_release(
            conn, _clerk(principal, key, now), number, request_id=request_id, approve=True
        )
    )


@router.post("/receipts/{number}/releases/{request_id}/reject")
async def reject_release(
    number: str, request_id: int, conn: DbConn, principal: CurrentPrincipal, key: OperatorKey,
    *, now: Now,
) -> dict[str, Any]:
    return await _run(
        steps.decide_release(
            conn, _clerk(principal, key, now), number, request_id=request_id, approve=False
        )
    )


@router.post("/receipts/{number}/split", status_code=status.HTTP_201_CREATED)
async def split(
    number: str, body: SplitBody, conn: DbConn, principal: CurrentPrincipal, key: OperatorKey,
    *, now: Now,
) -> list[dict[str, Any]]:
    parts = [p.model_dump() for p in body.parts]
    return await _run(steps.split(conn, _clerk(principal, key, now), number, parts))


@router.post("/receipts/{number}/transfer")
async def transfer(
    number: str, body: TransferBody, conn: DbConn, principal: CurrentPrincipal, key: OperatorKey,
    *, now: Now,
) -> dict[str, Any]:
    return await _run(
        steps.transfer(
            conn,
            _clerk(principal, key, now),
            number,
            new_holder=body.new_holder,
            endorsed_by=body.endorsed_by,
        )
    )


@router.post("/receipts/{number}/cancel")
async def cancel(
    number: str, body: CancelBody, conn: DbConn, principal: CurrentPrincipal, key: OperatorKey,
    *, now: Now,
) -> dict[str, Any]:
    return await _run(steps.cancel(conn, _clerk(principal, key, now), number, body.reason))


@router.get("/receipts/{number}/history")
async def history(number: str, conn: DbConn, principal: CurrentPrincipal) -> list[dict[str, Any]]:
    return await _run(proofs.history(conn, principal, number))


@router.get("/receipts/{number}/bundle")
async def bundle(
    number: str, conn: DbConn, principal: CurrentPrincipal, key: OperatorKey,
    *, now: Now,
) -> dict[str, Any]:
    """The receipt, its ledger entries and their proofs: what `receipts verify` checks."""
    return await _run(proofs.bundle(conn, _clerk(principal, key, now), number))


@router.get("/receipts/{number}/verify")
async def public_status(
    number: str, conn: DbConn, digest: str | None = Query(None, pattern=r"^[0-9a-f]{64}$")
) -> dict[str, Any]:
    """Public: what the QR code on a printed receipt asks (is this version current?)."""
    return await _run(proofs.public_status(conn, number, digest))


def _verify_url(request: Request, receipt: dict[str, Any]) -> str:
    base = str(request.base_url).rstrip("/")
    return f"{base}/api/v1/receipts/{receipt['number']}/verify?digest={receipt['document_sha256']}"


# The receipt font, for the HTML receipt and the map (@font-face): public, like the page
# fonts of any site. Cached for 30 days (with an ETag) so the map does not fetch 10 MB per load.
_FONT_CACHE = "public, max-age=2592000"


@router.get("/fonts/receipt.ttf", include_in_schema=False)
async def receipt_font_file(request: Request) -> Response:
    try:
        font = await asyncio.to_thread(printable.receipt_font)
        stat = font.path.stat()
    except printable.FontUnavailable as err:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(err)) from None
    except OSError as err:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"font: {err}") from None
    headers = {"Cache-Control": _FONT_CACHE, "ETag": f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"'}
    # A revalidation after max-age costs a few bytes, not the 10 MB again.
    if request.headers.get("if-none-match") == headers["ETag"]:
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return FileResponse(font.path, media_type="font/ttf", headers=headers)


@router.get("/fonts/OFL.txt", include_in_schema=False)
async def receipt_font_licence() -> FileResponse:
    """The font's licence (SIL OFL 1.1), shipped with the font by its npm package."""
    if not printable.FONT_LICENCE.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, "the font's licence is not installed")
    return FileResponse(printable.FONT_LICENCE, media_type="text/plain; charset=utf-8",
                        headers={"Cache-Control": _FONT_CACHE})


@router.get("/receipts/{number}/print", response_class=HTMLResponse)
async def print_html(
    number: str, request: Request, conn: DbConn, principal: CurrentPrincipal
) -> HTMLResponse:
    receipt = await _run(records.get_receipt(conn, principal, number))
    return HTMLResponse(printable.receipt_html(receipt, _verify_url(request, receipt)))


@router.get("/receipts/{number}/print.pdf")
async def print_pdf(
    number: str, request: Request, conn: DbConn, principal: CurrentPrincipal
) -> Response:
    receipt = await _run(records.get_receipt(conn, principal, number))
    try:
        # Parsing the 10 MB font takes a second or two of CPU: off the event loop.
        pdf = await asyncio.to_thread(printable.receipt_pdf, receipt, _verify_url(request, receipt))
    except printable.FontUnavailable as err:
        # Never a partial receipt: a document with blank parties is worse than none.
        log.error("receipt %s not printed: %s", number, err)
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, f"the receipt cannot be printed: {err}"
        ) from None
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{number}.pdf"'},
    )


@router.get("/sites/{site_id}/authorised-vehicles")
async def authorised_vehicles(
    site_id: str, conn: DbConn, principal: CurrentPrincipal, now: Now
) -> dict[str, Any]:
    """The gate list for the site's cameras (the ``cmd/authorised_vehicles`` body)."""
    return await _run(gate.authorised_vehicles(conn, principal, site_id, now))


# --- the ledger (public: hashes and signatures only) -------------------------------------------


@router.get("/ledger/tree-head")
async def latest_tree_head(conn: DbConn) -> dict[str, Any]:
    head = await ledger.latest_tree_head(conn)
    if head is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no tree head has been signed yet")
    return head.as_json()


@router.get("/ledger/consistency")
async def consistency(conn: DbConn, key: OperatorKey, first: int = Query(ge=0)) -> dict[str, Any]:
    """The newest signed head and the proof that it extends the tree of size ``first``."""
    return await _run(proofs.later_head(conn, first, key, datetime.now(UTC)))
