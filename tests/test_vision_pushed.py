"""The simulated-time camera (edge/vision/pushed.py) against the player's end of the channel
(firmware_sim/scenario/frames.py), over a real loopback socket, on a simulated clock: frames are
judged at their own time, never before it, answered only once judged, and a controller that
breaks the channel's rules loses the camera instead of reaching the pipeline."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest

from edge.config import ConfigError, load_config
from edge.vision.camera import TimedFrame
from edge.vision.pushed import FrameChannelError, PushedCamera, parse_header, parse_pushed
from firmware_sim.scenario.frames import FrameFeed, with_idle_frames
from firmware_sim.world.signals import GateFrame, TagRead
from ops.clock import SimulatedClock
from ops.supervised import Health

T0 = 1_800_000_000_000_000
S = 1_000_000


def _image(value: int) -> np.ndarray:
    return np.full((24, 32, 3), value, np.uint8)


async def _judging(camera: PushedCamera, judged: list[tuple[int, int, int]],
                   clock: SimulatedClock, hold: asyncio.Event | None = None) -> None:
    """The pipeline's side: (frame time, the clock when judged, its first pixel) per frame."""
    async for batch in camera.batches():
        for frame in batch:
            if hold is not None:
                await hold.wait()
            judged.append((frame.at_us, clock.now_us(), int(frame.image[0, 0, 0])))


async def test_frames_are_judged_at_their_time_and_answered_once_judged() -> None:
    clock = SimulatedClock(T0)
    judged: list[tuple[int, int, int]] = []
    hold = asyncio.Event()
    async with FrameFeed("gate-1") as feed, \
            PushedCamera("gate-1", feed.source, None, clock=clock) as camera:
        consumer = asyncio.create_task(_judging(camera, judged, clock, hold))
        shown = asyncio.create_task(feed.show(_image(7), T0))
        await asyncio.sleep(0.3)
        assert not shown.done()  # read, but not judged yet: no answer
        hold.set()
        await asyncio.wait_for(shown, 5)
        assert judged == [(T0, T0, 7)]
        # A frame dated ahead of the agent's clock waits for it: not judged before it is taken.
        ahead = asyncio.create_task(feed.show(_image(9), T0 + 5 * S))
        await asyncio.sleep(0.3)
        assert len(judged) == 1 and not ahead.done()
        await clock.advance_to(T0 + 5 * S)
        await asyncio.wait_for(ahead, 5)
        assert judged[1] == (T0 + 5 * S, T0 + 5 * S, 9)
        consumer.cancel()


async def _lost_after(raw: bytes, hang_up: bool) -> tuple[list[Health], list[list[TimedFrame]]]:
    """A controller that sends ``raw`` (and hangs up): what the camera reported and what reached
    the pipeline."""
    healths: list[Health] = []
    batches: list[list[TimedFrame]] = []
    clock = SimulatedClock(T0)
    sent = asyncio.Event()

    async def controller(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(raw)
        await writer.drain()
        sent.set()
        if not hang_up:
            await reader.read()  # until the camera hangs up
        writer.close()

    server = await asyncio.start_server(controller, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, PushedCamera("gate-1", f"sim:127.0.0.1:{port}", healths.append,
                                    clock=clock) as camera:
        async def read() -> None:
            async for batch in camera.batches():
                batches.append(batch)

        reading = asyncio.create_task(read())
        await asyncio.wait_for(sent.wait(), 5)
        for _ in range(100):  # the camera hangs up, reports itself lost, marks the break
            if any(not h.online for h in healths) and batches and batches[-1] == []:
                break
            await asyncio.sleep(0.05)
        reading.cancel()
    return healths, batches


@pytest.mark.parametrize(("raw", "reason"), [
    (b"x" * 300 + b"\n", "longer than 256"),
    (b'{"t_us": 1, "width": 32, "height": 24}\n', "time out of range"),
    (json.dumps({"t_us": T0, "width": 100_000, "height": 24}).encode() + b"\n", "size"),
    (json.dumps({"t_us": T0, "width": 32, "height": 24, "x": 1}).encode() + b"\n", "header"),
    (json.dumps({"t_us": T0, "width": 32, "height": 24}).encode() + b"\n" + bytes(10),
     "closed inside a frame"),
    (json.dumps({"t_us": T0, "width": 16, "height": 16}).encode() + b"\n" + bytes(768)
     + json.dumps({"t_us": T0 - 1, "width": 16, "height": 16}).encode() + b"\n" + bytes(768),
     "before the last"),
    (json.dumps({"t_us": T0 + 7200 * S, "width": 16, "height": 16}).encode() + b"\n"
     + bytes(768), "ahead of the clock"),
])
async def test_a_controller_breaking_the_rules_loses_the_camera(raw: bytes, reason: str) -> None:
    healths, batches = await _lost_after(raw, hang_up="closed" in reason)
    lost = [h for h in healths if not h.online]
    assert lost and reason in lost[0].reason
    # Nothing broken reaches the pipeline: at most the good first frame, then the break.
    assert all(len(b) <= 1 for b in batches) and batches[-1] == []


def test_the_header_is_checked_before_any_pixel_is_read() -> None:
    assert parse_header(json.dumps({"t_us": T0, "width": 32, "height": 24}).encode()) == (
        T0, 32, 24)
    with pytest.raises(FrameChannelError, match="integers"):
        parse_header(json.dumps({"t_us": T0, "width": True, "height": 24}).encode())


@pytest.mark.parametrize(("source", "reason"), [
    ("sim:10.0.0.5:9000", "loopback only"),
    ("sim:127.0.0.1:0", "out of range"),
    ("sim:127.0.0.1", "sim:HOST:PORT"),
])
def test_a_bad_simulated_camera_stops_the_agent_with_file_key_and_reason(
    tmp_path: Path, source: str, reason: str
) -> None:
    from edge.__main__ import main as edge_main

    assert edge_main(["keygen", "--out", str(tmp_path / "gw.key")]) == 0
    path = tmp_path / "edge.toml"
    path.write_text(f'site = "s"\ngateway = "g"\nkey_file = "gw.key"\n'
                    f'[broker]\nurl = "mqtt://127.0.0.1:1883"\n'
                    f'[[cameras.cameras]]\nname = "gate-1"\nsource = "{source}"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.file == path
    assert caught.value.key == "cameras.cameras.0.source"
    assert reason in caught.value.reason
    assert parse_pushed("sim:127.0.0.1:9000") == ("127.0.0.1", 9000)


def test_a_vehicle_is_framed_by_the_empty_gate_before_and_after() -> None:
    vehicle = [GateFrame(T0 + t, "gate-1", "AB12345") for t in (100 * S, 100 * S + S // 2)]
    again = [GateFrame(T0 + 101 * S + S // 2, "gate-1", "AB12345")]  # the same passage
    later = [GateFrame(T0 + 900 * S, "gate-1", "AB12345")]  # the same truck, leaving
    read = TagRead(T0 + 102 * S, "r1", "E1", 1, -6000)
    out = with_idle_frames([*vehicle, *again, *later, read])
    empty = sorted((s.t_us - T0) / S for s in out if isinstance(s, GateFrame) and not s.plate)
    assert empty == [96, 97, 98, 99, 102.5, 103.5, 104.5, 105.5,
                     896, 897, 898, 899, 901, 902, 903, 904]
    assert read in out and [s.t_us for s in out] == sorted(s.t_us for s in out)
