//! A private PostgreSQL for tests, started from the machine's binaries by
//! `scripts/pg-temp.sh` on a free port in its own directory. The script
//! watches this test process and removes the cluster when it exits.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

pub(crate) struct PgCluster {
    pub dir: PathBuf,
    pub url: String,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/pg-temp.sh")
}

/// Where pg-temp.sh looks for the server binaries.
fn pg_bin() -> PathBuf {
    std::env::var_os("PG_BIN").map_or_else(
        || PathBuf::from("/usr/lib/postgresql/15/bin"),
        PathBuf::from,
    )
}

fn run(args: &[&str]) -> String {
    let out = Command::new("bash")
        .arg(script())
        .args(args)
        .output()
        .expect("run pg-temp.sh");
    assert!(
        out.status.success(),
        "pg-temp.sh {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A client of the database at `url`, for a test to look behind witness's
/// back (its connection runs until the client is dropped).
pub(crate) async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    client
}

impl PgCluster {
    /// A cluster of this test's own (for tests that stop and start it).
    pub(crate) fn start() -> PgCluster {
        // Say how to get PostgreSQL, rather than fail deep in a script.
        let bin = pg_bin();
        assert!(
            bin.join("postgres").is_file(),
            "PostgreSQL 15 binaries not found in {}: run `make pg`",
            bin.display()
        );
        let dir = std::env::temp_dir().join(format!("witness-pg-{}", uuid::Uuid::now_v7()));
        let pid = std::process::id().to_string();
        let url = run(&["start", dir.to_str().unwrap(), "0", &pid]);
        PgCluster { dir, url }
    }

    /// One cluster shared by the tests of this test binary.
    pub(crate) fn shared() -> &'static PgCluster {
        static SHARED: OnceLock<PgCluster> = OnceLock::new();
        SHARED.get_or_init(PgCluster::start)
    }

    pub(crate) fn stop(&self) {
        run(&["stop", self.dir.to_str().unwrap()]);
    }

    pub(crate) fn start_again(&self) {
        run(&["start", self.dir.to_str().unwrap()]);
    }

    /// A new empty database on this cluster; returns its URL.
    pub(crate) async fn fresh_database(&self) -> String {
        let name = format!("t_{}", uuid::Uuid::now_v7().simple());
        let (client, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        let driver = tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create database");
        drop(client);
        let _ = driver.await;
        let base = self.url.rsplit_once('/').expect("url with database").0;
        format!("{base}/{name}")
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .args(["stop", self.dir.to_str().unwrap(), "--remove"])
            .output();
    }
}
