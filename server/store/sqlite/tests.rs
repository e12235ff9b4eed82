//! The SQLite store's own checks: error classification, query plans.

use super::*;

#[test]
fn constraint_is_internal_not_a_file_is_corrupt_a_bad_column_is_corrupt() {
    let c = Connection::open_in_memory().unwrap();
    c.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1);")
        .unwrap();
    let e: StoreError = c
        .execute("INSERT INTO t VALUES (1)", [])
        .unwrap_err()
        .into();
    assert!(matches!(e, StoreError::Internal(_)), "{e}");
    let e: StoreError = c.execute("SELECT * FROM nope", []).unwrap_err().into();
    assert!(matches!(e, StoreError::Internal(_)), "{e}");
    let e: StoreError = c
        .query_row("SELECT 'x'", [], |r| r.get::<_, i64>(0))
        .unwrap_err()
        .into();
    assert!(matches!(e, StoreError::Corrupt(_)), "{e}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not.db");
    std::fs::write(&path, vec![7u8; 8192]).unwrap();
    let e = connect(path.to_str().unwrap())
        .and_then(|mut c| migrate(&mut c).map(|_| ()))
        .unwrap_err();
    assert!(matches!(e, StoreError::Corrupt(_)), "{e}");
}

/// A timer tick must not read every decision: each branch searches its
/// partial index.
#[test]
fn the_due_timer_claim_searches_the_timer_indexes_only() {
    let mut c = Connection::open_in_memory().unwrap();
    migrate(&mut c).unwrap();
    let plan: Vec<String> = c
        .prepare(&format!("EXPLAIN QUERY PLAN {DUE_TIMERS}"))
        .unwrap()
        .query_map(params![0, 0, 10], |r| r.get(3))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let plan = plan.join("\n");
    assert!(plan.contains("USING INDEX decisions_expiring"), "{plan}");
    assert!(plan.contains("USING INDEX decisions_unacked"), "{plan}");
    assert!(!plan.contains("SCAN decisions"), "{plan}");
}

/// A decision's events come from its index in log order, without a sort.
#[test]
fn a_decisions_events_are_read_from_its_index_in_order() {
    let mut c = Connection::open_in_memory().unwrap();
    migrate(&mut c).unwrap();
    let plan: String = c
        .query_row(
            &format!("EXPLAIN QUERY PLAN SELECT {EVENT_COLUMNS} FROM events WHERE decision_id = ?1 ORDER BY sequence"),
            ["d"],
            |r| r.get(3),
        )
        .unwrap();
    assert_eq!(
        plan,
        "SEARCH events USING INDEX events_by_decision (decision_id=?)"
    );
}
