//! The `witness` command line: the server, local tools, and a gRPC client.

mod answer;
mod audit;
mod errors;
mod list;
mod local;
mod output;
mod whoami;

pub use errors::CliError;
use errors::Result;

use crate::client::{self, Credentials, GrpcClient};
use crate::config::Config;
use crate::proto;
use clap::{Args, Parser, Subcommand, ValueEnum};
use output::Printer;
use std::path::PathBuf;

/// Exit codes: 0 success (`ask --wait`: APPROVED), 1 REJECTED, 2 usage or
/// RPC error, 3 EXPIRED, 4 CANCELLED, 5 CONTEXT_CHANGED.
pub mod exit {
    pub const OK: i32 = 0;
    pub const REJECTED: i32 = 1;
    pub const ERROR: i32 = 2;
    pub const EXPIRED: i32 = 3;
    pub const CANCELLED: i32 = 4;
    pub const CONTEXT_CHANGED: i32 = 5;
}

#[derive(Parser, Debug)]
#[command(
    name = "witness",
    version = env!("WITNESS_VERSION"),
    about = "Human-in-the-loop decisions over gRPC",
    after_help = "Start with `witness serve` (dev mode, see `witness serve --help`), then \
                  `witness ask`, `witness list` and `witness answer` from another terminal."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server.
    ///
    /// With no --config and no WITNESS__* variables it runs in dev mode:
    /// no principals, so identity comes from --as/--roles (the
    /// x-witness-principal and x-witness-roles metadata); it listens on
    /// loopback only (127.0.0.1:50051) and stores everything in `witness.db`
    /// (SQLite) in the current directory, with the receipt signing key in
    /// `witness-receipt.key` beside it. `witness config reference` lists
    /// every key.
    Serve {
        /// TOML configuration file (default: none, dev mode; WITNESS__*
        /// environment variables override it key by key).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Overrides `listen` (e.g. 127.0.0.1:0 for a free port).
        #[arg(long)]
        listen: Option<String>,
        /// Allow plaintext on a non-loopback address.
        #[arg(long)]
        insecure: bool,
    },
    /// Apply the store's migrations and exit.
    Migrate {
        /// TOML configuration file naming the store (default: sqlite://witness.db).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// The configuration: every key.
    Config {
        #[command(subcommand)]
        command: local::ConfigCommand,
    },
    /// Who the server says you are: principal, roles and their source.
    Whoami {
        #[command(flatten)]
        conn: Conn,
    },
    /// Make bearer tokens for principals.
    Token {
        #[command(subcommand)]
        command: local::TokenCommand,
    },
    /// Signed decision receipts.
    Receipt {
        #[command(subcommand)]
        command: local::ReceiptCommand,
    },
    /// See and re-drive webhook deliveries (reads the store directly).
    Outbox {
        #[command(subcommand)]
        command: local::OutboxCommand,
    },
    /// Audit the event log.
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// Ask a question and print the decision (or wait for it with --wait).
    Ask(AskArgs),
    /// Answer a decision.
    Answer(AnswerArgs),
    /// Approve a decision (`answer ID approve`).
    Approve(ShortAnswerArgs),
    /// Reject a decision (`answer ID reject`).
    Reject(ShortAnswerArgs),
    /// Show one decision.
    Get {
        /// The decision id (a UUID, as `ask` and `list` print it).
        id: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// List decisions you may see.
    List(ListArgs),
    /// Cancel an open decision.
    Cancel {
        /// The decision id.
        id: String,
        /// Why, recorded in the audit log.
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Acknowledge that a human has seen a decision on a surface.
    Ack {
        /// The decision id.
        id: String,
        /// The surface the human saw it on.
        #[arg(long, default_value = "cli")]
        surface: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Measure throughput and latency against an in-process server.
    Bench(crate::bench::BenchArgs),
    /// Follow one decision until it closes; exits with its outcome's code.
    Watch {
        /// The decision id.
        id: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// A live console: one line per event (resumes after interruptions).
    Stream {
        /// Start with the open decisions you may see.
        #[arg(long)]
        include_open: bool,
        /// Only kinds matching these globs (comma-separated).
        #[arg(long, value_delimiter = ',')]
        kind: Vec<String>,
        /// Only decisions for these surfaces (comma-separated).
        #[arg(long, value_delimiter = ',')]
        surface: Vec<String>,
        /// Resume after this event sequence (0: from the first event).
        #[arg(long)]
        after: Option<u64>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Report the asker's current context for a decision.
    ReportContext {
        /// The decision id (you must be its asker).
        id: String,
        /// JSON, or @FILE.
        #[arg(long)]
        context: String,
        #[command(flatten)]
        conn: Conn,
    },
}

/// How to reach and authenticate to the server.
#[derive(Args, Debug, Clone)]
pub struct Conn {
    /// HOST:PORT or http(s)://HOST:PORT.
    #[arg(
        long,
        env = "WITNESS_SERVER",
        default_value = "127.0.0.1:50051",
        global = true
    )]
    pub server: String,
    /// Bearer token. Prefer the WITNESS_TOKEN environment variable: a
    /// command-line argument is visible to every local user in `ps`.
    #[arg(long, env = "WITNESS_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Dev mode: act as this principal.
    #[arg(long = "as", global = true)]
    pub principal: Option<String>,
    /// Dev mode: with these roles (comma-separated).
    #[arg(long, value_delimiter = ',', global = true)]
    pub roles: Vec<String>,
    /// Print JSON for scripts.
    #[arg(long, global = true)]
    pub json: bool,
    /// PEM CA certificate for an https:// server.
    #[arg(long, env = "WITNESS_CA_CERT", global = true)]
    pub ca_cert: Option<PathBuf>,
    /// PEM client certificate, when the server requires one.
    #[arg(long, env = "WITNESS_CLIENT_CERT", global = true)]
    pub client_cert: Option<PathBuf>,
    /// PEM key of the client certificate.
    #[arg(long, env = "WITNESS_CLIENT_KEY", global = true)]
    pub client_key: Option<PathBuf>,
}

impl Conn {
    /// The defaults, with `--as alice --roles sre`.
    #[cfg(test)]
    pub(crate) fn for_tests() -> Conn {
        Conn {
            server: "127.0.0.1:50051".into(),
            token: None,
            principal: Some("alice".into()),
            roles: vec!["sre".into()],
            json: false,
            ca_cert: None,
            client_cert: None,
            client_key: None,
        }
    }

    /// Connects, with errors said in CLI terms.
    pub(crate) async fn client(&self) -> Result<GrpcClient> {
        let creds = Credentials {
            token: self.token.clone(),
            principal: self.principal.clone(),
            roles: self.roles.clone(),
            tls: client::TlsOptions {
                ca_cert: self.ca_cert.clone(),
                client_cert: self.client_cert.clone(),
                client_key: self.client_key.clone(),
            },
        };
        client::connect(&self.server, &creds)
            .await
            .map_err(|e| CliError::client(e, &self.server))
    }

    /// Whether the user gave no identity at all (`anonymous` in dev mode).
    fn anonymous(&self) -> bool {
        self.principal.is_none() && self.token.is_none()
    }
}

#[derive(Args, Debug)]
pub struct AskArgs {
    /// Dotted decision kind, e.g. deploy.production.
    pub kind: String,
    /// What the human must judge: JSON, or @FILE.
    #[arg(long, default_value = "null")]
    pub input: String,
    /// Roles whose holders may answer (comma-separated).
    #[arg(long = "authorized-roles", value_delimiter = ',', required = true)]
    pub authorized_roles: Vec<String>,
    /// Surfaces to deliver to (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub surfaces: Vec<String>,
    /// Approvals needed (0: the policy's).
    #[arg(long, default_value_t = 0)]
    pub approvals: u32,
    /// JSON Schema for answers: JSON, or @FILE.
    #[arg(long)]
    pub schema: Option<String>,
    /// Context snapshot: JSON, or @FILE.
    #[arg(long)]
    pub context: Option<String>,
    /// Time to live, e.g. 15m.
    #[arg(long)]
    pub timeout: Option<humantime::Duration>,
    /// Idempotency key (default: a fresh UUID).
    #[arg(long)]
    pub request_id: Option<String>,
    /// Block until the decision closes; the exit code tells the outcome.
    #[arg(long)]
    pub wait: bool,
    #[command(flatten)]
    pub conn: Conn,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum VerdictArg {
    /// Count towards the required approvals.
    Approve,
    /// Veto: one rejection closes the decision REJECTED.
    Reject,
}

#[derive(Args, Debug)]
pub struct AnswerArgs {
    /// The decision id (`witness list` shows the ones you may answer).
    pub id: String,
    /// approve or reject.
    pub verdict: VerdictArg,
    #[command(flatten)]
    pub vote: answer::VoteArgs,
}

/// `witness approve ID` / `witness reject ID`: `answer ID approve|reject`.
#[derive(Args, Debug)]
pub struct ShortAnswerArgs {
    /// The decision id (`witness list` shows the ones you may answer).
    pub id: String,
    #[command(flatten)]
    pub vote: answer::VoteArgs,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Only these statuses (comma-separated): open, approved, rejected,
    /// cancelled, expired, context_changed.
    #[arg(long, value_delimiter = ',')]
    pub status: Vec<String>,
    /// Only kinds matching these globs (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub kind: Vec<String>,
    /// Decisions per page (0: the server's default; at most 1000).
    #[arg(long, default_value_t = 0)]
    pub page_size: u32,
    /// Continue from the token a previous page printed.
    #[arg(long, default_value = "")]
    pub page_token: String,
    /// Follow page tokens to the end.
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub conn: Conn,
}

/// Parses a JSON argument, reading `@FILE` when given.
fn json_value_arg(flag: &'static str, raw: &str) -> Result<serde_json::Value> {
    let text = match raw.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).map_err(|source| CliError::ReadArg {
            flag,
            path: path.to_string(),
            source,
        })?,
        None => raw.to_string(),
    };
    serde_json::from_str(&text).map_err(|source| CliError::Json { flag, source })
}

fn json_arg(flag: &'static str, raw: &str) -> Result<prost_types::Value> {
    Ok(proto::convert::json_to_proto(&json_value_arg(flag, raw)?))
}

fn opt_json_arg(flag: &'static str, raw: &Option<String>) -> Result<Option<prost_types::Value>> {
    raw.as_deref().map(|r| json_arg(flag, r)).transpose()
}

fn fresh_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Runs the command line and returns the process exit code. The one place
/// a failure becomes text on stderr and an exit code.
pub async fn run(cli: Cli) -> i32 {
    match run_inner(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("witness: {e}");
            e.exit_code()
        }
    }
}

async fn run_inner(cli: Cli) -> Result {
    if !matches!(cli.command, Command::Serve { .. }) {
        crate::telemetry::init_default();
    }
    match cli.command {
        Command::Serve {
            config,
            listen,
            insecure,
        } => {
            let origin = crate::reload::Origin {
                path: config,
                listen,
            };
            let config = origin.load()?;
            // The config decides the log format and trace export.
            let _telemetry = crate::telemetry::init(&config.log, &config.tracing)?;
            crate::metrics::init(config.metrics.enabled);
            crate::server::serve(config, origin, insecure).await?;
            Ok(exit::OK)
        }
        Command::Migrate { config } => {
            let config = Config::load(config.as_deref())?;
            crate::store::open(&config.store.url, &config.store.pg_options()).await?;
            println!(
                "migrations applied to {}",
                crate::server::redact_url(&config.store.url)
            );
            Ok(exit::OK)
        }
        Command::Audit { command } => audit::run(command).await,
        Command::Outbox { command } => local::outbox(command).await,
        Command::Token { command } => Ok(local::token(command)),
        Command::Config { command } => Ok(local::config(command)),
        Command::Whoami { conn } => whoami::run(&conn).await,
        Command::Receipt { command } => local::receipt(command).await,
        Command::Bench(args) => {
            crate::bench::run(args).await.map_err(CliError::Bench)?;
            Ok(exit::OK)
        }
        Command::Ask(a) => {
            let p = Printer::new(a.conn.json);
            let ask = client::Ask {
                input: json_value_arg("--input", &a.input)?,
                response_schema: a
                    .schema
                    .as_deref()
                    .map(|s| json_value_arg("--schema", s))
                    .transpose()?,
                surfaces: a.surfaces.clone(),
                required_approvals: a.approvals,
                context: match &a.context {
                    Some(c) => client::Context::Snapshot(json_value_arg("--context", c)?),
                    None => client::Context::None,
                },
                timeout: a.timeout.map(Into::into),
                request_id: a.request_id.clone().unwrap_or_else(fresh_id),
                authorized_roles: a.authorized_roles.clone(),
                ..client::Ask::new(a.kind.clone(), serde_json::Value::Null, &[])
            };
            let mut c = client::Client::from(a.conn.client().await?);
            let d = c
                .ask_nowait(&ask)
                .await
                .map_err(|e| CliError::client(e, &a.conn.server))?;
            if !a.wait {
                p.decision(Some(&d));
                return Ok(exit::OK);
            }
            // On stderr, so `--json` output stays one document.
            eprintln!("{}", output::waiting_hint(&d, &a.conn));
            let closed = client::wait_closed(c.grpc(), &d.id, |_| {})
                .await
                .map_err(|e| CliError::client(e, &a.conn.server))?;
            p.decision(Some(&closed));
            Ok(status_exit(closed.status))
        }
        Command::Answer(a) => answer::run(&a.id, a.verdict, a.vote).await,
        Command::Approve(a) => answer::run(&a.id, VerdictArg::Approve, a.vote).await,
        Command::Reject(a) => answer::run(&a.id, VerdictArg::Reject, a.vote).await,
        Command::Get { id, conn } => {
            errors::decision_id(&id)?;
            let mut c = conn.client().await?;
            let resp = c
                .get_decision(proto::GetDecisionRequest { decision_id: id })
                .await?;
            Printer::new(conn.json).decision(resp.into_inner().decision.as_ref());
            Ok(exit::OK)
        }
        Command::List(a) => list::run(a).await,
        Command::Watch { id, conn } => {
            errors::decision_id(&id)?;
            let p = Printer::new(conn.json);
            let mut c = conn.client().await?;
            let closed = client::wait_closed(&mut c, &id, |e| p.event(e))
                .await
                .map_err(|e| CliError::client(e, &conn.server))?;
            Ok(status_exit(closed.status))
        }
        Command::Stream {
            include_open,
            kind,
            surface,
            after,
            conn,
        } => {
            let req = proto::StreamDecisionsRequest {
                include_open,
                kinds: kind,
                surfaces: surface,
                after_sequence: after,
            };
            stream(req, &conn).await
        }
        Command::Cancel { id, reason, conn } => {
            errors::decision_id(&id)?;
            let mut c = conn.client().await?;
            let resp = c
                .cancel(proto::CancelRequest {
                    decision_id: id,
                    reason,
                })
                .await?;
            Printer::new(conn.json).decision(resp.into_inner().decision.as_ref());
            Ok(exit::OK)
        }
        Command::Ack { id, surface, conn } => {
            errors::decision_id(&id)?;
            let mut c = conn.client().await?;
            let resp = c
                .ack_delivery(proto::AckDeliveryRequest {
                    decision_id: id,
                    surface,
                })
                .await?;
            Printer::new(conn.json).acked(&resp.into_inner());
            Ok(exit::OK)
        }
        Command::ReportContext { id, context, conn } => {
            errors::decision_id(&id)?;
            let snapshot = json_arg("--context", &context)?;
            let mut c = conn.client().await?;
            let req = proto::ReportContextRequest {
                decision_id: id,
                context_snapshot: Some(snapshot),
            };
            let resp = c.report_context(req).await?;
            Printer::new(conn.json).reported(&resp.into_inner());
            Ok(exit::OK)
        }
    }
}

/// The exit code for a closed decision's status.
pub fn status_exit(status: i32) -> i32 {
    match proto::Status::try_from(status) {
        Ok(proto::Status::Approved) => exit::OK,
        Ok(proto::Status::Rejected) => exit::REJECTED,
        Ok(proto::Status::Expired) => exit::EXPIRED,
        Ok(proto::Status::Cancelled) => exit::CANCELLED,
        Ok(proto::Status::ContextChanged) => exit::CONTEXT_CHANGED,
        _ => exit::ERROR,
    }
}

/// Prints events until interrupted, resuming after the last one seen when
/// the stream drops or is ended for being slow.
async fn stream(mut req: proto::StreamDecisionsRequest, conn: &Conn) -> Result {
    let p = Printer::new(conn.json);
    let mut backoff = std::time::Duration::from_millis(100);
    loop {
        let outcome = async {
            let mut c = conn
                .client()
                .await
                .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
            let mut s = c.stream_decisions(req.clone()).await?.into_inner();
            while let Some(resp) = s.message().await? {
                if let Some(e) = resp.event {
                    p.event(&e);
                    // Snapshot events carry each decision's own sequence;
                    // only live events and SNAPSHOT_END mark a log position.
                    let end = e.r#type == proto::EventType::SnapshotEnd as i32;
                    if !e.snapshot || end {
                        req.after_sequence = Some(e.sequence);
                        req.include_open = false;
                    }
                }
            }
            Ok::<(), tonic::Status>(())
        }
        .await;
        match outcome {
            Err(s) if !client::retryable(&s) => return Err(CliError::Rpc(s)),
            Err(s) => eprintln!(
                "witness: stream interrupted ({}); resuming after {}",
                s.message(),
                resume_point(&req)
            ),
            Ok(()) => eprintln!(
                "witness: stream ended; resuming after {}",
                resume_point(&req)
            ),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(std::time::Duration::from_secs(5));
    }
}

fn resume_point(req: &proto::StreamDecisionsRequest) -> String {
    match req.after_sequence {
        Some(n) => format!("event {n}"),
        None => "a new snapshot".to_string(),
    }
}
