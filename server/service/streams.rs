//! Stream semantics, in domain terms: `Witness::subscribe` (every decision
//! the caller may see) and `Witness::watch` (one decision until it closes).
//! Every stream follows one rule: subscribe to the hub, read from the log
//! whatever came after the cursor, then forward live events; the cursor
//! (the last sequence handled) makes the switch free of gaps and
//! duplicates. A subscriber that falls behind the hub's ring is ended with
//! [`ServiceError::Lagged`] naming the sequence to resume after.
//!
//! A stream is polled by the connection's own task, with no task or queue
//! of its own: an event reaches a subscriber with one wake-up, a subscriber
//! that stops reading stops being polled (HTTP/2 flow control bounds what
//! is queued for it), and a client that disconnects drops its subscription
//! at once. Items are shared (`Arc<Published>`), so a protocol layer can
//! encode each event once for all subscribers.

use super::visibility::{Filter, Visibility};
use super::{ServiceError, Witness};
use crate::auth::Principal;
use crate::core::{Decision, Micros};
use crate::hub::{Hub, Published};
use async_stream::try_stream;
use futures::Stream;
use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::{broadcast, watch};

/// One item of a decision stream.
#[derive(Debug, Clone)]
pub enum StreamItem {
    /// A committed event with the decision's state after it, shared by
    /// every subscriber that receives it.
    Event(Arc<Published>),
    /// A decision's current state: the open snapshot of `subscribe`, or
    /// the first item of `watch`.
    Snapshot(Box<Decision>),
    /// The end of the open snapshot: `head` is the log position it shows
    /// (resume after it to lose nothing).
    SnapshotEnd { head: u64, at: Micros },
}

/// A stream of decision items, ended by an error when it fails.
pub type DomainStream = Pin<Box<dyn Stream<Item = Result<StreamItem, ServiceError>> + Send>>;

/// What a `subscribe` asks for.
#[derive(Debug, Clone, Default)]
pub struct SubscribeQuery {
    /// Resume after this sequence (exactly: no gap, no duplicate).
    pub after: Option<u64>,
    /// Kind globs; empty: every kind.
    pub kinds: Vec<String>,
    /// Surfaces; empty: every surface.
    pub surfaces: Vec<String>,
    /// Without `after`: first the open decisions, then `SnapshotEnd`.
    pub include_open: bool,
}

/// Why a stream ended that the client should simply reopen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interruption {
    /// The store cannot be read (the hub said so).
    StoreUnavailable,
    /// The server is shutting down.
    ShuttingDown,
}

impl fmt::Display for Interruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Interruption::StoreUnavailable => "store unavailable",
            Interruption::ShuttingDown => "server shutting down",
        })
    }
}

/// How to reopen an interrupted stream, for the error message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reopen {
    /// `StreamDecisions` with `after_sequence` set to this.
    After(u64),
    /// `WatchDecision` again (it starts with the current state).
    Watch,
}

impl fmt::Display for Reopen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reopen::After(n) => write!(f, "reconnect with after_sequence = {n}"),
            Reopen::Watch => f.write_str("watch again"),
        }
    }
}

const CATCH_UP_BATCH: usize = 500;

/// Follows the log from a cursor: from the store while behind, then from
/// the hub's ring; back to the store whenever the ring shows a hole.
struct Follower {
    hub: Arc<Hub>,
    cursor: u64,
    backlog: VecDeque<Arc<Published>>,
    /// None until the first catch-up is done; subscribing only then keeps a
    /// long backlog from overrunning the ring.
    live: Option<broadcast::Receiver<Arc<Published>>>,
    /// Still reading the log (also after subscribing, to close the window).
    reading: bool,
    health: watch::Receiver<bool>,
}

impl Follower {
    fn new(hub: Arc<Hub>, cursor: u64) -> Follower {
        let health = hub.health();
        Follower {
            hub,
            cursor,
            backlog: VecDeque::new(),
            live: None,
            reading: true,
            health,
        }
    }

    /// The next event after the cursor, in sequence order.
    async fn next(&mut self) -> Result<Arc<Published>, ServiceError> {
        loop {
            if let Some(p) = self.backlog.pop_front() {
                self.cursor = p.event.sequence;
                return Ok(p);
            }
            if self.reading {
                self.read_log().await?;
                continue;
            }
            let Some(live) = self.live.as_mut() else {
                self.reading = true;
                continue;
            };
            let reopen = Reopen::After(self.cursor);
            let received = tokio::select! {
                _ = self.health.wait_for(|ok| !ok) => return Err(ServiceError::Interrupted {
                    why: Interruption::StoreUnavailable,
                    reopen,
                }),
                r = live.recv() => r,
            };
            match received {
                Ok(p) if p.event.sequence <= self.cursor => {}
                Ok(p) if p.event.sequence == self.cursor + 1 => self.backlog.push_back(p),
                // A hole can only mean this receiver missed something: the log has it.
                Ok(_) => self.reading = true,
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    return Err(ServiceError::Lagged {
                        resume_after: self.cursor,
                        ring: self.hub.ring(),
                    })
                }
                Err(broadcast::error::RecvError::Closed) => {
                    return Err(ServiceError::Interrupted {
                        why: Interruption::ShuttingDown,
                        reopen,
                    })
                }
            }
        }
    }

    /// Reads the next batch after the cursor from the store; once the store
    /// has nothing more, subscribes (first time) or switches to live.
    async fn read_log(&mut self) -> Result<(), ServiceError> {
        let batch = self.hub.read_after(self.cursor, CATCH_UP_BATCH).await?;
        if batch.len() < CATCH_UP_BATCH {
            match self.live {
                None => self.live = Some(self.hub.subscribe()),
                Some(_) => self.reading = false,
            }
        }
        self.backlog.extend(batch.into_iter().map(Arc::new));
        Ok(())
    }
}

