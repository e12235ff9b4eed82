//! The load: workers that ask, answer (racing quorums), ack, cancel and
//! report context, retry with the same request id after an unknown outcome
//! and on purpose (duplicated and reordered), and stream subscribers that
//! resume after every disconnect. Every call is recorded with its outcome.

use crate::checker::{Op, Outcome, Record, Subscription};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::transport::Endpoint;
use witness::client::{AuthInterceptor, Credentials, GrpcClient};
use witness::proto::{self, witness_service_client::WitnessServiceClient};

pub(crate) const OPERATORS: [&str; 4] = ["op1", "op2", "op3", "op4"];
pub(crate) const ASKER: &str = "app";

/// A client that reconnects lazily (the server may be down right now).
pub(crate) fn client(
    addr: &str,
    principal: &str,
    roles: &[&str],
    timeout: Option<Duration>,
) -> GrpcClient {
    let mut ep = Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true);
    if let Some(t) = timeout {
        ep = ep.timeout(t);
    }
    let creds = Credentials {
        principal: Some(principal.into()),
        roles: roles.iter().map(ToString::to_string).collect(),
        ..Credentials::default()
    };
    WitnessServiceClient::with_interceptor(
        ep.connect_lazy(),
        AuthInterceptor::new(&creds).expect("creds"),
    )
    .max_decoding_message_size(64 << 20)
}

/// The clients of one worker for one replica.
#[derive(Clone)]
struct Clients {
    asker: GrpcClient,
    ops: Vec<GrpcClient>,
}

impl Clients {
    fn new(addr: &str) -> Self {
        let t = Some(Duration::from_secs(8));
        Clients {
            asker: client(addr, ASKER, &[], t),
            ops: OPERATORS
                .iter()
                .map(|o| client(addr, o, &["sre"], t))
                .collect(),
        }
    }
}

/// An open decision the workers know about.
#[derive(Clone)]
struct Known {
    id: String,
}

/// What the workers share.
pub(crate) struct Shared {
    pool: Mutex<Vec<Known>>,
    acked_asks: Mutex<Vec<proto::AskRequest>>,
    acked_answers: Mutex<Vec<(usize, proto::AnswerRequest)>>,
    pub stop: AtomicBool,
}

impl Shared {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Shared {
            pool: Mutex::new(Vec::new()),
            acked_asks: Mutex::new(Vec::new()),
            acked_answers: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        })
    }

    /// One of the newest open decisions (so operators race on them).
    fn pick(&self, rng: &mut StdRng) -> Option<Known> {
        let pool = self.pool.lock().unwrap();
        let n = pool.len().min(12);
        (n > 0).then(|| pool[pool.len() - 1 - rng.random_range(0..n)].clone())
    }

    fn closed(&self, d: &proto::Decision) {
        if d.status != proto::Status::Open as i32 {
            self.pool.lock().unwrap().retain(|k| k.id != d.id);
        }
    }
}

fn classify(s: &tonic::Status) -> Outcome {
    use tonic::Code::*;
    match s.code() {
        InvalidArgument | NotFound | AlreadyExists | PermissionDenied | FailedPrecondition
        | OutOfRange | Unauthenticated => Outcome::Fail(format!("{:?}: {}", s.code(), s.message())),
        // Anything else (transport errors, deadlines, UNAVAILABLE while the
        // store is away mid-commit) may or may not have taken effect.
        _ => Outcome::Unknown(format!("{:?}: {}", s.code(), s.message())),
    }
}

fn ok(d: Option<proto::Decision>, answer_outcome: i32, flag: bool) -> Outcome {
    Outcome::Ok {
        decision: Box::new(d.unwrap_or_default()),
        answer_outcome,
        flag,
    }
}

fn json(v: serde_json::Value) -> Option<prost_types::Value> {
    Some(witness::api::convert::json_to_proto(&v))
}

