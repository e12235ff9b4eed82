//! Protobuf well-known types <-> Rust values: `google.protobuf.Value` <->
//! `serde_json::Value`, `Timestamp` and `Duration` <-> microseconds (the
//! unit witness stores and compares times in).

use prost_types::value::Kind;
use serde_json::Value;

/// Why a protobuf value has no Rust counterpart. Each names the field
/// (as the caller called it) so a refusal can say which one was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    /// JSON has no NaN or infinity.
    #[error("{field}: numbers must be finite")]
    NonFiniteNumber { field: String },
    /// A Duration's nanos outside `0..1e9`.
    #[error("{field}: nanos must be in [0, 999999999], got {nanos}")]
    NanosOutOfRange { field: String, nanos: i32 },
    /// A zero or negative Duration where a positive one is required.
    #[error("{field}: must be positive")]
    NotPositive { field: String },
    /// Positive, but under a microsecond: witness keeps time in
    /// microseconds, so it would be zero.
    #[error("{field}: {nanos}ns is below witness's resolution; the shortest timeout is 1 microsecond (1µs)")]
    BelowResolution { field: String, nanos: i32 },
}

/// Converts JSON to a protobuf `Value`.
pub fn json_to_proto(v: &Value) -> prost_types::Value {
    let kind = match v {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.iter().map(json_to_proto).collect(),
        }),
        Value::Object(map) => Kind::StructValue(prost_types::Struct {
            fields: map
                .iter()
                .map(|(k, v)| (k.clone(), json_to_proto(v)))
                .collect(),
        }),
    };
    prost_types::Value { kind: Some(kind) }
}

/// Converts a protobuf `Value` to JSON; unset is `null`. Protobuf numbers
/// are doubles: whole ones come back as JSON integers (`2`, not `2.0`),
/// as JavaScript would print them. `field` names the value in errors.
pub fn json_from_proto(field: &str, v: Option<prost_types::Value>) -> Result<Value, ConvertError> {
    match v {
        None => Ok(Value::Null),
        Some(v) => to_json(field, v),
    }
}

fn to_json(field: &str, v: prost_types::Value) -> Result<Value, ConvertError> {
    Ok(match v.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::BoolValue(b)) => Value::Bool(b),
        Some(Kind::StringValue(s)) => Value::String(s),
        Some(Kind::NumberValue(n)) => Value::Number(number(field, n)?),
        Some(Kind::ListValue(l)) => Value::Array(
            l.values
                .into_iter()
                .map(|v| to_json(field, v))
                .collect::<Result<_, _>>()?,
        ),
        Some(Kind::StructValue(s)) => Value::Object(
            s.fields
                .into_iter()
                .map(|(k, v)| Ok((k, to_json(field, v)?)))
                .collect::<Result<_, ConvertError>>()?,
        ),
    })
}

/// A double as a JSON number. A whole one becomes an integer with the
/// digits JavaScript prints for it (shortest round-trip digits, so 2^60 is
/// 1152921504606847000), which is also what the server's canonical form
/// stores; one beyond 64 bits, or with a fraction, stays a float.
fn number(field: &str, n: f64) -> Result<serde_json::Number, ConvertError> {
    let non_finite = || ConvertError::NonFiniteNumber {
        field: field.to_string(),
    };
    if !n.is_finite() {
        return Err(non_finite());
    }
    if n.fract() == 0.0 {
        // Rust's Display writes the same shortest digits, without exponent.
        let digits = format!("{n}");
        if let Ok(u) = digits.parse::<u64>() {
            return Ok(u.into());
        }
        if let Ok(i) = digits.parse::<i64>() {
            return Ok(i.into());
        }
    }
    serde_json::Number::from_f64(n).ok_or_else(non_finite)
}

/// Microseconds since the Unix epoch as a `Timestamp`.
pub fn timestamp(us: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: us.div_euclid(1_000_000),
        nanos: (us.rem_euclid(1_000_000) * 1000) as i32,
    }
}

/// A `Timestamp` in microseconds since the Unix epoch (saturating; sub-
/// microsecond nanos are dropped).
pub fn micros_from_timestamp(t: &prost_types::Timestamp) -> i64 {
    t.seconds
        .saturating_mul(1_000_000)
        .saturating_add(i64::from(t.nanos) / 1000)
}

/// Microseconds as a `Duration`.
pub fn duration(us: i64) -> prost_types::Duration {
    prost_types::Duration {
        seconds: us / 1_000_000,
        nanos: ((us % 1_000_000) * 1000) as i32,
    }
}

