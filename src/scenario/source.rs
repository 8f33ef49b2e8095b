//! A map between field paths (`steps[2].apply[0].spec`) and their line:column in a YAML file.

use granit_parser::{Event, Parser};
use std::collections::HashMap;
use std::fmt;

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

#[derive(Debug, Clone)]
struct Entry {
    path: String,
    /// Where the field's key (or the sequence item) starts.
    at: Location,
    /// Where its value starts.
    value: Location,
}

/// Every node of one YAML document with its path, in document order.
#[derive(Debug, Clone, Default)]
pub struct SourceMap {
    entries: Vec<Entry>,
    by_path: HashMap<String, usize>,
}

enum Frame {
    Map {
        path: String,
        key: Option<(String, Location)>,
    },
    Seq {
        path: String,
        index: usize,
    },
}

fn child(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

fn loc(m: &granit_parser::Marker) -> Location {
    Location {
        line: m.line(),
        column: m.col() + 1,
    }
}

/// A YAML syntax error with its position.
#[derive(Debug, Clone)]
pub struct SyntaxError {
    pub message: String,
    pub at: Location,
}

impl SourceMap {
    /// Indexes a document. Syntax errors are reported with their position.
    pub fn build(text: &str) -> Result<Self, SyntaxError> {
        let mut map = SourceMap::default();
        let mut stack: Vec<Frame> = Vec::new();
        for item in Parser::new_from_str(text) {
            let (event, span) = item.map_err(|e| SyntaxError {
                message: e.info().to_string(),
                at: loc(e.marker()),
            })?;
            let start = loc(&span.start);
            // Where does this node sit? Keys of a mapping are recorded and become the context.
            let node_path = match stack.last_mut() {
                Some(Frame::Map { path, key }) => match key.take() {
                    None => {
                        if let Event::Scalar(text, ..) = &event {
                            *key = Some((child(path, text), start));
                            continue;
                        }
                        // A complex key: index it as an anonymous node.
                        *key = Some((child(path, "?"), start));
                        None
                    }
                    Some((p, key_at)) => Some((p, key_at)),
                },
                Some(Frame::Seq { path, index }) => {
                    let p = format!("{path}[{index}]");
                    *index += 1;
                    Some((p, start))
                }
                None => Some((String::new(), start)),
            };
            match event {
                Event::MappingStart(..) => {
                    let path = node_path
                        .as_ref()
                        .map(|(p, _)| p.clone())
                        .unwrap_or_default();
                    if let Some((p, at)) = node_path {
                        map.push(p, at, start);
                    }
                    stack.push(Frame::Map { path, key: None });
                }
                Event::SequenceStart(..) => {
                    let path = node_path
                        .as_ref()
                        .map(|(p, _)| p.clone())
                        .unwrap_or_default();
                    if let Some((p, at)) = node_path {
                        map.push(p, at, start);
                    }
                    stack.push(Frame::Seq { path, index: 0 });
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                }
                Event::Scalar(..) | Event::Alias(..) => {
                    if let Some((p, at)) = node_path {
                        map.push(p, at, start);
                    }
                }
                _ => {}
            }
        }
        Ok(map)
    }

    fn push(&mut self, path: String, at: Location, value: Location) {
        self.by_path
            .entry(path.clone())
            .or_insert(self.entries.len());
        self.entries.push(Entry { path, at, value });
    }

    /// Where a path is written; for a path that is absent (a missing field), its nearest
    /// ancestor that is present.
    pub fn locate(&self, path: &str) -> Option<Location> {
        let mut p = path;
        loop {
            if let Some(&i) = self.by_path.get(p) {
                return Some(self.entries[i].at);
            }
            if p.is_empty() {
                return None;
            }
            let cut = p.rfind(['.', '[']).unwrap_or(0);
            p = &p[..cut];
        }
    }

    /// The path of the node at (or, failing that, last starting before) a location.
    pub fn path_at(&self, at: Location) -> Option<&str> {
        // A key beats the value of its parent that starts at the same spot (`spec:\n  podSelecter`).
        if let Some(e) = self.entries.iter().rev().find(|e| e.at == at) {
            return Some(&e.path);
        }
        if let Some(e) = self.entries.iter().find(|e| e.value == at) {
            return Some(&e.path);
        }
        self.entries
            .iter()
            .filter(|e| e.at <= at)
            .max_by_key(|e| e.at)
            .map(|e| e.path.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "name: a\nsteps:\n  - name: one\n    apply:\n      - metadata: {name: p, namespace: x}\n        spec:\n          ingress:\n            - from: [{ipBlock: {cidr: 10.0.0.0/8}}]\n";

    #[test]
    fn paths_map_to_their_lines() {
        let m = SourceMap::build(DOC).expect("parses");
        assert_eq!(m.locate("name"), Some(Location { line: 1, column: 1 }));
        assert_eq!(
            m.locate("steps[0].name"),
            Some(Location { line: 3, column: 5 })
        );
        assert_eq!(
            m.locate("steps[0].apply[0].metadata.namespace"),
            Some(Location {
                line: 5,
                column: 29
            })
        );
        assert_eq!(
            m.locate("steps[0].apply[0].spec.ingress[0].from[0].ipBlock.cidr")
                .map(|l| l.line),
            Some(8)
        );
    }

    #[test]
    fn a_missing_path_falls_back_to_its_parent() {
        let m = SourceMap::build(DOC).expect("parses");
        assert_eq!(
            m.locate("steps[0].apply[0].spec.egress").map(|l| l.line),
            Some(6)
        );
    }

    #[test]
    fn locations_map_back_to_paths() {
        let m = SourceMap::build(DOC).expect("parses");
        assert_eq!(
            m.path_at(Location {
                line: 3,
                column: 11
            }),
            Some("steps[0].name")
        );
        assert_eq!(
            m.path_at(Location { line: 6, column: 9 }),
            Some("steps[0].apply[0].spec")
        );
    }

    #[test]
    fn syntax_errors_carry_a_position() {
        let err = SourceMap::build("a: [1, 2\nb: c\n").expect_err("unclosed flow sequence");
        assert!(err.at.line >= 1, "{err:?}");
    }
}
