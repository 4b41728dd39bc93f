# ASAN services suite. `make run` starts everything on one machine; `make test` runs all checks.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
INSTALLED := $(VENV)/.installed
BUF := node_modules/.bin/buf
# Every folder services/<name>/ with a service.py is a service (services/suite.py).
SERVICES := $(patsubst services/%/service.py,%,$(wildcard services/*/service.py))

export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install run migrate test lint typecheck protos protos-check buf-lint buf-breaking clean

install: $(INSTALLED) $(BUF) third_party/googleapis

$(INSTALLED): pyproject.toml protos/pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python 3.11 or newer is needed (found $$($(PYTHON) --version))."; exit 1; }
	@$(PYTHON) -m venv $(VENV) || { echo "Could not create $(VENV): on Debian/Ubuntu install python3-venv (apt-get install python3-venv)."; exit 1; }
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e ./protos -e '.[dev]'
	@touch $@

$(BUF): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

third_party/googleapis: $(INSTALLED) tools/third_party.sh
	tools/third_party.sh $(PY) $@
	@touch $@

## Regenerate the Python stubs in protos/python from the .proto files.
protos: $(INSTALLED)
	$(PY) protos/generate.py

buf-lint: install
	$(BUF) lint

buf-breaking: install
	BUF=$(BUF) tools/buf_breaking.sh

lint: install buf-lint buf-breaking
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy services gateway tests protos/generate.py

migrate: install
	@for svc in $(SERVICES); do $(PY) -m services.$$svc migrate || exit 1; done

## Start every service, its event worker and the gateway; Ctrl-C stops all.
run: install migrate
	@$(PY) -m services.runtime.tokens keys >/dev/null
	@echo "ASAN suite on this machine (Ctrl-C stops all; events over AMQP_URI=$${AMQP_URI:-memory://}):"
	@$(PY) -m services.suite endpoints
	@echo "  a token: $(PY) -m services.runtime.tokens mint --kind citizen --subject 5ZK3T9P"
	@mkdir -p var && $(PY) -m services.suite procfile > var/Procfile
	@# No balancer to drain from on one machine: stop at once (honcho kills after 5 s).
	ASAN_SHUTDOWN_DRAIN_SECONDS=$${ASAN_SHUTDOWN_DRAIN_SECONDS:-0} $(BIN)/honcho start -f var/Procfile

## Every test. Most of them wait on processes, sockets and databases rather than compute, so
## they run in TEST_WORKERS processes. The RabbitMQ tests run meanwhile in one more process,
## one at a time (they share one broker, and some queue names are fixed by the code under
## test), and so do the `serial` ones (the benchmark's run); their report follows the others'.
TEST_WORKERS ?= 3
RABBITMQ_REPORT := .pytest-rabbitmq.log
test: install lint
	@$(BIN)/pytest -m "rabbitmq or serial" --durations=10 > $(RABBITMQ_REPORT) 2>&1 & rabbitmq=$$!; \
	$(BIN)/pytest -n $(TEST_WORKERS) -m "not rabbitmq and not serial" --durations=30; others=$$?; \
	wait $$rabbitmq; rabbitmq_status=$$?; \
	echo "=== The RabbitMQ and serial tests (one at a time, beside the others) ==="; cat $(RABBITMQ_REPORT); \
	exit $$(( others || rabbitmq_status ))

clean:
	rm -rf $(VENV) node_modules third_party var .pytest_cache .mypy_cache .ruff_cache

# --- Images and operations (deploy/) --------------------------------------------------------------
# Tag of `make images`; the dev overlay runs :dev, release builds set IMAGE_TAG=<version>.
IMAGE_TAG ?= dev
CONTAINER_ENGINE ?= $(shell command -v docker 2>/dev/null || command -v podman 2>/dev/null)

.PHONY: images prometheusrule dashboards prometheus-config run-prometheus

## Build the image of every service and of the gateway: asan/<name>:$(IMAGE_TAG). Every
## service's comes from services/Dockerfile, given its name and ports by services/suite.py.
images: $(INSTALLED)
	@[ -n "$(CONTAINER_ENGINE)" ] || { echo "No container engine here (docker or podman): no image built."; exit 1; }
	@$(CONTAINER_ENGINE) info >/dev/null 2>&1 || { echo "$(CONTAINER_ENGINE) does not answer (is its daemon running?): no image built."; exit 1; }
	@for name in $(SERVICES); do \
		build_args="$$($(PY) -m services.suite build-args $$name)" || exit 1; \
		echo "$(CONTAINER_ENGINE) build -f services/Dockerfile $$build_args -t asan/$$name:$(IMAGE_TAG) ."; \
		$(CONTAINER_ENGINE) build -f services/Dockerfile $$build_args -t asan/$$name:$(IMAGE_TAG) . || exit 1; \
	done
	$(CONTAINER_ENGINE) build -f gateway/Dockerfile -t asan/gateway:$(IMAGE_TAG) .

## Regenerate the PrometheusRule of deploy/k8s from deploy/prometheus/rules/asan.rules.yml.
prometheusrule: $(INSTALLED)
	$(PY) deploy/prometheus/prometheusrule.py

## Regenerate the Grafana dashboards of deploy/k8s (one per service in services/suite.py and
## the overview) from deploy/dashboards: the template and each service's own panels.
dashboards: $(INSTALLED)
	$(PY) deploy/dashboards/generate.py

## Regenerate deploy/prometheus/prometheus.yml: a scrape job per service in services/suite.py.
prometheus-config: $(INSTALLED)
	$(PY) deploy/prometheus/local_config.py

## Prometheus on http://127.0.0.1:9090 scraping the suite of `make run`, with the suite's rules.
run-prometheus:
	@command -v prometheus >/dev/null || { echo "prometheus is not installed (Debian: apt-get install prometheus)."; exit 1; }
	prometheus --config.file=deploy/prometheus/prometheus.yml --storage.tsdb.path=var/prometheus \
		--web.listen-address=127.0.0.1:9090

## The benchmark of bench/run.py: the suite's processes against a bare gRPC echo, one table.
## BENCH_ARGS=--quick for a run of about a minute.
BENCH_ARGS ?=
.PHONY: bench
bench: install
	$(PY) bench/run.py $(BENCH_ARGS)
