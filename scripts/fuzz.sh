#!/usr/bin/env bash
# Runs every Fuzz target in the root module briefly: $1 is -fuzztime, a count
# of executions (5000x, the default) or a duration. Counts avoid go1.26's
# spurious "context deadline exceeded" at the end of a duration
# (https://go.dev/issue/75804).
set -euo pipefail
t=${1:-5000x}
cd "$(dirname "$0")/.."
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    echo "fuzz $pkg $f ($t)"
    go test -run '^$' -fuzz "^$f\$" -fuzztime "$t" "$pkg"
  done
done
