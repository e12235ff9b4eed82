//! The SQLite schema's versioned migrations (`PRAGMA user_version` records
//! the last applied), with the Rust steps some of them need.

use super::super::{codec, Result, StoreError};
use crate::core::GENESIS_HASH;
use rusqlite::{params, Connection, TransactionBehavior};

const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/sqlite/0001_init.sql"),
    include_str!("../migrations/sqlite/0002_outbox.sql"),
    include_str!("../migrations/sqlite/0003_receipts.sql"),
    include_str!("../migrations/sqlite/0004_compact_log.sql"),
    include_str!("../migrations/sqlite/0005_timer_lease.sql"),
    include_str!("../migrations/sqlite/0006_chain_blobs.sql"),
    include_str!("../migrations/sqlite/0007_outbox_response.sql"),
];
/// The migration after whose SQL the decision rows are re-encoded.
const COMPACT_ROWS: usize = 4;
/// The migration before whose SQL the chain's stored links are checked.
const CHAIN_BLOBS: usize = 6;

/// Applies pending migrations, each in its own transaction; returns the
/// schema version.
pub fn migrate(conn: &mut Connection) -> Result<usize> {
    let current: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if current > MIGRATIONS.len() {
        return Err(StoreError::Corrupt(format!(
            "database schema version {current} is newer than this witness ({})",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if i + 1 == CHAIN_BLOBS {
            check_links(&tx)?;
        }
        tx.execute_batch(sql)?;
        if i + 1 == COMPACT_ROWS {
            compact_rows(&tx)?;
        }
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
    }
    Ok(MIGRATIONS.len())
}

/// Rewrites every decision row in the compact form (rows are not hashed;
/// the log is left exactly as it is).
fn compact_rows(conn: &Connection) -> Result<()> {
    let mut select = conn.prepare("SELECT id, body FROM decisions")?;
    let mut update = conn.prepare("UPDATE decisions SET body = ?2 WHERE id = ?1")?;
    let mut rows = select.query([])?;
    while let Some(r) = rows.next()? {
        let (id, body): (String, String) = (r.get(0)?, r.get(1)?);
        let compact = codec::encode_decision(&codec::decode_full_decision(&body)?)?;
        update.execute(params![id, compact])?;
    }
    Ok(())
}

/// Before `prev_hash` is dropped: every event's stored link must be the
/// previous event's hash and every hash 64 lowercase hex digits, or the
/// migration stops (naming the event) instead of erasing the evidence.
fn check_links(conn: &Connection) -> Result<()> {
    let mut select =
        conn.prepare("SELECT sequence, prev_hash, hash FROM events ORDER BY sequence")?;
    let mut rows = select.query([])?;
    let mut prev = GENESIS_HASH.to_string();
    while let Some(r) = rows.next()? {
        let (sequence, link, hash): (i64, String, String) = (r.get(0)?, r.get(1)?, r.get(2)?);
        let hex_ok =
            hash.len() == 64 && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if link != prev || !hex_ok {
            return Err(StoreError::Corrupt(format!(
                "cannot migrate the log to schema {CHAIN_BLOBS}: event {sequence}'s stored chain link \
                 or hash is broken; `witness audit verify` with the previous release names the damage"
            )));
        }
        prev = hash;
    }
    Ok(())
}
