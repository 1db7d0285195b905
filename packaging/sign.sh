#!/usr/bin/env bash
# Sign check, notarization and stapling of Orchard.app (macOS; run by `make app` after the build).
#
# Signing itself happens during the build: with ORCHARD_SIGN_IDENTITY set (a "Developer ID
# Application: …" identity from `security find-identity -v -p codesigning`), PyInstaller signs
# every collected library and the app with the hardened runtime and packaging/entitlements.plist.
# Notarization needs a stored notarytool profile, made once with
#   xcrun notarytool store-credentials orchard-notary --apple-id YOU@EXAMPLE.COM --team-id TEAMID
# and then ORCHARD_NOTARY_PROFILE=orchard-notary. Without an identity the app is left unsigned
# (ad-hoc: it runs on the Mac that built it; other Macs need right-click > Open).
set -euo pipefail
APP=${1:-dist/Orchard.app}
[ -d "$APP" ] || { echo "sign: $APP not found (run make bundle)"; exit 1; }

if [ -z "${ORCHARD_SIGN_IDENTITY:-}" ]; then
  echo "sign: ORCHARD_SIGN_IDENTITY is not set; $APP stays unsigned (ad-hoc)"
  exit 0
fi
codesign --verify --deep --strict --verbose=2 "$APP"
codesign --display --entitlements - "$APP" | grep -q allow-unsigned-executable-memory \
  || { echo "sign: the entitlements are missing from $APP"; exit 1; }

if [ -z "${ORCHARD_NOTARY_PROFILE:-}" ]; then
  echo "sign: signed; ORCHARD_NOTARY_PROFILE is not set, so not notarized"
  exit 0
fi
zip=$(mktemp -d)/Orchard.zip
ditto -c -k --keepParent "$APP" "$zip"
xcrun notarytool submit "$zip" --keychain-profile "$ORCHARD_NOTARY_PROFILE" --wait
xcrun stapler staple "$APP"
spctl --assess --type execute --verbose=2 "$APP"
echo "sign: $APP is signed, notarized and stapled"
