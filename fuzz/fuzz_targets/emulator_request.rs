//! The emulator's request decoding: the request target (path, query, selectors), the body by
//! its Content-Type (JSON, YAML, Kubernetes protobuf, the PATCH flavours, DeleteOptions) and the
//! admission of the decoded object, on a fresh store. Any request is answered, never a panic.
//!
//! Input: `METHOD TARGET\nCONTENT-TYPE\nBODY`, the body being any bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netassay_sandbox::api::decode_request;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |&b| b == b'\n');
    let (Some(request_line), Some(content_type)) = (parts.next(), parts.next()) else {
        return;
    };
    let body = parts.next().unwrap_or(&[]);
    let (Ok(request_line), Ok(content_type)) = (
        std::str::from_utf8(request_line),
        std::str::from_utf8(content_type),
    ) else {
        return;
    };
    let Some((method, target)) = request_line.split_once(' ') else {
        return;
    };
    if let Ok(status) = decode_request(method, target, content_type, body) {
        assert!((200..300).contains(&status), "success with status {status}");
    }
});
