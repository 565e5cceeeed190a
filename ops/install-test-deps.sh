#!/usr/bin/env bash
# What `make test` needs beyond Python packages: the system programs its tests start or drive.
# Installs the missing ones when it can (root with apt-get, as on a bare Debian machine);
# otherwise stops at once with the one command to run. Idempotent and quick when all is there.
#   ops/install-test-deps.sh          install or stop
#   ops/install-test-deps.sh --check  only say what is missing (exit 1 if anything is)
set -euo pipefail

# command-or-test : Debian package. Mosquitto (broker tests, the compose healthcheck), Chromium
# (map and receipt browser tests, via Playwright), npm (the map's front-end libraries),
# a CJK font (the Chinese UI in screenshots), nats-server (cluster tests), PostgreSQL's client
# tools (pg_isready), venv support for `make`'s .venv.
missing=()
need() { command -v "$1" >/dev/null 2>&1 || missing+=("$2"); }
need mosquitto mosquitto
need mosquitto_passwd mosquitto
need mosquitto_sub mosquitto-clients
need chromium chromium
need npm npm
need nats-server nats-server
need pg_isready postgresql-client
# The compose file is validated by its own CLI (tests/test_compose.py): the v2 plugin if
# present, else Debian's docker-compose.
docker compose version >/dev/null 2>&1 || need docker-compose docker-compose
# The tests' PostgreSQL: a local server when none is configured.
if [ -z "${PW_TEST_PG:-}" ] && ! command -v pg_ctlcluster >/dev/null 2>&1; then
  missing+=(postgresql)
fi
fc-list ':lang=zh' family 2>/dev/null | grep -q . || missing+=(fonts-noto-cjk)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)

# unique, in order
packages=()
for p in "${missing[@]+"${missing[@]}"}"; do
  [[ " ${packages[*]+"${packages[*]}"} " == *" $p "* ]] || packages+=("$p")
done

# The tests' PostgreSQL must answer. The local cluster (none configured, root) is started here,
# so a bare machine needs nothing but `make test`; any other server is its owner's to start.
check_services() {
  local url="${PW_TEST_PG:-postgresql://postgres@127.0.0.1:5432/postgres}"
  command -v pg_isready >/dev/null 2>&1 && pg_isready -q -d "$url" && return 0
  if [ -z "${PW_TEST_PG:-}" ] && [ "$(id -u)" -eq 0 ] && command -v pg_ctlcluster >/dev/null 2>&1; then
    version="$(ls /etc/postgresql | sort -n | tail -1)"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    for _ in $(seq 30); do pg_isready -q -d "$url" && return 0; sleep 1; done
  fi
  echo "PostgreSQL does not answer at $url. Start it, then make test again:" >&2
  echo "  pg_ctlcluster --skip-systemctl-redirect <version> main start   (or set PW_TEST_PG)" >&2
  exit 1
}

if [ ${#packages[@]} -eq 0 ]; then
  [ "${1:-}" = "--check" ] || check_services
  exit 0
fi
command_line="apt-get update && apt-get install -y ${packages[*]}"
if [ "${1:-}" = "--check" ]; then
  echo "missing for the tests: ${packages[*]}; run: $command_line" >&2
  exit 1
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "make test needs: ${packages[*]}. Run this once, then make test again:" >&2
  echo "  sudo sh -c '$command_line'" >&2
  exit 1
fi
echo "installing what the tests need: ${packages[*]}" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}"
# Fonts installed just now must be known to fontconfig before Chromium starts.
command -v fc-cache >/dev/null 2>&1 && fc-cache -f >/dev/null 2>&1 || true
check_services
