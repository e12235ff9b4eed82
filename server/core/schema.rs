//! Shape checks on caller JSON: JSON Schema for answers, and size and depth
//! limits for every JSON field.

use super::{Refusal, Result};
use serde_json::Value;

/// Checks that `schema` is a JSON object and a valid JSON Schema.
pub fn check_schema(schema: &Value) -> Result<()> {
    if !schema.is_object() {
        return Err(Refusal::invalid("response_schema: must be a JSON object"));
    }
    jsonschema::validator_for(schema)
        .map(|_| ())
        .map_err(|e| Refusal::invalid(format!("response_schema: not a valid JSON Schema: {e}")))
}

/// Validates an answer against the decision's schema; the error names the
/// failing path inside `answer`.
pub fn validate_answer(schema: &Value, answer: &Value) -> Result<()> {
    let validator = jsonschema::validator_for(schema)
        .map_err(|e| Refusal::invalid(format!("response_schema: not a valid JSON Schema: {e}")))?;
    let first = validator.iter_errors(answer).next().map(|err| {
        let path = err.instance_path().to_string();
        let path = if path.is_empty() {
            "/".to_string()
        } else {
            path
        };
        Refusal::invalid(format!(
            "answer: does not match response_schema at {path}: {err}"
        ))
    });
    first.map_or(Ok(()), Err)
}

/// Limits on caller-supplied JSON and strings.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest canonical JSON size of `input`, `answer`, `response_schema`
    /// or a context snapshot, in bytes.
    pub max_json_bytes: usize,
    /// Deepest nesting of arrays and objects in those fields.
    pub max_json_depth: usize,
    /// Longest `kind`, role, surface, rationale or reason, in bytes.
    pub max_string_len: usize,
    /// Most entries in `authorized_roles` or `surfaces`, and in the `kinds`
    /// and `surfaces` filters of a list or a stream.
    pub max_list_len: usize,
    /// Largest gRPC request message, in bytes.
    pub max_message_bytes: usize,
    /// Most streams (StreamDecisions + WatchDecision) one principal may
    /// hold open at once.
    pub max_streams_per_principal: usize,
    /// Sustained requests per second per principal (0: unlimited), with
    /// bursts up to `burst`.
    pub requests_per_second: u32,
    /// Requests a principal may make at once above that rate.
    pub burst: u32,
    /// Longest `timeout` an Ask may request and longest policy duration, so
    /// every derived timestamp fits `google.protobuf.Timestamp`.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub max_timeout: std::time::Duration,
    /// A connection that has not begun a handshake (HTTP/2 preface, HTTP/1
    /// request line, TLS ClientHello) within this is closed.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub handshake_timeout: std::time::Duration,
    /// Open connections beyond this are closed as soon as accepted.
    pub max_connections: usize,
    /// Connections on which no request has authenticated yet (in dev mode,
    /// none has started). Past it the oldest such connection is closed, so a
    /// flood of strangers cannot keep a new client, or a health check, out.
    pub max_unauthenticated_connections: usize,
    /// A request's body must have arrived this long after its headers, or
    /// the request ends with DEADLINE_EXCEEDED (HTTP 408).
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub body_timeout: std::time::Duration,
    /// A connection with no request in flight for this long is closed (an
    /// open stream is a request in flight).
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub idle_timeout: std::time::Duration,
}

/// Default `max_timeout`: 3650 days.
pub const DEFAULT_MAX_TIMEOUT: std::time::Duration =
    std::time::Duration::from_secs(3650 * 24 * 3600);

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_json_bytes: 64 * 1024,
            max_json_depth: 32,
            max_string_len: 4096,
            max_list_len: 64,
            max_message_bytes: 1024 * 1024,
            max_streams_per_principal: 256,
            requests_per_second: 1000,
            burst: 2000,
            max_timeout: DEFAULT_MAX_TIMEOUT,
            handshake_timeout: std::time::Duration::from_secs(10),
            max_connections: 10_000,
            max_unauthenticated_connections: 1024,
            body_timeout: std::time::Duration::from_secs(10),
            idle_timeout: std::time::Duration::from_secs(60),
        }
    }
}

impl Limits {
    /// Refuses JSON that is too deep or too large.
    pub fn check_json(&self, field: &str, value: &Value) -> Result<()> {
        let depth = depth(value);
        if depth > self.max_json_depth {
            return Err(Refusal::invalid(format!(
                "{field}: nested {depth} levels deep, the limit is {}",
                self.max_json_depth
            )));
        }
        let size = super::canonical::canonical_json(value).len();
        if size > self.max_json_bytes {
            return Err(Refusal::invalid(format!(
                "{field}: {size} bytes of JSON, the limit is {}",
                self.max_json_bytes
            )));
        }
        Ok(())
    }

    /// Refuses an over-long string.
    pub fn check_str(&self, field: &str, s: &str) -> Result<()> {
        if s.len() > self.max_string_len {
            return Err(Refusal::invalid(format!(
                "{field}: {} bytes long, the limit is {}",
                s.len(),
                self.max_string_len
            )));
        }
        Ok(())
    }

