//! NetworkPolicy v1 validation equal to the Kubernetes 1.33 API server's, with its field paths and messages.
//
// What is mirrored (Kubernetes 1.33, default feature gates, create path):
// - `pkg/apis/networking/validation`: ValidateNetworkPolicy, ValidateNetworkPolicySpec,
//   ValidateNetworkPolicyPort, ValidateNetworkPolicyPeer, ValidateIPBlock (non-strict CIDR
//   parsing: StrictIPCIDRValidation is alpha and off in 1.33).
// - `apimachinery/pkg/api/validation`: ValidateObjectMetaAccessor (generateName, name,
//   namespace, generation, labels, annotations, ownerReferences, finalizers) and core's extra
//   finalizer-name check. managedFields are not checked (the server's field manager owns them).
// - `apimachinery/pkg/apis/meta/v1/validation`: ValidateLabelSelector, ValidateLabels.
// - `apimachinery/pkg/util/validation`: IsDNS1123Label/Subdomain, IsQualifiedName,
//   IsValidLabelValue, IsValidPortName, IsValidPortNum, and field.Error's message format.
// - `k8s.io/utils/net.ParseCIDRSloppy` (the forked Go 1.16 parser: leading zeros allowed).
//
// Like upstream ValidateObjectMeta, `validate_network_policy` expects create-time preparation to
// have happened already (name generated from generateName, namespace taken from the request).

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta, OwnerReference,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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
    fn text(self) -> &'static str {
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
    fn new(
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

    fn required(path: String, detail: &str) -> Self {
        Self::new(path, FieldErrorKind::Required, None, None, detail)
    }

    fn forbidden(path: String, detail: &str) -> Self {
        Self::new(path, FieldErrorKind::Forbidden, None, None, detail)
    }

    fn invalid_str(path: String, value: &str, detail: &str) -> Self {
        Self::new(
            path,
            FieldErrorKind::Invalid,
            Some(value.to_string()),
            Some(go_quote(value)),
            detail,
        )
    }

    fn invalid_int(path: String, value: i64, detail: &str) -> Self {
        Self::new(
            path,
            FieldErrorKind::Invalid,
            Some(value.to_string()),
            Some(value.to_string()),
            detail,
        )
    }

    /// An Invalid error whose value Go prints with `%#v` (slices, structs).
    fn invalid_go(path: String, plain: String, go_rendered: String, detail: &str) -> Self {
        Self::new(
            path,
            FieldErrorKind::Invalid,
            Some(plain),
            Some(go_rendered),
            detail,
        )
    }

    fn not_supported(path: String, value: &str, supported: &[&str]) -> Self {
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

    fn too_long(path: String, max_bytes: usize) -> Self {
        let detail = format!("may not be more than {max_bytes} bytes");
        Self::new(path, FieldErrorKind::TooLong, None, None, &detail)
    }
}

// ---------------------------------------------------------------------------------------------
// Field paths (field.Path.String()).

fn child(base: &str, name: &str) -> String {
    if base.is_empty() {
        name.to_string()
    } else {
        format!("{base}.{name}")
    }
}

fn index(base: &str, i: usize) -> String {
    format!("{base}[{i}]")
}

// ---------------------------------------------------------------------------------------------
// Go value rendering.

/// Go's `strconv.Quote` (what `%q` and `%#v` print for strings). Printability follows Go's
/// `unicode.IsPrint` closely but not exactly (Rust has no general-category table in std).
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if go_is_print(c) => out.push(c),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// Approximates Go's `unicode.IsPrint`: letters, marks, numbers, punctuation, symbols and the
/// ASCII space; not controls, other spaces, format characters or private-use characters.
fn go_is_print(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    let u = c as u32;
    let format_or_private = matches!(
        u,
        0xAD | 0x600..=0x605
            | 0x61C
            | 0x6DD
            | 0x70F
            | 0x180E
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0xE000..=0xF8FF
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0xF0000..
    );
    !format_or_private
}

/// Go's `%#v` of a string slice, e.g. `[]string{"a", "b"}`.
fn go_string_slice(type_name: &str, items: &[String]) -> String {
    let inner: Vec<String> = items.iter().map(|s| go_quote(s)).collect();
    format!("[]{type_name}{{{}}}", inner.join(", "))
}

fn json_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Name checks (apimachinery/pkg/util/validation).

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_LABEL_ERR: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const DNS1123_LABEL_MAX: usize = 63;
const DNS1123_SUBDOMAIN_FMT: &str =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_ERR: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_MAX: usize = 253;
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_ERR: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const QUALIFIED_NAME_MAX: usize = 63;
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_ERR: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_MAX: usize = 63;
const PORT_NAME_MAX: usize = 15;
const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;
const STANDARD_FINALIZERS: [&str; 3] = ["kubernetes", "orphan", "foregroundDeletion"];

fn max_len_error(n: usize) -> String {
    format!("must be no more than {n} characters")
}

const EMPTY_ERROR: &str = "must be non-empty";

/// validation.RegexError, including its `'x',  or 'y'` spacing.
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    if examples.is_empty() {
        return format!("{msg} (regex used for validation is '{fmt}')");
    }
    let mut out = format!("{msg} (e.g. ");
    for (i, e) in examples.iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        out.push('\'');
        out.push_str(e);
        out.push_str("', ");
    }
    out.push_str("regex used for validation is '");
    out.push_str(fmt);
    out.push_str("')");
    out
}

