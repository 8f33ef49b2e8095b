#!/usr/bin/env bash
# Regenerates reports/example/: a real sandbox run (root, Linux) with a CNI bug switched on, so
# the sample shows passing and failing scenarios side by side. CI runs it into a scratch folder
# so the script, and the reports it shows, cannot go stale: each run must exit 1 with exactly the
# scenarios named below failing, and its results.json must equal the committed one
# (.ci/compare-cells --verdicts: every cell's status and expected verdict, every scenario's, step's
# and K8TRE statement's verdict; not times, ids or attempts). Run into reports/example itself, it
# compares with the set it replaces, so the differences it prints are what the commit changes.
# Usage: scripts/regenerate-example-reports.sh [OUT_DIR] [PATH/TO/netassay]
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-reports/example}
bin=${2:-target/release/netassay}
[ -x "$bin" ] || { cargo build --release --locked && bin=target/release/netassay; }
# The scenarios each run must fail (its injected bug's targets), and no other.
failed_main=allow-ingress-on-one-named-port
failed_k8tre=k8tre-outbound-blocked
# The committed results, kept aside before OUT (which may be reports/example) is replaced.
committed=$(mktemp -d)
trap 'rm -rf "$committed"' EXIT
mkdir -p "$committed/k8tre"
for f in results.json k8tre/results.json; do
  cp "reports/example/$f" "$committed/$f" || { echo "no committed reports/example/$f to compare with" >&2; exit 1; }
done
rm -rf "$out"
mkdir -p "$out/k8tre"
# ignore-named-ports: the named-port scenarios fail, the others pass.
"$bin" run --sandbox --sandbox-fault ignore-named-ports --profile core,extended --exact \
  default-deny-ingress allow-ingress-on-one-named-port policy-based-on-ports-udp \
  --converge-timeout 3s --report-dir "$out" --implementation "netassay-sandbox (ignore-named-ports)" \
  > "$out/run.txt" 2>&1
rc=$?
# Exit 1 is the expected verdict (a mismatch); anything else means the example is broken.
if [ "$rc" -ne 1 ]; then
  echo "expected the example run to find the injected bug (exit 1), got $rc:" >&2
  tail -30 "$out/run.txt" >&2
  exit 1
fi
# The K8TRE profile on the sandbox's TRE preset with one real configuration mistake (a separate
# ports-only egress rule that opens 443 to anywhere): the sign-off table shows the outbound and
# workspace-isolation statements failing and the others passing.
"$bin" run --sandbox --sandbox-preset k8tre --sandbox-fault k8tre-ports-only-egress \
  --profile k8tre --exact k8tre-outbound-blocked k8tre-project-isolation \
  k8tre-external-access-via-gateway k8tre-dns \
  --converge-timeout 3s --report-dir "$out/k8tre" \
  --implementation "netassay-sandbox k8tre preset (k8tre-ports-only-egress)" \
  > "$out/k8tre/run.txt" 2>&1
rc=$?
if [ "$rc" -ne 1 ]; then
  echo "expected the k8tre example run to find the injected mistake (exit 1), got $rc:" >&2
  tail -30 "$out/k8tre/run.txt" >&2
  exit 1
fi
for f in junit.xml results.json report.html conformance.yaml run.txt \
  k8tre/junit.xml k8tre/results.json k8tre/report.html k8tre/conformance.yaml k8tre/run.txt; do
  [ -s "$out/$f" ] || { echo "missing $out/$f" >&2; exit 1; }
done
status=0
echo "== $out/results.json against the committed reports/example/results.json"
.ci/compare-cells --verdicts --failed "$failed_main" "$committed/results.json" "$out/results.json" \
  || status=1
echo "== $out/k8tre/results.json against the committed reports/example/k8tre/results.json"
.ci/compare-cells --verdicts --failed "$failed_k8tre" "$committed/k8tre/results.json" \
  "$out/k8tre/results.json" || status=1
if [ "$status" -ne 0 ]; then
  echo "wrote $out, but it differs from the committed example (above): if the change is meant," \
    "regenerate reports/example and commit it" >&2
  exit 1
fi
echo "wrote $out: the same cells and verdicts as the committed example"
