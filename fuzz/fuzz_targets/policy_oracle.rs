//! The NetworkPolicy validator and the oracle: a set of policies built from arbitrary bytes is
//! validated as the API server does it; the valid ones must compile into an oracle over a small
//! fixed topology, and for every cell `explain` must agree with the fast path (`allows`/`cell`).
//!
//! Input: JSON (a policy or a list of policies, as the seeds from scenarios/ are), or any other
//! bytes, read with `arbitrary` into a policy set over a vocabulary that matches the topology.
//!
//! The check is `check` in tests/fuzz_checks/policy_oracle.rs, shared with
//! tests/fuzz_regressions.rs, which replays the committed corpus through it on stable.
#![no_main]

#[path = "../../tests/fuzz_checks/policy_oracle.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    checks::check(data);
});
