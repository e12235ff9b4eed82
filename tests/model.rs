//! Model-based tests (issue 19): a deliberately simple reference model of
//! one decision's life, written from DESIGN.md and not from `server/core`,
//! and random command sequences run (a) through the pure core (`decide` +
//! `apply`) and (b) through the real server over gRPC, comparing status,
//! approvals, answers, delivery, events written and each command's result
//! with the model after every step.

mod common;

use common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::json;
use witness::core::{self, Action, Actor, Decision, NewDecision, Outcome, RefusalKind};

/// The people: the asker (no roles), three operators, and a stranger.
const ASKER: usize = 0;
const PEOPLE: [(&str, &[&str]); 5] = [
    ("svc", &[]),
    ("alice", &["sre"]),
    ("bob", &["sre"]),
    ("carol", &["sre"]),
    ("mallory", &["dba"]),
];
const SEC: i64 = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
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
enum Res {
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
enum Cmd {
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
struct Model {
    /// The server checks request fields before it looks at the decision.
    server: bool,
    required: usize,
    has_ctx: bool,
    status: St,
    approvers: Vec<usize>,
    answered: Vec<usize>,
    answers: usize,
    delivered: bool,
    fallback_fired: bool,
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
    fn new(server: bool, required: usize, has_ctx: bool, timeout: Option<i64>) -> Model {
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

    fn step(&mut self, cmd: &Cmd) -> Res {
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
struct Seen {
    status: String,
    approvals: usize,
    answers: usize,
    delivered: bool,
    version: u64,
}

impl Seen {
    fn of_model(m: &Model) -> Seen {
        Seen {
            status: m.status.name().into(),
            approvals: m.approvers.len(),
            answers: m.answers,
            delivered: m.delivered,
            version: m.events,
        }
    }
}

fn person() -> impl Strategy<Value = usize> {
    0..PEOPLE.len()
}

/// Commands the server can be sent (no clock).
fn api_cmd() -> impl Strategy<Value = Cmd> {
    prop_oneof![
        6 => (person(), prop::bool::weighted(0.8), prop::option::of(prop::bool::weighted(0.8)), prop::bool::weighted(0.05))
            .prop_map(|(who, approve, ctx, empty_rationale)| Cmd::Answer { who, approve, ctx, empty_rationale }),
        3 => (person(), prop::bool::weighted(0.85)).prop_map(|(who, same)| Cmd::Report { who, same }),
        2 => person().prop_map(|who| Cmd::Ack { who }),
        1 => person().prop_map(|who| Cmd::Cancel { who }),
    ]
}

fn core_cmd() -> impl Strategy<Value = Cmd> {
    prop_oneof![
        12 => api_cmd(),
        3 => (0i64..45).prop_map(Cmd::Wait),
        1 => Just(Cmd::Expire),
        1 => Just(Cmd::Fallback),
    ]
}

/// A decision's shape: approvals required, asked with a context, timeout.
fn shape() -> impl Strategy<Value = (usize, bool, Option<i64>)> {
    (1usize..4, any::<bool>(), prop::option::of(30i64..200))
        .prop_map(|(r, ctx, t)| (r, ctx || r > 1, t))
}

fn ctx_value(same: bool) -> serde_json::Value {
    json!({"replicas": if same { 3 } else { 4 }})
}

fn actor(who: usize) -> Actor {
    Actor::new(
        PEOPLE[who].0,
        PEOPLE[who].1.iter().map(|r| r.to_string()).collect(),
    )
}

fn core_action(cmd: &Cmd) -> Option<Action> {
    let hash = |same| core::canonical::context_hash(&ctx_value(same));
    Some(match *cmd {
        Cmd::Answer {
            who,
            approve,
            ctx,
            empty_rationale,
        } => Action::Answer {
            actor: actor(who),
            verdict: if approve {
                core::Verdict::Approve
            } else {
                core::Verdict::Reject
            },
            answer: json!(null),
            rationale: if empty_rationale { " " } else { "looked" }.into(),
            current_context_hash: ctx.map(hash),
            current_roles: None,
        },
        Cmd::Report { who, same } => Action::ReportContext {
            actor: actor(who),
            context_hash: hash(same),
        },
        Cmd::Ack { who } => Action::Ack {
            actor: actor(who),
            surface: "console".into(),
        },
        Cmd::Cancel { who } => Action::Cancel {
            actor: actor(who),
            reason: String::new(),
        },
        Cmd::Wait(_) => return None,
        Cmd::Expire => Action::Expire,
        Cmd::Fallback => Action::FireFallback,
    })
}

fn core_result(r: Result<Outcome, RefusalKind>) -> Res {
    match r {
        Ok(Outcome::AwaitingApprovals) => Res::Awaiting,
        Ok(Outcome::Closed) => Res::Closed,
        Ok(Outcome::ContextChanged) => Res::ContextChanged,
        Ok(Outcome::ContextMatched) => Res::Matched,
        Ok(Outcome::Accepted) => Res::Accepted,
        Ok(Outcome::NotAccepted) => Res::NotAccepted,
        Ok(Outcome::Done) => Res::Done,
        Err(RefusalKind::NotFound) => Res::NotFound,
        Err(RefusalKind::PermissionDenied) => Res::Denied,
        Err(RefusalKind::FailedPrecondition) => Res::Precondition,
        Err(RefusalKind::InvalidArgument) => Res::Invalid,
    }
}

fn seen_in_core(d: &Decision) -> Seen {
    Seen {
        status: d.status.as_str().into(),
        approvals: d
            .answers
            .iter()
            .filter(|a| a.verdict == core::Verdict::Approve)
            .count(),
        answers: d.answers.len(),
        delivered: d.delivered_at.is_some(),
        version: d.version,
    }
}

/// (a) The pure core against the model.
fn run_core(shape: (usize, bool, Option<i64>), cmds: &[Cmd]) -> Result<(), TestCaseError> {
    let (required, has_ctx, timeout) = shape;
    let mut model = Model::new(false, required, has_ctx, timeout.map(|t| t * SEC));
    let new = NewDecision {
        id: "d".into(),
        kind: "model.k".into(),
        input: json!(null),
        response_schema: None,
        authorized_roles: vec!["sre".into()],
        surfaces: vec!["console".into()],
        required_approvals: required as u32,
        context_hash: has_ctx.then(|| core::canonical::context_hash(&ctx_value(true))),
        timeout_us: timeout.map(|t| t * SEC),
        asked_by: "svc".into(),
    };
    let created = core::create(new, core::Policy::default(), 0).unwrap();
    let mut seq = 1;
    let event = |seq, at, kind| core::Event {
        sequence: seq,
        decision_id: "d".into(),
        at,
        kind,
    };
    let mut d = core::apply(None, &event(seq, 0, created)).unwrap();
    let mut now = 0;
    for (i, cmd) in cmds.iter().enumerate() {
        let expected = model.step(cmd);
        let got = match core_action(cmd) {
            None => {
                if let Cmd::Wait(s) = cmd {
                    now += s * SEC;
                }
                Res::Waited
            }
            Some(action) => match core::decide(&d, &action, now) {
                Err(refusal) => core_result(Err(refusal.kind)),
                Ok(decided) => {
                    for kind in decided.events {
                        seq += 1;
                        d = core::apply(Some(d), &event(seq, now, kind)).unwrap();
                    }
                    core_result(Ok(decided.outcome))
                }
            },
        };
        prop_assert_eq!(got, expected, "step {} {:?}", i, cmd);
        prop_assert_eq!(
            seen_in_core(&d),
            Seen::of_model(&model),
            "after step {} {:?}",
            i,
            cmd
        );
        prop_assert_eq!(
            d.fallback_fired,
            model.fallback_fired,
            "after step {} {:?}",
            i,
            cmd
        );
    }
    Ok(())
}

/// 512 cases unless `PROPTEST_CASES` says otherwise (`make fuzz`).
fn core_cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(512)
}

proptest! {
    #![proptest_config(Config { cases: core_cases(), ..Config::default() })]

    #[test]
    fn the_core_follows_the_reference_model(
        shape in shape(),
        cmds in prop::collection::vec(core_cmd(), 0..40),
    ) {
        run_core(shape, &cmds)?;
    }
}

/// The proto status name without its prefix.
fn proto_status(s: i32) -> String {
    proto::Status::try_from(s)
        .map(|s| s.as_str_name().trim_start_matches("STATUS_").to_string())
        .unwrap_or_default()
}

fn grpc_result<T>(r: Result<tonic::Response<T>, tonic::Status>, ok: impl Fn(T) -> Res) -> Res {
    match r {
        Ok(resp) => ok(resp.into_inner()),
        Err(s) => match s.code() {
            tonic::Code::NotFound => Res::NotFound,
            tonic::Code::PermissionDenied => Res::Denied,
            tonic::Code::FailedPrecondition => Res::Precondition,
            tonic::Code::InvalidArgument => Res::Invalid,
            other => panic!("unexpected {other:?}: {}", s.message()),
        },
    }
}

/// (b) The real server, over gRPC, against the model.
async fn run_server(
    clients: &[witness::client::GrpcClient],
    shape: (usize, bool, Option<i64>),
    cmds: &[Cmd],
) -> Result<(), TestCaseError> {
    let (required, has_ctx, _) = shape;
    let mut model = Model::new(true, required, has_ctx, None);
    let mut req = ask("model.k", &["sre"], required as u32, None);
    req.context_snapshot = has_ctx.then(|| json(ctx_value(true)));
    let id = clients[ASKER]
        .clone()
        .ask(req)
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap()
        .id;
    for (i, cmd) in cmds.iter().enumerate() {
        let expected = model.step(cmd);
        let got = match *cmd {
            Cmd::Answer {
                who,
                approve: yes,
                ctx,
                empty_rationale,
            } => {
                let mut a = if yes {
                    approve(&id, "looked")
                } else {
                    reject(&id, "looked")
                };
                if empty_rationale {
                    a.rationale = " ".into();
                }
                a.current_context = ctx.map(|same| json(ctx_value(same)));
                let r = clients[who].clone().answer(a).await;
                grpc_result(r, |r| match proto::AnswerOutcome::try_from(r.outcome) {
                    Ok(proto::AnswerOutcome::AwaitingApprovals) => Res::Awaiting,
                    Ok(proto::AnswerOutcome::Closed) => Res::Closed,
                    Ok(proto::AnswerOutcome::ContextChanged) => Res::ContextChanged,
                    other => panic!("answer outcome {other:?}"),
                })
            }
            Cmd::Report { who, same } => {
                let r = clients[who]
                    .clone()
                    .report_context(proto::ReportContextRequest {
                        decision_id: id.clone(),
                        context_snapshot: Some(json(ctx_value(same))),
                    })
                    .await;
                grpc_result(r, |r| {
                    if r.matched {
                        Res::Matched
                    } else {
                        Res::ContextChanged
                    }
                })
            }
            Cmd::Ack { who } => {
                let r = clients[who]
                    .clone()
                    .ack_delivery(proto::AckDeliveryRequest {
                        decision_id: id.clone(),
                        surface: "console".into(),
                    })
                    .await;
                grpc_result(r, |r| {
                    if r.accepted {
                        Res::Accepted
                    } else {
                        Res::NotAccepted
                    }
                })
            }
            Cmd::Cancel { who } => {
                let r = clients[who]
                    .clone()
                    .cancel(proto::CancelRequest {
                        decision_id: id.clone(),
                        reason: String::new(),
                    })
                    .await;
                grpc_result(r, |_| Res::Done)
            }
            Cmd::Wait(_) | Cmd::Expire | Cmd::Fallback => unreachable!("not sent to the server"),
        };
        prop_assert_eq!(got, expected, "step {} {:?}", i, cmd);
        let d = clients[1]
            .clone()
            .get_decision(proto::GetDecisionRequest {
                decision_id: id.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .decision
            .unwrap();
        let seen = Seen {
            status: proto_status(d.status),
            approvals: d
                .answers
                .iter()
                .filter(|a| a.verdict == proto::Verdict::Approve as i32)
                .count(),
            answers: d.answers.len(),
            delivered: d.delivered_at.is_some(),
            version: d.version,
        };
        prop_assert_eq!(seen, Seen::of_model(&model), "after step {} {:?}", i, cmd);
    }
    Ok(())
}

#[test]
fn the_server_follows_the_reference_model_over_grpc() {
    // Fewer cases than the core: each step is a round trip and a commit.
    let cases = std::env::var("MODEL_GRPC_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(24);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = Server::start("");
    let clients: Vec<_> = rt.block_on(async {
        let mut out = Vec::new();
        for (name, roles) in PEOPLE {
            out.push(server.client(name, roles).await);
        }
        out
    });
    let mut runner = TestRunner::new(Config {
        cases,
        ..Config::default()
    });
    let strategy = (shape(), prop::collection::vec(api_cmd(), 0..16));
    let result = runner.run(&strategy, |(shape, cmds)| {
        rt.block_on(run_server(&clients, shape, &cmds))
    });
    if let Err(e) = result {
        panic!("{e}\nserver log:\n{}", server.stderr());
    }
}
