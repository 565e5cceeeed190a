"""A polling loop stops when it is told to, even when its wait ends in the same moment."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from ops.timeouts import wait_for


async def _stops_when_cancelled(wait: Callable[[Awaitable[Any], float], Awaitable[Any]]) -> bool:
    """A loop polling an event; the event set and the loop cancelled in one turn of the event
    loop (a NOTIFY arriving as the process shuts down): does the loop end?"""
    event = asyncio.Event()

    async def poll() -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await wait(event.wait(), 1.0)
            event.clear()

    task = asyncio.create_task(poll())
    await asyncio.sleep(0.01)
    event.set()  # the wait's result is ready ...
    await asyncio.sleep(0)  # ... the loop is scheduled to take it ...
    task.cancel()  # ... and the stop arrives first
    done, _ = await asyncio.wait({task}, timeout=0.5)
    if not done:
        task.cancel()
        await asyncio.wait({task}, timeout=2.0)
    return bool(done)


async def test_a_polling_loop_stops_when_cancelled_as_its_wait_ends() -> None:
    assert await _stops_when_cancelled(wait_for)


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="3.12 rebuilt wait_for on timeout()")
async def test_asyncio_wait_for_of_python_3_11_loses_that_cancellation() -> None:
    # Why ops.timeouts exists: if this starts passing on 3.11, the helper can go.
    assert not await _stops_when_cancelled(asyncio.wait_for)


async def test_it_times_out_and_cancels_what_it_waited_for() -> None:
    cancelled = asyncio.Event()

    async def slow() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(TimeoutError):
        await wait_for(slow(), 0.01)
    assert cancelled.is_set()
    assert await wait_for(asyncio.sleep(0, result=7), 1.0) == 7
    assert await wait_for(asyncio.sleep(0, result=8), None) == 8
