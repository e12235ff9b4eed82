//! `witness serve`: checks the listen address against the identity mode,
//! opens the store and serves gRPC with health and reflection, and HTTP
//! (Connect, gRPC-Web, the `http` routes) on the same or a separate port.

use crate::api::GrpcApi;
use crate::config::Config;
use crate::http::connect::WitnessEndpoint;
use crate::proto::witness_service_server::WitnessServiceServer;
use crate::service::Witness;
use crate::store;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Why the server cannot start or stopped. Each refusal to start is its own
/// variant, carrying what its message needs.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Dev mode (no principals) on an address others can reach.
    #[error(
        "refusing to listen on {addr} in dev mode: with no [[principals]] configured anyone who can \
         reach the port could answer decisions. Configure principals (name, token_sha256, roles; \
         `witness token new NAME --roles ROLE` makes one) or listen on 127.0.0.1."
    )]
    DevModeNotLoopback { addr: SocketAddr },
    /// Bearer tokens in plaintext on an address others can reach.
    #[error(
        "refusing to serve plaintext on non-loopback {addr}: bearer tokens would cross the network \
         unencrypted. Configure [tls] (cert, key), or pass --insecure to do it anyway (e.g. behind a \
         TLS-terminating proxy)."
    )]
    PlaintextNotLoopback { addr: SocketAddr },
    /// A listen address that resolves to nothing.
    #[error("listen: cannot resolve {listen:?}")]
    Unresolvable { listen: String },
    /// A `[tls]` file cannot be read.
    #[error("tls: {}: {source}", .path.display())]
    TlsFile {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// The reloadable part of the config cannot be built (the message
    /// names the key).
    #[error(transparent)]
    Live(#[from] crate::reload::ReloadError),
    /// Console sign-in off loopback without a shared session key.
    #[error(
        "auth.session_key: required when issuer {issuer:?} signs people in to the console on a \
         non-loopback address (every replica must read the session cookie; \
         `openssl rand -base64 32` makes one)"
    )]
    SessionKey { issuer: String },
    #[error(transparent)]
    ReceiptKey(#[from] crate::receipts::KeyError),
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The Connect/HTTP endpoint cannot be built (its descriptors).
    #[error("{0}")]
    Endpoint(String),
    /// The Slack app's Web API client cannot be built.
    #[error("slack: {0}")]
    Slack(#[from] crate::slack::SlackError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("listen: {0}")]
    Listen(std::io::Error),
    /// The address is taken (or not ours to take).
    #[error(
        "listen: cannot listen on {addr}: {source}. Another witness may be running there; \
         choose another address with --listen HOST:PORT (with make: make run ARGS=\"--listen \
         127.0.0.1:50052\") or `listen` in the config"
    )]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("grpc: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Result alias for serving.
pub type Result<T, E = ServeError> = std::result::Result<T, E>;

/// Refuses listen addresses that would expose an unauthenticated server.
pub fn check_listen(addr: SocketAddr, dev_mode: bool, tls: bool, insecure: bool) -> Result<()> {
    if addr.ip().is_loopback() {
        return Ok(());
    }
    if dev_mode {
        return Err(ServeError::DevModeNotLoopback { addr });
    }
    if !tls && !insecure {
        return Err(ServeError::PlaintextNotLoopback { addr });
    }
    Ok(())
}

/// Builds the service from the config; `fallback_key` keys console
/// sessions when the config has no `[auth] session_key`.
pub async fn build(config: &Config) -> Result<Arc<Witness>> {
    Ok(build_parts(config, &rand::random::<[u8; 64]>()).await?.0)
}

async fn build_parts(
    config: &Config,
    fallback_key: &[u8],
) -> Result<(Arc<Witness>, crate::reload::Hooks)> {
    let sessions = crate::reload::sessions(config, fallback_key)?;
    let live = crate::reload::live(config, sessions)?;
    let globs: Vec<String> = config.policies.iter().map(|p| p.kind.clone()).collect();
    let levels = config
        .policies
        .iter()
        .map(|p| p.escalation.len())
        .max()
        .unwrap_or(0);
    crate::metrics::preset(&globs, &live.webhooks, levels);
    let store = store::open(&config.store.url, &config.store.pg_options()).await?;
    let hub = crate::hub::Hub::start(store.clone(), config.streams.ring);
    tokio::spawn(crate::timers::run(store.clone()));
    let hooks: crate::reload::Hooks =
        Arc::new(arc_swap::ArcSwap::from_pointee(config.webhooks.clone()));
    tokio::spawn(crate::outbox::run(
        store.clone(),
        hooks.clone(),
        config.outbox,
    ));
    let slack = match &config.slack {
        Some(s) => Some(Arc::new(crate::slack::Slack::new(
            s.clone(),
            config.outbox.timeout,
        )?)),
        None => None,
    };
    tokio::spawn(crate::slack::deliver::run(
        store.clone(),
        slack.clone(),
        config.outbox,
    ));
    let witness = Arc::new(Witness::new(crate::service::Parts {
        store,
        hub,
        live,
        receipts: crate::receipts::ReceiptKey::load_or_create(&config.receipt_key_file())?,
        slack,
    }));
    Ok((witness, hooks))
}

/// Serves until SIGINT or SIGTERM. Prints `witness listening on ADDR` on
/// stdout once the port is bound (tests and scripts wait for that line), and
/// `witness http listening on ADDR` when `[http] listen` is set.
pub async fn serve(config: Config, origin: crate::reload::Origin, insecure: bool) -> Result<()> {
    let dev_mode = config.dev_mode();
    let addr = resolve(&config.listen).await?;
    check_listen(addr, dev_mode, config.tls.is_some(), insecure)?;
    let http_addr = match &config.http.listen {
        Some(listen) => {
            let a = resolve(listen).await?;
            check_listen(a, dev_mode, config.tls.is_some(), insecure)?;
            Some(a)
        }
        None => None,
    };
    let tls = config.tls.as_ref().map(tls_config).transpose()?;
    if dev_mode {
        tracing::warn!(
            "dev mode: no principals configured; identity is taken from x-witness-principal / \
             x-witness-roles metadata and the server listens on loopback only"
        );
    }
    let console_issuer = config.issuers.iter().find(|i| i.signs_in_people());
    if let Some(issuer) = console_issuer {
        let loopback = addr.ip().is_loopback() && http_addr.is_none_or(|a| a.ip().is_loopback());
        if config.auth.session_key.is_empty() && !loopback {
            return Err(ServeError::SessionKey {
                issuer: issuer.name.clone(),
            });
        }
    }
    crate::accept::raise_fd_limit();
    let fallback_key = rand::random::<[u8; 64]>().to_vec();
    let (witness, hooks) = build_parts(&config, &fallback_key).await?;
    tokio::spawn(
        crate::reload::Reloader {
            origin,
            witness: witness.clone(),
            hooks,
            fallback_key,
        }
        .run(config.clone()),
    );
    let bind = |addr: SocketAddr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })
    };
    let listener = bind(addr).await?;
    let local = listener.local_addr().map_err(ServeError::Listen)?;
    let http = match http_addr {
        Some(a) => Some(bind(a).await?),
        None => None,
    };
    println!("witness listening on {local}");
    if let Some(h) = &http {
        let h = h.local_addr().map_err(ServeError::Listen)?;
        println!("witness http listening on {h}");
        tracing::info!(%h, "serving HTTP (Connect, gRPC-Web, /healthz) separately");
    }
    crate::metrics::serving();
    tracing::info!(%local, store = %redact_url(&config.store.url), "serving");
    let options = HttpOptions {
        allowed_origins: config.http.allowed_origins.clone(),
        mcp: config.mcp.enabled.then(|| crate::mcp::Options {
            authorized_roles: config.mcp.authorized_roles.clone(),
            tls: config.tls.is_some(),
        }),
    };
    serve_on(listener, http, witness, tls, options, shutdown_signal()).await
}

