//! A real HTTP webhook receiver on loopback that records every request and
//! can be told to fail.

use axum::{body::Bytes, extract::State, http::HeaderMap, http::StatusCode, routing::post, Router};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// One received request.
#[derive(Debug, Clone)]
pub(crate) struct Hit {
    pub timestamp: String,
    pub signature: String,
    pub idempotency_key: String,
    pub body: Vec<u8>,
    /// The status the receiver answered.
    pub status: u16,
}

impl Hit {
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }

    /// Whether the signature is HMAC-SHA256(secret, timestamp "." body).
    pub(crate) fn signed_with(&self, secret: &str) -> bool {
        let ts: i64 = self.timestamp.parse().unwrap_or(0);
        self.signature == witness::outbox::signature(secret, ts, &self.body)
    }
}

#[derive(Clone, Default)]
struct Shared {
    hits: Arc<Mutex<Vec<Hit>>>,
    fail_next: Arc<AtomicUsize>,
}

pub(crate) struct Receiver {
    pub url: String,
    shared: Shared,
}

impl Receiver {
    /// Starts a receiver that fails its first `fail_first` requests with 500.
    pub(crate) async fn start(fail_first: usize) -> Receiver {
        let shared = Shared::default();
        shared.fail_next.store(fail_first, Ordering::SeqCst);
        let app = Router::new()
            .route("/hook", post(hook))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { url, shared }
    }

    pub(crate) fn hits(&self) -> Vec<Hit> {
        self.shared.hits.lock().unwrap().clone()
    }

    /// Successful deliveries.
    pub(crate) fn delivered(&self) -> Vec<Hit> {
        self.hits()
            .into_iter()
            .filter(|h| h.status == 200)
            .collect()
    }

    pub(crate) fn fail_next(&self, n: usize) {
        self.shared.fail_next.store(n, Ordering::SeqCst);
    }
}

async fn hook(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let failing = s
        .fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let status = if failing {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    let header = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    s.hits.lock().unwrap().push(Hit {
        timestamp: header("x-witness-timestamp"),
        signature: header("x-witness-signature"),
        idempotency_key: header("idempotency-key"),
        body: body.to_vec(),
        status: status.as_u16(),
    });
    status
}
