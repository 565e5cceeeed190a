"""``asyncio.wait_for`` that never loses its caller's cancellation.

On Python 3.11, a task cancelled in the moment the awaited result arrives gets that result from
``asyncio.wait_for`` and never sees the cancellation (bpo-42130; 3.12 rebuilt ``wait_for`` on
``asyncio.timeout``). A loop that polls with it then runs on after its owner asked it to stop:
the cloud's live feed, woken by a NOTIFY as the API shut down, kept polling until its stop timed
out 10 s later. ``asyncio.timeout`` delivers the cancellation; ruff bans ``asyncio.wait_for``
outside the tests (pyproject.toml, TID251).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def wait_for(awaitable: Awaitable[T], timeout_s: float | None) -> T:
    """``awaitable``'s result, or ``TimeoutError`` after ``timeout_s`` seconds (None: no limit);
    on a timeout the awaitable is cancelled, as ``asyncio.wait_for`` does."""
    async with asyncio.timeout(timeout_s):
        return await awaitable
