# Orchard. The two commands a new user needs: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
EMBEDDER := resources/embedder/all-MiniLM-L6-v2.gguf

.PHONY: setup run test lint bench app clean

setup: $(STAMP) $(EMBEDDER)

# Idempotent: re-runs only when pyproject.toml or the system-deps script changes.
$(STAMP): pyproject.toml scripts/system-deps.sh
	bash scripts/system-deps.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# The bundled embedder (an app resource, git-ignored): rebuilt when its converter or build script
# changes; it only needs the venv to exist (order-only), not a rebuild on every reinstall.
$(EMBEDDER): models/embedder/convert_minilm.py scripts/build-embedder.sh | $(STAMP)
	PY=$(PY) bash scripts/build-embedder.sh

run: setup
	$(PY) -m macapp

lint: setup
	$(VENV)/bin/ruff check macapp tests bench
	$(VENV)/bin/lint-imports

# pytest exits 5 when it collects nothing, so an empty suite fails here too.
test: lint
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q

bench: setup
	$(PY) bench/run_all.py

app: setup
	@echo "packaging lands with the packaging issue (packaging/)"; exit 2

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
