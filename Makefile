# scorestream: `make demo` and `make test` set up everything they need (venv, jars, system tools).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_EVENTS ?= 20000
DEMO_ARGS ?=
PYTEST_ARGS ?=
STAMP := $(VENV)/.installed

.PHONY: help prereqs system venv jars demo demo-keep stack-up stack-down test test-cluster lint unit integration bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

prereqs: ## check Python 3.11+, Java 17+ and Maven, and say what is missing
	@missing=0; \
	if ! command -v $(PYTHON) >/dev/null; then echo "missing: $(PYTHON) (Python 3.11+ is required)"; missing=1; \
	elif ! $(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then \
	  echo "too old: $$($(PYTHON) --version 2>&1) at $$(command -v $(PYTHON)); Python 3.11+ is required (set PYTHON=...)"; missing=1; fi; \
	if ! command -v java >/dev/null; then echo "missing: java (Java 17+ is required for Kafka and Spark)"; missing=1; \
	else jv=$$(java -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $$2}'); \
	  if [ "$${jv%%.*}" -lt 17 ] 2>/dev/null; then echo "too old: Java $$jv; Java 17+ is required"; missing=1; fi; fi; \
	if ! command -v mvn >/dev/null; then echo "missing: mvn (Maven fetches the Kafka and Spark connector jars)"; missing=1; fi; \
	exit $$missing

system: ## install the Debian tools the tests use (promtool, kcat, docker-compose, postgresql) when missing
	@need=""; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need="$$need postgresql"; \
	command -v promtool >/dev/null || need="$$need prometheus"; \
	command -v kcat >/dev/null || need="$$need kcat"; \
	command -v docker-compose >/dev/null || need="$$need docker-compose"; \
	ldconfig -p 2>/dev/null | grep -q libblas.so.3 || need="$$need libblas3"; \
	if [ -n "$$need" ]; then \
	  sudo=""; [ "$$(id -u)" -ne 0 ] && sudo="sudo"; \
	  echo "installing Debian packages:$$need"; \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$need >/dev/null \
	    || { echo "could not install$$need; install them with apt-get and retry"; exit 1; }; \
	fi

$(STAMP): pyproject.toml
	@$(MAKE) --no-print-directory prereqs
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

venv: $(STAMP) ## create .venv and install the package with its dev tools

jars: venv ## fetch the pinned Kafka broker and Spark connector jars into ~/.cache/scorestream
	$(BIN)/python -m scorestream.jars

demo: jars ## end to end: local broker, training, scorer, DEMO_EVENTS events, summary line
	$(BIN)/scorestream demo --events $(DEMO_EVENTS) $(DEMO_ARGS)

demo-keep: jars ## the demo, then keep the broker, the scorer and `serve` (127.0.0.1:8000) running until Ctrl-C
	$(BIN)/scorestream demo --events $(DEMO_EVENTS) --keep $(DEMO_ARGS)

stack-up: jars ## start the local Kafka broker on 127.0.0.1:9092
	$(BIN)/scorestream stack up

stack-down: venv ## stop what stack-up started
	$(BIN)/scorestream stack down

lint: venv ## ruff (lint and format check), mypy and the import layers (import-linter)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

unit: venv system ## tests that need no JVM and no broker
	$(BIN)/pytest -m unit tests/unit $(PYTEST_ARGS)

# The cluster tests start clusters of their own and take minutes on 2 cores: 3-broker failover,
# Spark standalone with spark-submit, the mini HDFS cluster (registry and checkpoints on HDFS,
# kill -9). `make test-cluster` runs them; .ci/run runs both targets, so CI runs every test.
CLUSTER_TESTS := tests/integration/test_cluster.py tests/integration/test_spark_standalone.py \
	tests/integration/test_hdfs.py

# The integration tests run on TEST_WORKERS pytest workers, each with its own broker, Spark and
# servers, so one test's waits overlap another's work. A file with module fixtures stays on one
# worker, the files sharing a costly session fixture stay together, every other test is a unit
# of its own, and the units are handed out longest first, by the seconds of a recorded run
# (tests/work_units.py, durations.json; PYTEST_ARGS=--record-durations rewrites it).
# TEST_WORKERS=0 runs them in this one process.
TEST_WORKERS ?= 2

# The JVMs the tests start (brokers, every scorer, train or demo process) live seconds to
# minutes, so the C2 compiler's work never pays back: C1 only took a SparkSession plus one
# training from 56 to 31 s of JVM CPU here. Each worker's own SparkSession, which lives the whole
# session, keeps C2 (tests/integration/conftest.py). `make bench` and the product run the JVM's
# defaults.
TEST_JAVA_OPTIONS ?= -XX:TieredStopAtLevel=1

integration: jars system ## tests against a real broker and real Spark (started by the suite)
	JDK_JAVA_OPTIONS="$(TEST_JAVA_OPTIONS)" $(BIN)/pytest -m integration tests/integration \
	  $(addprefix --ignore=,$(CLUSTER_TESTS)) \
	  -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder $(PYTEST_ARGS)

test-cluster: jars system ## tests with clusters of their own: 3-broker Kafka, Spark standalone, mini HDFS
	JDK_JAVA_OPTIONS="$(TEST_JAVA_OPTIONS)" $(BIN)/pytest -m integration $(CLUSTER_TESTS) $(PYTEST_ARGS)

# lint and the unit tests are one process each: they run side by side, then the integration
# tests. With all three at once, the integration tests took 1,214 s against 1,094 s this way
# (one fresh-clone run each), so they wait.
test: venv jars system ## everything: lint, unit and integration tests
	$(MAKE) --no-print-directory -j2 --output-sync=target lint unit
	$(MAKE) --no-print-directory integration

bench: jars ## benchmarks: scorer variants and peers side by side, ratios in benchmarks/results
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

clean: ## remove local state (.scorestream) and caches; the jar cache stays
	-$(BIN)/scorestream stack down 2>/dev/null
	rm -rf .scorestream .pytest_cache .mypy_cache .ruff_cache
