"""Rule sets per site, versioned in ``rule_sets``; a site without one runs the defaults."""

from __future__ import annotations

import json
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import tuple_row

from decisions.rules import RuleSet, default_rules, load_rule_set


async def active_rule_set(conn: AsyncConnection[Any], site_id: str) -> RuleSet:
    async with conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute("SELECT version, rules FROM rule_sets WHERE site_id = %s "
                          "ORDER BY version DESC LIMIT 1", (site_id,))
        row = await cur.fetchone()
    if row is None:
        return default_rules()
    return load_rule_set({"version": row[0], "rules": row[1]})


async def publish_rule_set(
    conn: AsyncConnection[Any], site_id: str, rules: list[dict[str, Any]], actor: str
) -> RuleSet:
    """Validate and store the next version (ValueError says what is wrong; nothing stored)."""
    async with conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute(
            "SELECT coalesce(max(version), 0) + 1 FROM rule_sets WHERE site_id = %s", (site_id,))
        row = await cur.fetchone()
    assert row is not None
    rule_set = load_rule_set({"version": row[0], "rules": rules})
    await conn.execute(
        "INSERT INTO rule_sets (site_id, version, rules, created_by) VALUES (%s, %s, %s, %s)",
        (site_id, rule_set.version, json.dumps([r.model_dump(exclude_none=True)
                                                for r in rule_set.rules]), actor))
    return rule_set
