//! Server streams. Every stream follows the same rule: subscribe to the hub,
//! read from the log whatever came after the cursor, then forward live
//! events; the cursor (the last sequence handled) makes the switch free of
//! gaps and duplicates. A subscriber that falls behind the hub's ring is
//! ended with RESOURCE_EXHAUSTED naming the sequence to resume after.
//!
//! A stream is polled by the connection's own task, with no task or queue
//! of its own: an event reaches a subscriber with one wake-up, a subscriber
//! that stops reading stops being polled (HTTP/2 flow control bounds what
//! is queued for it), and a client that disconnects drops its subscription
//! at once.

use super::convert;
use crate::auth::Principal;
use crate::core::policy::KindGlobs;
use crate::core::Decision;
use crate::hub::{Hub, Published};
use crate::proto;
use crate::service::{ServiceError, Witness};
use async_stream::try_stream;
use futures::Stream;
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::{broadcast, watch};
use tonic::Status;

/// A stream of decision events, ended by an error status when it fails.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<proto::DecisionEvent, Status>> + Send>>;

/// What a subscriber sees.
struct Filter {
    who: Principal,
    kinds: KindGlobs,
    surfaces: Vec<String>,
}

impl Filter {
    fn allows(&self, d: &Decision) -> bool {
        d.visible_to(&self.who.name, &self.who.roles)
            && self.kinds.allows(&d.kind)
            && (self.surfaces.is_empty() || d.surfaces.iter().any(|s| self.surfaces.contains(s)))
    }
}

const CATCH_UP_BATCH: usize = 500;

fn event(p: &Published) -> proto::DecisionEvent {
    proto::DecisionEvent {
        sequence: p.event.sequence,
        r#type: convert::event_type(&p.event.kind) as i32,
        decision: Some(convert::decision(&p.decision)),
        at: Some(convert::timestamp(p.event.at)),
        snapshot: false,
    }
}

fn state_event(d: &Decision) -> proto::DecisionEvent {
    proto::DecisionEvent {
        sequence: d.last_sequence,
        r#type: d
            .last_event_type
            .map_or(proto::EventType::Unspecified, convert::event_type_of) as i32,
        decision: Some(convert::decision(d)),
        at: Some(convert::timestamp(d.updated_at)),
        snapshot: true,
    }
}

fn snapshot_end(head: u64) -> proto::DecisionEvent {
    proto::DecisionEvent {
        sequence: head,
        r#type: proto::EventType::SnapshotEnd as i32,
        decision: None,
        at: Some(convert::timestamp(crate::store::now_micros())),
        snapshot: true,
    }
}

