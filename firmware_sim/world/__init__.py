"""A simulated warehouse that speaks raw signals: tags, antennas and readers with read
probabilities and read cycles, doors, vehicles at the gate, sensor samples, GPS fixes and link
cuts, on a simulated clock. ``signals`` is what the world emits; the world model turns a
scenario's description into a time-ordered stream of them.

The API the players use:

    from firmware_sim.world import load_story
    story = load_story("slow_bleed")          # firmware_sim/scenarios/raw/slow_bleed.json
    for world in story.sites:                 # model.World: one site each
        for signal in world.signals(story.seed):   # signals.Signal, in t_us order
            ...

``t_us`` is simulated Unix time in microseconds (``world.epoch_us`` is the start). RFID speaks
as ``ReadReport`` (one per reader per report period, with per-tag seen counts and last-read
times; ``expand_report`` gives per-read ``TagRead``/``ReadCycle``), plus ``ReaderKeepalive``.
``ReaderPower`` says when the world turns a reader (or its network) off or on: a player uses it
to stop or start its simulated reader; decisions must not read it (the gateway only sees the
silence). ``LinkState`` is the gateway's uplink. ``world.epcs(lot)`` gives a lot's EPCs;
``world.releases`` and ``world.authorised_vehicles`` are the paper trail the cloud sends.
"""

from firmware_sim.world.model import World
from firmware_sim.world.story import Expect, Story, all_stories, load_story

__all__ = ["Expect", "Story", "World", "all_stories", "load_story"]
