"""The cloud keeps every gateway holding its site's gate list and released lots: a supervisor's
or a financier's write reaches the gateway as a signed, retained command within moments, and the
gateway's alerting stage takes it (a plate on that list leaving is not a theft, offline too)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiomqtt
import httpx
import psycopg

from cloud.command_key import load_command_key_from
from cloud.gate_push import GatePush, SiteCommands, to_push
from contract import open_command
from contract.topics import cmd_topic
from decisions.vehicles import AuthorisedVehicles
from edge.alerting import EdgeAlerting
from edge.trackers.releases import parse_release_plan
from tests.receipts_fixtures import EPCS, auth, issue, make_lot, operator_key, see_tags, world

__all__ = ["operator_key", "world"]  # fixtures used by name


def test_only_a_change_of_content_is_pushed_again() -> None:
    first = SiteCommands("site-1", {"version": 1, "timezone": "UTC", "vehicles": []}, ())
    recomputed = SiteCommands("site-1", {"version": 2, "timezone": "UTC", "vehicles": []}, ())
    released = SiteCommands("site-1", {"version": 3, "timezone": "UTC", "vehicles": []},
                            ("LOT-1",))
    pushed = {"site-1": first.content()}
    assert to_push({}, first)
    assert not to_push(pushed, recomputed)  # a new version of the same list: nothing to send
    assert to_push(pushed, released)


async def _commands(
    port: int, gateway: str, database_url: str, want: dict[str, Any], timeout_s: float = 15.0
) -> dict[str, Any]:
    """The bodies of the gateway's retained commands, once they match ``want`` (verified)."""
    key = load_command_key_from(database_url).public_key()
    seen: dict[str, Any] = {}
    async with aiomqtt.Client("127.0.0.1", port) as client:
        for name in want:
            await client.subscribe(cmd_topic("site-1", gateway, name), qos=1)
        async with asyncio.timeout(timeout_s):
            async for message in client.messages:
                name = str(message.topic).rsplit("/", 1)[-1]
                command = open_command(bytes(message.payload),  # type: ignore[arg-type]
                                       public_key=key, site="site-1", gateway=gateway,
                                       name=name, now_us=time.time_ns() // 1000)
                seen[name] = command.body
                if all(check(seen.get(n)) for n, check in want.items()):
                    return seen
    raise AssertionError("unreachable")


async def test_writes_reach_the_gateway_as_signed_retained_commands(
    api_client: httpx.AsyncClient, world: dict[str, str], database_url: str, mqtt_broker: Any,
    operator_key: Any,
) -> None:
    await make_lot(api_client, world)
    see_tags(database_url, EPCS)
    await issue(api_client, world)
    sup, bank_a = auth(world["supervisor"]), auth(world["bank-a"])
    pledged = await api_client.post(
        "/api/v1/receipts/WR-1/pledge", json={"pledgee": "bank-a"}, headers=sup
    )
    assert pledged.status_code == 200, pledged.text

    def plates(body: Any) -> set[str]:
        return {v["plate"] for v in (body or {}).get("vehicles", [])}

    async with GatePush(database_url, mqtt_broker.url, refresh_s=60) as push:
        # At start every site is pushed: nothing authorised, nothing released yet.
        at_start = await _commands(mqtt_broker.port, "gw-1", database_url, {
            "authorised_vehicles": lambda b: b is not None,
            "lot_releases": lambda b: b == {"released": [], "releases": []},
        })
        assert plates(at_start["authorised_vehicles"]) == set()

        request = await api_client.post(
            "/api/v1/receipts/WR-1/releases",
            json={"quantity": "40", "pieces": 4, "tags": EPCS[:4], "vehicle": "沪A12345"},
            headers=sup,
        )
        assert request.status_code == 201, request.text
        approved = await api_client.post(
            f"/api/v1/receipts/WR-1/releases/{request.json()['id']}/approve", headers=bank_a
        )
        assert approved.status_code == 200, approved.text
        after = await _commands(mqtt_broker.port, "gw-1", database_url, {
            "authorised_vehicles": lambda b: "沪A12345" in plates(b),
            "lot_releases": lambda b: b is not None and b["released"] == ["LOT-1"],
        })
        # A lot's own vehicles join the list on the supervisor's edit.
        edited = await api_client.put(
            "/api/v1/lots/LOT-1/details", json={"authorised_vehicles": ["粤B-D12345"]},
            headers=sup,
        )
        assert edited.status_code == 200, edited.text
        both = await _commands(mqtt_broker.port, "gw-1", database_url, {
            "authorised_vehicles": lambda b: plates(b) == {"沪A12345", "粤B-D12345"},
        })
        for _ in range(40):  # the counter moves just after the broker took the messages
            if push.pushes >= 4:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        pushes = push.pushes
    # site-1 at start, on the approval and on the edit; site-2 at start. The pending request
    # changed nothing the gateways hold, so it sent nothing.
    assert pushes == 4

    # What the gateway does with it: the list is newer than what it had, and the truck of the
    # approved release leaving is authorised.
    stage = EdgeAlerting(None)
    assert stage.gate_list_received(AuthorisedVehicles.model_validate(at_start[
        "authorised_vehicles"]))
    gate = AuthorisedVehicles.model_validate(both["authorised_vehicles"])
    assert stage.gate_list_received(gate)
    assert gate.version > at_start["authorised_vehicles"]["version"]
    assert stage.vehicle_authorised("沪A12345", time.time_ns() // 1000) is True
    assert stage.vehicle_authorised("京C99999", time.time_ns() // 1000) is False
    # The releases, with their pieces, truck and window, as the gateway reads them.
    plan = parse_release_plan(json.dumps(after["lot_releases"]).encode())
    assert plan.released == {"LOT-1"}
    [release] = plan.releases
    assert (release.lot, release.pieces, release.vehicles) == ("LOT-1", 4, ("沪A12345",))
    assert release.window_start_us <= time.time_ns() // 1000 <= release.window_end_us
    assert release.window_end_us - release.window_start_us == 24 * 3600 * 1_000_000


async def test_a_new_gateway_gets_its_sites_pair_without_any_other_write(
    database_url: str, mqtt_broker: Any, register_gateway: Any,
) -> None:
    standby = GatePush(database_url, mqtt_broker.url, refresh_s=60)
    async with GatePush(database_url, mqtt_broker.url, refresh_s=60) as leader, standby:
        await asyncio.sleep(0.5)  # started with no gateway at all
        register_gateway(site="site-1", gateway="gw-new")
        got = await _commands(mqtt_broker.port, "gw-new", database_url, {
            "authorised_vehicles": lambda b: b is not None,
            "lot_releases": lambda b: b is not None,
        })
        await asyncio.sleep(0.5)  # the counter moves just after the broker took the messages
        pushes = (leader.pushes, standby.pushes)
    assert got["lot_releases"] == {"released": [], "releases": []}
    assert sorted(pushes) == [0, 1]  # two ingest processes: one pushes
    with psycopg.connect(database_url) as conn:
        tz = conn.execute("SELECT timezone FROM sites WHERE id = 'site-1'").fetchone()
    assert tz is not None and got["authorised_vehicles"]["timezone"] == tz[0]
