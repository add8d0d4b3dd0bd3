# PayNow developer commands. Every target works from a fresh clone: the first one run
# creates .venv/ from uv.lock (installing uv itself if the machine lacks it).
.DEFAULT_GOAL := help
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
MAKEFLAGS += --no-print-directory

VENV := .venv
PY := $(VENV)/bin/python
BUF := $(VENV)/bin/buf
# uv from PATH, or a private copy under build/ installed with pip on first use.
UV := $(or $(shell command -v uv 2>/dev/null),build/uv/bin/uv)
PROTO_FILES := $(shell find protos -name '*.proto' 2>/dev/null | sort)
PYTEST_ARGS ?=

.PHONY: help setup gen gen-check lint fmt test run breaking contract-baseline contract-test bench openapi deploy-check

# Show every target with its one-line description.
help:
	@awk '/^# /{doc=substr($$0,3); next} /^[a-z][a-z-]*:/{split($$1,t,":"); if (doc) printf "  \033[36mmake %-14s\033[0m %s\n", t[1], doc} {doc=""}' $(MAKEFILE_LIST)

build/uv/bin/uv:
	python3 -m venv build/uv
	build/uv/bin/pip install --quiet uv

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen
	@touch $@

# Create or update .venv/ with exactly the locked versions.
setup: $(VENV)/.synced

# Regenerate generated/ (code, stubs, descriptor set) from protos/.
gen: $(VENV)/.synced
	$(PY) scripts/gen_protos.py

# Fail if generated/ differs from what `make gen` would write now.
gen-check: $(VENV)/.synced
	$(PY) scripts/gen_protos.py --check

build/image.binpb: $(PROTO_FILES) $(VENV)/.synced
	$(PY) scripts/gen_protos.py --image $@

# Run every linter: ruff, ruff format, mypy, buf lint and buf format.
lint: $(VENV)/.synced build/image.binpb
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(BUF) lint build/image.binpb --path paynow --config buf.yaml
	$(BUF) format protos --diff --exit-code

# Rewrite Python and proto files in the house format.
fmt: $(VENV)/.synced
	$(VENV)/bin/ruff check --fix-only --quiet .
	$(VENV)/bin/ruff format .
	$(BUF) format protos --write

# Fail if the protos break a client of the committed contract baseline (protos/baseline/).
breaking: $(VENV)/.synced
	$(PY) scripts/contracts.py breaking

# Move the contract baseline to the current protos; commit it with the reason.
contract-baseline: $(VENV)/.synced
	$(PY) scripts/contracts.py baseline

# Write the edge's OpenAPI document for PayNow's protos to docs/openapi.json.
openapi: $(VENV)/.synced
	$(PY) scripts/openapi.py

# Run the contract checks: examples and consumer contracts on real services, consumers on stubs.
contract-test: $(VENV)/.synced
	$(PY) -m pytest tests/contracts $(wildcard tests/unit/*/test_*_against_contract.py) $(PYTEST_ARGS)

# Run the whole test suite (PYTEST_ARGS passes options to pytest).
test: $(VENV)/.synced
	$(PY) -m pytest $(PYTEST_ARGS)

# Fail if deploy/ no longer matches services/registry.toml (the manifests' generator).
deploy-check: $(VENV)/.synced
	$(PY) scripts/deploy_manifests.py --check

# Run the benchmarks (protovalidate; the edge's own work in-process; the edge under wrk) into docs/benchmarks.md.
bench: $(VENV)/.synced
	$(PY) scripts/bench_validation.py --write docs/benchmarks.md
	$(PY) scripts/bench_gateway_path.py --write docs/benchmarks.md
	$(PY) scripts/bench_grpc_client.py --write docs/benchmarks.md
	$(PY) scripts/bench_edge.py --write docs/benchmarks.md

SOAK_MINUTES ?= 3
FUZZ_SECONDS ?= 120

.PHONY: soak fuzz
# Drive SOAK_MINUTES (3) of mixed traffic through the whole stack; write memory growth and errors to docs/benchmarks.md.
soak: $(VENV)/.synced
	$(PY) scripts/soak.py --minutes $(SOAK_MINUTES) --write docs/benchmarks.md

# Fuzz the edge's request decoding for FUZZ_SECONDS (120) from the seed corpus; crashes land in build/fuzz/.
fuzz: $(VENV)/.synced
	mkdir -p build/fuzz/corpus && cp tests/fuzz/corpus/* build/fuzz/corpus/
	$(PY) tests/fuzz/fuzz_request_decoding.py -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=build/fuzz/ -print_final_stats=1 build/fuzz/corpus

# Start every service (SQLite, no other server needed); Ctrl-C stops them all.
run: $(VENV)/.synced
	$(PY) -m services.framework.stack

.PHONY: new-service
# Scaffold a tested service in the house style: make new-service NAME=payouts [RESOURCE=payout].
new-service: $(VENV)/.synced
	$(PY) scripts/new_service.py "$(NAME)" $(if $(RESOURCE),--resource "$(RESOURCE)")

.PHONY: call demo
# Call a running service's RPC with JSON, or list its methods: make call SERVICE=account [METHOD=GetAccount DATA='{"id":"acc_…"}' USER=acc_… MERCHANT=mer_…].
call: $(VENV)/.synced
	$(PY) scripts/call.py "$(SERVICE)" $(if $(METHOD),"$(METHOD)" '$(DATA)') $(if $(filter command line,$(origin USER)),--user "$(USER)") $(if $(filter command line,$(origin MERCHANT)),--merchant "$(MERCHANT)")

# Walk the whole PayNow journey over HTTP against `make run`, printing each request and response (EDGE=… elsewhere).
demo: $(VENV)/.synced
	$(PY) scripts/demo.py $(if $(EDGE),--edge "$(EDGE)")
