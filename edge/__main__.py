"""`python -m edge`: run the gateway agent, make its key, and the adapters' tools."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import os
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contract import private_key_pem, public_key_b64
from ops.logging import configure

# Modules that add a subcommand (``add_command(subparsers)``). Add yours here.
COMMAND_MODULES: tuple[str, ...] = ("edge.rfid.cli", "edge.vision.cli")


def _run(args: argparse.Namespace) -> int:
    from edge.agent import Agent
    from edge.config import ConfigError, load_config

    try:
        config = load_config(Path(args.config))
    except ConfigError as err:
        print(f"edge: bad configuration: {err}", file=sys.stderr)
        return 2
    configure("edge", config.log_level)
    agent = Agent(config)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(agent.run())
    return 0


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
