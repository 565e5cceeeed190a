"""Operators, financiers, sites and gateways: who exists and which keys they speak with."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection

from cloud.apikeys import Principal
from cloud.scope import site_condition

GATEWAY_COLUMNS = (
    "id, site_id, public_key, mqtt_username, created_at, last_seen_at, last_seq, online, "
    "status_changed_at, revoked_at"
)


class NotFound(LookupError):
    pass


class Conflict(ValueError):
    pass


async def create_operator(conn: AsyncConnection, operator_id: str, name: str) -> None:
    await conn.execute(
        "INSERT INTO operators (id, name) VALUES (%s, %s) ON CONFLICT (id) DO UPDATE "
        "SET name = excluded.name", (operator_id, name))


async def create_financier(conn: AsyncConnection, financier_id: str, name: str) -> None:
    await conn.execute(
        "INSERT INTO financiers (id, name) VALUES (%s, %s) ON CONFLICT (id) DO UPDATE "
        "SET name = excluded.name", (financier_id, name))


async def create_site(
    conn: AsyncConnection, site_id: str, operator_id: str, name: str, timezone: str = "UTC"
) -> dict[str, Any]:
    cur = await conn.execute(
        "INSERT INTO sites (id, operator_id, name, timezone) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (id) DO NOTHING RETURNING id, operator_id, name, timezone, created_at",
        (site_id, operator_id, name, timezone),
    )
    row = await cur.fetchone()
    if row is None:
        raise Conflict(f"site {site_id!r} already exists")
    return row  # type: ignore[return-value]


async def list_sites(conn: AsyncConnection, p: Principal) -> list[dict[str, Any]]:
    cond, params = site_condition(p, "id")
    cur = await conn.execute(
        f"SELECT id, operator_id, name, timezone, created_at FROM sites WHERE {cond} ORDER BY id",
        params,
    )
    return await cur.fetchall()  # type: ignore[return-value]


async def get_site(conn: AsyncConnection, p: Principal, site_id: str) -> dict[str, Any]:
    cond, params = site_condition(p, "id")
    cur = await conn.execute(
        f"SELECT id, operator_id, name, timezone, created_at FROM sites WHERE id = %s AND {cond}",
        [site_id, *params],
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"no site {site_id!r}")
    return row  # type: ignore[return-value]


async def register_gateway(
    conn: AsyncConnection, gateway_id: str, site_id: str, public_key: str,
    mqtt_username: str | None = None,
) -> dict[str, Any]:
    """Register or re-key a gateway (re-keying keeps its history and sequence).

    A new key also lifts a revocation: re-keying is how a revoked gateway is brought back.
    Every ingest process hears of the change at once (trigger -> NOTIFY pw_gateways) and
    refuses the old key from its next batch.
    """
    cur = await conn.execute(
        f"""
        INSERT INTO gateways (id, site_id, public_key, mqtt_username) VALUES (%s, %s, %s, %s)
        ON CONFLICT (id) DO UPDATE SET public_key = excluded.public_key,
            mqtt_username = coalesce(excluded.mqtt_username, gateways.mqtt_username),
            revoked_at = CASE WHEN gateways.public_key = excluded.public_key
                              THEN gateways.revoked_at END
        WHERE gateways.site_id = excluded.site_id
        RETURNING {GATEWAY_COLUMNS}
        """,
        (gateway_id, site_id, public_key, mqtt_username),
    )
    row = await cur.fetchone()
    if row is None:
        raise Conflict(f"gateway {gateway_id!r} is registered at another site")
    return row  # type: ignore[return-value]


async def list_gateways(conn: AsyncConnection, p: Principal) -> list[dict[str, Any]]:
    cond, params = site_condition(p)
    cur = await conn.execute(
        f"SELECT {GATEWAY_COLUMNS} FROM gateways WHERE {cond} ORDER BY id", params
    )
    return await cur.fetchall()  # type: ignore[return-value]


async def get_gateway(conn: AsyncConnection, p: Principal, gateway_id: str) -> dict[str, Any]:
    cond, params = site_condition(p)
    cur = await conn.execute(
        f"SELECT {GATEWAY_COLUMNS} FROM gateways WHERE id = %s AND {cond}", [gateway_id, *params]
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"no gateway {gateway_id!r}")
    return row  # type: ignore[return-value]


async def revoke_gateway(
    conn: AsyncConnection, p: Principal | None, gateway_id: str
) -> dict[str, Any]:
    """Refuse everything the gateway sends from now on (idempotent: the first time is kept).

    ``p`` confines the revocation to the sites the caller manages; None is the operator's CLI.
    Every ingest process hears of it at once (trigger -> NOTIFY pw_gateways).
    """
    cond, params = ("true", []) if p is None else site_condition(p)
    cur = await conn.execute(
        f"UPDATE gateways SET revoked_at = coalesce(revoked_at, now()) "
        f"WHERE id = %s AND {cond} RETURNING {GATEWAY_COLUMNS}",
        [gateway_id, *params],
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"no gateway {gateway_id!r}")
    return row  # type: ignore[return-value]
