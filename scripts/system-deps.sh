#!/usr/bin/env bash
# System libraries the app and its tests need that pip cannot install (Debian/Ubuntu only).
# Qt's offscreen platform (used by the GUI tests) still links fontconfig, xkbcommon, EGL/GL and
# dbus; a real window under Xvfb additionally needs the xcb plugin's libraries.
# Idempotent: installs only what is missing; does nothing on macOS or without apt-get.
set -euo pipefail
[ "$(uname -s)" = "Linux" ] || exit 0
command -v apt-get >/dev/null 2>&1 || { echo "system-deps: no apt-get; install Qt's runtime libraries yourself" >&2; exit 0; }

pkgs=(libfontconfig1 libxkbcommon0 libegl1 libgl1 libdbus-1-3 libglib2.0-0
      libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0
      libxcb-xkb1 libxcb-render-util0 libxcb-image0 libxcb-randr0 libx11-xcb1
      xvfb xauth fonts-dejavu-core)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "system-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
