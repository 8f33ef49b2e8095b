//! Label selectors compiled once and matched against label maps (metav1.LabelSelector semantics).

use crate::model::Labels;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Requirement {
    key: String,
    op: Op,
    values: Vec<String>,
}

/// A label selector ready to match: matchLabels and matchExpressions, all ANDed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unsupported selector operator {0:?}")]
pub struct SelectorError(pub String);

impl Selector {
    /// Compiles a selector. An empty selector matches everything.
    pub fn compile(sel: &LabelSelector) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        for (k, v) in sel.match_labels.iter().flatten() {
            requirements.push(Requirement {
                key: k.clone(),
                op: Op::In,
                values: vec![v.clone()],
            });
        }
        for expr in sel.match_expressions.iter().flatten() {
            let op = match expr.operator.as_str() {
                "In" => Op::In,
                "NotIn" => Op::NotIn,
                "Exists" => Op::Exists,
                "DoesNotExist" => Op::DoesNotExist,
                other => return Err(SelectorError(other.to_string())),
            };
            requirements.push(Requirement {
                key: expr.key.clone(),
                op,
                values: expr.values.clone().unwrap_or_default(),
            });
        }
        Ok(Selector { requirements })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Kubernetes semantics: `NotIn` and `DoesNotExist` match when the key is absent.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.requirements.iter().all(|r| {
            let v = labels.get(&r.key);
            match r.op {
                Op::In => v.is_some_and(|v| r.values.iter().any(|x| x == v)),
                Op::NotIn => v.is_none_or(|v| !r.values.iter().any(|x| x == v)),
                Op::Exists => v.is_some(),
                Op::DoesNotExist => v.is_none(),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(json: &str) -> Selector {
        let s: LabelSelector = serde_json::from_str(json).expect("selector json");
        Selector::compile(&s).expect("compiles")
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    // Rule (metav1.LabelSelector): requirements are ANDed; an empty selector selects everything;
    // NotIn and DoesNotExist are satisfied by an absent key; In and Exists need the key.
    #[test]
    fn selector_semantics_table() {
        let cases = [
            ("{}", vec![], true),
            ("{}", vec![("a", "1")], true),
            (r#"{"matchLabels":{"a":"1"}}"#, vec![("a", "1")], true),
            (r#"{"matchLabels":{"a":"1"}}"#, vec![("a", "2")], false),
            (
                r#"{"matchLabels":{"a":"1","b":"2"}}"#,
                vec![("a", "1")],
                false,
            ),
            (
                r#"{"matchExpressions":[{"key":"a","operator":"In","values":["1","2"]}]}"#,
                vec![("a", "2")],
                true,
            ),
            (
                r#"{"matchExpressions":[{"key":"a","operator":"In","values":["1"]}]}"#,
                vec![],
                false,
            ),
            (
                r#"{"matchExpressions":[{"key":"a","operator":"NotIn","values":["1"]}]}"#,
                vec![],
                true,
            ),
            (
                r#"{"matchExpressions":[{"key":"a","operator":"NotIn","values":["1"]}]}"#,
                vec![("a", "1")],
                false,
            ),
            (
                r#"{"matchExpressions":[{"key":"a","operator":"Exists"}]}"#,
                vec![("a", "")],
                true,
            ),
            (
                r#"{"matchExpressions":[{"key":"a","operator":"Exists"}]}"#,
                vec![],
                false,
            ),
            (
                r#"{"matchExpressions":[{"key":"a","operator":"DoesNotExist"}]}"#,
                vec![],
                true,
            ),
            (
                r#"{"matchExpressions":[{"key":"a","operator":"DoesNotExist"}]}"#,
                vec![("a", "x")],
                false,
            ),
            (
                r#"{"matchLabels":{"a":"1"},"matchExpressions":[{"key":"b","operator":"DoesNotExist"}]}"#,
                vec![("a", "1"), ("b", "2")],
                false,
            ),
        ];
        for (json, l, want) in cases {
            assert_eq!(sel(json).matches(&labels(&l)), want, "{json} on {l:?}");
        }
    }

    #[test]
    fn unknown_operator_is_an_error_not_a_silent_match() {
        let s: LabelSelector = serde_json::from_str(
            r#"{"matchExpressions":[{"key":"a","operator":"Gt","values":["1"]}]}"#,
        )
        .expect("json");
        assert_eq!(Selector::compile(&s), Err(SelectorError("Gt".into())));
    }
}
