"""Find or start the database and the broker the demo runs against.

Order: DATABASE_URL / MQTT_URL when set; else PostgreSQL on 127.0.0.1:5432 and an MQTT broker
on 127.0.0.1:1883 when they answer; else embedded ones: ``pgserver`` (a real PostgreSQL in a
pip package) and a broker (Mosquitto with the project's config when the binary is installed,
else ``amqtt``, a Python broker that speaks MQTT 3.1.1 only).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
MOSQUITTO_CONF = ROOT / "deploy" / "mosquitto" / "mosquitto.conf"


def answers(host: str, port: int, timeout: float = 0.5) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout):
        return True
    return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Services:
    database_url: str
    mqtt_url: str
    notes: list[str] = field(default_factory=list)
    _stop: list[object] = field(default_factory=list)

    def close(self) -> None:
        for thing in reversed(self._stop):
            if isinstance(thing, subprocess.Popen):
                thing.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    thing.wait(5)
                if thing.poll() is None:
                    thing.kill()
            elif hasattr(thing, "cleanup"):
                thing.cleanup()


def _fresh_database(server_url: str, name: str) -> str:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    # make_conninfo also copes with pgserver's socket URIs (postgresql://...@/db?host=/tmp/...)
    return psycopg.conninfo.make_conninfo(server_url, dbname=name)


def find_database(services: Services, workdir: Path) -> None:
    if url := os.environ.get("DATABASE_URL"):
        services.database_url = url
        services.notes.append(f"database: DATABASE_URL ({url})")
        return
    if answers("127.0.0.1", 5432):
        for user in ("postgres", os.environ.get("USER", "root")):
            with contextlib.suppress(psycopg.OperationalError):
                url = _fresh_database(f"postgresql://{user}@127.0.0.1:5432/postgres", "pw_demo")
                services.database_url = url
                services.notes.append(f"database: local PostgreSQL, fresh database pw_demo ({url})")
                return
    import pgserver  # the embedded fallback; an optional extra

    server = pgserver.get_server(workdir / "pgdata", cleanup_mode="stop")
    services._stop.append(server)
    services.database_url = _fresh_database(server.get_uri(), "pw_demo")
    services.notes.append("database: none reachable; started an embedded PostgreSQL (pgserver)")


def find_broker(services: Services, workdir: Path) -> None:
    if url := os.environ.get("MQTT_URL"):
        services.mqtt_url = url
        services.notes.append(f"broker: MQTT_URL ({url})")
        return
    if answers("127.0.0.1", 1883):
        services.mqtt_url = "mqtt://127.0.0.1:1883"
        services.notes.append("broker: MQTT broker on 127.0.0.1:1883")
        return
    port = free_port()
    log = (workdir / "broker.log").open("wb")
    if shutil.which("mosquitto"):
        conf = workdir / "mosquitto.conf"
        conf.write_text(
            MOSQUITTO_CONF.read_text()
            + f"\nlistener {port} 127.0.0.1\npersistence_location {workdir}/\n"
            + "allow_anonymous true\n"  # a private broker on loopback opts in
        )
        if os.geteuid() == 0:  # mosquitto drops to its own user; it must write its state here
            import pwd

            with contextlib.suppress(KeyError):
                user = pwd.getpwnam("mosquitto")
                os.chown(workdir, user.pw_uid, user.pw_gid)
        proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=log, stderr=log)
        what = "Mosquitto with the project's config"
    else:
        conf = workdir / "amqtt.yaml"
        conf.write_text(
            f"listeners:\n  default:\n    type: tcp\n    bind: 127.0.0.1:{port}\n"
            "plugins:\n  amqtt.plugins.authentication.AnonymousAuthPlugin:\n"
            "    allow_anonymous: true\n"
        )
        amqtt = Path(sys.executable).parent / "amqtt"
        proc = subprocess.Popen([str(amqtt), "-c", str(conf)], stdout=log, stderr=log)
        what = "amqtt (MQTT 3.1.1 only; one ingest on a plain subscription)"
    services._stop.append(proc)
    for _ in range(100):
        if answers("127.0.0.1", port):
            break
        time.sleep(0.1)
    else:
        raise RuntimeError(f"embedded broker did not start; see {workdir / 'broker.log'}")
    services.mqtt_url = f"mqtt://127.0.0.1:{port}"
    services.notes.append(f"broker: none reachable; started {what} on port {port}")