fn port_range_error() -> String {
    "must be between 1 and 65535, inclusive".to_string()
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`
fn matches_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    match (b.first(), b.last()) {
        (Some(&f), Some(&l)) => alnum(f) && alnum(l) && b.iter().all(|&c| alnum(c) || c == b'-'),
        _ => false,
    }
}

/// `label(\.label)*`
fn matches_dns1123_subdomain(s: &str) -> bool {
    s.split('.').all(matches_dns1123_label)
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`
fn matches_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(&f), Some(&l)) => {
            f.is_ascii_alphanumeric()
                && l.is_ascii_alphanumeric()
                && b.iter()
                    .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// IsDNS1123Subdomain: at most 253 characters of lowercase alphanumerics, `-` and `.`, each
/// dot-separated part starting and ending with an alphanumeric.
pub fn is_dns1123_subdomain(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > DNS1123_SUBDOMAIN_MAX {
        errs.push(max_len_error(DNS1123_SUBDOMAIN_MAX));
    }
    if !matches_dns1123_subdomain(s) {
        errs.push(regex_error(
            DNS1123_SUBDOMAIN_ERR,
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errs
}

/// IsDNS1123Label: at most 63 characters of lowercase alphanumerics and `-`, starting and ending
/// with an alphanumeric.
pub fn is_dns1123_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > DNS1123_LABEL_MAX {
        errs.push(max_len_error(DNS1123_LABEL_MAX));
    }
    if !matches_dns1123_label(s) {
        if matches_dns1123_subdomain(s) {
            errs.push("must not contain dots".to_string());
        } else {
            errs.push(regex_error(
                DNS1123_LABEL_ERR,
                DNS1123_LABEL_FMT,
                &["my-name", "123-abc"],
            ));
        }
    }
    errs
}

/// IsQualifiedName (label keys, annotation keys, finalizers): `[prefix/]name`, the prefix a
/// DNS-1123 subdomain, the name at most 63 characters of `[-A-Za-z0-9_.]` with alphanumeric ends.
pub fn is_qualified_name(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = s.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push(format!("prefix part {EMPTY_ERROR}"));
            } else {
                for m in is_dns1123_subdomain(prefix) {
                    errs.push(format!("prefix part {m}"));
                }
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(QUALIFIED_NAME_ERR, QUALIFIED_NAME_FMT, &["MyName", "my.name", "123-abc"])
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push(format!("name part {EMPTY_ERROR}"));
    } else if name.len() > QUALIFIED_NAME_MAX {
        errs.push(format!("name part {}", max_len_error(QUALIFIED_NAME_MAX)));
    }
    if !matches_qualified_name_part(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_ERR,
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errs
}

/// IsValidLabelValue: empty, or at most 63 characters of `[-A-Za-z0-9_.]` with alphanumeric ends.
pub fn is_valid_label_value(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > LABEL_VALUE_MAX {
        errs.push(max_len_error(LABEL_VALUE_MAX));
    }
    if !s.is_empty() && !matches_qualified_name_part(s) {
        errs.push(regex_error(
            LABEL_VALUE_ERR,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

/// IsValidPortName (IANA_SVC_NAME): at most 15 characters of `[-a-z0-9]`, at least one letter,
/// no leading, trailing or doubled hyphen.
pub fn is_valid_port_name(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let b = s.as_bytes();
    if b.len() > PORT_NAME_MAX {
        errs.push(max_len_error(PORT_NAME_MAX));
    }
    let charset_ok = !b.is_empty()
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-');
    if !charset_ok {
        errs.push(
            "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".to_string(),
        );
    }
    if !b.iter().any(u8::is_ascii_lowercase) {
        errs.push("must contain at least one letter (a-z)".to_string());
    }
    if s.contains("--") {
        errs.push("must not contain consecutive hyphens".to_string());
    }
    if b.first() == Some(&b'-') || b.last() == Some(&b'-') {
        errs.push("must not begin or end with a hyphen".to_string());
    }
    errs
}

fn is_valid_port_num(port: i32) -> Vec<String> {
    if (1..=65535).contains(&port) {
        Vec::new()
    } else {
        vec![port_range_error()]
    }
}

/// apimachinery maskTrailingDash: for generateName, a trailing `-` is allowed (a suffix follows).
/// Upstream drops the last two bytes and appends `a`; kept byte-for-byte.
fn mask_trailing_dash(name: &str) -> String {
    if name.len() > 1 && name.ends_with('-') {
        let cut = name.len() - 2;
        match name.get(..cut) {
            Some(head) => format!("{head}a"),
            // The byte before the dash is inside a multi-byte character: the name is invalid
            // either way; keep it so the subdomain check reports it.
            None => name.to_string(),
        }
    } else {
        name.to_string()
    }
}

// ---------------------------------------------------------------------------------------------
// Label selectors and labels (apimachinery/pkg/apis/meta/v1/validation).

/// ValidateLabels: every key a qualified name, every value a valid label value. Errors carry
/// `path` itself (as upstream), in key order.
pub fn validate_labels(labels: &BTreeMap<String, String>, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (k, v) in labels {
        for m in is_qualified_name(k) {
            errs.push(FieldError::invalid_str(path.to_string(), k, &m));
        }
        for m in is_valid_label_value(v) {
            errs.push(FieldError::invalid_str(path.to_string(), v, &m));
        }
    }
    errs
}

/// ValidateLabelSelector (create: invalid label values in expressions are rejected).
pub fn validate_label_selector(sel: &LabelSelector, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(ml) = &sel.match_labels {
        errs.extend(validate_labels(ml, &child(path, "matchLabels")));
    }
    let exprs_path = child(path, "matchExpressions");
    for (i, expr) in sel.match_expressions.iter().flatten().enumerate() {
        errs.extend(validate_requirement(expr, &index(&exprs_path, i)));
    }
    errs
}

/// ValidateLabelSelectorRequirement.
fn validate_requirement(req: &LabelSelectorRequirement, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let values: &[String] = req.values.as_deref().unwrap_or(&[]);
    let values_path = child(path, "values");
    match req.operator.as_str() {
        "In" | "NotIn" => {
            if values.is_empty() {
                errs.push(FieldError::required(
                    values_path.clone(),
                    "must be specified when `operator` is 'In' or 'NotIn'",
                ));
            }
        }
        "Exists" | "DoesNotExist" => {
            if !values.is_empty() {
                errs.push(FieldError::forbidden(
                    values_path.clone(),
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                ));
            }
        }
        other => errs.push(FieldError::invalid_str(
            child(path, "operator"),
            other,
            "not a valid selector operator",
        )),
    }
    for m in is_qualified_name(&req.key) {
        errs.push(FieldError::invalid_str(child(path, "key"), &req.key, &m));
    }
    for (i, v) in values.iter().enumerate() {
        for m in is_valid_label_value(v) {
            errs.push(FieldError::invalid_str(index(&values_path, i), v, &m));
        }
    }
    errs
}

// ---------------------------------------------------------------------------------------------
// CIDRs (k8s.io/utils/net.ParseCIDRSloppy = Go 1.16 net.ParseCIDR).

const CIDR_ERR: &str = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)";
const GO_BIG: u32 = 0xFF_FFFF;

/// Go's `dtoi`: decimal digits (leading zeros allowed) → (value, bytes used, ok).
fn go_dtoi(s: &[u8]) -> (u32, usize, bool) {
    let mut n: u32 = 0;
    let mut i = 0;
    while i < s.len() && s[i].is_ascii_digit() {
        n = n * 10 + u32::from(s[i] - b'0');
        if n >= GO_BIG {
            return (GO_BIG, i, false);
        }
        i += 1;
    }
    (n, i, i > 0)
}

/// Go's `xtoi`: hex digits → (value, bytes used, ok).
fn go_xtoi(s: &[u8]) -> (u32, usize, bool) {
    let mut n: u32 = 0;
    let mut i = 0;
    while i < s.len() {
        let d = match s[i] {
            c @ b'0'..=b'9' => c - b'0',
            c @ b'a'..=b'f' => c - b'a' + 10,
            c @ b'A'..=b'F' => c - b'A' + 10,
            _ => break,
        };
        n = n * 16 + u32::from(d);
        if n >= GO_BIG {
            return (0, i, false);
        }
        i += 1;
    }
    (n, i, i > 0)
}

/// Dotted quad; octets may have leading zeros (read as decimal).
fn go_parse_ipv4(mut s: &[u8]) -> Option<[u8; 4]> {
    let mut p = [0u8; 4];
    for (i, slot) in p.iter_mut().enumerate() {
        if s.is_empty() {
            return None;
        }
        if i > 0 {
            if s[0] != b'.' {
                return None;
            }
            s = &s[1..];
        }
        let (n, c, ok) = go_dtoi(s);
        if !ok || n > 0xFF {
            return None;
        }
        s = &s[c..];
        *slot = u8::try_from(n).ok()?;
    }
    s.is_empty().then_some(p)
}

/// IPv6 literal with optional `::` and trailing dotted quad; no zone.
fn go_parse_ipv6(mut s: &[u8]) -> Option<[u8; 16]> {
    let mut ip = [0u8; 16];
    let mut ellipsis: Option<usize> = None;
    if s.len() >= 2 && s[0] == b':' && s[1] == b':' {
        ellipsis = Some(0);
        s = &s[2..];
        if s.is_empty() {
            return Some(ip);
        }
    }
    let mut i = 0usize;
    while i < 16 {
        let (n, c, ok) = go_xtoi(s);
        if !ok || n > 0xFFFF {
            return None;
        }
        if c < s.len() && s[c] == b'.' {
            if ellipsis.is_none() && i != 12 {
                return None;
            }
            if i + 4 > 16 {
                return None;
            }
            let v4 = go_parse_ipv4(s)?;
            ip[i..i + 4].copy_from_slice(&v4);
            s = &[];
            i += 4;
            break;
        }
        let [_, _, hi, lo] = n.to_be_bytes();
        ip[i] = hi;
        ip[i + 1] = lo;
        i += 2;
        s = &s[c..];
        if s.is_empty() {
            break;
        }
        if s[0] != b':' || s.len() == 1 {
            return None;
        }
        s = &s[1..];
        if s[0] == b':' {
            if ellipsis.is_some() {
                return None;
            }
            ellipsis = Some(i);
            s = &s[1..];
            if s.is_empty() {
                break;
            }
        }
    }
    if !s.is_empty() {
        return None;
    }
    if i < 16 {
        let e = ellipsis?;
        let n = 16 - i;
        ip.copy_within(e..i, e + n);
        ip[e..e + n].fill(0);
    } else if ellipsis.is_some() {
        return None;
    }
    Some(ip)
}

/// What the API server accepts as a CIDR (IPv4 and IPv6), as k8s.io/utils `ParseCIDRSloppy`:
/// leading zeros in IPv4 octets and in the prefix length are accepted, bits set beyond the prefix
/// are accepted (non-strict, the 1.33 default), IPv4-mapped IPv6 stays IPv6. The returned net is
/// masked. The error is the API server's detail text.
pub fn parse_cidr(s: &str) -> Result<IpNet, String> {
    let err = || CIDR_ERR.to_string();
    let (addr, mask) = s.split_once('/').ok_or_else(err)?;
    let (ip, bits) = match go_parse_ipv4(addr.as_bytes()) {
        Some(v4) => (IpAddr::V4(Ipv4Addr::from(v4)), 32),
        None => match go_parse_ipv6(addr.as_bytes()) {
            Some(v6) => (IpAddr::V6(Ipv6Addr::from(v6)), 128),
            None => return Err(err()),
        },
    };
    let (n, used, ok) = go_dtoi(mask.as_bytes());
    if !ok || used != mask.len() || n > bits {
        return Err(err());
    }
    let prefix = u8::try_from(n).map_err(|_| err())?;
    let net = match ip {
        IpAddr::V4(a) => Ipv4Net::new(a, prefix).map(IpNet::V4),
        IpAddr::V6(a) => Ipv6Net::new(a, prefix).map(IpNet::V6),
    }
    .map_err(|_| err())?;
    Ok(net.trunc())
}

fn go_to4(ip: IpAddr) -> Option<Ipv4Addr> {
    match ip {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(a) => a.to_ipv4_mapped(),
    }
}

/// Go's `(*net.IPNet).Contains` for a net from ParseCIDR: an IPv4-mapped IPv6 net and address
/// compare as IPv4; IPv4 never matches a (non-mapped) IPv6 net and vice versa.
fn go_contains(net: &IpNet, ip: IpAddr) -> bool {
    match net {
        IpNet::V4(n) => go_to4(ip).is_some_and(|a| n.contains(&a)),
        IpNet::V6(n) => match n.network().to_ipv4_mapped() {
            Some(net4) => {
                let plen = n.prefix_len().saturating_sub(96);
                Ipv4Net::new(net4, plen).is_ok_and(|n4| go_to4(ip).is_some_and(|a| n4.contains(&a)))
            }
            None => match ip {
                IpAddr::V6(a) if a.to_ipv4_mapped().is_none() => n.contains(&a),
                _ => false,
            },
        },
    }
}

// ---------------------------------------------------------------------------------------------
// NetworkPolicy (pkg/apis/networking/validation).

/// ValidateNetworkPolicy: metadata (ValidateObjectMeta with a DNS-1123 subdomain name and a
/// required namespace) then the spec. Every problem, in the API server's order.
pub fn validate_network_policy(np: &NetworkPolicy) -> Vec<FieldError> {
    let mut errs = validate_object_meta(&np.metadata, "metadata");
    let default_spec = NetworkPolicySpec::default();
    let spec = np.spec.as_ref().unwrap_or(&default_spec);
    errs.extend(validate_spec(spec, "spec"));
    errs
}

/// ValidateObjectMetaAccessor(requiresNamespace=true, NameIsDNSSubdomain) plus core's
/// per-finalizer check.
fn validate_object_meta(meta: &ObjectMeta, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let generate_name = meta.generate_name.as_deref().unwrap_or("");
    if !generate_name.is_empty() {
        for m in is_dns1123_subdomain(&mask_trailing_dash(generate_name)) {
            errs.push(FieldError::invalid_str(
                child(path, "generateName"),
                generate_name,
                &m,
            ));
        }
    }
    let name = meta.name.as_deref().unwrap_or("");
    if name.is_empty() {
        errs.push(FieldError::required(
            child(path, "name"),
            "name or generateName is required",
        ));
    } else {
        for m in is_dns1123_subdomain(name) {
            errs.push(FieldError::invalid_str(child(path, "name"), name, &m));
        }
    }
    let namespace = meta.namespace.as_deref().unwrap_or("");
    if namespace.is_empty() {
        errs.push(FieldError::required(child(path, "namespace"), ""));
    } else {
        for m in is_dns1123_label(namespace) {
            errs.push(FieldError::invalid_str(
                child(path, "namespace"),
                namespace,
                &m,
            ));
        }
    }
    if let Some(g) = meta.generation.filter(|g| *g < 0) {
        errs.push(FieldError::invalid_int(
            child(path, "generation"),
            g,
            "must be greater than or equal to 0",
        ));
    }
    if let Some(labels) = &meta.labels {
        errs.extend(validate_labels(labels, &child(path, "labels")));
    }
    if let Some(annotations) = &meta.annotations {
        errs.extend(validate_annotations(
            annotations,
            &child(path, "annotations"),
        ));
    }
    if let Some(refs) = &meta.owner_references {
        errs.extend(validate_owner_references(
            refs,
            &child(path, "ownerReferences"),
        ));
    }
    let finalizers: &[String] = meta.finalizers.as_deref().unwrap_or(&[]);
    errs.extend(validate_finalizers(finalizers, &child(path, "finalizers")));
    // core validateKubeFinalizerName, with indexed paths.
    for (i, f) in finalizers.iter().enumerate() {
        if !f.contains('/') && !STANDARD_FINALIZERS.contains(&f.as_str()) {
            errs.push(FieldError::invalid_str(
                index(&child(path, "finalizers"), i),
                f,
                "name is neither a standard finalizer name nor is it fully qualified",
            ));
        }
    }
    errs
}

/// ValidateAnnotations: keys are qualified names ignoring case; keys plus values ≤ 256 KiB.
fn validate_annotations(annotations: &BTreeMap<String, String>, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut total = 0usize;
    for (k, v) in annotations {
        for m in is_qualified_name(&k.to_lowercase()) {
            errs.push(FieldError::invalid_str(path.to_string(), k, &m));
        }
        total = total.saturating_add(k.len()).saturating_add(v.len());
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.push(FieldError::too_long(
            path.to_string(),
            TOTAL_ANNOTATION_SIZE_LIMIT,
        ));
    }
    errs
}

/// Go's `%#v` of a metav1.OwnerReference. Go prints set pointer fields as addresses; we print
/// the pointee instead (the only place our message text cannot equal the server's).
fn go_owner_reference(r: &OwnerReference) -> String {
    let ptr = |b: Option<bool>| match b {
        None => "(*bool)(nil)".to_string(),
        Some(v) => format!("(*bool)({v})"),
    };
    format!(
        "v1.OwnerReference{{APIVersion:{}, Kind:{}, Name:{}, UID:{}, Controller:{}, BlockOwnerDeletion:{}}}",
        go_quote(&r.api_version),
        go_quote(&r.kind),
        go_quote(&r.name),
        go_quote(&r.uid),
        ptr(r.controller),
        ptr(r.block_owner_deletion)
    )
}

fn owner_reference_json(r: &OwnerReference) -> String {
    serde_json::to_string(r).unwrap_or_default()
}

/// ValidateOwnerReferences (paths are not indexed upstream).
fn validate_owner_references(refs: &[OwnerReference], path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut first_controller: Option<String> = None;
    for r in refs {
        // schema.FromAPIVersionAndKind(ParseGroupVersion(apiVersion), kind)
        let (group, version) = match r.api_version.as_str() {
            "" | "/" => ("", ""),
            av => match av.matches('/').count() {
                0 => ("", av),
                1 => av.split_once('/').unwrap_or(("", "")),
                _ => ("", ""),
            },
        };
        if version.is_empty() {
            errs.push(FieldError::invalid_str(
                child(path, "apiVersion"),
                &r.api_version,
                "version must not be empty",
            ));
        }
        if r.kind.is_empty() {
            errs.push(FieldError::invalid_str(
                child(path, "kind"),
                &r.kind,
                "kind must not be empty",
            ));
        }
        if r.name.is_empty() {
            errs.push(FieldError::invalid_str(
                child(path, "name"),
                &r.name,
                "name must not be empty",
            ));
        }
        if r.uid.is_empty() {
            errs.push(FieldError::invalid_str(
                child(path, "uid"),
                &r.uid,
                "uid must not be empty",
            ));
        }
        if group.is_empty() && version == "v1" && r.kind == "Event" {
            errs.push(FieldError::invalid_go(
                path.to_string(),
                owner_reference_json(r),
                go_owner_reference(r),
                "/v1, Kind=Event is disallowed from being an owner",
            ));
        }
        if r.controller == Some(true) {
            let current = format!("{}/{}", r.kind, r.name);
            match &first_controller {
                Some(first) => {
                    let rendered: Vec<String> = refs.iter().map(go_owner_reference).collect();
                    let plain: Vec<String> = refs.iter().map(owner_reference_json).collect();
                    errs.push(FieldError::invalid_go(
                        path.to_string(),
                        format!("[{}]", plain.join(",")),
                        format!("[]v1.OwnerReference{{{}}}", rendered.join(", ")),
                        &format!("Only one reference can have Controller set to true. Found \"true\" in references for {first} and {current}"),
                    ));
                }
                None => first_controller = Some(current),
            }
        }
    }
    errs
}

/// ValidateFinalizers (apimachinery part; path not indexed upstream).
fn validate_finalizers(finalizers: &[String], path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for f in finalizers {
        for m in is_qualified_name(f) {
            errs.push(FieldError::invalid_str(path.to_string(), f, &m));
        }
    }
    let has = |n: &str| finalizers.iter().any(|f| f == n);
    if has("orphan") && has("foregroundDeletion") {
        errs.push(FieldError::invalid_go(
            path.to_string(),
            json_list(finalizers),
            go_string_slice("string", finalizers),
            "finalizer orphan and foregroundDeletion cannot be both set",
        ));
    }
    errs
}

/// ValidateNetworkPolicySpec.
fn validate_spec(spec: &NetworkPolicySpec, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(sel) = &spec.pod_selector {
        errs.extend(validate_label_selector(sel, &child(path, "podSelector")));
    }
    let ingress_path = child(path, "ingress");
    for (i, rule) in spec.ingress.iter().flatten().enumerate() {
        let rule_path = index(&ingress_path, i);
        errs.extend(validate_ports(rule.ports.as_deref(), &rule_path));
        errs.extend(validate_peers(
            rule.from.as_deref(),
            &child(&rule_path, "from"),
        ));
    }
    let egress_path = child(path, "egress");
    for (i, rule) in spec.egress.iter().flatten().enumerate() {
        let rule_path = index(&egress_path, i);
        errs.extend(validate_ports(rule.ports.as_deref(), &rule_path));
        errs.extend(validate_peers(rule.to.as_deref(), &child(&rule_path, "to")));
    }
    let types: &[String] = spec.policy_types.as_deref().unwrap_or(&[]);
    let types_path = child(path, "policyTypes");
    const ALLOWED: [&str; 2] = ["Ingress", "Egress"];
    if types.len() > ALLOWED.len() {
        errs.push(FieldError::invalid_go(
            types_path,
            json_list(types),
            go_string_slice("networking.PolicyType", types),
            "may not specify more than two policyTypes",
        ));
        return errs;
    }
    for (i, t) in types.iter().enumerate() {
        if !ALLOWED.contains(&t.as_str()) {
            errs.push(FieldError::not_supported(
                index(&types_path, i),
                t,
                &ALLOWED,
            ));
        }
    }
    errs
}

fn validate_ports(ports: Option<&[NetworkPolicyPort]>, rule_path: &str) -> Vec<FieldError> {
    let ports_path = child(rule_path, "ports");
    ports
        .unwrap_or(&[])
        .iter()
        .enumerate()
        .flat_map(|(i, p)| validate_port(p, &index(&ports_path, i)))
        .collect()
}

fn validate_peers(peers: Option<&[NetworkPolicyPeer]>, peers_path: &str) -> Vec<FieldError> {
    peers
        .unwrap_or(&[])
        .iter()
        .enumerate()
        .flat_map(|(i, p)| validate_peer(p, &index(peers_path, i)))
        .collect()
}

/// ValidateNetworkPolicyPort.
fn validate_port(port: &NetworkPolicyPort, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(proto) = &port.protocol {
        if !matches!(proto.as_str(), "TCP" | "UDP" | "SCTP") {
            errs.push(FieldError::not_supported(
                child(path, "protocol"),
                proto,
                &["TCP", "UDP", "SCTP"],
            ));
        }
    }
    let port_path = child(path, "port");
    let end_path = child(path, "endPort");
    match &port.port {
        Some(IntOrString::Int(p)) => {
            for m in is_valid_port_num(*p) {
                errs.push(FieldError::invalid_int(port_path.clone(), (*p).into(), &m));
            }
            if let Some(end) = port.end_port {
                if end < *p {
                    errs.push(FieldError::invalid_int(
                        end_path.clone(),
                        end.into(),
                        "must be greater than or equal to `port`",
                    ));
                }
                for m in is_valid_port_num(end) {
                    errs.push(FieldError::invalid_int(end_path.clone(), end.into(), &m));
                }
            }
        }
        Some(IntOrString::String(name)) => {
            if let Some(end) = port.end_port {
                errs.push(FieldError::invalid_int(
                    end_path,
                    end.into(),
                    "may not be specified when `port` is non-numeric",
                ));
            }
            for m in is_valid_port_name(name) {
                errs.push(FieldError::invalid_str(port_path.clone(), name, &m));
            }
        }
        None => {
            if let Some(end) = port.end_port {
                errs.push(FieldError::invalid_int(
                    end_path,
                    end.into(),
                    "may not be specified when `port` is not specified",
                ));
            }
        }
    }
    errs
}

/// ValidateNetworkPolicyPeer.
fn validate_peer(peer: &NetworkPolicyPeer, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut count = 0;
    if let Some(sel) = &peer.pod_selector {
        count += 1;
        errs.extend(validate_label_selector(sel, &child(path, "podSelector")));
    }
    if let Some(sel) = &peer.namespace_selector {
        count += 1;
        errs.extend(validate_label_selector(
            sel,
            &child(path, "namespaceSelector"),
        ));
    }
    if let Some(block) = &peer.ip_block {
        count += 1;
        errs.extend(validate_ip_block(block, &child(path, "ipBlock")));
    }
    if count == 0 {
        errs.push(FieldError::required(
            path.to_string(),
            "must specify a peer",
        ));
    } else if count > 1 && peer.ip_block.is_some() {
        errs.push(FieldError::forbidden(
            path.to_string(),
            "may not specify both ipBlock and another peer",
        ));
    }
    errs
}

/// ValidateIPBlock.
fn validate_ip_block(block: &IPBlock, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let cidr_path = child(path, "cidr");
    if block.cidr.is_empty() {
        errs.push(FieldError::required(cidr_path, ""));
        return errs;
    }
    let cidr = match parse_cidr(&block.cidr) {
        Ok(net) => net,
        Err(m) => {
            errs.push(FieldError::invalid_str(cidr_path, &block.cidr, &m));
            return errs;
        }
    };
    let except_path = child(path, "except");
    for (i, ex) in block.except.iter().flatten().enumerate() {
        let p = index(&except_path, i);
        match parse_cidr(ex) {
            Err(m) => errs.push(FieldError::invalid_str(p, ex, &m)),
            Ok(ex_net) => {
                if !go_contains(&cidr, ex_net.network()) || cidr.prefix_len() >= ex_net.prefix_len()
                {
                    errs.push(FieldError::invalid_str(
                        p,
                        ex,
                        "must be a strict subset of `cidr`",
                    ));
                }
            }
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::FieldErrorKind::*;
    use super::*;
    use serde_json::{json, Value};

    /// A policy in namespace `default` named `np` with the given spec.
    fn np(spec: Value) -> Value {
        json!({"metadata": {"name": "np", "namespace": "default"}, "spec": spec})
    }

    /// A policy with the given metadata and an empty spec.
    fn meta(metadata: Value) -> Value {
        json!({"metadata": metadata, "spec": {}})
    }

    fn validate_json(v: &Value) -> Vec<FieldError> {
        let policy: NetworkPolicy = serde_json::from_value(v.clone()).expect("policy JSON");
        validate_network_policy(&policy)
    }

    struct Row {
        /// What the row checks, and the upstream function it mirrors.
        what: &'static str,
        policy: Value,
        want: Vec<(&'static str, FieldErrorKind)>,
    }

    fn row(what: &'static str, policy: Value, want: &[(&'static str, FieldErrorKind)]) -> Row {
        Row {
            what,
            policy,
            want: want.to_vec(),
        }
    }

    fn run(rows: Vec<Row>) {
        let mut failures = Vec::new();
        for r in &rows {
            let got: Vec<(String, FieldErrorKind)> = validate_json(&r.policy)
                .into_iter()
                .map(|e| (e.path, e.kind))
                .collect();
            let want: Vec<(String, FieldErrorKind)> =
                r.want.iter().map(|(p, k)| (p.to_string(), *k)).collect();
            if got != want {
                failures.push(format!("{}:\n  want {want:?}\n  got  {got:?}", r.what));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn object_meta() {
        let long_name = "a".repeat(254);
        let big = "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT);
        run(vec![
            // ValidateObjectMetaAccessor + NameIsDNSSubdomain / ValidateNamespaceName: valid.
            row(
                "valid name, namespace, labels, annotations, finalizers",
                meta(json!({
                    "name": "allow-dns.v2", "namespace": "team-a",
                    "labels": {"app.kubernetes.io/name": "web", "tier": "", "x": "A_b.c-1"},
                    "annotations": {"Example.COM/Some-Key": "anything at all"},
                    "finalizers": ["kubernetes", "example.com/cleanup"],
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "d", "uid": "u1", "controller": true}]
                })),
                &[],
            ),
            // ValidateObjectMetaAccessor: name required.
            row(
                "missing name",
                meta(json!({"namespace": "default"})),
                &[("metadata.name", Required)],
            ),
            // NameIsDNSSubdomain: uppercase and underscore rejected.
            row(
                "name not a DNS-1123 subdomain",
                meta(json!({"name": "Bad_Name", "namespace": "default"})),
                &[("metadata.name", Invalid)],
            ),
            // IsDNS1123Subdomain: at most 253 characters.
            row(
                "name too long",
                meta(json!({"name": long_name, "namespace": "default"})),
                &[("metadata.name", Invalid)],
            ),
            // ValidateObjectMetaAccessor: namespace required for namespaced kinds.
            row(
                "missing namespace",
                meta(json!({"name": "np"})),
                &[("metadata.namespace", Required)],
            ),
            // ValidateNamespaceName = NameIsDNSLabel: no dots.
            row(
                "namespace with dots",
                meta(json!({"name": "np", "namespace": "a.b"})),
                &[("metadata.namespace", Invalid)],
            ),
            // ValidateObjectMetaAccessor: generateName checked with prefix=true (trailing dash ok),
            // name still required (generation happens before validation).
            row(
                "generateName with trailing dash, no name",
                meta(json!({"generateName": "web-", "namespace": "default"})),
                &[("metadata.name", Required)],
            ),
            row(
                "invalid generateName",
                meta(json!({"generateName": "Web-", "name": "web-1", "namespace": "default"})),
                &[("metadata.generateName", Invalid)],
            ),
            // ValidateLabels: key qualified name, value label value; errors on the map path.
            row(
                "bad label key and value",
                meta(json!({"name": "np", "namespace": "default",
                    "labels": {"-x": "ok", "good": "not ok", "a/b/c": "v"}})),
                &[
                    ("metadata.labels", Invalid), // "-x" name part regex
                    ("metadata.labels", Invalid), // "a/b/c" three parts
                    ("metadata.labels", Invalid), // "not ok"
                ],
            ),
            row(
                "empty label key prefix",
                meta(json!({"name": "np", "namespace": "default", "labels": {"/x": "v"}})),
                &[("metadata.labels", Invalid)],
            ),
            // ValidateAnnotations: keys are qualified names (case-insensitive), total ≤ 256 KiB.
            row(
                "bad annotation key",
                meta(json!({"name": "np", "namespace": "default", "annotations": {"a b": "v"}})),
                &[("metadata.annotations", Invalid)],
            ),
            row(
                "annotations too large",
                meta(json!({"name": "np", "namespace": "default", "annotations": {"k": big}})),
                &[("metadata.annotations", TooLong)],
            ),
            // ValidateNonnegativeField(generation).
            row(
                "negative generation",
                meta(json!({"name": "np", "namespace": "default", "generation": -1})),
                &[("metadata.generation", Invalid)],
            ),
            // ValidateFinalizers + core validateKubeFinalizerName.
            row(
                "finalizers: unqualified non-standard name, invalid name, orphan+foreground",
                meta(json!({"name": "np", "namespace": "default",
                    "finalizers": ["custom", "bad name!", "orphan", "foregroundDeletion"]})),
                &[
                    ("metadata.finalizers", Invalid), // "bad name!" not a qualified name
                    ("metadata.finalizers", Invalid), // orphan and foregroundDeletion
                    ("metadata.finalizers[0]", Invalid), // "custom" not standard nor qualified
                    ("metadata.finalizers[1]", Invalid), // "bad name!" likewise
                ],
            ),
            // ValidateOwnerReferences.
            row(
                "owner references: empty uid, Event owner, two controllers",
                meta(
                    json!({"name": "np", "namespace": "default", "ownerReferences": [
                        {"apiVersion": "v1", "kind": "Event", "name": "e", "uid": "", "controller": true},
                        {"apiVersion": "apps/v1", "kind": "Deployment", "name": "d", "uid": "u", "controller": true}
                    ]}),
                ),
                &[
                    ("metadata.ownerReferences.uid", Invalid),
                    ("metadata.ownerReferences", Invalid),
                    ("metadata.ownerReferences", Invalid),
                ],
            ),
        ]);
    }

    #[test]
    fn label_selectors() {
        run(vec![
            // ValidateLabelSelector / ValidateLabelSelectorRequirement: valid operators.
            row(
                "In, NotIn, Exists without values, DoesNotExist, matchLabels",
                np(json!({"podSelector": {
                "matchLabels": {"app": "web"},
                "matchExpressions": [
                    {"key": "tier", "operator": "In", "values": ["a", "b"]},
                    {"key": "example.com/env", "operator": "NotIn", "values": [""]},
                    {"key": "x", "operator": "Exists"},
                    {"key": "y", "operator": "DoesNotExist", "values": []}
                ]}})),
                &[],
            ),
            // In/NotIn need values.
            row(
                "In without values",
                np(json!({"podSelector": {"matchExpressions": [{"key": "k", "operator": "In"}]}})),
                &[("spec.podSelector.matchExpressions[0].values", Required)],
            ),
            row(
                "NotIn with empty values",
                np(json!({"podSelector": {"matchExpressions": [
                    {"key": "k", "operator": "NotIn", "values": []}]}})),
                &[("spec.podSelector.matchExpressions[0].values", Required)],
            ),
            // Exists/DoesNotExist forbid values.
            row(
                "Exists with values",
                np(json!({"podSelector": {"matchExpressions": [
                    {"key": "k", "operator": "Exists", "values": ["v"]}]}})),
                &[("spec.podSelector.matchExpressions[0].values", Forbidden)],
            ),
            // Unknown operator: upstream reports Invalid "not a valid selector operator".
            row(
                "unknown operator",
                np(json!({"podSelector": {"matchExpressions": [
                    {"key": "k", "operator": "Equals", "values": ["v"]}]}})),
                &[("spec.podSelector.matchExpressions[0].operator", Invalid)],
            ),
            // ValidateLabelName on the key.
            row(
                "bad key",
                np(json!({"podSelector": {"matchExpressions": [
                    {"key": "bad key", "operator": "Exists"}]}})),
                &[("spec.podSelector.matchExpressions[0].key", Invalid)],
            ),
            // IsValidLabelValue on each value (create: AllowInvalidLabelValueInSelector=false).
            row(
                "bad value",
                np(json!({"podSelector": {"matchExpressions": [
                    {"key": "k", "operator": "In", "values": ["ok", "not ok"]}]}})),
                &[("spec.podSelector.matchExpressions[0].values[1]", Invalid)],
            ),
            // ValidateLabels on matchLabels.
            row(
                "bad matchLabels value",
                np(json!({"podSelector": {"matchLabels": {"app": "-web"}}})),
                &[("spec.podSelector.matchLabels", Invalid)],
            ),
            // Peer selectors go through the same checks (ValidateNetworkPolicyPeer).
            row(
                "peer namespaceSelector bad operator",
                np(
                    json!({"ingress": [{"from": [{"namespaceSelector": {"matchExpressions": [
                    {"key": "k", "operator": "in", "values": ["v"]}]}}]}]}),
                ),
                &[(
                    "spec.ingress[0].from[0].namespaceSelector.matchExpressions[0].operator",
                    Invalid,
                )],
            ),
        ]);
    }

    #[test]
    fn ports() {
        run(vec![
            // ValidateNetworkPolicyPort: valid protocols, numbers, names and ranges.
            row(
                "valid ports",
                np(json!({"ingress": [{"ports": [
                    {"protocol": "TCP", "port": 80},
                    {"protocol": "UDP", "port": 53},
                    {"protocol": "SCTP", "port": 9000},
                    {"port": 65535},
                    {"port": "serve-80-tcp"},
                    {"port": 8080, "endPort": 8080},
                    {"protocol": "TCP", "port": 32000, "endPort": 32768},
                    {"protocol": "UDP"},
                    {}
                ]}]})),
                &[],
            ),
            // Protocol must be TCP, UDP or SCTP (case-sensitive).
            row(
                "unsupported protocols",
                np(
                    json!({"egress": [{"ports": [{"protocol": "ICMP"}, {"protocol": "tcp", "port": 80}]}]}),
                ),
                &[
                    ("spec.egress[0].ports[0].protocol", NotSupported),
                    ("spec.egress[0].ports[1].protocol", NotSupported),
                ],
            ),
            // IsValidPortNum: 1..=65535.
            row(
                "port out of range",
                np(json!({"ingress": [{"ports": [{"port": 0}, {"port": 70000}]}]})),
                &[
                    ("spec.ingress[0].ports[0].port", Invalid),
                    ("spec.ingress[0].ports[1].port", Invalid),
                ],
            ),
            // IsValidPortName: each violation is its own error.
            row(
                "bad port names",
                np(json!({"ingress": [{"ports": [
                    {"port": "http--alt"},
                    {"port": "-http"},
                    {"port": "Http"},
                    {"port": "8080"},
                    {"port": "a-very-long-port-name"},
                    {"port": ""}
                ]}]})),
                &[
                    ("spec.ingress[0].ports[0].port", Invalid), // consecutive hyphens
                    ("spec.ingress[0].ports[1].port", Invalid), // leading hyphen
                    ("spec.ingress[0].ports[2].port", Invalid), // charset
                    ("spec.ingress[0].ports[3].port", Invalid), // no letter
                    ("spec.ingress[0].ports[4].port", Invalid), // longer than 15
                    ("spec.ingress[0].ports[5].port", Invalid), // empty: charset
                    ("spec.ingress[0].ports[5].port", Invalid), // empty: no letter
                ],
            ),
            // endPort >= port.
            row(
                "endPort below port",
                np(json!({"egress": [{"ports": [{"port": 8080, "endPort": 80}]}]})),
                &[("spec.egress[0].ports[0].endPort", Invalid)],
            ),
            // endPort itself 1..=65535.
            row(
                "endPort out of range",
                np(json!({"egress": [{"ports": [{"port": 80, "endPort": 70000}]}]})),
                &[("spec.egress[0].ports[0].endPort", Invalid)],
            ),
            row(
                "endPort zero: below port and out of range",
                np(json!({"egress": [{"ports": [{"port": 80, "endPort": 0}]}]})),
                &[
                    ("spec.egress[0].ports[0].endPort", Invalid),
                    ("spec.egress[0].ports[0].endPort", Invalid),
                ],
            ),
            // endPort forbidden with a named port.
            row(
                "endPort with named port",
                np(json!({"ingress": [{"ports": [{"port": "http", "endPort": 90}]}]})),
                &[("spec.ingress[0].ports[0].endPort", Invalid)],
            ),
            // endPort forbidden without a port.
            row(
                "endPort without port",
                np(json!({"ingress": [{"ports": [{"protocol": "TCP", "endPort": 90}]}]})),
                &[("spec.ingress[0].ports[0].endPort", Invalid)],
            ),
        ]);
    }

    #[test]
    fn peers() {
        run(vec![
            // ValidateNetworkPolicyPeer: one of the three, or both selectors.
            row(
                "valid peers",
                np(json!({
                    "ingress": [{"from": [
                        {"podSelector": {}},
                        {"namespaceSelector": {"matchLabels": {"team": "a"}}},
                        {"podSelector": {"matchLabels": {"app": "db"}}, "namespaceSelector": {}},
                        {"ipBlock": {"cidr": "10.0.0.0/8"}}
                    ]}],
                    "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}]
                })),
                &[],
            ),
            // numPeers == 0: "must specify a peer".
            row(
                "empty peer",
                np(json!({"ingress": [{"from": [{"podSelector": {}}, {}]}]})),
                &[("spec.ingress[0].from[1]", Required)],
            ),
            // ipBlock with any selector is Forbidden.
            row(
                "ipBlock with podSelector",
                np(json!({"ingress": [{"from": [
                    {"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}]})),
                &[("spec.ingress[0].from[0]", Forbidden)],
            ),
            row(
                "ipBlock with namespaceSelector (egress)",
                np(json!({"egress": [{"to": [
                    {"ipBlock": {"cidr": "10.0.0.0/8"}, "namespaceSelector": {}}]}]})),
                &[("spec.egress[0].to[0]", Forbidden)],
            ),
        ]);
    }

    #[test]
    fn ip_blocks() {
        run(vec![
            // ValidateIPBlock: valid IPv4 and IPv6 blocks with strict-subset excepts; non-strict
            // parsing accepts host bits and leading zeros.
            row(
                "valid ipBlocks",
                np(json!({"egress": [{"to": [
                    {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16", "10.2.3.4/32"]}},
                    {"ipBlock": {"cidr": "2001:db8::/32", "except": ["2001:db8:1::/48"]}},
                    {"ipBlock": {"cidr": "10.0.0.1/8", "except": ["10.1.2.3/16"]}},
                    {"ipBlock": {"cidr": "010.000.000.000/08"}},
                    {"ipBlock": {"cidr": "::/0", "except": ["fe80::/10"]}},
                    {"ipBlock": {"cidr": "0.0.0.0/0", "except": ["::ffff:10.0.0.0/104"]}}
                ]}]})),
                &[],
            ),
            // cidr required.
            row(
                "empty cidr",
                np(json!({"ingress": [{"from": [{"ipBlock": {"cidr": ""}}]}]})),
                &[("spec.ingress[0].from[0].ipBlock.cidr", Required)],
            ),
            // IsValidCIDRForLegacyField.
            row(
                "invalid cidrs",
                np(json!({"ingress": [{"from": [
                    {"ipBlock": {"cidr": "10.0.0.0/33"}},
                    {"ipBlock": {"cidr": "10.0.0.0"}},
                    {"ipBlock": {"cidr": "fe80::/129"}},
                    {"ipBlock": {"cidr": "not-a-cidr/8", "except": ["also-bad"]}}
                ]}]})),
                &[
                    ("spec.ingress[0].from[0].ipBlock.cidr", Invalid),
                    ("spec.ingress[0].from[1].ipBlock.cidr", Invalid),
                    ("spec.ingress[0].from[2].ipBlock.cidr", Invalid),
                    // a bad cidr stops the block's checks: its except is not looked at
                    ("spec.ingress[0].from[3].ipBlock.cidr", Invalid),
                ],
            ),
            // Each except must parse and be a strict subset of cidr.
            row(
                "bad excepts",
                np(
                    json!({"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/16", "except": [
                        "10.0.1.0/24",       // ok
                        "10.0.0.0/16",       // equal, not strict
                        "10.1.0.0/24",       // outside
                        "10.0.0.0/8",        // wider
                        "2001:db8::/64",     // other family
                        "bogus",             // not a CIDR
                        ""                   // not a CIDR either (Invalid, not Required)
                    ]}}]}]}),
                ),
                &[
                    ("spec.ingress[0].from[0].ipBlock.except[1]", Invalid),
                    ("spec.ingress[0].from[0].ipBlock.except[2]", Invalid),
                    ("spec.ingress[0].from[0].ipBlock.except[3]", Invalid),
                    ("spec.ingress[0].from[0].ipBlock.except[4]", Invalid),
                    ("spec.ingress[0].from[0].ipBlock.except[5]", Invalid),
                    ("spec.ingress[0].from[0].ipBlock.except[6]", Invalid),
                ],
            ),
            row(
                "IPv4 except in IPv6 cidr",
                np(
                    json!({"egress": [{"to": [{"ipBlock": {"cidr": "::/0", "except": ["10.0.0.0/8"]}}]}]}),
                ),
                &[("spec.egress[0].to[0].ipBlock.except[0]", Invalid)],
            ),
        ]);
    }

    #[test]
    fn policy_types() {
        run(vec![
            // ValidateNetworkPolicySpec: Ingress/Egress, at most two (duplicates not checked).
            row("Ingress", np(json!({"policyTypes": ["Ingress"]})), &[]),
            row("Egress", np(json!({"policyTypes": ["Egress"]})), &[]),
            row(
                "both",
                np(json!({"policyTypes": ["Ingress", "Egress"]})),
                &[],
            ),
            row("none", np(json!({"policyTypes": []})), &[]),
            row(
                "duplicate accepted upstream",
                np(json!({"policyTypes": ["Ingress", "Ingress"]})),
                &[],
            ),
            row(
                "lowercase",
                np(json!({"policyTypes": ["ingress"]})),
                &[("spec.policyTypes[0]", NotSupported)],
            ),
            row(
                "unknown second",
                np(json!({"policyTypes": ["Ingress", "Foo"]})),
                &[("spec.policyTypes[1]", NotSupported)],
            ),
            // More than two: one Invalid on the list, items not checked.
            row(
                "three",
                np(json!({"policyTypes": ["Ingress", "Egress", "Bogus"]})),
                &[("spec.policyTypes", Invalid)],
            ),
            // No spec at all is an empty spec.
            row(
                "no spec",
                json!({"metadata": {"name": "np", "namespace": "default"}}),
                &[],
            ),
        ]);
    }

    #[test]
    fn several_problems_all_reported_in_order() {
        // ValidateNetworkPolicy = ValidateObjectMeta then ValidateNetworkPolicySpec, collecting all.
        run(vec![row(
            "many problems",
            json!({
                "metadata": {"name": "Bad_Name", "labels": {"ok": "bad value"}},
                "spec": {
                    "podSelector": {"matchExpressions": [{"key": "k", "operator": "Equals"}]},
                    "ingress": [{
                        "ports": [{"protocol": "ICMP", "port": 0}],
                        "from": [{}, {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["11.0.0.0/16"]}}]
                    }],
                    "egress": [{"ports": [{"port": "http", "endPort": 81}],
                                "to": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}],
                    "policyTypes": ["Ingress", "Sideways"]
                }
            }),
            &[
                ("metadata.name", Invalid),
                ("metadata.namespace", Required),
                ("metadata.labels", Invalid),
                ("spec.podSelector.matchExpressions[0].operator", Invalid),
                ("spec.ingress[0].ports[0].protocol", NotSupported),
                ("spec.ingress[0].ports[0].port", Invalid),
                ("spec.ingress[0].from[0]", Required),
                ("spec.ingress[0].from[1].ipBlock.except[0]", Invalid),
                ("spec.egress[0].ports[0].endPort", Invalid),
                ("spec.egress[0].to[0]", Forbidden),
                ("spec.policyTypes[1]", NotSupported),
            ],
        )]);
    }

    /// The full `path: message` texts, compared with what the API server prints.
    #[test]
    fn messages_match_upstream() {
        let policy = json!({
            "metadata": {"name": "Bad_Name", "namespace": "default",
                         "labels": {"a/b/c": "v"}},
            "spec": {
                "podSelector": {"matchExpressions": [{"key": "k", "operator": "Equals", "values": ["v"]}]},
                "ingress": [{
                    "ports": [{"protocol": "ICMP", "port": 70000},
                              {"port": "http", "endPort": 90},
                              {"endPort": 90},
                              {"port": 80, "endPort": 79}],
                    "from": [{}, {"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}},
                             {"ipBlock": {"cidr": "", "except": ["x"]}},
                             {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.0.0.0/8", "bad"]}}]
                }],
                "policyTypes": ["Ingress", "Egress", "Ingress"]
            }
        });
        let got: Vec<String> = validate_json(&policy)
            .iter()
            .map(ToString::to_string)
            .collect();
        let want = vec![
            "metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
            "metadata.labels: Invalid value: \"a/b/c\": a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
            "spec.podSelector.matchExpressions[0].operator: Invalid value: \"Equals\": not a valid selector operator",
            "spec.ingress[0].ports[0].protocol: Unsupported value: \"ICMP\": supported values: \"TCP\", \"UDP\", \"SCTP\"",
            "spec.ingress[0].ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive",
            "spec.ingress[0].ports[1].endPort: Invalid value: 90: may not be specified when `port` is non-numeric",
            "spec.ingress[0].ports[2].endPort: Invalid value: 90: may not be specified when `port` is not specified",
            "spec.ingress[0].ports[3].endPort: Invalid value: 79: must be greater than or equal to `port`",
            "spec.ingress[0].from[0]: Required value: must specify a peer",
            "spec.ingress[0].from[1]: Forbidden: may not specify both ipBlock and another peer",
            "spec.ingress[0].from[2].ipBlock.cidr: Required value",
            "spec.ingress[0].from[3].ipBlock.except[0]: Invalid value: \"10.0.0.0/8\": must be a strict subset of `cidr`",
            "spec.ingress[0].from[3].ipBlock.except[1]: Invalid value: \"bad\": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
            "spec.policyTypes: Invalid value: []networking.PolicyType{\"Ingress\", \"Egress\", \"Ingress\"}: may not specify more than two policyTypes",
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn field_error_parts() {
        let errs = validate_json(&np(json!({"ingress": [{"ports": [{"port": 70000}]}]})));
        assert_eq!(
            errs,
            vec![FieldError {
                path: "spec.ingress[0].ports[0].port".into(),
                kind: Invalid,
                value: Some("70000".into()),
                detail: "must be between 1 and 65535, inclusive".into(),
                message: "Invalid value: 70000: must be between 1 and 65535, inclusive".into(),
            }]
        );
        let errs = validate_json(&meta(json!({"name": "np", "namespace": "default",
            "annotations": {"k": "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT)}})));
        assert_eq!(
            errs[0].to_string(),
            "metadata.annotations: Too long: may not be more than 262144 bytes"
        );
        assert_eq!(errs[0].value, None);
        let errs = validate_json(&meta(json!({"name": "np", "namespace": "default",
            "finalizers": ["orphan", "foregroundDeletion"]})));
        assert_eq!(
            errs[0].to_string(),
            "metadata.finalizers: Invalid value: []string{\"orphan\", \"foregroundDeletion\"}: finalizer orphan and foregroundDeletion cannot be both set"
        );
        assert_eq!(
            errs[0].value.as_deref(),
            Some(r#"["orphan","foregroundDeletion"]"#)
        );
        let kinds = [
            (Required, "FieldValueRequired"),
            (Invalid, "FieldValueInvalid"),
            (NotSupported, "FieldValueNotSupported"),
            (Forbidden, "FieldValueForbidden"),
            (TooLong, "FieldValueTooLong"),
            (TooMany, "FieldValueTooMany"),
            (Duplicate, "FieldValueDuplicate"),
        ];
        for (k, s) in kinds {
            assert_eq!(k.cause_type(), s);
        }
    }

    #[test]
    fn name_checks() {
        // IsDNS1123Label
        assert!(is_dns1123_label("a").is_empty());
        assert!(is_dns1123_label("team-a-1").is_empty());
        assert_eq!(is_dns1123_label("a.b"), vec!["must not contain dots"]);
        assert_eq!(
            is_dns1123_label("-a"),
            vec!["a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"]
        );
        assert_eq!(
            is_dns1123_label(&"a".repeat(64)),
            vec!["must be no more than 63 characters"]
        );
        assert_eq!(is_dns1123_label("").len(), 1);
        // IsDNS1123Subdomain
        assert!(is_dns1123_subdomain("a.b-c.d1").is_empty());
        assert_eq!(is_dns1123_subdomain("a..b").len(), 1);
        assert_eq!(is_dns1123_subdomain("a.").len(), 1);
        assert_eq!(is_dns1123_subdomain("é").len(), 1);
        assert_eq!(is_dns1123_subdomain(&"a".repeat(254)).len(), 1);
        assert_eq!(is_dns1123_subdomain(&"-".repeat(254)).len(), 2);
        // IsQualifiedName
        assert!(is_qualified_name("app").is_empty());
        assert!(is_qualified_name("A_b.C-9").is_empty());
        assert!(is_qualified_name("kubernetes.io/metadata.name").is_empty());
        assert_eq!(
            is_qualified_name("/x"),
            vec!["prefix part must be non-empty"]
        );
        assert_eq!(
            is_qualified_name("x/"),
            vec![
                "name part must be non-empty".to_string(),
                "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')".to_string()
            ]
        );
        assert_eq!(
            is_qualified_name("Bad.Prefix/x")[0],
            "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        );
        assert_eq!(
            is_qualified_name(&"n".repeat(64)),
            vec!["name part must be no more than 63 characters"]
        );
        // IsValidLabelValue
        assert!(is_valid_label_value("").is_empty());
        assert!(is_valid_label_value("my_value-1.2").is_empty());
        assert_eq!(
            is_valid_label_value("_x"),
            vec!["a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"]
        );
        assert_eq!(is_valid_label_value(&"v".repeat(64)).len(), 1);
        // IsValidPortName
        assert!(is_valid_port_name("serve-80-tcp").is_empty());
        assert!(is_valid_port_name("h").is_empty());
        assert_eq!(
            is_valid_port_name("-A--"),
            vec![
                "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
                "must contain at least one letter (a-z)",
                "must not contain consecutive hyphens",
                "must not begin or end with a hyphen",
            ]
        );
        assert_eq!(
            is_valid_port_name("abcdefghijklmnop"),
            vec!["must be no more than 15 characters"]
        );
        // maskTrailingDash (generateName)
        assert_eq!(mask_trailing_dash("web-"), "wea");
        assert_eq!(mask_trailing_dash("-"), "-");
        assert_eq!(mask_trailing_dash("web"), "web");
    }

    #[test]
    fn validate_label_selector_and_labels_directly() {
        let sel: LabelSelector = serde_json::from_value(json!({
            "matchLabels": {"ok": "fine"},
            "matchExpressions": [{"key": "k", "operator": "Exists", "values": ["v"]}]
        }))
        .expect("selector JSON");
        let errs = validate_label_selector(&sel, "sel");
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].path, "sel.matchExpressions[0].values");
        assert_eq!(
            errs[0].message,
            "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'"
        );
        let root = validate_label_selector(&sel, "");
        assert_eq!(root[0].path, "matchExpressions[0].values");

        let labels: BTreeMap<String, String> = [("good".to_string(), "x y".to_string())]
            .into_iter()
            .collect();
        let errs = validate_labels(&labels, "pods[0].labels");
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].path, "pods[0].labels");
        assert_eq!(errs[0].value.as_deref(), Some("x y"));
    }

    #[test]
    fn cidr_parsing() {
        let ok = [
            ("10.0.0.0/8", "10.0.0.0/8"),
            ("10.1.2.3/8", "10.0.0.0/8"),
            ("192.168.1.77/32", "192.168.1.77/32"),
            ("0.0.0.0/0", "0.0.0.0/0"),
            ("010.001.002.003/016", "10.1.0.0/16"),
            ("2001:db8::/32", "2001:db8::/32"),
            ("2001:DB8:0:0:0:0:0:1/64", "2001:db8::/64"),
            ("::/0", "::/0"),
            ("::1/128", "::1/128"),
            ("fe80::1:2/10", "fe80::/10"),
            ("::ffff:10.1.2.3/120", "::ffff:10.1.2.0/120"),
            ("1:2:3:4:5:6:1.2.3.4/128", "1:2:3:4:5:6:102:304/128"),
            ("::00001/128", "::1/128"),
        ];
        for (input, want) in ok {
            let got = parse_cidr(input).map(|n| n.to_string());
            assert_eq!(got.as_deref(), Ok(want), "{input}");
        }
        let bad = [
            "",
            "10.0.0.0",
            "10.0.0.0/",
            "10.0.0.0/33",
            "10.0.0.0/-1",
            "10.0.0.0/8/8",
            "10.0.0/8",
            "10.0.0.256/8",
            "10.0.0.0.0/8",
            " 10.0.0.0/8",
            "10.0.0.0/8 ",
            "::/129",
            "1::2::3/64",
            "1:2:3:4:5:6:7:8:9/64",
            "1:2:3:4:5:6:7::8/64",
            "fe80::1%eth0/64",
            "::1.2.3/128",
            "1.2.3.4::/64",
            "::12345/128",
            "gggg::/16",
        ];
        for input in bad {
            assert_eq!(
                parse_cidr(input),
                Err(CIDR_ERR.to_string()),
                "{input:?} should be rejected"
            );
        }
    }

    #[test]
    fn go_containment() {
        let net = |s: &str| parse_cidr(s).expect("cidr");
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert!(go_contains(&net("10.0.0.0/8"), ip("10.1.0.0")));
        assert!(!go_contains(&net("10.0.0.0/8"), ip("11.0.0.0")));
        assert!(go_contains(&net("10.0.0.0/8"), ip("::ffff:10.1.0.0")));
        assert!(go_contains(&net("::ffff:10.0.0.0/104"), ip("10.1.0.0")));
        assert!(!go_contains(&net("::/0"), ip("10.1.0.0")));
        assert!(!go_contains(&net("::/0"), ip("::ffff:10.1.0.0")));
        assert!(go_contains(&net("2001:db8::/32"), ip("2001:db8:1::")));
    }

    #[test]
    fn go_quoting() {
        assert_eq!(go_quote("plain"), "\"plain\"");
        assert_eq!(go_quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(go_quote("t\tn\n\u{1}\u{7f}"), "\"t\\tn\\n\\x01\\x7f\"");
        assert_eq!(go_quote("é ü"), "\"é ü\"");
        assert_eq!(go_quote("\u{a0}\u{200b}"), "\"\\u00a0\\u200b\"");
    }
}
