#!/usr/bin/env bash
# Runs the images of scripts/image/build.sh under a real containerd + runc, privately: its own
# config, root, state, socket and runc root in one temporary folder, its containers in their own
# cgroup parent and network namespace. Root only (containerd, runc, network namespaces).
#
#   scripts/image/smoke.sh
#
# It checks what a probe pod needs and a Dockerfile build would give: the archives import into
# namespace k8s.io under their names; `netassay --version` runs through the ENTRYPOINT and PATH;
# `agent serve` runs as 65532:65532 and writes its ready file under /tmp; `agent probe` (static
# glibc) reaches it over TCP and resolves names through hickory, both with an explicit server and
# through /etc/resolv.conf; names in a kubeconfig go through glibc's getaddrinfo (the kube
# client), /etc/hosts and DNS; `/pause -v` runs as 65535.
#
# Everything it made is removed on exit, by exact name: the containers and tasks, the
# containerd process (by pid), mounts under its folder, its cgroups, the network namespace, the
# folder, and /run/containerd/s and /run/containerd if it created them (containerd 1.6's shims
# put their sockets in /run/containerd/s whatever the config says).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${NETASSAY_IMAGE_DIR:-$root/target/image}"

say() { echo "image smoke: $*"; }
die() { echo "image smoke: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (containerd, runc, network namespaces)"
for tool in containerd ctr runc ip; do
  command -v "$tool" >/dev/null 2>&1 || die "needs $tool (Debian: containerd runc iproute2)"
done

tmp="$(mktemp -d /tmp/netassay-image-smoke.XXXXXX)"
tag="${tmp##*.}"
sock="$tmp/containerd.sock"
cgroup_parent="netassay-image-smoke-$tag"
netns="na-imgsmoke-$tag"
ns=k8s.io
containerd_pid=""
counter_pid=""
run_existed=0; [ -d /run/containerd ] && run_existed=1
sockets_existed=0; [ -d /run/containerd/s ] && sockets_existed=1

ctr_() { ctr -a "$sock" -n "$ns" "$@"; }

cleanup() {
  local rc=$?
  set +e
  [ -n "$counter_pid" ] && kill "$counter_pid" 2>/dev/null
  if [ -n "$containerd_pid" ] && kill -0 "$containerd_pid" 2>/dev/null; then
    for id in $(ctr_ tasks ls -q 2>/dev/null); do
      ctr_ tasks kill -s SIGKILL "$id" >/dev/null 2>&1
      ctr_ tasks delete -f "$id" >/dev/null 2>&1
    done
    for id in $(ctr_ containers ls -q 2>/dev/null); do ctr_ containers delete "$id" >/dev/null 2>&1; done
    kill "$containerd_pid"
    for _ in $(seq 50); do kill -0 "$containerd_pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$containerd_pid" 2>/dev/null && kill -9 "$containerd_pid"
    wait "$containerd_pid" 2>/dev/null
  fi
  # A shim outlives containerd by design; ours are those started with our socket's address.
  for proc in /proc/[0-9]*; do
    if { tr '\0' ' ' < "$proc/cmdline"; } 2>/dev/null | grep -F -- "-address $sock " >/dev/null; then
      echo "image smoke: stopping a leftover shim, pid ${proc#/proc/}" >&2
      kill "${proc#/proc/}"
    fi
  done
  # Mounts under the folder (snapshots, task roots), deepest first.
  awk -v t="$tmp/" 'index($5, t) == 1 {print $5}' /proc/self/mountinfo | sort -r | while read -r m; do
    umount "$m" || umount -l "$m"
  done
  for hierarchy in /sys/fs/cgroup /sys/fs/cgroup/*; do
    local dir="$hierarchy/$cgroup_parent"
    [ -d "$dir" ] || continue
    find "$dir" -depth -mindepth 1 -type d -exec rmdir {} + 2>/dev/null
    rmdir "$dir" || echo "image smoke: could not remove $dir" >&2
  done
  [ -e "/run/netns/$netns" ] && ip netns delete "$netns"
  rm -rf "$tmp"
  [ "$sockets_existed" = 0 ] && [ -d /run/containerd/s ] && rmdir /run/containerd/s 2>/dev/null
  [ "$run_existed" = 0 ] && [ -d /run/containerd ] && rmdir /run/containerd 2>/dev/null
  [ "$rc" = 0 ] && say "cleaned up" || echo "image smoke: FAILED (containerd log was $tmp/containerd.log, now removed)" >&2
  exit "$rc"
}
trap cleanup EXIT

"$here/build.sh"
netassay_ref="$(awk -F'\t' '$2 ~ /netassay.oci.tar$/ {print $1}' "$out/images.tsv")"
pause_ref="$(awk -F'\t' '$2 ~ /pause.oci.tar$/ {print $1}' "$out/images.tsv")"

mkdir -p "$tmp/root" "$tmp/state" "$tmp/opt" "$tmp/runc" "$tmp/fifo"
cat > "$tmp/config.toml" <<EOF
version = 2
root = "$tmp/root"
state = "$tmp/state"
# The CRI plugin is the kubelet node's business; this check needs images, tasks and runc only.
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "$sock"
[ttrpc]
  address = "$sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$tmp/opt"
EOF
say "starting a private containerd ($(containerd --version | awk '{print $3}')) in $tmp"
containerd --config "$tmp/config.toml" > "$tmp/containerd.log" 2>&1 &
containerd_pid=$!
for _ in $(seq 100); do ctr -a "$sock" version >/dev/null 2>&1 && break; sleep 0.1; done
ctr -a "$sock" version >/dev/null 2>&1 || { cat "$tmp/containerd.log" >&2; die "containerd did not start"; }

"$here/build.sh" import "$sock"
ctr_ images ls
listed="$(ctr_ images ls -q)"
grep -Fx "$netassay_ref" <<<"$listed" >/dev/null || die "$netassay_ref is not in containerd"
grep -Fx "$pause_ref" <<<"$listed" >/dev/null || die "$pause_ref is not in containerd"

ip netns add "$netns"
ip -n "$netns" link set lo up
# What the kubelet mounts into a pod: its own hosts and resolv.conf (nameserver: the DNS below).
printf '127.0.0.1\tlocalhost\n127.0.0.1\tapi.hosts.test\n' > "$tmp/hosts"
printf 'nameserver 127.0.0.1\nsearch cluster.test\noptions ndots:1\n' > "$tmp/resolv.conf"
printf 'web.x.svc.cluster.local 127.0.0.1\napi.dns.test 127.0.0.1\n' > "$tmp/zone"
run() { # NAME IMAGE [ctr run flags...] -- ARGS...
  local name=$1 image=$2; shift 2
  local flags=()
  while [ "$1" != -- ]; do flags+=("$1"); shift; done
  shift
  timeout -k 5 120 ctr -a "$sock" -n "$ns" run --cgroup "/$cgroup_parent/$name" --runc-root "$tmp/runc" --fifo-dir "$tmp/fifo" \
    --with-ns "network:/run/netns/$netns" \
    --mount "type=bind,src=$tmp/hosts,dst=/etc/hosts,options=rbind:ro" \
    --mount "type=bind,src=$tmp/resolv.conf,dst=/etc/resolv.conf,options=rbind:ro" \
    "${flags[@]}" "$image" "$name" "$@"
}

# ctr run with arguments replaces the image's whole command line (ENTRYPOINT included), as a
# pod's `command:` does; without arguments it runs ENTRYPOINT + CMD, as a pod without one does.
say "the image's ENTRYPOINT and CMD: netassay --help"
help="$(run default "$netassay_ref" --rm --)"
echo "$help" | head -3
grep -q "^Usage: netassay" <<<"$help" || die "the image's default command did not print netassay's usage"
say "netassay --version, found through the image's PATH"
v="$(run version "$netassay_ref" --rm -- netassay --version)"
echo "$v"
[ "$v" = "netassay ${netassay_ref##*:}" ] || die "expected netassay ${netassay_ref##*:}"

say "/pause -v"
run pause-version "$pause_ref" --rm -- /pause -v

say "the cluster DNS (netassay agent dns, the image) and a probe pod's agent (agent serve)"
mkdir -p "$tmp/dns"
cp "$tmp/zone" "$tmp/dns/zone"
chmod -R a+rX "$tmp/dns"
# Port 53 as 65532: the namespaced sysctl a pod under Pod Security "restricted" may set.
ip netns exec "$netns" sysctl -q -w net.ipv4.ip_unprivileged_port_start=0
run dns "$netassay_ref" -d --mount "type=bind,src=$tmp/dns,dst=/zone,options=rbind:ro" -- \
  netassay agent dns --listen 127.0.0.1:53 --zone /zone/zone --identity kube-system/coredns \
  --ready-file /tmp/ready >/dev/null
run agent "$netassay_ref" -d -- netassay agent serve --identity x/a --listen tcp:8080,udp:8080 \
  --address 127.0.0.1 --ready-file /tmp/ready >/dev/null
agent_pid=""
for _ in $(seq 100); do
  agent_pid="$(ctr_ tasks ls | awk '$1 == "agent" {print $2}')"
  [ -n "$agent_pid" ] && [ -s "/proc/$agent_pid/root/tmp/ready" ] && break
  sleep 0.1
done
[ -n "$agent_pid" ] && [ -s "/proc/$agent_pid/root/tmp/ready" ] \
  || { ctr_ tasks ls >&2; die "agent serve wrote no ready file under /tmp"; }
ids="$(awk '/^Uid:/ {u=$2} /^Gid:/ {g=$2} END {print u ":" g}' "/proc/$agent_pid/status")"
say "agent serve runs as $ids; its ready file: $(cat "/proc/$agent_pid/root/tmp/ready")"
[ "$ids" = "65532:65532" ] || die "agent serve runs as $ids, not 65532:65532"
dns_pid="$(ctr_ tasks ls | awk '$1 == "dns" {print $2}')"
for _ in $(seq 100); do [ -s "/proc/$dns_pid/root/tmp/ready" ] && break; sleep 0.1; done

say "agent probe (static glibc): TCP by address and by name, DNS with a server and through resolv.conf"
batch='{"schema":"netassay.probe/v1","timeout_ms":2000,"probes":[
 {"id":"tcp-ip","kind":"tcp","target":"127.0.0.1:8080","expect_identity":"x/a"},
 {"id":"udp-ip","kind":"udp","target":"127.0.0.1:8080","expect_identity":"x/a"},
 {"id":"tcp-hosts","kind":"tcp","target":"api.hosts.test:8080","expect_identity":"x/a"},
 {"id":"tcp-dns","kind":"tcp","target":"web.x.svc.cluster.local:8080","expect_identity":"x/a"},
 {"id":"dns-server","kind":"dns","target":"web.x.svc.cluster.local","server":"127.0.0.1:53","expect_addresses":["127.0.0.1"]},
 {"id":"dns-resolv-conf","kind":"dns","target":"web.x.svc.cluster.local","expect_addresses":["127.0.0.1"]},
 {"id":"dns-nxdomain","kind":"dns","target":"nothere.x.svc.cluster.local"}]}'
# One line, ended by a newline: ctr does not close the task's stdin when its own ends.
results="$({ tr -d '\n' <<<"$batch"; echo; } | run probe "$netassay_ref" --rm -- netassay agent probe)"
echo "$results"
python3 - "$results" <<'PY'
import json, sys
lines = [json.loads(l) for l in sys.argv[1].splitlines() if l.strip()]
got = {l["id"]: l["outcome"] for l in lines if "id" in l}
want = {"tcp-ip": "connected", "udp-ip": "connected", "tcp-hosts": "connected",
        "tcp-dns": "connected", "dns-server": "connected", "dns-resolv-conf": "connected",
        "dns-nxdomain": "dns-failed"}
bad = {k: (got.get(k), v) for k, v in want.items() if got.get(k) != v}
sys.exit(f"probe outcomes (got, want): {bad}" if bad else 0)
PY

# The kube client resolves a kubeconfig's server with glibc's getaddrinfo (hyper's resolver), not
# hickory: in a static glibc binary, without any libnss_*.so in the image. Each name points at
# its own port of a listener that counts the connections it accepts: a name resolved is a
# connection to its port (the TLS handshake then fails: nothing there speaks TLS). The third
# name resolves nowhere: the control that a port without connections means "not resolved".
say "glibc's getaddrinfo in the static binary: /etc/hosts, DNS, and a name that resolves nowhere"
ip netns exec "$netns" python3 -c '
import socket, sys, threading
def serve(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port)); s.listen(16)
    while True:
        c, _ = s.accept(); c.close()
        with open(sys.argv[1], "a") as f: f.write(f"{port}\n")
for p in (6443, 6444, 6445): threading.Thread(target=serve, args=(p,), daemon=True).start()
open(sys.argv[2], "w").close()
threading.Event().wait()
' "$tmp/accepted" "$tmp/counter-ready" &
counter_pid=$!
for _ in $(seq 50); do [ -e "$tmp/counter-ready" ] && break; sleep 0.1; done
: >> "$tmp/accepted"
gai_pids=()
for case in api.hosts.test:6443 api.dns.test:6444 api.nowhere.test:6445; do
  host=${case%:*}
  cat > "$tmp/dns/kubeconfig-$host" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://$case", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
EOF
  chmod a+r "$tmp/dns/kubeconfig-$host"
  run "gai-$host" "$netassay_ref" --rm --mount "type=bind,src=$tmp/dns,dst=/zone,options=rbind:ro" -- \
    netassay cleanup --all-expired --kubeconfig "/zone/kubeconfig-$host" > "$tmp/gai-$host.log" 2>&1 &
  gai_pids+=($!)
done
for pid in "${gai_pids[@]}"; do wait "$pid" || true; done
kill "$counter_pid"; wait "$counter_pid" 2>/dev/null || true
for case in api.hosts.test:6443 api.dns.test:6444 api.nowhere.test:6445; do
  host=${case%:*} port=${case#*:}
  n="$(grep -cx "$port" "$tmp/accepted" || true)"
  say "$host: $n connections to port $port (then: $(tail -1 "$tmp/gai-$host.log"))"
  if [ "$host" = api.nowhere.test ]; then
    [ "$n" = 0 ] || die "$host reached port $port: the check cannot tell resolved from not"
  else
    [ "$n" -gt 0 ] || die "$host did not resolve through getaddrinfo in the image"
  fi
done

say "stopping the agent with SIGTERM (it must exit 0)"
ctr_ tasks kill -s SIGTERM agent
for _ in $(seq 100); do
  st="$(ctr_ tasks ls | awk '$1 == "agent" {print $3}')"
  [ "$st" = STOPPED ] && break
  sleep 0.1
done
code=0
ctr_ tasks delete agent || code=$?
[ "$code" = 0 ] || die "agent serve exited $code after SIGTERM"
say "agent serve exited 0"
ctr_ containers delete agent
ctr_ tasks kill -s SIGTERM dns
for _ in $(seq 100); do [ "$(ctr_ tasks ls | awk '$1 == "dns" {print $3}')" = STOPPED ] && break; sleep 0.1; done
ctr_ tasks delete dns >/dev/null
ctr_ containers delete dns
say "passed"