/// A positive `Duration` in microseconds (saturating); `field` names it in
/// errors.
pub fn micros_from_duration(field: &str, d: &prost_types::Duration) -> Result<i64, ConvertError> {
    if !(0..1_000_000_000).contains(&d.nanos) {
        return Err(ConvertError::NanosOutOfRange {
            field: field.to_string(),
            nanos: d.nanos,
        });
    }
    if d.seconds < 0 || (d.seconds == 0 && d.nanos == 0) {
        return Err(ConvertError::NotPositive {
            field: field.to_string(),
        });
    }
    if d.seconds == 0 && d.nanos < 1000 {
        return Err(ConvertError::BelowResolution {
            field: field.to_string(),
            nanos: d.nanos,
        });
    }
    Ok(d.seconds
        .saturating_mul(1_000_000)
        .saturating_add(i64::from(d.nanos) / 1000))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn num(n: f64) -> prost_types::Value {
        prost_types::Value {
            kind: Some(Kind::NumberValue(n)),
        }
    }

    #[test]
    fn json_round_trips_with_whole_numbers_as_integers() {
        let v = json!({"a": [1, 2.5, "x", null, true, -3], "b": {"c": -0.0}});
        let back = json_from_proto("input", Some(json_to_proto(&v))).unwrap();
        assert_eq!(
            back,
            json!({"a": [1, 2.5, "x", null, true, -3], "b": {"c": 0}})
        );
        assert_eq!(
            back.to_string(),
            r#"{"a":[1,2.5,"x",null,true,-3],"b":{"c":0}}"#
        );
        assert_eq!(json_from_proto("input", None).unwrap(), Value::Null);
    }

    #[test]
    fn whole_numbers_have_javascripts_digits_and_beyond_64_bits_stay_floats() {
        let two_60 = json_from_proto("n", Some(num(2f64.powi(60)))).unwrap();
        assert_eq!(two_60, json!(1_152_921_504_606_847_000u64));
        let low = json_from_proto("n", Some(num(-(2f64.powi(60))))).unwrap();
        assert_eq!(low, json!(-1_152_921_504_606_847_000i64));
        // 2^63 prints as 9223372036854776000, which no 64-bit integer holds.
        for n in [1e20, 2f64.powi(64), -(2f64.powi(63)), 1e300] {
            let v = json_from_proto("n", Some(num(n))).unwrap();
            assert!(v.is_f64(), "{v}");
        }
        assert!(json_from_proto("n", Some(num(0.5))).unwrap().is_f64());
    }

    #[test]
    fn refuses_non_finite_numbers_naming_the_field() {
        for n in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let list = prost_types::Value {
                kind: Some(Kind::ListValue(prost_types::ListValue {
                    values: vec![num(1.0), num(n)],
                })),
            };
            let e = json_from_proto("answer", Some(list)).unwrap_err();
            assert_eq!(e.to_string(), "answer: numbers must be finite");
        }
    }

    #[test]
    fn durations_must_be_positive() {
        let ok = prost_types::Duration {
            seconds: 2,
            nanos: 5000,
        };
        assert_eq!(micros_from_duration("timeout", &ok).unwrap(), 2_000_005);
        let zero = prost_types::Duration::default();
        assert_eq!(
            micros_from_duration("timeout", &zero)
                .unwrap_err()
                .to_string(),
            "timeout: must be positive"
        );
        for nanos in [1, 999] {
            let tiny = prost_types::Duration { seconds: 0, nanos };
            let e = micros_from_duration("timeout", &tiny).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("timeout: {nanos}ns is below witness's resolution; the shortest timeout is 1 microsecond (1µs)")
            );
        }
        let one_us = prost_types::Duration {
            seconds: 0,
            nanos: 1000,
        };
        assert_eq!(micros_from_duration("timeout", &one_us).unwrap(), 1);
        for nanos in [-1, 1_000_000_000, i32::MAX] {
            let bad = prost_types::Duration { seconds: 1, nanos };
            let e = micros_from_duration("timeout", &bad).unwrap_err();
            assert!(e.to_string().starts_with("timeout: nanos"), "{e}");
        }
        let huge = prost_types::Duration {
            seconds: i64::MAX,
            nanos: 0,
        };
        assert_eq!(micros_from_duration("timeout", &huge).unwrap(), i64::MAX);
        assert_eq!(
            micros_from_duration("t", &duration(1_500_000)).unwrap(),
            1_500_000
        );
    }

    #[test]
    fn timestamps_round_trip_before_and_after_the_epoch() {
        for us in [-1_500_000, -1, 0, 1, 1_700_000_000_123_456] {
            let t = timestamp(us);
            assert!((0..1_000_000_000).contains(&t.nanos), "{t:?}");
            assert_eq!(micros_from_timestamp(&t), us);
        }
    }
}
