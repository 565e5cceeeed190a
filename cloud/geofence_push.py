"""Versioned fences in the cloud, pushed to a site's gateways on ``cmd/geofences``.

``push_fences`` validates a FeatureCollection with the same code the gateways run, stores it as
the site's next version (``geofence_sets``) and publishes it retained to every gateway of the
site, signed with the cloud's command key (contract/commands.py), so a gateway that is offline
gets it when it reconnects. Each gateway answers with
``geofences_applied`` (stored in ``geofence_acks``), which is how the cloud knows which version
each one runs.

    python -m cloud geofences push geofences/sites/demo-site.geojson
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import aiomqtt
import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.command_key import load_command_key
from cloud.settings import load_settings
from contract.commands import seal_command
from contract.topics import cmd_topic
from geofences.fences import FenceSet, parse_feature_collection
from geofences.update import COMMAND, update_body
from ops.mqtt import broker_address


def next_version(conn: psycopg.Connection[Any], site: str) -> int:
    row = conn.execute(
        "SELECT coalesce(max(version), 0) + 1 FROM geofence_sets WHERE site_id = %s", (site,)
    ).fetchone()
    return int(row[0]) if row else 1


def store_fences(conn: psycopg.Connection[Any], collection: dict[str, Any]) -> FenceSet:
    """Validate and store as the site's next version (InvalidGeofence names a bad fence)."""
    site = collection.get("site")
    if not isinstance(site, str):
        raise ValueError("the FeatureCollection names no site")
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"geofences:{site}",))
        version = next_version(conn, site)
        fences = parse_feature_collection(collection, version=version)
        conn.execute(
            "INSERT INTO geofence_sets (site_id, version, collection) VALUES (%s, %s, %s)",
            (site, version, json.dumps(fences.to_feature_collection())),
        )
    return fences


def gateways_of(conn: psycopg.Connection[Any], site: str) -> list[str]:
    rows = conn.execute("SELECT id FROM gateways WHERE site_id = %s ORDER BY id", (site,))
    return [r[0] for r in rows.fetchall()]


async def publish_fences(
    mqtt_url: str,
    fences: FenceSet,
    gateways: list[str],
    *,
    command_key: Ed25519PrivateKey,
    username: str | None = None,
    password: str | None = None,
) -> None:
    host, port, url_user, url_password = broker_address(mqtt_url)
    body = update_body(fences)
    issued_at_us = time.time_ns() // 1000
    async with aiomqtt.Client(
        host, port, username=username or url_user, password=password or url_password
    ) as client:
        for gateway in gateways:
            payload = seal_command(command_key, site=fences.site, gateway=gateway, name=COMMAND,
                                   body=body, issued_at_us=issued_at_us)
            await client.publish(
                cmd_topic(fences.site, gateway, COMMAND), payload, qos=1, retain=True
            )


def _push(args: argparse.Namespace) -> int:
    settings = load_settings()
    with open(args.file, encoding="utf-8") as handle:
        collection = json.load(handle)
    with psycopg.connect(settings.database_url) as conn:
        fences = store_fences(conn, collection)
        gateways = gateways_of(conn, fences.site)
        command_key = load_command_key(conn)
    asyncio.run(
        publish_fences(
            settings.mqtt_url,
            fences,
            gateways,
            command_key=command_key,
            username=settings.mqtt_username,
            password=settings.mqtt_password,
        )
    )
    print(json.dumps({"site": fences.site, "version": fences.version, "gateways": gateways}))
    return 0


def add_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("geofences", help="versioned geofences for a site's gateways")
    actions = parser.add_subparsers(dest="action", required=True)
    push = actions.add_parser("push", help="store a FeatureCollection as the next version, push it")
    push.add_argument("file")
    push.set_defaults(func=_push)
