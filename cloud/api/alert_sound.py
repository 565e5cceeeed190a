"""The critical alert's chime: a short WAV made here in code (no file to ship or fetch)."""

from __future__ import annotations

import functools
import io
import math
import struct
import wave

from fastapi import APIRouter, Response

RATE = 16_000

sound_router = APIRouter(include_in_schema=False)


@functools.cache
def chime() -> bytes:
    """Two falling tones, 0.5 s, 16-bit mono: audible over a warehouse office, not shrill."""
    frames = bytearray()
    for freq, seconds in ((880.0, 0.22), (0.0, 0.06), (660.0, 0.22)):
        n = int(RATE * seconds)
        for i in range(n):
            fade = min(1.0, i / 200, (n - i) / 200)  # no clicks at the edges
            sample = 12_000 * fade * math.sin(2 * math.pi * freq * i / RATE)
            frames += struct.pack("<h", int(sample))
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(bytes(frames))
    return out.getvalue()


@sound_router.get("/map/sounds/critical.wav")
async def critical_sound() -> Response:
    return Response(chime(), media_type="audio/wav",
                    headers={"Cache-Control": "public, max-age=86400"})
