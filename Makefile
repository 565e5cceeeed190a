# Pledgewatch: `make demo` runs the whole system on this machine; `make test` runs the tests.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
ARGS ?=

.PHONY: demo test test-deps lint bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# Runtime plus the embedded broker/database the demo falls back to.
$(VENV)/.runtime-installed: pyproject.toml | $(PY)
	$(PIP) install --quiet -e '.[embedded]'
	touch $@

# Everything the tests need, training stack included (CI tests training and export).
$(VENV)/.dev-installed: pyproject.toml | $(PY)
	$(PIP) install --quiet -e '.[dev,embedded,train]'
	touch $@ $(VENV)/.runtime-installed

# The map's front-end libraries (Leaflet), /docs's Swagger UI and the receipt font (Noto Sans SC,
# OFL), from the npm registry, served locally by the API.
WEB_DEPS := cloud/web/node_modules/.package-lock.json
$(WEB_DEPS): cloud/web/package.json cloud/web/package-lock.json
	npm ci --prefix cloud/web --no-audit --no-fund
	touch $@

demo: $(VENV)/.runtime-installed $(WEB_DEPS)
	$(PY) -m demo $(ARGS)

# The system programs the tests need (Mosquitto, Chromium, npm, a CJK font, nats-server...):
# installed here as root with apt-get, otherwise make stops with the one command to run.
test-deps:
	bash ops/install-test-deps.sh

# test-deps first: npm and python3-venv may be what it installs.
test: test-deps
	$(MAKE) --no-print-directory $(VENV)/.dev-installed $(WEB_DEPS)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q $(ARGS)

lint: $(VENV)/.dev-installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy contract edge cloud ops

bench: $(VENV)/.runtime-installed $(WEB_DEPS)
	$(PY) -m benchmarks $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
