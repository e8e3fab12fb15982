# The verbs a user types. Tools come from the project itself: Python ones (cargo-lambda, SAM CLI,
# cfn-lint) in a project-local venv, Node ones (dynalite) in node_modules, both from pinned versions,
# so nothing needs to be installed globally besides python3, node/npm and a Rust toolchain.
#
# Add a target by listing it in .PHONY and depending on the stamp of the tools it runs:
#   $(VENV_STAMP) for anything in $(BIN), $(NODE_STAMP) for dynalite.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DELETE_ON_ERROR:
MAKEFLAGS += --warn-undefined-variables --no-builtin-rules
# Plain `make` lists the verbs.
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Stamps: each is touched only after its install succeeded, so an interrupted install reruns.
VENV_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed

# Python dev tools, pinned exactly. Changing this line (and only that) reinstalls the venv's tools.
PY_TOOLS := cargo-lambda==1.9.2 aws-sam-cli==1.170.0 cfn-lint==1.58.0 schemathesis==4.32.5 \
	openapi-spec-validator==0.7.2

# Lambda runs the function on Graviton (arm64, see template.yaml); cargo-lambda cross-compiles to it.
LAMBDA_TARGET := aarch64-unknown-linux-gnu
# `sam validate` needs a region to resolve the template; it makes no AWS call, so any region will do.
LINT_REGION ?= us-east-1
# Extra arguments for `sam deploy`, e.g. `make deploy DEPLOY_ARGS=--guided` the first time.
DEPLOY_ARGS ?=

SAM := $(BIN)/sam
# sam build runs `cargo lambda`, so the venv's bin must be on its PATH.
export PATH := $(abspath $(BIN)):$(PATH)
export SAM_CLI_TELEMETRY := 0

.PHONY: help dev seed test test-containers test-api test-deployed fuzz-api chromium lint lint-template build deploy delete rust-target

# Every verb a user types carries a `## what it does` comment on its rule line; `make help` lists
# exactly those, so a new verb shows up by writing that comment.
help: ## this list
	@awk -F':.*## ' '/^[a-z][a-z0-9-]*:.*## / { printf "make %-16s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

# --- run and test ----------------------------------------------------------------------------

dev: $(NODE_STAMP) $(VENV_STAMP) ## the API on http://127.0.0.1:9000 (dynalite + cargo lambda watch)
	./scripts/dev.sh

# The OpenAPI document the binary serves, generated from the handlers' annotations: run it after
# changing a route, a body or an answer (tests/docs.rs fails until the file agrees with the code).
.PHONY: openapi
openapi: ## write src/openapi.json, the document /openapi.json serves, from the code
	cargo run --quiet --example openapi > src/openapi.json.new
	mv src/openapi.json.new src/openapi.json

# Idempotent: creates missing tables, rewrites the same sample users.
seed: ## create the tables and write the sample users (USERS_TABLE, TASKS_TABLE)
	cargo run --quiet --example seed

# Three tiers; CI (.ci/run) runs all three. `make test` needs only Rust, Node and Python: the
# tests use a dynalite on a free loopback port (or AWS_ENDPOINT_URL_DYNAMODB), the
# real binary through the local Lambda (crates/local-lambda), and cargo lambda watch for the
# end-to-end test; it says how long it took. `make test-containers` adds what needs Docker or a
# browser (sam local in arm64 containers, /docs in headless Chromium); `make test-api` is the API
# from the outside (schemathesis against /openapi.json, the document validated as OpenAPI 3.1).
# scripts/test.sh says how it runs them (cargo-nextest, several at once).
test: $(NODE_STAMP) $(VENV_STAMP) ## the tests that need only Rust, Node and Python (run before a commit)
	./scripts/test.sh

test-containers: $(NODE_STAMP) $(VENV_STAMP) ## sam local in Docker and /docs in Chromium (installs them, as root)
	@echo "make test-containers: installs what is missing, as root: Debian's docker.io (and starts dockerd), qemu-user-static, Chromium"
	@$(MAKE) --no-print-directory chromium
	cargo test --test sam_local -- --include-ignored
	tests/api/run.sh browser

test-api: $(NODE_STAMP) $(VENV_STAMP) ## the API from outside: schemathesis, and test-deployed's suite, against make dev
	@echo "make test-api: schemathesis and openapi-spec-validator from the project's .venv (PyPI)"
	tests/api/run.sh schemathesis
	tests/api/run.sh deployed

