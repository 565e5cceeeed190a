"""The connection owner: reconnects with backoff, reports health on changes, stops cleanly."""

from __future__ import annotations

import asyncio
import random

import pytest

from ops.backoff import Backoff
from ops.supervised import BatchSource, Health, SessionLost, Supervised


class FakeSleep:
    """Records the delays asked for and lets the loop move on at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(0)


def fixed_backoff() -> Backoff:
    # Full jitter with a fixed seed: the ceilings are what the test checks.
    return Backoff(initial_s=1.0, maximum_s=4.0, rng=random.Random(7))


async def test_a_failing_connect_is_retried_with_growing_delays_until_it_works() -> None:
    health: list[Health] = []
    sleep = FakeSleep()
    attempts = 0
    connected = asyncio.Event()

    async def session(owner: Supervised) -> None:
        nonlocal attempts
        attempts += 1
        if attempts <= 4:
            raise ConnectionRefusedError(f"refused #{attempts}")
        owner.up("connected")
        connected.set()
        await asyncio.Event().wait()  # works until cancelled

    async with Supervised("broker", session, on_health=health.append, sleep=sleep,
                          backoff=fixed_backoff(), clock_us=lambda: 42) as owner:
        await asyncio.wait_for(connected.wait(), 1)
    assert attempts == 5
    assert len(sleep.delays) == 4
    ceilings = [1.0, 2.0, 4.0, 4.0]
    assert all(0 <= d <= c for d, c in zip(sleep.delays, ceilings, strict=True))
    # One offline report for the whole outage, one online when it came back.
    assert health == [
        Health("broker", False, "ConnectionRefusedError: refused #1", 42),
        Health("broker", True, "connected", 42),
    ]
    assert owner.failures == 4 and owner.backoff.attempts == 0  # reset once up


async def test_backoff_starts_again_from_the_first_delay_after_a_working_session() -> None:
    sleep = FakeSleep()
    runs = 0
    done = asyncio.Event()

    async def session(owner: Supervised) -> None:
        nonlocal runs
        runs += 1
        if runs in (1, 2):
            raise OSError("down")
        if runs == 3:
            owner.up()
            raise SessionLost("stream ended")
        done.set()
        await asyncio.Event().wait()

    backoff = Backoff(initial_s=1.0, maximum_s=100.0, rng=random.Random(1))
    async with Supervised("reader", session, sleep=sleep, backoff=backoff):
        await asyncio.wait_for(done.wait(), 1)
    assert len(sleep.delays) == 3
    assert sleep.delays[2] <= 1.0  # the first delay again, not the third


async def test_an_error_not_listed_ends_the_task_and_reaches_the_waiter() -> None:
    async def session(owner: Supervised) -> None:
        raise ValueError("bad configuration")

    with pytest.raises(ValueError, match="bad configuration"):
        async with Supervised("x", session, sleep=FakeSleep()) as owner:
            await owner.wait()


async def test_leaving_the_block_cancels_the_session_and_runs_its_cleanup() -> None:
    cleaned = asyncio.Event()
    started = asyncio.Event()

    async def session(owner: Supervised) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.set()

    async with Supervised("x", session) as owner:
        await asyncio.wait_for(started.wait(), 1)
    assert cleaned.is_set()
    assert owner.task.cancelled()


async def test_down_reports_offline_once_without_reconnecting() -> None:
    health: list[Health] = []
    step = asyncio.Event()

    async def session(owner: Supervised) -> None:
        owner.up("stream connected")
        owner.down("no data for 10 s")
        owner.down("no data for 10 s")
        owner.up("data again")
        step.set()
        await asyncio.Event().wait()

    async with Supervised("r1", session, on_health=health.append, clock_us=lambda: 1) as owner:
        await asyncio.wait_for(step.wait(), 1)
    assert [(h.online, h.reason) for h in health] == [
        (True, "stream connected"), (False, "no data for 10 s"), (True, "data again")]
    assert owner.sessions == 1


class Counting(BatchSource[list[int]]):
    """Puts two batches per session; the first session loses its connection after them."""

    def __init__(self, sessions_before_end: int) -> None:
        super().__init__("counter", None, sleep=FakeSleep())
        self.left = sessions_before_end
        self.closed = False

    async def session(self, owner: Supervised) -> None:
        owner.up()
        await self.put([1, 2])
        await self.put([3])
        self.left -= 1
        if self.left:
            raise SessionLost("lost")

    async def close(self) -> None:
        self.closed = True


async def test_batches_flow_across_reconnects_and_end_when_the_session_finishes() -> None:
    async with Counting(sessions_before_end=2) as source:
        got = [batch async for batch in source.batches()]
    assert got == [[1, 2], [3], [1, 2], [3]]
    assert source.closed


class Broken(BatchSource[int]):
    async def session(self, owner: Supervised) -> None:
        await self.put(1)
        raise KeyError("unexpected")


async def test_batches_raise_what_ended_the_session() -> None:
    got: list[int] = []
    with pytest.raises(KeyError):
        async with Broken("broken", None, sleep=FakeSleep()) as source:
            async for batch in source.batches():
                got.append(batch)
    assert got == [1]


async def test_a_slow_consumer_holds_the_session_back() -> None:
    produced = 0

    class Fast(BatchSource[int]):
        queue_size = 2

        async def session(self, owner: Supervised) -> None:
            nonlocal produced
            while True:
                await self.put(produced)
                produced += 1

    async with Fast("fast", None) as source:
        await asyncio.sleep(0.01)
        assert produced <= 3  # bounded by the queue, not by memory
        batches = source.batches()
        assert [await anext(batches) for _ in range(5)] == [0, 1, 2, 3, 4]
        await batches.aclose()


async def test_a_session_whose_task_group_failed_is_retried_not_taken_for_a_stop() -> None:
    sleep = FakeSleep()
    runs = 0
    second = asyncio.Event()

    async def fail_soon() -> None:
        raise OSError("link dropped")

    async def session(owner: Supervised) -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            try:
                async with asyncio.TaskGroup() as group:
                    group.create_task(fail_soon())
                    group.create_task(asyncio.Event().wait())
            except* OSError as errors:
                raise errors.exceptions[0] from None
        second.set()
        await asyncio.Event().wait()

    async with Supervised("broker", session, sleep=sleep):
        await asyncio.wait_for(second.wait(), 1)
    assert runs == 2 and len(sleep.delays) == 1


async def test_a_driver_error_raised_by_the_stop_itself_is_not_retried() -> None:
    started = asyncio.Event()

    async def session(owner: Supervised) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise OSError("query cancelled") from None  # what psycopg may do

    sleep = FakeSleep()
    async with Supervised("db", session, sleep=sleep) as owner:
        await asyncio.wait_for(started.wait(), 1)
    assert owner.sessions == 1 and sleep.delays == []
