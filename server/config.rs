//! Configuration: a TOML file, overridden key by key by `WITNESS__`
//! environment variables (`WITNESS__STORE__URL=postgres://…`).

use crate::core::policy::PolicyRule;
use crate::core::schema::Limits;
use figment::providers::{Env, Format, Toml};
use figment::Figment;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::path::Path;

mod figment_errors;
mod identity;
mod reference;
mod secrets;
mod slack;
mod validate;
mod webhooks;

pub use identity::{session_key_bytes, template_claims, AuthConfig, IssuerConfig};

pub use reference::reference;
pub use slack::{SlackConfig, SlackUser};
pub use webhooks::{OutboxConfig, WebhookConfig, WebhookFormat};

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("config: {0}")]
pub struct ConfigError(pub String);

/// The principal name of dev-mode requests that name none; no configured
/// principal may take it.
pub const ANONYMOUS: &str = "anonymous";

/// Smallest `limits.max_message_bytes`: below it ordinary requests fail.
const MIN_MESSAGE_BYTES: usize = 4 * 1024;

/// Result alias for configuration.
pub type Result<T, E = ConfigError> = std::result::Result<T, E>;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address of the gRPC (and HTTP) listener; `--listen` overrides it. A
    /// non-loopback address needs `[[principals]]`, and `[tls]` or
    /// `--insecure`.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Where decisions and the event log are kept.
    #[serde(default)]
    pub store: StoreConfig,
    /// Who may call, one entry per caller; none at all means dev mode.
    #[serde(default)]
    pub principals: Vec<PrincipalConfig>,
    /// OpenID providers whose JWTs identify callers (and whose sign-in the
    /// console offers): see `IssuerConfig`.
    #[serde(default)]
    pub issuers: Vec<IssuerConfig>,
    /// The console's session cookie.
    #[serde(default)]
    pub auth: AuthConfig,
    /// Rules by kind glob: the first entry that matches a decision's kind
    /// applies, and is copied into the decision when it is asked.
    #[serde(default)]
    pub policies: Vec<PolicyRule>,
    /// Where witness POSTs pages and outcome notifications: signed, and
    /// retried from a durable outbox.
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
    /// Bounds on what callers send and on the connections they hold.
    #[serde(default)]
    pub limits: Limits,
    /// Bounds on server streams.
    #[serde(default)]
    pub streams: StreamsConfig,
    /// Webhook delivery retries.
    #[serde(default)]
    pub outbox: OutboxConfig,
    /// The key that signs decision receipts.
    #[serde(default)]
    pub receipts: ReceiptsConfig,
    /// TLS for the listener (rustls); absent: none.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// The HTTP side: where it is served, and which pages elsewhere may use it.
    #[serde(default)]
    pub http: HttpConfig,
    /// What `witness serve` writes to stderr (the level comes from the
    /// `WITNESS_LOG` filter, default `info`).
    #[serde(default)]
    pub log: LogConfig,
    /// OpenTelemetry trace export.
    #[serde(default)]
    pub tracing: TracingConfig,
    /// Prometheus metrics at `GET /metrics`.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// The Model Context Protocol endpoint `/mcp`, where AI agents ask people.
    #[serde(default)]
    pub mcp: McpConfig,
    /// The Slack app: decisions posted with Approve / Reject buttons to a
    /// policy's `slack_channel`, answered from Slack; absent: none.
    #[serde(default)]
    pub slack: Option<SlackConfig>,
}

/// `[http]`: where the HTTP side (Connect, gRPC-Web, `/healthz` and the
/// other HTTP routes) is served.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// When set, the HTTP side moves to this address and `listen` serves
    /// gRPC only. Unset: one port speaks both.
    #[serde(default)]
    pub listen: Option<String>,
    /// Origins of pages hosted elsewhere (dashboards) whose requests carrying
    /// a bearer token may change state; any other cross-origin state change
    /// is refused with 403.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
}

