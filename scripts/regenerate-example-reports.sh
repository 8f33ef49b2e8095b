#!/usr/bin/env bash
# Regenerates reports/example/: a real sandbox run (root, Linux) with a CNI bug switched on, so
# the sample shows passing and failing scenarios side by side. CI runs it into a scratch folder
# so the script, and the reports it shows, cannot go stale.
# Usage: scripts/regenerate-example-reports.sh [OUT_DIR] [PATH/TO/netassay]
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-reports/example}
bin=${2:-target/release/netassay}
[ -x "$bin" ] || { cargo build --release --locked && bin=target/release/netassay; }
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
echo "wrote $out"
