#!/usr/bin/env bash
# The CNI × control plane × proxy matrix (README "Third-party CNIs"): runs core, extended and
# k8tre (on the sandbox's TRE preset), or the cilium profile, once per row, writes each row's report set under
# reports/reference/<cni>/<row>/, checks third-party rows against their deviation list
# (reports/reference/<cni>/deviations.yaml), runs each third-party CNI's negative control
# (enforcer-stopped: its default-deny scenarios must fail), and writes the table to
# reports/reference/matrix.md. Root, Linux; the reference cluster built
# (scripts/reference-cluster/build.sh). Takes ~30 minutes on 2 cores.
# Usage: scripts/cni-matrix.sh [PATH/TO/netassay] [ROW...]   (rows: see below; default all)
set -uo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/netassay}
shift || true
[ -x "$bin" ] || { cargo build --release --locked && bin=target/release/netassay; }
out=reports/reference
mkdir -p "$out"
# row name | cni | control plane | proxy (cilium: Cilium's kube-proxy replacement) | profile
# (tre: core, extended and k8tre on the TRE preset; cilium: the cilium profile's CNPs and CCNPs,
# no preset)
rows_all=(
  "netassay-emulator|netassay|emulator|netassay|tre"
  "netassay-kubernetes|netassay|kubernetes|netassay|tre"
  "netassay-kubernetes-kube-proxy|netassay|kubernetes|kube-proxy|tre"
  "kube-router-kubernetes|kube-router|kubernetes|netassay|tre"
  "kube-router-kubernetes-kube-proxy|kube-router|kubernetes|kube-proxy|tre"
  "cilium-kubernetes|cilium|kubernetes|netassay|tre"
  "cilium-kubernetes-kube-proxy|cilium|kubernetes|kube-proxy|tre"
  "cilium-kubernetes-cilium-kpr|cilium|kubernetes|cilium|tre"
  "bridge-emulator|bridge|emulator|netassay|tre"
  "netassay-emulator-cilium-profile|netassay|emulator|netassay|cilium"
  "cilium-kubernetes-cilium-profile|cilium|kubernetes|netassay|cilium"
)
want=("$@")
status=0
for row in "${rows_all[@]}"; do
  IFS='|' read -r name cni cp proxy profile <<<"$row"
  if [ ${#want[@]} -gt 0 ] && [[ ! " ${want[*]} " == *" $name "* ]]; then continue; fi
  dir="$out/$cni/$name"
  rm -rf "$dir"; mkdir -p "$dir"
  start=$(date +%s)
  # Nothing converges without an enforcer: the bridge row waits 5 s, not 30, for each step.
  extra=(); [ "$cni" = bridge ] && extra=(--converge-timeout 5s)
  # Cilium applies label changes after a random delay of up to 35 s by design (see its
  # deviation list): its rows wait 45 s.
  [ "$cni" = cilium ] && extra=(--converge-timeout 45s)
  # The emulator plays Cilium for the cilium profile (--sandbox-cilium-api auto).
  scope=(--sandbox-preset k8tre --profile core,extended,k8tre)
  [ "$profile" = cilium ] && scope=(--profile cilium)
  "$bin" run --sandbox --sandbox-control-plane "$cp" --sandbox-cni "$cni" --sandbox-proxy "$proxy" \
    "${scope[@]}" --report-dir "$dir" "${extra[@]}" \
    --implementation "$cni (sandbox node, $cp control plane, $proxy proxy)" > "$dir/run.txt" 2>&1
  rc=$?
  echo "$rc $(( $(date +%s) - start ))" > "$dir/exit-and-seconds"
  echo "row $name: exit $rc in $(( $(date +%s) - start ))s"
  if [ "$cni" = bridge ]; then
    # No enforcer at all: the row shows what a CNI that ignores NetworkPolicy scores.
    [ "$rc" -eq 1 ] || { echo "row $name: a CNI without an enforcer must fail (exit $rc)" >&2; status=1; }
  elif [ "$cni" != netassay ]; then
    subset=(); [ "$profile" = cilium ] && subset=(--profiles-subset)
    .ci/check-deviations "${subset[@]}" "$dir/results.json" "$out/$cni/deviations.yaml" || status=1
  elif [ "$rc" -ne 0 ]; then
    echo "row $name: netassay's own dataplane must pass (exit $rc)" >&2; status=1
  fi
  # Every probe attempt makes results.json ~40 MB (and a failing row's JUnit a megabyte): kept
  # gzipped (git holds the third-party rows).
  gzip -9 -f "$dir/results.json" "$dir/report.html" "$dir/junit.xml"
done
# Negative controls: the third-party enforcer enforces nothing from before any policy exists.
# Cilium's agent attaches every pod, so it cannot be stopped: its enforcement is turned off.
for control in kube-router:enforcer-stopped cilium:enforcement-off; do
  cni=${control%%:*}; fault=${control#*:}
  if [ ${#want[@]} -gt 0 ] && [[ ! " ${want[*]} " == *" $cni-negative-control "* ]]; then continue; fi
  dir="$out/$cni/negative-control"
  rm -rf "$dir"; mkdir -p "$dir"
  "$bin" run --sandbox --sandbox-control-plane kubernetes --sandbox-cni "$cni" \
    --sandbox-fault "$fault" --profile core --exact default-deny-ingress default-deny-all \
    default-deny-ingress-udp --converge-timeout 5s --report-dir "$dir" > "$dir/run.txt" 2>&1
  rc=$?
  echo "$rc" > "$dir/exit"
  if [ "$rc" -ne 1 ]; then
    echo "negative control $cni: expected exit 1 (default-deny scenarios fail), got $rc" >&2; status=1
  else
    echo "negative control $cni: exit 1 as it must"
  fi
  gzip -9 -f "$dir/results.json" "$dir/report.html"
done
.ci/cni-matrix-table "$out" > "$out/matrix.md"
cat "$out/matrix.md"
exit $status
