"""The cloud's command key: what signs every ``cmd/`` message to a gateway.

``PW_COMMAND_KEY_FILE`` names a PEM file (PKCS#8, Ed25519) when the operator keeps the key
outside the database. Without it, the key lives in the one-row table ``cloud_command_key``,
created by the first process that needs it, so every ingest process and the API sign with the
same key without a file to distribute. Gateways verify with its public half, which
``python -m cloud command-key`` prints (the gateway's ``cloud.pub``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import psycopg
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contract import load_private_key, private_key_pem

KEY_FILE_ENV = "PW_COMMAND_KEY_FILE"


_CREATE = "INSERT INTO cloud_command_key (private_pem) VALUES (%s) ON CONFLICT DO NOTHING"
_READ = "SELECT private_pem FROM cloud_command_key"


def _fresh_pem() -> str:
    return private_key_pem(Ed25519PrivateKey.generate()).decode("ascii")


def _from_pem(pem: object) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(str(pem).encode("ascii"), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("cloud_command_key does not hold an Ed25519 key")
    return key


def _named_file() -> Path | None:
    named = os.environ.get(KEY_FILE_ENV)
    return Path(named) if named else None


def load_command_key(conn: psycopg.Connection[Any]) -> Ed25519PrivateKey:
    if (named := _named_file()) is not None:
        return load_private_key(named)
    with conn.transaction():
        conn.execute(_CREATE, (_fresh_pem(),))
        row = conn.execute(_READ).fetchone()
    assert row is not None  # inserted or already there, in this transaction
    return _from_pem(row[0])


async def aload_command_key(conn: psycopg.AsyncConnection[Any]) -> Ed25519PrivateKey:
    if (named := _named_file()) is not None:
        return load_private_key(named)
    async with conn.transaction():
        await conn.execute(_CREATE, (_fresh_pem(),))
        row = await (await conn.execute(_READ)).fetchone()
    assert row is not None
    # The API's pool hands out dict rows; sync callers get tuples.
    return _from_pem(row["private_pem"] if isinstance(row, dict) else row[0])


def load_command_key_from(database_url: str) -> Ed25519PrivateKey:
    with psycopg.connect(database_url, autocommit=True) as conn:
        return load_command_key(conn)
