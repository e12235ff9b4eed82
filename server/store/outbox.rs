//! The outbox's rows and results, as the store hands them to the delivery
//! workers (`crate::outbox` for webhooks, `crate::slack::deliver` for
//! Slack).

use super::{Result, StoreError};
use crate::core::{self, Micros};

/// Where a webhook delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutboxStatus {
    Pending,
    Delivered,
    /// Gave up after the configured number of tries (see `witness outbox`).
    Dead,
}

impl OutboxStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Pending => "pending",
            OutboxStatus::Delivered => "delivered",
            OutboxStatus::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<OutboxStatus> {
        [
            OutboxStatus::Pending,
            OutboxStatus::Delivered,
            OutboxStatus::Dead,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }

    /// The event type stored in outbox row `id`.
    pub fn decode_event_type(id: i64, s: &str) -> Result<core::EventType> {
        s.parse()
            .map_err(|e| StoreError::Corrupt(format!("outbox row {id}: {e}")))
    }

    /// The status stored in outbox row `id`: anything else is corrupt data,
    /// never silently "pending" (which would re-send, or hide, a delivery).
    pub fn decode(id: i64, s: &str) -> Result<OutboxStatus> {
        OutboxStatus::parse(s).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "outbox row {id}: unknown status {:?} (expected pending, delivered or dead)",
                core::cut(s)
            ))
        })
    }
}

/// One outbox row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxItem {
    pub id: i64,
    pub webhook: String,
    pub decision_id: String,
    pub sequence: u64,
    pub event_type: core::EventType,
    pub body: String,
    pub status: OutboxStatus,
    pub attempts: u32,
    pub next_attempt_at: Micros,
    pub last_error: Option<String>,
    pub delivered_at: Option<Micros>,
    /// What the receiver answered, when witness keeps it (a Slack post's
    /// message `ts`); None for webhooks.
    pub response: Option<String>,
}

/// The result of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Delivered {
        at: Micros,
    },
    /// Delivered, keeping what the receiver answered (see
    /// [`OutboxItem::response`]).
    Answered {
        at: Micros,
        response: String,
    },
    Retry {
        at: Micros,
        error: String,
    },
    /// Not tried now, for a reason that is not the delivery's fault (a
    /// rate limit, or an earlier delivery it must follow): put back in line
    /// at `at` without counting an attempt.
    Deferred {
        at: Micros,
        reason: String,
    },
    Dead {
        error: String,
    },
}

/// Which deliveries an outbox worker claims: webhook POSTs, or the Slack
/// Web API calls (rows whose destination is `slack:CHANNEL`), which one
/// worker paces per channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    Webhooks,
    Slack,
}

/// The outbox destination prefix of Slack rows: `slack:CHANNEL`.
pub const SLACK_PREFIX: &str = core::notify::SLACK_DESTINATION;

impl Lane {
    /// 1 for Slack, 0 for webhooks: compared with the SQL test
    /// `webhook LIKE 'slack:%'`.
    pub fn slack_flag(self) -> i64 {
        i64::from(self == Lane::Slack)
    }
}
