#!/usr/bin/env bash
# make validity-check: the bundles that `make example` and `make bundle` made,
# judged 400 days after today with the real binaries (docs/validity.md):
# - the example is valid (fixed epoch 2026-01-01, 36500 days);
# - the default bundle (365 days from SOURCE_DATE_EPOCH) is refused as
#   expired, naming why, until `builder extend` signs a validity statement;
#   with it, it verifies; gpg checks the statement on its own.
set -euo pipefail
EXAMPLE_DIR=${EXAMPLE_DIR:-_example}
BUNDLE_DIR=${BUNDLE_DIR:-_bundle}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "validity-check: $*" >&2; exit 1; }

at=$(date -u -d '+400 days' +%Y-%m-%dT%H:%M:%SZ)
until=$(date -u -d '+800 days' +%Y-%m-%d)

echo "== the example at $at"
bin/installer verify --iso "$EXAMPLE_DIR/example-1.0.0.iso" --keyring "$EXAMPLE_DIR/release.pub.asc" --at "$at"

iso=$BUNDLE_DIR/ferry-kubernetes.iso
echo "== the default bundle at $at: expired"
if bin/installer verify --iso "$iso" --keyring "$BUNDLE_DIR/release.pub.asc" --at "$at" >"$tmp/out" 2>&1; then
	cat "$tmp/out"; fail "$iso verified 400 days after its build"
fi
if ! grep -q 'manifest.json: .*expired on' "$tmp/out" || ! grep -q 'builder extend' "$tmp/out"; then
	cat "$tmp/out"; fail "the refusal does not say that $iso expired and how to extend it"
fi
cat "$tmp/out"

echo "== extended to $until"
bin/builder extend --iso "$iso" --until "$until" --signing-key "$BUNDLE_DIR/release.key.asc" --output "$tmp/ferry-kubernetes.validity"
bin/installer verify --iso "$iso" --keyring "$BUNDLE_DIR/release.pub.asc" --validity "$tmp/ferry-kubernetes.validity" --at "$at" | tee "$tmp/out"
grep -q "extended until ${until}T00:00:00Z" "$tmp/out" || fail "verify does not report the extension"

echo "== gpg checks the statement"
export GNUPGHOME=$tmp/gnupg
mkdir -m 0700 "$GNUPGHOME"
gpg --batch --quiet --import "$BUNDLE_DIR/release.pub.asc"
gpg --batch --verify "$tmp/ferry-kubernetes.validity"
echo "validity-check: ok"
