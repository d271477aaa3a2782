# kirim — two commands: `make run` and `make test`. Everything else is set up on the way.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench redis clean help

help:
	@echo "make run    start Redis, the sandbox, workers, beat, Flower and the API; send a demo batch"
	@echo "make test   run the whole test suite against real Redis, workers and the sandbox"
	@echo "make lint   ruff + mypy"
	@echo "make bench  run the benchmarks (BENCH_ARGS=--quick: about 2 min); results in bench/results/"

$(STAMP): pyproject.toml deploy/constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c deploy/constraints.txt -e '.[dev]'
	@touch $(STAMP)

redis:
	@deploy/local/ensure-redis.sh >/dev/null

run: $(STAMP) redis
	$(BIN)/kirim demo --stack

# Two test processes: most tests wait on real processes and HTTP, so two halve the wall time
# on two cores (each has its own redis-server and sandbox on free ports).
PYTEST_ARGS ?= -n 2
test: $(STAMP) redis
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP) redis
	$(BIN)/pip install -q -c deploy/constraints.txt -e '.[bench]'
	$(BIN)/python -m bench $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check producer worker sandbox tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .run
