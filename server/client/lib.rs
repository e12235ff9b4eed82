//! witness-client: the Rust client of witness. It owns the connection
//! (`connect`: URL, TLS, credentials on every call), the generated gRPC stub
//! with them attached (`GrpcClient`), the waiting helpers (`wait_closed`,
//! `wait_any`, `retryable`), and `Client`, whose `ask()` blocks until a
//! human decides. The protocol itself (messages, conversions) is
//! witness-proto, re-exported as [`proto`]; nothing here is the server's.

mod ask;

pub use ask::{Ask, Client, Context, OnCreated};

pub use witness_proto as proto;

use proto::witness_service_client::WitnessServiceClient;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("--server: {0}")]
    BadServer(String),
    #[error("cannot connect to {server}: {source}")]
    Connect {
        server: String,
        source: tonic::transport::Error,
    },
    #[error("{0}")]
    BadCredentials(String),
    /// A call's arguments cannot be right (names the argument).
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{}: {}", .0.code(), .0.message())]
    Rpc(#[from] tonic::Status),
}

/// How a human answers `d` with the `witness` CLI: the two lines
/// `witness ask --wait` prints while it waits (dev-mode identity, default
/// server):
///
/// ```text
/// waiting for a human to decide deploy.production (decision ID); answer it with:
///   witness answer ID approve --rationale "..." --as NAME --roles sre
/// ```
///
/// Control characters and bidirectional overrides in the kind, id or role
/// are escaped (`\n`, `\x1b`, `\u{202e}`), so none can forge a line.
pub fn answer_hint(d: &proto::Decision) -> String {
    answer_hint_for(d, None, false)
}

/// [`answer_hint`] for a server other than the CLI's default (`server`,
/// shown as `--server`) or a token-mode server (`token`: `--token TOKEN`
/// instead of the dev-mode `--as NAME --roles ROLE`).
pub fn answer_hint_for(d: &proto::Decision, server: Option<&str>, token: bool) -> String {
    let server = match server {
        Some(s) if s != "127.0.0.1:50051" => format!(" --server {}", shown(s)),
        _ => String::new(),
    };
    let who = if token {
        " --token TOKEN".to_string()
    } else {
        let role = d.authorized_roles.first().map_or("ROLE", String::as_str);
        format!(" --as NAME --roles {}", shown(role))
    };
    let id = shown(&d.id);
    format!(
        "waiting for a human to decide {} (decision {id}); answer it with:\n  \
         witness answer {id} approve --rationale \"...\"{who}{server}",
        shown(&d.kind)
    )
}

/// A server-supplied string as a terminal may show it: control characters
/// (ESC, newlines, C1 codes) and bidirectional overrides are escaped
/// (`\x1b`, `\n`, `\u{202e}`), so a kind or a reason can neither colour
/// the terminal nor forge a separate line.
pub fn shown(s: &str) -> std::borrow::Cow<'_, str> {
    fn hidden(c: char) -> bool {
        c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    }
    if !s.chars().any(hidden) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if hidden(c) && u32::from(c) < 0x100 => {
                out.push_str(&format!("\\x{:02x}", u32::from(c)));
            }
            c if hidden(c) => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Result alias for the client.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// How the client identifies itself. Its `Debug` never shows the token.
///
/// For a short-lived token that must be refreshed, give a [`TokenProvider`]
/// to [`connect_with_token_provider`] (or `Client::connect_with_token_provider`).
#[derive(Clone, Default)]
pub struct Credentials {
    /// Bearer token (never logged).
    pub token: Option<String>,
    /// Dev mode: principal name and roles sent as metadata.
    pub principal: Option<String>,
    pub roles: Vec<String>,
    /// TLS settings for `https://` servers.
    pub tls: TlsOptions,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("principal", &self.principal)
            .field("roles", &self.roles)
            .field("tls", &self.tls)
            .finish()
    }
}

