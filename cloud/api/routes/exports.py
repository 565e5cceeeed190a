"""The alert history (every state, filtered) as JSON and CSV, and a lot's presence and sensor
series as CSV, for the console's history view and for spreadsheets."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from cloud import console
from cloud.api.deps import CurrentPrincipal, DbConn
from cloud.api.schemas import ApiTime

router = APIRouter(tags=["console"])

ALERT_CSV_COLUMNS = (
    "id", "alert_type", "severity", "state", "site_id", "lot_id", "subject", "first_seen_at",
    "last_seen_at", "count", "acknowledged_at", "acknowledged_by", "resolved_at", "resolved_by",
    "explanation",
)
SERIES_CSV_COLUMNS = ("observed_at", "series", "source", "quantity", "value", "unit",
                      "expected", "missing", "unknown")
MAX_SERIES = timedelta(days=31)


class AlertFilter(BaseModel):
    """Which alerts: any of the severities and types given, one site, one state, a time range."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    severity: list[Literal["critical", "major", "minor", "warning"]] = Field(default_factory=list)
    alert_type: list[str] = Field(default_factory=list, alias="type")
    site_id: str | None = Field(None, alias="site")
    state: Literal["open", "acknowledged", "resolved", "active"] | None = None
    start: ApiTime | None = Field(None, alias="from")
    end: ApiTime | None = Field(None, alias="to")
    limit: int = Field(500, ge=1, le=5000)


Filter = Annotated[AlertFilter, Query()]


async def _history(conn: DbConn, principal: CurrentPrincipal, f: AlertFilter
                   ) -> list[dict[str, Any]]:
    return await console.alert_history(
        conn, principal, severity=list(f.severity), alert_type=f.alert_type, site_id=f.site_id,
        state=f.state, start=f.start, end=f.end, limit=f.limit)


# The exports answer CSV, and say so in the schema (clients and schemathesis go by it).
CSV: dict[int | str, dict[str, object]] = {200: {"content": {"text/csv": {}}}}


@router.get("/api/v1/alert-history")
async def alert_history(f: Filter, conn: DbConn, principal: CurrentPrincipal
                        ) -> list[dict[str, Any]]:
    """Alerts of every state, resolved ones included, newest first."""
    return await _history(conn, principal, f)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    text = str(value)
    # A cell a spreadsheet would run as a formula is quoted (CSV injection).
    return f"'{text}" if text[:1] in ("=", "+", "-", "@") and not _number(text) else text


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _csv(columns: tuple[str, ...], rows: list[dict[str, Any]], filename: str) -> Response:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    # A BOM so that spreadsheet programs read the Chinese text as UTF-8.
    return Response("\ufeff" + out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@router.get("/api/v1/exports/alerts.csv", response_class=Response, responses=CSV)
async def alerts_csv(f: Filter, conn: DbConn, principal: CurrentPrincipal) -> Response:
    return _csv(ALERT_CSV_COLUMNS, await _history(conn, principal, f), "alerts.csv")


@router.get("/api/v1/exports/lots/{lot_id}/series.csv", response_class=Response,
            responses=CSV)
async def lot_series_csv(
    lot_id: str, conn: DbConn, principal: CurrentPrincipal,
    start: Annotated[ApiTime | None, Query(alias="from")] = None,
    end: Annotated[ApiTime | None, Query(alias="to")] = None,
) -> Response:
    """The lot's tag counts (present, missing, unknown of expected) and sensor readings."""
    end = end or datetime.now(UTC)
    start = start or end - timedelta(days=1)
    if end < start or end - start > MAX_SERIES:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            "from must be before to, at most 31 days apart")
    rows = await console.lot_series(conn, principal, lot_id, start, end)
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", lot_id)  # the header carries no quotes or breaks
    return _csv(SERIES_CSV_COLUMNS, rows, f"{safe}-series.csv")
