//! Canonical JSON: keys sorted, no insignificant white space, numbers and strings exactly as
//! serde_json writes them. Sorting is done here rather than relying on the map type, so the
//! form does not change if some dependency turns on serde_json's `preserve_order`.

use serde_json::Value;

pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write(value, &mut out);
    out
}

fn write(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(v, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sorts_keys_at_every_depth() {
        let v = json!({"b": 1, "a": {"d": [ {"z": 1, "y": "é"} ], "c": null}});
        assert_eq!(
            canonical_json(&v),
            r#"{"a":{"c":null,"d":[{"y":"é","z":1}]},"b":1}"#
        );
    }

    #[test]
    fn is_idempotent_and_keeps_exact_numbers() {
        let v: Value = serde_json::from_str(r#"{"x": 12500.10, "s": "0.10"}"#).unwrap();
        let once = canonical_json(&v);
        assert_eq!(once, r#"{"s":"0.10","x":12500.10}"#);
        let again: Value = serde_json::from_str(&once).unwrap();
        assert_eq!(canonical_json(&again), once);
    }
}
