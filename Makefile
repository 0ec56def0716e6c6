# edge-relay: `make run` starts a relay on localhost, `make test` runs the whole suite.
# Both set up everything they need themselves (venv, pip packages, apt packages).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
DATA_DIR ?= relay-data
SERVER_NAME ?= localhost
STAMP := $(VENV)/.installed

.PHONY: run test setup lint format clean

$(BIN)/python:
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  echo "python venv module missing: installing python3-venv"; \
	  apt-get update -qq && apt-get install -y -qq python3-venv python3-pip >/dev/null; \
	  rm -rf $(VENV); $(PYTHON) -m venv $(VENV); }

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $@

setup: $(STAMP)

run: setup
	@test -f $(DATA_DIR)/relay.toml || $(BIN)/relay init --data-dir $(DATA_DIR) \
	  --server-name $(SERVER_NAME) --federation-listen 127.0.0.1:8448
	exec $(BIN)/relay run --data-dir $(DATA_DIR)

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
