//! The `emulator_request` fuzz target's check (shared with tests/fuzz_regressions.rs; see
//! tests/fuzz_checks/mod.rs): the emulator's request decoding (the request target's path, query
//! and selectors, the body by its Content-Type: JSON, YAML, Kubernetes protobuf, the PATCH
//! flavours, DeleteOptions) and the admission of the decoded object, on a fresh store. Any
//! request is answered, never a panic; an accepted one with a 2xx status.
//!
//! Input: `METHOD TARGET\nCONTENT-TYPE\nBODY`, the body being any bytes.

use netassay_sandbox::api::decode_request;

/// Checks one input; `true` when the request was decoded and admitted (its status checked).
pub fn check(data: &[u8]) -> bool {
    let mut parts = data.splitn(3, |&b| b == b'\n');
    let (Some(request_line), Some(content_type)) = (parts.next(), parts.next()) else {
        return false;
    };
    let body = parts.next().unwrap_or(&[]);
    let (Ok(request_line), Ok(content_type)) = (
        std::str::from_utf8(request_line),
        std::str::from_utf8(content_type),
    ) else {
        return false;
    };
    let Some((method, target)) = request_line.split_once(' ') else {
        return false;
    };
    match decode_request(method, target, content_type, body) {
        Ok(status) => {
            assert!((200..300).contains(&status), "success with status {status}");
            true
        }
        Err(_) => false,
    }
}
