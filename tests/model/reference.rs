//! The reference model of one decision's life, written from DESIGN.md:
//! the people, the commands, what each answers, what is compared after
//! every step, and the strategies that generate command sequences.

use proptest::prelude::*;
use serde_json::json;

/// The people: the asker (no roles), three operators, and a stranger.
pub(crate) const ASKER: usize = 0;
pub(crate) const PEOPLE: [(&str, &[&str]); 5] = [
    ("svc", &[]),
    ("alice", &["sre"]),
    ("bob", &["sre"]),
    ("carol", &["sre"]),
    ("mallory", &["dba"]),
];
pub(crate) const SEC: i64 = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum St {
    Open,
    Approved,
    Rejected,
    Cancelled,
    Expired,
    ContextChanged,
}

impl St {
    fn name(self) -> &'static str {
        match self {
            St::Open => "OPEN",
            St::Approved => "APPROVED",
            St::Rejected => "REJECTED",
            St::Cancelled => "CANCELLED",
            St::Expired => "EXPIRED",
            St::ContextChanged => "CONTEXT_CHANGED",
        }
    }
}

/// What a command answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Res {
    Awaiting,
    Closed,
    ContextChanged,
    Matched,
    Accepted,
    NotAccepted,
    Done,
    /// The clock moved.
    Waited,
    NotFound,
    Denied,
    Precondition,
    Invalid,
}

#[derive(Debug, Clone)]
pub(crate) enum Cmd {
    /// `ctx`: None sends no current_context; Some(true) the asked one.
    Answer {
        who: usize,
        approve: bool,
        ctx: Option<bool>,
        empty_rationale: bool,
    },
    Report {
        who: usize,
        same: bool,
    },
    Ack {
        who: usize,
    },
    Cancel {
        who: usize,
    },
    // Core only: the clock and the timers.
    Wait(i64),
    Expire,
    Fallback,
}

/// The reference model of one decision.
#[derive(Debug, Clone)]
pub(crate) struct Model {
    /// The server checks request fields before it looks at the decision.
    server: bool,
    required: usize,
    has_ctx: bool,
    status: St,
    approvers: Vec<usize>,
    answered: Vec<usize>,
    answers: usize,
    delivered: bool,
    pub fallback_fired: bool,
    /// Time of the latest logged confirmation, and whether it came after
    /// the latest approval.
    confirmed_at: Option<i64>,
    confirmed_since_approval: bool,
    events: u64,
    now: i64,
    expires_at: Option<i64>,
    max_age: i64,
    ack_window: i64,
}

impl Model {
    pub(crate) fn new(server: bool, required: usize, has_ctx: bool, timeout: Option<i64>) -> Model {
        Model {
            server,
            required,
            has_ctx,
            status: St::Open,
            approvers: vec![],
            answered: vec![],
            answers: 0,
            delivered: false,
            fallback_fired: false,
            confirmed_at: None,
            confirmed_since_approval: false,
            events: 1,
            now: 0,
            expires_at: timeout,
            max_age: 60 * SEC,
            ack_window: 60 * SEC,
        }
    }

    fn holds_role(who: usize) -> bool {
        PEOPLE[who].1.contains(&"sre")
    }

    fn sees(who: usize) -> bool {
        who == ASKER || Self::holds_role(who)
    }

    fn open(&self) -> bool {
        self.status == St::Open
    }

    fn close(&mut self, st: St, events: u64) {
        self.status = st;
        self.events += events;
    }

