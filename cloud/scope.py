"""What a principal may see, as SQL conditions: one place decides visibility for every query.

admin: everything. supervisor: the sites of their operator. financier: only lots pledged to
them (and the alerts of those lots), the receipts pledged to them and their own webhook
endpoints. gateway: nothing through these listings. Each function returns a condition and its
parameters; callers name the column or table alias it applies to.
"""

from __future__ import annotations

from typing import Any

from cloud.apikeys import Principal

_OPERATOR_SITES = "SELECT id FROM sites WHERE operator_id = %s"


def site_condition(p: Principal, site_column: str = "site_id") -> tuple[str, list[Any]]:
    if p.role == "admin":
        return "TRUE", []
    if p.role == "supervisor":
        return f"{site_column} IN ({_OPERATOR_SITES})", [p.operator_id]
    if p.role == "financier":
        return (f"{site_column} IN (SELECT site_id FROM lots WHERE financier_id = %s)",
                [p.financier_id])
    return "FALSE", []


def managed_site_condition(p: Principal, site_column: str = "site_id") -> tuple[str, list[Any]]:
    """The sites a principal manages (their lots, rules, gate list): admins all, supervisors
    their operator's; financiers see some sites but manage none."""
    if p.role in ("admin", "supervisor"):
        return site_condition(p, site_column)
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


def receipt_condition(p: Principal, receipt_table: str = "r") -> tuple[str, list[Any]]:
    """A financier sees the receipts pledged to it; staff those of their lots."""
    if p.role == "financier":
        return f"{receipt_table}.pledgee = %s", [p.financier_id]
    if p.role == "supervisor":
        return (f"{receipt_table}.lot_id IN (SELECT id FROM lots WHERE site_id IN "
                f"({_OPERATOR_SITES}))", [p.operator_id])
    return ("TRUE", []) if p.role == "admin" else ("FALSE", [])


def endpoint_condition(p: Principal, endpoint_table: str = "webhook_endpoints"
                       ) -> tuple[str, list[Any]]:
    """Webhook endpoints: a financier its own, an admin any."""
    if p.role == "admin":
        return "TRUE", []
    if p.role == "financier":
        return f"{endpoint_table}.financier_id = %s", [p.financier_id]
    return "FALSE", []
