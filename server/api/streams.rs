//! The two streaming RPCs in protocol terms: requests become the service's
//! queries (`Witness::subscribe`, `Witness::watch`, which own the stream
//! semantics and who sees what), domain items become `DecisionEvent`s.
//!
//! Two shapes of the same stream: typed messages (the generated service,
//! which Connect and the console call) and encoded bytes (gRPC, through
//! `encoded`'s codec), where each committed event is encoded once, on first
//! use, and the bytes shared by every subscriber that receives it.

use super::convert;
use crate::auth::Principal;
use crate::core::Decision;
use crate::hub::Published;
use crate::proto;
use crate::service::{DomainStream, StreamItem, SubscribeQuery, Witness};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use prost::Message;
use std::pin::Pin;
use std::time::Duration;
use tonic::Status;

/// A stream of decision events, ended by an error status when it fails.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<proto::DecisionEvent, Status>> + Send>>;

/// A stream of encoded `StreamDecisionsResponse`s (or, the same bytes,
/// `WatchDecisionResponse`s), ended by an error status when it fails.
pub type EncodedStream = Pin<Box<dyn Stream<Item = Result<Bytes, Status>> + Send>>;

fn event(p: &Published) -> proto::DecisionEvent {
    proto::DecisionEvent {
        sequence: p.event.sequence,
        r#type: convert::event_type(&p.event.kind) as i32,
        decision: Some(convert::decision(&p.decision)),
        at: Some(convert::timestamp(p.event.at)),
        snapshot: false,
    }
}

fn state_event(d: &Decision) -> proto::DecisionEvent {
    proto::DecisionEvent {
        sequence: d.last_sequence,
        r#type: d
            .last_event_type
            .map_or(proto::EventType::Unspecified, convert::event_type_of) as i32,
        decision: Some(convert::decision(d)),
        at: Some(convert::timestamp(d.updated_at)),
        snapshot: true,
    }
}

/// The `DecisionEvent` of one stream item.
pub fn message(item: &StreamItem) -> proto::DecisionEvent {
    match item {
        StreamItem::Event(p) => event(p),
        StreamItem::Snapshot(d) => state_event(d),
        StreamItem::SnapshotEnd { head, at } => proto::DecisionEvent {
            sequence: *head,
            r#type: proto::EventType::SnapshotEnd as i32,
            decision: None,
            at: Some(convert::timestamp(*at)),
            snapshot: true,
        },
    }
}

/// `StreamDecisionsResponse { event }` encoded. `WatchDecisionResponse`
/// has the same single field 1, so its encoding is the same bytes.
pub fn response_bytes(event: &proto::DecisionEvent) -> Bytes {
    let mut buf = Vec::with_capacity(event.encoded_len() + 8);
    prost::encoding::message::encode(1, event, &mut buf);
    Bytes::from(buf)
}

/// The encoded response of one stream item; a committed event is encoded
/// once for all its subscribers.
pub fn encoded(item: &StreamItem) -> Bytes {
    match item {
        StreamItem::Event(p) => p.encoded(|p| response_bytes(&event(p))),
        other => response_bytes(&message(other)),
    }
}

/// The service's query for a `StreamDecisions` request.
pub fn subscribe_query(req: proto::StreamDecisionsRequest) -> SubscribeQuery {
    SubscribeQuery {
        after: req.after_sequence,
        kinds: req.kinds,
        surfaces: req.surfaces,
        include_open: req.include_open,
    }
}

fn typed(s: DomainStream, deadline: Option<Duration>) -> EventStream {
    until(
        s.map(|r| r.map(|item| message(&item)).map_err(Status::from)),
        deadline,
    )
}

fn bytes(s: DomainStream, deadline: Option<Duration>) -> EncodedStream {
    until(
        s.map(|r| r.map(|item| encoded(&item)).map_err(Status::from)),
        deadline,
    )
}

