"""Who records a receipt step, what each role may do, and which receipts and lots it sees.

Visibility: admin sees everything; a supervisor the receipts of their operator's sites; a
financier only receipts pledged to it; a gateway nothing. A receipt or lot outside someone's view
is "not found", never "forbidden", so its existence does not leak.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.apikeys import Principal
from cloud.scope import managed_site_condition, receipt_condition

MANAGERS = ("admin", "supervisor")


@dataclass(frozen=True, slots=True)
class Clerk:
    """Who records a step, when, and the operator key that signs what is recorded."""

    principal: Principal
    key: Ed25519PrivateKey
    now: datetime


class Forbidden(PermissionError):
    """The principal's role may not take this step at all."""


def require(p: Principal, roles: tuple[str, ...], what: str) -> None:
    if p.role not in roles:
        raise Forbidden(f"role {p.role!r} may not {what} (needs {' or '.join(roles)})")


def receipt_scope(p: Principal) -> tuple[str, list[Any]]:
    """The receipts (table alias ``r``) the principal sees (cloud/scope.py decides)."""
    return receipt_condition(p, "r")


def managed_site_scope(p: Principal) -> tuple[str, list[Any]]:
    """The sites (table alias ``s``) whose lots the principal manages (cloud/scope.py)."""
    return managed_site_condition(p, "s.id")

