//! One strict YAML document: parsed with serde, every error placed at its file, line:column and
//! field path. Shared by scenario files and profile configs.

use super::source::{Location, SourceMap};
use std::fmt;

/// One problem in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub file: String,
    pub location: Option<Location>,
    /// Field path, e.g. `steps[2].apply[0].spec.ingress[0].from[1].ipBlock.cidr`; empty for the
    /// whole file.
    pub path: String,
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(l) = self.location {
            write!(f, ":{l}")?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for LoadError {}

/// A scenario, tag, persona or endpoint name: 1-63 of [a-z0-9-], not starting or ending in `-`.
pub fn is_slug(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Parses one strict YAML document: syntax errors and serde errors (unknown or missing fields,
/// wrong types) become one [`LoadError`] with file, line:column and the field path. Shared by
/// scenario files and profile configs; the source map serves the semantic checks after it.
pub fn parse_doc<T: serde::de::DeserializeOwned>(
    file: &str,
    text: &str,
) -> Result<(T, SourceMap), Vec<LoadError>> {
    let source = SourceMap::build(text).map_err(|e| {
        vec![LoadError {
            file: file.to_string(),
            location: Some(e.at),
            path: String::new(),
            message: format!("YAML syntax error: {}", e.message),
        }]
    })?;
    match serde_saphyr::from_str(text) {
        Ok(d) => Ok((d, source)),
        Err(e) => {
            let location = e.location().map(|l| Location {
                line: l.line() as usize,
                column: l.column() as usize,
            });
            let message = serde_message(&e);
            let mut path = location
                .and_then(|l| source.path_at(l))
                .unwrap_or_default()
                .to_string();
            // serde notices a missing field after the last key of its mapping: name the mapping.
            if message.starts_with("missing field") {
                path.truncate(path.rfind(['.', '[']).unwrap_or(0));
            }
            Err(vec![LoadError {
                file: file.to_string(),
                location,
                path,
                message,
            }])
        }
    }
}
fn serde_message(e: &serde_saphyr::Error) -> String {
    let text = e.without_snippet().to_string();
    let first = text.lines().next().unwrap_or("").trim();
    // Strip a trailing " at line N column M" that the library may append.
    match first.find(" at line ") {
        Some(i) => first[..i].to_string(),
        None => first.to_string(),
    }
}
