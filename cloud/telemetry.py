"""Time-bucketed queries over the time series (``date_bin`` works on both storage paths)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection

from cloud.apikeys import Principal
from cloud.receipts.lots import get_lot
from cloud.scope import site_condition

MAX_BUCKETS = 10_000


def check_range(start: datetime, end: datetime, bucket: timedelta) -> None:
    if end <= start:
        raise ValueError("'to' must be after 'from'")
    if bucket.total_seconds() < 1:
        raise ValueError("bucket must be at least 1 second")
    if (end - start) / bucket > MAX_BUCKETS:
        raise ValueError(f"more than {MAX_BUCKETS} buckets: widen the bucket or narrow the range")


async def lot_counts(
    conn: AsyncConnection, p: Principal, lot_id: str, *, start: datetime, end: datetime,
    bucket: timedelta,
) -> list[dict[str, Any]]:
    check_range(start, end, bucket)
    await get_lot(conn, p, lot_id)  # visibility
    cur = await conn.execute(
        """
        SELECT date_bin(%s, observed_at, %s) AS bucket,
               min(present) AS present_min, max(present) AS present_max,
               max(missing) AS missing_max, max(unknown) AS unknown_max, max(expected) AS expected
        FROM lot_counts WHERE lot_id = %s AND observed_at >= %s AND observed_at < %s
        GROUP BY 1 ORDER BY 1
        """,
        (bucket, start, lot_id, start, end),
    )
    return await cur.fetchall()  # type: ignore[return-value]


async def read_rates(
    conn: AsyncConnection, p: Principal, gateway_id: str, *, start: datetime, end: datetime,
    bucket: timedelta,
) -> list[dict[str, Any]]:
    check_range(start, end, bucket)
    cond, params = site_condition(p, "g.site_id")
    cur = await conn.execute(
        f"""
        SELECT date_bin(%s, o.observed_at, %s) AS bucket, count(*) AS reads,
               count(DISTINCT o.epc) AS distinct_tags
        FROM tag_observations o JOIN gateways g ON g.id = o.gateway_id
        WHERE o.gateway_id = %s AND o.observed_at >= %s AND o.observed_at < %s AND {cond}
        GROUP BY 1 ORDER BY 1
        """,
        [bucket, start, gateway_id, start, end, *params],
    )
    return await cur.fetchall()  # type: ignore[return-value]
