"""`python -m cloud receipts ...`: verify a receipt offline, audit the ledger, make the key.

    python -m cloud receipts verify RECEIPT.json [--operator-key B64] [--later HEAD.json]
    python -m cloud receipts verify RECEIPT.json --api http://host:8000   (later head from API)
    python -m cloud receipts verify --number WR-1 --api URL --api-key KEY (bundle from API too)
    python -m cloud receipts audit                 (recompute the whole ledger from the database)
    python -m cloud receipts operator-key --out operator.pem

``verify`` exits 0 when the receipt is valid, 1 when it is not, 2 when the input is unusable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from cloud.receipts.verification import BundleMalformed, parse_later, verify_bundle
from contract import load_private_key, load_public_key, private_key_pem, public_key_b64


def _operator_public_key(args: argparse.Namespace) -> Ed25519PublicKey | None:
    if args.operator_key:
        return load_public_key(args.operator_key)
    if args.operator_key_file:
        text = Path(args.operator_key_file).read_text().strip()
        if "PRIVATE KEY" in text:
            return load_private_key(Path(args.operator_key_file)).public_key()
        return load_public_key(text)
    return None


def _get_json(url: str, api_key: str | None) -> Any:
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    response = httpx.get(url, headers=headers, timeout=30)
    if response.status_code != 200:
        raise BundleMalformed(f"GET {url} answered {response.status_code}: {response.text[:200]}")
    return response.json()


def _verify(args: argparse.Namespace) -> int:
    try:
        if args.file:
            bundle = json.loads(Path(args.file).read_text(encoding="utf-8"))
        elif args.number and args.api:
            bundle = _get_json(
                f"{args.api.rstrip('/')}/api/v1/receipts/{args.number}/bundle", args.api_key
            )
        else:
            raise BundleMalformed("give RECEIPT.json, or --number with --api")
        later = None
        if args.later:
            later = parse_later(json.loads(Path(args.later).read_text(encoding="utf-8")))
        elif args.api:
            size = (bundle.get("tree_head") or {}).get("size")
            later = parse_later(
                _get_json(f"{args.api.rstrip('/')}/api/v1/ledger/consistency?first={size}", None)
            )
        verdict = verify_bundle(bundle, _operator_public_key(args), later)
    except (OSError, ValueError) as err:  # json, key and bundle errors are all ValueErrors
        print(f"cannot verify: {err}", file=sys.stderr)
        return 2
    print(verdict.render())
    return 0 if verdict.valid else 1


def _audit(args: argparse.Namespace) -> int:
    from psycopg import AsyncConnection

    from cloud.receipts import ledger
    from cloud.settings import load_settings

    key = _operator_public_key(args)
    if key is None:
        print("audit needs --operator-key or --operator-key-file", file=sys.stderr)
        return 2

    async def run() -> list[str]:
        async with await AsyncConnection.connect(load_settings().database_url) as conn:
            return await ledger.audit(conn, key)

    problems = asyncio.run(run())
    for problem in problems:
        print(f"FAIL {problem}")
    print("ledger: CONSISTENT" if not problems else f"ledger: {len(problems)} PROBLEMS")
    return 0 if not problems else 1


def _operator_key(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.exists():
        print(f"{out} exists; not overwriting an operator key", file=sys.stderr)
        return 2
    key = Ed25519PrivateKey.generate()
    out.write_bytes(private_key_pem(key))
    out.chmod(0o600)
    print(public_key_b64(key))
    return 0


def _key_options(parser: argparse.ArgumentParser) -> None:
    keys = parser.add_mutually_exclusive_group()
    keys.add_argument("--operator-key", help="the operator's published public key (base64)")
    keys.add_argument("--operator-key-file", help="a file with that key (base64, or the PEM)")


def add_command(subparsers: Any) -> None:
    receipts = subparsers.add_parser("receipts", help="warehouse receipts and evidence ledger")
    commands = receipts.add_subparsers(dest="receipts_command", required=True)

    verify = commands.add_parser("verify", help="verify a receipt bundle offline")
    verify.add_argument("file", nargs="?", help="bundle from GET /api/v1/receipts/{n}/bundle")
    verify.add_argument("--number", help="fetch the bundle of this receipt from --api")
    verify.add_argument("--api", help="API base URL: also checks against the newest tree head")
    verify.add_argument("--api-key", help="API key to fetch a bundle with --number")
    verify.add_argument("--later", help="a later head: {tree_head, consistency_proof} JSON")
    _key_options(verify)
    verify.set_defaults(func=_verify)

    audit = commands.add_parser("audit", help="recompute the ledger from the database")
    _key_options(audit)
    audit.set_defaults(func=_audit)

    make_key = commands.add_parser("operator-key", help="create the operator's signing key")
    make_key.add_argument("--out", required=True)
    make_key.set_defaults(func=_operator_key)
