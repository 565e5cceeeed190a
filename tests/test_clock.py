"""The injected clock: a simulated one moves only when told, wakes every timer at its own
deadline, and drives the edge's decisions on time (an LLRP reader's stale timer, the outbox's
resend of what the cloud never confirmed) without waiting for the wall clock."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.config import BrokerConfig
from edge.outbox import Outbox
from edge.publisher import Publisher, SessionAnnouncement
from edge.rfid.llrp_session import LlrpReader, LlrpReaderConfig
from edge.rfid.reader import ReaderCycle, ReaderHealth
from firmware_sim.llrp_reader import LlrpReaderSim, TagPopulation
from ops.clock import SimulatedClock, parse_clock, settle
from ops.clock_control import ClockChannelError, ClockController, attach, follow

T0 = 1_780_000_000 * 1_000_000  # 2026-05-28, an ordinary moment
EPC = "303400000000000000000AAA"


async def test_sleepers_wake_at_their_own_deadlines_in_order() -> None:
    clock = SimulatedClock(T0)
    woke: list[tuple[str, int]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.now_us() - T0))

    tasks = [asyncio.create_task(sleeper(n, s)) for n, s in (("c", 30), ("a", 5), ("b", 5.5))]
    await settle()
    assert await clock.advance_to(T0 + 5_000_000) == 1  # only a is due
    assert woke == [("a", 5_000_000)]
    await clock.advance(3600)
    # Each woke at its deadline, not at the target the controller jumped to.
    assert woke == [("a", 5_000_000), ("b", 5_500_000), ("c", 30_000_000)]
    assert clock.now_us() == T0 + 3605_000_000
    await asyncio.gather(*tasks)


async def test_a_repeating_timer_runs_once_per_period_however_far_time_jumps() -> None:
    clock = SimulatedClock(T0)
    ticks: list[int] = []

    async def every_second() -> None:
        while True:
            await clock.sleep(1.0)
            ticks.append(clock.now_us())

    task = asyncio.create_task(every_second())
    await settle()
    await clock.advance(3 * 3600)  # a night, in one step
    assert len(ticks) == 3 * 3600
    assert ticks[:2] == [T0 + 1_000_000, T0 + 2_000_000]
    task.cancel()


async def test_advance_returns_after_what_the_wakeup_set_going_has_run() -> None:
    """The barrier: a chain of tasks started by a timer is done when advance_to returns."""
    clock = SimulatedClock(T0)
    done: list[str] = []
    queue: asyncio.Queue[str] = asyncio.Queue()

    async def consumer() -> None:
        while True:
            item = await queue.get()
            await asyncio.sleep(0)
            done.append(item)

    async def producer() -> None:
        await clock.sleep(10)
        for i in range(50):
            queue.put_nowait(f"m{i}")
            await asyncio.sleep(0)

    tasks = [asyncio.create_task(consumer()), asyncio.create_task(producer())]
    await clock.advance(9.999)
    assert done == []
    await clock.advance(0.001)
    assert done == [f"m{i}" for i in range(50)]
    tasks[0].cancel()


async def test_wait_for_times_out_on_simulated_time_only() -> None:
    clock = SimulatedClock(T0)
    never: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    waiting = asyncio.create_task(clock.wait_for(never, 15))
    await asyncio.sleep(0.05)  # real time passes: no timeout
    await clock.advance(14.9)
    assert not waiting.done()
    await clock.advance(0.1)
    with pytest.raises(TimeoutError):
        await waiting
    assert never.cancelled()
    soon: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(soon.set_result, 7)
    assert await clock.wait_for(soon, 15) == 7


async def test_time_never_runs_back() -> None:
    clock = SimulatedClock(T0)
    await clock.advance(1)
    with pytest.raises(ValueError, match="forward"):
        await clock.advance_to(T0)


def test_clock_spec_is_system_or_a_loopback_control_address() -> None:
    assert parse_clock(None) == ("system", None)
    assert parse_clock("sim:127.0.0.1:7000") == ("sim", ("127.0.0.1", 7000))
    for bad in ("sim:10.0.0.5:7000", "sim:127.0.0.1:", "wall", "sim:127.0.0.1:99999"):
        with pytest.raises(ValueError):
            parse_clock(bad)


async def test_control_channel_moves_a_followers_time_and_waits_for_it() -> None:
    async with ClockController(T0) as controller:
        _, address = parse_clock(controller.spec)
        assert address is not None
        attaching = asyncio.create_task(attach(*address))
        await controller.attached()
        clock, reader, writer = await attaching
        assert clock.now_us() == T0
        ticks: list[int] = []

        async def timer() -> None:
            while True:
                await clock.sleep(60)
                ticks.append(clock.now_us())

        tasks = [asyncio.create_task(follow(clock, reader, writer)),
                 asyncio.create_task(timer())]
        assert await controller.advance_to(T0 + 3600_000_000) == 60
        assert len(ticks) == 60 and ticks[-1] == T0 + 3600_000_000
        tasks[1].cancel()
    with pytest.raises(ClockChannelError):  # the controller went away: the follower stops
        await tasks[0]


async def test_one_controller_moves_two_followers_in_step() -> None:
    # A story's two sites, one gateway each, on one time: neither runs ahead of the other.
    async with ClockController(T0, followers=2) as controller:
        _, address = parse_clock(controller.spec)
        assert address is not None
        attaching = [asyncio.create_task(attach(*address)) for _ in range(2)]
        await controller.attached()
        followers = [await a for a in attaching]
        ticks: list[list[int]] = [[], []]

        async def timer(clock: SimulatedClock, seen: list[int], period_s: float) -> None:
            while True:
                await clock.sleep(period_s)
                seen.append(clock.now_us())

        tasks = [asyncio.create_task(follow(*f)) for f in followers]
        tasks += [asyncio.create_task(timer(f[0], seen, p))
                  for f, seen, p in zip(followers, ticks, (60, 600), strict=True)]
        assert await controller.advance_to(T0 + 3600_000_000) == 60 + 6
        assert [len(t) for t in ticks] == [60, 6]
        assert all(f[0].now_us() == T0 + 3600_000_000 for f in followers)
        for task in tasks[2:]:
            task.cancel()
    for task in tasks[:2]:  # the controller went away: both followers stop
        with pytest.raises(ClockChannelError):
            await task


async def test_control_channel_refuses_what_is_no_clock_step() -> None:
    async def serve(lines: list[bytes]) -> tuple[asyncio.Server, int]:
        async def accept(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            for line in lines:
                w.write(line)
            await w.drain()

        server = await asyncio.start_server(accept, "127.0.0.1", 0)
        return server, server.sockets[0].getsockname()[1]

    start = b'{"op":"start","t_us":%d}\n' % T0
    for lines, why in (
        ([b'{"op":"start","t_us":5}\n'], "t_us"),  # 1970: a mistake
        ([b"x" * 1000 + b"\n"], "longer"),
        ([b"[1]\n"], "object"),
        ([start, b'{"op":"advance_to","t_us":%d}\n' % (T0 - 1)], "t_us"),  # backwards
        ([start, b'{"op":"advance_to","t_us":%d}\n' % (T0 + 10**15)], "t_us"),  # a century
        ([start, b'{"op":"advance_to","t_us":1.5}\n'], "t_us"),
        ([start, b'{"op":"reset"}\n'], "unknown"),
    ):
        server, port = await serve(lines)
        async with server:
            with pytest.raises(ClockChannelError, match=why):
                clock, reader, writer = await attach("127.0.0.1", port)
                await follow(clock, reader, writer)


async def test_llrp_reader_goes_stale_after_its_silence_on_the_agents_clock() -> None:
    """A reader whose network died says nothing; the adapter calls it gone after 3 keepalive
    periods of *simulated* time, whatever the wall clock did meanwhile."""
    clock = SimulatedClock(T0)
    sim = LlrpReaderSim(TagPopulation({1: [EPC]}), driven=True, clock_us=clock.now_us)
    health: list[ReaderHealth] = []
    async with sim:
        config = LlrpReaderConfig(kind="llrp", id="r1", host="127.0.0.1", port=sim.port,
                                  keepalive_s=5)
        async with LlrpReader(config, health.append, clock=clock) as reader:
            batches = reader.batches()
            await sim.connected()
            await sim.report([(EPC, 1, -50)], T0 + 1_000)
            await sim.barrier()
            batch = await anext(batches)
            assert [(o.epc, o.observed_at_us) for o in batch] == [(EPC, T0 + 1_000)]
            sim.set_network(False)
            await asyncio.sleep(0.2)  # wall time passes; simulated time does not
            await clock.advance(14.9)
            assert [h.online for h in health] == [True]
            await clock.advance(0.2)
            await settle()
            assert [h.online for h in health] == [True, False]
            assert health[-1].reason == "no message from the reader for 15.0 s"
            assert health[-1].at_us == T0 + 15_000_000  # when the silence reached 15 s


async def test_driven_reader_proves_each_round_to_the_agent_dated_in_simulated_time() -> None:
    """A report period of 4 rounds reaches the agent's adapter as 4 read cycles, each at its
    round's end in simulated time (end-of-AISpec events, as a real reader sends them); a
    period with no rounds proves nothing, even with a report."""
    clock = SimulatedClock(T0)
    sim = LlrpReaderSim(TagPopulation({1: [EPC]}), driven=True, clock_us=clock.now_us)
    cycles: list[ReaderCycle] = []
    async with sim:
        config = LlrpReaderConfig(kind="llrp", id="r1", host="127.0.0.1", port=sim.port,
                                  keepalive_s=5)
        async with LlrpReader(config, lambda _: None, cycles.append, clock=clock) as reader:
            batches = reader.batches()
            await sim.connected()
            # One round with nothing read: the reader announced its rounds (before that, the
            # adapter counts a report as a cycle, as for a reader that announces none).
            await sim.report([], T0, rounds=1)
            await sim.barrier()
            assert [c.at_us for c in cycles] == [T0]
            cycles.clear()
            await clock.advance(2.0)  # the agent's time at the period's end
            await sim.report([(EPC, 1, -50)], T0 + 2_000_000, rounds=4, since_us=T0)
            await sim.barrier()
            await anext(batches)
            assert [c.at_us for c in cycles] == [T0 + k * 500_000 for k in (1, 2, 3, 4)]
            await sim.report([(EPC, 1, -50)], T0 + 2_000_000, rounds=0)
            await sim.barrier()
            await anext(batches)
            assert len(cycles) == 4


def _publisher(outbox: Outbox, clock: SimulatedClock) -> Publisher:
    """A publisher whose decisions and pacing both read ``clock`` (the agent's default)."""
    return Publisher(
        outbox, BrokerConfig(confirm_silence_s=120), client_id="t",
        announcement=SessionAnnouncement("s", lambda: b"", lambda: b""),
        command_topic_filter="c/#", command_key=Ed25519PrivateKey.generate().public_key(),
        site="s", gateway="g", clock=clock)


async def test_unconfirmed_messages_are_resent_after_the_silence_on_the_agents_clock(
    tmp_path: Path,
) -> None:
    clock = SimulatedClock(T0)
    outbox = Outbox(tmp_path / "o.db", clock_us=clock.now_us)
    publisher = _publisher(outbox, clock)
    seq = outbox.put("t", lambda s: b"x", is_event=True)
    outbox.mark_sent([seq])
    outbox.mark_acked([seq])
    await clock.advance(119)
    publisher._resend_lost()  # the drain loop's periodic check
    assert outbox.counts()["awaiting_confirmation"] == 1  # not yet: 119 s of silence
    await clock.advance(2)
    publisher._resend_lost()
    assert outbox.counts() == {"unsent": 1, "sent": 0, "awaiting_confirmation": 0}
    assert publisher.stats.resent_lost == 1
    outbox.close()


def test_outbox_dates_rows_on_its_clock(tmp_path: Path) -> None:
    clock = SimulatedClock(T0)
    outbox = Outbox(tmp_path / "o.db", clock_us=clock.now_us)
    outbox.put("t", lambda s: b"x", is_event=True)
    (created,) = outbox._db.execute("SELECT created_us FROM outbox").fetchone()
    assert created == T0
    assert abs(Outbox(tmp_path / "p.db")._clock_us() - time.time_ns() // 1000) < 5_000_000
    outbox.close()
