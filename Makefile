# Everything runs inside .venv, created on first use. torch is pinned to the CPU build via constraints.txt.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
export OMP_WAIT_POLICY := PASSIVE
export HF_DATASETS_OFFLINE := 1
export HF_HUB_OFFLINE := 1
export GX_ANALYTICS_ENABLED := false
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_LOGGING_LEVEL := WARNING
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 120
export MPLBACKEND := Agg
export TOKENIZERS_PARALLELISM := false

.PHONY: run serve curate test test-slow bench bench-speed docs demo-data clean

# pip installs without byte-compiling; compileall then writes the same .pyc files on every core (pip would
# write them one at a time; like pip it skips files that do not compile, e.g. torch's Python 3.12-only helpers).
# Left out: the libraries' own test folders, pip, setuptools, debugpy, fontTools and transformers' model zoo,
# which nothing here imports but a few model files (compiled on first import). Skipping compileall altogether
# made a clean-clone `.ci/run` slower (12:51 against 10:07): three test workers then compile the same modules.
COMPILE_SKIP := '/tests?/|/site-packages/(pip|setuptools|debugpy|fontTools|transformers/models)/'
$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q --no-compile -c constraints.txt -e '.[dev,bench,hf,dask,docs]'
	$(BIN)/python -m compileall -q -j 0 -x $(COMPILE_SKIP) $(VENV)/lib > /dev/null 2>&1 || true
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/influence-stage clean --config demo --progress

# local Prefect server (127.0.0.1:4200, SQLite under runs/prefect/) + work pool + worker + the prefect.yaml
# deployment, in the foreground; Ctrl-C or `influence-stage server stop` stops everything
serve: $(STAMP)
	$(BIN)/influence-stage server start

# three pytest-xdist workers on two cores (the live-server, console-script and schedule tests wait on other
# processes a third of the time); each test module runs whole on one worker, the longest first (tests/conftest.py)
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 3 --dist loadfile --no-loadscope-reorder --durations=15

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

bench: $(STAMP)
	$(BIN)/python benchmarks/detect.py --seeds 0 1
	$(BIN)/python benchmarks/seed_spread.py
	$(BIN)/python benchmarks/cycle_floor.py
	$(BIN)/python benchmarks/auto_ablation.py
	$(BIN)/python benchmarks/downstream.py
	$(BIN)/python benchmarks/prune.py
	$(BIN)/python benchmarks/sources.py
	$(BIN)/python benchmarks/curation.py
	$(BIN)/python benchmarks/sklearn_model.py

bench-speed: $(STAMP)
	$(BIN)/python benchmarks/speed.py
	$(BIN)/python benchmarks/step_times.py --rows 20000 100000
	$(BIN)/python benchmarks/scale.py --rows 10000 100000 1000000 --dask-rows 100000 --image-rows 100000

curate: $(STAMP)
	$(BIN)/python data/make_corpus.py
	$(BIN)/influence-stage curate --config flows/corpus.yaml --progress

docs: $(STAMP)
	$(BIN)/mkdocs build --strict

demo-data: $(STAMP)
	$(BIN)/python data/make_digits.py

clean:
	rm -rf $(VENV) build *.egg-info site