/// One worker: random operations until `stop`, against `addrs` (one per
/// replica; a retry goes to the next replica).
pub(crate) async fn worker(
    w: usize,
    seed: u64,
    addrs: Vec<String>,
    shared: Arc<Shared>,
) -> Vec<Record> {
    let mut rng = StdRng::seed_from_u64(seed.wrapping_add(w as u64 * 7919));
    let clients: Vec<Clients> = addrs.iter().map(|a| Clients::new(a)).collect();
    let mut st = Worker {
        w,
        clients,
        turn: w,
        history: Vec::new(),
        shared,
    };
    while !st.shared.stop.load(Ordering::SeqCst) {
        let roll = rng.random_range(0..100);
        match roll {
            0..=24 => st.ask(&mut rng).await,
            25..=64 => st.answer(&mut rng).await,
            65..=71 => st.ack(&mut rng).await,
            72..=75 => st.cancel(&mut rng).await,
            76..=83 => st.report(&mut rng).await,
            84..=91 => st.replay(&mut rng).await,
            _ => tokio::time::sleep(Duration::from_millis(rng.random_range(1..30))).await,
        }
    }
    st.history
}

struct Worker {
    w: usize,
    clients: Vec<Clients>,
    turn: usize,
    history: Vec<Record>,
    shared: Arc<Shared>,
}

/// Most attempts at one request id after unknown outcomes.
const ATTEMPTS: u32 = 8;

impl Worker {
    fn next(&mut self) -> Clients {
        self.turn += 1;
        self.clients[self.turn % self.clients.len()].clone()
    }

