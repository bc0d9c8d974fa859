# Development entry points. `make run` starts a server on a development config;
# `make test` runs the whole test suite; both work on a fresh Debian 12 machine.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEV := dev

.PHONY: run test postgresql synapse-venv sydent-venv js-client reverse-proxies docker-test lint format bench deb deb-test clean

$(BIN)/matrix-conduit: requirements.txt requirements-dev.txt setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

venv: $(BIN)/matrix-conduit

# Synapse from PyPI, the federation peer of tests/federation/: requirements-synapse.txt
# (every dependency frozen) in its own venv, .synapse-venv/; a no-op when it matches.
synapse-venv: venv
	$(BIN)/python -m tests.support.synapse

# PostgreSQL from Debian's package, the server tests/support/postgres.py starts
# (initdb in a temp dir, loopback port) for the PostgreSQL backend's tests.
postgresql:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
		{ apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql; }

# Sydent from PyPI, the identity server of tests/federation/test_third_party_invites.py:
# requirements-sydent.txt in its own venv, .sydent-venv/; a no-op when it matches.
sydent-venv: venv
	$(BIN)/python -m tests.support.sydent

# matrix-js-sdk from the npm registry, the sliding sync client of
# tests/integration/test_sliding_sync_js_client.py: tests/support/js/package-lock.json
# under the machine's Node.js (Debian's nodejs and npm when there is none).
JS_CLIENT := tests/support/js
$(JS_CLIENT)/node_modules/.package-lock.json: $(JS_CLIENT)/package.json $(JS_CLIENT)/package-lock.json
	command -v npm >/dev/null || (apt-get update && apt-get install -y nodejs npm)
	cd $(JS_CLIENT) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

js-client: $(JS_CLIENT)/node_modules/.package-lock.json

# The reverse proxies tests/integration/test_reverse_proxies.py runs the
# etc/reverse-proxy/ snippets in: nginx, Caddy and Apache from Debian's packages
# (about 20 MB, half a minute; a no-op when they are there). Installed with a
# policy-rc.d that keeps their services from starting on port 80.
PROXIES := nginx caddy apache2
reverse-proxies:
	@missing=; for p in $(PROXIES); do command -v $$p >/dev/null || missing=1; done; \
	if [ -n "$$missing" ]; then \
	  set -e; [ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; \
	    chmod +x /usr/sbin/policy-rc.d; trap 'rm -f /usr/sbin/policy-rc.d' EXIT; }; \
	  apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    nginx-light caddy apache2 >/dev/null; \
	fi

# A development config: server_name localhost, LevelDB under ./dev/, port 6167,
# registration open with a generated token (printed by `make run`), and a
# .well-known that sends clients to this plain-HTTP address.
$(DEV)/conduit.toml:
	mkdir -p $(DEV) && chmod 700 $(DEV)
	token=$$($(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(16))'); \
	printf '%s\n' '[global]' 'server_name = "localhost"' 'database_backend = "leveldb"' \
	  'database_path = "$(DEV)/db"' 'address = "127.0.0.1"' 'port = 6167' \
	  'allow_registration = true' "registration_token = \"$$token\"" \
	  'allow_federation = false' 'log = "info"' \
	  '[global.well_known]' 'client = "http://127.0.0.1:6167"' > $@
	chmod 600 $@

run: venv $(DEV)/conduit.toml
	@echo "Development server on http://127.0.0.1:6167 (server_name localhost)"
	@echo "Homeserver URL for clients: http://127.0.0.1:6167 (user ids: @NAME:localhost)"
	@echo "Registration token: $$(sed -n 's/^registration_token = "\(.*\)"/\1/p' $(DEV)/conduit.toml)"
	CONDUIT_CONFIG=$(DEV)/conduit.toml $(BIN)/matrix-conduit

test: venv postgresql synapse-venv sydent-venv js-client reverse-proxies
	$(BIN)/ruff check matrix_conduit tests bench
	$(BIN)/ruff format --check matrix_conduit tests bench
	$(BIN)/python -m pytest -p no:cacheprovider -n auto

lint: venv
	$(BIN)/ruff check matrix_conduit tests bench
	$(BIN)/ruff format --check matrix_conduit tests bench

format: venv
	$(BIN)/ruff check --fix matrix_conduit tests bench
	$(BIN)/ruff format matrix_conduit tests bench

bench: venv
	$(BIN)/python -m bench

# The Debian package: build it, or build and exercise it (install, reconfigure,
# purge, piuparts, a boot under systemd-nspawn). Needs root; see tests/packaging/.
deb:
	sh tests/packaging/run.sh build

deb-test:
	sh tests/packaging/run.sh

# The Dockerfile's image, built on a Debian 12 base made here with debootstrap
# and run as docker-compose.yml does (needs root; see tests/docker/run.sh).
docker-test:
	sh tests/docker/run.sh

clean:
	rm -rf $(VENV) .synapse-venv .sydent-venv build *.egg-info
