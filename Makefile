# Two commands set everything up on a fresh machine:
#   make demo   creates .venv if missing, installs hwprof, runs the main job
#   make test   creates .venv if missing, runs the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test bench install clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# The main job. Grows with the pipeline: measure -> fit -> search on simulated kirin-npu.
demo: $(STAMP)
	$(BIN)/nas spaces
	$(BIN)/nas sample --space ofa -n 5 --seed 0 --out demo-out/ofa.jsonl
	$(BIN)/nas export demo-out/ofa.jsonl --onnx demo-out/onnx
	$(BIN)/hwprof devices
	$(BIN)/hwprof measure --device kirin-npu --space ofa --samples 200 --seed 0 --out demo-out/runs/npu

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) demo-out
