#!/usr/bin/env bash
# dist/Orchard-<version>.dmg from Orchard.app: the app beside an Applications link, compressed
# (UDZO). Signed and notarized like the app when ORCHARD_SIGN_IDENTITY / ORCHARD_NOTARY_PROFILE are set.
set -euo pipefail
cd "$(dirname "$0")/.."
APP=${1:-dist/Orchard.app}
PY=${PY:-.venv/bin/python}
[ -d "$APP" ] || { echo "dmg: $APP not found (run make bundle)"; exit 1; }
VERSION=$("$PY" -c 'import sys; sys.path.insert(0, "packaging"); import manifest; print(manifest.package_version())')
DMG=dist/Orchard-$VERSION.dmg

staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT
ditto "$APP" "$staging/Orchard.app"
ln -s /Applications "$staging/Applications"
rm -f "$DMG"
hdiutil create -volname "Orchard $VERSION" -srcfolder "$staging" -fs HFS+ -format UDZO -ov "$DMG"

if [ -n "${ORCHARD_SIGN_IDENTITY:-}" ]; then
  codesign --sign "$ORCHARD_SIGN_IDENTITY" --timestamp "$DMG"
  if [ -n "${ORCHARD_NOTARY_PROFILE:-}" ]; then
    xcrun notarytool submit "$DMG" --keychain-profile "$ORCHARD_NOTARY_PROFILE" --wait
    xcrun stapler staple "$DMG"
  fi
fi
echo "dmg: wrote $DMG ($(du -h "$DMG" | cut -f1))"
