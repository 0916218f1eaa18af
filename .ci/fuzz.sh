#!/usr/bin/env bash
# Runs every fuzz target in the module for FUZZTIME each (make fuzz).
#
# Go 1.26's fuzz coordinator can report its own -fuzztime deadline as a
# failure: "--- FAIL: FuzzX" followed by nothing but "context deadline
# exceeded", with no failing input written (go.dev/issue/75804, fixed in Go
# 1.27). Such a run found nothing, so it is run again, at most twice more.
# Any other failure, and any failure that wrote an input under testdata/fuzz,
# fails at once.
set -euo pipefail

GO=${GO:-go}
GO_TAGS=${GO_TAGS:-}
FUZZTIME=${FUZZTIME:-30s}
RETRIES=2

# bare_deadline FILE NAME: the output is the coordinator's deadline and
# nothing else went wrong.
bare_deadline() {
	local out=$1 name=$2
	grep -q 'Failing input written to' "$out" && return 1
	grep -q 'panic:' "$out" && return 1
	# The lines between "--- FAIL: NAME" and the final "FAIL" are the
	# failure's whole report.
	local report
	report=$(awk -v n="--- FAIL: $name " 'index($0, n) == 1 {on = 1; next} on && /^FAIL/ {exit} on {print}' "$out" | sed 's/^[[:space:]]*//' | grep -v '^$' || true)
	[ "$report" = "context deadline exceeded" ]
}

out=$(mktemp)
trap 'rm -f "$out"' EXIT
for dir in $(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do
	# Fuzz target names are single words.
	# shellcheck disable=SC2013
	for name in $(grep -h '^func Fuzz' "$dir"/*_test.go | sed 's/func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do
		attempt=0
		while :; do
			echo "== $dir $name"
			if "$GO" test -tags "$GO_TAGS" -run='^$' -fuzz="^$name\$" -fuzztime="$FUZZTIME" -fuzzminimizetime=2s "$dir" 2>&1 | tee "$out"; then
				break
			fi
			if bare_deadline "$out" "$name" && [ "$attempt" -lt "$RETRIES" ]; then
				attempt=$((attempt + 1))
				echo "== $name: Go's fuzz coordinator reported its own deadline, no input failed (go.dev/issue/75804); again ($attempt/$RETRIES)"
				continue
			fi
			echo "== $dir $name failed" >&2
			exit 1
		done
	done
done
