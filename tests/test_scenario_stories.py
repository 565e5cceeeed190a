"""The world's raw-signal stories through the real edge agent as its own process (simulated
clock, driven LLRP readers) and the running cloud, judged by the world's judge.

``PLAYED_STORIES`` are stories whose signals have a device path in the raw player (reads,
keepalives, reader power and network, link cuts, sensor samples over MQTT JSON) and that pass
on this branch; they must. Set ``PW_STORIES`` to a
comma-separated list of names (or ``all``) to play others and print their verdicts."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from firmware_sim.scenario.raw_player import RawPlayer, start_for
from firmware_sim.scenario.stories import NotPlayable, outcome, site_spec
from ops.clock_control import ClockController
from tests.test_scenario_raw import cloud_on, operator_key  # noqa: F401 - a fixture

world_story = pytest.importorskip("firmware_sim.world.story")  # the world (issue 13)

pytestmark = pytest.mark.usefixtures("operator_key")

# Played end to end and passing on this branch. Fail for reasons in the edge's and cloud's
# decisions (as issue 13 describes), reported, not asserted here: reader_power_cycle_theft
# (tags missing during the outage, 40 pieces, before the incident), uncorroborated_theft
# (theft raised 45 s after, before the lot's 120 s window), forklift_reshuffle_4hz (gaps in
# transit become departures), reader_cut_after_theft and corroborated_night_theft (two theft
# alerts for one incident once the door is heard), gateway_outage_theft (no siren for the
# gateway's own departures while the uplink is cut).
PLAYED_STORIES = ["reader_network_loss", "two_lots_one_reader", "forklift_reshuffle_1hz",
                  "lot_split_transfer", "door_at_night_no_theft", "cold_chain_short",
                  "cold_chain_long", "cold_chain_freeze"]


def _chosen() -> list[str]:
    wanted = os.environ.get("PW_STORIES")
    if not wanted:
        return PLAYED_STORIES
    if wanted == "all":
        return sorted(p.stem for p in world_story.RAW_STORIES.glob("*.json"))
    return wanted.split(",")


@pytest.mark.parametrize("name", _chosen())
async def test_story_through_the_agent_process(
    name: str, database_url: str, mqtt_broker, api_keys: dict[str, str],  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    from firmware_sim.world.judge import judge

    story = world_story.load_story(name)
    try:
        site = site_spec(story)
    except NotPlayable as err:
        pytest.skip(str(err))
    signals = list(story.sites[0].signals(story.seed))
    start = start_for(site.epoch_us, time.time_ns() // 1000)
    async with ClockController(start) as controller, \
            cloud_on(controller, database_url, mqtt_broker.url) as api:
        player = RawPlayer(api, api_keys["admin"], api_keys["bank-a"], "bank-a", "site-1",
                           mqtt_broker.url, tmp_path, controller)
        run = await player.run(site, signals)
    verdict = judge(story, outcome(story, run))
    print(json.dumps({**verdict.as_dict(), "simulated_s": run.simulated_s,
                      "wall_s": round(run.wall_s, 1), "unplayed": run.unplayed}))
    if name in PLAYED_STORIES:
        assert verdict.passed, verdict.as_dict()
