"""The JT/T 808 server over real TCP with the simulated terminal, storing into PostgreSQL:
registration, authentication, live and blind-area positions, a theft decided in the cloud,
and malformed frames answered without harming the connection or the server."""

from __future__ import annotations

import asyncio
import contextlib
import time

import psycopg

from cloud.jt808.provisioning import load_terminals, provision
from cloud.jt808.server import Jt808Server
from cloud.jt808.service import Jt808Tracking, tracker_of
from cloud.jt808.session import ProvisionedTerminals
from contract.jt808 import Header, MsgId, Result, encode_frame
from firmware_sim.jt808_terminal import Jt808Terminal
from firmware_sim.trackers import drive_out
from geofences.fences import load_site

PHONE = "13800138000"
TERMINAL_ID = "T138000"  # what the simulated terminal's registration carries ("T" + last 6)
AUTHORITY_CODE = "provisioned-code-808"


def prepare_sites(database_url: str) -> None:
    """The demo site with lot LOT-B, and a second site of another operator."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO operators VALUES ('op-1', 'Operator 1'), ('op-2', 'Operator 2')")
        conn.execute(
            "INSERT INTO sites (id, operator_id, name) VALUES "
            "('demo-site', 'op-1', 'Demo'), ('other-site', 'op-2', 'Other')"
        )
        conn.execute(
            "INSERT INTO lots (id, site_id, name) VALUES "
            "('LOT-B', 'demo-site', 'Coils B'), ('LOT-X', 'other-site', 'Elsewhere')"
        )


async def provision_terminal(database_url: str, phone: str = PHONE, **kwargs) -> str:
    args = {
        "site": "demo-site",
        "terminal_id": "T" + phone[-6:],
        "auth_code": AUTHORITY_CODE if phone == PHONE else None,
        "lot": "LOT-B" if phone == PHONE else None,
        "report_interval_s": 600.0,
        "actor": "test",
    } | kwargs
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        return (await provision(conn, phone=phone, **args)).auth_code


async def _serving(database_url: str, *, extra_phones: tuple[str, ...] = ()):
    prepare_sites(database_url)
    await provision_terminal(database_url)
    for phone in extra_phones:
        await provision_terminal(database_url, phone)
    fences = load_site("demo-site")
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        terminals = await load_terminals(conn, fences.site)
    tracking = Jt808Tracking(
        database_url, fences, terminals, name="test", now_us=time.time_ns() // 1000
    )

    async def sink(events):
        await tracking.on_events(events, time.time_ns() // 1000)

    server = Jt808Server(ProvisionedTerminals(terminals), sink, idle_timeout_s=30)
    await server.start("127.0.0.1", 0)
    return server, tracking, fences


async def test_terminal_drives_out_and_the_cloud_decides_a_theft(database_url):
    server, tracking, fences = await _serving(database_url)
    terminal = Jt808Terminal(PHONE)
    try:
        await terminal.connect("127.0.0.1", server.port)
        assert await terminal.log_in()
        t0_us = time.time_ns() // 1000 - 3_600_000_000
        route = [p.fix for p in drive_out(fences, t0_us, device=PHONE)]
        blind = route[30:45]  # no mobile link here: uploaded later as a 0x0704 backfill
        for i, fix in enumerate(route):
            if 30 <= i < 45:
                continue
            if i == 45:
                serial = await terminal.report_batch(blind, backfill=True)
                assert terminal.log.answers[serial].result == Result.OK
            serial = await terminal.report(fix)
            assert terminal.log.answers[serial].result == Result.OK
            if i == 10:
                # A frame with a broken checksum: answered "message error", link stays up.
                bad = bytearray(encode_frame(Header(MsgId.HEARTBEAT, PHONE, 900), b""))
                bad[-2] ^= 0x5A
                await terminal.send_raw(bytes(bad))
                await terminal._await_answer(900)
                assert terminal.log.answers[900].result == Result.MESSAGE_ERROR
    finally:
        await terminal.close()
        await server.close()
        await tracking.close()

    with psycopg.connect(database_url) as conn:
        positions = conn.execute(
            "SELECT count(*) FROM tracker_positions WHERE tracker = %s", (tracker_of(PHONE),)
        ).fetchone()[0]
        assert positions == len(route)
        events = conn.execute(
            "SELECT kind, fence_id FROM geofence_events WHERE tracker = %s ORDER BY fix_at",
            (tracker_of(PHONE),),
        ).fetchall()
        assert events.count(("geofence_exit", "pz-lot-b")) == 1
        alert = conn.execute(
            "SELECT severity, state, count FROM alerts"
            " WHERE alert_type = 'theft.geofence_exit' AND subject = %s",
            (f"tracker:{tracker_of(PHONE)}",),
        ).fetchone()
        # One active alert per (type, subject): leaving the pledge zone, then the yard.
        assert alert == ("critical", "open", 2)
        terminal_row = conn.execute(
            "SELECT tracker, plate FROM jt808_terminals WHERE phone = %s", (PHONE,)
        ).fetchone()
        assert terminal_row == (tracker_of(PHONE), "沪A38000")


async def test_unknown_terminal_and_garbage_do_not_harm_the_server(database_url):
    server, tracking, _ = await _serving(database_url)
    try:
        stranger = Jt808Terminal("13900000000")
        await stranger.connect("127.0.0.1", server.port)
        assert not await stranger.log_in()  # registration refused: not a known terminal
        await stranger.close()

        _reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"\x7e\x00\x01garbage\x7e" + bytes(range(256)) * 8 + b"\x7e\x7e")
        await writer.drain()
        writer.close()

        # The server still serves a proper terminal afterwards.
        terminal = Jt808Terminal(PHONE)
        await terminal.connect("127.0.0.1", server.port)
        assert await terminal.log_in()
        await terminal.close()
        assert server.connections == 3
    finally:
        await server.close()
        await tracking.close()


async def test_position_before_login_is_refused(database_url):
    server, tracking, fences = await _serving(database_url)
    try:
        terminal = Jt808Terminal(PHONE)
        await terminal.connect("127.0.0.1", server.port)
        fix = next(iter(drive_out(fences, time.time_ns() // 1000, device=PHONE))).fix
        serial = await terminal.report(fix)
        assert terminal.log.answers[serial].result == Result.FAILURE
        await terminal.close()
    finally:
        await server.close()
        await tracking.close()
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM tracker_positions").fetchone()[0] == 0


async def test_database_outage_leaves_positions_unacknowledged_then_stores_them_once(
    database_url,
):
    server_url, name = database_url.rsplit("/", 1)
    server, tracking, fences = await _serving(database_url)
    route = [p.fix for p in drive_out(fences, time.time_ns() // 1000 - 600_000_000, device=PHONE)]
    try:
        terminal = Jt808Terminal(PHONE)
        await terminal.connect("127.0.0.1", server.port)
        assert await terminal.log_in()
        await terminal.report(route[0])
        with psycopg.connect(f"{server_url}/postgres", autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            with contextlib.suppress(ConnectionError, TimeoutError):
                await terminal.report(route[1])
                raise AssertionError("a position that could not be stored was acknowledged")
            admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
        await terminal.close()
        # The terminal comes back and sends the unacknowledged position again, then the next.
        terminal = Jt808Terminal(PHONE)
        await terminal.connect("127.0.0.1", server.port)
        assert await terminal.log_in(AUTHORITY_CODE)
        assert terminal.log.answers[await terminal.report(route[1])].result == Result.OK
        assert terminal.log.answers[await terminal.report(route[2])].result == Result.OK
        await terminal.close()
    finally:
        await server.close()
        await tracking.close()
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT count(*) FROM tracker_positions").fetchone()[0]
    assert rows == 3  # each fix once, the retransmitted one included
