//! The type of an event, by name: what the `type` column of `events` and
//! `outbox` rows, the hashed body's `type` key, a decision's
//! `last_event_type` and the `x-witness-event` webhook header say.
//!
//! The names are part of every stored hash chain: they must stay
//! byte-identical to what `EventKind`'s serde tag writes (a test checks).

use super::model::EventKind;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// What kind of thing an event records, without its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    Created,
    Delivered,
    Answered,
    Approved,
    Rejected,
    Cancelled,
    ContextConfirmed,
    ContextChanged,
    FallbackFired,
    Expired,
    Escalated,
}

impl EventType {
    /// Every type, in declaration order.
    pub const ALL: [EventType; 11] = [
        EventType::Created,
        EventType::Delivered,
        EventType::Answered,
        EventType::Approved,
        EventType::Rejected,
        EventType::Cancelled,
        EventType::ContextConfirmed,
        EventType::ContextChanged,
        EventType::FallbackFired,
        EventType::Expired,
        EventType::Escalated,
    ];

    /// The stored name (SCREAMING_SNAKE_CASE, as `EventKind`'s serde tag).
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Created => "CREATED",
            EventType::Delivered => "DELIVERED",
            EventType::Answered => "ANSWERED",
            EventType::Approved => "APPROVED",
            EventType::Rejected => "REJECTED",
            EventType::Cancelled => "CANCELLED",
            EventType::ContextConfirmed => "CONTEXT_CONFIRMED",
            EventType::ContextChanged => "CONTEXT_CHANGED",
            EventType::FallbackFired => "FALLBACK_FIRED",
            EventType::Expired => "EXPIRED",
            EventType::Escalated => "ESCALATED",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored event type name this witness does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event type {0:?}")]
pub struct UnknownEventType(pub String);

impl FromStr for EventType {
    type Err = UnknownEventType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownEventType(super::cut(s).into_owned()))
    }
}

impl EventKind {
    /// This event's type.
    pub fn event_type(&self) -> EventType {
        match self {
            EventKind::Created { .. } => EventType::Created,
            EventKind::Delivered { .. } => EventType::Delivered,
            EventKind::Answered { .. } => EventType::Answered,
            EventKind::Approved => EventType::Approved,
            EventKind::Rejected => EventType::Rejected,
            EventKind::Cancelled { .. } => EventType::Cancelled,
            EventKind::ContextConfirmed { .. } => EventType::ContextConfirmed,
            EventKind::ContextChanged { .. } => EventType::ContextChanged,
            EventKind::FallbackFired { .. } => EventType::FallbackFired,
            EventKind::Expired => EventType::Expired,
            EventKind::Escalated { .. } => EventType::Escalated,
        }
    }

    /// The stored name of this event's type.
    pub fn type_name(&self) -> &'static str {
        self.event_type().as_str()
    }
}

/// Serde for `Decision::last_event_type`: the name, or `""` before the
/// first event (as every stored decision and CREATED body says); an
/// unknown name fails to decode instead of becoming something else.
pub mod last_event_type {
    use super::*;

    pub fn serialize<S: Serializer>(t: &Option<EventType>, s: S) -> Result<S::Ok, S::Error> {
        t.map_or("", EventType::as_str).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<EventType>, D::Error> {
        let name = std::borrow::Cow::<str>::deserialize(d)?;
        if name.is_empty() {
            return Ok(None);
        }
        name.parse().map(Some).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One `EventKind` of each type, with whatever data.
    fn kinds() -> Vec<EventKind> {
        let new = crate::core::NewDecision {
            id: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".into(),
            kind: "k".into(),
            input: serde_json::Value::Null,
            response_schema: None,
            authorized_roles: vec!["r".into()],
            surfaces: vec![],
            required_approvals: 1,
            context_hash: None,
            timeout_us: None,
            asked_by: "a".into(),
        };
        let created = crate::core::create(new, crate::core::Policy::default(), 0).unwrap();
        let answer = crate::core::Answer {
            verdict: crate::core::Verdict::Approve,
            answer: serde_json::Value::Null,
            rationale: "r".into(),
            operator: "o".into(),
            submitted_by: None,
            issuer: None,
            answered_at: 0,
            sequence: 0,
        };
        vec![
            created,
            EventKind::Answered { answer },
            EventKind::Delivered {
                surface: "s".into(),
                by: "b".into(),
            },
            EventKind::Approved,
            EventKind::Rejected,
            EventKind::Cancelled {
                by: "b".into(),
                reason: "r".into(),
            },
            EventKind::ContextConfirmed { by: "b".into() },
            EventKind::ContextChanged {
                by: "b".into(),
                reported_hash: "h".into(),
            },
            EventKind::FallbackFired { webhooks: vec![] },
            EventKind::Expired,
            EventKind::Escalated {
                level: 1,
                webhooks: vec![],
            },
        ]
    }

    #[test]
    fn names_are_the_serde_tags_and_round_trip() {
        for kind in kinds() {
            let tag = serde_json::to_value(&kind).unwrap()["type"].clone();
            assert_eq!(tag, kind.type_name(), "{kind:?}");
            let t = kind.event_type();
            assert_eq!(t.as_str().parse::<EventType>(), Ok(t));
        }
        for t in EventType::ALL {
            assert_eq!(t.as_str().parse::<EventType>(), Ok(t));
            assert_eq!(t.to_string(), t.as_str());
        }
        assert_eq!(
            "approved".parse::<EventType>(),
            Err(UnknownEventType("approved".into()))
        );
        assert!("".parse::<EventType>().is_err());
    }
}
