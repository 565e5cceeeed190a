"""A printable incident report per alert (PDF), and the tags an alert names as missing with
their last read (time, reader, antenna) for the evidence panel."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Response, status

from cloud import console, incident_report
from cloud.api.deps import CurrentPrincipal, DbConn
from cloud.receipts.printable import FontUnavailable

router = APIRouter(prefix="/api/v1/incidents", tags=["console"])


@router.get("/{alert_id}/missing-tags")
async def missing_tags(alert_id: int, conn: DbConn, principal: CurrentPrincipal
                       ) -> list[dict[str, Any]]:
    return await console.missing_tags(conn, principal, alert_id)


@router.get("/{alert_id}/report.pdf", response_class=Response,
            responses={200: {"content": {"application/pdf": {}}}})
async def report(alert_id: int, conn: DbConn, principal: CurrentPrincipal) -> Response:
    """The alert, its timeline (people by name), missing tags, images and ledger proof."""
    incident = await incident_report.gather(conn, principal, alert_id)
    try:
        pdf = incident_report.incident_pdf(incident)
    except FontUnavailable as err:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(err)) from None
    return Response(pdf, media_type="application/pdf", headers={
        "Content-Disposition": f'inline; filename="incident-{alert_id}.pdf"'})