fn unavailable(e: crate::store::StoreError) -> Status {
    ServiceError::from(e).into()
}

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
    async fn next(&mut self) -> Result<Arc<Published>, Status> {
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
            let cursor = self.cursor;
            let received = tokio::select! {
                _ = self.health.wait_for(|ok| !ok) => return Err(Status::unavailable(format!(
                    "store unavailable; reconnect with after_sequence = {cursor}"
                ))),
                r = live.recv() => r,
            };
            match received {
                Ok(p) if p.event.sequence <= cursor => {}
                Ok(p) if p.event.sequence == cursor + 1 => self.backlog.push_back(p),
                // A hole can only mean this receiver missed something: the log has it.
                Ok(_) => self.reading = true,
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    return Err(Status::resource_exhausted(format!(
                        "stream consumer too slow: it fell more than {} events behind; reconnect with after_sequence = {cursor}",
                        self.hub.ring()
                    )))
                }
                Err(broadcast::error::RecvError::Closed) => {
                    return Err(Status::unavailable(format!(
                        "server shutting down; reconnect with after_sequence = {cursor}"
                    )))
                }
            }
        }
    }

    /// Reads the next batch after the cursor from the store; once the store
    /// has nothing more, subscribes (first time) or switches to live.
    async fn read_log(&mut self) -> Result<(), Status> {
        let batch = self
            .hub
            .read_after(self.cursor, CATCH_UP_BATCH)
            .await
            .map_err(unavailable)?;
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

/// Refuses a resume point beyond the log head: the client saw events this
/// log does not have (another server, or a restored backup).
async fn check_resume(w: &Witness, after: u64) -> Result<(), Status> {
    if after <= w.hub.published() {
        return Ok(());
    }
    let head = w.store.head().await.map_err(unavailable)?;
    if after > head {
        return Err(Status::out_of_range(format!(
            "after_sequence: {after} is beyond the log head {head}; this log never had those events"
        )));
    }
    Ok(())
}

/// Starts a `StreamDecisions` subscription.
pub async fn stream_decisions(
    w: &Arc<Witness>,
    who: Principal,
    req: proto::StreamDecisionsRequest,
) -> Result<EventStream, Status> {
    let kinds = KindGlobs::new("kinds", &req.kinds)?;
    if let Some(after) = req.after_sequence {
        check_resume(w, after).await?;
    }
    let slot = w
        .limiter
        .open_stream(&who.name)
        .map_err(ServiceError::from)?;
    let filter = Filter {
        who,
        kinds,
        surfaces: req.surfaces,
    };
    let w = w.clone();
    // "From now on" means from this call, not from when the stream is first polled.
    let live_from = w.hub.published();
    Ok(Box::pin(try_stream! {
        let _slot = slot; // held until the stream is dropped
        let cursor = if let Some(after) = req.after_sequence {
            after
        } else if req.include_open {
            let (open, head) = w.store.open_snapshot().await.map_err(unavailable)?;
            for d in open.iter().filter(|d| filter.allows(d)) {
                yield state_event(d);
            }
            yield snapshot_end(head);
            head
        } else {
            live_from
        };
        let mut follower = Follower::new(w.hub.clone(), cursor);
        loop {
            let p = follower.next().await?;
            if filter.allows(&p.decision) {
                yield event(&p);
            }
        }
    }))
}

/// Starts a `WatchDecision` stream: current state, each change, and the end
/// after the terminal event.
pub async fn watch_decision(
    w: &Arc<Witness>,
    who: Principal,
    id: String,
) -> Result<EventStream, Status> {
    // Subscribed before reading the state, so no change falls between.
    let mut live = w.hub.subscribe();
    let mut health = w.hub.health();
    let current = w.get(&who, &id).await?;
    let slot = w
        .limiter
        .open_stream(&who.name)
        .map_err(ServiceError::from)?;
    let hub = w.hub.clone();
    Ok(Box::pin(try_stream! {
        let _slot = slot; // held until the stream is dropped
        yield state_event(&current);
        let mut cursor = current.last_sequence;
        let mut terminal = current.status.is_terminal();
        let mut backlog = VecDeque::new();
        if !terminal {
            backlog.extend(hub.decision_after(&id, cursor).await.map_err(unavailable)?);
        }
        while !terminal {
            if let Some(p) = backlog.pop_front() {
                if p.event.sequence > cursor {
                    cursor = p.event.sequence;
                    terminal = p.decision.status.is_terminal();
                    yield event(&p);
                }
                continue;
            }
            let received = tokio::select! {
                _ = health.wait_for(|ok| !ok) => None,
                r = live.recv() => Some(r),
            };
            match received {
                Some(Ok(p)) if p.event.decision_id == id => backlog.push_back((*p).clone()),
                Some(Ok(_)) => {}
                // Watching one decision never makes a consumer slow: re-read it.
                Some(Err(broadcast::error::RecvError::Lagged(_))) => {
                    backlog = VecDeque::from(hub.decision_after(&id, cursor).await.map_err(unavailable)?)
                }
                Some(Err(broadcast::error::RecvError::Closed)) => {
                    Err(Status::unavailable("server shutting down; watch again"))?
                }
                None => Err(Status::unavailable("store unavailable; watch again"))?,
            }
        }
    }))
}
