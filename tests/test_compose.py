"""docker-compose as a new user runs it: the file validates with the compose CLI, every name it
refers to exists, images are pinned to what the tests run, and the broker's healthcheck passes
on a real Mosquitto with the project's own ACL and credentials."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from tests.conftest import PG_SERVER_URL
from tests.test_broker_acl import ENTRYPOINT, USERS, broker_env

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
ACL = ROOT / "deploy" / "mosquitto" / "acl"


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def _env_example_names() -> list[str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    return [line.split("=", 1)[0] for line in lines if re.match(r"^[A-Z0-9_]+=", line)]


def _compose_cli() -> list[str]:
    """The v2 plugin if present, else Debian's docker-compose (ops/install-test-deps.sh)."""
    if shutil.which("docker") and subprocess.run(check=False, args=
            ["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.fail("no compose CLI: run ops/install-test-deps.sh (apt-get install docker-compose)")


def _config(env_file: Path) -> subprocess.CompletedProcess[str]:
    # Only the env file's values: none inherited from the test's environment.
    env = {"PATH": os.environ["PATH"], "HOME": str(env_file.parent)}
    return subprocess.run(check=False, args=
        [*_compose_cli(), "--project-directory", str(ROOT), "-f", str(COMPOSE),
         "--env-file", str(env_file), "config"],
        capture_output=True, text=True, env=env, timeout=60, cwd=env_file.parent)


def test_the_compose_cli_accepts_the_file_with_every_secret_from_env(tmp_path: Path) -> None:
    names = _env_example_names()
    env_file = tmp_path / ".env"
    env_file.write_text("".join(f"{n}=value-of-{n.lower()}\n" for n in names))
    done = _config(env_file)
    assert done.returncode == 0, done.stderr
    resolved = yaml.safe_load(done.stdout)
    api_env = resolved["services"]["api"]["environment"]
    assert api_env["PW_MQTT_PASSWORD"] == "value-of-mqtt_api_password"
    assert "value-of-postgres_password@timescaledb" in api_env["DATABASE_URL"]


def test_the_compose_cli_refuses_to_start_without_a_secret(tmp_path: Path) -> None:
    names = _env_example_names()
    env_file = tmp_path / ".env"
    env_file.write_text("".join(f"{n}=x\n" for n in names if n != "MQTT_API_PASSWORD"))
    done = _config(env_file)
    assert done.returncode != 0
    assert "MQTT_API_PASSWORD" in done.stderr and "set it in .env" in done.stderr


def test_env_example_documents_every_variable_the_file_uses() -> None:
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", COMPOSE.read_text()))
    assert used == set(_env_example_names())


def test_every_reference_in_the_file_exists() -> None:
    compose = _compose()
    services = compose["services"]
    volumes = set(compose.get("volumes") or {})
    for name, service in services.items():
        for dependency in service.get("depends_on") or {}:
            assert dependency in services, f"{name} depends on unknown {dependency}"
        for mount in service.get("volumes") or []:
            source = mount.split(":", 1)[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in volumes, f"{name} uses undeclared volume {source}"
    # The broker's config files name the container paths the volumes provide.
    conf = (ROOT / "deploy" / "mosquitto" / "compose.conf").read_text()
    mounted = {m.split(":")[1] for m in services["mosquitto"]["volumes"]}
    assert "/mosquitto/config/acl" in mounted and "acl_file /mosquitto/config/acl" in conf
    entry = services["mosquitto"]["entrypoint"][-1]
    assert entry in mounted
    # Every MQTT user a service logs in as has a section in the ACL.
    acl_users = set(re.findall(r"^user (\S+)", ACL.read_text(), re.M))
    for name, service in services.items():
        env = service.get("environment") or {}
        if "PW_MQTT_USERNAME" in env:
            assert env["PW_MQTT_USERNAME"] in acl_users, name
    health = " ".join(services["mosquitto"]["healthcheck"]["test"])
    user = re.search(r"-u (\S+)", health)
    assert user and user.group(1) in acl_users


def test_images_are_pinned_to_what_the_tests_run() -> None:
    compose = _compose()
    for name, service in compose["services"].items():
        image = service.get("image", "")
        if "build" in service or service.get("<<"):
            continue
        tag = image.rpartition(":")[2]
        assert ":" in image and "latest" not in tag and re.search(r"\d+\.\d+", tag), (name, image)
    timescale = compose["services"]["timescaledb"]["image"]
    match = re.fullmatch(r"timescale/timescaledb:(\d+)\.(\d+)\.(\d+)-pg(\d+)", timescale)
    assert match and match.group(1) == "2", timescale
    try:
        with psycopg.connect(PG_SERVER_URL, connect_timeout=5) as conn:
            major = conn.info.server_version // 10000
    except psycopg.OperationalError as err:
        pytest.fail(f"PostgreSQL is required at {PG_SERVER_URL}: {err}")
    assert int(match.group(4)) == major, f"compose runs pg{match.group(4)}, the tests pg{major}"
    mosquitto = compose["services"]["mosquitto"]["image"]
    version = subprocess.run(check=False, args=["mosquitto", "-h"], capture_output=True,
                             text=True).stdout
    assert mosquitto.rpartition(":")[2] in version.splitlines()[0], (mosquitto, version[:40])
    assert re.search(r"^FROM python:3\.11-slim-bookworm$", (ROOT / "Dockerfile").read_text(), re.M)


def test_the_database_healthcheck_ignores_the_first_boot_server() -> None:
    health = " ".join(_compose()["services"]["timescaledb"]["healthcheck"]["test"])
    assert "pg_isready -h 127.0.0.1" in health


@pytest.mark.integration
def test_the_broker_healthcheck_passes_with_the_projects_acl(
    make_broker, tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    passwords = tmp_path / "passwords"
    env = broker_env(passwords)
    subprocess.run(["sh", str(ENTRYPOINT), "true"], env=env, check=True)
    compose_conf = (ROOT / "deploy" / "mosquitto" / "compose.conf").read_text()
    base = "\n".join(
        line for line in compose_conf.replace("/mosquitto/data/passwords", str(passwords))
        .replace("/mosquitto/config/acl", str(ACL)).splitlines()
        if not line.startswith(("listener", "persistence_location"))
    )
    broker = make_broker(base=base)
    test = _compose()["services"]["mosquitto"]["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL"
    # As the container's shell runs it ($$ is compose's escape), against this broker's port.
    command = test[1].replace("$$", "$").replace(
        "mosquitto_sub ", f"mosquitto_sub -h 127.0.0.1 -p {broker.port} ", 1)
    done = subprocess.run(check=False, args=["sh", "-c", command], env=env,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, (done.returncode, done.stderr, broker.log())
    assert done.stdout.strip(), "no uptime received"
    # And with a wrong password it fails, so a pass means the credentials were checked.
    wrong = {**env, "MQTT_API_PASSWORD": USERS["pw-api"] + "-wrong"}
    done = subprocess.run(check=False, args=["sh", "-c", command], env=wrong,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode != 0
    assert shlex.split(command)[0] == "mosquitto_sub"


def test_bootstrap_retries_the_database_until_it_answers() -> None:
    from demo.compose_bootstrap import wait_for_database
    from tests.conftest import _url_for, free_port

    slept: list[float] = []
    now = [0.0]

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    nobody = f"postgresql://pw@127.0.0.1:{free_port()}/pw"  # nothing listens there
    with pytest.raises(psycopg.OperationalError):
        wait_for_database(nobody, 20, sleep=sleep, clock=lambda: now[0])
    assert len(slept) >= 3 and now[0] >= 20  # kept trying for the whole wait, then gave up
    slept.clear()
    wait_for_database(_url_for("postgres"), 20, sleep=sleep, clock=lambda: now[0])
    assert slept == []
