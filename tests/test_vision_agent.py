"""The camera pipeline inside the real edge agent: a rendered gate video in, signed plate_read
events through a real Mosquitto into PostgreSQL out, with the evidence images on disk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pipeline_support import running_agent, running_ingest, scalar, wait_until, write_agent_config

from firmware_sim.camera.plates import PlateSpec
from firmware_sim.camera.streams import ScriptedPassage, gate_frames, write_video

pytestmark = pytest.mark.integration


async def test_gate_video_becomes_plate_read_events_in_the_cloud(
    database_url: str, mqtt_broker, register_gateway, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    gw = register_gateway()
    plates = [PlateSpec("沪A12345", "沪A·12345", "cn", "cn_blue"),
              PlateSpec("AB123CD", "AB-123-CD", "eu", "eu_fr")]
    script = [ScriptedPassage(plates[0], "in", start_frame=5, frames=25),
              ScriptedPassage(plates[1], "out", start_frame=45, frames=25)]
    video = tmp_path / "gate.avi"
    write_video((f.image for f in gate_frames(script, total_frames=80, width=960, height=540,
                                               seed=3)), video, fps=10)
    evidence = tmp_path / "evidence"
    config = write_agent_config(
        tmp_path / "edge.toml", site=gw.site, gateway=gw.gateway, key_file=gw.key_file,
        broker_url=mqtt_broker.url,
        extra=f"""
[cameras]
evidence_dir = "{evidence}"

[[cameras.cameras]]
name = "gate-1"
source = "{video}"
pace = false
line = {{x1 = 0.0, y1 = 0.6, x2 = 1.0, y2 = 0.6}}
""")

    def bodies() -> list[dict[str, object]]:
        import psycopg

        with psycopg.connect(database_url) as conn:
            rows = conn.execute("SELECT body FROM raw_events WHERE type = 'plate_read' "
                                "ORDER BY seq").fetchall()
        return [row[0] if isinstance(row[0], dict) else json.loads(row[0]) for row in rows]

    async with running_ingest(database_url, mqtt_broker.url), running_agent(config):
        await wait_until(lambda: len(bodies()) >= 2, 60, "two plate_read events in the cloud")
    reads = bodies()
    assert [(b["plate"], b["direction"], b["camera"]) for b in reads] == [
        ("沪A12345", "in", "gate-1"), ("AB123CD", "out", "gate-1")]
    for body in reads:
        refs = body["evidence"]
        assert isinstance(refs, list) and {r["kind"] for r in refs} == {"plate_crop", "frame"}
        for ref in refs:
            assert (evidence / ref["sha256"][:2] / f"{ref['sha256']}.jpg").stat().st_size == \
                ref["bytes"]
    assert scalar(database_url, "SELECT count(*) FROM dead_letters") == 0
