# edge-relay: `make run` starts a relay on localhost, `make test` runs the whole suite.
# Both set up everything they need themselves (venv, pip packages, apt packages).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
DATA_DIR ?= relay-data
SERVER_NAME ?= localhost
STAMP := $(VENV)/.installed
# Real Matrix clients for tests/interop/: matrix-nio in the venv, matrix-js-sdk (37.0.0)
# in tools/clients/node_modules, and matrix-js-sdk 37.5.0 (the newest for Node 20 that
# speaks Simplified Sliding Sync) in tools/clients/sliding/node_modules. The stamp lives
# in node_modules so deleting it reinstalls.
CLIENTS_DIR := tools/clients
CLIENTS_STAMP := $(CLIENTS_DIR)/node_modules/.installed
# The [e2e] extra brings vodozemac (wheels; no libolm needed) for the E2EE tests.
MATRIX_NIO := matrix-nio[e2e]==0.26.0

# A real Synapse for interop tests and benchmarks, in a venv of its own (never the relay's).
SYNAPSE_VENV := .synapse-venv
SYNAPSE_STAMP := $(SYNAPSE_VENV)/.installed
SYNAPSE := matrix-synapse==1.163.2

# The chat client the relay serves at / (relay/web/): Hydrogen from the npm registry, pinned by
# web/package-lock.json, bundled offline by web/build.mjs into relay/web/chat_client_build/.
WEB_DIR := web
WEB_BUILD := relay/web/chat_client_build/index.html
WEB_SOURCES := $(WEB_DIR)/package.json $(WEB_DIR)/package-lock.json $(WEB_DIR)/build.mjs \
  $(wildcard $(WEB_DIR)/src/*)
# Where `make run` serves the web client (relay init's default client listener).
CLIENT_LISTEN ?= 127.0.0.1:8008

.PHONY: fuzz run test setup clients synapse bench bench-scale lint format clean image image-test image-e2e webclient bench-lowband

# Host packages (Debian, apt, as root): tools/host/packages.txt is the one list; deps.sh
# installs what a group needs and is missing.
HOST_DEPS := PYTHON=$(PYTHON) tools/host/deps.sh

$(BIN)/python:
	@$(HOST_DEPS) run
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $@

setup: $(STAMP)

$(CLIENTS_STAMP): $(STAMP) $(CLIENTS_DIR)/package.json $(CLIENTS_DIR)/package-lock.json \
		$(CLIENTS_DIR)/sliding/package.json $(CLIENTS_DIR)/sliding/package-lock.json
	@$(HOST_DEPS) test
	$(BIN)/python -m pip install -q '$(MATRIX_NIO)'
	cd $(CLIENTS_DIR) && npm ci --no-audit --no-fund --loglevel=error
	cd $(CLIENTS_DIR)/sliding && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

clients: $(CLIENTS_STAMP)

$(WEB_BUILD): $(WEB_SOURCES)
	@$(HOST_DEPS) run
	cd $(WEB_DIR) && npm ci --no-audit --no-fund --loglevel=error && node build.mjs

webclient: $(WEB_BUILD)

$(SYNAPSE_STAMP):
	@test -x $(SYNAPSE_VENV)/bin/python || $(PYTHON) -m venv $(SYNAPSE_VENV)
	$(SYNAPSE_VENV)/bin/python -m pip install -q --upgrade pip
	$(SYNAPSE_VENV)/bin/python -m pip install -q '$(SYNAPSE)'
	@touch $@

synapse: $(SYNAPSE_STAMP)

bench: setup synapse
	$(BIN)/python -m tools.bench.run

# Slow links (issue 17): the relay and Synapse each sending to a stock Synapse over an emulated
# 9.6 kbit/s, 300 ms link (tools/linkemu; root). ~25 min; BENCH_LOWBAND_ARGS picks profiles etc.
bench-lowband: setup synapse
	@$(HOST_DEPS) lowband
	$(BIN)/python -m tools.bench.lowband $(BENCH_LOWBAND_ARGS)

# Costs as history, rooms and watchers grow (issue 19): relay and Synapse in one run.
bench-scale: setup synapse
	$(BIN)/python -m tools.bench.scale

run: setup webclient
	@test -f $(DATA_DIR)/relay.toml || $(BIN)/relay init --data-dir $(DATA_DIR) \
	  --server-name $(SERVER_NAME) --client-listen $(CLIENT_LISTEN) \
	  --federation-listen 127.0.0.1:8448
	@echo "web chat client: http://$$(sed -n 's/^client *= *"\(.*\)"/\1/p' $(DATA_DIR)/relay.toml)/"
	@echo "operator page:   http://$$(sed -n 's/^client *= *"\(.*\)"/\1/p' $(DATA_DIR)/relay.toml)/_relay/admin/ (log in as a server admin: relay user add --admin)"
	exec $(BIN)/relay run --data-dir $(DATA_DIR)

# The image builds (amd64 image, arm64 boot partition: minutes, mostly one core) start in the
# background. The suite runs on TEST_WORKERS pytest-xdist workers, a test module to a worker,
# slowest first (tests/conftest.py); tests/image/ goes first, to one worker that waits for the
# builds (build.sh's locks) while the others run everything else. Most tests wait on servers and
# the network more than they compute, so there are more workers than the 2 cores.
TEST_HOST_GROUPS := run test lowband image-amd64 image-arm64
TEST_WORKERS ?= 3

test: setup clients synapse webclient
	@$(HOST_DEPS) $(TEST_HOST_GROUPS)
	$(BIN)/ruff check .
	$(BIN)/mypy
	@mkdir -p firmware-image/build
	@( firmware-image/build.sh amd64; BOOT_ONLY=1 firmware-image/build.sh arm64 ) \
	  >firmware-image/build/prebuild.log 2>&1 </dev/null &
	RELAY_IMAGE_TEST=1 RELAY_HOST_GROUPS="$(TEST_HOST_GROUPS)" \
	  $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder

# The fuzzers of `make test` (client and federation endpoints, multipart media answers),
# run longer: FUZZ_EXAMPLES examples of each kind.
FUZZ_EXAMPLES ?= 1000
fuzz: setup
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest -q -p no:cacheprovider \
	  tests/client/test_fuzz_bad_input.py tests/federation/test_fuzz_federation.py \
	  tests/media/test_multipart_fuzz.py tests/mesh/test_trust_fuzz.py

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis

# The appliance image (firmware-image/README.md). `make image` builds firmware-image/build/ARCH/
# disk.img (reused while its inputs are unchanged); `make image-test` boots it under QEMU
# (amd64: boot, provisioning, power cut; arm64: Raspberry Pi boot partition layout). The amd64
# boot test is also part of `make test` (RELAY_IMAGE_TEST=1; a bare `pytest` skips it). Host
# packages (mmdebstrap, qemu, ...: group image-ARCH of tools/host/packages.txt) install
# themselves (root).
ARCH ?= amd64

image: setup webclient
	firmware-image/build.sh $(ARCH)

image-test: setup webclient
	@$(HOST_DEPS) image-$(ARCH)
	RELAY_IMAGE_TEST=1 RELAY_IMAGE_ARCH=$(ARCH) \
	  $(BIN)/python -m pytest -q -s tests/image

image-e2e: setup synapse
	RELAY_IMAGE_TEST=1 RELAY_IMAGE_E2E=1 $(BIN)/python -m pytest -q -s tests/image/test_image_e2e.py
