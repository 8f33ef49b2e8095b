//! The scenario loader: any text either loads or is refused with load errors; a scenario that
//! loads plans (or fails its walk with an error), and the oracle explains its cells.
//!
//! The check is `check` in tests/fuzz_checks/scenario_loader.rs, shared with
//! tests/fuzz_regressions.rs, which replays the committed corpus through it on stable.
#![no_main]

#[path = "../../tests/fuzz_checks/scenario_loader.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    checks::check(data);
});
