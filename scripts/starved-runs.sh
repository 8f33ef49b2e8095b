#!/usr/bin/env bash
# The core profile run N times back to back on the compliant sandbox while stress-ng keeps every
# CPU busy (issue 15, load): a starved node must cost time, never verdicts. Prints one row per run:
# exit code, wall time, wrong verdicts (fail or flapping cells), cells without evidence (error,
# interrupted), probes that erred and were retried, API retries, exec
# replays, pod restarts; then the false failures of all runs. Exits 1 if any run exited non-zero
# or had any wrong, error or interrupted cell.
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
# Every way a run can fall short of "the same verdicts, only slower": a wrong verdict (fail or
# flapping cell), a cell without evidence (error: the probe kept failing; interrupted: the cluster
# kept stopping it), or an exit code other than 0 (which also covers an environment problem
# such as an unhealthy fixture, and a run that wrote no results). Scenarios left incomplete for
# lack of SCTP on this kernel are not failures: the unloaded run has them too.
print(f"{'run':>3} {'exit':>4} {'wall':>7} {'wrong':>5} {'error':>5} {'intr.':>5} "
      f"{'erred probes':>12} {'API retries':>11} {'exec replays':>12} {'restarts':>8}")
totals = {"wrong": 0, "error": 0, "interrupted": 0}
bad_exits = []
for i in range(1, n + 1):
    code, wall = open(f"{work}/run-{i}.meta").read().split()
    if code != "0":
        bad_exits.append(f"run {i}: exit {code}")
    try:
        doc = json.load(open(f"{work}/run-{i}.json"))
    except (OSError, ValueError) as e:
        print(f"{i:>3} {code:>4} {int(wall) / 1000:>6.1f}s  no results: {e}")
        continue
    count = {"wrong": 0, "error": 0, "interrupted": 0}
    erred = 0
    res = {"api_retries": 0, "exec_replays": 0, "pod_restarts": 0}
    for s in doc["scenarios"]:
        steps = [s["baseline"]] if s.get("baseline") else []
        steps += s["steps"]
        for st in steps:
            for k in res:
                res[k] += st.get("resilience", {}).get(k, 0)
            for c in st["cells"]:
                if c["status"] in ("fail", "flapping"):
                    count["wrong"] += 1
                elif c["status"] in ("error", "interrupted"):
                    count[c["status"]] += 1
                erred += sum(1 for a in c["attempts"] if a["outcome"] in ("error", "wrong-peer", "dns-failed"))
    for k in totals:
        totals[k] += count[k]
    print(f"{i:>3} {code:>4} {int(wall) / 1000:>6.1f}s {count['wrong']:>5} {count['error']:>5} "
          f"{count['interrupted']:>5} {erred:>12} {res['api_retries']:>11} "
          f"{res['exec_replays']:>12} {res['pod_restarts']:>8}")
print(f"false failures in all {n} runs: {totals['wrong']} wrong verdicts (fail or flapping cells), "
      f"{totals['error']} error cells, {totals['interrupted']} interrupted cells, "
      f"{len(bad_exits)} runs exiting non-zero"
      + (f" ({'; '.join(bad_exits)})" if bad_exits else ""))
sys.exit(1 if bad_exits or any(totals.values()) else 0)
PY