/// A function returning the current bearer token, called for every request
/// (each unary call and each stream start), so a provider that caches and
/// refreshes a short-lived token (a file Kubernetes rotates, an OIDC token
/// endpoint) is always current. It runs on the calling task: keep it quick
/// (return a cached token, refresh it elsewhere or when it is about to
/// expire). If it returns an error, the call fails with UNAUTHENTICATED
/// `token provider failed: ...` and nothing is sent.
///
/// ```
/// use witness_client::TokenProvider;
/// let provider = TokenProvider::new(|| std::fs::read_to_string("/var/run/secrets/witness/token"));
/// # let _ = provider;
/// ```
#[derive(Clone)]
pub struct TokenProvider(std::sync::Arc<dyn Fn() -> Result<String, String> + Send + Sync>);

impl TokenProvider {
    /// A provider from a function returning the token or an error.
    pub fn new<F, E>(f: F) -> TokenProvider
    where
        F: Fn() -> std::result::Result<String, E> + Send + Sync + 'static,
        E: std::fmt::Display,
    {
        TokenProvider(std::sync::Arc::new(move || f().map_err(|e| e.to_string())))
    }

    /// The `authorization` value for the provider's current token.
    fn header(&self) -> Result<AsciiMetadataValue, tonic::Status> {
        let fail =
            |why: String| tonic::Status::unauthenticated(format!("token provider failed: {why}"));
        let token = (self.0)().map_err(fail)?;
        let token = token.trim();
        if token.is_empty() {
            return Err(fail("it returned an empty token".into()));
        }
        let mut v = MetadataValue::try_from(format!("Bearer {token}"))
            .map_err(|_| fail("the token is not printable ASCII".into()))?;
        v.set_sensitive(true);
        Ok(v)
    }
}

impl std::fmt::Debug for TokenProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenProvider(..)")
    }
}

/// PEM files for TLS: the CA that signed the server's certificate (else the
/// system's roots), and a client certificate when the server asks for one.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    pub ca_cert: Option<std::path::PathBuf>,
    pub client_cert: Option<std::path::PathBuf>,
    pub client_key: Option<std::path::PathBuf>,
}

/// Adds the credentials to every request: the fixed headers, and the
/// token provider's current token when there is one.
#[derive(Debug, Clone)]
pub struct AuthInterceptor {
    headers: Vec<(&'static str, AsciiMetadataValue)>,
    token_provider: Option<TokenProvider>,
}

impl tonic::service::Interceptor for AuthInterceptor {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let token = self
            .token_provider
            .as_ref()
            .map(TokenProvider::header)
            .transpose()?;
        for (k, v) in &self.headers {
            req.metadata_mut().insert(*k, v.clone());
        }
        if let Some(v) = token {
            req.metadata_mut().insert("authorization", v);
        }
        Ok(req)
    }
}

impl AuthInterceptor {
    pub fn new(c: &Credentials) -> Result<Self> {
        let value = |s: String| {
            MetadataValue::try_from(s)
                .map_err(|_| ClientError::BadCredentials("credentials must be ASCII".into()))
        };
        let mut headers = Vec::new();
        if let Some(t) = &c.token {
            let mut v = value(format!("Bearer {t}"))?;
            v.set_sensitive(true);
            headers.push(("authorization", v));
        }
        if let Some(p) = &c.principal {
            headers.push(("x-witness-principal", value(p.clone())?));
        }
        if !c.roles.is_empty() {
            headers.push(("x-witness-roles", value(c.roles.join(","))?));
        }
        Ok(AuthInterceptor {
            headers,
            token_provider: None,
        })
    }

    /// Sends `provider`'s current token on every request, instead of
    /// `Credentials::token`.
    pub fn with_token_provider(mut self, provider: TokenProvider) -> Self {
        self.token_provider = Some(provider);
        self
    }
}

/// The generated client with credentials attached.
pub type GrpcClient = WitnessServiceClient<InterceptedService<Channel, AuthInterceptor>>;

/// Normalises `HOST:PORT` or `http(s)://HOST:PORT` to a URL.
pub fn server_url(server: &str) -> String {
    if server.starts_with("http://") || server.starts_with("https://") {
        server.to_string()
    } else {
        format!("http://{server}")
    }
}

