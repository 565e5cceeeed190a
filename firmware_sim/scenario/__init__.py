"""Scenarios played through a running system and judged on the alerts it produced.

- ``schema``: what a scenario file says (JSON in firmware_sim/scenarios/) and a run's names;
- ``link``: the TCP proxy that cuts the gateway's uplink (a network outage);
- ``receiver``: the financier's webhook endpoint;
- ``api``: how the players call the cloud's API;
- ``player``: registers a gateway and its lots, runs the edge's real ``Agent`` and plays the
  steps into it (the agent's own alerting stage decides, and sounds the local siren);
- ``judge``: found, missing and forbidden alerts, timings, precision and recall;
- ``raw_player``: raw signals into the real agent as its own process on a simulated clock
  (``python -m edge run --clock sim:...``), through driven device simulators (docs/clock.md);
- ``stories``: the world's raw stories (firmware_sim/world) played by it and judged by the
  world's judge;
- ``cli``: ``python -m firmware_sim scenario NAME|FILE|all --against URL``.
"""

from firmware_sim.scenario.cli import add_command
from firmware_sim.scenario.judge import Verdict, judge, summary
from firmware_sim.scenario.player import Player
from firmware_sim.scenario.schema import SCENARIOS, RunNames, Scenario, load_scenario

__all__ = ["SCENARIOS", "Player", "RunNames", "Scenario", "Verdict", "add_command", "judge",
           "load_scenario", "summary"]
