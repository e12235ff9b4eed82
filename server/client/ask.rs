//! `Client`: the idiomatic Rust client. `ask()` asks and blocks until a
//! human decides, re-confirming the context on the way so that two-person
//! rules work without user code.

use crate::proto;
use crate::{connect, retryable, wait_closed, ClientError, Credentials, GrpcClient, Result};
use proto::convert::{duration, json_to_proto};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// The asker's view of the world the decision is about.
#[derive(Clone, Default)]
pub enum Context {
    #[default]
    None,
    /// A fixed snapshot, sent with the Ask.
    Snapshot(Value),
    /// Called for the Ask's snapshot, then at each change of the decision
    /// and every `context_interval` to re-confirm (ReportContext).
    Provider(Arc<dyn Fn() -> Value + Send + Sync>),
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Context::None => f.write_str("None"),
            Context::Snapshot(v) => f.debug_tuple("Snapshot").field(v).finish(),
            Context::Provider(_) => f.write_str("Provider(..)"),
        }
    }
}

/// Called by [`Client::ask`] with the decision as the Ask returned it,
/// before the wait (see [`Ask::on_created`]).
#[derive(Clone)]
pub struct OnCreated(pub Arc<dyn Fn(&proto::Decision) + Send + Sync>);

impl std::fmt::Debug for OnCreated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OnCreated(..)")
    }
}

/// A question to ask.
#[derive(Debug, Clone)]
pub struct Ask {
    pub kind: String,
    pub input: Value,
    pub authorized_roles: Vec<String>,
    pub surfaces: Vec<String>,
    pub response_schema: Option<Value>,
    /// 0: the policy's.
    pub required_approvals: u32,
    pub context: Context,
    pub timeout: Option<Duration>,
    /// Idempotency key; a fresh one is made when empty.
    pub request_id: String,
    /// How often a context provider re-confirms while waiting.
    pub context_interval: Duration,
    /// Called once by [`Client::ask`] before it waits.
    pub on_created: Option<OnCreated>,
}

impl Ask {
    pub fn new(kind: impl Into<String>, input: Value, authorized_roles: &[&str]) -> Ask {
        Ask {
            kind: kind.into(),
            input,
            authorized_roles: authorized_roles.iter().map(ToString::to_string).collect(),
            surfaces: Vec::new(),
            response_schema: None,
            required_approvals: 0,
            context: Context::None,
            timeout: None,
            request_id: String::new(),
            context_interval: Duration::from_secs(5),
            on_created: None,
        }
    }

    /// Calls `f` once with the decision as the Ask returned it (open, unless
    /// an idempotent retry found it closed already), before [`Client::ask`]
    /// waits: `.on_created(|d| println!("{}", answer_hint(d)))` prints its
    /// id and how to answer it, as `witness ask --wait` does (see
    /// [`answer_hint`](crate::answer_hint)).
    pub fn on_created(mut self, f: impl Fn(&proto::Decision) + Send + Sync + 'static) -> Ask {
        self.on_created = Some(OnCreated(Arc::new(f)));
        self
    }

    pub fn approvals(mut self, n: u32) -> Ask {
        self.required_approvals = n;
        self
    }

    pub fn context(mut self, c: Context) -> Ask {
        self.context = c;
        self
    }

    pub fn surfaces(mut self, s: &[&str]) -> Ask {
        self.surfaces = s.iter().map(ToString::to_string).collect();
        self
    }

    fn request(&self) -> proto::AskRequest {
        let snapshot = match &self.context {
            Context::None => None,
            Context::Snapshot(v) => Some(json_to_proto(v)),
            Context::Provider(f) => Some(json_to_proto(&f())),
        };
        proto::AskRequest {
            request_id: if self.request_id.is_empty() {
                uuid::Uuid::now_v7().to_string()
            } else {
                self.request_id.clone()
            },
            kind: self.kind.clone(),
            input: Some(json_to_proto(&self.input)),
            response_schema: self.response_schema.as_ref().map(json_to_proto),
            authorized_roles: self.authorized_roles.clone(),
            surfaces: self.surfaces.clone(),
            required_approvals: self.required_approvals,
            context_snapshot: snapshot,
            timeout: self.timeout.map(|t| duration(t.as_micros() as i64)),
        }
    }
}

