# syntax=docker/dockerfile:1
# The one netassay image (DESIGN §2): the in-cluster runner (manifests/) and the probe pods'
# agent, which netassay starts as `netassay agent serve ...` and execs as `netassay agent probe`,
# so the binary must be on PATH as `netassay`. A static musl binary on distroless, non-root.
#
#   docker build -t registry.example.org/netassay/netassay:0.1.0 .
#   podman build -t registry.example.org/netassay/netassay:0.1.0 .
#   buildah build -t registry.example.org/netassay/netassay:0.1.0 .
#
# See docs/deploying.md for pushing it to a private registry (air-gapped clusters).

ARG RUST_IMAGE=rust:1-bookworm
# distroless rather than scratch: the agent writes its ready file under /tmp, which scratch
# lacks; distroless also brings CA certificates, /etc/passwd with user 65532 and tzdata.
ARG BASE_IMAGE=gcr.io/distroless/static-debian12:nonroot

FROM ${RUST_IMAGE} AS build
# Native builds: amd64 -> x86_64-unknown-linux-musl, arm64 -> aarch64-unknown-linux-musl
# (musl-tools provides musl-gcc for the build machine's own architecture; ring compiles C).
ARG TARGETARCH=amd64
RUN set -eux; \
    case "${TARGETARCH}" in \
      amd64) echo x86_64-unknown-linux-musl > /rust-target ;; \
      arm64) echo aarch64-unknown-linux-musl > /rust-target ;; \
      *) echo "unsupported architecture ${TARGETARCH}" >&2; exit 1 ;; \
    esac; \
    rustup target add "$(cat /rust-target)"; \
    apt-get update; \
    apt-get install -y --no-install-recommends musl-tools; \
    rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Cache mounts keep the registry and target/ between builds (BuildKit, podman and buildah).
# Stripped (the release profile keeps line tables: 118 MB -> 20 MB). The final image has no
# libc: the build refuses a binary that needs shared libraries.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    set -eux; \
    target="$(cat /rust-target)"; \
    cargo build --release --locked --target "${target}"; \
    install -D -s -m 0755 "target/${target}/release/netassay" /out/netassay; \
    if readelf -d /out/netassay | grep -q NEEDED; then \
      echo "netassay is not statically linked" >&2; exit 1; \
    fi; \
    /out/netassay --version

FROM ${BASE_IMAGE}
COPY --from=build /out/netassay /usr/local/bin/netassay
# Probe pods name the command `netassay`; the runtime resolves it through PATH.
ENV PATH=/usr/local/bin:/usr/bin:/bin
# distroless "nonroot"; the probe pods and manifests/ run as 65532 as well (Pod Security restricted).
USER 65532:65532
ENTRYPOINT ["netassay"]
CMD ["--help"]
LABEL org.opencontainers.image.title="netassay" \
      org.opencontainers.image.description="Active NetworkPolicy conformance testing for Kubernetes" \
      org.opencontainers.image.licenses="Apache-2.0"
