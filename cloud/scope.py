"""What a principal may see, as SQL conditions: one place decides visibility for every query.

admin: everything. supervisor: the sites of their operator. financier: only lots pledged to
them (and the alerts of those lots). gateway: nothing through these listings.
"""

from __future__ import annotations

from typing import Any

from cloud.apikeys import Principal


def site_condition(p: Principal, site_column: str = "site_id") -> tuple[str, list[Any]]:
    if p.role == "admin":
        return "TRUE", []
    if p.role == "supervisor":
        return f"{site_column} IN (SELECT id FROM sites WHERE operator_id = %s)", [p.operator_id]
    if p.role == "financier":
        return (f"{site_column} IN (SELECT site_id FROM lots WHERE financier_id = %s)",
                [p.financier_id])
    return "FALSE", []


def lot_condition(p: Principal, lot_table: str = "lots") -> tuple[str, list[Any]]:
    if p.role == "financier":
        return f"{lot_table}.financier_id = %s", [p.financier_id]
    return site_condition(p, f"{lot_table}.site_id")


def alert_condition(p: Principal, alert_table: str = "alerts") -> tuple[str, list[Any]]:
    if p.role == "financier":
        return (f"{alert_table}.lot_id IN (SELECT id FROM lots WHERE financier_id = %s)",
                [p.financier_id])
    return site_condition(p, f"{alert_table}.site_id")


def can_manage_site(p: Principal) -> bool:
    return p.role in ("admin", "supervisor")
