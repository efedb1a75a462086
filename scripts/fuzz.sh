#!/usr/bin/env bash
# Runs every Fuzz target in the root module: $1 is -fuzztime for each (make
# fuzz passes FUZZTIME; the Makefile says why it is a count).
set -euo pipefail
t=${1:?usage: scripts/fuzz.sh FUZZTIME (for example 5000x)}
cd "$(dirname "$0")/.."
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    echo "fuzz $pkg $f ($t)"
    go test -run '^$' -fuzz "^$f\$" -fuzztime "$t" "$pkg"
  done
done
