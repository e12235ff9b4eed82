//! The Connect protocol's wire format: content types, JSON and binary
//! codecs over the `witness.v1` descriptors, envelopes for streams, and the
//! one mapping from a gRPC `Status` to a Connect error.

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message;
use prost_reflect::{DynamicMessage, MessageDescriptor};
use tonic::{Code, Status};

/// Why a Connect request failed: a gRPC code and a message, as the Connect
/// error JSON carries them.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ConnectError {
    pub code: Code,
    pub message: String,
}

impl ConnectError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ConnectError {
            code,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        ConnectError::new(Code::InvalidArgument, message)
    }

    /// The Connect code name (`invalid_argument`, ...).
    pub fn code_name(&self) -> &'static str {
        code_name(self.code)
    }

    /// The HTTP status the Connect spec assigns to the code (unary errors).
    pub fn http_status(&self) -> http::StatusCode {
        use http::StatusCode as S;
        match self.code {
            Code::Ok => S::OK,
            Code::Cancelled => S::from_u16(499).unwrap_or(S::BAD_REQUEST),
            Code::Unknown | Code::Internal | Code::DataLoss => S::INTERNAL_SERVER_ERROR,
            Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => S::BAD_REQUEST,
            Code::DeadlineExceeded => S::GATEWAY_TIMEOUT,
            Code::NotFound => S::NOT_FOUND,
            Code::AlreadyExists | Code::Aborted => S::CONFLICT,
            Code::PermissionDenied => S::FORBIDDEN,
            Code::ResourceExhausted => S::TOO_MANY_REQUESTS,
            Code::Unimplemented => S::NOT_IMPLEMENTED,
            Code::Unavailable => S::SERVICE_UNAVAILABLE,
            Code::Unauthenticated => S::UNAUTHORIZED,
        }
    }

    /// `{"code": ..., "message": ...}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"code": self.code_name(), "message": self.message})
    }
}

impl From<Status> for ConnectError {
    fn from(s: Status) -> Self {
        ConnectError::new(s.code(), s.message())
    }
}

fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "canceled",
        Code::Unknown => "unknown",
        Code::InvalidArgument => "invalid_argument",
        Code::DeadlineExceeded => "deadline_exceeded",
        Code::NotFound => "not_found",
        Code::AlreadyExists => "already_exists",
        Code::PermissionDenied => "permission_denied",
        Code::ResourceExhausted => "resource_exhausted",
        Code::FailedPrecondition => "failed_precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out_of_range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data_loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

/// How messages are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Json,
    Proto,
}

/// What a request's content type asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Protocol {
    pub codec: Codec,
    /// `application/connect+*`: enveloped messages (streaming RPCs).
    pub streaming: bool,
}

impl Protocol {
    /// The Connect protocol named by a content type, if any.
    pub fn from_content_type(ct: &str) -> Option<Protocol> {
        let essence = ct.split(';').next().unwrap_or_default().trim();
        let (codec, streaming) = match essence.to_ascii_lowercase().as_str() {
            "application/json" => (Codec::Json, false),
            "application/proto" => (Codec::Proto, false),
            "application/connect+json" => (Codec::Json, true),
            "application/connect+proto" => (Codec::Proto, true),
            _ => return None,
        };
        Some(Protocol { codec, streaming })
    }

    pub fn content_type(&self) -> &'static str {
        match (self.streaming, self.codec) {
            (false, Codec::Json) => "application/json",
            (false, Codec::Proto) => "application/proto",
            (true, Codec::Json) => "application/connect+json",
            (true, Codec::Proto) => "application/connect+proto",
        }
    }
}

/// Decodes a request message: JSON with the proto3 JSON mapping (both the
/// proto and the camelCase field names, enum names or numbers), or binary.
pub fn decode<T: Message + Default>(
    codec: Codec,
    desc: &MessageDescriptor,
    bytes: &[u8],
) -> Result<T, ConnectError> {
    match codec {
        Codec::Proto => T::decode(bytes)
            .map_err(|e| ConnectError::invalid(format!("request is not a valid message: {e}"))),
        Codec::Json => {
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(T::default());
            }
            let dynamic = json_to_dynamic(desc, bytes)?;
            T::decode(dynamic.encode_to_vec().as_slice())
                .map_err(|e| ConnectError::invalid(format!("request is not a valid message: {e}")))
        }
    }
}

/// Parses JSON into a message of `desc`; the error names the field path.
fn json_to_dynamic(desc: &MessageDescriptor, bytes: &[u8]) -> Result<DynamicMessage, ConnectError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let mut track = serde_path_to_error::Track::new();
    let parsed = DynamicMessage::deserialize(
        desc.clone(),
        serde_path_to_error::Deserializer::new(&mut de, &mut track),
    );
    let msg = match parsed {
        Ok(m) => m,
        Err(e) => {
            let path = track.path().to_string();
            let message = if path.is_empty() || path == "." {
                format!("request body: {}", cut(&e.to_string()))
            } else {
                format!("{path}: {}", cut(&e.to_string()))
            };
            return Err(ConnectError::invalid(message));
        }
    };
    de.end()
        .map_err(|e| ConnectError::invalid(format!("request body: {e}")))?;
    Ok(msg)
}

