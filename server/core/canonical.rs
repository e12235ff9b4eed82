//! Canonical JSON and the context hash.
//!
//! The output must equal the witness v0.1.1 TypeScript library's byte for
//! byte, so context hashes interoperate: RFC 8785 serialisation (no
//! whitespace, JavaScript number formatting, `JSON.stringify` string escapes)
//! with JavaScript's own object key order, which puts integer-like keys
//! (canonical decimal integers 0..=4294967294) first in ascending numeric
//! order and the other keys after them by UTF-16 code units.

use serde_json::Value;
use sha2::{Digest, Sha256};
use std::cmp::Ordering;

/// Serialises `value` canonically.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

/// Lowercase hex SHA-256 of the canonical JSON of `value`.
pub fn context_hash(value: &Value) -> String {
    sha256_hex(canonical_json(value).as_bytes())
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by(|a, b| js_key_order(a, b));
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, key);
                out.push(':');
                write_value(out, &map[key]);
            }
            out.push('}');
        }
    }
}

/// JavaScript numbers are IEEE doubles; format them as `Number#toString`.
fn write_number(out: &mut String, n: &serde_json::Number) {
    let f = n.as_f64().unwrap_or(0.0);
    out.push_str(format_js_number(f, &mut ryu_js::Buffer::new()));
}

/// `Number#toString` of a finite `f`.
pub(crate) fn format_js_number(f: f64, buf: &mut ryu_js::Buffer) -> &str {
    if f == 0.0 {
        // Covers -0, which JavaScript prints as "0".
        "0"
    } else {
        buf.format(f)
    }
}

fn write_string(out: &mut String, s: &str) {
    // serde_json escapes exactly what JSON.stringify escapes: `"`, `\`, and
    // control characters below U+0020 (short forms where they exist, else
    // lowercase \u00xx); U+007F, U+2028 and U+2029 stay raw.
    out.push_str(&serde_json::to_string(s).unwrap_or_default());
}

/// The array index value of a key, if JavaScript treats it as integer-like.
fn array_index(key: &str) -> Option<u32> {
    if key.is_empty() || key.len() > 10 || !key.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if key.len() > 1 && key.starts_with('0') {
        return None;
    }
    let n: u64 = key.parse().ok()?;
    (n <= 4_294_967_294).then_some(n as u32)
}

pub(crate) fn js_key_order(a: &str, b: &str) -> Ordering {
    match (array_index(a), array_index(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.encode_utf16().cmp(b.encode_utf16()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn canon(text: &str) -> String {
        canonical_json(&serde_json::from_str(text).expect("valid test JSON"))
    }

    #[test]
    fn sorts_keys_like_javascript() {
        assert_eq!(canon(r#"{"b":1,"a":2}"#), r#"{"a":2,"b":1}"#);
        assert_eq!(
            canon(r#"{"10":1,"9":2,"a":3,"B":4}"#),
            r#"{"9":2,"10":1,"B":4,"a":3}"#
        );
        assert_eq!(canon(r#"{"ﬁ":1,"😀":2}"#), r#"{"😀":2,"ﬁ":1}"#);
        // Leading zeros, negatives and 2^32-1 are ordinary string keys.
        assert_eq!(
            canon(r#"{"4294967295":1,"4294967294":2,"01":3,"-1":4,"0":5}"#),
            r#"{"0":5,"4294967294":2,"-1":4,"01":3,"4294967295":1}"#
        );
    }

    #[test]
    fn formats_numbers_like_javascript() {
        // Expected strings are what Node 20 prints for the same doubles.
        assert_eq!(canon("-0"), "0");
        assert_eq!(canon("-0.0"), "0");
        assert_eq!(canon("1e21"), "1e+21");
        assert_eq!(canon("1e20"), "100000000000000000000");
        assert_eq!(canon("1.0"), "1");
        assert_eq!(canon("0.1"), "0.1");
        assert_eq!(canon("1e-7"), "1e-7");
        assert_eq!(
            canonical_json(&json!(1.2345678901234568e23)),
            "1.2345678901234569e+23"
        );
        assert_eq!(canon("9007199254740993"), "9007199254740992");
        assert_eq!(canon("[1.5,-2,3e-5]"), "[1.5,-2,0.00003]");
    }

    #[test]
    fn escapes_strings_like_json_stringify() {
        assert_eq!(
            canonical_json(&json!("a\"b\\c\n\t\u{1}\u{7f}\u{2028}\u{2029}é")),
            "\"a\\\"b\\\\c\\n\\t\\u0001\u{7f}\u{2028}\u{2029}é\""
        );
        assert_eq!(canonical_json(&json!("\u{8}\u{c}\r")), r#""\b\f\r""#);
    }

    #[test]
    fn nests_without_whitespace() {
        assert_eq!(
            canon(r#"{ "z": [ {"y": null, "x": true} ], "a": false }"#),
            r#"{"a":false,"z":[{"x":true,"y":null}]}"#
        );
    }

    #[test]
    fn hash_is_sha256_of_canonical_form() {
        // sha256("{\"a\":2,\"b\":1}") computed independently with sha256sum.
        assert_eq!(
            context_hash(&json!({"b": 1, "a": 2})),
            sha256_hex(br#"{"a":2,"b":1}"#)
        );
        assert_eq!(
            context_hash(&json!({})),
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }
}
