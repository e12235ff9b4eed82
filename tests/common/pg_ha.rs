//! A PostgreSQL primary and a streaming standby for failover tests, made
//! from the machine's PostgreSQL 15 binaries: the primary by
//! `scripts/pg-temp.sh`, the standby by `pg_basebackup -R`. The harness
//! plays the part Patroni or an operator plays in production: it kills
//! the primary, promotes the standby and rebuilds the old primary (a
//! fresh base backup) as the new standby, so the next failover goes the
//! other way. Both nodes are removed when the test process exits.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// One PostgreSQL server: its data directory and port.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub dir: PathBuf,
    pub port: u16,
}

/// A primary and its standby; `nodes[primary]` is the primary.
pub(crate) struct HaPair {
    pub nodes: [Node; 2],
    pub primary: usize,
    /// Synchronous replication (`synchronous_commit = on`) or not
    /// (`synchronous_commit = local`).
    pub sync: bool,
    /// The database witness uses (on both, by replication).
    pub database: String,
}

fn pg_bin(tool: &str) -> String {
    format!(
        "{}/{tool}",
        std::env::var("PG_BIN").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into())
    )
}

fn is_root() -> bool {
    // SAFETY: getuid has no preconditions.
    unsafe { libc::getuid() == 0 }
}

/// `tool args…`, as `postgres` when this test runs as root (PostgreSQL
/// refuses root).
fn as_pg(tool: &str, args: &[&str]) -> Result<String, String> {
    let mut cmd = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(pg_bin(tool));
        c
    } else {
        Command::new(pg_bin(tool))
    };
    let out = cmd
        .args(args)
        .output()
        .map_err(|e| format!("{tool}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!(
            "{tool} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn pg_temp(args: &[&str]) -> Result<String, String> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/pg-temp.sh");
    let out = Command::new("bash")
        .arg(script)
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!(
            "pg-temp.sh {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn psql(port: u16, db: &str, sql: &str) -> Result<String, String> {
    let out = Command::new(pg_bin("psql"))
        .args([
            "-X",
            "-q",
            "-tA",
            "-h",
            "127.0.0.1",
            "-U",
            "witness",
            "-d",
            db,
        ])
        .args(["-p", &port.to_string(), "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!(
            "psql -p {port} {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Node {
    fn dir_str(&self) -> &str {
        self.dir.to_str().expect("utf-8 temp dir")
    }

    pub(crate) fn postmaster(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.dir.join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// Runs `sql` on this node's `db`; returns the rows, tab-separated.
    pub(crate) fn sql(&self, db: &str, sql: &str) -> Result<String, String> {
        psql(self.port, db, sql)
    }
}

impl HaPair {
    /// A primary with a database of its own, and a standby of it; `sync`
    /// makes every commit wait for the standby.
    pub(crate) fn start(sync: bool) -> HaPair {
        let base = std::env::temp_dir().join(format!("witness-ha-{}", uuid::Uuid::now_v7()));
        let pid = std::process::id().to_string();
        let dirs = [base.with_extension("a"), base.with_extension("b")];
        let url = pg_temp(&["start", dirs[0].to_str().unwrap(), "0", &pid]).expect("primary");
        let port: u16 = url
            .rsplit_once(':')
            .and_then(|(_, p)| p.split('/').next())
            .and_then(|p| p.parse().ok())
            .expect("port in the primary's URL");
        let primary = Node {
            dir: dirs[0].clone(),
            port,
        };
        // Before the settings below, which would make it wait for a standby.
        let database = format!("t_{}", uuid::Uuid::now_v7().simple());
        primary
            .sql("postgres", &format!("CREATE DATABASE {database}"))
            .expect("create database");
        // Both nodes get the same settings (ALTER SYSTEM goes into the
        // data directory, which the base backup copies): whichever is
        // primary waits for the other.
        let commit = if sync { "on" } else { "local" };
        for (key, value) in [
            ("synchronous_standby_names", "*"),
            ("synchronous_commit", commit),
            ("wal_sender_timeout", "5s"),
            ("wal_receiver_status_interval", "1s"),
        ] {
            // One statement a call: ALTER SYSTEM refuses a transaction.
            primary
                .sql("postgres", &format!("ALTER SYSTEM SET {key} = '{value}'"))
                .expect("replication settings");
        }
        primary
            .sql("postgres", "SELECT pg_reload_conf()")
            .expect("reload");
        let standby = Node {
            dir: dirs[1].clone(),
            port: free_port(),
        };
        let mut pair = HaPair {
            nodes: [primary, standby],
            primary: 0,
            sync,
            database,
        };
        pair.build_standby(1, Some(&pid)).expect("standby");
        pair
    }

    pub(crate) fn primary(&self) -> &Node {
        &self.nodes[self.primary]
    }

    pub(crate) fn standby(&self) -> &Node {
        &self.nodes[1 - self.primary]
    }

    /// The multi-host URL witness is given: both nodes, the standby first
    /// half of the time (after every other failover), so witness must
    /// skip it by `target_session_attrs=read-write`.
    pub(crate) fn url(&self) -> String {
        format!(
            "postgres://witness@127.0.0.1:{},127.0.0.1:{}/{}?target_session_attrs=read-write",
            self.nodes[0].port, self.nodes[1].port, self.database
        )
    }

    /// The URL of one node's database.
    pub(crate) fn node_url(&self, i: usize) -> String {
        format!(
            "postgres://witness@127.0.0.1:{}/{}",
            self.nodes[i].port, self.database
        )
    }

    /// A fresh base backup of the primary into node `i`'s (emptied)
    /// directory, started as its streaming standby (`watch`: removed when
    /// that process exits).
    fn build_standby(&mut self, i: usize, watch: Option<&str>) -> Result<(), String> {
        let node = self.nodes[i].clone();
        if node.dir.exists() {
            std::fs::remove_dir_all(&node.dir).map_err(|e| e.to_string())?;
        }
        let from = self.nodes[1 - i].port.to_string();
        as_pg(
            "pg_basebackup",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &from,
                "-U",
                "witness",
                "-D",
                node.dir_str(),
                "-R",
                "-c",
                "fast",
                "-X",
                "stream",
            ],
        )?;
        // The copy holds the primary's socket lock files (its socket is in
        // its data directory), which would stop this server from starting
        // on a port whose old postmaster's pid was reused.
        for entry in std::fs::read_dir(&node.dir).map_err(|e| e.to_string())? {
            let entry = entry.map_err(|e| e.to_string())?;
            if entry.file_name().to_string_lossy().starts_with(".s.PGSQL.") {
                std::fs::remove_file(entry.path()).map_err(|e| e.to_string())?;
            }
        }
        // pg-temp.sh takes the port from this file, copied from the primary.
        std::fs::write(node.dir.join("port"), format!("{}\n", node.port))
            .map_err(|e| e.to_string())?;
        match watch {
            Some(pid) => pg_temp(&["start", node.dir_str(), "0", pid])?,
            None => pg_temp(&["start", node.dir_str()])?,
        };
        Ok(())
    }

    /// Waits until the standby streams from the primary, named by
    /// `synchronous_standby_names` (with `synchronous_commit = local` the
    /// primary still does not wait for it).
    pub(crate) fn wait_streaming(&self, limit: Duration) -> Result<(), String> {
        let want = "sync";
        let until = Instant::now() + limit;
        loop {
            let state = self.primary().sql(
                "postgres",
                "SELECT state || ' ' || sync_state FROM pg_stat_replication",
            );
            if let Ok(s) = &state {
                if s.trim() == format!("streaming {want}") {
                    return Ok(());
                }
            }
            if Instant::now() > until {
                return Err(format!(
                    "the standby is not streaming ({want}) after {limit:?}: {state:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// kill -9 the primary's postmaster and every process of it, as a
    /// crashed host would go (no shutdown, no more WAL sent).
    pub(crate) fn kill_primary(&self) {
        if let Some(pm) = self.primary().postmaster() {
            let mut pids = children(pm);
            pids.push(pm);
            for p in pids {
                signal(p, libc::SIGKILL);
            }
        }
        // Wait until it is gone, so the promotion races nothing.
        let until = Instant::now() + Duration::from_secs(10);
        while self.primary().postmaster().is_some_and(alive) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The standby's chain head (what it has replayed), read on the
    /// standby (hot standby answers reads). None before witness migrated.
    pub(crate) fn standby_head(&self) -> Option<u64> {
        self.standby()
            .sql(&self.database, "SELECT sequence FROM chain")
            .ok()?
            .parse()
            .ok()
    }

    /// The standby's chain head once it has replayed all it can of the
    /// WAL it received (after the primary died): what a promotion keeps.
    /// Its walreceiver has stopped, and its replay position has not moved
    /// for a second (the last record received may be partial, never to be
    /// replayed, so the receive position is no measure).
    pub(crate) fn drained_standby_head(&self, limit: Duration) -> Result<u64, String> {
        let until = Instant::now() + limit;
        let (mut last, mut since) = (String::new(), Instant::now());
        loop {
            let now = self.standby().sql(
                &self.database,
                "SELECT EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming')
                        || ' ' || pg_last_wal_replay_lsn()",
            )?;
            if now != last || now.starts_with("true") {
                (last, since) = (now, Instant::now());
            } else if since.elapsed() >= Duration::from_secs(1) {
                let head = self
                    .standby()
                    .sql(&self.database, "SELECT sequence FROM chain")?;
                return head.parse().map_err(|_| format!("chain head {head:?}"));
            }
            if Instant::now() > until {
                return Err(format!("the standby did not settle: {last}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `pg_ctl promote` on the standby, which becomes the primary.
    pub(crate) fn promote(&mut self) -> Result<(), String> {
        let standby = self.standby().clone();
        as_pg(
            "pg_ctl",
            &["-D", standby.dir_str(), "-w", "-t", "60", "promote"],
        )?;
        self.primary = 1 - self.primary;
        Ok(())
    }

    /// The old primary, rebuilt as the new primary's standby; returns when
    /// it streams.
    pub(crate) fn rebuild_standby(&mut self) -> Result<(), String> {
        let old = 1 - self.primary;
        // Whatever the kill left (a postmaster.pid, shared memory gone).
        let _ = std::fs::remove_file(self.nodes[old].dir.join("postmaster.pid"));
        self.build_standby(old, None)?;
        self.wait_streaming(Duration::from_secs(30))
    }

    /// The standby's postmaster and every process of it (the startup
    /// process and the walreceiver among them).
    pub(crate) fn standby_pids(&self) -> Vec<u32> {
        self.standby().postmaster().map_or_else(Vec::new, |pm| {
            let mut pids = vec![pm];
            pids.extend(children(pm));
            pids
        })
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub(crate) fn signal(pid: u32, sig: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) on a pid this test started; no memory is shared.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false)
}

/// SIGSTOP the processes (parents first, so none forks a new child), wait,
/// SIGCONT them.
pub(crate) fn stall_pids(pids: &[u32], stall: Duration) {
    for p in pids {
        signal(*p, libc::SIGSTOP);
    }
    std::thread::sleep(stall);
    for p in pids.iter().rev() {
        signal(*p, libc::SIGCONT);
    }
}

/// The direct children of `parent` (PostgreSQL's backends and workers).
pub(crate) fn children(parent: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the parenthesised command name: state, ppid, ...
        let rest = &stat[stat.rfind(')')? + 2..];
        let ppid: u32 = rest.split(' ').nth(1)?.parse().ok()?;
        (ppid == parent).then_some(pid)
    })
    .collect()
}
