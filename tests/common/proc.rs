//! A server started by hand, for tests that need a command prefix
//! (`prlimit`), both listening lines, or the process id; and the raw-socket
//! helpers those tests share.

use super::bin;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A server started by hand (these tests need a command prefix or read
/// both listening lines).
pub(crate) struct Proc {
    child: Child,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) addr: String,
    pub(crate) http_addr: Option<String>,
}

impl Proc {
    pub(crate) fn start(prefix: &[&str], extra: &str) -> Proc {
        let dir = tempfile::tempdir().unwrap();
        let config = format!(
            "[store]\nurl = \"sqlite://{}\"\n{extra}",
            dir.path().join("witness.db").display()
        );
        std::fs::write(dir.path().join("witness.toml"), config).unwrap();
        let (prog, pre) = match prefix.split_first() {
            Some((p, rest)) => (p.to_string(), rest.to_vec()),
            None => (bin().to_string(), vec![]),
        };
        let mut cmd = Command::new(prog);
        cmd.args(pre);
        if !prefix.is_empty() {
            cmd.arg(bin());
        }
        let mut child = cmd
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(dir.path().join("witness.toml"))
            .env("WITNESS_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut p = Proc {
            child,
            dir,
            addr: String::new(),
            http_addr: None,
        };
        let want_http = extra.contains("[http]");
        let deadline = Instant::now() + Duration::from_secs(30);
        while p.addr.is_empty() || (want_http && p.http_addr.is_none()) {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("witness did not start: {}", p.stderr()));
            if let Some(a) = line.strip_prefix("witness listening on ") {
                p.addr = a.to_string();
            }
            if let Some(a) = line.strip_prefix("witness http listening on ") {
                p.http_addr = Some(a.to_string());
            }
        }
        p
    }

    /// stderr without ANSI colour codes.
    pub(crate) fn stderr(&self) -> String {
        let raw = std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default();
        let mut out = String::new();
        let mut chars = raw.chars();
        while let Some(c) = chars.next() {
            if c == '\u{1b}' {
                for c in chars.by_ref() {
                    if c == 'm' {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GET `path` with the real curl; the HTTP status, or None when the
/// connection failed or was closed.
pub(crate) fn get(addr: &str, path: &str) -> Option<u16> {
    let o = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "3",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .arg(format!("http://{addr}{path}"))
        .output()
        .unwrap();
    let code: u16 = String::from_utf8_lossy(&o.stdout).trim().parse().ok()?;
    (o.status.success() && code != 0).then_some(code)
}

pub(crate) fn idle(addr: &str, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|_| TcpStream::connect(addr).expect("the kernel queues the connection"))
        .collect()
}

/// True once the server closed `s` (read gives EOF or a reset).
pub(crate) fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut b = [0u8; 1];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

impl Proc {
    /// The server's resident memory, in KiB (`VmRSS`).
    pub(crate) fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }
}
