//! DNS names in `toFQDNs` and `rules.dns`: `matchName` (one name) and `matchPattern` (wildcards),
//! as `pkg/fqdn/matchpattern/matchpattern.go` defines them.
//!
//! - names and patterns compare case-insensitively, with the trailing dot implied;
//! - `*` matches `[-a-zA-Z0-9_]*` inside one label;
//! - a pattern made only of stars (`*`, `**.`) matches every name;
//! - a leading `**.` matches one or more whole labels (`**.example.com` does not match
//!   `example.com`).

use super::model::FqdnSelector;

/// The longest name or pattern Cilium accepts (`MaxFQDNLength`).
pub const MAX_FQDN_LENGTH: usize = 255;

/// `^[-a-zA-Z0-9_.]+$` (`pkg/policy/api/fqdn.go:18`).
pub fn valid_match_name_chars(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// `^[-a-zA-Z0-9_.*]+$` (`matchpattern.go:33`).
pub fn valid_match_pattern_chars(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'*'))
}

fn fqdn(s: &str) -> String {
    let mut n = s.trim().to_ascii_lowercase();
    if !n.ends_with('.') {
        n.push('.');
    }
    n
}

fn dns_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// Matches `name` against a `matchPattern`.
pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    let p = pattern.trim().to_ascii_lowercase();
    let name = fqdn(name);
    let only_stars = {
        let body = p.strip_suffix('.').unwrap_or(&p);
        !body.is_empty() && body.bytes().all(|b| b == b'*')
    };
    if only_stars {
        // `(^([-a-zA-Z0-9_]+[.])+$)|(^[.]$)`
        return name == "."
            || name
                .trim_end_matches('.')
                .split('.')
                .all(|l| !l.is_empty() && l.bytes().all(dns_char));
    }
    let p = fqdn(&p);
    let p = p.as_bytes();
    let n = name.as_bytes();
    // A leading run of two or more stars and a dot: one or more whole labels, then a dot.
    let stars = p.iter().take_while(|&&b| b == b'*').count();
    if stars >= 2 && p.get(stars) == Some(&b'.') {
        let rest = &p[stars + 1..];
        // Try every split after one or more whole labels.
        for (i, &b) in n.iter().enumerate() {
            if b == b'.' {
                let labels = &n[..i];
                let well_formed = !labels.is_empty()
                    && labels
                        .split(|&c| c == b'.')
                        .all(|l| !l.is_empty() && l.iter().all(|&c| dns_char(c)));
                if well_formed && glob(rest, &n[i + 1..]) {
                    return true;
                }
            }
        }
        return false;
    }
    glob(p, n)
}

/// `*` = `[-a-zA-Z0-9_]*`; everything else literal.
fn glob(p: &[u8], n: &[u8]) -> bool {
    match p.first() {
        None => n.is_empty(),
        Some(b'*') => {
            let rest = &p[1..];
            let mut i = 0;
            loop {
                if glob(rest, &n[i..]) {
                    return true;
                }
                if i < n.len() && dns_char(n[i]) {
                    i += 1;
                } else {
                    return false;
                }
            }
        }
        Some(&c) => n.first() == Some(&c) && glob(&p[1..], &n[1..]),
    }
}

/// The directive of a zone-file line that makes the cluster DNS play Cilium's DNS proxy for one
/// source: `!dns-rules <source-ip> [<selector>]...`, each selector in [`selector_field`] form.
/// The sandbox writes it (`system::zone_with_rules`), `agent dns` reads it.
pub const DNS_RULES_DIRECTIVE: &str = "!dns-rules ";

/// A selector as one field of a `!dns-rules` line: `name=<fqdn>` or `pattern=<pattern>`.
pub fn selector_field(sel: &FqdnSelector) -> Option<String> {
    match (&sel.match_name, &sel.match_pattern) {
        (Some(name), _) => Some(format!("name={name}")),
        (None, Some(pattern)) => Some(format!("pattern={pattern}")),
        (None, None) => None,
    }
}

/// [`selector_field`] read back.
pub fn parse_selector_field(field: &str) -> Result<FqdnSelector, String> {
    match field.split_once('=') {
        Some(("name", n)) => Ok(FqdnSelector {
            match_name: Some(n.to_string()),
            match_pattern: None,
        }),
        Some(("pattern", p)) => Ok(FqdnSelector {
            match_name: None,
            match_pattern: Some(p.to_string()),
        }),
        _ => Err(format!(
            "{field:?}: expected name=<fqdn> or pattern=<pattern>"
        )),
    }
}

/// Does a selector select the name?
pub fn selector_matches(sel: &FqdnSelector, name: &str) -> bool {
    if let Some(n) = &sel.match_name {
        return fqdn(n) == fqdn(name);
    }
    if let Some(p) = &sel.match_pattern {
        return pattern_matches(p, name);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    // pkg/fqdn/matchpattern/matchpattern.go:95-144 and the examples in pkg/policy/api/fqdn.go:40-55.
    #[test]
    fn match_pattern_table() {
        for (pattern, name, want) in [
            ("*", "anything.example.com", true),
            ("*", "com", true),
            ("**.", "a.b", true),
            ("*.cilium.io", "www.cilium.io", true),
            ("*.cilium.io", "blog.cilium.io.", true),
            ("*.cilium.io", "cilium.io", false),
            ("*.cilium.io", "a.b.cilium.io", false),
            ("sub*.cilium.io", "subdomain.cilium.io", true),
            ("sub*.cilium.io", "www.cilium.io", false),
            ("**.cilium.io", "app.cilium.io", true),
            ("**.cilium.io", "test.app.cilium.io", true),
            ("**.cilium.io", "cilium.io", false),
            ("**.amazonaws.com", "s3.eu-west-2.amazonaws.com", true),
            (
                "minio.argo-artifacts.svc.cluster.local",
                "MINIO.argo-artifacts.svc.cluster.local",
                true,
            ),
            ("mirror.example.org", "mirror.example.org.", true),
            ("mirror.example.org", "evil-mirror.example.org", false),
        ] {
            assert_eq!(pattern_matches(pattern, name), want, "{pattern} vs {name}");
        }
    }

    #[test]
    fn match_name_is_exact_up_to_case_and_dot() {
        let sel = FqdnSelector {
            match_name: Some("Internal-Mirror.example.org".into()),
            match_pattern: None,
        };
        assert!(selector_matches(&sel, "internal-mirror.example.org."));
        assert!(!selector_matches(&sel, "x.internal-mirror.example.org"));
    }

    #[test]
    fn characters() {
        assert!(valid_match_pattern_chars("*.example.org"));
        assert!(!valid_match_pattern_chars("*.${DOMAIN}"));
        assert!(valid_match_name_chars("a_b-c.d"));
        assert!(!valid_match_name_chars("a*b"));
    }
}
