"""Request dependencies: a database connection and the authenticated principal."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from psycopg import AsyncConnection

from cloud.apikeys import Principal, authenticate
from cloud.settings import Settings


async def get_conn(request: Request) -> AsyncIterator[AsyncConnection]:
    # The pool commits when the request's handler returns without error.
    async with request.app.state.pool.connection() as conn:
        yield conn


DbConn = Annotated[AsyncConnection, Depends(get_conn)]

_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer pw_<id>_<secret>")
_header = APIKeyHeader(name="X-API-Key", auto_error=False)


async def current_principal(
    conn: DbConn,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    header_key: Annotated[str | None, Depends(_header)],
) -> Principal:
    token = bearer.credentials if bearer else header_key
    if not token:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "an API key is required (Authorization: Bearer ...)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    principal = await authenticate(conn, token)
    if principal is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "unknown or revoked API key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require_roles(*roles: str) -> Callable[..., Coroutine[Any, Any, Principal]]:
    async def check(principal: CurrentPrincipal) -> Principal:
        if principal.role not in roles:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"role {principal.role!r} may not do this (needs {' or '.join(roles)})",
            )
        return principal

    return check


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


AppSettings = Annotated[Settings, Depends(get_settings)]
Admin = Annotated[Principal, Depends(require_roles("admin"))]
Manager = Annotated[Principal, Depends(require_roles("admin", "supervisor"))]
