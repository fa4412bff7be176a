# charrnn: every target sets up its own virtual environment on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install lint format test test-slow demo corpora bench bench-mpi compare results clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,plot,mpi]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install charrnn into it (bin: .venv/bin/charrnn)

lint: $(STAMP)  ## check the code with ruff (ruff.toml)
	$(VENV)/bin/ruff check .

format: $(STAMP)  ## format the code with ruff (rewrites files: not yet run over the tree)
	$(VENV)/bin/ruff format .

test: $(STAMP)  ## run the test suite but the slow tests (about 5 min on 2 quiet cores)
	@echo "make test: the first run compiles the kernels (a minute or more), then several minutes of tests" >&2
	$(PY) -m pytest -q -m "not slow"

test-slow: $(STAMP)  ## also the slow tests (retraining the inspect-cells fixture, minutes)
	$(PY) -m pytest -q

corpora: $(STAMP)  ## build corpora/shakespeare.txt, python.txt, synthetic.txt
	$(PY) corpora/build.py

demo: $(STAMP)  ## build the Shakespeare corpus, train a small LSTM for 60 s, print a sample
	@# kernels compile before the 60 s start (a minute or two, once); --force: rerunnable
	$(PY) corpora/build.py --only shakespeare
	mkdir -p demo
	$(VENV)/bin/charrnn train corpora/shakespeare.txt -o demo/shakespeare.npz --force \
		--model lstm --layers 1 --hidden 128 --seq-length 50 --batch-size 50 --lr 5e-3 \
		--time-limit 60 --eval-every 100 --val-chars 20000 --seed 1
	$(VENV)/bin/charrnn sample demo/shakespeare.npz --temperature 0.8 --length 600 --seed 1

bench: $(STAMP)  ## time training and sampling (PEER=torch: side by side with PyTorch 2.13.0)
ifeq ($(PEER),torch)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet torch==2.13.0
endif
	@# this machine sets OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE for old OpenBLAS builds; they
	@# slow current numpy, so benchmarks run without them (tests and CI keep them)
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(PY) benchmarks/bench.py $(if $(PEER),--peer $(PEER)) $(BENCH_ARGS)

bench-mpi: $(STAMP)  ## 1 process x 2 threads against 2 ranks x 1 (benchmarks/SCALING.md)
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMPI_ALLOW_RUN_AS_ROOT=1 \
		OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 $(PY) benchmarks/bench_mpi.py $(BENCH_ARGS)

compare: $(STAMP)  ## charrnn and PyTorch train one model 10 min each (benchmarks/EQUAL_BUDGET.md)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet torch==2.13.0
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(PY) benchmarks/equal_budget.py $(COMPARE_ARGS)

results: $(STAMP)  ## train 18 models for 10 min each (3 h) and write benchmarks/QUALITY.md
	@# the same environment as bench; RESULTS_ARGS='--budget 60 --models lstm' for a shorter table
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(PY) benchmarks/results.py $(RESULTS_ARGS)
	$(PY) benchmarks/figures.py --only quality --only curves

clean:  ## remove the virtual environment, caches, built corpora and demo models
	rm -rf $(VENV) demo .pytest_cache .hypothesis *.egg-info build dist
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
	rm -f corpora/shakespeare.txt corpora/python.txt corpora/synthetic.txt
