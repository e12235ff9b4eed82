//! Server streams. Every stream follows the same rule: subscribe to the hub,
//! read from the log whatever came after the cursor, then forward live
//! events; the cursor (the last sequence handled) makes the switch free of
//! gaps and duplicates. A subscriber that falls behind the hub's ring is
//! ended with RESOURCE_EXHAUSTED naming the sequence to resume after.

use super::convert;
use crate::auth::Principal;
use crate::core::policy::KindGlobs;
use crate::core::Decision;
use crate::hub::{Hub, Published};
use crate::proto;
use crate::service::{ServiceError, Witness};
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc};
use tonic::Status;

/// What a subscriber sees.
pub struct Filter {
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

type Out = mpsc::Sender<Result<proto::DecisionEvent, Status>>;

/// Why a stream ends early: the client left, or with a status to send.
enum End {
    Gone,
    Status(Status),
}

impl From<ServiceError> for End {
    fn from(e: ServiceError) -> End {
        End::Status(e.into())
    }
}

impl From<crate::store::StoreError> for End {
    fn from(e: crate::store::StoreError) -> End {
        ServiceError::from(e).into()
    }
}

const CATCH_UP_BATCH: usize = 500;

fn event(p: &Published, snapshot: bool) -> proto::DecisionEvent {
    proto::DecisionEvent {
        sequence: p.event.sequence,
        r#type: convert::event_type(&p.event.kind) as i32,
        decision: Some(convert::decision(&p.decision)),
        at: Some(convert::timestamp(p.event.at)),
        snapshot,
    }
}

fn state_event(d: &Decision) -> proto::DecisionEvent {
    proto::DecisionEvent {
        sequence: d.last_sequence,
        r#type: convert::event_type_from_name(&d.last_event_type) as i32,
        decision: Some(convert::decision(d)),
        at: Some(convert::timestamp(d.updated_at)),
        snapshot: true,
    }
}

async fn send(out: &Out, e: proto::DecisionEvent) -> Result<(), End> {
    out.send(Ok(e)).await.map_err(|_| End::Gone)
}

fn spawn<F>(
    buffer: usize,
    work: impl FnOnce(Out) -> F,
) -> mpsc::Receiver<Result<proto::DecisionEvent, Status>>
where
    F: std::future::Future<Output = Result<(), End>> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(buffer);
    let fut = work(tx.clone());
    tokio::spawn(async move {
        if let Err(End::Status(status)) = fut.await {
            let _ = tx.send(Err(status)).await;
        }
    });
    rx
}

/// Starts a `StreamDecisions` subscription.
pub fn stream_decisions(
    w: &Arc<Witness>,
    who: Principal,
    req: proto::StreamDecisionsRequest,
) -> Result<mpsc::Receiver<Result<proto::DecisionEvent, Status>>, Status> {
    let kinds = KindGlobs::new("kinds", &req.kinds)?;
    let slot = w
        .limiter
        .open_stream(&who.name)
        .map_err(ServiceError::from)?;
    let filter = Filter {
        who,
        kinds,
        surfaces: req.surfaces,
    };
    let (w, hub) = (w.clone(), w.hub.clone());
    // "From now on" means from this call, not from when the task first runs.
    let live_from = hub.published();
    Ok(spawn(w.streams.subscriber_buffer, move |out| async move {
        let _slot = slot; // held until the stream ends
        let cursor = if req.after_sequence > 0 {
            req.after_sequence
        } else if req.include_open {
            let (open, head) = w.store.open_snapshot().await?;
            for d in open.iter().filter(|d| filter.allows(d)) {
                send(&out, state_event(d)).await?;
            }
            let end = proto::DecisionEvent {
                sequence: head,
                r#type: proto::EventType::SnapshotEnd as i32,
                decision: None,
                at: Some(convert::timestamp(crate::store::now_micros())),
                snapshot: true,
            };
            send(&out, end).await?;
            head
        } else {
            live_from
        };
        follow(&hub, &filter, cursor, &out).await
    }))
}

