//! Who sees which decision: the one place that decides, for reads, lists
//! and streams alike, over the pure core's rule (`Decision::visible_to`: the
//! asker, and anyone holding one of its authorized roles). Every layer
//! (gRPC, Connect, the console, `/v1/`) reads through the service, which
//! asks this module.

use crate::auth::Principal;
use crate::core::policy::KindGlobs;
use crate::core::schema::Limits;
use crate::core::{Decision, Refusal};

/// Which decisions a reader may see.
#[derive(Debug, Clone)]
pub struct Visibility {
    who: Principal,
    /// v0.1.1's dev-mode trust model: every decision (see `http::v01`).
    everything: bool,
    /// For a stream: the live config, whose roles for `who` apply to each
    /// decision as it passes (a reload that takes a role away applies at
    /// once). None: `who`'s roles as authenticated.
    live: Option<super::LiveHandle>,
}

impl Visibility {
    /// What `who` may see under witness's rule.
    pub fn of(who: Principal) -> Visibility {
        Visibility {
            who,
            everything: false,
            live: None,
        }
    }

    /// What `who` may see under the config in force at each check.
    pub fn current(who: Principal, live: super::LiveHandle) -> Visibility {
        Visibility {
            who,
            everything: false,
            live: Some(live),
        }
    }

    /// v0.1.1's rule on its `/v1/` routes: in dev mode every caller reads
    /// every decision (it could claim any name and role anyway); with
    /// principals configured, witness's rule.
    pub fn v01(who: Principal, dev_mode: bool) -> Visibility {
        Visibility {
            who,
            everything: dev_mode,
            live: None,
        }
    }

    /// Whether the reader may see `d`.
    pub fn sees(&self, d: &Decision) -> bool {
        if self.everything {
            return true;
        }
        match &self.live {
            None => d.visible_to(&self.who.name, &self.who.roles),
            Some(live) => super::live::with_current_roles(live, &self.who, |roles| {
                d.visible_to(&self.who.name, roles)
            }),
        }
    }

    /// The reader.
    pub fn who(&self) -> &Principal {
        &self.who
    }
}

/// What one subscriber receives: what it may see, narrowed by the kinds and
/// surfaces it asked for.
#[derive(Debug, Clone)]
pub struct Filter {
    visibility: Visibility,
    kinds: KindGlobs,
    surfaces: Vec<String>,
}

impl Filter {
    /// `kinds` are globs (refused when malformed); empty `kinds` or
    /// `surfaces` narrow nothing. Both are lists under `max_list_len`.
    pub fn new(
        visibility: Visibility,
        kinds: &[String],
        surfaces: Vec<String>,
        limits: &Limits,
    ) -> Result<Filter, Refusal> {
        limits.check_list("kinds", kinds)?;
        limits.check_list("surfaces", &surfaces)?;
        Ok(Filter {
            visibility,
            kinds: KindGlobs::new("kinds", kinds)?,
            surfaces,
        })
    }

    /// Whether the subscriber receives `d`.
    pub fn allows(&self, d: &Decision) -> bool {
        self.visibility.sees(d)
            && self.kinds.allows(&d.kind)
            && (self.surfaces.is_empty() || d.surfaces.iter().any(|s| self.surfaces.contains(s)))
    }
}
