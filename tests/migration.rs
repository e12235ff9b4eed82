//! A database written by the previous release (tests/fixtures/v0.2.0.db,
//! made by tests/fixtures/make-v0.2.0-db.sh with the v0.2.0 binary: whole
//! decisions as JSON in every CREATED event and row) migrates to the compact
//! log: the old events stay byte for byte, the chain stays valid, the rows
//! read the same, and new compact events chained after the old ones verify,
//! edits to either kind included.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::time::Duration;
use witness::store::{codec, ProjectionRow};

/// The config the fixture was written with (its script uses the same file).
const FIXTURE_CONFIG: &str = include_str!("fixtures/v0.2.0.toml");

type EventRow = (i64, String, String, i64, String, String, String);

fn events(db: &Path) -> Vec<EventRow> {
    let c = open_db(db);
    let mut st = c
        .prepare(
            // Either schema: v0.2.0 stores hex hashes and a prev_hash column;
            // schema 6 stores the 32 hash bytes and links by position.
            "SELECT sequence, decision_id, type, at, body,
                    COALESCE(LAG(h) OVER (ORDER BY sequence), printf('%.64c', '0')), h
             FROM (SELECT *, CASE typeof(hash) WHEN 'blob' THEN lower(hex(hash)) ELSE hash END AS h
                   FROM events)
             ORDER BY sequence",
        )
        .unwrap();
    let rows = st
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })
        .unwrap();
    rows.map(Result::unwrap).collect()
}

fn rows(db: &Path) -> Vec<(String, String)> {
    let c = open_db(db);
    let mut st = c
        .prepare("SELECT id, body FROM decisions ORDER BY id")
        .unwrap();
    let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    rows.map(Result::unwrap).collect()
}

fn row(db: &Path, id: &str) -> ProjectionRow {
    open_db(db)
        .query_row(
            "SELECT id, kind, status, asked_by, created_at, version, last_sequence,
                    expires_at, fallback_at, body FROM decisions WHERE id = ?1",
            [id],
            |r| {
                Ok(ProjectionRow {
                    id: r.get(0)?,
                    kind: r.get(1)?,
                    status: r.get(2)?,
                    asked_by: r.get(3)?,
                    created_at: r.get(4)?,
                    version: r.get(5)?,
                    last_sequence: r.get(6)?,
                    expires_at: r.get(7)?,
                    fallback_at: r.get(8)?,
                    body: r.get(9)?,
                    timer_lease: None,
                })
            },
        )
        .unwrap()
}

fn copy_of_fixture(dir: &Path) -> PathBuf {
    let db = dir.join("old.db");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v0.2.0.db");
    std::fs::copy(fixture, &db).unwrap();
    db
}

fn tamper(db: &Path, name: &str, sql: &str) -> PathBuf {
    let copy = db.with_file_name(format!("{name}.db"));
    open_db(db)
        .execute_batch(&format!("VACUUM INTO '{}'", copy.display()))
        .unwrap();
    open_db(&copy).execute_batch(sql).unwrap();
    copy
}

