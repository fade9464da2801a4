#!/usr/bin/env bash
# bench/latency.py on a reference revision and on this checkout, interleaved in ABBA order (ref, new, new,
# ref, ...) so that the machine's load falls on both alike; read the ratios of neighbouring runs.
#
#   bench/latency_vs.sh REV [ROUNDS] [TRIES]      e.g. bench/latency_vs.sh 1654851 4 150
#
# The reference is taken out of git into a temp folder; both run with this checkout's .venv interpreter and
# PYTHONPATH picks the package, for the bench and (through the environment) for the service it starts.
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:?usage: bench/latency_vs.sh REV [ROUNDS] [TRIES]}
rounds=${2:-2}
tries=${3:-150}
here=$PWD
ref=$(mktemp -d)
out=$(mktemp -d)
trap 'rm -rf "$ref"' EXIT
git archive "$rev" | tar -x -C "$ref"
run() {  # run NAME TREE
  local file
  file="$out/$(printf %02d "$n")-$1.txt"
  n=$((n + 1))
  echo "==> $1 ($2), load $(cut -d' ' -f1 /proc/loadavg)"
  (cd "$2" && PYTHONPATH="$2" "$here/.venv/bin/python" bench/latency.py --tries "$tries" --no-results) > "$file" 2>&1
  sed -n '/^touch -> job start/,/^Run counts/p' "$file"
}
n=1
for ((i = 0; i < rounds; i++)); do
  if ((i % 2 == 0)); then run "ref-$rev" "$ref"; run new "$here"; else run new "$here"; run "ref-$rev" "$ref"; fi
done
echo "every run's output: $out"