    /// `max_timeout` in microseconds.
    pub fn max_timeout_us(&self) -> i64 {
        i64::try_from(self.max_timeout.as_micros()).unwrap_or(i64::MAX)
    }

    /// Refuses a duration (in microseconds) above `max_timeout`.
    pub fn check_timeout(&self, field: &str, us: i64) -> Result<()> {
        if us > self.max_timeout_us() {
            return Err(Refusal::invalid(format!(
                "{field}: longer than the limit [limits] max_timeout = {}",
                span(self.max_timeout)
            )));
        }
        Ok(())
    }

    /// Refuses policy `i`'s durations above `max_timeout`.
    pub fn check_policy(&self, i: usize, rule: &super::policy::PolicyRule) -> Result<()> {
        let durations = [
            ("timeout", rule.timeout),
            ("ack_window", rule.ack_window),
            ("context_max_age", rule.context_max_age),
        ];
        for (name, d) in durations {
            if let Some(d) = d {
                if d > self.max_timeout {
                    return Err(Refusal::invalid(format!(
                        "policies[{i}].{name}: {} is longer than the limit [limits] max_timeout = {}",
                        span(d),
                        span(self.max_timeout)
                    )));
                }
            }
        }
        Ok(())
    }

    /// Refuses an over-long list or an empty or over-long entry.
    pub fn check_list(&self, field: &str, items: &[String]) -> Result<()> {
        if items.len() > self.max_list_len {
            return Err(Refusal::invalid(format!(
                "{field}: {} entries, the limit is {}",
                items.len(),
                self.max_list_len
            )));
        }
        for (i, item) in items.iter().enumerate() {
            if item.trim().is_empty() {
                return Err(Refusal::invalid(format!("{field}[{i}]: must not be empty")));
            }
            self.check_str(&format!("{field}[{i}]"), item)?;
        }
        Ok(())
    }
}

/// A duration as a person reads it: whole days as days (`3650 days`).
pub fn span(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    if secs > 0 && secs.is_multiple_of(86_400) && d.subsec_nanos() == 0 {
        format!("{} days", secs / 86_400)
    } else {
        humantime::format_duration(d).to_string()
    }
}

/// Nesting depth without recursion, so hostile input cannot overflow the stack.
fn depth(value: &Value) -> usize {
    let mut max = 0;
    let mut stack = vec![(value, 1usize)];
    while let Some((v, d)) = stack.pop() {
        match v {
            Value::Array(items) => {
                max = max.max(d);
                stack.extend(items.iter().map(|i| (i, d + 1)));
            }
            Value::Object(map) => {
                max = max.max(d);
                stack.extend(map.values().map(|i| (i, d + 1)));
            }
            _ => max = max.max(d.saturating_sub(1)),
        }
    }
    max
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn schema_must_be_an_object_and_valid() {
        assert!(check_schema(&json!({"type": "object"})).is_ok());
        let e = check_schema(&json!([1])).unwrap_err();
        assert!(e.message.starts_with("response_schema:"), "{e}");
        let e = check_schema(&json!({"type": 5})).unwrap_err();
        assert!(e.message.starts_with("response_schema:"), "{e}");
    }

    #[test]
    fn answer_errors_name_the_failing_path() {
        let schema = json!({
            "type": "object",
            "properties": {"replicas": {"type": "integer", "minimum": 1}},
            "required": ["replicas"]
        });
        assert!(validate_answer(&schema, &json!({"replicas": 3})).is_ok());
        let e = validate_answer(&schema, &json!({"replicas": "three"})).unwrap_err();
        assert!(e.message.contains("/replicas"), "{e}");
        let e = validate_answer(&schema, &json!({})).unwrap_err();
        assert!(e.message.starts_with("answer:"), "{e}");
    }

    #[test]
    fn limits_refuse_deep_and_large_json() {
        let l = Limits {
            max_json_bytes: 20,
            max_json_depth: 3,
            ..Limits::default()
        };
        assert!(l.check_json("input", &json!({"a": [1, {"b": 2}]})).is_ok());
        let e = l
            .check_json("input", &json!({"a": [[{"b": 2}]]}))
            .unwrap_err();
        assert!(e.message.starts_with("input: nested 4 levels"), "{e}");
        let e = l.check_json("input", &json!("x".repeat(30))).unwrap_err();
        assert!(e.message.starts_with("input: 32 bytes"), "{e}");
        assert_eq!(depth(&json!(1)), 0);
        assert_eq!(depth(&json!([])), 1);
    }

    #[test]
    fn lists_refuse_empty_and_long_entries() {
        let l = Limits {
            max_list_len: 2,
            max_string_len: 3,
            ..Limits::default()
        };
        assert!(l.check_list("authorized_roles", &["sre".into()]).is_ok());
        let e = l
            .check_list("authorized_roles", &[String::new()])
            .unwrap_err();
        assert_eq!(e.message, "authorized_roles[0]: must not be empty");
        assert!(l
            .check_list("surfaces", &["a".into(), "b".into(), "c".into()])
            .is_err());
        assert!(l.check_list("surfaces", &["long".into()]).is_err());
    }
}