/// `scheme://host[:port]` and nothing more, as browsers send `Origin`.
fn is_origin(s: &str) -> bool {
    let Some(rest) = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
    else {
        return false;
    };
    !rest.is_empty() && !rest.contains(['/', '?', '#', '@', ' '])
}

/// `[log]`: what `witness serve` writes to stderr (the level comes from
/// the `WITNESS_LOG` filter, default `info`).
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
}

/// Log line shape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable; coloured only when stderr is a terminal.
    #[default]
    Text,
    /// One JSON object per line, with the span fields.
    Json,
}

/// `[tracing]`: OpenTelemetry export.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TracingConfig {
    /// OTLP/HTTP collector base URL, e.g. `http://HOST:4318`; spans go to
    /// `/v1/traces` under it. Empty: no export.
    pub otlp_endpoint: String,
    /// `service.name` of the exported spans.
    pub service_name: String,
}

impl Default for TracingConfig {
    fn default() -> Self {
        TracingConfig {
            otlp_endpoint: String::new(),
            service_name: "witness".into(),
        }
    }
}

/// `[metrics]`.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Serve `GET /metrics` and collect; false: 404 and nothing counted.
    pub enabled: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig { enabled: true }
    }
}

/// `[mcp]`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct McpConfig {
    /// Serve MCP (Streamable HTTP) at `/mcp` and its OAuth protected-resource
    /// metadata; false: 404.
    pub enabled: bool,
    /// Roles that may answer a `request_approval` that names no
    /// `authorized_roles`; empty: the agent must name them.
    pub authorized_roles: Vec<String>,
}

impl Default for McpConfig {
    fn default() -> Self {
        McpConfig {
            enabled: true,
            authorized_roles: Vec::new(),
        }
    }
}

/// `[receipts]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiptsConfig {
    /// The Ed25519 seed (hex); created on first start when missing. Default:
    /// `witness-receipt.key` beside a SQLite database, else in the working
    /// directory. Replicas must share one.
    pub key_file: Option<std::path::PathBuf>,
}

/// `[tls]`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert: std::path::PathBuf,
    /// PEM private key.
    pub key: std::path::PathBuf,
    /// PEM CA bundle: when set, clients must present a certificate it signed.
    #[serde(default)]
    pub client_ca: Option<std::path::PathBuf>,
}

impl Config {
    /// No principals and no issuers: identity comes from request headers
    /// and the server listens on loopback only.
    pub fn dev_mode(&self) -> bool {
        self.principals.is_empty() && self.issuers.is_empty()
    }

    /// The receipt key file in effect.
    pub fn receipt_key_file(&self) -> std::path::PathBuf {
        self.receipts
            .key_file
            .clone()
            .unwrap_or_else(|| crate::receipts::default_key_file(&self.store.url))
    }
}

/// `[streams]`: bounds on server streams.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct StreamsConfig {
    /// Events a subscriber may fall behind before it is ended with
    /// RESOURCE_EXHAUSTED (the hub's shared ring).
    pub ring: usize,
}

impl Default for StreamsConfig {
    fn default() -> Self {
        StreamsConfig { ring: 4096 }
    }
}

fn default_listen() -> String {
    "127.0.0.1:50051".into()
}

/// `[store]`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://PATH` (default `sqlite://witness.db`) or `postgres://…`.
    #[serde(default = "default_store_url")]
    pub url: String,
    /// Postgres: connections per process.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// Postgres: longest a statement may run, and a write batch may wait
    /// for its COMMIT to be confirmed (by a synchronous standby, too);
    /// past it the request answers UNAVAILABLE. `0s`: no limit.
    #[serde(default = "default_statement_timeout", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub statement_timeout: std::time::Duration,
    /// Postgres: longest to wait for a connection.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub connect_timeout: std::time::Duration,
    /// Postgres: a file holding the password, put into `url` (which then
    /// names the user only: `postgres://witness@host/db`).
    #[serde(default)]
    pub password_file: Option<std::path::PathBuf>,
    /// Postgres: an environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
}

