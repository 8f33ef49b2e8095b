#!/usr/bin/env bash
# The core profile run N times back to back on the compliant sandbox while stress-ng keeps every
# CPU busy (issue 15, load): a starved node must cost time, never verdicts. Prints one row per run:
# exit code, wall time, failed cells, probes that erred and were retried, API retries, exec replays.
# Usage: scripts/starved-runs.sh [N=10] [NETASSAY=./target/debug/netassay] [PROFILE=core]
set -euo pipefail
n=${1:-10}
netassay=${2:-./target/debug/netassay}
profile=${3:-core}
command -v stress-ng >/dev/null || { echo "needs stress-ng (apt-get install stress-ng)" >&2; exit 2; }
work=$(mktemp -d)
stress-ng --cpu "$(nproc)" --timeout 0 --quiet &
stress=$!
trap 'kill "$stress" 2>/dev/null; wait "$stress" 2>/dev/null; rm -rf "$work"' EXIT
sleep 1
for i in $(seq 1 "$n"); do
  start=$(date +%s%N)
  set +e
  "$netassay" run --sandbox --profile "$profile" --json "$work/run-$i.json" >"$work/run-$i.out" 2>&1
  code=$?
  set -e
  end=$(date +%s%N)
  echo "$code $(( (end - start) / 1000000 ))" >"$work/run-$i.meta"
  echo "run $i of $n: exit $code" >&2
done
python3 - "$work" "$n" <<'PY'
import json, sys
work, n = sys.argv[1], int(sys.argv[2])
print(f"{'run':>3} {'exit':>4} {'wall':>7} {'failed cells':>12} {'erred probes':>12} {'API retries':>11} {'exec replays':>12} {'restarts':>8}")
total_failed = 0
for i in range(1, n + 1):
    code, wall = open(f"{work}/run-{i}.meta").read().split()
    doc = json.load(open(f"{work}/run-{i}.json"))
    failed = erred = 0
    res = {"api_retries": 0, "exec_replays": 0, "pod_restarts": 0}
    for s in doc["scenarios"]:
        steps = [st for st in s["steps"]]
        for st in steps:
            for k in res:
                res[k] += st.get("resilience", {}).get(k, 0)
            for c in st["cells"]:
                if c["status"] in ("fail", "flapping"):
                    failed += 1
                erred += sum(1 for a in c["attempts"] if a["outcome"] in ("error", "wrong-peer", "dns-failed"))
    total_failed += failed
    print(f"{i:>3} {code:>4} {int(wall) / 1000:>6.1f}s {failed:>12} {erred:>12} {res['api_retries']:>11} {res['exec_replays']:>12} {res['pod_restarts']:>8}")
print(f"false failures in all runs: {total_failed}")
PY
