"""`python -m cloud webhooks`: the delivery worker (run as many as you like; they share rows).

Targets on private, loopback or link-local addresses are refused unless PW_WEBHOOK_ALLOW
names them (comma-separated hosts, addresses or CIDRs).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from cloud.settings import load_settings
from cloud.webhooks.worker import WebhookSender, allow_list_from_env
from ops.runtime import settle_after_start_up


def _run(args: argparse.Namespace) -> int:
    sender = WebhookSender(load_settings().database_url, allow=allow_list_from_env(),
                           concurrency=args.concurrency)
    settle_after_start_up()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(sender.run(poll_s=args.poll_s))
    return 0


def add_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("webhooks", help="deliver signed webhooks from the outbox")
    parser.add_argument("--concurrency", type=int, default=8,
                        help="deliveries in flight at once (each on its own connection)")
    parser.add_argument("--poll-s", type=float, default=1.0,
                        help="look for due retries this often (new messages wake it at once)")
    parser.set_defaults(func=_run)
