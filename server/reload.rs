//! Reloading the config without a restart (DESIGN §9): SIGHUP re-reads the
//! file and the environment, validates all of it, and swaps principals,
//! issuers, policies, webhooks, request limits and `[auth]` at once. A file
//! that fails validation, or that changes a key only a restart can apply,
//! changes nothing: the old config keeps running, the log says why and
//! `witness_config_reloads_total{result="refused"}` counts it.
//! `witness config check FILE` runs the same checks offline and prints what
//! a reload would change.

use crate::auth::session::Sessions;
use crate::auth::Auth;
use crate::config::{Config, ConfigError, WebhookConfig};
use crate::core::policy::Policies;
use crate::service::{Live, Witness};
use arc_swap::ArcSwap;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;

/// Why a config cannot be applied.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Auth(#[from] crate::auth::AuthSetupError),
    #[error("{}", .0.message)]
    Policy(crate::core::Refusal),
    /// Keys whose change only a restart applies.
    #[error("{} changed; that needs a restart (the running config is unchanged)", .0.join(", "))]
    NeedsRestart(Vec<String>),
}

/// The webhooks the outbox delivers to, swapped by a reload.
pub type Hooks = Arc<ArcSwap<Vec<WebhookConfig>>>;

/// Reloadable sections of the config; every other top-level key needs a
/// restart.
const RELOADABLE: [&str; 6] = [
    "principals",
    "issuers",
    "policies",
    "webhooks",
    "limits",
    "auth",
];

/// `[limits]` keys the listener applied when it started.
const LIMITS_AT_START: [&str; 6] = [
    "max_message_bytes",
    "max_connections",
    "max_unauthenticated_connections",
    "handshake_timeout",
    "idle_timeout",
    "body_timeout",
];

/// How the running config was read, so a reload reads it the same way.
#[derive(Debug, Clone)]
pub struct Origin {
    pub path: Option<PathBuf>,
    /// `--listen`, which overrides the file's `listen`.
    pub listen: Option<String>,
}

impl Origin {
    pub fn load(&self) -> Result<Config, ConfigError> {
        let mut config = Config::load(self.path.as_deref())?;
        if let Some(listen) = &self.listen {
            config.listen.clone_from(listen);
        }
        Ok(config)
    }
}

/// The console's session keys for `config`: its `session_key`, or else
/// `fallback` (random per process; `server::serve` refuses that off
/// loopback when an issuer signs people in).
pub fn sessions(config: &Config, fallback: &[u8]) -> Result<Option<Arc<Sessions>>, ConfigError> {
    if !config
        .issuers
        .iter()
        .any(crate::config::IssuerConfig::signs_in_people)
    {
        return Ok(None);
    }
    let key = crate::config::session_key_bytes(&config.auth)?;
    let key = key.as_deref().unwrap_or(fallback);
    Ok(Some(Arc::new(Sessions::new(
        key,
        config.auth.session_max_age,
    ))))
}

/// One generation of the reloadable config.
pub fn live(config: &Config, sessions: Option<Arc<Sessions>>) -> Result<Live, ReloadError> {
    let auth = Auth::new(&config.principals)?.with_issuers(&config.issuers, sessions)?;
    Ok(Live {
        auth,
        policies: Policies::new(&config.policies).map_err(ReloadError::Policy)?,
        webhooks: config.webhooks.iter().map(|w| w.name.clone()).collect(),
        limits: config.limits,
    })
}

