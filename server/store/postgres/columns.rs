//! The statements' parameters for multi-row writes: one array per column
//! (`UNNEST($1::text[], ...)`), built from the batch's rows.

use super::super::batch::BatchWrites;
use super::super::ProjectionRow;

/// One array per column of a multi-row statement.
pub(super) struct Columns<'a> {
    pub(super) rows: usize,
    values: Vec<Box<dyn tokio_postgres::types::ToSql + Sync + Send + 'a>>,
}

impl<'a> Columns<'a> {
    pub(super) fn params(&self) -> Vec<&(dyn tokio_postgres::types::ToSql + Sync)> {
        self.values
            .iter()
            .map(|v| v.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect()
    }

    fn from_rows<T>(rows: &'a [T]) -> ColumnsOf<'a, T> {
        ColumnsOf {
            rows,
            columns: Columns {
                rows: rows.len(),
                values: Vec::new(),
            },
        }
    }

    pub(super) fn events(w: &'a BatchWrites) -> Columns<'a> {
        Columns::from_rows(&w.events)
            .col(|e| e.sequence as i64)
            .col(|e| e.decision_id.as_str())
            .col(|e| e.event_type.as_str())
            .col(|e| e.at)
            .col(|e| e.body.as_str())
            .col(|e| e.prev_hash.as_str())
            .col(|e| e.hash.as_str())
            .done()
    }

    pub(super) fn inserts(rows: &'a [&'a ProjectionRow]) -> Columns<'a> {
        Columns::from_rows(rows)
            .col(|d| d.id.as_str())
            .col(|d| d.kind.as_str())
            .col(|d| d.status.as_str())
            .col(|d| d.asked_by.as_str())
            .col(|d| d.created_at)
            .col(|d| d.version)
            .col(|d| d.last_sequence)
            .col(|d| d.expires_at)
            .col(|d| d.fallback_at)
            .col(|d| d.body.as_str())
            .done()
    }

    pub(super) fn updates(rows: &'a [(&'a ProjectionRow, i64)]) -> Columns<'a> {
        Columns::from_rows(rows)
            .col(|(d, _)| d.id.as_str())
            .col(|(d, _)| d.status.as_str())
            .col(|(d, _)| d.version)
            .col(|(d, _)| d.last_sequence)
            .col(|(d, _)| d.expires_at)
            .col(|(d, _)| d.fallback_at)
            .col(|(d, _)| d.body.as_str())
            .col(|(_, stored_version)| *stored_version)
            .done()
    }

    pub(super) fn outbox(w: &'a BatchWrites) -> Columns<'a> {
        Columns::from_rows(&w.outbox)
            .col(|n| n.webhook.as_str())
            .col(|n| n.decision_id.as_str())
            .col(|n| n.sequence)
            .col(|n| n.event_type.as_str())
            .col(|n| n.body.as_str())
            .col(|n| n.next_attempt_at)
            .done()
    }

    pub(super) fn receipts(w: &'a BatchWrites) -> Columns<'a> {
        Columns::from_rows(&w.receipts)
            .col(|(id, _)| id.as_str())
            .col(|(_, body)| body.as_str())
            .done()
    }

    pub(super) fn requests(w: &'a BatchWrites) -> Columns<'a> {
        Columns::from_rows(&w.requests)
            .col(|r| r.idem.scope.as_str())
            .col(|r| r.idem.request_id.as_str())
            .col(|r| r.idem.fingerprint.as_str())
            .col(|r| r.decision_id.as_str())
            .col(|r| r.outcome.as_str())
            .done()
    }
}

/// Builds [`Columns`] from rows, one column at a time.
struct ColumnsOf<'a, T> {
    rows: &'a [T],
    columns: Columns<'a>,
}

impl<'a, T> ColumnsOf<'a, T> {
    fn col<V>(mut self, f: impl Fn(&'a T) -> V) -> Self
    where
        V: tokio_postgres::types::ToSql + Sync + Send + 'a,
    {
        let column: Vec<V> = self.rows.iter().map(f).collect();
        self.columns.values.push(Box::new(column));
        self
    }

    fn done(self) -> Columns<'a> {
        self.columns
    }
}
