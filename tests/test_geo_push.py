"""The cloud stores fences as versions and pushes them retained on cmd/geofences; a gateway
that connects later still gets the newest and acknowledges the version it runs."""

from __future__ import annotations

import json
import time

import aiomqtt
import psycopg
import pytest

from cloud.command_key import load_command_key
from cloud.geofence_push import gateways_of, publish_fences, store_fences
from contract import MessageType, open_command
from contract.topics import cmd_topic
from decisions.trackers.station import TrackerStation
from geofences.crossing import CrossingRules
from geofences.fences import InvalidGeofence, parse_feature_collection
from tests.geo_fixtures import T0_US, square_site


async def test_push_is_versioned_retained_and_acknowledged(
    database_url, mqtt_broker, register_gateway
):
    register_gateway(site="site-1", gateway="gw-1")
    collection = square_site(site="site-1")
    with psycopg.connect(database_url) as conn:
        first = store_fences(conn, collection)
        second = store_fences(conn, collection)
        gateways = gateways_of(conn, "site-1")
        command_key = load_command_key(conn)
        broken = json.loads(json.dumps(collection))
        ring = broken["features"][0]["geometry"]["coordinates"][0]
        ring[1], ring[2] = ring[2], ring[1]
        with pytest.raises(InvalidGeofence):
            store_fences(conn, broken)
        versions = conn.execute(
            "SELECT version FROM geofence_sets WHERE site_id = 'site-1' ORDER BY version"
        ).fetchall()
    assert (first.version, second.version) == (1, 2)
    assert versions == [(1,), (2,)]  # the broken one was not stored
    assert gateways == ["gw-1"]

    await publish_fences(mqtt_broker.url, second, gateways, command_key=command_key)
    # The gateway connects afterwards: the retained command is waiting for it.
    async with aiomqtt.Client("127.0.0.1", mqtt_broker.port) as client:
        await client.subscribe(cmd_topic("site-1", "gw-1", "geofences"), qos=1)
        async for message in client.messages:
            signed = bytes(message.payload)  # type: ignore[arg-type]
            break
    # What the gateway acts on: the body of a command the cloud signed for it.
    command = open_command(signed, public_key=command_key.public_key(), site="site-1",
                           gateway="gw-1", name="geofences", now_us=time.time_ns() // 1000)
    payload = json.dumps(command.body).encode()
    station = TrackerStation(
        parse_feature_collection(collection, version=1),
        [],
        rules=CrossingRules(),
        source="sim",
        started_us=T0_US,
    )
    msg_type, ack = station.update_fences(payload)
    assert msg_type is MessageType.GEOFENCES_APPLIED
    assert (ack.version, ack.state) == (2, "applied")