/// Quoted caller input in an error is cut to 200 characters.
fn cut(s: &str) -> String {
    match s.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Encodes a response message.
pub fn encode<T: Message>(
    codec: Codec,
    desc: &MessageDescriptor,
    msg: &T,
) -> Result<Bytes, ConnectError> {
    let bin = msg.encode_to_vec();
    match codec {
        Codec::Proto => Ok(bin.into()),
        Codec::Json => {
            let internal = |e: String| ConnectError::new(Code::Internal, e);
            let dynamic = DynamicMessage::decode(desc.clone(), bin.as_slice())
                .map_err(|e| internal(format!("response: {e}")))?;
            let mut value =
                serde_json::to_value(&dynamic).map_err(|e| internal(format!("response: {e}")))?;
            integral_numbers(&mut value);
            serde_json::to_vec(&value)
                .map(Bytes::from)
                .map_err(|e| internal(format!("response: {e}")))
        }
    }
}

/// `google.protobuf.Value` numbers are doubles; print `1`, not `1.0`, as
/// grpcurl and JavaScript do, when the double is an exact integer.
fn integral_numbers(v: &mut serde_json::Value) {
    use serde_json::Value;
    // Iterative: depth is bounded by the limits, but a stack costs nothing.
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            Value::Number(n) => {
                if let Some(f) = n.as_f64().filter(|_| n.is_f64()) {
                    if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 {
                        *n = serde_json::Number::from(f as i64);
                    }
                }
            }
            Value::Array(items) => stack.extend(items.iter_mut()),
            Value::Object(map) => stack.extend(map.values_mut()),
            _ => {}
        }
    }
}

/// Envelope flag: the end-of-stream message.
pub const END_STREAM: u8 = 0x02;
/// Envelope flag: the message is compressed.
pub const COMPRESSED: u8 = 0x01;

/// One enveloped message: flags, big-endian length, payload.
pub fn envelope(flags: u8, payload: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(5 + payload.len());
    b.put_u8(flags);
    b.put_u32(payload.len() as u32);
    b.put_slice(payload);
    b.freeze()
}

/// The end-of-stream message: `{}` on success, `{"error": ...}` otherwise.
pub fn end_stream(error: Option<&ConnectError>) -> Bytes {
    let body = match error {
        Some(e) => serde_json::json!({"error": e.to_json()}),
        None => serde_json::json!({}),
    };
    envelope(END_STREAM, body.to_string().as_bytes())
}

/// The single message of a streaming request's body.
pub fn unenvelope(body: &[u8]) -> Result<&[u8], ConnectError> {
    if body.len() < 5 {
        return Err(ConnectError::invalid(
            "request body: a streaming request carries one enveloped message (5-byte prefix)",
        ));
    }
    let flags = body[0];
    let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    if flags & COMPRESSED != 0 {
        return Err(ConnectError::new(
            Code::Unimplemented,
            "request body: compressed messages are not supported",
        ));
    }
    if body.len() != 5 + len {
        return Err(ConnectError::invalid(format!(
            "request body: the envelope says {len} bytes, {} follow",
            body.len() - 5
        )));
    }
    Ok(&body[5..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        let p = Protocol::from_content_type("application/json; charset=utf-8").unwrap();
        assert_eq!((p.codec, p.streaming), (Codec::Json, false));
        let p = Protocol::from_content_type("application/connect+proto").unwrap();
        assert_eq!((p.codec, p.streaming), (Codec::Proto, true));
        assert!(Protocol::from_content_type("application/grpc").is_none());
        assert!(Protocol::from_content_type("text/plain").is_none());
    }

    #[test]
    fn statuses_follow_the_connect_spec() {
        let s = |c| ConnectError::new(c, "").http_status().as_u16();
        assert_eq!(s(Code::InvalidArgument), 400);
        assert_eq!(s(Code::Unauthenticated), 401);
        assert_eq!(s(Code::PermissionDenied), 403);
        assert_eq!(s(Code::NotFound), 404);
        assert_eq!(s(Code::AlreadyExists), 409);
        assert_eq!(s(Code::ResourceExhausted), 429);
        assert_eq!(s(Code::FailedPrecondition), 400);
        assert_eq!(s(Code::Unavailable), 503);
        assert_eq!(s(Code::Cancelled), 499);
    }

    #[test]
    fn integral_doubles_print_as_integers() {
        let mut v = serde_json::json!({"a": [1.0, 2.5, {"b": -3.0}], "c": 1e300});
        integral_numbers(&mut v);
        // Beyond i64 a double stays a double (its exponent spelling is serde_json's).
        assert!(v["c"].is_f64(), "{v}");
        v["c"] = serde_json::Value::Null;
        assert_eq!(v.to_string(), r#"{"a":[1,2.5,{"b":-3}],"c":null}"#);
    }

    #[test]
    fn envelopes_round_trip() {
        let e = envelope(0, b"{}");
        assert_eq!(unenvelope(&e).unwrap(), b"{}");
        assert!(unenvelope(&e[..4]).is_err());
        assert!(unenvelope(&envelope(COMPRESSED, b"x")).is_err());
        let mut long = e.to_vec();
        long.push(b' ');
        assert!(unenvelope(&long).is_err());
    }
}