/// The witness client.
#[derive(Debug, Clone)]
pub struct Client {
    grpc: GrpcClient,
}

impl From<GrpcClient> for Client {
    fn from(grpc: GrpcClient) -> Self {
        Client { grpc }
    }
}

impl Client {
    pub async fn connect(server: &str, creds: &Credentials) -> Result<Client> {
        Ok(Client {
            grpc: connect(server, creds).await?,
        })
    }

    /// [`Client::connect`] with a function returning the current bearer
    /// token, called for every request (see [`crate::TokenProvider`]).
    pub async fn connect_with_token_provider(
        server: &str,
        creds: &Credentials,
        provider: crate::TokenProvider,
    ) -> Result<Client> {
        Ok(Client {
            grpc: crate::connect_with_token_provider(server, creds, provider).await?,
        })
    }

    /// The generated client, for every other RPC.
    pub fn grpc(&mut self) -> &mut GrpcClient {
        &mut self.grpc
    }

    /// Asks (retrying on UNAVAILABLE with the same request_id) and returns
    /// the open decision.
    pub async fn ask_nowait(&mut self, ask: &Ask) -> Result<proto::Decision> {
        self.send_ask(ask.request()).await
    }

    async fn send_ask(&mut self, req: proto::AskRequest) -> Result<proto::Decision> {
        let mut backoff = Duration::from_millis(100);
        for _ in 0..8 {
            match self.grpc.ask(req.clone()).await {
                Ok(r) => {
                    return r
                        .into_inner()
                        .decision
                        .ok_or_else(|| ClientError::BadServer("no decision".into()))
                }
                Err(s) if s.code() == tonic::Code::Unavailable => tokio::time::sleep(backoff).await,
                Err(s) => return Err(s.into()),
            }
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
        Err(ClientError::BadServer("witness stayed unavailable".into()))
    }

    /// Returns the first of the decisions `ids` to close, following all of
    /// them over one `StreamDecisions` stream (see [`crate::wait_any`]).
    pub async fn wait_any(&mut self, ids: &[String]) -> Result<proto::Decision> {
        crate::wait_any(&mut self.grpc, ids, |_| {}).await
    }

    /// Asks and blocks until the decision closes; returns it whatever the
    /// outcome (check `status`). A context provider is re-confirmed at each
    /// change and every `context_interval`.
    pub async fn ask(&mut self, ask: Ask) -> Result<proto::Decision> {
        let d = self.ask_nowait(&ask).await?;
        if let Some(OnCreated(f)) = &ask.on_created {
            f(&d);
        }
        let Context::Provider(provider) = ask.context.clone() else {
            return wait_closed(&mut self.grpc, &d.id, |_| {}).await;
        };
        // Re-confirm from a side task so the watch never blocks on it.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
        let mut reporter = self.grpc.clone();
        let id = d.id.clone();
        let interval = ask.context_interval;
        let task = tokio::spawn(async move {
            loop {
                let _ = tokio::time::timeout(interval, rx.recv()).await;
                let req = proto::ReportContextRequest {
                    decision_id: id.clone(),
                    context_snapshot: Some(json_to_proto(&provider())),
                };
                match reporter.report_context(req).await {
                    Ok(r) if !r.get_ref().matched => return,
                    Err(s) if !retryable(&s) => return,
                    _ => {}
                }
            }
        });
        let closed = wait_closed(&mut self.grpc, &d.id, |e| {
            let own = e.r#type == proto::EventType::ContextConfirmed as i32
                || e.r#type == proto::EventType::Created as i32;
            if !own {
                let _ = tx.try_send(());
            }
        })
        .await;
        task.abort();
        closed
    }
}