    pub(crate) fn step(&mut self, cmd: &Cmd) -> Res {
        match *cmd {
            Cmd::Answer {
                who,
                approve,
                ctx,
                empty_rationale,
            } => {
                if self.server && empty_rationale {
                    return Res::Invalid;
                }
                if !Self::sees(who) {
                    return Res::NotFound;
                }
                if !Self::holds_role(who) || who == ASKER {
                    return Res::Denied;
                }
                if !self.open() || self.answered.contains(&who) {
                    return Res::Precondition;
                }
                if empty_rationale {
                    return Res::Invalid;
                }
                match ctx {
                    Some(_) if !self.has_ctx => return Res::Invalid,
                    Some(false) => {
                        self.close(St::ContextChanged, 1);
                        return Res::ContextChanged;
                    }
                    _ => {}
                }
                if !approve {
                    self.answered.push(who);
                    self.answers += 1;
                    self.close(St::Rejected, 2);
                    return Res::Closed;
                }
                let completes = self.approvers.len() + 1 >= self.required;
                let fresh = self.confirmed_since_approval
                    && self
                        .confirmed_at
                        .is_some_and(|at| self.now - at <= self.max_age);
                if completes && self.required >= 2 && ctx != Some(true) && !fresh {
                    return Res::Precondition;
                }
                self.approvers.push(who);
                self.answered.push(who);
                self.answers += 1;
                self.confirmed_since_approval = false;
                self.events += 1;
                if completes {
                    self.close(St::Approved, 1);
                    Res::Closed
                } else {
                    Res::Awaiting
                }
            }
            Cmd::Report { who, same } => {
                if !Self::sees(who) {
                    return Res::NotFound;
                }
                if who != ASKER {
                    return Res::Denied;
                }
                if !self.open() || !self.has_ctx {
                    return Res::Precondition;
                }
                if !same {
                    self.close(St::ContextChanged, 1);
                    return Res::ContextChanged;
                }
                // DESIGN §2: logged only when it changes what an approval
                // may do, or the last logged one is over half the age old.
                let logged = match self.confirmed_at {
                    None => true,
                    Some(at) => !self.confirmed_since_approval || self.now - at > self.max_age / 2,
                };
                if logged {
                    self.confirmed_at = Some(self.now);
                    self.confirmed_since_approval = true;
                    self.events += 1;
                }
                Res::Matched
            }
            Cmd::Ack { who } => {
                if !Self::sees(who) {
                    return Res::NotFound;
                }
                if !self.open() {
                    return Res::NotAccepted;
                }
                if !self.delivered {
                    self.delivered = true;
                    self.events += 1;
                }
                Res::Accepted
            }
            Cmd::Cancel { who } => {
                if !Self::sees(who) {
                    return Res::NotFound;
                }
                if !self.open() {
                    return Res::Precondition;
                }
                self.close(St::Cancelled, 1);
                Res::Done
            }
            Cmd::Wait(secs) => {
                self.now += secs * SEC;
                Res::Waited
            }
            Cmd::Expire => {
                if self.open() && self.expires_at.is_some_and(|at| self.now >= at) {
                    self.close(St::Expired, 1);
                    Res::Closed
                } else {
                    Res::NotAccepted
                }
            }
            Cmd::Fallback => {
                if self.open()
                    && !self.delivered
                    && !self.fallback_fired
                    && self.now >= self.ack_window
                {
                    self.fallback_fired = true;
                    self.events += 1;
                    Res::Done
                } else {
                    Res::NotAccepted
                }
            }
        }
    }
}

/// What is compared after every step.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Seen {
    pub status: String,
    pub approvals: usize,
    pub answers: usize,
    pub delivered: bool,
    pub version: u64,
}

impl Seen {
    pub(crate) fn of_model(m: &Model) -> Seen {
        Seen {
            status: m.status.name().into(),
            approvals: m.approvers.len(),
            answers: m.answers,
            delivered: m.delivered,
            version: m.events,
        }
    }
}

pub(crate) fn person() -> impl Strategy<Value = usize> {
    0..PEOPLE.len()
}

/// Commands the server can be sent (no clock).
pub(crate) fn api_cmd() -> impl Strategy<Value = Cmd> {
    prop_oneof![
        6 => (person(), prop::bool::weighted(0.8), prop::option::of(prop::bool::weighted(0.8)), prop::bool::weighted(0.05))
            .prop_map(|(who, approve, ctx, empty_rationale)| Cmd::Answer { who, approve, ctx, empty_rationale }),
        3 => (person(), prop::bool::weighted(0.85)).prop_map(|(who, same)| Cmd::Report { who, same }),
        2 => person().prop_map(|who| Cmd::Ack { who }),
        1 => person().prop_map(|who| Cmd::Cancel { who }),
    ]
}

pub(crate) fn core_cmd() -> impl Strategy<Value = Cmd> {
    prop_oneof![
        12 => api_cmd(),
        3 => (0i64..45).prop_map(Cmd::Wait),
        1 => Just(Cmd::Expire),
        1 => Just(Cmd::Fallback),
    ]
}

/// A decision's shape: approvals required, asked with a context, timeout.
pub(crate) fn shape() -> impl Strategy<Value = (usize, bool, Option<i64>)> {
    (1usize..4, any::<bool>(), prop::option::of(30i64..200))
        .prop_map(|(r, ctx, t)| (r, ctx || r > 1, t))
}

pub(crate) fn ctx_value(same: bool) -> serde_json::Value {
    json!({"replicas": if same { 3 } else { 4 }})
}