/// Connects to `server` with `creds`.
pub async fn connect(server: &str, creds: &Credentials) -> Result<GrpcClient> {
    connect_with(server, creds, None).await
}

/// Connects to `server` with `creds`, sending the bearer token `provider`
/// returns on every request (see [`TokenProvider`]); it replaces
/// `creds.token`.
pub async fn connect_with_token_provider(
    server: &str,
    creds: &Credentials,
    provider: TokenProvider,
) -> Result<GrpcClient> {
    connect_with(server, creds, Some(provider)).await
}

async fn connect_with(
    server: &str,
    creds: &Credentials,
    provider: Option<TokenProvider>,
) -> Result<GrpcClient> {
    let mut auth = AuthInterceptor::new(creds)?;
    if let Some(p) = provider {
        auth = auth.with_token_provider(p);
    }
    let url = server_url(server);
    let mut endpoint =
        Endpoint::from_shared(url.clone()).map_err(|e| ClientError::BadServer(e.to_string()))?;
    if url.starts_with("https://") {
        endpoint = endpoint
            .tls_config(client_tls(&creds.tls)?)
            .map_err(|e| ClientError::BadServer(e.to_string()))?;
    }
    let channel = endpoint
        .tcp_nodelay(true)
        .connect()
        .await
        .map_err(|source| ClientError::Connect {
            server: url,
            source,
        })?;
    let max = 64 * 1024 * 1024;
    Ok(WitnessServiceClient::with_interceptor(channel, auth).max_decoding_message_size(max))
}

fn client_tls(t: &TlsOptions) -> Result<tonic::transport::ClientTlsConfig> {
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|e| ClientError::BadCredentials(format!("{}: {e}", p.display())))
    };
    let mut tls = tonic::transport::ClientTlsConfig::new();
    if let Some(ca) = &t.ca_cert {
        tls = tls.ca_certificate(tonic::transport::Certificate::from_pem(read(ca)?));
    }
    match (&t.client_cert, &t.client_key) {
        (Some(cert), Some(key)) => {
            tls = tls.identity(tonic::transport::Identity::from_pem(
                read(cert)?,
                read(key)?,
            ));
        }
        (None, None) => {}
        _ => {
            return Err(ClientError::BadCredentials(
                "--client-cert and --client-key go together".into(),
            ))
        }
    }
    Ok(tls)
}

/// Whether a failed call may be retried: the server or the network was
/// briefly unavailable, or a stream was ended for falling behind. INTERNAL
/// from the server is a bug or corrupt data, which no retry fixes; only
/// tonic's own INTERNAL for a broken HTTP/2 stream is retried.
pub fn retryable(s: &tonic::Status) -> bool {
    match s.code() {
        tonic::Code::Unavailable | tonic::Code::ResourceExhausted | tonic::Code::Unknown => true,
        tonic::Code::Internal => s.message().starts_with("h2 protocol error"),
        _ => s.message().contains("transport"),
    }
}

/// After one attempt of a waiting loop: the closed decision or a fatal
/// error ends the wait; a stream that ended or failed in a retryable way
/// sleeps `backoff` (doubling it, up to 5 s) and returns None to go again.
async fn settle(
    attempt: std::result::Result<Option<proto::Decision>, tonic::Status>,
    backoff: &mut std::time::Duration,
) -> Option<Result<proto::Decision>> {
    match attempt {
        Ok(Some(d)) => return Some(Ok(d)),
        Ok(None) => {}
        Err(s) if retryable(&s) => {}
        Err(s) => return Some(Err(s.into())),
    }
    tokio::time::sleep(*backoff).await;
    *backoff = (*backoff * 2).min(std::time::Duration::from_secs(5));
    None
}

