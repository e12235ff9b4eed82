//! A caller of witness v0.1.1's `/v1/` HTTP API for the `v01_*` tests,
//! sending requests shaped as v0.1.1's Python client (httpx `json=`) does.
#![allow(dead_code)]

use crate::common::{token, Server};
use serde_json::{json, Value};

/// An HTTP caller of the `/v1/` API with fixed headers.
pub(crate) struct V01 {
    pub base: String,
    http: reqwest::Client,
    headers: Vec<(&'static str, String)>,
}

impl V01 {
    pub(crate) fn new(s: &Server) -> V01 {
        V01 {
            base: format!("http://{}", s.addr),
            http: reqwest::Client::new(),
            headers: Vec::new(),
        }
    }

    pub(crate) fn with(s: &Server, headers: &[(&'static str, &str)]) -> V01 {
        V01 {
            headers: headers.iter().map(|(k, v)| (*k, v.to_string())).collect(),
            ..V01::new(s)
        }
    }

    pub(crate) fn token(s: &Server, name: &str) -> V01 {
        V01::with(s, &[("authorization", &format!("Bearer {}", token(name)))])
    }

    pub(crate) async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        for (k, v) in &self.headers {
            req = req.header(*k, v);
        }
        if let Some(b) = body {
            // As v0.1.1's Python client (httpx `json=`) sends it.
            req = req.header("content-type", "application/json").body(b);
        }
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        let bytes = res.bytes().await.expect("body");
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, body)
    }

    pub(crate) async fn get(&self, path: &str) -> (u16, Value) {
        self.send("GET", path, None).await
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send("POST", path, Some(body.to_string().into_bytes()))
            .await
    }

    /// POST /v1/decisions as the Python client's `ask()`; the decision id.
    pub(crate) async fn ask(&self, kind: &str, roles: &[&str], extra: Value) -> String {
        let mut body = json!({
            "kind": kind,
            "input": {"actionType": "send_email_reply", "to": "a@example.com"},
            "responseShape": {"decision": "string"},
            "authorizedRoles": roles,
            "surfaces": ["inbox"],
        });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (status, out) = self.post("/v1/decisions", body).await;
        assert_eq!(status, 201, "{out}");
        out["decisionId"].as_str().expect("decisionId").to_string()
    }

    pub(crate) async fn answer(&self, id: &str, operator: &str, answer: Value) -> (u16, Value) {
        let body = json!({"operator": operator, "answer": answer, "rationale": "checked"});
        self.post(&format!("/v1/decisions/{id}/answer"), body).await
    }
}

pub(crate) const TWO_PERSON: &str = "[[policies]]\nkind = \"scram.*\"\nrequired_approvals = 2\n";

pub(crate) fn err(code: &str, field: &str) -> Value {
    json!({"error": code, "field": field})
}
