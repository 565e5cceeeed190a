"""Shared fixtures: a real PostgreSQL database and a real Mosquitto broker per test.

Services are never mocked and never skipped: a test that cannot reach PostgreSQL or start
Mosquitto fails, so a broken install cannot hide behind a green run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ROOT = Path(__file__).resolve().parent.parent
PG_SERVER_URL = os.environ.get("PW_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
PROJECT_MOSQUITTO_CONF = ROOT / "deploy" / "mosquitto" / "mosquitto.conf"


# Fixtures that reach a real service. A test that uses one, directly or through another fixture,
# is an integration test whatever its module says, so `-m "not integration"` needs no service.
SERVICE_FIXTURES = frozenset({"migrated_template", "database_url", "mqtt_broker", "make_broker"})


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERVICE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _url_for(name: str) -> str:
    return PG_SERVER_URL.rsplit("/", 1)[0] + f"/{name}"


# -- PostgreSQL ----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def migrated_template() -> Iterator[str]:
    """A migrated database used as the template of each test's own database."""
    try:
        admin = psycopg.connect(PG_SERVER_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as err:
        pytest.fail(f"PostgreSQL is required at {PG_SERVER_URL}: {err}")
    name = f"pw_tmpl_{os.getpid()}"
    admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
    admin.execute(f'CREATE DATABASE "{name}"')
    from cloud.migrate import migrate

    with psycopg.connect(_url_for(name), autocommit=True) as conn:
        migrate(conn)
    close_template(admin, name)
    yield name
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


def close_template(admin: psycopg.Connection, name: str, wait_s: float = 30.0) -> None:
    """Make ``name`` copyable at any time: refuse new connections, then end the sessions still
    in it. CREATE DATABASE ... TEMPLATE fails while anyone is connected to the template, and
    TimescaleDB's job scheduler connects by itself to every database with the extension."""
    admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
    deadline = time.monotonic() + wait_s
    while True:
        row = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()", (name,)).fetchone()
        if not row or row[0] == 0:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"sessions still hold the template database {name}")
        time.sleep(0.1)


@pytest.fixture
def database_url(migrated_template: str) -> Iterator[str]:
    """A freshly migrated database of this test's own."""
    name = f"pw_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_SERVER_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{migrated_template}"')
    yield _url_for(name)
    with psycopg.connect(PG_SERVER_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class RegisteredGateway:
    site: str
    gateway: str
    key: Ed25519PrivateKey
    key_file: Path


@pytest.fixture
def register_gateway(database_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Make an operator, a site and a gateway with a fresh key; returns RegisteredGateway."""
    from cloud.command_key import load_command_key
    from contract import private_key_pem, public_key_b64

    def make(site: str = "site-1", gateway: str = "gw-1") -> RegisteredGateway:
        key = Ed25519PrivateKey.generate()
        key_file = tmp_path / f"{gateway}.key"
        key_file.write_bytes(private_key_pem(key))
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("INSERT INTO operators VALUES ('op-1', 'Operator') ON CONFLICT DO NOTHING")
            conn.execute(
                "INSERT INTO sites (id, operator_id, name) VALUES (%s, 'op-1', %s) "
                "ON CONFLICT DO NOTHING", (site, site))
            conn.execute("INSERT INTO gateways (id, site_id, public_key) VALUES (%s, %s, %s)",
                         (gateway, site, public_key_b64(key)))
            # The cloud's command key, where the agent looks by default (beside its own key).
            (tmp_path / "cloud.pub").write_text(public_key_b64(load_command_key(conn)))
        return RegisteredGateway(site, gateway, key, key_file)

    return make


# -- Mosquitto -----------------------------------------------------------------------------------
@dataclass
class MosquittoBroker:
    """A private mosquitto on a free port, with the project's config plus ``extra`` lines."""

    workdir: Path
    extra: str = ""
    # The project's config refuses anonymous clients; a test broker on loopback opts in.
    base: str = field(
        default_factory=lambda: PROJECT_MOSQUITTO_CONF.read_text() + "\nallow_anonymous true\n")
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        if shutil.which("mosquitto") is None:
            pytest.fail("the mosquitto binary is required (apt-get install mosquitto)")
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            self.base
            + f"\npersistence_location {self.workdir}/\nlistener {self.port} 127.0.0.1\n"
            # pytest's temporary folders are private to root: do not drop to user mosquitto,
            # or the broker cannot save its persistence file there.
            + "user root\n"
            + self.extra
        )
        log = (self.workdir / "mosquitto.log").open("ab")
        self.process = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        pytest.fail(f"mosquitto did not start: {(self.workdir / 'mosquitto.log').read_text()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(10)
        self.process = None

    def log(self) -> str:
        return (self.workdir / "mosquitto.log").read_text(errors="replace")


@pytest.fixture
def mqtt_broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    workdir = tmp_path / "broker"
    workdir.mkdir()
    broker = MosquittoBroker(workdir)
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def make_broker(tmp_path: Path) -> Iterator[object]:
    """Factory for brokers with extra config lines (credentials, ACLs)."""
    made: list[MosquittoBroker] = []

    def make(extra: str = "", base: str | None = None) -> MosquittoBroker:
        workdir = tmp_path / f"broker{len(made)}"
        workdir.mkdir()
        broker = MosquittoBroker(workdir, extra)
        if base is not None:
            broker.base = base
        broker.start()
        made.append(broker)
        return broker

    yield make
    for broker in made:
        broker.stop()


# -- API -----------------------------------------------------------------------------------------
@pytest.fixture
async def api_client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The real app (with its lifespan and connection pool) over an in-process transport."""
    from cloud.api.app import create_app
    from cloud.settings import Settings

    app = create_app(Settings(database_url=database_url, mqtt_url="mqtt://127.0.0.1:1"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield client


@pytest.fixture
def api_keys(database_url: str) -> dict[str, str]:
    """Operator op-1 with site-1, financiers bank-a and bank-b, and a key for each role."""
    from cloud.apikeys import create_key

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO operators VALUES ('op-1', 'Operator 1'), ('op-2', 'Operator 2')")
        conn.execute("INSERT INTO sites (id, operator_id, name) VALUES "
                     "('site-1', 'op-1', 'Site 1'), ('site-2', 'op-2', 'Site 2')")
        conn.execute("INSERT INTO financiers VALUES ('bank-a', 'Bank A'), ('bank-b', 'Bank B')")
        return {
            "admin": create_key(conn, "admin"),
            "supervisor": create_key(conn, "supervisor", operator_id="op-1"),
            "supervisor-2": create_key(conn, "supervisor", operator_id="op-2"),
            "bank-a": create_key(conn, "financier", financier_id="bank-a"),
            "bank-b": create_key(conn, "financier", financier_id="bank-b"),
        }
