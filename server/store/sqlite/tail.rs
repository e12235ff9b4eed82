//! The newest events this process committed, kept in memory so that the
//! hub and resuming streams read them from here instead of reading back
//! (and decoding again) what the writer has just written. The writer is
//! the only writer of the log, so the tail always ends at the committed
//! head; a read that reaches further back goes to the database.

use crate::core::Event;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// Events kept; at ~1–2 KB per CREATED event, a few MB at most.
const CAP: usize = 1024;

#[derive(Debug, Default)]
pub(super) struct Tail {
    events: Mutex<VecDeque<Arc<Event>>>,
}

impl Tail {
    /// A cache: a panic elsewhere while it was held leaves it consistent.
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Arc<Event>>> {
        self.events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Appends a committed batch's events, which must follow the tail's
    /// last one with no gap; anything else empties the tail (reads then go
    /// to the database) rather than serve a log with a hole in it.
    pub(super) fn extend(&self, events: impl IntoIterator<Item = Arc<Event>>) {
        let mut q = self.lock();
        for e in events {
            if q.back().is_some_and(|last| last.sequence + 1 != e.sequence) {
                q.clear();
            }
            if q.len() == CAP {
                q.pop_front();
            }
            q.push_back(e);
        }
    }

    /// Forgets everything (a batch whose commit outcome is unknown).
    pub(super) fn clear(&self) {
        self.lock().clear();
    }

    /// Up to `limit` events after sequence `after`, or None when the tail
    /// does not reach back to `after + 1`.
    pub(super) fn after(&self, after: u64, limit: usize) -> Option<Vec<Event>> {
        let q = self.lock();
        let first = q.front()?.sequence;
        let skip = usize::try_from((after + 1).checked_sub(first)?).ok()?;
        Some(
            q.iter()
                .skip(skip)
                .take(limit)
                .map(|e| Event::clone(e))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::EventKind;

    fn event(sequence: u64) -> Event {
        Event {
            sequence,
            decision_id: "d".into(),
            at: 0,
            kind: EventKind::Approved,
        }
    }

    fn seqs(events: Option<Vec<Event>>) -> Option<Vec<u64>> {
        events.map(|v| v.iter().map(|e| e.sequence).collect())
    }

    #[test]
    fn serves_only_what_it_holds_from_the_requested_point() {
        let tail = Tail::default();
        assert_eq!(seqs(tail.after(0, 10)), None, "empty: ask the database");
        tail.extend((5..=8).map(event).map(Arc::new));
        assert_eq!(seqs(tail.after(3, 10)), None, "event 4 is not here");
        assert_eq!(seqs(tail.after(4, 10)), Some(vec![5, 6, 7, 8]));
        assert_eq!(seqs(tail.after(5, 2)), Some(vec![6, 7]));
        assert_eq!(seqs(tail.after(8, 10)), Some(vec![]), "up to date");
    }

    #[test]
    fn a_gap_or_the_cap_drops_the_oldest() {
        let tail = Tail::default();
        tail.extend((1..=3).map(event).map(Arc::new));
        tail.extend([Arc::new(event(5))]); // a hole at 4
        assert_eq!(seqs(tail.after(3, 10)), None);
        assert_eq!(seqs(tail.after(4, 10)), Some(vec![5]));
        tail.extend((6..=(5 + CAP as u64)).map(event).map(Arc::new));
        assert_eq!(seqs(tail.after(5, 1)), Some(vec![6]), "holds CAP events");
        assert_eq!(seqs(tail.after(4, 1)), None, "event 5 was dropped");
        tail.clear();
        assert_eq!(seqs(tail.after(10, 1)), None);
    }
}
