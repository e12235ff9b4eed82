//! The part of the service a reload swaps (DESIGN §9): identities,
//! policies, webhook names and request limits, as one value behind an
//! `ArcSwap`. A request reads one snapshot and finishes under it; the next
//! request sees the new one. Streams hold the handle, not a snapshot, so a
//! principal's roles are looked up afresh for every event they may receive.

use crate::auth::{Auth, Principal};
use crate::core::policy::Policies;
use crate::core::schema::Limits;
use arc_swap::ArcSwap;
use std::sync::Arc;

/// One generation of the reloadable config.
#[derive(Debug)]
pub struct Live {
    pub auth: Auth,
    pub policies: Policies,
    /// Names of the configured webhooks (surfaces notified through the outbox).
    pub webhooks: Vec<String>,
    pub limits: Limits,
}

/// The current generation, shared with open streams.
pub type LiveHandle = Arc<ArcSwap<Live>>;

/// The identity table of one generation (derefs to [`Auth`]).
#[derive(Debug)]
pub struct LiveAuth(pub(super) Arc<Live>);

impl std::ops::Deref for LiveAuth {
    type Target = Auth;
    fn deref(&self) -> &Auth {
        &self.0.auth
    }
}

/// Whether `who`, with the roles the current generation gives it, passes
/// `check` (false when the current config no longer knows it).
pub(super) fn with_current_roles(
    live: &LiveHandle,
    who: &Principal,
    check: impl FnOnce(&[String]) -> bool,
) -> bool {
    live.load()
        .auth
        .roles_now(who)
        .is_some_and(|roles| check(&roles))
}
