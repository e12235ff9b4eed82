//! `witness audit verify` detects edited, deleted, inserted and reordered
//! events in a real database file.

mod common;

use common::*;

async fn populated() -> Server {
    let s = Server::start("");
    let mut asker = s.client("svc", &[]).await;
    let mut alice = s.client("alice", &["sre"]).await;
    for _ in 0..3 {
        let d = asker
            .ask(ask("deploy.prod", &["sre"], 1, None))
            .await
            .unwrap()
            .into_inner();
        alice
            .answer(approve(&d.decision.unwrap().id, "ok"))
            .await
            .unwrap();
    }
    s
}

/// Copies the database (after a clean checkpoint) and applies `tamper`.
fn tampered(s: &Server, name: &str, tamper: &str) -> std::path::PathBuf {
    let copy = s.dir.path().join(format!("{name}.db"));
    let src = open_db(&s.db_path());
    src.execute_batch(&format!("VACUUM INTO '{}'", copy.display()))
        .unwrap();
    open_db(&copy).execute_batch(tamper).unwrap();
    copy
}

#[tokio::test]
async fn audit_verify_names_the_first_bad_event() {
    let mut s = populated().await;
    s.kill9();
    let cfg = s.config_path();
    let (code, out) = audit_verify(&cfg, &s.db_path());
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("ok: 9 events"), "{out}");

    let edited = tampered(
        &s,
        "edited",
        "UPDATE events SET body = replace(body, 'cluster-a', 'cluster-b') WHERE sequence = 4",
    );
    let (code, out) = audit_verify(&cfg, &edited);
    assert_eq!(code, 1);
    assert!(out.contains("event 4") && out.contains("edited"), "{out}");

    let deleted = tampered(&s, "deleted", "DELETE FROM events WHERE sequence = 5");
    let (code, out) = audit_verify(&cfg, &deleted);
    assert_eq!(code, 1);
    assert!(out.contains("event 5 is missing"), "{out}");

    let reordered = tampered(
        &s,
        "reordered",
        "UPDATE events SET sequence = -1 WHERE sequence = 5;
         UPDATE events SET sequence = 5 WHERE sequence = 6;
         UPDATE events SET sequence = 6 WHERE sequence = -1;",
    );
    let (code, out) = audit_verify(&cfg, &reordered);
    assert_eq!(code, 1);
    assert!(out.contains("event 5"), "{out}");

    let inserted = tampered(
        &s,
        "inserted",
        "UPDATE events SET sequence = sequence + 100 WHERE sequence >= 3;
         UPDATE events SET sequence = sequence - 99 WHERE sequence >= 103;
         INSERT INTO events SELECT 3, decision_id, type, at, body, hash FROM events WHERE sequence = 2;",
    );
    let (code, out) = audit_verify(&cfg, &inserted);
    assert_eq!(code, 1);
    assert!(out.contains("event 3"), "{out}");

    // SQLite stores no prev_hash: the link is the previous row's hash, so a
    // hole in the middle and an edited hash are found all the same.
    let holed = tampered(&s, "holed", "DELETE FROM events WHERE sequence = 4");
    let (code, out) = audit_verify(&cfg, &holed);
    assert_eq!(code, 1);
    assert!(out.contains("event 4 is missing"), "{out}");
    let rehashed = tampered(
        &s,
        "rehashed",
        "UPDATE events SET hash = zeroblob(32) WHERE sequence = 3",
    );
    let (code, out) = audit_verify(&cfg, &rehashed);
    assert_eq!(code, 1);
    assert!(out.contains("event 3"), "{out}");

    let truncated = tampered(&s, "truncated", "DELETE FROM events WHERE sequence = 9");
    let (code, out) = audit_verify(&cfg, &truncated);
    assert_eq!(code, 1);
    assert!(out.contains("event 9 is missing"), "{out}");

    let projected = tampered(
        &s,
        "projection",
        "UPDATE decisions SET body = replace(body, '\"APPROVED\"', '\"REJECTED\"')",
    );
    let (code, out) = audit_verify(&cfg, &projected);
    assert_eq!(code, 1);
    assert!(out.contains("differs from the replayed events"), "{out}");
    assert!(out.contains("state hashes DIFFER"), "{out}");
}

#[tokio::test]
async fn a_tampered_row_changes_the_stored_state_hash_only() {
    let mut s = populated().await;
    s.kill9();
    let cfg = s.config_path();
    let (code, out) = audit_verify(&cfg, &s.db_path());
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("state hashes are equal"), "{out}");
    let (code, clean) = audit_verify_json(&cfg, Some(&sqlite_url(&s.db_path())));
    assert_eq!(code, 0, "{clean}");
    assert_eq!(clean["ok"], true);
    assert_eq!(clean["events"], 9);
    assert_eq!(clean["decisions"], 3);
    assert_eq!(clean["state_hash_equal"], true);
    assert_eq!(clean["state_hash_replayed"], clean["state_hash_stored"]);

    // A column alone, the body alone, and a whole row removed.
    for (name, tamper) in [
        (
            "version",
            "UPDATE decisions SET version = version + 1 WHERE rowid = 2",
        ),
        (
            "body",
            "UPDATE decisions SET body = replace(body, 'cluster-a', 'cluster-z') WHERE rowid = 3",
        ),
        ("row", "DELETE FROM decisions WHERE rowid = 1"),
    ] {
        let copy = tampered(&s, name, tamper);
        let (code, doc) = audit_verify_json(&cfg, Some(&sqlite_url(&copy)));
        assert_eq!(code, 1, "{name}: {doc}");
        assert_eq!(doc["ok"], false, "{name}: {doc}");
        assert_eq!(doc["state_hash_equal"], false, "{name}: {doc}");
        assert_eq!(
            doc["state_hash_replayed"], clean["state_hash_replayed"],
            "{name}: the log is untouched, so its replay is too"
        );
        assert_ne!(
            doc["state_hash_stored"], clean["state_hash_stored"],
            "{name}"
        );
        assert!(doc["problem"]["reason"].is_string(), "{name}: {doc}");
    }

    // A broken chain: no replayed hash, the stored one still reported.
    let edited = tampered(&s, "chain", "DELETE FROM events WHERE sequence = 5");
    let (code, doc) = audit_verify_json(&cfg, Some(&sqlite_url(&edited)));
    assert_eq!(code, 1);
    assert!(doc["state_hash_replayed"].is_null(), "{doc}");
    assert_eq!(doc["state_hash_stored"], clean["state_hash_stored"]);
    assert_eq!(doc["problem"]["sequence"], 5);
}
