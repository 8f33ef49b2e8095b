//! PATCH bodies applied to an object's JSON: merge, strategic merge, apply and JSON patch.
//
// Strategic merge and server-side apply are approximated by RFC 7386 merge: exact for the label
// and annotation maps netassay patches; lists are replaced rather than merged by key.

use serde_json::Value;

/// The patch flavours, chosen by the request's Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PatchKind {
    Merge,
    Strategic,
    /// Server-side apply; creates the object when it does not exist.
    Apply,
    Json,
}

impl PatchKind {
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let media = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match media.as_str() {
            "application/merge-patch+json" => Some(PatchKind::Merge),
            "application/strategic-merge-patch+json" => Some(PatchKind::Strategic),
            "application/apply-patch+yaml" => Some(PatchKind::Apply),
            "application/json-patch+json" => Some(PatchKind::Json),
            _ => None,
        }
    }
}

/// Parses a patch body: JSON, or for server-side apply also YAML (kubectl may send either).
pub(crate) fn parse_body(kind: PatchKind, body: &[u8]) -> Result<Value, String> {
    match serde_json::from_slice(body) {
        Ok(v) => Ok(v),
        Err(json_err) if kind == PatchKind::Apply => {
            let text = std::str::from_utf8(body).map_err(|e| e.to_string())?;
            serde_saphyr::from_str::<Value>(text)
                .map_err(|yaml_err| format!("{json_err}; as YAML: {yaml_err}"))
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Applies `patch` (already parsed) to `target` in place.
pub(crate) fn apply(kind: PatchKind, target: &mut Value, patch: &Value) -> Result<(), String> {
    match kind {
        PatchKind::Merge | PatchKind::Apply => {
            merge(target, patch, false);
            Ok(())
        }
        PatchKind::Strategic => {
            merge(target, patch, true);
            Ok(())
        }
        PatchKind::Json => json_patch(target, patch),
    }
}

/// RFC 7386: objects merge recursively, `null` deletes, anything else replaces. In strategic mode
/// `$`-prefixed directive keys are dropped rather than stored (list merge keys are not modelled).
fn merge(target: &mut Value, patch: &Value, strategic: bool) {
    let Value::Object(patch_map) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    if let Value::Object(target_map) = target {
        for (key, value) in patch_map {
            if strategic && key.starts_with('$') {
                continue;
            }
            if value.is_null() {
                target_map.remove(key);
            } else {
                merge(
                    target_map.entry(key.clone()).or_insert(Value::Null),
                    value,
                    strategic,
                );
            }
        }
    }
}

/// Splits a JSON pointer into unescaped reference tokens.
fn pointer_tokens(pointer: &str) -> Result<Vec<String>, String> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let rest = pointer
        .strip_prefix('/')
        .ok_or_else(|| format!("invalid JSON pointer {pointer:?}"))?;
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn parent_of<'a>(
    doc: &'a mut Value,
    tokens: &[String],
    pointer: &str,
) -> Result<&'a mut Value, String> {
    let mut cur = doc;
    for t in tokens {
        cur = match cur {
            Value::Object(m) => m.get_mut(t),
            Value::Array(a) => t.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| format!("path {pointer:?} does not exist"))?;
    }
    Ok(cur)
}

fn add(doc: &mut Value, pointer: &str, value: Value) -> Result<(), String> {
    let tokens = pointer_tokens(pointer)?;
    let Some((last, parents)) = tokens.split_last() else {
        *doc = value;
        return Ok(());
    };
    match parent_of(doc, parents, pointer)? {
        Value::Object(m) => {
            m.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(a) => {
            let index = if last == "-" {
                a.len()
            } else {
                last.parse::<usize>()
                    .ok()
                    .filter(|i| *i <= a.len())
                    .ok_or_else(|| format!("invalid array index in {pointer:?}"))?
            };
            a.insert(index, value);
            Ok(())
        }
        _ => Err(format!(
            "path {pointer:?} does not point into an object or array"
        )),
    }
}

fn remove(doc: &mut Value, pointer: &str) -> Result<Value, String> {
    let tokens = pointer_tokens(pointer)?;
    let (last, parents) = tokens
        .split_last()
        .ok_or_else(|| "cannot remove the whole document".to_string())?;
    let missing = || format!("path {pointer:?} does not exist");
    match parent_of(doc, parents, pointer)? {
        Value::Object(m) => m.remove(last).ok_or_else(missing),
        Value::Array(a) => {
            let i = last
                .parse::<usize>()
                .ok()
                .filter(|i| *i < a.len())
                .ok_or_else(missing)?;
            Ok(a.remove(i))
        }
        _ => Err(missing()),
    }
}

fn json_patch(doc: &mut Value, patch: &Value) -> Result<(), String> {
    let ops = patch
        .as_array()
        .ok_or_else(|| "a JSON patch must be an array of operations".to_string())?;
    for op in ops {
        let name = op["op"].as_str().unwrap_or("");
        let path = op["path"]
            .as_str()
            .ok_or_else(|| format!("operation {op} has no path"))?;
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| format!("operation {op} has no value"))
        };
        let from = || {
            op["from"]
                .as_str()
                .ok_or_else(|| format!("operation {op} has no from"))
        };
        match name {
            "add" => add(doc, path, value()?)?,
            "remove" => {
                remove(doc, path)?;
            }
            "replace" => {
                remove(doc, path)?;
                add(doc, path, value()?)?;
            }
            "move" => {
                let v = remove(doc, from()?)?;
                add(doc, path, v)?;
            }
            "copy" => {
                let v = doc
                    .pointer(from()?)
                    .cloned()
                    .ok_or_else(|| format!("path {:?} does not exist", from().unwrap_or("")))?;
                add(doc, path, v)?;
            }
            "test" => {
                if doc.pointer(path) != Some(&value()?) {
                    return Err(format!("test failed at {path:?}"));
                }
            }
            other => return Err(format!("unknown JSON patch operation {other:?}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_sets_and_removes_labels() {
        let mut obj = json!({"metadata": {"labels": {"a": "1", "b": "2"}}});
        let patch = json!({"metadata": {"labels": {"a": null, "c": "3"}}});
        apply(PatchKind::Merge, &mut obj, &patch).unwrap();
        assert_eq!(obj, json!({"metadata": {"labels": {"b": "2", "c": "3"}}}));
    }

    #[test]
    fn strategic_merge_drops_directives() {
        let mut obj = json!({"metadata": {"labels": {"a": "1"}}});
        let patch = json!({"metadata": {"labels": {"$patch": "merge", "b": "2"}}});
        apply(PatchKind::Strategic, &mut obj, &patch).unwrap();
        assert_eq!(obj, json!({"metadata": {"labels": {"a": "1", "b": "2"}}}));
    }

    #[test]
    fn json_patch_adds_replaces_and_removes_with_escaped_pointers() {
        let mut obj = json!({"metadata": {"labels": {"a": "1"}}});
        let patch = json!([
            {"op": "add", "path": "/metadata/labels/app.kubernetes.io~1name", "value": "x"},
            {"op": "replace", "path": "/metadata/labels/a", "value": "2"},
            {"op": "test", "path": "/metadata/labels/a", "value": "2"},
        ]);
        apply(PatchKind::Json, &mut obj, &patch).unwrap();
        assert_eq!(
            obj,
            json!({"metadata": {"labels": {"a": "2", "app.kubernetes.io/name": "x"}}})
        );
        let bad = json!([{"op": "remove", "path": "/metadata/labels/zzz"}]);
        assert!(apply(PatchKind::Json, &mut obj, &bad).is_err());
    }

    #[test]
    fn content_types_choose_the_flavour() {
        assert_eq!(
            PatchKind::from_content_type("application/merge-patch+json; charset=utf-8"),
            Some(PatchKind::Merge)
        );
        assert_eq!(
            PatchKind::from_content_type("application/apply-patch+yaml"),
            Some(PatchKind::Apply)
        );
        assert_eq!(PatchKind::from_content_type("text/plain"), None);
    }
}
