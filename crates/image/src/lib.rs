//! netassay's image without a registry or a container engine.
//!
//! The repository's `Dockerfile` stays the users' build. On a machine with neither a registry
//! nor an engine (CI, the reference cluster's kubelet node), `scripts/image/build.sh` builds the
//! static binary itself and this crate turns the Dockerfile's final stage into the same image:
//!
//! - [`dockerfile`]: reads the final stage (base, USER, ENV, ENTRYPOINT, CMD, LABEL, WORKDIR,
//!   COPY/ADD), with build arguments;
//! - [`base`]: the base images it can render (`scratch`, and our rendition of distroless static
//!   nonroot: passwd/group with 65532, CA certificates, a writable /tmp);
//! - [`assemble`]: the layers and the config, merged as Docker merges them;
//! - [`oci`]: the OCI image layout archive that `ctr images import` (and podman, skopeo) read,
//!   written deterministically, and read back with every digest checked;
//! - [`tar`]: the ustar writer and reader under both.

pub mod assemble;
pub mod base;
pub mod dockerfile;
pub mod oci;
pub mod tar;