/// Sends events after `cursor` from the log, then live ones, forever.
async fn follow(hub: &Hub, filter: &Filter, mut cursor: u64, out: &Out) -> Result<(), End> {
    // Bulk catch-up before subscribing keeps a long backlog from overrunning
    // the ring; the second pass after subscribing closes the window.
    catch_up(hub, filter, &mut cursor, out).await?;
    let mut rx = hub.subscribe();
    let mut health = hub.health();
    catch_up(hub, filter, &mut cursor, out).await?;
    loop {
        let received = tokio::select! {
            _ = out.closed() => return Err(End::Gone),
            _ = health.wait_for(|ok| !ok) => return Err(End::Status(Status::unavailable(format!(
                "store unavailable; reconnect with after_sequence = {cursor}"
            )))),
            r = rx.recv() => r,
        };
        match received {
            Ok(p) if p.event.sequence <= cursor => {}
            Ok(p) if p.event.sequence == cursor + 1 => {
                cursor = p.event.sequence;
                if filter.allows(&p.decision) {
                    send(out, event(&p, false)).await?;
                }
            }
            // A hole can only mean this receiver missed something: the log has it.
            Ok(_) => catch_up(hub, filter, &mut cursor, out).await?,
            Err(broadcast::error::RecvError::Lagged(_)) => {
                return Err(End::Status(Status::resource_exhausted(format!(
                    "stream consumer too slow: it fell more than {} events behind; reconnect with after_sequence = {cursor}",
                    hub.ring()
                ))))
            }
            Err(broadcast::error::RecvError::Closed) => {
                return Err(End::Status(Status::unavailable(format!(
                    "server shutting down; reconnect with after_sequence = {cursor}"
                ))))
            }
        }
    }
}

async fn catch_up(hub: &Hub, filter: &Filter, cursor: &mut u64, out: &Out) -> Result<(), End> {
    loop {
        let batch = hub.read_after(*cursor, CATCH_UP_BATCH).await?;
        for p in &batch {
            *cursor = p.event.sequence;
            if filter.allows(&p.decision) {
                send(out, event(p, false)).await?;
            }
        }
        if batch.len() < CATCH_UP_BATCH {
            return Ok(());
        }
    }
}

/// Starts a `WatchDecision` stream: current state, each change, and the end
/// after the terminal event.
pub async fn watch_decision(
    w: &Arc<Witness>,
    who: Principal,
    id: String,
) -> Result<mpsc::Receiver<Result<proto::DecisionEvent, Status>>, Status> {
    let hub = w.hub.clone();
    let mut rx = hub.subscribe();
    let mut health = hub.health();
    let current = w.get(&who, &id).await?;
    let slot = w
        .limiter
        .open_stream(&who.name)
        .map_err(ServiceError::from)?;
    Ok(spawn(w.streams.subscriber_buffer, move |out| async move {
        let _slot = slot; // held until the stream ends
        send(&out, state_event(&current)).await?;
        if current.status.is_terminal() {
            return Ok(());
        }
        let mut cursor = current.last_sequence;
        let mut backlog = hub.decision_after(&id, cursor).await?;
        loop {
            for p in backlog.drain(..) {
                if p.event.sequence <= cursor {
                    continue;
                }
                cursor = p.event.sequence;
                send(&out, event(&p, false)).await?;
                if p.decision.status.is_terminal() {
                    return Ok(());
                }
            }
            let received = tokio::select! {
                _ = out.closed() => return Err(End::Gone),
                _ = health.wait_for(|ok| !ok) => {
                    return Err(End::Status(Status::unavailable("store unavailable; watch again")))
                }
                r = rx.recv() => r,
            };
            match received {
                Ok(p) if p.event.decision_id == id => backlog.push((*p).clone()),
                Ok(_) => {}
                // Watching one decision never makes a consumer slow: re-read it.
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    backlog = hub.decision_after(&id, cursor).await?
                }
                Err(broadcast::error::RecvError::Closed) => {
                    return Err(End::Status(Status::unavailable(
                        "server shutting down; watch again",
                    )))
                }
            }
        }
    }))
}
