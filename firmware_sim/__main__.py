"""`python -m firmware_sim <command> ...`: run one simulated device or scenario.

Each command lives in its own module, which exposes ``add_command(subparsers)`` and sets
``func`` (a callable taking the parsed args and returning an exit code) on its parser.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ops.logging import configure

# Modules that add a command. Add yours here.
COMMAND_MODULES: tuple[str, ...] = (
    "firmware_sim.impinj_reader",
    "firmware_sim.llrp_reader",
    "firmware_sim.zebra_stream",
    "firmware_sim.camera.command",
    "firmware_sim.trackers",
    "firmware_sim.jt808_terminal",
    "firmware_sim.modbus_loadcell",
    "firmware_sim.sensors",
    "firmware_sim.scenario",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m firmware_sim", description=__doc__)
    parser.add_argument("--log-level", default="INFO")
    commands = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_command(commands)
    args = parser.parse_args(argv)
    configure("firmware_sim", args.log_level)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