#[tokio::test]
async fn a_v0_2_0_database_migrates_and_its_chain_grows_in_the_compact_format() {
    let dir = tempfile::tempdir().unwrap();
    let db = copy_of_fixture(dir.path());
    let old_events = events(&db);
    let old_rows = rows(&db);
    let n = old_events.len() as i64;
    assert!(n >= 15, "the fixture has {n} events");
    assert!(old_events.iter().all(|e| codec::is_format1(&e.4)));
    let version: i64 = open_db(&db)
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 3, "the fixture is the v0.2.0 schema");

    // `audit verify` migrates on open, then verifies the whole old chain
    // and every row (before a server's timers add events).
    let cfg = dir.path().join("verify.toml");
    std::fs::write(&cfg, FIXTURE_CONFIG).unwrap();
    let (code, out) = audit_verify(&cfg, &db);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with(&format!("ok: {n} events")), "{out}");

    assert_eq!(
        events(&db)[..n as usize],
        old_events[..],
        "old events untouched"
    );
    let since: i64 = open_db(&db)
        .query_row(
            "SELECT since_sequence FROM log_formats WHERE format = 2",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(since, n + 1);
    let new_rows = rows(&db);
    assert_eq!(new_rows.len(), old_rows.len());
    for ((id, old), (new_id, new)) in old_rows.iter().zip(&new_rows) {
        assert_eq!(id, new_id);
        assert!(new.len() < old.len(), "{id}: row not compacted: {new}");
        let old: witness::core::Decision = serde_json::from_str(old).unwrap();
        assert_eq!(codec::decode_row(&row(&db, id)).unwrap(), old, "{id}");
    }

    // New writes (the server's timers add FALLBACK_FIRED events for the
    // old open decisions too): answer an old open decision, retry an old idempotent ask,
    // ask and cancel a new one.
    let s = Server::start_on(&sqlite_url(&db), FIXTURE_CONFIG);
    let open: Vec<String> = {
        let c = open_db(&db);
        let mut st = c
            .prepare("SELECT id FROM decisions WHERE status = 'OPEN' AND kind = 'deploy.prod' ORDER BY id")
            .unwrap();
        let ids = st.query_map([], |r| r.get(0)).unwrap();
        ids.map(Result::unwrap).collect()
    };
    assert_eq!(open.len(), 2);
    let mut svc = s.client("svc", &[]).await;
    let mut alice = s.client("alice", &["sre"]).await;
    let answered = alice
        .answer(approve(&open[0], "migrated and approved"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answered.decision.unwrap().status(), proto::Status::Approved);
    let mut retry = ask("deploy.prod", &["sre"], 1, None);
    retry.request_id = "fixed-1".into();
    retry.input = Some(json(serde_json::json!({"same": 1})));
    retry.surfaces = vec![];
    retry.required_approvals = 0;
    let again = svc.ask(retry).await.unwrap().into_inner();
    assert!(!again.created, "the old idempotency key still answers");
    assert_eq!(again.decision.unwrap().id, open[1]);
    let fresh = svc
        .ask(ask("deploy.prod", &["sre"], 1, None))
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    svc.cancel(proto::CancelRequest {
        decision_id: fresh.id.clone(),
        reason: "after the migration".into(),
    })
    .await
    .unwrap();
    // Reads of old and new decisions through the API.
    let got = alice
        .get_decision(proto::GetDecisionRequest {
            decision_id: open[1].clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    assert_eq!(got.status(), proto::Status::Open);
    let db2 = db.clone();
    eventually("the new events", Duration::from_secs(10), || {
        let db = db2.clone();
        async move {
            let c = open_db(&db);
            c.query_row(
                "SELECT count(*) FROM events WHERE type = 'CANCELLED'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .unwrap()
                >= 2
        }
    })
    .await;
    let all = events(&db);
    assert!(all[n as usize..].iter().all(|e| !codec::is_format1(&e.4)));
    assert_eq!(all[n as usize].5, old_events.last().unwrap().6, "chained");
    let (code, out) = audit_verify(&cfg, &db);
    assert_eq!(code, 0, "{out}");

    // Edits are found in both formats.
    let old_edit = tamper(
        &db,
        "old-edit",
        "UPDATE events SET body = replace(body, 'cluster-a', 'cluster-b') WHERE sequence = 1",
    );
    let (code, out) = audit_verify(&cfg, &old_edit);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("event 1") && out.contains("edited"), "{out}");
    let last = all
        .iter()
        .find(|e| e.2 == "CANCELLED" && e.1 == fresh.id)
        .expect("the new CANCELLED event")
        .0;
    for (name, sql) in [
        (
            "new-body",
            format!(
                "UPDATE events SET body = replace(body, 'after', 'before') WHERE sequence = {last}"
            ),
        ),
        (
            "new-at",
            format!("UPDATE events SET at = at + 1 WHERE sequence = {last}"),
        ),
        (
            "new-type",
            format!("UPDATE events SET type = 'EXPIRED' WHERE sequence = {last}"),
        ),
        (
            "new-id",
            format!(
                "UPDATE events SET decision_id = '{}' WHERE sequence = {last}",
                open[1]
            ),
        ),
    ] {
        let bad = tamper(&db, name, &sql);
        let (code, out) = audit_verify(&cfg, &bad);
        assert_eq!(code, 1, "{name}: {out}");
        assert!(out.contains(&format!("event {last}")), "{name}: {out}");
    }
    let row_edit = tamper(
        &db,
        "row-edit",
        &format!("UPDATE decisions SET body = replace(body, 'migrated and approved', 'x') WHERE id = '{}'", open[0]),
    );
    let (code, out) = audit_verify(&cfg, &row_edit);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("differs from the replayed events"), "{out}");
}

/// Schema 6 drops the stored `prev_hash` links; a log whose links were
/// edited is not migrated (that would erase the evidence): opening it fails
/// and names the event, and the log keeps its links.
#[test]
fn a_log_with_a_broken_link_is_not_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let db = copy_of_fixture(dir.path());
    open_db(&db)
        .execute_batch(&format!(
            "UPDATE events SET prev_hash = '{}' WHERE sequence = 5",
            "ab".repeat(32)
        ))
        .unwrap();
    let cfg = dir.path().join("verify.toml");
    std::fs::write(&cfg, FIXTURE_CONFIG).unwrap();
    let (code, out) = audit_verify(&cfg, &db);
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("event 5") && out.contains("chain link"),
        "{out}"
    );
    let link: String = open_db(&db)
        .query_row("SELECT prev_hash FROM events WHERE sequence = 5", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(link, "ab".repeat(32), "the evidence is kept");
}
