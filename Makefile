# The two commands a fresh machine needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_FLAGS ?=

.PHONY: install demo study test test-all test-fast clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,logging]"
	touch $(STAMP)

install: $(STAMP)

# PPO and TRPO on CartPole-v1, 32 seeds each at 5e5 env steps, then a side-by-side table.
demo: install
	$(BIN)/python -m purejaxrl_ppo train --algo ppo --env CartPole-v1 --num-seeds 32 --out runs/demo-ppo --overwrite
	$(BIN)/python -m purejaxrl_ppo train --algo trpo --env CartPole-v1 --num-seeds 32 --out runs/demo-trpo --overwrite
	$(BIN)/python -m purejaxrl_ppo compare runs/demo-ppo runs/demo-trpo --plot runs/demo-comparison.png

# TRPO vs PPO (PPO paper Table 1 variants + TRPO): curves, statistics, figures and
# benchmarks/results/sample_efficiency.md. STUDY_ARGS picks envs, seeds and budget; the default is the
# measured study (README, "Sample efficiency"): hours on a 2-core CPU. Add --resume to keep finished envs.
STUDY_ARGS ?= --envs CartPole-v1 Acrobot-v1 Pendulum-v1 Breakout-MinAtar brax/inverted_pendulum \
	brax/inverted_double_pendulum --seeds 32 --budget-scale 0.2 --budget Pendulum-v1=200000 \
	--budget Breakout-MinAtar=100000 --budget brax/inverted_pendulum=100000 \
	--budget brax/inverted_double_pendulum=50000 --reps 2000
study: install
	PYTHONPATH=$(CURDIR) $(BIN)/python benchmarks/sample_efficiency.py $(STUDY_ARGS) --out benchmarks/results/

# The CI run: unit tests, the CartPole and RLHF learning tests, one Brax learning test, the quickstart and RLHF notebooks
# (tests marked `heavy` -- Pendulum and most Brax learning, the full multi-device matrix -- and the
# study notebook, ~100 s, whose report code the unit tests cover on synthetic curves, are left to test-all).
test: install
	$(BIN)/python -m pytest -q --nbmake -m "not heavy" tests notebooks/quickstart.ipynb notebooks/rlhf.ipynb $(PYTEST_FLAGS)

# Everything, heavy tests included (tens of minutes on a 2-core CPU).
test-all: install
	$(BIN)/python -m pytest -q --nbmake tests notebooks $(PYTEST_FLAGS)

# Unit tests only (no learning tests, no notebook).
test-fast: install
	$(BIN)/python -m pytest -q -m "not slow" tests $(PYTEST_FLAGS)

clean:
	rm -rf $(VENV) runs .pytest_cache