fn sections(c: &Config) -> serde_json::Map<String, Value> {
    match serde_json::to_value(c) {
        Ok(Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    }
}

/// The keys that differ between `old` and `new` and need a restart.
pub fn restart_keys(old: &Config, new: &Config) -> Vec<String> {
    let (a, b) = (sections(old), sections(new));
    let mut keys: Vec<String> = a
        .keys()
        .chain(b.keys())
        .filter(|k| !RELOADABLE.contains(&k.as_str()) && a.get(*k) != b.get(*k))
        .map(|k| {
            if k == "store" || k == "tls" {
                format!("[{k}]")
            } else {
                k.clone()
            }
        })
        .collect();
    keys.sort();
    keys.dedup();
    let limit = |c: &serde_json::Map<String, Value>, k: &str| {
        c.get("limits").and_then(|l| l.get(k)).cloned()
    };
    for k in LIMITS_AT_START {
        if limit(&a, k) != limit(&b, k) {
            keys.push(format!("limits.{k}"));
        }
    }
    if old.dev_mode() != new.dev_mode() {
        keys.push(if old.dev_mode() {
            "principals/issuers (leaving dev mode)".into()
        } else {
            "principals/issuers (removing every identity turns on dev mode)".into()
        });
    }
    keys
}

/// What a reload from `old` to `new` changes, a line each: `+ added`,
/// `- removed`, `~ changed`, for each reloadable entry; restart-only keys
/// marked as such.
pub fn diff(old: &Config, new: &Config) -> Vec<String> {
    let (a, b) = (sections(old), sections(new));
    let mut out = Vec::new();
    let id = |v: &Value| {
        ["name", "kind"]
            .iter()
            .find_map(|k| v.get(k).and_then(Value::as_str))
            .unwrap_or("?")
            .to_string()
    };
    for section in ["principals", "issuers", "policies", "webhooks"] {
        let list = |m: &serde_json::Map<String, Value>| -> Vec<Value> {
            m.get(section)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        let (before, after) = (list(&a), list(&b));
        for v in &before {
            match after.iter().find(|w| id(w) == id(v)) {
                None => out.push(format!("{section}: - {}", id(v))),
                Some(w) if w != v => {
                    let fields: Vec<&str> = v
                        .as_object()
                        .into_iter()
                        .flat_map(|o| o.keys())
                        .chain(w.as_object().into_iter().flat_map(|o| o.keys()))
                        .filter(|k| v.get(k.as_str()) != w.get(k.as_str()))
                        .map(String::as_str)
                        .collect::<std::collections::BTreeSet<_>>()
                        .into_iter()
                        .collect();
                    out.push(format!("{section}: ~ {} ({})", id(v), fields.join(", ")));
                }
                Some(_) => {}
            }
        }
        for w in &after {
            if !before.iter().any(|v| id(v) == id(w)) {
                out.push(format!("{section}: + {}", id(w)));
            }
        }
    }
    for section in ["limits", "auth"] {
        let get = |m: &serde_json::Map<String, Value>| m.get(section).cloned().unwrap_or_default();
        let (x, y) = (get(&a), get(&b));
        for (k, v) in x.as_object().into_iter().flatten() {
            let w = y.get(k).cloned().unwrap_or_default();
            if *v != w {
                out.push(format!("{section}.{k}: {v} -> {w}"));
            }
        }
    }
    if old.auth.session_key != new.auth.session_key {
        out.push("auth.session_key: changed (console sessions end; people sign in again)".into());
    }
    for k in restart_keys(old, new) {
        out.push(format!(
            "{k}: changed (needs a restart; a reload refuses it)"
        ));
    }
    out
}

/// What a reload needs besides the service.
#[derive(Debug)]
pub struct Reloader {
    pub origin: Origin,
    pub witness: Arc<Witness>,
    pub hooks: Hooks,
    /// The per-process session key used when the config has none.
    pub fallback_key: Vec<u8>,
}

impl Reloader {
    /// Loads, checks and applies the config; returns what changed.
    pub fn reload(&self, running: &mut Config) -> Result<Vec<String>, ReloadError> {
        let new = self.origin.load()?;
        let restart = restart_keys(running, &new);
        if !restart.is_empty() {
            return Err(ReloadError::NeedsRestart(restart));
        }
        let sessions = sessions(&new, &self.fallback_key)?;
        let live = live(&new, sessions)?;
        let changes = diff(running, &new);
        crate::metrics::preset(
            &new.policies
                .iter()
                .map(|p| p.kind.clone())
                .collect::<Vec<_>>(),
            &live.webhooks,
            new.policies
                .iter()
                .map(|p| p.escalation.len())
                .max()
                .unwrap_or(0),
        );
        self.witness.reload(live);
        self.hooks.store(Arc::new(new.webhooks.clone()));
        *running = new;
        Ok(changes)
    }

    /// Reloads on every SIGHUP until the process ends.
    pub async fn run(self, mut running: Config) {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let Ok(mut hup) = signal(SignalKind::hangup()) else {
                tracing::warn!("cannot listen for SIGHUP; config reload is off");
                return;
            };
            while hup.recv().await.is_some() {
                match self.reload(&mut running) {
                    Ok(changes) => {
                        crate::metrics::config_reloaded("applied");
                        tracing::info!(changes = %changes.join("; "), "config reloaded");
                    }
                    Err(e) => {
                        crate::metrics::config_reloaded("refused");
                        tracing::error!(error = %e, "config reload refused; the running config is unchanged");
                    }
                }
            }
        }
        #[cfg(not(unix))]
        let _ = (self, running);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml: &str) -> Config {
        use figment::providers::Format as _;
        figment::Figment::new()
            .merge(figment::providers::Toml::string(toml))
            .extract()
            .unwrap()
    }

    const ALICE: &str =
        "[[principals]]\nname = \"alice\"\ntoken_sha256 = \"aa\"\nroles = [\"sre\"]\n";

    #[test]
    fn the_diff_names_each_entry_and_restart_only_keys() {
        let old = config(ALICE);
        let new = config(&format!(
            "{}[[principals]]\nname = \"carol\"\ntoken_sha256 = \"cc\"\n[limits]\nmax_list_len = 7\n",
            ALICE.replace("[\"sre\"]", "[]")
        ));
        let d = diff(&old, &new);
        assert!(
            d.contains(&"principals: ~ alice (roles)".to_string()),
            "{d:?}"
        );
        assert!(d.contains(&"principals: + carol".to_string()), "{d:?}");
        assert!(
            d.iter().any(|l| l.starts_with("limits.max_list_len: ")),
            "{d:?}"
        );
        assert!(restart_keys(&old, &new).is_empty());
        assert!(diff(&new, &new).is_empty());
    }

    #[test]
    fn keys_applied_at_start_refuse_the_reload() {
        let old = config(ALICE);
        let moved = config(&format!("listen = \"127.0.0.1:1\"\n[store]\nurl = \"sqlite://x.db\"\n[limits]\nmax_connections = 5\n{ALICE}"));
        assert_eq!(
            restart_keys(&old, &moved),
            vec!["[store]", "listen", "limits.max_connections"]
        );
        // Removing every identity would turn on dev mode.
        let dev = config("");
        assert_eq!(restart_keys(&old, &dev).len(), 1);
        assert!(restart_keys(&old, &dev)[0].contains("dev mode"));
    }
}
