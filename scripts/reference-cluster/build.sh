#!/usr/bin/env bash
# Builds the reference cluster's upstream components from the Go module proxy
# into a cache folder that git ignores (default: target/reference-cluster/bin
# at the repository root; override with NETASSAY_SANDBOX_BIN_DIR or $1).
#
# Idempotent: when the pinned module files and this script are unchanged and
# every binary is present, it returns at once. A cold build takes ~15 minutes
# on 2 cores; Go's build cache makes a rebuild after a pin change quicker.
#
# Nothing prebuilt is downloaded: `go build` fetches module sources only.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${1:-${NETASSAY_SANDBOX_BIN_DIR:-$root/target/reference-cluster/bin}}"
mkdir -p "$out"

kube_version=v1.37.2          # k8s.io/kubernetes, and v0.37.2 for its staging modules
knp_version=v0.8.0            # sigs.k8s.io/kube-network-policies
kube_router_version=v2.1.0    # github.com/cloudnativelabs/kube-router/v2
cilium_version=v1.20.2        # github.com/cilium/cilium

stamp_input() {
  cat "$here/build.sh" "$here/go.mod" "$here/go.sum" "$here/etcd/main.go"
  for m in kube-network-policies kube-router cilium; do
    if [ -f "$here/$m/go.mod" ]; then cat "$here/$m/go.mod" "$here/$m/go.sum"; fi
  done
}
want="$(stamp_input | sha256sum | cut -d' ' -f1)"
bins=(etcd kube-apiserver kube-controller-manager kube-proxy kubectl kubelet)
[ -f "$here/kube-network-policies/go.mod" ] && bins+=(kube-network-policies)
[ -f "$here/kube-router/go.mod" ] && bins+=(kube-router)
[ -f "$here/cilium/go.mod" ] && bins+=(cilium-agent cilium-cni cilium-dbg hubble cilium-bpf/Makefile cilium-crds/v2)
all_present=1
for b in "${bins[@]}"; do [ -e "$out/$b" ] || all_present=0; done
if [ "$all_present" = 1 ] && [ "$(cat "$out/.stamp" 2>/dev/null)" = "$want" ]; then
  echo "reference cluster: up to date in $out"
  exit 0
fi

command -v go >/dev/null 2>&1 || { echo "reference cluster: needs Go (1.26+) on PATH" >&2; exit 1; }
export GOFLAGS="-mod=readonly -trimpath"
export CGO_ENABLED=0

ver=${kube_version#v}
major=${ver%%.*}; minor=${ver#*.}; minor=${minor%%.*}
kube_ldflags="-s -w \
 -X k8s.io/component-base/version.gitVersion=$kube_version \
 -X k8s.io/component-base/version.gitMajor=$major \
 -X k8s.io/component-base/version.gitMinor=$minor \
 -X k8s.io/component-base/version.gitTreeState=clean \
 -X k8s.io/client-go/pkg/version.gitVersion=$kube_version \
 -X k8s.io/client-go/pkg/version.gitMajor=$major \
 -X k8s.io/client-go/pkg/version.gitMinor=$minor"

build() { # name, dir, package, ldflags
  local name=$1 dir=$2 pkg=$3 ldflags=$4 t0
  t0=$(date +%s)
  echo "reference cluster: building $name ($pkg)"
  (cd "$dir" && go build -ldflags "$ldflags" -o "$out/$name.tmp" "$pkg")
  mv -f "$out/$name.tmp" "$out/$name"
  echo "reference cluster: built $name in $(( $(date +%s) - t0 ))s"
}

build etcd "$here" ./etcd "-s -w"
build kube-apiserver "$here" k8s.io/kubernetes/cmd/kube-apiserver "$kube_ldflags"
build kube-controller-manager "$here" k8s.io/kubernetes/cmd/kube-controller-manager "$kube_ldflags"
build kube-proxy "$here" k8s.io/kubernetes/cmd/kube-proxy "$kube_ldflags"
build kubectl "$here" k8s.io/kubernetes/cmd/kubectl "$kube_ldflags"
# The real node of --sandbox-node kubelet (containerd and runc come from Debian);
# ~16 min with an empty Go build cache on 2 busy cores, seconds when cached.
build kubelet "$here" k8s.io/kubernetes/cmd/kubelet "$kube_ldflags"
if [ -f "$here/kube-network-policies/go.mod" ]; then
  build kube-network-policies "$here/kube-network-policies" \
    sigs.k8s.io/kube-network-policies/cmd "-s -w"
fi
if [ -f "$here/kube-router/go.mod" ]; then
  # Its Makefile's version stamp; without it kube-router logs "version , built on ,".
  build kube-router "$here/kube-router" github.com/cloudnativelabs/kube-router/v2/cmd/kube-router \
    "-s -w -X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=$kube_router_version"
fi
if [ -f "$here/cilium/go.mod" ]; then
  cilium_ldflags="-s -w -X 'github.com/cilium/cilium/pkg/version.ciliumVersion=${cilium_version#v} netassay-sandbox'"
  build cilium-agent "$here/cilium" github.com/cilium/cilium/daemon "$cilium_ldflags"
  build cilium-cni "$here/cilium" github.com/cilium/cilium/plugins/cilium-cni "$cilium_ldflags"
  build cilium-dbg "$here/cilium" github.com/cilium/cilium/cilium-dbg "$cilium_ldflags"
  build hubble "$here/cilium" github.com/cilium/cilium/hubble "$cilium_ldflags"
  # The agent compiles its datapath from these sources at run time (each sandbox copies them
  # into its own lib folder, where the agent writes its probed feature headers), and the
  # sandbox applies Cilium's CRDs from the module, as the operator would.
  src="$(cd "$here/cilium" && go list -m -f '{{.Dir}}' github.com/cilium/cilium)"
  rm -rf "$out/cilium-bpf" "$out/cilium-crds"
  cp -r "$src/bpf" "$out/cilium-bpf"
  mkdir -p "$out/cilium-crds"
  for v in v2 v2alpha1; do
    mkdir -p "$out/cilium-crds/$v"
    cp "$src/pkg/k8s/apis/cilium.io/client/crds/$v"/*.yaml "$out/cilium-crds/$v/"
  done
  chmod -R u+w "$out/cilium-bpf" "$out/cilium-crds"
fi
echo "$want" > "$out/.stamp"
echo "reference cluster: Kubernetes $kube_version, etcd $(grep 'go.etcd.io/etcd/server/v3 ' "$here/go.mod" | awk '{print $2}') in $out: ${bins[*]}"
