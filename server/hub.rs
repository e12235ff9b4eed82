//! The event hub: one per process. It follows the store's commits (a
//! wake-up, then a read by sequence, so a missed wake-up is caught up),
//! computes each decision's state after each event with the pure core, and
//! fans the result out to every subscriber through one bounded broadcast
//! ring: no database query per subscriber, bounded memory, and a subscriber
//! that falls behind the ring is told so instead of stalling the others.

use crate::core::{apply, Decision, Event};
use crate::store::{Result, Store, StoreError};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::{broadcast, watch};

/// An event with the decision's state after it.
#[derive(Debug, Clone)]
pub struct Published {
    pub event: Event,
    pub decision: Decision,
    /// The protocol layer's encoding of this item, built on first use and
    /// shared by every subscriber that receives it (one encoding per event,
    /// not per subscriber).
    encoded: OnceLock<Bytes>,
}

impl Published {
    pub fn new(event: Event, decision: Decision) -> Published {
        Published {
            event,
            decision,
            encoded: OnceLock::new(),
        }
    }

    /// The encoding `encode` makes of this item, made at most once.
    pub fn encoded(&self, encode: impl FnOnce(&Published) -> Bytes) -> Bytes {
        self.encoded.get_or_init(|| encode(self)).clone()
    }
}

/// Equal when event and state are: the cached encoding is derived.
impl PartialEq for Published {
    fn eq(&self, other: &Published) -> bool {
        self.event == other.event && self.decision == other.decision
    }
}

const READ_BATCH: usize = 1000;
/// Open decisions whose state the hub keeps to avoid re-reading them. At
/// 100,000 it held every open decision of a 100k-ask run (~2 KB each, the
/// bulk of the server's 220 MB); past the limit the cache starts over and a
/// decision's next event rebuilds its state from its own events once.
const CACHE_LIMIT: usize = 4_096;

/// Fans committed events out to stream subscribers.
#[derive(Debug)]
pub struct Hub {
    store: Arc<dyn Store>,
    tx: broadcast::Sender<Arc<Published>>,
    published: watch::Receiver<u64>,
    healthy: watch::Receiver<bool>,
    ring: usize,
}

impl Hub {
    /// Starts following `store` from its current head; `ring` events are
    /// kept for subscribers that are briefly behind.
    pub fn start(store: Arc<dyn Store>, ring: usize) -> Arc<Hub> {
        let ring = ring.max(1);
        let (tx, _) = broadcast::channel(ring);
        let commits = store.commits();
        let head = *commits.borrow();
        let (published_tx, published) = watch::channel(head);
        let (healthy_tx, healthy) = watch::channel(true);
        let hub = Arc::new(Hub {
            store: store.clone(),
            tx: tx.clone(),
            published,
            healthy,
            ring,
        });
        tokio::spawn(follow(store, commits, tx, published_tx, healthy_tx, head));
        hub
    }

    /// A receiver of every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Published>> {
        self.tx.subscribe()
    }

    /// Flips to false while the store cannot be read, so that streams end
    /// with UNAVAILABLE instead of hanging.
    pub fn health(&self) -> watch::Receiver<bool> {
        self.healthy.clone()
    }

    /// How many events a subscriber may fall behind before it is ended.
    pub fn ring(&self) -> usize {
        self.ring
    }

    /// The sequence of the latest published event.
    pub fn published(&self) -> u64 {
        *self.published.borrow()
    }

    /// Reads events after `after` from the store with their states, for
    /// resuming streams (at most `limit`).
    pub async fn read_after(&self, after: u64, limit: usize) -> Result<Vec<Published>> {
        let events = self.store.events_after(after, limit).await?;
        let mut states = HashMap::new();
        with_states(self.store.as_ref(), &mut states, events).await
    }

    /// Every event of one decision after `after`, with its states.
    pub async fn decision_after(&self, id: &str, after: u64) -> Result<Vec<Published>> {
        let mut state = None;
        let mut out = Vec::new();
        for event in self.store.decision_events(id).await? {
            let d = apply(state, &event).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            state = Some(d.clone());
            if event.sequence > after {
                out.push(Published::new(event, d));
            }
        }
        Ok(out)
    }
}

/// Computes the state after each event; `states` caches decisions.
async fn with_states(
    store: &dyn Store,
    states: &mut HashMap<String, Decision>,
    events: Vec<Event>,
) -> Result<Vec<Published>> {
    let mut out = Vec::with_capacity(events.len());
    for event in events {
        let before = match states.remove(&event.decision_id) {
            Some(d) => Some(d),
            None if matches!(event.kind, crate::core::EventKind::Created { .. }) => None,
            None => state_before(store, &event).await?,
        };
        let d = apply(before, &event).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        if states.len() >= CACHE_LIMIT {
            states.clear();
        }
        if !d.status.is_terminal() {
            states.insert(d.id.clone(), d.clone());
        }
        out.push(Published::new(event, d));
    }
    Ok(out)
}

/// Rebuilds a decision's state just before `event` from its own events.
async fn state_before(store: &dyn Store, event: &Event) -> Result<Option<Decision>> {
    let mut state = None;
    for e in store.decision_events(&event.decision_id).await? {
        if e.sequence >= event.sequence {
            break;
        }
        state = Some(apply(state, &e).map_err(|err| StoreError::Corrupt(err.to_string()))?);
    }
    Ok(state)
}

async fn follow(
    store: Arc<dyn Store>,
    mut commits: watch::Receiver<u64>,
    tx: broadcast::Sender<Arc<Published>>,
    published: watch::Sender<u64>,
    healthy: watch::Sender<bool>,
    mut head: u64,
) {
    let mut states = HashMap::new();
    let mut last_read = tokio::time::Instant::now();
    loop {
        // Wake on a commit, or every second in case a wake-up was missed
        // (another replica's commit, a dropped notification).
        let woke = tokio::time::timeout(Duration::from_secs(1), commits.changed()).await;
        if matches!(woke, Ok(Err(_))) {
            return; // the store is gone
        }
        // Nobody subscribed: rebuilding states for no one is wasted work
        // (a tenth of an Ask's CPU). A subscriber arriving later reads the
        // log up to where it went live (`Follower`), so skipping loses it
        // nothing; the states cache is dropped, as it is now stale. A read
        // at least once a second still keeps `health` current. The head is
        // taken before the count: a subscriber not counted yet reads the
        // log after subscribing, so it reads at least up to that head.
        let committed = *commits.borrow_and_update();
        if tx.receiver_count() == 0 && last_read.elapsed() < Duration::from_secs(1) {
            if committed > head {
                head = committed;
                states.clear();
                published.send_replace(head);
            }
            continue;
        }
        last_read = tokio::time::Instant::now();
        loop {
            let events = match store.events_after(head, READ_BATCH).await {
                Ok(events) => {
                    healthy.send_if_modified(|h| !std::mem::replace(h, true));
                    events
                }
                Err(e) => {
                    if healthy.send_if_modified(|h| std::mem::replace(h, false)) {
                        tracing::warn!(error = %e, "hub cannot read events; retrying");
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            let n = events.len();
            match with_states(store.as_ref(), &mut states, events).await {
                Ok(batch) => {
                    for p in batch {
                        head = p.event.sequence;
                        // No receivers is fine: nobody is listening.
                        let _ = tx.send(Arc::new(p));
                    }
                    published.send_replace(head);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "hub cannot rebuild state; retrying");
                    states.clear();
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            }
            if n < READ_BATCH {
                break;
            }
        }
    }
}
