//! Canonical JSON: the JSON value and key strategies every other part
//! draws from, and the oracles written from JavaScript's rules (equality,
//! own-property key order, `Number#toString`).

use proptest::prelude::*;
use serde_json::{json, Value};

/// Keys that exercise the ordering rules: integer-like, leading zeros,
/// 2^32-1 and beyond, case, astral and compatibility characters.
pub(crate) fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z]{0,3}",
        (0u64..5_000_000_000).prop_map(|n| n.to_string()),
        Just("4294967294".to_string()),
        Just("4294967295".to_string()),
        Just("01".to_string()),
        Just("-1".to_string()),
        Just("ﬁ".to_string()),
        Just("😀".to_string()),
        "\\PC{0,3}",
    ]
}

pub(crate) fn number() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>().prop_filter("finite", |f| f.is_finite()),
        any::<i64>().prop_map(|i| i as f64),
        (-1e22f64..1e22),
        Just(1e21),
        Just(1e20),
        Just(-0.0),
        Just(5e-324),
        Just(0.1),
    ]
}

pub(crate) fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number().prop_map(|f| json!(f)),
        any::<i64>().prop_map(|i| json!(i)),
        any::<u64>().prop_map(|u| json!(u)),
        "\\PC{0,8}".prop_map(Value::String),
        "[\u{0}-\u{1f}\u{7f}\u{2028}\u{2029}\"\\\\]{0,4}".prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Equality as JavaScript sees JSON: numbers as doubles (-0 == 0).
pub(crate) fn js_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| js_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| js_eq(v, w)))
        }
        _ => a == b,
    }
}

/// The keys of a JSON object text, in the order they appear.
pub(crate) fn key_order(text: &str) -> Vec<String> {
    struct Keys;
    impl<'de> serde::de::Visitor<'de> for Keys {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut m: A,
        ) -> Result<Self::Value, A::Error> {
            let mut keys = Vec::new();
            while let Some((k, _)) = m.next_entry::<String, serde::de::IgnoredAny>()? {
                keys.push(k);
            }
            Ok(keys)
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    serde::Deserializer::deserialize_map(&mut de, Keys).unwrap()
}

/// JavaScript's own-property order, written from the ECMAScript rule.
pub(crate) fn js_sorted(mut keys: Vec<String>) -> Vec<String> {
    let index = |k: &str| -> Option<u64> {
        let n: u64 = k.parse().ok()?;
        (n.to_string() == k && n < u64::from(u32::MAX)).then_some(n)
    };
    keys.sort_by(|a, b| match (index(a), index(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a
            .encode_utf16()
            .collect::<Vec<_>>()
            .cmp(&b.encode_utf16().collect()),
    });
    keys
}

/// JavaScript's `Number#toString` grammar, and its switch to exponents.
pub(crate) fn js_number_ok(text: &str, f: f64) -> bool {
    let (mantissa, exp) = match text.split_once('e') {
        Some((m, e)) => (m, Some(e)),
        None => (text, None),
    };
    let m = mantissa.strip_prefix('-').unwrap_or(mantissa);
    let digits_ok = !m.is_empty()
        && m.chars().all(|c| c.is_ascii_digit() || c == '.')
        && m.matches('.').count() <= 1
        && !(m.starts_with('0') && m.len() > 1 && !m.starts_with("0."))
        && !m.ends_with('.');
    let exp_ok = exp.is_none_or(|e| {
        (e.starts_with('+') || e.starts_with('-')) && e[1..].chars().all(|c| c.is_ascii_digit())
    });
    let a = f.abs();
    let exponent_expected = a != 0.0 && !(1e-6..1e21).contains(&a);
    digits_ok && exp_ok && exp.is_some() == exponent_expected
}
