"""The gate list and the released lots, pushed to every gateway of a site as signed commands.

Theory of operation. The gateway's alerting stage decides alone while the cloud is unreachable, and
needs two things only the cloud knows: which vehicles may take goods out
(``cmd/authorised_vehicles``, an ``AuthorisedVehicles`` body) and which lots have an approved
release, with what each release allows (``cmd/lot_releases``, ``{"released": [...], "releases":
[{"lot", "pieces", "vehicles", "window_start", "window_end"}]}``: a departure up to the released
pieces on the release's truck is a release movement at the gateway too). Both change on a write (a
lot's vehicles, a release approved: a trigger sends ``NOTIFY pw_gate`` with the site) and without
one (a release's pickup window ends), so every site is also recomputed every ``refresh_s``. A
site's commands are published only when their content changed since this process last pushed them,
retained and signed with the cloud's command key, so a gateway that reconnects gets the current
pair and a forged one is refused. The gate list's ``version`` is the time it was computed: the
gateway keeps out a list that is not newer than the one it holds.

Runs inside every ingest process (``python -m cloud ingest``); one of them, holding an advisory
lock, pushes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiomqtt
import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from psycopg import AsyncConnection

from cloud.command_key import load_command_key_from
from cloud.receipts.gate import gate_list, release_windows, released_lots
from contract.commands import seal_command
from contract.topics import cmd_topic
from ops import timeouts
from ops.clock import SYSTEM_CLOCK, Clock
from ops.mqtt import broker_address
from ops.supervised import Supervised

log = logging.getLogger(__name__)

GATE_CHANNEL = "pw_gate"
GATE_LIST_COMMAND = "authorised_vehicles"
RELEASES_COMMAND = "lot_releases"
POLL_S = 0.5  # how often the wait for a notification looks up to see whether to stop

@dataclass(frozen=True, slots=True)
class SiteCommands:
    """What one site's gateways should hold: the gate list and the released lots."""

    site: str
    gate_list: dict[str, Any]
    released: tuple[str, ...]
    releases: tuple[dict[str, Any], ...] = ()

    def content(self) -> str:
        """What the gateways act on: the version is left out, it changes at every computation."""
        listed = {k: v for k, v in self.gate_list.items() if k != "version"}
        return json.dumps([listed, self.released, self.releases], sort_keys=True)

    def releases_body(self) -> dict[str, Any]:
        return {"released": list(self.released), "releases": list(self.releases)}


def to_push(last: dict[str, str], current: SiteCommands) -> bool:
    """Whether ``current`` differs from what was last pushed for its site."""
    return last.get(current.site) != current.content()


async def site_commands(conn: AsyncConnection[Any], site: str, now: datetime) -> SiteCommands:
    return SiteCommands(
        site=site,
        gate_list=await gate_list(conn, site, now),
        released=tuple(await released_lots(conn, site, now)),
        releases=tuple(await release_windows(conn, site, now)),
    )


async def gateways_by_site(conn: AsyncConnection[Any]) -> dict[str, list[str]]:
    cur = await conn.execute("SELECT site_id, id FROM gateways ORDER BY site_id, id")
    sites: dict[str, list[str]] = {}
    for site, gateway in await cur.fetchall():
        sites.setdefault(site, []).append(gateway)
    return sites


def site_messages(
    key: Ed25519PrivateKey, commands: SiteCommands, gateways: list[str], issued_at_us: int,
) -> list[tuple[str, bytes]]:
    """(topic, signed payload) of both commands for every gateway of the site."""
    bodies = {GATE_LIST_COMMAND: commands.gate_list,
              RELEASES_COMMAND: commands.releases_body()}
    return [
        (cmd_topic(commands.site, gateway, name),
         seal_command(key, site=commands.site, gateway=gateway, name=name, body=body,
                      issued_at_us=issued_at_us))
        for gateway in gateways for name, body in bodies.items()
    ]


