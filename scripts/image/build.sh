#!/usr/bin/env bash
# netassay's image and Kubernetes' pause image, built here without a registry or a container
# engine, as OCI archives that `ctr images import` reads (podman and skopeo too).
#
#   scripts/image/build.sh                 build both into target/image/ (NETASSAY_IMAGE_DIR)
#   scripts/image/build.sh import SOCKET   build, then import both into the containerd listening
#                                          on SOCKET, namespace k8s.io (the kubelet's)
#
# netassay: the release binary, static (glibc with crt-static: the musl target cannot be
# installed here, rustup has no network), stripped and refused if it needs any shared library,
# as the Dockerfile does; then the Dockerfile's own final stage (user, entrypoint, cmd, PATH,
# labels, the COPY) written by netassay-image (crates/image) over its rendition of the
# distroless static nonroot base. Tagged netassay.local/netassay:<version of Cargo.toml>.
#
# pause: build/pause/linux/pause.c of the pinned k8s.io/kubernetes module (the same pin as
# scripts/reference-cluster), compiled static with Debian's gcc and the flags of upstream's
# Makefile, then upstream's own build/pause/Dockerfile (FROM scratch, USER 65535:65535,
# ENTRYPOINT ["/pause"]). Tagged registry.k8s.io/pause:<TAG of that Makefile>, which is what
# kubeadm v1.37 pins; the kubelet itself names no sandbox image any more, so the containerd that
# runs it must be configured with that name (its own default, in 1.6.20, is pause:3.6).
#
# Cached: cargo decides whether the binary is fresh; an archive is rewritten only when a stamp
# of its inputs (binary, Dockerfile, CA bundle, writer, this script) changes. Temporary files
# live in one folder under the output folder and are removed on exit.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${NETASSAY_IMAGE_DIR:-$root/target/image}"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
kube_version=v1.37.2   # k8s.io/kubernetes, as scripts/reference-cluster/build.sh pins it
triple="$(rustc -vV | sed -n 's/^host: //p')"

say() { echo "image: $*"; }
die() { echo "image: $*" >&2; exit 1; }

mode="${1:-build}"
case "$mode" in
  build) ;;
  import) [ $# -eq 2 ] || die "usage: $0 import SOCKET" ;;
  *) die "usage: $0 [build | import SOCKET]" ;;
esac

for tool in readelf gcc strip sha256sum; do
  command -v "$tool" >/dev/null 2>&1 || die "needs $tool (Debian: binutils, gcc)"
done
ca_bundle=/etc/ssl/certs/ca-certificates.crt
[ -s "$ca_bundle" ] || die "needs the CA certificates at $ca_bundle (Debian: ca-certificates)"

mkdir -p "$out"
work="$(mktemp -d "$out/.work.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# Exits non-zero when $1 needs a shared library (the images have no libc to load).
refuse_dynamic() {
  if readelf -d "$1" | grep NEEDED >/dev/null; then
    readelf -d "$1" | grep NEEDED >&2
    die "$1 is not statically linked"
  fi
}

stamp_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

# An archive is fresh when its stamp (a hash of its inputs) is the one written beside it.
fresh() { [ -s "$1" ] && [ "$(cat "$1.stamp" 2>/dev/null)" = "$2" ]; }

# ---- the writer ----------------------------------------------------------------------------
t0=$(date +%s)
say "building the archive writer (cargo build -p netassay-image)"
(cd "$root" && cargo build --locked --quiet -p netassay-image --bin netassay-image)
writer="$target_dir/debug/netassay-image"

# ---- netassay --------------------------------------------------------------------------------
version="$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' "$root/Cargo.toml")"
[ -n "$version" ] || die "no version in Cargo.toml's [workspace.package]"
netassay_ref="netassay.local/netassay:$version"
# NETASSAY_IMAGE_PROFILE: the cargo profile (default release, as the Dockerfile builds; CI
# uses image-ci, the release build with light optimisation, Cargo.toml says why).
profile="${NETASSAY_IMAGE_PROFILE:-release}"
case "$profile" in *[!a-z0-9-]*|"") die "NETASSAY_IMAGE_PROFILE '$profile': a cargo profile name" ;; esac
say "building the static $profile binary (cargo build --profile $profile --target $triple, crt-static)"
t1=$(date +%s)
# --target keeps build scripts and proc macros dynamic; only the product links statically.
(cd "$root" && env -u CARGO_ENCODED_RUSTFLAGS RUSTFLAGS="-C target-feature=+crt-static" \
  cargo build --profile "$profile" --locked --quiet --target "$triple" -p netassay --bin netassay)