# One suite for any deployed URL (tests/deployed/suite.py, Python's standard library only): users
# paging, a task to `succeeded` through `Location`, errors as JSON, Idempotency-Key replay, DELETE,
# a CORS preflight; with API_TOKEN, the caller's ownership. Safe against production: a few bounded
# requests and three tasks of its own. `make test-api` runs it against make dev, `make
# test-containers` against make sam-api, so what a deployer runs against AWS is known to pass here.
test-deployed: ## the black-box suite against a deployed API: API_URL=https://… [API_TOKEN=…] [API_ORIGIN=…]
	@test -n "$(API_URL)" || { echo "make test-deployed API_URL=https://… [API_TOKEN=…] [API_ORIGIN=…]" >&2; exit 2; }
	python3 tests/deployed/suite.py

fuzz-api: $(NODE_STAMP) $(VENV_STAMP) ## a 10-minute schemathesis run against make dev's API
	FUZZ_API_SECONDS=600 tests/api/run.sh schemathesis

# Debian's Chromium, for the /docs check (a browser of Playwright's own cannot be downloaded here).
chromium:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && apt-get install -y -q chromium; \
	  else echo "install Debian's chromium (sudo apt-get install chromium) for the /docs test" >&2; exit 1; fi; }

# The link check reads README.md and docs/*.md: every relative link names a file that exists,
# every #anchor a heading of its target (GitHub's slugs); no network, external links unchecked.
lint: ## cargo fmt --check, clippy, and the links of README.md and docs/
	$(PYTHON) scripts/check-links.py
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

# --- tools -----------------------------------------------------------------------------------

# Holds the pins of the last successful install; rewritten only when they differ, so that its
# mtime, and so the venv's reinstall, follows the pins and not every edit of this Makefile.
$(VENV)/.pins: FORCE
	@mkdir -p $(@D)
	@if [ "$$(cat $@ 2>/dev/null)" != "$(PY_TOOLS)" ]; then echo "$(PY_TOOLS)" > $@; fi

$(VENV_STAMP): $(VENV)/.pins
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check $(PY_TOOLS)
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

.PHONY: FORCE
FORCE:

# --- template --------------------------------------------------------------------------------

# Both must report nothing: sam's lint is cfn-lint with SAM's own rules, run again plainly so a
# finding shows with cfn-lint's rule id.
lint-template: $(VENV_STAMP) ## sam validate --lint and cfn-lint
	$(SAM) validate --lint --template-file template.yaml --region $(LINT_REGION)
	$(BIN)/cfn-lint template.yaml

# --- build and deploy ------------------------------------------------------------------------

# Idempotent and quick once the target is installed.
rust-target:
	rustup target add $(LAMBDA_TARGET)

# Compiles the function for arm64 with cargo-lambda (Zig as the cross linker, from the venv) into
# .aws-sam/build, as template.yaml's BuildMethod says. Not run in CI: it is a release step.
build: $(VENV_STAMP) rust-target ## sam build: the arm64 function
	$(SAM) build

# First time: `make deploy DEPLOY_ARGS=--guided` (asks for the region, saves it to samconfig.toml).
deploy: build ## sam deploy (first time: DEPLOY_ARGS=--guided)
	$(SAM) deploy $(DEPLOY_ARGS)

delete: $(VENV_STAMP) ## sam delete
	$(SAM) delete

# --- fuzz ------------------------------------------------------------------------------------

# The property tests of tests/fuzz.rs, longer than CI's 256 cases per property, and exploring:
# `make test` runs them from a fixed seed, this from a random one (FUZZ_RANDOM=1). The seed is
# printed first (FUZZ_SEED=N); FUZZ_SEED replays a run (empty: a random one). A failing case's
# seed is saved in tests/fuzz-regressions/ and runs first from then on, in `make test` too:
# commit it, and add its shrunk input to the property's regressions in tests/fuzz.rs. Each
# property prints how many cases it ran (also in target/tmp/fuzz-*.txt).
FUZZ_CASES ?= 10000
FUZZ_SEED ?=
.PHONY: fuzz
fuzz: $(NODE_STAMP) ## the property tests from a random seed, FUZZ_CASES (10000) cases each
	FUZZ_RANDOM=1 FUZZ_SEED=$(FUZZ_SEED) PROPTEST_CASES=$(FUZZ_CASES) \
		cargo test --test fuzz -- --nocapture

# --- chaos -----------------------------------------------------------------------------------

