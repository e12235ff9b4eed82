//! TLS with rustls: server certificates, and client certificates when the
//! config asks for them.

mod common;

use common::*;
use tonic::Code;
use witness::client::{self, Credentials, TlsOptions};

fn self_signed(dir: &std::path::Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    (cert, key)
}

#[tokio::test]
async fn tls_serves_encrypted_and_can_require_client_certificates() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(certs.path(), "server");
    let (client_cert, client_key) = self_signed(certs.path(), "client");
    let s = Server::start(&format!(
        "[tls]\ncert = {:?}\nkey = {:?}\nclient_ca = {:?}\n",
        cert.display().to_string(),
        key.display().to_string(),
        client_cert.display().to_string()
    ));
    let https = format!("https://{}", s.addr);
    let creds = |with_client_cert: bool| Credentials {
        principal: Some("svc".into()),
        tls: TlsOptions {
            ca_cert: Some(cert.clone()),
            client_cert: with_client_cert.then(|| client_cert.clone()),
            client_key: with_client_cert.then(|| client_key.clone()),
        },
        ..Credentials::default()
    };
    let mut ok = client::connect(&https, &creds(true)).await.unwrap();
    let d = ok
        .ask(ask("deploy.prod", &["sre"], 1, None))
        .await
        .unwrap()
        .into_inner();
    assert!(d.created);

    // Without a client certificate the handshake is refused.
    let refused = match client::connect(&https, &creds(false)).await {
        Err(_) => true,
        Ok(mut c) => c
            .list_decisions(proto::ListDecisionsRequest::default())
            .await
            .is_err(),
    };
    assert!(refused, "a client without a certificate is refused");
    // Plaintext to a TLS port fails.
    let plain = match client::connect(&s.addr, &Credentials::default()).await {
        Err(_) => true,
        Ok(mut c) => {
            let e = c
                .list_decisions(proto::ListDecisionsRequest::default())
                .await
                .unwrap_err();
            e.code() == Code::Unavailable || e.code() == Code::Unknown || e.code() == Code::Internal
        }
    };
    assert!(plain, "plaintext is not served on a TLS port");
}