    async fn backoff(attempt: u32) {
        tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt.min(10)))).await;
    }

    /// Sends `req` (retrying it with the same request id while the outcome
    /// is unknown); `dup` also sends a concurrent duplicate first.
    async fn send_ask(&mut self, req: proto::AskRequest, dup: bool) -> Option<proto::Decision> {
        let op = || Op::Ask {
            rid: req.request_id.clone(),
        };
        for attempt in 0..ATTEMPTS {
            let c = self.next();
            let mut a = c.asker.clone();
            let mut b = c.asker.clone();
            let (first, second) = if dup && attempt == 0 {
                let (x, y) = tokio::join!(a.ask(req.clone()), b.ask(req.clone()));
                (x, Some(y))
            } else {
                (a.ask(req.clone()).await, None)
            };
            let mut result = None;
            for r in std::iter::once(first).chain(second) {
                let outcome = match r {
                    Ok(resp) => {
                        let resp = resp.into_inner();
                        result = resp.decision.clone().or(result);
                        ok(resp.decision, 0, resp.created)
                    }
                    Err(s) => classify(&s),
                };
                let unknown = matches!(outcome, Outcome::Unknown(_));
                self.history.push(Record {
                    op: op(),
                    outcome,
                    at_us: crate::now_us(),
                });
                if !unknown && result.is_none() {
                    return None; // refused
                }
            }
            if result.is_some() {
                return result;
            }
            Self::backoff(attempt).await;
        }
        None
    }

    async fn ask(&mut self, rng: &mut StdRng) {
        let rid = uuid::Uuid::now_v7().to_string();
        let (kind, approvals) = match rng.random_range(0..10) {
            0..=3 => ("chaos.plain", 1),
            4..=6 => ("chaos.quorum", rng.random_range(2..=3)),
            _ => ("chaos.timed", rng.random_range(1..=2)),
        };
        let req = proto::AskRequest {
            request_id: rid.clone(),
            kind: kind.into(),
            input: json(serde_json::json!({ "rid": rid, "worker": self.w })),
            authorized_roles: vec!["sre".into()],
            surfaces: vec!["console".into()],
            required_approvals: approvals,
            context_snapshot: json(serde_json::json!({ "v": 0 })),
            ..Default::default()
        };
        let dup = rng.random_bool(0.1);
        if let Some(d) = self.send_ask(req.clone(), dup).await {
            self.shared.pool.lock().unwrap().push(Known { id: d.id });
            let mut acked = self.shared.acked_asks.lock().unwrap();
            acked.push(req);
            if acked.len() > 200 {
                acked.remove(0);
            }
        }
    }

    async fn send_answer(&mut self, op_idx: usize, req: proto::AnswerRequest, dup: bool) -> bool {
        let op = || Op::Answer {
            rid: req.request_id.clone(),
            decision_id: req.decision_id.clone(),
        };
        for attempt in 0..ATTEMPTS {
            let c = self.next();
            let mut a = c.ops[op_idx].clone();
            let mut b = c.ops[op_idx].clone();
            let (first, second) = if dup && attempt == 0 {
                let (x, y) = tokio::join!(a.answer(req.clone()), b.answer(req.clone()));
                (x, Some(y))
            } else {
                (a.answer(req.clone()).await, None)
            };
            let mut acked = false;
            let mut refused = false;
            for r in std::iter::once(first).chain(second) {
                let outcome = match r {
                    Ok(resp) => {
                        let resp = resp.into_inner();
                        if let Some(d) = &resp.decision {
                            self.shared.closed(d);
                        }
                        acked = true;
                        ok(resp.decision, resp.outcome, false)
                    }
                    Err(s) => classify(&s),
                };
                refused |= matches!(outcome, Outcome::Fail(_));
                self.history.push(Record {
                    op: op(),
                    outcome,
                    at_us: crate::now_us(),
                });
            }
            if acked {
                return true;
            }
            if refused {
                return false;
            }
            Self::backoff(attempt).await;
        }
        false
    }

    async fn answer(&mut self, rng: &mut StdRng) {
        let Some(k) = self.shared.pick(rng) else {
            return;
        };
        let op_idx = rng.random_range(0..OPERATORS.len());
        let rid = uuid::Uuid::now_v7().to_string();
        let verdict = if rng.random_bool(0.12) {
            proto::Verdict::Reject
        } else {
            proto::Verdict::Approve
        };
        let current_context = match rng.random_range(0..100) {
            0..=2 => json(serde_json::json!({ "v": 99 })), // voids the decision
            3..=14 => None,
            _ => json(serde_json::json!({ "v": 0 })),
        };
        let req = proto::AnswerRequest {
            decision_id: k.id,
            request_id: rid.clone(),
            verdict: verdict as i32,
            rationale: rid,
            current_context,
            ..Default::default()
        };
        let dup = rng.random_bool(0.1);
        if self.send_answer(op_idx, req.clone(), dup).await {
            let mut acked = self.shared.acked_answers.lock().unwrap();
            acked.push((op_idx, req));
            if acked.len() > 200 {
                acked.remove(0);
            }
        }
    }

    /// Re-sends an older acknowledged Ask or Answer with its request id: a
    /// retry that arrives late, after newer requests (reordered).
    async fn replay(&mut self, rng: &mut StdRng) {
        if rng.random_bool(0.5) {
            let old = {
                let a = self.shared.acked_asks.lock().unwrap();
                (!a.is_empty()).then(|| a[rng.random_range(0..a.len())].clone())
            };
            if let Some(req) = old {
                self.send_ask(req, false).await;
            }
        } else {
            let old = {
                let a = self.shared.acked_answers.lock().unwrap();
                (!a.is_empty()).then(|| a[rng.random_range(0..a.len())].clone())
            };
            if let Some((op_idx, req)) = old {
                self.send_answer(op_idx, req, false).await;
            }
        }
    }

    async fn ack(&mut self, rng: &mut StdRng) {
        let Some(k) = self.shared.pick(rng) else {
            return;
        };
        let mut c = self.next().ops[rng.random_range(0..OPERATORS.len())].clone();
        let req = proto::AckDeliveryRequest {
            decision_id: k.id.clone(),
            surface: "console".into(),
        };
        let outcome = match c.ack_delivery(req).await {
            Ok(r) => {
                let r = r.into_inner();
                ok(r.decision, 0, r.accepted)
            }
            Err(s) => classify(&s),
        };
        self.history.push(Record {
            at_us: crate::now_us(),
            op: Op::Ack { decision_id: k.id },
            outcome,
        });
    }

    async fn cancel(&mut self, rng: &mut StdRng) {
        let Some(k) = self.shared.pick(rng) else {
            return;
        };
        let reason = format!("chaos-cancel-{}", uuid::Uuid::now_v7());
        let mut c = self.next().asker;
        let outcome = match c
            .cancel(proto::CancelRequest {
                decision_id: k.id.clone(),
                reason: reason.clone(),
            })
            .await
        {
            Ok(r) => {
                let r = r.into_inner();
                if let Some(d) = &r.decision {
                    self.shared.closed(d);
                }
                ok(r.decision, 0, false)
            }
            Err(s) => classify(&s),
        };
        self.history.push(Record {
            at_us: crate::now_us(),
            op: Op::Cancel {
                decision_id: k.id,
                reason,
            },
            outcome,
        });
    }

    async fn report(&mut self, rng: &mut StdRng) {
        let Some(k) = self.shared.pick(rng) else {
            return;
        };
        let changed = rng.random_bool(0.15);
        let mut c = self.next().asker;
        let req = proto::ReportContextRequest {
            decision_id: k.id.clone(),
            context_snapshot: json(serde_json::json!({ "v": if changed { 1 } else { 0 } })),
        };
        let outcome = match c.report_context(req).await {
            Ok(r) => {
                let r = r.into_inner();
                if let Some(d) = &r.decision {
                    self.shared.closed(d);
                }
                ok(r.decision, 0, r.matched)
            }
            Err(s) => classify(&s),
        };
        self.history.push(Record {
            at_us: crate::now_us(),
            op: Op::Report {
                decision_id: k.id,
                changed,
            },
            outcome,
        });
    }
}

