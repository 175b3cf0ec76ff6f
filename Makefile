# The two commands: `make run` and `make test`. Both create .venv and install the pinned requirements first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

# The PostgreSQL and Redis that `make test-scale` and `make test-services` use; override for another machine.
SERVICES_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
SERVICES_REDIS_URL ?= redis://127.0.0.1:6379/0

.PHONY: run test test-services test-scale lint migrate clean

# Reinstall only when a requirements file changes.
$(BIN)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -c 'import sys; sys.exit("chatsite needs Python 3.11 or newer") if sys.version_info < (3, 11) else None'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

migrate: $(BIN)/.installed
	$(BIN)/python manage.py migrate --noinput

run: migrate
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

test: $(BIN)/.installed
	$(BIN)/python manage.py test $(TEST_ARGS)

# The whole suite on PostgreSQL and Redis; tests that need them fail instead of skipping.
test-services: $(BIN)/.installed
	CHAT_REQUIRE_REDIS=1 DATABASE_URL=$(SERVICES_DATABASE_URL) REDIS_URL=$(SERVICES_REDIS_URL) \
		$(BIN)/python manage.py test $(TEST_ARGS)

# Only the multi-process tests: two server processes on PostgreSQL and Redis.
test-scale: $(BIN)/.installed
	CHAT_REQUIRE_REDIS=1 DATABASE_URL=$(SERVICES_DATABASE_URL) REDIS_URL=$(SERVICES_REDIS_URL) \
		$(BIN)/python manage.py test chat.tests.test_scale

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

clean:
	rm -rf $(VENV) staticfiles test-db*.sqlite3*

# The benchmark (bench/README.md): starts its own servers on loopback ports, writes docs/performance.md.
# About 20 minutes; BENCH_ARGS=--quick for a short smoke run, BENCH_ARGS=--help for the rest.
.PHONY: bench
bench: $(BIN)/.bench-installed
	$(BIN)/python -m bench $(BENCH_ARGS)

$(BIN)/.bench-installed: $(BIN)/.installed requirements-bench.txt
	$(BIN)/python -m pip install --quiet -r requirements-bench.txt
	touch $@

# The fault-injection tests and the soak (docs/reliability.md). Both start their own Redis, PostgreSQL cluster and
# server processes on free loopback ports and write the figures into docs/reliability.md. About 10 minutes;
# SOAK_ARGS="--minutes 10" for a longer steady phase. Both always run; the target fails if either failed.
SOAK_FIGURES ?= $(or $(TMPDIR),/tmp)/chatsite-fault-figures.jsonl
.PHONY: soak
soak: $(BIN)/.installed
	rm -f $(SOAK_FIGURES); status=0; \
	CHAT_FAULTS=1 CHAT_REQUIRE_REDIS=1 CHAT_FAULT_FIGURES=$(SOAK_FIGURES) DATABASE_URL=$(SERVICES_DATABASE_URL) \
		REDIS_URL=$(SERVICES_REDIS_URL) $(BIN)/python manage.py test chat.tests.test_faults || status=1; \
	CHAT_FAULT_FIGURES=$(SOAK_FIGURES) DATABASE_URL=$(SERVICES_DATABASE_URL) \
		$(BIN)/python -m soak --write-docs $(SOAK_ARGS) || status=1; \
	exit $$status