# tests/chaos.rs with more tasks than the short run inside `make test` (40): CHAOS_TASKS tasks
# through several function processes, DynamoDB and Lambda faults, kills, duplicates, cancels and
# reused keys; then the invariants, each with its counts. The seed is printed first; CHAOS_SEED
# replays a run (empty: a random one). 400 tasks take 6 to 8 minutes, most of it waiting for the
# backstop when a task is left for it.
CHAOS_TASKS ?= 400
CHAOS_PROCESSES ?= 4
CHAOS_SEED ?=
.PHONY: chaos
chaos: $(NODE_STAMP) ## a long seeded chaos run of the task lifecycle
	CHAOS_TASKS=$(CHAOS_TASKS) CHAOS_PROCESSES=$(CHAOS_PROCESSES) CHAOS_SEED=$(CHAOS_SEED) \
		cargo test --test chaos -- --include-ignored --nocapture

# --- model -----------------------------------------------------------------------------------

# crates/task-model: the task protocol (src/tasks/protocol.rs) checked with Stateright against a
# model of DynamoDB and Lambda, every interleaving within its bounds. `cargo test` runs its small
# checks (one concern each, under a minute); this runs them and the deep ones (deep_*: each of
# issue 19's bounds), one at a time on MODEL_THREADS threads, each printing its bounds, the states
# it explored and its time; a counterexample prints as a trace. MODEL_* variables change the bounds
# of every check (see from_env in crates/task-model/tests/model.rs), e.g. MODEL_CRASHES=3;
# MODEL_KNOWN=1 also takes the paths of the counterexamples found and not yet fixed (the
# regression_* tests); MODEL_FIRST=1 stops at the first counterexample. On 2 cores about 1.3 hours
# and 20 GB of memory, nearly all of it deep_one_key_two_lost_answers (the others: 15 minutes).
MODEL_THREADS ?= 2
.PHONY: model
model: ## the model checker of the task protocol at deeper bounds (MODEL_*), states explored
	MODEL_THREADS=$(MODEL_THREADS) cargo test --release -p task-model --test model -- \
		--include-ignored --skip random_walks --test-threads=1 --nocapture

# --- bench -----------------------------------------------------------------------------------

# The function's release binary beside its two floors (examples/floor_hello.rs: the runtime alone,
# of the function's profile; crates/floor-io: one Scan page and nothing else, a package of its own
# built for speed with `[profile.floor]`), driven through the Runtime API emulator of tests/support
# against dynalite with 10,000 users; plus the size of the arm64 bootstrap that cargo lambda builds
# for deployment. The function binary measured is the release build with its own features (copied
# to target/bench/bin/ before `cargo bench`, which would rebuild it with the dev-dependencies'
# features too). Prints the report and writes it to target/bench/report.md. BENCH_COLD_RUNS,
# BENCH_WARM_RUNS, BENCH_THROUGHPUT_REQUESTS: see benches/bench/. The hello floor is built in the
# bench's own cargo invocation's feature set (the dev-dependencies'), so it shares its compiled
# dependencies with the function binary.
.PHONY: bench
bench: $(NODE_STAMP) $(VENV_STAMP) rust-target ## the benchmark against its floors and budgets
	cargo lambda build --release --arm64 --bin async-api --output-format zip
	cargo build --release --bin async-api
	mkdir -p target/bench/bin
	cp target/release/async-api target/bench/bin/async-api
	cargo build --profile bench --example floor_hello
	cargo build --profile floor -p floor-io
	cargo bench --bench bench

# --- sam local -------------------------------------------------------------------------------

# The function as `sam build` makes it (arm64), run by `sam local` in its container (under qemu
# on an x86_64 machine) against dynalite seeded with the sample users. scripts/sam-lib.sh sets up
# what is missing (Debian's docker.io and a dockerd, qemu-user-static and binfmt_misc, the base
# image built from Debian packages and cached in .sam-local/) and stops what it started.
# EVENT may list several files; SAM_PORT is where sam-api listens, on 127.0.0.1.
EVENT ?= events/http-get-users.json
SAM_PORT ?= 3000
.PHONY: sam-invoke sam-api
sam-invoke: build $(NODE_STAMP) ## sam local invoke EVENT=events/<file> in a container (Docker)
	./scripts/sam-invoke.sh $(EVENT)

sam-api: build $(NODE_STAMP) ## the API via sam local start-api on 127.0.0.1:3000, or SAM_PORT (Docker)
	SAM_PORT=$(SAM_PORT) ./scripts/sam-api.sh
