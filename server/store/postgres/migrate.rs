//! The PostgreSQL schema: versioned migrations, applied in order under an
//! advisory lock so that replicas starting together apply each once.

use super::super::{codec, Result, StoreError};
use deadpool_postgres::Pool;

/// Versioned migrations, recorded in `schema_migrations`.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/postgres/0001_init.sql"),
    include_str!("../migrations/postgres/0002_outbox.sql"),
    include_str!("../migrations/postgres/0003_receipts.sql"),
    include_str!("../migrations/postgres/0004_compact_log.sql"),
    include_str!("../migrations/postgres/0005_outbox_response.sql"),
];
/// The migration after whose SQL the decision rows are re-encoded.
const COMPACT_ROWS: usize = 4;
/// Serialises migrations when several replicas start at once.
const MIGRATION_LOCK: i64 = 0x0077_6974_6e65_7373; // "witness"

/// Rewrites every decision row in the compact form (rows are not hashed;
/// the log is left exactly as it is).
async fn compact_rows(tx: &deadpool_postgres::Transaction<'_>) -> Result<()> {
    let update = tx
        .prepare("UPDATE decisions SET body = $2 WHERE id = $1")
        .await?;
    for r in tx.query("SELECT id, body FROM decisions", &[]).await? {
        let (id, body): (&str, &str) = (r.try_get(0)?, r.try_get(1)?);
        let compact = codec::encode_decision(&codec::decode_full_decision(body)?)?;
        tx.execute(&update, &[&id, &compact]).await?;
    }
    Ok(())
}

/// Applies pending migrations under an advisory lock.
pub(super) async fn migrate(pool: &Pool) -> Result<()> {
    let mut client = pool.get().await?;
    client
        .batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))
        .await?;
    let result = async {
        client
            .batch_execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
            .await?;
        let current: i32 = client
            .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", &[])
            .await?
            .get(0);
        if current as usize > MIGRATIONS.len() {
            return Err(StoreError::Corrupt(format!(
                "database schema version {current} is newer than this witness ({})",
                MIGRATIONS.len()
            )));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
            let tx = client.transaction().await?;
            tx.batch_execute(sql).await?;
            if i + 1 == COMPACT_ROWS {
                compact_rows(&tx).await?;
            }
            tx.execute("INSERT INTO schema_migrations (version) VALUES ($1)", &[&(i as i32 + 1)]).await?;
            tx.commit().await?;
        }
        Ok(())
    }
    .await;
    client
        .batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))
        .await?;
    result
}