/// A stream subscriber: `from_zero` resumes from sequence 0, otherwise it
/// starts with a snapshot and resumes after the snapshot's end. It drops
/// its stream now and then on purpose, and after every disconnect resumes
/// after the last sequence it saw. Stops once `stop` is set and it has
/// reached `target` (set when the final log head is known).
pub(crate) async fn subscriber(
    name: &str,
    addrs: Vec<String>,
    kind_glob: Option<String>,
    from_zero: bool,
    seed: u64,
    stop: Arc<AtomicBool>,
    target: Arc<AtomicU64>,
) -> Subscription {
    let mut rng = StdRng::seed_from_u64(seed);
    let clients: Vec<GrpcClient> = addrs
        .iter()
        .map(|a| client(a, "auditor", &["sre"], None))
        .collect();
    let mut sub = Subscription {
        name: name.into(),
        kind_glob: kind_glob.clone(),
        ..Subscription::default()
    };
    let mut last: Option<u64> = from_zero.then_some(0);
    let mut turn = 0usize;
    let done = |last: Option<u64>| {
        stop.load(Ordering::SeqCst) && last.unwrap_or(0) >= target.load(Ordering::SeqCst)
    };
    loop {
        if done(last) {
            return sub;
        }
        turn += 1;
        let replica = turn % clients.len();
        let mut c = clients[replica].clone();
        let mut first: Option<String> = None;
        let asked = last;
        let req = proto::StreamDecisionsRequest {
            include_open: last.is_none(),
            kinds: kind_glob.iter().cloned().collect(),
            surfaces: vec![],
            after_sequence: last,
        };
        let cut = tokio::time::sleep(Duration::from_millis(rng.random_range(300..5000)));
        tokio::pin!(cut);
        if let Ok(resp) = c.stream_decisions(req).await {
            let mut stream = resp.into_inner();
            loop {
                tokio::select! {
                    _ = &mut cut => break, // a voluntary disconnect
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {
                        if done(last) { return sub; }
                    }
                    m = stream.message() => match m {
                        Err(s) => { first.get_or_insert_with(|| format!("error {:?} {}", s.code(), s.message())); break }
                        Ok(Some(m)) => {
                            let Some(e) = m.event else { continue };
                            if first.is_none() {
                                first = Some(format!("{} {}{}", e.sequence, e.r#type, if e.snapshot { " snapshot" } else { "" }));
                            }
                            // The end marker is itself flagged `snapshot`.
                            if e.r#type == proto::EventType::SnapshotEnd as i32 {
                                if last.is_none() {
                                    sub.start_after = e.sequence;
                                }
                                last = Some(e.sequence);
                                continue;
                            }
                            if e.snapshot {
                                continue;
                            }
                            let id = e.decision.map(|d| d.id).unwrap_or_default();
                            sub.seen.push((e.sequence, e.r#type, id));
                            last = Some(e.sequence);
                        }
                        _ => break,
                    }
                }
            }
        }
        sub.trace.push(format!(
            "replica {replica} after {asked:?}: first {first:?}, then last {last:?}"
        ));
        sub.resumes += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
