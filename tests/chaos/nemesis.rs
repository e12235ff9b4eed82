//! The nemesis: a schedule of faults drawn from the seed, run against the
//! real processes. SQLite: kill -9 witness and restart it on the same file
//! and port, or freeze it (SIGSTOP/SIGCONT). PostgreSQL: kill -9 one of two
//! replicas, restart the PostgreSQL server (`pg_ctl stop -m immediate`),
//! or stall it (SIGSTOP/SIGCONT on the postmaster and its children).

use crate::common::{pg::PgCluster, Server};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub(crate) enum Fault {
    /// kill -9 witness replica `i`, wait, start it again on its port.
    Kill { replica: usize, down: Duration },
    /// SIGSTOP witness replica `i` for a while.
    Freeze { replica: usize, stall: Duration },
    /// `pg_ctl stop -m immediate`, wait, start.
    PgRestart { down: Duration },
    /// SIGSTOP the postmaster and its backends for a while.
    PgStall { stall: Duration },
}

/// Longest a single fault keeps a store or replica away (for timer grace).
pub(crate) const MAX_FAULT: Duration = Duration::from_secs(4);

/// The faults of a run, each after a pause, drawn from `seed`.
pub(crate) fn schedule(
    seed: u64,
    run: Duration,
    replicas: usize,
    pg: bool,
) -> Vec<(Duration, Fault)> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x6e656d65);
    let mut at = Duration::ZERO;
    let mut out = Vec::new();
    loop {
        at += Duration::from_millis(rng.random_range(1500..5000));
        if at + MAX_FAULT >= run {
            return out;
        }
        let ms =
            |rng: &mut StdRng, lo: u64, hi: u64| Duration::from_millis(rng.random_range(lo..hi));
        let replica = rng.random_range(0..replicas);
        let fault = match (pg, rng.random_range(0..10)) {
            (_, 0..=4) => Fault::Kill {
                replica,
                down: ms(&mut rng, 0, 1500),
            },
            (false, _) | (true, 5) => Fault::Freeze {
                replica,
                stall: ms(&mut rng, 500, 3000),
            },
            (true, 6..=7) => Fault::PgRestart {
                down: ms(&mut rng, 200, 2000),
            },
            (true, _) => Fault::PgStall {
                stall: ms(&mut rng, 500, 4000),
            },
        };
        out.push((at, fault));
    }
}

/// Runs `plan` against `servers` (and `pg`), until it ends or `stop` is
/// set; leaves every process running. Returns the servers and a log.
pub(crate) fn run(
    plan: Vec<(Duration, Fault)>,
    mut servers: Vec<Server>,
    pg: Option<Arc<PgCluster>>,
    stop: Arc<AtomicBool>,
) -> (Vec<Server>, Vec<String>) {
    let start = Instant::now();
    let mut log = Vec::new();
    for (at, fault) in plan {
        while start.elapsed() < at {
            if stop.load(Ordering::SeqCst) {
                return (servers, log);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        log.push(format!("{:>6.1}s {fault:?}", at.as_secs_f64()));
        match fault {
            Fault::Kill { replica, down } => {
                servers[replica].kill9();
                std::thread::sleep(down);
                servers[replica].restart_same_port();
            }
            Fault::Freeze { replica, stall } => {
                if let Some(pid) = servers[replica].pid() {
                    stall_pids(&[pid], stall);
                }
            }
            Fault::PgRestart { down } => {
                if let Some(pg) = &pg {
                    pg_stop_immediate(&pg.dir);
                    std::thread::sleep(down);
                    pg.start_again();
                }
            }
            Fault::PgStall { stall } => {
                if let Some(pg) = &pg {
                    if let Some(pm) = postmaster_pid(&pg.dir) {
                        let mut pids = vec![pm];
                        pids.extend(children(pm));
                        stall_pids(&pids, stall);
                    }
                }
            }
        }
    }
    (servers, log)
}

fn signal(pid: u32, sig: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) on a pid this run started; no memory is shared.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

/// SIGSTOP the processes (parents first, so none forks a new child), wait,
/// SIGCONT them.
fn stall_pids(pids: &[u32], stall: Duration) {
    for p in pids {
        signal(*p, libc::SIGSTOP);
    }
    std::thread::sleep(stall);
    for p in pids.iter().rev() {
        signal(*p, libc::SIGCONT);
    }
}

fn postmaster_pid(dir: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(dir.join("postmaster.pid")).ok()?;
    text.lines().next()?.trim().parse().ok()
}

/// The direct children of `parent` (PostgreSQL's backends and workers).
fn children(parent: u32) -> Vec<u32> {
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

/// `pg_ctl stop -m immediate`: no checkpoint, like a crash.
fn pg_stop_immediate(dir: &Path) {
    let pg_ctl = format!(
        "{}/pg_ctl",
        std::env::var("PG_BIN").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into())
    );
    let is_root = {
        // SAFETY: getuid has no preconditions.
        unsafe { libc::getuid() == 0 }
    };
    let mut cmd = if is_root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", &pg_ctl]);
        c
    } else {
        Command::new(&pg_ctl)
    };
    let out = cmd
        .arg("-D")
        .arg(dir)
        .args(["-m", "immediate", "-w", "stop"])
        .output()
        .expect("run pg_ctl");
    assert!(
        out.status.success(),
        "pg_ctl stop -m immediate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A fresh seed when none is given.
pub(crate) fn random_seed() -> u64 {
    rand::rng().random()
}
