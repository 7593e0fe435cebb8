# Parley: `make run` serves it, `make test` checks it. Both install what they need.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 5000
GUNICORN := $(BIN)/gunicorn -k geventwebsocket.gunicorn.workers.GeventWebSocketWorker -w 1 \
	--worker-connections 10000 --graceful-timeout 5 --bind $(HOST):$(PORT)

.PHONY: run test lint format test-sqlite test-postgresql migration clean chromium nginx

# The browser client's third-party code comes from npm (package-lock.json), never a CDN.
SOCKET_IO := app/static/vendor/socket.io.esm.min.js
# Swagger UI for /api/docs (swagger-ui-dist): its bundle and stylesheet.
SWAGGER_UI := app/static/vendor/swagger-ui
# Chart.js for the admin dashboard's charts (its UMD bundle, loaded as a plain script).
CHART_JS := app/static/vendor/chart.umd.min.js
VENDOR := $(SOCKET_IO) $(SWAGGER_UI)/swagger-ui-bundle.js $(SWAGGER_UI)/swagger-ui.css $(CHART_JS)
# axe-core for the browser tests' accessibility checks (never served by Parley).
AXE := tests/e2e/vendor/axe.min.js
# Server-rendered pages' translations (Flask-Babel): the .po files are committed, the compiled
# .mo files are built here (`make translations`); `make i18n-extract` and `make i18n-update`
# refresh the catalogue after strings change (docs/ARCHITECTURE.md, "Languages").
TRANSLATIONS_DIR := app/translations
CATALOGUES := $(patsubst %.po,%.mo,$(wildcard $(TRANSLATIONS_DIR)/*/LC_MESSAGES/messages.po))

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements-dev.txt requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.runtime

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

$(SOCKET_IO): node_modules/.package-lock.json
	mkdir -p $(@D)
	cp node_modules/socket.io-client/dist/socket.io.esm.min.js $@

$(SWAGGER_UI)/%: node_modules/.package-lock.json
	mkdir -p $(@D)
	cp node_modules/swagger-ui-dist/$* $@

$(CHART_JS): node_modules/.package-lock.json
	mkdir -p $(@D)
	cp node_modules/chart.js/dist/chart.umd.min.js $@

$(AXE): node_modules/.package-lock.json
	mkdir -p $(@D)
	cp node_modules/axe-core/axe.min.js $@

$(TRANSLATIONS_DIR)/%/LC_MESSAGES/messages.mo: $(TRANSLATIONS_DIR)/%/LC_MESSAGES/messages.po | $(VENV)/.runtime
	$(BIN)/pybabel compile -d $(TRANSLATIONS_DIR) -l $* -D messages

.PHONY: translations i18n-extract i18n-update
translations: $(CATALOGUES)

i18n-extract: $(VENV)/.runtime
	PYTHONPATH=. $(BIN)/pybabel extract -F babel.cfg -k _l -k lazy_gettext --no-location --sort-output \
	  -o $(TRANSLATIONS_DIR)/messages.pot .

i18n-update: i18n-extract
	$(BIN)/pybabel update -i $(TRANSLATIONS_DIR)/messages.pot -d $(TRANSLATIONS_DIR) --ignore-obsolete

# `make vendor`: copy the browser libraries (package.json) into app/static/vendor/.
.PHONY: vendor
vendor: $(VENDOR)

# The browser tests drive Debian's Chromium (with a colour emoji font for the screenshots).
chromium:
	(command -v chromium >/dev/null && dpkg -s fonts-noto-color-emoji >/dev/null 2>&1) || \
	  (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium fonts-noto-color-emoji)

# The multi-process tests put Debian's nginx in front of the processes (deploy/nginx/).
nginx:
	command -v nginx >/dev/null || test -x /usr/sbin/nginx || \
	  (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y nginx)

run: $(VENV)/.runtime $(VENDOR) $(CATALOGUES)
	$(BIN)/flask db upgrade
	$(GUNICORN) wsgi:app

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test-sqlite: $(VENV)/.dev $(VENDOR) $(AXE) $(CATALOGUES) chromium nginx
	PARLEY_TEST_DB=sqlite $(BIN)/pytest

test-postgresql: $(VENV)/.dev $(VENDOR) $(AXE) $(CATALOGUES) chromium nginx
	PARLEY_TEST_DB=postgresql $(BIN)/pytest

test: lint test-sqlite test-postgresql

# Benchmarks (docs/PERFORMANCE.md): the bare socket.io transport, then Parley on SQLite, on
# PostgreSQL and as two processes with Redis, driven by one load generator on its own core; then
# history, catch-up and list timings and message search on a database of 10M messages of each
# kind, and a profile of the saturated send path, and a kill -9 of the server mid-load on each
# database (nothing acknowledged may be lost or stored twice); then the word filter's cost per
# message, other users' acks while a before-send webhook is slow, and notices to 500 users.
# Bounded: more than an hour on two cores (the two search databases are built on their own).
.PHONY: bench
bench: $(VENV)/.dev node_modules/.package-lock.json
	$(BIN)/python -m bench run --out bench-results.json
	$(BIN)/python -m bench history --db sqlite --messages 10000000
	$(BIN)/python -m bench history --db postgresql --messages 10000000
	$(BIN)/python -m bench search --db sqlite --messages 10000000 --out bench-results.search-sqlite.json
	$(BIN)/python -m bench search --db postgresql --messages 10000000 --out bench-results.search-postgresql.json
	$(BIN)/python -m bench profile --out bench-profile.txt
	$(BIN)/python -m bench kill --out bench-results.kill.json
	$(BIN)/python -m bench scaleout --out bench-results.scaleout.json
	$(BIN)/python -m bench.wordfilter
	$(BIN)/python -m bench.before_send
	$(BIN)/python -m bench.notices
	$(BIN)/python -m bench metricscost --out bench-results.metricscost.json

# Build the Docker image here (podman/buildah on local Debian bases, no Docker engine or registry)
# and check it without running a container: README, "Building and checking the image". As root;
# minutes, not part of `make test`.
.PHONY: image-check
image-check:
	nice python3 tools/image_check.py

# make migration m="what changed"
migration: $(VENV)/.runtime
	$(BIN)/flask db migrate -m "$(m)"

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