/// The caller's deadline for the whole call: gRPC's `grpc-timeout` (gRPC and
/// gRPC-Web) or Connect's `connect-timeout-ms`. tonic enforces a deadline
/// only until the response starts; a stream must end at it too.
pub fn deadline(md: &tonic::metadata::MetadataMap) -> Option<Duration> {
    let get = |k: &str| md.get(k).and_then(|v| v.to_str().ok());
    if let Some(ms) = get("connect-timeout-ms") {
        return ms.parse().ok().map(Duration::from_millis);
    }
    let t = get("grpc-timeout")?;
    let (digits, unit) = t.split_at(t.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok().filter(|_| digits.len() <= 8)?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// `s`, ended with DEADLINE_EXCEEDED once `deadline` has passed: the
/// server stops the work when the caller's deadline does.
fn until<T: Send + 'static>(
    s: impl Stream<Item = Result<T, Status>> + Send + 'static,
    deadline: Option<Duration>,
) -> Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>> {
    let Some(d) = deadline else {
        return Box::pin(s);
    };
    Box::pin(async_stream::stream! {
        let timer = tokio::time::sleep(d);
        tokio::pin!(timer);
        futures::pin_mut!(s);
        loop {
            tokio::select! {
                item = s.next() => match item {
                    Some(item) => yield item,
                    None => return,
                },
                () = &mut timer => {
                    yield Err(Status::deadline_exceeded(
                        "the caller's deadline passed; resume with after_sequence",
                    ));
                    return;
                }
            }
        }
    })
}

/// Starts a `StreamDecisions` subscription (typed).
pub async fn stream_decisions(
    w: &Witness,
    who: &Principal,
    req: proto::StreamDecisionsRequest,
    deadline: Option<Duration>,
) -> Result<EventStream, Status> {
    Ok(typed(
        w.subscribe(who, subscribe_query(req)).await?,
        deadline,
    ))
}

/// Starts a `WatchDecision` stream (typed).
pub async fn watch_decision(
    w: &Witness,
    who: &Principal,
    id: String,
    deadline: Option<Duration>,
) -> Result<EventStream, Status> {
    Ok(typed(w.watch(who, id).await?, deadline))
}

/// Starts a `StreamDecisions` subscription (encoded).
pub async fn stream_decisions_encoded(
    w: &Witness,
    who: &Principal,
    req: proto::StreamDecisionsRequest,
    deadline: Option<Duration>,
) -> Result<EncodedStream, Status> {
    Ok(bytes(
        w.subscribe(who, subscribe_query(req)).await?,
        deadline,
    ))
}

/// Starts a `WatchDecision` stream (encoded).
pub async fn watch_decision_encoded(
    w: &Witness,
    who: &Principal,
    id: String,
    deadline: Option<Duration>,
) -> Result<EncodedStream, Status> {
    Ok(bytes(w.watch(who, id).await?, deadline))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_from_grpc_timeout_and_connect_timeout_ms() {
        let md = |k: &'static str, v: &str| {
            let mut m = tonic::metadata::MetadataMap::new();
            m.insert(k, v.parse().unwrap());
            m
        };
        for (v, want) in [
            ("2S", Some(Duration::from_secs(2))),
            ("1500m", Some(Duration::from_millis(1500))),
            ("1H", Some(Duration::from_secs(3600))),
            ("10u", Some(Duration::from_micros(10))),
            ("123456789S", None),
            ("5x", None),
            ("S", None),
        ] {
            assert_eq!(deadline(&md("grpc-timeout", v)), want, "{v}");
        }
        assert_eq!(
            deadline(&md("connect-timeout-ms", "250")),
            Some(Duration::from_millis(250))
        );
        assert_eq!(deadline(&tonic::metadata::MetadataMap::new()), None);
    }

    #[test]
    fn both_responses_encode_alike() {
        let event = proto::DecisionEvent {
            sequence: 7,
            r#type: proto::EventType::SnapshotEnd as i32,
            snapshot: true,
            ..Default::default()
        };
        let watch = proto::WatchDecisionResponse {
            event: Some(event.clone()),
        };
        assert_eq!(response_bytes(&event).to_vec(), watch.encode_to_vec());
        let back = proto::WatchDecisionResponse::decode(response_bytes(&event)).unwrap();
        assert_eq!(back.event, Some(event));
    }
}