impl Witness {
    /// Refuses a resume point beyond the log head: the client saw events
    /// this log does not have (another server, or a restored backup).
    async fn check_resume(&self, after: u64) -> Result<(), ServiceError> {
        if after <= self.hub.published() {
            return Ok(());
        }
        let head = self.store.head().await?;
        if after > head {
            return Err(ServiceError::BeyondHead { after, head });
        }
        Ok(())
    }

    /// Every event the caller may see (narrowed by `q`), from the point `q`
    /// names: after a sequence, after a snapshot of the open decisions, or
    /// from this call on. Holds one of the caller's stream slots until the
    /// stream is dropped.
    pub async fn subscribe(
        &self,
        who: &Principal,
        q: SubscribeQuery,
    ) -> super::Result<DomainStream> {
        let filter = Filter::new(
            Visibility::current(who.clone(), self.live.clone()),
            &q.kinds,
            q.surfaces,
            &self.limits(),
        )?;
        if let Some(after) = q.after {
            self.check_resume(after).await?;
        }
        let slot = self.limiter.open_stream(&who.name)?;
        let (hub, store) = (self.hub.clone(), self.store.clone());
        // "From now on" means after every write acknowledged before this
        // call: the committed head (set before any reply is sent), not the
        // hub's published position, which trails it by a read.
        let live_from = (*store.commits().borrow()).max(hub.published());
        Ok(Box::pin(try_stream! {
            let _slot = slot; // held until the stream is dropped
            let cursor = if let Some(after) = q.after {
                after
            } else if q.include_open {
                let (open, head) = store.open_snapshot().await?;
                for d in open.into_iter().filter(|d| filter.allows(d)) {
                    yield StreamItem::Snapshot(Box::new(d));
                }
                yield StreamItem::SnapshotEnd { head, at: crate::store::now_micros() };
                head
            } else {
                live_from
            };
            let mut follower = Follower::new(hub, cursor);
            loop {
                let p = follower.next().await?;
                if filter.allows(&p.decision) {
                    yield StreamItem::Event(p);
                }
            }
        }))
    }

    /// One decision the caller may see: its current state, each change,
    /// and the end after the terminal event. NOT_FOUND when the caller may
    /// not see it (as `get`).
    pub async fn watch(&self, who: &Principal, id: String) -> super::Result<DomainStream> {
        // Subscribed before reading the state, so no change falls between.
        let mut live = self.hub.subscribe();
        let mut health = self.hub.health();
        let current = self.get(who, &id).await?;
        let slot = self.limiter.open_stream(&who.name)?;
        let hub = self.hub.clone();
        // Re-checked at each change: a reload may take the role away.
        let visibility = Visibility::current(who.clone(), self.live.clone());
        let interrupted = |why| ServiceError::Interrupted {
            why,
            reopen: Reopen::Watch,
        };
        Ok(Box::pin(try_stream! {
            let _slot = slot; // held until the stream is dropped
            let mut cursor = current.last_sequence;
            let mut terminal = current.status.is_terminal();
            yield StreamItem::Snapshot(Box::new(current));
            let mut backlog: VecDeque<Arc<Published>> = VecDeque::new();
            if !terminal {
                backlog.extend(hub.decision_after(&id, cursor).await?.into_iter().map(Arc::new));
            }
            while !terminal {
                if let Some(p) = backlog.pop_front() {
                    if !visibility.sees(&p.decision) {
                        Err(ServiceError::NotFound(id.clone()))?;
                    }
                    if p.event.sequence > cursor {
                        cursor = p.event.sequence;
                        terminal = p.decision.status.is_terminal();
                        yield StreamItem::Event(p);
                    }
                    continue;
                }
                let received = tokio::select! {
                    _ = health.wait_for(|ok| !ok) => None,
                    r = live.recv() => Some(r),
                };
                match received {
                    Some(Ok(p)) if p.event.decision_id == id => backlog.push_back(p),
                    Some(Ok(_)) => {}
                    // Watching one decision never makes a consumer slow: re-read it.
                    Some(Err(broadcast::error::RecvError::Lagged(_))) => {
                        let missed = hub.decision_after(&id, cursor).await?;
                        backlog = missed.into_iter().map(Arc::new).collect();
                    }
                    Some(Err(broadcast::error::RecvError::Closed)) => {
                        Err(interrupted(Interruption::ShuttingDown))?
                    }
                    None => Err(interrupted(Interruption::StoreUnavailable))?,
                }
            }
        }))
    }
}