say "$profile build: $(( $(date +%s) - t1 ))s"
profile_dir="$profile"; [ "$profile" = dev ] && profile_dir=debug
built="$target_dir/$triple/$profile_dir/netassay"
# The Dockerfile's build stage output: /out/netassay, stripped, 0755.
install -D -s -m 0755 "$built" "$work/netassay-stage/out/netassay"
refuse_dynamic "$work/netassay-stage/out/netassay"
got="$("$work/netassay-stage/out/netassay" --version)"
[ "$got" = "netassay $version" ] || die "the binary says '$got', Cargo.toml says $version"

netassay_archive="$out/netassay.oci.tar"
want="$(stamp_of "$work/netassay-stage/out/netassay" "$root/Dockerfile" "$ca_bundle" "$writer" "$0" \
  <(echo "$netassay_ref"))"
if fresh "$netassay_archive" "$want"; then
  say "$netassay_archive: up to date ($netassay_ref)"
else
  say "writing $netassay_archive from the Dockerfile's final stage"
  "$writer" build --dockerfile "$root/Dockerfile" --stage "build=$work/netassay-stage" \
    --ca-bundle "$ca_bundle" --tag "$netassay_ref" --out "$netassay_archive"
  echo "$want" > "$netassay_archive.stamp"
fi

# ---- pause -----------------------------------------------------------------------------------
command -v go >/dev/null 2>&1 || die "needs Go on PATH, for the k8s.io/kubernetes module's source"
# Outside any module (the work folder): the download changes no go.mod or go.sum.
kube_dir="$(cd "$work" && go mod download -json "k8s.io/kubernetes@$kube_version" \
  | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
pause_src="$kube_dir/build/pause"
[ -f "$pause_src/linux/pause.c" ] && [ -f "$pause_src/Dockerfile" ] && [ -f "$pause_src/Makefile" ] \
  || die "k8s.io/kubernetes@$kube_version has no build/pause/{linux/pause.c,Dockerfile,Makefile} in $kube_dir"
pause_tag="$(sed -n 's/^TAG ?= //p' "$pause_src/Makefile")"
[ -n "$pause_tag" ] || die "no TAG in $pause_src/Makefile"
pause_ref="registry.k8s.io/pause:$pause_tag"
case "$(uname -m)" in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; *) arch="$(uname -m)" ;; esac
# Upstream's CFLAGS; its REV is `git describe` of the kubernetes tree, here the module's version.
pause_cflags="-Os -Wall -Werror -static -DVERSION=v$pause_tag-$kube_version"
mkdir -p "$work/pause-context/bin"
pause_bin="$work/pause-context/bin/pause-linux-$arch"
say "compiling $pause_src/linux/pause.c (gcc $pause_cflags)"
# shellcheck disable=SC2086 # the flags are words
gcc $pause_cflags -o "$pause_bin" "$pause_src/linux/pause.c"
strip "$pause_bin"
refuse_dynamic "$pause_bin"
"$pause_bin" -v

pause_archive="$out/pause.oci.tar"
want="$(stamp_of "$pause_bin" "$pause_src/Dockerfile" "$writer" "$0" <(echo "$pause_ref"))"
if fresh "$pause_archive" "$want"; then
  say "$pause_archive: up to date ($pause_ref)"
else
  say "writing $pause_archive from upstream's build/pause/Dockerfile"
  "$writer" build --dockerfile "$pause_src/Dockerfile" --context "$work/pause-context" \
    --build-arg BASE=scratch --build-arg "ARCH=$arch" --tag "$pause_ref" --out "$pause_archive"
  echo "$want" > "$pause_archive.stamp"
fi

# What was built, for whoever imports it: REFERENCE<TAB>ARCHIVE.
printf '%s\t%s\n' "$netassay_ref" "$netassay_archive" "$pause_ref" "$pause_archive" > "$out/images.tsv"
say "done in $(( $(date +%s) - t0 ))s: $netassay_ref, $pause_ref (listed in $out/images.tsv)"

# ---- import ----------------------------------------------------------------------------------
if [ "$mode" = import ]; then
  socket="$2"
  [ -S "$socket" ] || die "$socket is not a socket (is containerd running there?)"
  command -v ctr >/dev/null 2>&1 || die "needs ctr (Debian: containerd)"
  for archive in "$netassay_archive" "$pause_archive"; do
    say "importing $archive into $socket (namespace k8s.io)"
    ctr -a "$socket" -n k8s.io images import "$archive"
  done
  ctr -a "$socket" -n k8s.io images ls -q | grep -Fx -e "$netassay_ref" -e "$pause_ref" \
    | sed 's/^/image: in containerd: /'
fi
