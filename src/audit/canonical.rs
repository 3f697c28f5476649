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
                write_str(key, out);
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
        Value::String(text) => write_str(text, out),
        scalar => {
            use std::fmt::Write as _;
            // Writing to a String cannot fail.
            let _ = write!(out, "{scalar}");
        }
    }
}

/// A string as serde_json writes it. Most strings of a decision (keys, codes, amounts, ids)
/// need no escape and are copied as they are, instead of being cloned into a `Value` and
/// formatted into a string of their own (a decision's payload has hundreds of them).
pub(super) fn write_str(text: &str, out: &mut String) {
    // serde_json escapes `"`, `\` and the control characters below 0x20, nothing else. The test
    // reads every byte without stopping early, so the compiler checks many bytes at a time:
    // almost no string needs escaping, and a byte at a time was 2 % of a decision's CPU.
    let plain = !text.bytes().fold(false, |seen, b| {
        seen | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if plain {
        out.reserve(text.len() + 2);
        out.push('"');
        out.push_str(text);
        out.push('"');
    } else {
        use std::fmt::Write as _;
        let _ = write!(out, "{}", Value::String(text.to_owned()));
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
    fn strings_are_escaped_as_serde_json_does() {
        for text in [
            "plain",
            "",
            "é ü 中",
            "q\"uote",
            "back\\slash",
            "tab\tnl\n",
            "\u{1}\u{1f}\u{7f}",
            "/<>&'",
            "del\u{7f}",
        ] {
            let v = json!({ text: text });
            let expected = format!(
                "{{{}:{}}}",
                Value::String(text.into()),
                Value::String(text.into())
            );
            assert_eq!(canonical_json(&v), expected, "{text:?}");
        }
        assert_eq!(
            canonical_json(&json!([1.5, -2, true, null])),
            "[1.5,-2,true,null]"
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
