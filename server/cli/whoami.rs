//! `witness whoami`: who the server says the caller is, its roles and
//! where they came from (`token`, `issuer NAME`, `dev`). Read from the
//! console's `/console/whoami` on the same port, over HTTP (the gRPC API has
//! no such call).

use super::{exit, CliError, Conn, Result};

/// Asks the server who `conn`'s credentials are.
pub(crate) async fn run(conn: &Conn) -> Result {
    let base = if conn.server.starts_with("http://") || conn.server.starts_with("https://") {
        conn.server.trim_end_matches('/').to_string()
    } else {
        format!("http://{}", conn.server)
    };
    let fail = |e: String| CliError::Http(format!("whoami: {e}"));
    let mut builder = reqwest::Client::builder().timeout(std::time::Duration::from_secs(10));
    if let Some(ca) = &conn.ca_cert {
        let pem = std::fs::read(ca).map_err(|e| fail(format!("{}: {e}", ca.display())))?;
        let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| fail(e.to_string()))?;
        builder = builder.add_root_certificate(cert);
    }
    if let (Some(cert), Some(key)) = (&conn.client_cert, &conn.client_key) {
        let mut pem = std::fs::read(cert).map_err(|e| fail(format!("{}: {e}", cert.display())))?;
        pem.extend(std::fs::read(key).map_err(|e| fail(format!("{}: {e}", key.display())))?);
        let id = reqwest::Identity::from_pem(&pem).map_err(|e| fail(e.to_string()))?;
        builder = builder.identity(id);
    }
    let client = builder.build().map_err(|e| fail(e.to_string()))?;
    let mut req = client.get(format!("{base}/console/whoami"));
    if let Some(token) = &conn.token {
        req = req.bearer_auth(token);
    }
    if let Some(p) = &conn.principal {
        req = req.header("x-witness-principal", p);
    }
    if !conn.roles.is_empty() {
        req = req.header("x-witness-roles", conn.roles.join(","));
    }
    let res = req
        .send()
        .await
        .map_err(|e| fail(format!("cannot reach {base}: {e}")))?;
    let status = res.status();
    let bytes = res
        .bytes()
        .await
        .map_err(|e| fail(format!("{base}/console/whoami: {e}")))?;
    let body: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| fail(format!("{base}/console/whoami: not JSON: {e}")))?;
    let text = |k: &str| {
        body.get(k)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string()
    };
    if !status.is_success() {
        eprintln!(
            "error: unauthenticated: {} (pass --token or set WITNESS_TOKEN)",
            crate::client::shown(&text("message"))
        );
        return Ok(exit::ERROR);
    }
    if conn.json {
        println!("{body}");
        return Ok(exit::OK);
    }
    let roles: Vec<String> = body
        .get("roles")
        .and_then(|r| r.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|r| r.as_str())
                .map(|r| crate::client::shown(r).into_owned())
                .collect()
        })
        .unwrap_or_default();
    println!("principal: {}", crate::client::shown(&text("principal")));
    println!(
        "roles:     {}",
        if roles.is_empty() {
            "(none)".into()
        } else {
            roles.join(", ")
        }
    );
    println!("source:    {}", crate::client::shown(&text("source")));
    Ok(exit::OK)
}
