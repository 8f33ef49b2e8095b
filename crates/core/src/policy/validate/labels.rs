//! Label selectors and labels (apimachinery/pkg/apis/meta/v1/validation).

use super::field_error::{child, index, FieldError};
use super::names::{is_qualified_name, is_valid_label_value};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use std::collections::BTreeMap;

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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
}
