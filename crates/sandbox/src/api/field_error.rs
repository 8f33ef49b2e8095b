//! The API server's field errors (`Required value`, `Invalid value: "v": detail`, ...), worded
//! as kube-apiserver words them.

use netassay_core::policy::validate::{FieldError, FieldErrorKind};

pub(super) fn error(
    path: &str,
    kind: FieldErrorKind,
    value: Option<String>,
    message: String,
) -> FieldError {
    FieldError {
        path: path.to_string(),
        kind,
        detail: String::new(),
        value,
        message,
    }
}

pub(crate) fn required(path: &str, detail: &str) -> FieldError {
    let mut message = "Required value".to_string();
    if !detail.is_empty() {
        message = format!("{message}: {detail}");
    }
    let mut e = error(path, FieldErrorKind::Required, None, message);
    e.detail = detail.to_string();
    e
}

/// `Invalid value: "v": detail` (Go's %q quoting equals Rust's Debug for these ASCII values).
pub(super) fn invalid_str(path: &str, value: &str, detail: &str) -> FieldError {
    let mut e = error(
        path,
        FieldErrorKind::Invalid,
        Some(value.to_string()),
        format!("Invalid value: {value:?}: {detail}"),
    );
    e.detail = detail.to_string();
    e
}

pub(super) fn invalid_int(path: &str, value: i64, detail: &str) -> FieldError {
    let mut e = error(
        path,
        FieldErrorKind::Invalid,
        Some(value.to_string()),
        format!("Invalid value: {value}: {detail}"),
    );
    e.detail = detail.to_string();
    e
}

pub(super) fn not_supported(path: &str, value: &str, supported: &[&str]) -> FieldError {
    let list: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
    error(
        path,
        FieldErrorKind::NotSupported,
        Some(value.to_string()),
        format!(
            "Unsupported value: {value:?}: supported values: {}",
            list.join(", ")
        ),
    )
}

pub(super) fn forbidden(path: &str, detail: &str) -> FieldError {
    let mut e = error(
        path,
        FieldErrorKind::Forbidden,
        None,
        format!("Forbidden: {detail}"),
    );
    e.detail = detail.to_string();
    e
}
