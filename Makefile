# Parley: `make run` serves it, `make test` checks it. Both install what they need.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 5000
GUNICORN := $(BIN)/gunicorn -k geventwebsocket.gunicorn.workers.GeventWebSocketWorker -w 1 \
	--worker-connections 10000 --graceful-timeout 5 --bind $(HOST):$(PORT)

.PHONY: run test lint format test-sqlite test-postgresql migration clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements-dev.txt requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.runtime

run: $(VENV)/.runtime
	$(BIN)/flask db upgrade
	$(GUNICORN) wsgi:app

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test-sqlite: $(VENV)/.dev
	PARLEY_TEST_DB=sqlite $(BIN)/pytest

test-postgresql: $(VENV)/.dev
	PARLEY_TEST_DB=postgresql $(BIN)/pytest

test: lint test-sqlite test-postgresql

# make migration m="what changed"
migration: $(VENV)/.runtime
	$(BIN)/flask db migrate -m "$(m)"

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