fn default_pool_size() -> usize {
    16
}

fn default_statement_timeout() -> std::time::Duration {
    std::time::Duration::from_secs(5)
}

fn default_connect_timeout() -> std::time::Duration {
    std::time::Duration::from_secs(3)
}

impl StoreConfig {
    pub fn pg_options(&self) -> crate::store::postgres::PgOptions {
        crate::store::postgres::PgOptions {
            pool_size: self.pool_size,
            statement_timeout: self.statement_timeout,
            connect_timeout: self.connect_timeout,
        }
    }
}

fn default_store_url() -> String {
    "sqlite://witness.db".into()
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: default_store_url(),
            pool_size: default_pool_size(),
            statement_timeout: default_statement_timeout(),
            connect_timeout: default_connect_timeout(),
            password_file: None,
            password_env: None,
        }
    }
}

/// One `[[principals]]` entry.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrincipalConfig {
    /// Who the token belongs to, recorded in the audit log: not empty,
    /// unique, and not `anonymous`.
    pub name: String,
    /// Lowercase hex SHA-256 of the bearer token.
    pub token_sha256: String,
    /// Roles matched against a decision's `authorized_roles`.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Kind globs this principal may ask about.
    #[serde(default = "everything")]
    pub can_ask: Vec<String>,
    /// Operators this principal may answer for (`*`: anyone).
    #[serde(default)]
    pub can_act_for: Vec<String>,
    /// The principal's email address: with `[slack] principal_from =
    /// "email"`, the Slack user with this address answers as it.
    #[serde(default)]
    pub email: Option<String>,
}

fn everything() -> Vec<String> {
    vec!["*".into()]
}

impl Config {
    /// Loads `path` (when given) and the `WITNESS__` environment.
    pub fn load(path: Option<&Path>) -> Result<Config> {
        let mut figment = Figment::new();
        if let Some(path) = path {
            if !path.exists() {
                return Err(ConfigError(format!("{} does not exist", path.display())));
            }
            // A directory would load as an empty file: dev mode by accident.
            if !path.is_file() {
                return Err(ConfigError(format!(
                    "{} is not a file (give the path of a TOML config file)",
                    path.display()
                )));
            }
            figment = figment.merge(Toml::file(path));
        }
        let mut config: Config = figment
            .merge(Env::prefixed("WITNESS__").split("__"))
            .extract()
            .map_err(|e| ConfigError(figment_errors::describe(e)))?;
        // Name the file, as figment's own errors do: a key can come from
        // the file or from a WITNESS__ variable.
        config
            .resolve_secrets()
            .and_then(|()| config.validate())
            .map_err(|e| match path {
                Some(p) => ConfigError(format!(
                    "{} (in {} or its WITNESS__ environment overrides)",
                    e.0,
                    p.display()
                )),
                None => e,
            })?;
        Ok(config)
    }

    /// Reads the secrets kept out of the file (`*_file`, `*_env`) into
    /// their keys.
    fn resolve_secrets(&mut self) -> Result<()> {
        for (i, w) in self.webhooks.iter_mut().enumerate() {
            w.secret = secrets::resolve(secrets::Sources {
                key: &format!("webhooks[{i}].secret"),
                inline: &w.secret,
                file: secrets::path(&w.secret_file),
                env: w.secret_env.as_deref(),
            })?;
        }
        if let Some(slack) = &mut self.slack {
            slack.resolve_secrets()?;
        }
        let store = &mut self.store;
        let password = secrets::resolve(secrets::Sources {
            key: "store.password",
            inline: "",
            file: secrets::path(&store.password_file),
            env: store.password_env.as_deref(),
        })?;
        if !password.is_empty() {
            store.url = secrets::with_password(&store.url, &password)?;
        }
        identity::resolve_secrets(&mut self.issuers, &mut self.auth)
    }
}
