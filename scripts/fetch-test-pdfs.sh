#!/usr/bin/env bash
# Fetch the corpus of real PDFs the document tests ingest (tests/core/test_real_pdfs.py; bench/ may use it
# too): manuals built by Debian's documentation toolchains, which Orchard did not make. Each comes out of a
# pinned Debian package (`apt-get download PKG=VERSION`, `dpkg-deb -x`) and is checked against the sha256
# below. They land in tests/data/pdfs/real/ (git-ignored: GPL'd documents are fetched, not committed).
#
#   debian-reference.en.pdf  debian-reference-en 2.100  GPL-2+ (Osamu Aoki)          261 pages, DBLaTeX
#   debmake-doc.en.pdf       debmake-doc 1.17-7         Expat (Osamu Aoki)           143 pages, DBLaTeX: its runs
#                                                                                    of list lines once failed ingest
#   refcard-en-a4.pdf        debian-refcard 12.0        GPL-3+ (W. Martin Borgert)     2 dense multi-column pages
#   refcard-ja-a4.pdf        debian-refcard 12.0        GPL-3+ (W. Martin Borgert)     2 pages of Japanese
#   refcard-ru-a4.pdf        debian-refcard 12.0        GPL-3+ (W. Martin Borgert)     2 pages of Russian
#
# BENCH_CORPUS adds manuals only bench/manual_retrieval.py reads (the tests don't ingest them):
#   policy.pdf               debian-policy 4.6.2.0      GPL-2+ (Debian contributors) 193 pages, Sphinx → LaTeX
#
# Idempotent: nothing is downloaded when every PDF is there with its hash. Needs apt-get and dpkg-deb
# (Debian/Ubuntu, as root or with sudo for `apt-get update`); without them (macOS) it says so and exits 0,
# and the tests that need the corpus fail telling how to get it (or set ORCHARD_SKIP_REAL_PDFS=1 to skip them).
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=tests/data/pdfs/real
# name  package=version  path inside the package (a .gz is unpacked)  sha256 of the PDF
CORPUS="
debian-reference.en.pdf debian-reference-en=2.100 usr/share/debian-reference/debian-reference.en.pdf 32775deeca0770ac25282b0c894cbaae83f4dd4ab00e891b94e8f009c0366728
debmake-doc.en.pdf debmake-doc=1.17-7 usr/share/doc/debmake-doc/debmake-doc.en.pdf b49a29f9f39ccf599a93de7789338eb001dda98063bfbb9960f7d45e95d027d6
refcard-en-a4.pdf debian-refcard=12.0 usr/share/doc/debian-refcard/refcard-en-a4.pdf.gz e876ef5e889cc82835b96a1b32df6a295e41534a1adae69def6d4ad981e38f61
refcard-ja-a4.pdf debian-refcard=12.0 usr/share/doc/debian-refcard/refcard-ja-a4.pdf.gz 652d6da8f92399493f69ef54d4f0a12c42b5e4dd2e42248ca61f34793fe76360
refcard-ru-a4.pdf debian-refcard=12.0 usr/share/doc/debian-refcard/refcard-ru-a4.pdf.gz 6e722dcf5fdaba5c5e0a5bc7c51a25267207cb320c7a721409df3b6dc5d08183
"
BENCH_CORPUS="
policy.pdf debian-policy=4.6.2.0 usr/share/doc/debian-policy/policy.pdf.gz 220f9366d6deb3984e84236f02f04bdd6275d6fe7b5587acd6c689dfeb99020f
"
ALL="$CORPUS$BENCH_CORPUS"

sha256_of() {
  if command -v sha256sum >/dev/null 2>&1; then sha256sum "$1" | cut -d' ' -f1; else shasum -a 256 "$1" | cut -d' ' -f1; fi
}

missing=()
while read -r name package member sha; do
  [ -n "$name" ] || continue
  if ! [ -f "$OUT/$name" ] || [ "$(sha256_of "$OUT/$name")" != "$sha" ]; then
    missing+=("$name")
  fi
done <<< "$ALL"
if [ ${#missing[@]} -eq 0 ]; then
  echo "fetch-test-pdfs: $OUT is up to date"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-deb >/dev/null 2>&1; then
  echo "fetch-test-pdfs: apt-get/dpkg-deb not found, so the real-PDF corpus (${missing[*]}) is not fetched." >&2
  echo "  The tests that ingest it will fail until $OUT holds it: run this script on Debian/Ubuntu and copy" >&2
  echo "  the folder here, or set ORCHARD_SKIP_REAL_PDFS=1 to skip those tests." >&2
  exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
download() {  # apt-get download PKG=VERSION into $tmp; `apt-get update` once if the lists don't have it
  (cd "$tmp" && apt-get download -qq "$1" >/dev/null 2>&1) && return 0
  if [ -z "${updated:-}" ]; then
    updated=1
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "fetch-test-pdfs: apt-get update (the package lists don't have $1)"
    $SUDO apt-get update -qq
    (cd "$tmp" && apt-get download -qq "$1" >/dev/null) && return 0
  fi
  echo "fetch-test-pdfs: could not download $1; is this Debian 12 (bookworm) or do its sources still carry it?" >&2
  return 1
}

mkdir -p "$OUT"
while read -r name package member sha; do
  [ -n "$name" ] || continue
  [[ " ${missing[*]} " == *" $name "* ]] || continue
  deb=$(ls "$tmp"/"${package%%=*}"_*.deb 2>/dev/null | head -1 || true)
  if [ -z "$deb" ]; then
    download "$package"
    deb=$(ls "$tmp"/"${package%%=*}"_*.deb | head -1)
  fi
  rm -rf "$tmp/x"
  dpkg-deb -x "$deb" "$tmp/x"
  if [[ "$member" == *.gz ]]; then
    gzip -dc "$tmp/x/$member" > "$OUT/$name.part"
  else
    cp "$tmp/x/$member" "$OUT/$name.part"
  fi
  got=$(sha256_of "$OUT/$name.part")
  if [ "$got" != "$sha" ]; then
    rm -f "$OUT/$name.part"
    echo "fetch-test-pdfs: $name from $package has sha256 $got, expected $sha" >&2
    exit 1
  fi
  mv "$OUT/$name.part" "$OUT/$name"
  echo "fetch-test-pdfs: $OUT/$name ($package)"
done <<< "$ALL"
