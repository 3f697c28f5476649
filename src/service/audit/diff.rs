//! Where two JSON documents differ, as paths an auditor can read (`answer.reasons[1].code`).

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// Enough to see what changed without an answer the size of the record.
pub const MAX_DIFFERENCES: usize = 100;

/// One place where the recorded and the recomputed values differ; `null` on the side where
/// the value is missing.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Difference {
    pub path: String,
    #[schema(value_type = Object, nullable)]
    pub original: Value,
    #[schema(value_type = Object, nullable)]
    pub replayed: Value,
}

/// The differences between `original` and `replayed`, depth first, in key order.
pub fn differences(original: &Value, replayed: &Value) -> Vec<Difference> {
    let mut out = Vec::new();
    walk(String::new(), Some(original), Some(replayed), &mut out);
    out
}

fn walk(path: String, a: Option<&Value>, b: Option<&Value>, out: &mut Vec<Difference>) {
    if out.len() >= MAX_DIFFERENCES || a == b {
        return;
    }
    let join = |key: &str| {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    };
    match (a, b) {
        (Some(Value::Object(x)), Some(Value::Object(y))) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                walk(join(key), x.get(key), y.get(key), out);
            }
        }
        (Some(Value::Array(x)), Some(Value::Array(y))) => {
            for i in 0..x.len().max(y.len()) {
                walk(format!("{path}[{i}]"), x.get(i), y.get(i), out);
            }
        }
        _ => out.push(Difference {
            path,
            original: a.cloned().unwrap_or(Value::Null),
            replayed: b.cloned().unwrap_or(Value::Null),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_name_each_changed_leaf() {
        let a = json!({"answer": {"outcome": "approved", "reasons": [{"code": "A"}, {"code": "B"}]}, "same": 1});
        let b = json!({"answer": {"outcome": "review", "reasons": [{"code": "A"}], "extra": true}, "same": 1});
        let d = differences(&a, &b);
        let paths: Vec<&str> = d.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(
            paths,
            ["answer.extra", "answer.outcome", "answer.reasons[1]"]
        );
        assert_eq!(d[1].original, "approved");
        assert_eq!(d[1].replayed, "review");
        assert_eq!(d[2].replayed, Value::Null);
        assert!(differences(&a, &a).is_empty());
    }

    #[test]
    fn differences_are_bounded() {
        let a = Value::Array((0..500).map(|i| json!(i)).collect());
        let b = Value::Array((0..500).map(|i| json!(i + 1)).collect());
        assert_eq!(differences(&a, &b).len(), MAX_DIFFERENCES);
    }
}
