//! `labelSelector` and `fieldSelector` query strings, parsed and matched as the API server does.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
enum LabelOp {
    Equals(String),
    NotEquals(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    DoesNotExist,
    GreaterThan(i64),
    LessThan(i64),
}

/// A parsed `labelSelector`: requirements ANDed; empty matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LabelQuery {
    requirements: Vec<(String, LabelOp)>,
}

/// Splits on commas outside parentheses (`a in (x,y),b` is two terms).
fn split_terms(s: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                terms.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&s[start..]);
    terms
}

fn parse_set(term: &str, open: usize) -> Result<Vec<String>, String> {
    let rest = &term[open + 1..];
    let close = rest
        .rfind(')')
        .ok_or_else(|| format!("unable to parse requirement: found '{term}', expected: ')'"))?;
    if !rest[close + 1..].trim().is_empty() {
        return Err(format!(
            "unable to parse requirement: unexpected text after ')' in '{term}'"
        ));
    }
    Ok(rest[..close]
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

fn parse_term(term: &str) -> Result<(String, LabelOp), String> {
    let key_only = |k: &str| -> Result<String, String> {
        let k = k.trim();
        if k.is_empty() || k.contains(char::is_whitespace) {
            Err(format!(
                "unable to parse requirement: invalid label key {k:?}"
            ))
        } else {
            Ok(k.to_string())
        }
    };
    if let Some(k) = term.strip_prefix('!') {
        return Ok((key_only(k)?, LabelOp::DoesNotExist));
    }
    if let Some(open) = term.find('(') {
        let head = term[..open].trim();
        let (key, op) = head
            .rsplit_once(char::is_whitespace)
            .ok_or_else(|| format!("unable to parse requirement: {term:?}"))?;
        let values = parse_set(term, open)?;
        return match op {
            "in" => Ok((key_only(key)?, LabelOp::In(values))),
            "notin" => Ok((key_only(key)?, LabelOp::NotIn(values))),
            other => Err(format!(
                "unable to parse requirement: found '{other}', expected: in, notin"
            )),
        };
    }
    let number = |v: &str| -> Result<i64, String> {
        v.trim()
            .parse()
            .map_err(|_| format!("unable to parse requirement: {v:?} is not an integer"))
    };
    if let Some((k, v)) = term.split_once("!=") {
        return Ok((key_only(k)?, LabelOp::NotEquals(v.trim().to_string())));
    }
    if let Some((k, v)) = term.split_once("==") {
        return Ok((key_only(k)?, LabelOp::Equals(v.trim().to_string())));
    }
    if let Some((k, v)) = term.split_once('=') {
        return Ok((key_only(k)?, LabelOp::Equals(v.trim().to_string())));
    }
    if let Some((k, v)) = term.split_once('>') {
        return Ok((key_only(k)?, LabelOp::GreaterThan(number(v)?)));
    }
    if let Some((k, v)) = term.split_once('<') {
        return Ok((key_only(k)?, LabelOp::LessThan(number(v)?)));
    }
    Ok((key_only(term)?, LabelOp::Exists))
}

impl LabelQuery {
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut requirements = Vec::new();
        if s.trim().is_empty() {
            return Ok(LabelQuery { requirements });
        }
        for term in split_terms(s) {
            let term = term.trim();
            if term.is_empty() {
                return Err(format!("unable to parse requirement: empty term in {s:?}"));
            }
            requirements.push(parse_term(term)?);
        }
        Ok(LabelQuery { requirements })
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|(key, op)| {
            let value = labels.get(key);
            match op {
                LabelOp::Equals(v) => value == Some(v),
                // Absent keys satisfy != and notin, as upstream.
                LabelOp::NotEquals(v) => value != Some(v),
                LabelOp::In(vs) => value.is_some_and(|x| vs.contains(x)),
                LabelOp::NotIn(vs) => value.is_none_or(|x| !vs.contains(x)),
                LabelOp::Exists => value.is_some(),
                LabelOp::DoesNotExist => value.is_none(),
                LabelOp::GreaterThan(n) => value
                    .and_then(|x| x.parse::<i64>().ok())
                    .is_some_and(|x| x > *n),
                LabelOp::LessThan(n) => value
                    .and_then(|x| x.parse::<i64>().ok())
                    .is_some_and(|x| x < *n),
            }
        })
    }
}

/// A parsed `fieldSelector`: `field=value`, `field==value` and `field!=value` terms, ANDed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FieldQuery {
    requirements: Vec<(String, bool, String)>,
}

impl FieldQuery {
    /// `supported` lists the field labels this resource can be selected on.
    pub fn parse(s: &str, supported: &[&str]) -> Result<Self, String> {
        let mut requirements = Vec::new();
        if s.trim().is_empty() {
            return Ok(FieldQuery { requirements });
        }
        for term in s.split(',') {
            let term = term.trim();
            let (field, equal, value) = if let Some((f, v)) = term.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = term.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = term.split_once('=') {
                (f, true, v)
            } else {
                return Err(format!(
                    "invalid selector: '{s}'; can't understand '{term}'"
                ));
            };
            let field = field.trim();
            if !supported.contains(&field) {
                return Err(format!("field label not supported: {field}"));
            }
            requirements.push((field.to_string(), equal, value.trim().to_string()));
        }
        Ok(FieldQuery { requirements })
    }

    /// `field` gives an object's value for a field label ("" when unset, as upstream).
    pub fn matches(&self, field: impl Fn(&str) -> String) -> bool {
        self.requirements
            .iter()
            .all(|(f, equal, v)| (field(f) == *v) == *equal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn equality_and_set_terms_are_anded() {
        let q = LabelQuery::parse("pod=a, team in (red, blue),!gone").unwrap();
        assert!(q.matches(&labels(&[("pod", "a"), ("team", "red")])));
        assert!(!q.matches(&labels(&[("pod", "a"), ("team", "green")])));
        assert!(!q.matches(&labels(&[("pod", "a"), ("team", "red"), ("gone", "")])));
    }

    #[test]
    fn not_equals_and_notin_match_absent_keys() {
        assert!(LabelQuery::parse("pod!=a").unwrap().matches(&labels(&[])));
        assert!(LabelQuery::parse("pod notin (a)")
            .unwrap()
            .matches(&labels(&[])));
        assert!(!LabelQuery::parse("pod in (a)")
            .unwrap()
            .matches(&labels(&[])));
    }

    #[test]
    fn bare_key_means_exists_and_empty_selector_matches_all() {
        assert!(LabelQuery::parse("pod")
            .unwrap()
            .matches(&labels(&[("pod", "")])));
        assert!(LabelQuery::parse("").unwrap().matches(&labels(&[])));
    }

    #[test]
    fn malformed_selectors_are_errors() {
        assert!(LabelQuery::parse("pod in (a").is_err());
        assert!(LabelQuery::parse("a,,b").is_err());
        assert!(LabelQuery::parse("x>y").is_err());
    }

    #[test]
    fn field_selector_rejects_unsupported_fields() {
        let q = FieldQuery::parse("metadata.name=a", &["metadata.name"]).unwrap();
        assert!(q.matches(|_| "a".to_string()));
        assert!(FieldQuery::parse("spec.x=a", &["metadata.name"]).is_err());
    }
}