class GatePush:
    """Keeps every site's gateways holding the current gate list and released lots."""

    def __init__(
        self, database_url: str, mqtt_url: str, *, username: str | None = None,
        password: str | None = None, refresh_s: float = 300.0, clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        # "Now" for which releases' pickup windows are still open, and for the commands' dates.
        self.clock = clock
        self.database_url = database_url
        self.mqtt_url = mqtt_url
        self.username = username
        self.password = password
        self.refresh_s = refresh_s
        self.pushes = 0  # site pushes published (for tests and /metrics)
        self._pushed: dict[str, str] = {}  # site -> content last published
        self._stop = asyncio.Event()
        self._stopped = asyncio.Event()
        self._owner = Supervised(
            "gate-push", self._session,
            retry_on=(OSError, psycopg.OperationalError, aiomqtt.MqttError),
        )

    async def __aenter__(self) -> GatePush:
        await self._owner.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        # Cancelling a task blocked in psycopg's notifies() can hang (cloud/live.py saw it too):
        # ask the session to return; it looks every POLL_S. Cancel only if it does not.
        self._stop.set()
        with contextlib.suppress(TimeoutError):
            await timeouts.wait_for(self._stopped.wait(), POLL_S * 4)
        await self._owner.__aexit__(None, None, None)

    async def _session(self, owner: Supervised) -> None:
        key = await asyncio.to_thread(load_command_key_from, self.database_url)
        async with (
            await AsyncConnection.connect(self.database_url, autocommit=True) as listen,
            await AsyncConnection.connect(self.database_url, autocommit=True) as conn,
        ):
            # Every ingest process runs one; the holder of this lock pushes, the others stand by
            # (the lock goes with the holder's connection, so one of them takes over).
            while not await self._lead(listen):
                with contextlib.suppress(TimeoutError):
                    await timeouts.wait_for(self._stop.wait(), min(self.refresh_s, 5.0))
                if self._stop.is_set():
                    self._stopped.set()
                    return
            await listen.execute(f"LISTEN {GATE_CHANNEL}")
            owner.up()
            self._pushed.clear()  # a new leader republishes (retained, so harmless)
            notified: set[str] | None = None  # None: every site
            while not self._stop.is_set():
                await self._push(conn, key, notified)
                notified = await self._wait(listen)
        self._stopped.set()

    async def _publish(self, messages: list[tuple[str, bytes]]) -> None:
        """One short broker session per push: pushes are rare, and a broker that restarts
        between them costs nothing."""
        host, port, url_user, url_password = broker_address(self.mqtt_url)
        async with aiomqtt.Client(host, port, username=self.username or url_user,
                                  password=self.password or url_password) as client:
            for topic, payload in messages:
                await client.publish(topic, payload, qos=1, retain=True)

    @staticmethod
    async def _lead(conn: AsyncConnection[Any]) -> bool:
        cur = await conn.execute("SELECT pg_try_advisory_lock(hashtext('pw_gate_push'))")
        row = await cur.fetchone()
        return bool(row and row[0])

    async def _wait(self, listen: AsyncConnection[Any]) -> set[str] | None:
        """The sites named by notifications, or None (every site) when the refresh is due."""
        sites: set[str] = set()
        loop = asyncio.get_running_loop()
        due = loop.time() + self.refresh_s
        while not sites and not self._stop.is_set() and loop.time() < due:
            # stop_after, not break: an abandoned generator keeps the connection's lock.
            async for note in listen.notifies(timeout=POLL_S, stop_after=1):
                sites.add(note.payload)
        if not sites:
            return None
        # Several writes of one transaction or burst arrive together: take them in one pass.
        async for note in listen.notifies(timeout=0.05):
            sites.add(note.payload)
        return sites

    async def _push(
        self, conn: AsyncConnection[Any], key: Ed25519PrivateKey, sites: set[str] | None,
    ) -> None:
        now = self.clock.now()
        gateways = await gateways_by_site(conn)
        for site in sorted(gateways if sites is None else sites & gateways.keys()):
            commands = await site_commands(conn, site, now)
            if not to_push(self._pushed, commands):
                continue
            await self._publish(site_messages(key, commands, gateways[site],
                                              self.clock.now_us()))
            self._pushed[site] = commands.content()
            self.pushes += 1
            log.info("gate list pushed", extra={"site": site, "gateways": len(gateways[site]),
                                                "vehicles": len(commands.gate_list["vehicles"]),
                                                "released": len(commands.released)})
