//! Kubernetes `field.Error` equivalents, field paths (`field.Path.String()`) and their message format.

use super::go_text::go_quote;

/// Kubernetes field.ErrorType equivalents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldErrorKind {
    Required,
    Invalid,
    NotSupported,
    Forbidden,
    TooLong,
    TooMany,
    Duplicate,
}

impl FieldErrorKind {
    /// The `metav1.CauseType` string the API server puts in a Status cause's `reason`.
    pub fn cause_type(&self) -> &'static str {
        match self {
            FieldErrorKind::Required => "FieldValueRequired",
            FieldErrorKind::Invalid => "FieldValueInvalid",
            FieldErrorKind::NotSupported => "FieldValueNotSupported",
            FieldErrorKind::Forbidden => "FieldValueForbidden",
            FieldErrorKind::TooLong => "FieldValueTooLong",
            FieldErrorKind::TooMany => "FieldValueTooMany",
            FieldErrorKind::Duplicate => "FieldValueDuplicate",
        }
    }

    /// The human text that starts a message (field.ErrorType.String()).
    pub(crate) fn text(self) -> &'static str {
        match self {
            FieldErrorKind::Required => "Required value",
            FieldErrorKind::Invalid => "Invalid value",
            FieldErrorKind::NotSupported => "Unsupported value",
            FieldErrorKind::Forbidden => "Forbidden",
            FieldErrorKind::TooLong => "Too long",
            FieldErrorKind::TooMany => "Too many",
            FieldErrorKind::Duplicate => "Duplicate value",
        }
    }
}

/// One validation problem, like a Kubernetes `field.Error`.
///
/// `value` is the offending value as plain text (strings verbatim, numbers in decimal, lists as
/// JSON); it is `None` where Kubernetes does not show one (Required, Forbidden, TooLong).
/// `message` is the full human text without the path, as the API server writes it (Go's
/// `ErrorBody()`), e.g. `Invalid value: 70000: must be between 1 and 65535, inclusive`; the
/// `Display` form `{path}: {message}` equals Go's `Error()`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct FieldError {
    pub path: String,
    pub kind: FieldErrorKind,
    pub value: Option<String>,
    pub detail: String,
    pub message: String,
}

impl FieldError {
    /// `rendered` is the value as Go's ErrorBody prints it; `None` prints no value.
    pub(crate) fn new(
        path: String,
        kind: FieldErrorKind,
        value: Option<String>,
        rendered: Option<String>,
        detail: &str,
    ) -> Self {
        let mut message = kind.text().to_string();
        if let Some(r) = rendered {
            message.push_str(": ");
            message.push_str(&r);
        }
        if !detail.is_empty() {
            message.push_str(": ");
            message.push_str(detail);
        }
        FieldError {
            path,
            kind,
            value,
            detail: detail.to_string(),
            message,
        }
    }

    pub(crate) fn required(path: String, detail: &str) -> Self {
        Self::new(path, FieldErrorKind::Required, None, None, detail)
    }

    pub(crate) fn forbidden(path: String, detail: &str) -> Self {
        Self::new(path, FieldErrorKind::Forbidden, None, None, detail)
    }

    pub(crate) fn invalid_str(path: String, value: &str, detail: &str) -> Self {
        Self::new(
            path,
            FieldErrorKind::Invalid,
            Some(value.to_string()),
            Some(go_quote(value)),
            detail,
        )
    }

    pub(crate) fn invalid_int(path: String, value: i64, detail: &str) -> Self {
        Self::new(
            path,
            FieldErrorKind::Invalid,
            Some(value.to_string()),
            Some(value.to_string()),
            detail,
        )
    }

    /// An Invalid error whose value Go prints with `%#v` (slices, structs).
    pub(crate) fn invalid_go(
        path: String,
        plain: String,
        go_rendered: String,
        detail: &str,
    ) -> Self {
        Self::new(
            path,
            FieldErrorKind::Invalid,
            Some(plain),
            Some(go_rendered),
            detail,
        )
    }

    pub(crate) fn not_supported(path: String, value: &str, supported: &[&str]) -> Self {
        let quoted: Vec<String> = supported.iter().map(|s| go_quote(s)).collect();
        let detail = format!("supported values: {}", quoted.join(", "));
        Self::new(
            path,
            FieldErrorKind::NotSupported,
            Some(value.to_string()),
            Some(go_quote(value)),
            &detail,
        )
    }

    pub(crate) fn too_long(path: String, max_bytes: usize) -> Self {
        let detail = format!("may not be more than {max_bytes} bytes");
        Self::new(path, FieldErrorKind::TooLong, None, None, &detail)
    }
}

pub(crate) fn child(base: &str, name: &str) -> String {
    if base.is_empty() {
        name.to_string()
    } else {
        format!("{base}.{name}")
    }
}

pub(crate) fn index(base: &str, i: usize) -> String {
    format!("{base}[{i}]")
}
