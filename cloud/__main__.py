"""`python -m cloud`: migrate the database, run ingest or the API, administer keys and gateways.

Database and broker come from DATABASE_URL and MQTT_URL (see cloud/settings.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import logging
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from psycopg import AsyncConnection

from cloud.settings import load_settings
from ops.logging import configure
from ops.runtime import favour_the_event_loop, settle_after_start_up

log = logging.getLogger("cloud")
T = TypeVar("T")

# Modules that add a subcommand (``add_command(subparsers)``). Add yours here.
COMMAND_MODULES: tuple[str, ...] = (
    "cloud.receipts.cli",
    "cloud.jt808.cli",
    "cloud.geofence_push",
    "cloud.owntracks",
    "cloud.webhooks.cli",
    "cloud.integrity.cli",
)


def _migrate(args: argparse.Namespace) -> int:
    from cloud.db import connect
    from cloud.migrate import MigrationRefused, migrate

    with connect(load_settings().database_url) as conn:
        try:
            applied = migrate(conn)
        except MigrationRefused as err:
            print(f"migrate: {err}", file=sys.stderr)
            return 2
    print(json.dumps({"applied": applied}))
    return 0


def _ingest(args: argparse.Namespace) -> int:
    from cloud.gate_push import GatePush
    from cloud.ingest.consumer import Ingest, IngestOptions, serve_metrics

    settings = load_settings()
    source = settings.broker or settings.mqtt_url
    options = IngestOptions(
        database_url=settings.database_url,
        mqtt_url=source,
        client_id=args.client_id or f"ingest-{socket.gethostname()}-1",
        mqtt_username=settings.mqtt_username,
        mqtt_password=settings.mqtt_password,
        protocol=settings.mqtt_protocol,
        subscription=args.subscription,
        batch_messages=settings.ingest_batch_messages,
        batch_ms=settings.ingest_batch_ms,
        max_clock_skew_s=settings.ingest_max_clock_skew_s,
        rules_in_ingest=settings.rules_in_ingest,
    )
    if source.startswith("nats://"):  # the clustered profile: one JetStream work queue
        from cloud.ingest.jetstream import JetStreamIngest, JetStreamOptions  # `cluster` extra

        worker = JetStreamIngest(options, JetStreamOptions(replicas=settings.stream_replicas))
        metrics, consume = worker.metrics, worker.run
    else:
        ingest = Ingest(options)
        metrics, consume = ingest.metrics, ingest.run
    if args.metrics_port:
        serve_metrics(metrics, args.metrics_port)

    async def run() -> None:
        # The gateways' gate list and released lots ride with ingest: one of the processes,
        # holding a database lock, pushes them over MQTT (cloud/gate_push.py).
        async with GatePush(settings.database_url, settings.mqtt_url,
                            username=settings.mqtt_username, password=settings.mqtt_password):
            await consume()

    favour_the_event_loop()  # the bulk lane's threads hand the lock back within 1 ms
    settle_after_start_up()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
    return 0


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from cloud.api.app import create_app

    settings = load_settings()
    uvicorn.run(
        create_app(settings),
        host=args.host or settings.api_host,
        port=args.port or settings.api_port,
        log_config=None,
        access_log=False,
        ws_max_size=64 * 1024,  # a browser sends only its hello on the live socket
    )
    return 0


def _sync(service: Callable[[AsyncConnection[Any]], Awaitable[T]]) -> T:
    """Run an async service function on one connection, committing on success."""
    from psycopg.rows import dict_row

    async def runner() -> T:
        async with await AsyncConnection.connect(
            load_settings().database_url, row_factory=dict_row
        ) as conn:
            result = await service(conn)
            await conn.commit()
            return result

    return asyncio.run(runner())


def _apikey(args: argparse.Namespace) -> int:
    from cloud.apikeys import create_key
    from cloud.db import connect

    with connect(load_settings().database_url) as conn:
        key = create_key(conn, args.role, operator_id=args.operator, financier_id=args.financier,
                         gateway_id=args.gateway, label=args.label)
    print(key)
    return 0


def _apikey_revoke(args: argparse.Namespace) -> int:
    from cloud.apikeys import revoke

    key_id = args.key.split("_", 2)[1] if args.key.startswith("pw_") else args.key
    if not _sync(lambda c: revoke(c, key_id)):
        print(f"no unrevoked API key {key_id!r}", file=sys.stderr)
        return 1
    print(f"revoked {key_id}")
    return 0


def _operator(args: argparse.Namespace) -> int:
    from cloud import registry

    _sync(lambda c: registry.create_operator(c, args.id, args.name))
    return 0


def _financier(args: argparse.Namespace) -> int:
    from cloud import registry

    _sync(lambda c: registry.create_financier(c, args.id, args.name))
    return 0


def _site(args: argparse.Namespace) -> int:
    from cloud import registry

    row = _sync(lambda c: registry.create_site(c, args.id, args.operator, args.name, args.tz))
    print(json.dumps(row, default=str))
    return 0


def _gateway(args: argparse.Namespace) -> int:
    from cloud import registry
    from contract import load_public_key

    if args.revoke:
        try:
            row = _sync(lambda c: registry.revoke_gateway(c, None, args.id))
        except registry.NotFound as err:
            raise SystemExit(f"gateway: {err}") from None
        print(json.dumps(row, default=str))
        return 0
    if not args.site or not (args.public_key_file or args.key):
        raise SystemExit("gateway: --site and --public-key-file or --key are required "
                         "(unless --revoke)")
    key = Path(args.public_key_file).read_text().strip() if args.public_key_file else args.key
    load_public_key(key)
    row = _sync(lambda c: registry.register_gateway(c, args.id, args.site, key, args.mqtt_user))
    print(json.dumps(row, default=str))
    return 0


def _command_key(args: argparse.Namespace) -> int:
    from cloud.command_key import load_command_key_from
    from contract import public_key_b64

    key = load_command_key_from(load_settings().database_url)
    text = public_key_b64(key) + "\n"
    if args.out:
        Path(args.out).write_text(text)
    print(text, end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cloud", description=__doc__)
    parser.add_argument("--log-level", default="INFO")
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("migrate", help="apply database migrations").set_defaults(func=_migrate)

    ingest = commands.add_parser("ingest", help="MQTT -> PostgreSQL")
    ingest.add_argument("--client-id", help="stable MQTT client id (persistent session)")
    ingest.add_argument("--subscription", choices=["auto", "shared", "plain"], default="auto")
    ingest.add_argument("--metrics-port", type=int, default=9102, help="0 disables /metrics")
    ingest.set_defaults(func=_ingest)

    serve = commands.add_parser("serve", help="the HTTP API and map")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.set_defaults(func=_serve)

    apikey = commands.add_parser("apikey", help="create an API key (printed once)")
    apikey.add_argument("--role", required=True,
                        choices=["admin", "supervisor", "financier", "gateway"])
    apikey.add_argument("--operator")
    apikey.add_argument("--financier")
    apikey.add_argument("--gateway")
    apikey.add_argument("--label", default="")
    apikey.set_defaults(func=_apikey)
    revoke = commands.add_parser("apikey-revoke", help="revoke an API key (open sockets close)")
    revoke.add_argument("key", help="the key id (or the whole pw_<id>_<secret> key)")
    revoke.set_defaults(func=_apikey_revoke)

    for name, func in (("operator", _operator), ("financier", _financier)):
        p = commands.add_parser(name, help=f"create or rename a {name}")
        p.add_argument("--id", required=True)
        p.add_argument("--name", required=True)
        p.set_defaults(func=func)

    site = commands.add_parser("site", help="create a site")
    site.add_argument("--id", required=True)
    site.add_argument("--operator", required=True)
    site.add_argument("--name", required=True)
    site.add_argument("--tz", default="UTC")
    site.set_defaults(func=_site)

    gateway = commands.add_parser(
        "gateway", help="register or re-key a gateway's public key, or revoke it")
    gateway.add_argument("--id", required=True)
    gateway.add_argument("--site")
    gateway.add_argument("--revoke", action="store_true",
                         help="refuse all its messages from now on (re-keying lifts this)")
    keys = gateway.add_mutually_exclusive_group()
    keys.add_argument("--public-key-file", help="the .pub file written by `python -m edge keygen`")
    keys.add_argument("--key", help="base64 public key")
    gateway.add_argument("--mqtt-user")
    gateway.set_defaults(func=_gateway)

    command_key = commands.add_parser(
        "command-key", help="print the public key gateways verify cloud commands with (cloud.pub)")
    command_key.add_argument("--out", help="also write it to this file (the gateway's cloud.pub)")
    command_key.set_defaults(func=_command_key)

    for name in COMMAND_MODULES:
        importlib.import_module(name).add_command(commands)
    args = parser.parse_args(argv)
    configure("cloud", args.log_level)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
