//! The checks of the cargo-fuzz targets in fuzz/, shared: each target's body is a function here
//! that `fuzz/fuzz_targets/<target>.rs` calls (it includes the file with `#[path]`) and that
//! `tests/fuzz_regressions.rs` calls on every committed corpus file, so the replay on stable
//! runs exactly what the fuzzer runs: the same entry points, topology and assertions.
//!
//! Each check returns whether the input got past every refusal, so that the target's invariants
//! were checked on it (`true`), or was refused on the way (`false`: not UTF-8, a load or parse
//! error, nothing valid to check). The fuzz targets ignore it; the replay uses it to show that
//! the corpus exercises the checks, not only their early returns.

pub mod emulator_request;
pub mod policy_oracle;
pub mod probe_batch;
pub mod profile_config;
pub mod scenario_loader;