/// Watches `id` until it closes and returns the closed decision, calling
/// `on_event` for every event. A dropped stream is re-opened (the first
/// event of a watch is the current state, so nothing is missed).
pub async fn wait_closed(
    client: &mut GrpcClient,
    id: &str,
    mut on_event: impl FnMut(&proto::DecisionEvent),
) -> Result<proto::Decision> {
    use proto::{Status as St, WatchDecisionRequest};
    let mut backoff = std::time::Duration::from_millis(100);
    loop {
        let attempt = async {
            let mut stream = client
                .watch_decision(WatchDecisionRequest {
                    decision_id: id.to_string(),
                })
                .await?
                .into_inner();
            while let Some(resp) = stream.message().await? {
                if let Some(event) = resp.event {
                    on_event(&event);
                    if let Some(d) = event.decision.filter(|d| d.status != St::Open as i32) {
                        return Ok(Some(d));
                    }
                }
            }
            Ok::<_, tonic::Status>(None)
        };
        if let Some(done) = settle(attempt.await, &mut backoff).await {
            return done;
        }
    }
}

/// Follows the decisions `ids` over ONE `StreamDecisions` stream (filtered
/// here, client-side) and returns the first of them to close. Decisions
/// already closed count: the first found wins. A dropped stream resumes
/// after the last event seen (`after_sequence`), so nothing closes unseen.
/// `on_event` sees every event the stream delivers.
pub async fn wait_any(
    client: &mut GrpcClient,
    ids: &[String],
    mut on_event: impl FnMut(&proto::DecisionEvent),
) -> Result<proto::Decision> {
    use proto::{Status as St, StreamDecisionsRequest};
    if ids.is_empty() {
        return Err(ClientError::InvalidArgument(
            "wait_any: ids must name at least one decision".into(),
        ));
    }
    let wanted: std::collections::HashSet<&str> = ids.iter().map(String::as_str).collect();
    let closed =
        |d: &proto::Decision| wanted.contains(d.id.as_str()) && d.status != St::Open as i32;
    // The last log position seen; None until a snapshot or an event gave
    // one (then a reconnect resumes after it, 0 included).
    let mut cursor: Option<u64> = None;
    let mut backoff = std::time::Duration::from_millis(100);
    loop {
        let attempt = async {
            let mut stream = client
                .stream_decisions(StreamDecisionsRequest {
                    include_open: cursor.is_none(),
                    after_sequence: cursor,
                    ..Default::default()
                })
                .await?
                .into_inner();
            let mut open_seen = std::collections::HashSet::new();
            while let Some(resp) = stream.message().await? {
                let Some(event) = resp.event else { continue };
                on_event(&event);
                if event.r#type == proto::EventType::SnapshotEnd as i32 {
                    cursor = Some(event.sequence);
                    // Not in the snapshot: closed before it (or not visible,
                    // or asked after it: then live events follow).
                    for id in wanted.iter().filter(|id| !open_seen.contains(**id)) {
                        let got = client
                            .get_decision(proto::GetDecisionRequest {
                                decision_id: id.to_string(),
                            })
                            .await;
                        match got {
                            Ok(r) => {
                                if let Some(d) = r.into_inner().decision.filter(&closed) {
                                    return Ok(Some(d));
                                }
                            }
                            Err(s) if s.code() == tonic::Code::NotFound => {}
                            Err(s) => return Err(s),
                        }
                    }
                    continue;
                }
                if !event.snapshot {
                    cursor = Some(cursor.unwrap_or(0).max(event.sequence));
                }
                if let Some(d) = event.decision {
                    if closed(&d) {
                        return Ok(Some(d));
                    }
                    if event.snapshot {
                        open_seen.insert(d.id);
                    }
                }
            }
            Ok::<_, tonic::Status>(None)
        };
        if let Some(done) = settle(attempt.await, &mut backoff).await {
            return done;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::retryable;
    use tonic::Status;

    #[test]
    fn internal_from_the_server_is_not_retried_but_outages_are() {
        assert!(!retryable(&Status::internal(
            "store error: postgres (23505): duplicate key"
        )));
        assert!(!retryable(&Status::internal(
            "store data is inconsistent: outbox row 1"
        )));
        assert!(retryable(&Status::internal(
            "h2 protocol error: stream reset"
        )));
        assert!(retryable(&Status::unavailable(
            "store unavailable: db down"
        )));
        assert!(!retryable(&Status::invalid_argument("kind: empty")));
    }
}
