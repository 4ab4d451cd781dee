# Two commands set everything up on a fresh machine:
#   make demo   creates .venv if missing, installs hwprof, runs the main job
#   make test   creates .venv if missing, runs the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-slow bench bench-full install clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# The main job: measure -> fit -> search on the simulated kirin-npu (about 2 minutes).
DEMO := demo-out
demo: $(STAMP)
	$(BIN)/hwprof devices
	$(BIN)/hwprof measure --device kirin-npu --space ofa --samples 300 --seed 0 --out $(DEMO)/runs/npu
	$(BIN)/hwprof measure --device kirin-npu --space ofa --samples 100 --seed 1 --mode e2e --out $(DEMO)/runs/npu-test
	$(BIN)/hwprof fit-predictor --data $(DEMO)/runs/npu --out $(DEMO)/npu.pred
	$(BIN)/hwprof evaluate --predictor $(DEMO)/npu.pred --data $(DEMO)/runs/npu-test --plot $(DEMO)/npu-eval.png
	HWPROF_CACHE=$(DEMO)/cache $(BIN)/nas search --space ofa --target kirin-npu --predictor $(DEMO)/npu.pred \
		--latency-ms 4 --out $(DEMO)/search

# The suite runs in TEST_WORKERS processes (pytest-xdist), a test file to each at a time, every process with a
# hwprof cache of its own (tests/conftest.py); TEST_WORKERS=0 runs it in this one process. One OpenMP thread
# per process: two processes' torch and LightGBM threads spinning for 2 cores made some tests 10x slower.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(BIN)/lint-imports --no-cache  # the layers of pyproject.toml's [tool.importlinter]
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -m "not slow" -n $(TEST_WORKERS) --dist loadfile

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

bench: $(STAMP)
	$(BIN)/python -m benchmarks --out bench-results.json

bench-full: $(STAMP)
	$(BIN)/python -m benchmarks --full

clean:
	rm -rf $(VENV) demo-out
