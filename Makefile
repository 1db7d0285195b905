# Orchard. The two commands a new user needs: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
EMBEDDER := resources/embedder/all-MiniLM-L6-v2.gguf
TEST_MODEL := tests/data/models/SmolLM2-135M-Instruct.Q4_1.gguf
TEST_PDFS  := tests/data/pdfs/real/debian-reference.en.pdf
ICONS    := build/icons/Orchard.icns
# The frozen app: its executable inside Orchard.app on macOS, in the onedir folder elsewhere.
ifeq ($(shell uname -s),Darwin)
BUNDLE_EXE := dist/Orchard.app/Contents/MacOS/Orchard
else
BUNDLE_EXE := dist/Orchard/Orchard
endif

.PHONY: setup test-data run test lint bench screens app bundle app-smoke clean

# What the app needs (`make run`); the tests' real inputs come with `make test` (test-data), not with the app.
setup: $(STAMP) $(EMBEDDER)

test-data: $(TEST_MODEL) $(TEST_PDFS)

# Idempotent: re-runs only when pyproject.toml or the system-deps script changes.
$(STAMP): pyproject.toml scripts/system-deps.sh
	bash scripts/system-deps.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,app]'
	touch $(STAMP)

# The bundled embedder (an app resource, git-ignored): rebuilt when its converter or build script
# changes; it only needs the venv to exist (order-only), not a rebuild on every reinstall.
$(EMBEDDER): models/embedder/convert_minilm.py scripts/build-embedder.sh | $(STAMP)
	PY=$(PY) bash scripts/build-embedder.sh

# The real instruct model of the tests' real_model tier (git-ignored, not bundled): fetched once,
# hash-checked; fetched again when the script (its pinned version and hashes) changes.
$(TEST_MODEL): scripts/fetch-test-model.sh | $(STAMP)
	PY=$(PY) bash scripts/fetch-test-model.sh && touch $@

# The real PDFs the document tests ingest (git-ignored): pinned Debian doc packages, hash-checked; without
# apt-get (macOS) the script says so and those tests fail with the same advice.
$(TEST_PDFS): scripts/fetch-test-pdfs.sh
	bash scripts/fetch-test-pdfs.sh && touch $@

run: setup
	$(PY) -m macapp

lint: setup
	$(VENV)/bin/ruff check macapp tests bench packaging
	$(VENV)/bin/ruff format --check macapp tests bench packaging scripts
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

# pytest exits 5 when it collects nothing, so an empty suite fails here too.
test: lint test-data
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q

# Every page at 900x600, 1180x760 and 1440x900, light and dark: build/screens/<theme>/<WxH>/<page>.png, with the
# problems tests/ui/test_screens.py checks for printed beside each.
screens: setup
	QT_QPA_PLATFORM=offscreen $(PY) scripts/screens.py

bench: bundle test-data
	$(PY) bench/run_all.py

# Orchard.app (macOS) or the onedir bundle (Linux) from packaging/orchard.spec; see packaging/README.md.
$(ICONS): resources/icon.svg packaging/icons.py | $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) packaging/icons.py build/icons

bundle: setup $(ICONS)
	$(PY) -m PyInstaller --noconfirm --log-level WARN --distpath dist --workpath build/pyinstaller packaging/orchard.spec

# On macOS: the bundle, signed and notarized when ORCHARD_SIGN_IDENTITY (and ORCHARD_NOTARY_PROFILE)
# are set, then the DMG. Elsewhere: the onedir bundle only.
app: bundle
ifeq ($(shell uname -s),Darwin)
	bash packaging/sign.sh dist/Orchard.app
	bash packaging/make_dmg.sh dist/Orchard.app
endif

# Build the bundle and run its selftest: every backend, a tiny model, an embedding, a LoRA step, the window.
app-smoke: bundle
	QT_QPA_PLATFORM=offscreen $(BUNDLE_EXE) --selftest

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