async fn resolve(listen: &str) -> Result<SocketAddr> {
    tokio::net::lookup_host(listen)
        .await
        .map_err(ServeError::Listen)?
        .next()
        .ok_or_else(|| ServeError::Unresolvable {
            listen: listen.to_string(),
        })
}

/// The rustls server configuration from `[tls]`.
fn tls_config(t: &crate::config::TlsConfig) -> Result<tonic::transport::ServerTlsConfig> {
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|source| ServeError::TlsFile {
            path: path.to_path_buf(),
            source,
        })
    };
    let identity = tonic::transport::Identity::from_pem(read(&t.cert)?, read(&t.key)?);
    let mut tls = tonic::transport::ServerTlsConfig::new().identity(identity);
    if let Some(ca) = &t.client_ca {
        tls = tls.client_ca_root(tonic::transport::Certificate::from_pem(read(ca)?));
    }
    Ok(tls)
}

/// What the HTTP side serves besides the fixed routes.
#[derive(Debug, Clone, Default)]
pub struct HttpOptions {
    /// `[http] allowed_origins`.
    pub allowed_origins: Vec<String>,
    /// `/mcp` and its resource metadata; None: `[mcp] enabled = false`.
    pub mcp: Option<crate::mcp::Options>,
}

/// Serves on bound listeners until `shutdown` completes: `main` speaks gRPC
/// (witness, health, reflection v1 and v1alpha) and, unless a separate
/// `http` listener is given, HTTP too (Connect, gRPC-Web, the HTTP routes).
pub async fn serve_on(
    main: TcpListener,
    http: Option<TcpListener>,
    witness: Arc<Witness>,
    tls: Option<tonic::transport::ServerTlsConfig>,
    options: HttpOptions,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<()> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<WitnessServiceServer<GrpcApi>>().await;
    tokio::spawn(readiness(health, witness.health()));
    let permits = crate::accept::connection_permits(witness.limits().max_connections);
    let strangers =
        crate::accept::Unauthenticated::new(witness.limits().max_unauthenticated_connections);
    let limits = crate::accept::AcceptLimits {
        handshake_timeout: witness.limits().handshake_timeout,
        max_connections: witness.limits().max_connections,
        idle_timeout: witness.limits().idle_timeout,
        tls: tls.is_some(),
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let serve = |listener, http_side, tls: Option<tonic::transport::ServerTlsConfig>| {
        let routes = routes(&witness, health_service.clone(), http_side, &options);
        let incoming =
            crate::accept::incoming(listener, limits, permits.clone(), strangers.clone());
        let stop = stopped(stop_rx.clone());
        let guard = crate::guard::GuardLayer::new(
            witness.clone(),
            options.allowed_origins.clone(),
            limits.tls,
        );
        async move { serve_routes(routes?, incoming, tls, guard, stop).await }
    };
    let main_server = serve(main, http.is_none(), tls.clone());
    let servers = async {
        match http {
            Some(h) => futures::future::try_join(main_server, serve(h, true, tls))
                .await
                .map(|_| ()),
            None => main_server.await,
        }
    };
    tokio::pin!(servers);
    tokio::pin!(shutdown);
    tokio::select! {
        r = &mut servers => return r,
        _ = &mut shutdown => {}
    }
    let _ = stop_tx.send(true);
    servers.await
}

/// The routes of one listener: gRPC always; Connect, gRPC-Web and the HTTP
/// routes when `http_side`.
fn routes(
    witness: &Arc<Witness>,
    health: tonic_health::pb::health_server::HealthServer<
        impl tonic_health::pb::health_server::Health,
    >,
    http_side: bool,
    options: &HttpOptions,
) -> Result<tonic::service::Routes> {
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1alpha = reflection().build_v1alpha()?;
    let reflection_v1 = reflection().build_v1()?;
    let endpoint = WitnessEndpoint::new(
        GrpcApi::new(witness.clone()),
        witness.limits().max_message_bytes,
        http_side,
    )
    .map_err(ServeError::Endpoint)?;
    use crate::http::connect::bridge::ConnectBridge;
    let grpc = tonic::service::Routes::new(health)
        .add_service(ConnectBridge::new(reflection_v1))
        .add_service(ConnectBridge::new(reflection_v1alpha))
        .add_service(endpoint);
    let router = if http_side {
        let router = grpc
            .into_axum_router()
            .merge(crate::http::router(witness.clone()));
        match &options.mcp {
            Some(mcp) => router.merge(crate::mcp::router(witness.clone(), mcp.clone())),
            None => router,
        }
    } else {
        grpc.into_axum_router()
    };
    Ok(router
        .fallback(move |req| unknown_path(req, http_side))
        .into())
}

/// tonic's own fallback answers HTTP 200 with grpc-status 12 to anything;
/// keep that for gRPC clients, say 404 to everyone else.
async fn unknown_path(
    req: http::Request<axum::body::Body>,
    http_side: bool,
) -> http::Response<tonic::body::Body> {
    let grpc = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"));
    match (grpc, http_side) {
        (true, _) => tonic::Status::unimplemented("no such service").into_http(),
        (false, true) => {
            let mut res = http::Response::new(tonic::body::Body::new(http_body_util::Full::new(
                bytes::Bytes::from_static(b"not found\n"),
            )));
            *res.status_mut() = http::StatusCode::NOT_FOUND;
            res.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            res
        }
        (false, false) => crate::http::connect::http_elsewhere(),
    }
}

async fn serve_routes(
    routes: tonic::service::Routes,
    incoming: impl futures::Stream<Item = std::io::Result<crate::accept::Conn>>,
    tls: Option<tonic::transport::ServerTlsConfig>,
    guard: crate::guard::GuardLayer,
    stop: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let mut builder = tonic::transport::Server::builder()
        .accept_http1(true)
        // Outermost, so it sees the final status code.
        .layer(crate::api::observe::ObserveLayer)
        .layer(tower::util::MapResponseLayer::new(
            crate::api::error::transport_status,
        ))
        .layer(guard)
        .layer(crate::http::grpc_web::GrpcWebLayer);
    if let Some(tls) = tls {
        builder = builder.tls_config(tls)?;
    }
    builder
        .http2_keepalive_interval(Some(Duration::from_secs(20)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, stop)
        .await?;
    Ok(())
}

/// `grpc.health.v1` follows the store: NOT_SERVING (overall and for
/// `witness.v1.WitnessService`) while the hub cannot read it, SERVING again
/// once it can. `/healthz` reads the same signal.
async fn readiness(
    health: tonic_health::server::HealthReporter,
    mut store_ok: tokio::sync::watch::Receiver<bool>,
) {
    use tonic_health::ServingStatus;
    loop {
        let ok = *store_ok.borrow_and_update();
        let status = if ok {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        health.set_service_status("", status).await;
        if ok {
            health.set_serving::<WitnessServiceServer<GrpcApi>>().await;
        } else {
            health
                .set_not_serving::<WitnessServiceServer<GrpcApi>>()
                .await;
        }
        tracing::info!(serving = ok, "readiness");
        if store_ok.changed().await.is_err() {
            return;
        }
    }
}

/// Hides a password in a store URL before it is logged (a URL without
/// one is shown as it is).
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => match url[scheme + 3..at].split_once(':') {
            Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
            None => url.to_string(),
        },
        _ => url.to_string(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            return std::future::pending().await;
        };
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_mode_refuses_non_loopback() {
        let any: SocketAddr = "0.0.0.0:50051".parse().unwrap();
        let lo: SocketAddr = "127.0.0.1:0".parse().unwrap();
        assert!(check_listen(lo, true, false, false).is_ok());
        let e = check_listen(any, true, true, true).unwrap_err();
        assert!(matches!(e, ServeError::DevModeNotLoopback { .. }), "{e}");
        let e = e.to_string();
        assert!(e.contains("dev mode") && e.contains("principals"), "{e}");
        let e = check_listen(any, false, false, false).unwrap_err();
        assert!(matches!(e, ServeError::PlaintextNotLoopback { .. }), "{e}");
        let e = e.to_string();
        assert!(e.contains("--insecure"), "{e}");
        assert!(check_listen(any, false, false, true).is_ok());
        assert!(
            check_listen(any, false, true, false).is_ok(),
            "TLS needs no --insecure"
        );
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://w:pw@h:5/db"),
            "postgres://w:***@h:5/db"
        );
        assert_eq!(redact_url("sqlite://witness.db"), "sqlite://witness.db");
        assert_eq!(
            redact_url("postgres://witness@db1,db2/w"),
            "postgres://witness@db1,db2/w",
            "no password, nothing to hide"
        );
    }
}
