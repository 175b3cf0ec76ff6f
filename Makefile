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
