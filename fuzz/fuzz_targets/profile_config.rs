//! The profile-config loader: any text either parses into a profile or is refused with load
//! errors; a profile that parses binds the built-in scenarios that need one (or refuses them),
//! and one of the bound scenarios (chosen by the input's length, planning them all is slow)
//! plans without panicking.
//!
//! The check is `check` in tests/fuzz_checks/profile_config.rs, shared with
//! tests/fuzz_regressions.rs, which replays the committed corpus through it on stable.
#![no_main]

#[path = "../../tests/fuzz_checks/profile_config.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    checks::check(data);
});
