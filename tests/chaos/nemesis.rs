//! The nemesis: a schedule of faults drawn from the seed, run against the
//! real processes. SQLite: kill -9 witness and restart it on the same file
//! and port, or freeze it (SIGSTOP/SIGCONT). PostgreSQL: kill -9 one of two
//! replicas, restart the PostgreSQL server (`pg_ctl stop -m immediate`),
//! or stall it (SIGSTOP/SIGCONT on the postmaster and its children).
//! postgres-ha (a primary and a streaming standby, witness on the
//! multi-host URL): fail over (kill -9 the primary, after stalling its WAL
//! sender a while, promote the standby, rebuild the old primary as the
//! new standby), or stall the standby (which holds synchronous commits),
//! besides killing and freezing witness replicas.

use crate::checker::Failover;
use crate::common::pg_ha::{children, signal, stall_pids, HaPair};
use crate::common::{pg::PgCluster, Server};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::sync::Mutex;
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
    /// Stall the primary's WAL senders for `lag` (the standby falls
    /// behind: commits wait, or with asynchronous replication do not),
    /// kill -9 the primary, promote the standby, rebuild the old primary.
    Failover { lag: Duration },
    /// SIGSTOP the standby (postmaster, startup, walreceiver) a while.
    StandbyStall { stall: Duration },
}

/// Which store the nemesis works on.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Store {
    Sqlite,
    Postgres,
    PostgresHa,
}

/// Longest a single fault keeps a store or replica away (for timer grace).
pub(crate) const MAX_FAULT: Duration = Duration::from_secs(4);

/// The faults of a run, each after a pause, drawn from `seed`.
pub(crate) fn schedule(
    seed: u64,
    run: Duration,
    replicas: usize,
    store: Store,
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
        if store == Store::PostgresHa {
            let fault = match rng.random_range(0..10) {
                0..=3 => Fault::Failover {
                    lag: ms(&mut rng, 0, 1500),
                },
                4..=6 => Fault::StandbyStall {
                    stall: ms(&mut rng, 1000, 4000),
                },
                7..=8 => Fault::Kill {
                    replica,
                    down: ms(&mut rng, 0, 1500),
                },
                _ => Fault::Freeze {
                    replica,
                    stall: ms(&mut rng, 500, 3000),
                },
            };
            out.push((at, fault));
            continue;
        }
        let pg = store == Store::Postgres;
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
    ha: Option<Arc<Mutex<HaPair>>>,
    stop: Arc<AtomicBool>,
) -> (Vec<Server>, Vec<String>, Vec<Failover>) {
    let mut failovers = Vec::new();
    let start = Instant::now();
    let mut log = Vec::new();
    for (at, fault) in plan {
        while start.elapsed() < at {
            if stop.load(Ordering::SeqCst) {
                return (servers, log, failovers);
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
            Fault::Failover { lag } => {
                if let Some(ha) = &ha {
                    let mut pair = ha.lock().unwrap();
                    let began = Instant::now();
                    let (f, promoted) = failover(&mut pair, lag);
                    log.push(format!(
                        "        at {:.1}s: promoted at sequence {} after {:.1}s, old primary streaming as standby after {:.1}s",
                        start.elapsed().as_secs_f64(),
                        f.fork_sequence,
                        promoted.as_secs_f64(),
                        began.elapsed().as_secs_f64()
                    ));
                    failovers.push(f);
                }
            }
            Fault::StandbyStall { stall } => {
                if let Some(ha) = &ha {
                    let pids = ha.lock().unwrap().standby_pids();
                    stall_pids(&pids, stall);
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
    (servers, log, failovers)
}

/// One failover, as an operator (or Patroni) makes it, and how long after
/// the kill the standby was promoted; panics if the pair cannot be made
/// whole again (the run is then void).
fn failover(pair: &mut HaPair, lag: Duration) -> (Failover, Duration) {
    if let Some(pm) = pair.primary().postmaster() {
        let senders: Vec<u32> = children(pm)
            .into_iter()
            .filter(|p| {
                std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                    .is_ok_and(|c| c.contains("walsender"))
            })
            .collect();
        for p in &senders {
            signal(*p, libc::SIGSTOP);
        }
        std::thread::sleep(lag);
    }
    let killed = Instant::now();
    pair.kill_primary();
    // Taken once the primary is dead: every write it committed was
    // stamped before this (a backend may commit while the kill goes out).
    let kill_us = crate::now_us();
    let fork_sequence = pair
        .drained_standby_head(Duration::from_secs(30))
        .expect("the standby's head after the primary died");
    pair.promote().expect("promote the standby");
    let promoted = killed.elapsed();
    pair.rebuild_standby()
        .expect("rebuild the old primary as the standby");
    (
        Failover {
            kill_us,
            fork_sequence,
        },
        promoted,
    )
}

fn postmaster_pid(dir: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(dir.join("postmaster.pid")).ok()?;
    text.lines().next()?.trim().parse().ok()
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
