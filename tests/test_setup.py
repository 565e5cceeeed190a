"""The README's set-up is `make test` alone: it installs the system programs the tests need
(or stops at once with the one command to run), and CI only starts services and calls it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "ops" / "install-test-deps.sh"


def _bare_path(tmp_path: Path) -> str:
    """A PATH with only the shell tools the script itself uses: a machine with none of the
    programs the tests need."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "id", "grep", "python3", "cat"):
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    return str(bin_dir)


def test_on_a_bare_machine_it_names_every_missing_package_in_one_command(tmp_path: Path) -> None:
    env = {"PATH": _bare_path(tmp_path), "HOME": str(tmp_path)}
    done = subprocess.run([str(Path(shutil.which("bash") or "bash")), str(SCRIPT), "--check"],
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    line = done.stderr.strip().splitlines()[-1]
    command = line.split("run: ", 1)[1]
    assert command.startswith("apt-get update && apt-get install -y ")
    packages = command.split("install -y ", 1)[1].split()
    for needed in ("mosquitto", "mosquitto-clients", "chromium", "npm", "fonts-noto-cjk",
                   "nats-server", "postgresql-client", "postgresql", "docker-compose"):
        assert needed in packages, needed
    assert len(packages) == len(set(packages))


def test_here_everything_the_tests_need_is_installed() -> None:
    done = subprocess.run(["bash", str(SCRIPT), "--check"], capture_output=True, text=True,
                          timeout=60, check=False, env={**os.environ})
    assert done.returncode == 0, done.stderr


def test_make_test_installs_first_and_ci_only_starts_services_and_calls_it() -> None:
    # Run as CI runs it, from inside `make test`: a nested make would announce its directory
    # and inherit the outer one's flags, so it gets neither.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    plan = subprocess.run(["make", "--no-print-directory", "-n", "test"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60,
                          check=False).stdout.splitlines()
    assert plan[0] == "bash ops/install-test-deps.sh"
    ci = (ROOT / ".ci" / "run").read_text()
    assert "apt-get" not in ci and ci.rstrip().endswith("make test")
