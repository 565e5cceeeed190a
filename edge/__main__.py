"""`python -m edge`: run the gateway agent, make its key, and the adapters' tools."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contract import private_key_pem, public_key_b64
from ops.clock import parse_clock
from ops.logging import configure
from ops.runtime import settle_after_start_up

if TYPE_CHECKING:
    from edge.config import AgentCore

log = logging.getLogger("edge")

# Modules that add a subcommand (``add_command(subparsers)``). Add yours here.
COMMAND_MODULES: tuple[str, ...] = ("edge.rfid.cli", "edge.vision.cli")


def _run(args: argparse.Namespace) -> int:
    from edge.agent import Agent
    from edge.config import ConfigError, load_config

    try:
        config = load_config(Path(args.config))
        _, address = parse_clock(args.clock)
    except (ConfigError, ValueError) as err:
        print(f"edge: bad configuration: {err}", file=sys.stderr)
        return 2
    configure("edge", config.log_level)
    settle_after_start_up()  # a full collection over the imports stalled events by ~100 ms
    with contextlib.suppress(KeyboardInterrupt):
        if address is None:
            asyncio.run(Agent(config).run())
        else:
            asyncio.run(_run_simulated(config, address))
    return 0


async def _run_simulated(config: AgentCore, address: tuple[str, int]) -> None:
    """The agent on a simulated clock its controller moves (a scenario player); it stops when
    the controller goes away, since its time would never move again."""
    from edge.agent import Agent
    from ops.clock import SYSTEM_CLOCK
    from ops.clock_control import ClockChannelError, attach, follow

    clock, reader, writer = await attach(*address)
    agent = Agent(config, clock=clock, delivery_clock=SYSTEM_CLOCK)
    running = asyncio.create_task(agent.run(), name="agent")
    following = asyncio.create_task(follow(clock, reader, writer), name="clock")
    done, _ = await asyncio.wait({running, following}, return_when=asyncio.FIRST_COMPLETED)
    for task in (running, following):
        task.cancel()
    await asyncio.wait({running, following})
    if running in done and (error := running.exception()) is not None:
        raise error
    if following in done and isinstance(gone := following.exception(), ClockChannelError):
        log.info("clock controller gone; stopping", extra={"why": str(gone)})
    elif following in done and (error := following.exception()) is not None:
        raise error


def _keygen(args: argparse.Namespace) -> int:
    path = Path(args.out)
    if path.exists() and not args.force:
        print(f"edge: {path} exists; pass --force to replace it", file=sys.stderr)
        return 2
    key = Ed25519PrivateKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(private_key_pem(key))
    public = public_key_b64(key)
    path.with_suffix(".pub").write_text(public + "\n")
    print(public)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the gateway agent")
    run.add_argument("--config", required=True, help="agent config file (.toml or .yaml)")
    run.add_argument(
        "--clock", default=os.environ.get("PW_EDGE_CLOCK", "system"),
        help="'system' (default), or 'sim:127.0.0.1:PORT': a simulated clock moved by the "
             "scenario player listening there (env PW_EDGE_CLOCK)")
    run.set_defaults(func=_run)
    keygen = commands.add_parser(
        "keygen", help="make the gateway's Ed25519 key; prints the public key to register"
    )
    keygen.add_argument("--out", default="gateway.key", help="private key file (PEM, mode 600)")
    keygen.add_argument("--force", action="store_true", help="replace an existing key")
    keygen.set_defaults(func=_keygen)
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_command(commands)
    args = parser.parse_args(argv)
    if args.command != "run":
        configure("edge", "WARNING")
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
