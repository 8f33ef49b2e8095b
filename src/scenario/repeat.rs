//! `repeat`: one policy template applied N times (`apply: [{repeat: 1000, policy: {...}}]`), for
//! clusters with many policies. In every string of the template, `{i...}` is replaced by the
//! copy's index, 0 to N-1, through a left-to-right chain of `/ D` (integer division) and `% M`
//! (remainder), with an optional zero-padded width: `{i}`, `{i%10}`, `{i/10%10:02}`.
//! Any other `{` (one not followed by the word `i`) is kept as written.

use serde_json::Value;

/// The most copies one `repeat` may make.
pub const MAX_REPEAT: u64 = 10_000;

/// One `{i...}` expression: the operations in order, and the zero-padded width.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Expr {
    ops: Vec<(char, u64)>,
    width: usize,
}

impl Expr {
    fn eval(&self, i: u64) -> String {
        let v = self.ops.iter().fold(i, |v, &(op, n)| match op {
            '/' => v / n,
            _ => v % n,
        });
        format!("{v:0w$}", w = self.width)
    }
}

/// Parses the inside of `{...}` after `i`: ` / 10 % 10 :02`. Spaces are allowed around the
/// operators.
fn parse_expr(body: &str) -> Result<Expr, String> {
    let (ops_text, width) = match body.split_once(':') {
        Some((ops, w)) => {
            let w = w.trim();
            let width = w
                .parse::<usize>()
                .ok()
                .filter(|w| *w <= 20)
                .ok_or_else(|| format!("width {w:?} must be a number up to 20 (e.g. :03)"))?;
            (ops, width)
        }
        None => (body, 0),
    };
    let mut ops = Vec::new();
    let mut rest = ops_text.trim();
    while let Some(op) = rest.chars().next() {
        if op != '/' && op != '%' {
            return Err(format!(
                "expected / or % after i, found {rest:?} (e.g. {{i}}, {{i%10}}, {{i/10%10:02}})"
            ));
        }
        let after = rest[1..].trim_start();
        let digits = after.len() - after.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let n: u64 = after[..digits]
            .parse()
            .map_err(|_| format!("{op} needs a number after it"))?;
        if n == 0 {
            return Err(format!("{op} 0 is undefined"));
        }
        ops.push((op, n));
        rest = after[digits..].trim_start();
    }
    Ok(Expr { ops, width })
}

/// A string of the template, split into literal text and expressions.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Index(Expr),
}

fn parse_string(s: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut rest = s;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        // `{i` not followed by more of a word (`{index}` is text) starts an expression.
        let trimmed = after.trim_start();
        let is_index = trimmed.starts_with('i')
            && !trimmed[1..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
        if !is_index {
            text.push_str(&rest[..=start]);
            rest = after;
            continue;
        }
        let Some(end) = after.find('}') else {
            return Err(format!("{s:?}: `{{i` is not closed by `}}`"));
        };
        text.push_str(&rest[..start]);
        if !text.is_empty() {
            parts.push(Part::Text(std::mem::take(&mut text)));
        }
        let body = after[..end].trim_start();
        let expr = parse_expr(&body[1..]).map_err(|m| format!("{s:?}: {m}"))?;
        parts.push(Part::Index(expr));
        rest = &after[end + 1..];
    }
    text.push_str(rest);
    if !text.is_empty() {
        parts.push(Part::Text(text));
    }
    Ok(parts)
}

/// A policy template with its expressions parsed once: each copy only evaluates them.
#[derive(Debug, Clone)]
pub struct Template {
    root: Node,
}

/// The template's value with every string split into its parts.
#[derive(Debug, Clone)]
enum Node {
    Text(Vec<Part>),
    Array(Vec<Node>),
    Object(Vec<(String, Node)>),
    Other(Value),
}

/// A template error: the field path inside the template, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub path: String,
    pub message: String,
}

impl Template {
    /// Parses every string of `value`; an `{i...}` that is not a well-formed expression is an
    /// error naming its field.
    pub fn new(value: &Value) -> Result<Template, TemplateError> {
        fn compile(v: &Value, path: &str) -> Result<Node, TemplateError> {
            Ok(match v {
                Value::String(s) => {
                    Node::Text(parse_string(s).map_err(|message| TemplateError {
                        path: path.to_string(),
                        message,
                    })?)
                }
                Value::Array(items) => Node::Array(
                    items
                        .iter()
                        .enumerate()
                        .map(|(k, x)| compile(x, &format!("{path}[{k}]")))
                        .collect::<Result<_, _>>()?,
                ),
                Value::Object(map) => Node::Object(
                    map.iter()
                        .map(|(k, x)| {
                            let p = if path.is_empty() {
                                k.clone()
                            } else {
                                format!("{path}.{k}")
                            };
                            Ok((k.clone(), compile(x, &p)?))
                        })
                        .collect::<Result<_, _>>()?,
                ),
                other => Node::Other(other.clone()),
            })
        }
        Ok(Template {
            root: compile(value, "")?,
        })
    }

    /// The copy with index `i`.
    pub fn instance(&self, i: u64) -> Value {
        fn fill(n: &Node, i: u64) -> Value {
            match n {
                Node::Text(parts) => Value::String(
                    parts
                        .iter()
                        .map(|p| match p {
                            Part::Text(t) => t.clone(),
                            Part::Index(e) => e.eval(i),
                        })
                        .collect(),
                ),
                Node::Array(items) => Value::Array(items.iter().map(|x| fill(x, i)).collect()),
                Node::Object(fields) => Value::Object(
                    fields
                        .iter()
                        .map(|(k, x)| (k.clone(), fill(x, i)))
                        .collect(),
                ),
                Node::Other(v) => v.clone(),
            }
        }
        fill(&self.root, i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expressions_divide_and_take_remainders_left_to_right_with_padding() {
        let t = Template::new(&json!({
            "metadata": {"name": "p-{i:04}", "namespace": "ns-{i%10:02}"},
            "spec": {"podSelector": {"matchLabels": {"pod": "pod-{ i / 10 % 10 :02}"}},
                     "n": 5, "keep": "{not an index} {x} {index}", "list": ["{i/100}"]},
        }))
        .expect("template");
        assert_eq!(
            t.instance(437),
            json!({
                "metadata": {"name": "p-0437", "namespace": "ns-07"},
                "spec": {"podSelector": {"matchLabels": {"pod": "pod-03"}},
                         "n": 5, "keep": "{not an index} {x} {index}", "list": ["4"]},
            })
        );
        assert_eq!(t.instance(0)["metadata"]["name"], json!("p-0000"));
    }

    #[test]
    fn bad_expressions_name_the_field_and_the_problem() {
        for (value, path, needle) in [
            (json!({"a": {"b": "x-{i*2}"}}), "a.b", "expected / or %"),
            (json!({"a": ["ok", "x-{i%0}"]}), "a[1]", "% 0 is undefined"),
            (json!({"a": "x-{i/}"}), "a", "/ needs a number"),
            (json!({"a": "x-{i:abc}"}), "a", "width"),
            (json!({"a": "x-{i%3"}), "a", "not closed"),
        ] {
            let e = Template::new(&value).expect_err("must be refused");
            assert_eq!(e.path, path, "{value}");
            assert!(e.message.contains(needle), "{}: {}", value, e.message);
        }
    }
}
