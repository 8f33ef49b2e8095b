//! The emulator's request decoding: the request target (path, query, selectors), the body by
//! its Content-Type (JSON, YAML, Kubernetes protobuf, the PATCH flavours, DeleteOptions) and the
//! admission of the decoded object, on a fresh store. Any request is answered, never a panic.
//!
//! Input: `METHOD TARGET\nCONTENT-TYPE\nBODY`, the body being any bytes.
//!
//! The check is `check` in tests/fuzz_checks/emulator_request.rs, shared with
//! tests/fuzz_regressions.rs, which replays the committed corpus through it on stable.
#![no_main]

#[path = "../../tests/fuzz_checks/emulator_request.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    checks::check(data);
});
