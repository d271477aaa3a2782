# kirim — two commands: `make run` and `make test`. Everything else is set up on the way.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint redis clean help

help:
	@echo "make run    start Redis, the sandbox, workers, beat, Flower and the API; send a demo batch"
	@echo "make test   run the whole test suite against real Redis, workers and the sandbox"
	@echo "make lint   ruff + mypy"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $(STAMP)

redis:
	@deploy/local/ensure-redis.sh >/dev/null

run: $(STAMP) redis
	$(BIN)/kirim demo --stack

test: $(STAMP) redis
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check producer worker sandbox tests
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .run
