//! Identity: bearer tokens checked against configured SHA-256 hashes, JWTs
//! from `[[issuers]]` (`jwt`), the console's session cookie (`session`), or
//! dev mode (no principals, no issuers) with identity taken from metadata.

use crate::config::PrincipalConfig;
use crate::core::policy::KindGlobs;
use crate::core::Actor;
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use subtle::ConstantTimeEq;
use tonic::metadata::MetadataMap;

pub(crate) mod jwt;
pub mod session;

/// Why a caller is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Denied(String),
}

/// Result alias for auth.
pub type Result<T, E = AuthError> = std::result::Result<T, E>;

/// Why the identity table cannot be built from `[[principals]]` (at start,
/// before anything listens). Names the principal and the key.
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    /// `token_sha256` is not 32 bytes of hex.
    #[error("principals.{principal}.token_sha256: {source}")]
    BadTokenHash {
        principal: String,
        source: hex::FromHexError,
    },
    /// A `can_ask` pattern is not a glob (the message names the key).
    #[error("{}", .0.message)]
    BadCanAsk(crate::core::Refusal),
    /// An `[[issuers]]` entry cannot be set up.
    #[error("{0}")]
    Issuer(String),
}

/// Name used for dev-mode requests that carry no principal (reserved by
/// the config, which `auth` builds on: the dependency runs one way).
pub use crate::config::ANONYMOUS;

/// Where a principal's identity came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A `[[principals]]` bearer token.
    Token,
    /// An issuer's JWT or a console session it signed in; `claims` are
    /// the values of its roles claim (roles are mapped from them).
    Issuer { issuer: String, claims: Vec<String> },
    /// Dev-mode headers.
    Dev,
}

impl Source {
    /// `token`, `issuer NAME` or `dev`, as `witness whoami` shows it.
    pub fn describe(&self) -> String {
        match self {
            Source::Token => "token".into(),
            Source::Issuer { issuer, .. } => format!("issuer {issuer}"),
            Source::Dev => "dev".into(),
        }
    }

    /// The issuer's name, for issuer principals.
    pub fn issuer(&self) -> Option<&str> {
        match self {
            Source::Issuer { issuer, .. } => Some(issuer),
            _ => None,
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub name: String,
    pub roles: Vec<String>,
    can_ask: KindGlobs,
    can_act_for: Vec<String>,
    /// Dev mode without `x-witness-principal`.
    pub anonymous: bool,
    pub source: Source,
}

impl Principal {
    /// The principal acting for itself.
    pub fn actor(&self) -> Actor {
        Actor {
            issuer: self.source.issuer().map(String::from),
            ..Actor::new(self.name.clone(), self.roles.clone())
        }
    }

    /// Refuses an Ask for a kind outside `can_ask`.
    pub fn check_can_ask(&self, kind: &str) -> Result<()> {
        if self.can_ask.matches(kind) {
            return Ok(());
        }
        Err(AuthError::Denied(format!(
            "kind: {} may not ask about {kind:?} (can_ask)",
            self.name
        )))
    }

    /// Refuses answering without an identity.
    pub fn check_identified(&self) -> Result<()> {
        if self.anonymous {
            return Err(AuthError::Unauthenticated(
                "answering needs an identity: send x-witness-principal (dev mode) or a bearer token".into(),
            ));
        }
        Ok(())
    }
}

struct Entry {
    token_hash: [u8; 32],
    principal: Principal,
    /// Lowercased `email`, for Slack's `principal_from = "email"`.
    email: Option<String>,
}

/// Names the principal, never the token's hash.
impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("principal", &self.principal)
            .finish_non_exhaustive()
    }
}

/// The configured identities.
#[derive(Debug)]
pub struct Auth {
    /// Empty (with no issuers) means dev mode.
    entries: Vec<Entry>,
    roles: Option<std::sync::Arc<std::collections::BTreeMap<String, Vec<String>>>>,
    issuers: jwt::Issuers,
    sessions: Option<std::sync::Arc<session::Sessions>>,
}

fn principal_from(p: &PrincipalConfig) -> std::result::Result<Principal, AuthSetupError> {
    Ok(Principal {
        name: p.name.clone(),
        roles: p.roles.clone(),
        can_ask: KindGlobs::new(&format!("principals.{}.can_ask", p.name), &p.can_ask)
            .map_err(AuthSetupError::BadCanAsk)?,
        can_act_for: p.can_act_for.clone(),
        anonymous: false,
        source: Source::Token,
    })
}

impl Auth {
    /// Builds the identity table; `principals` must be validated config.
    pub fn new(principals: &[PrincipalConfig]) -> std::result::Result<Auth, AuthSetupError> {
        let entries = principals
            .iter()
            .map(|p| {
                let mut token_hash = [0u8; 32];
                hex::decode_to_slice(&p.token_sha256, &mut token_hash).map_err(|source| {
                    AuthSetupError::BadTokenHash {
                        principal: p.name.clone(),
                        source,
                    }
                })?;
                Ok(Entry {
                    token_hash,
                    principal: principal_from(p)?,
                    email: p.email.as_deref().map(str::to_ascii_lowercase),
                })
            })
            .collect::<std::result::Result<Vec<Entry>, AuthSetupError>>()?;
        let roles = (!entries.is_empty()).then(|| {
            std::sync::Arc::new(
                entries
                    .iter()
                    .map(|e| (e.principal.name.clone(), e.principal.roles.clone()))
                    .collect(),
            )
        });
        Ok(Auth {
            entries,
            roles,
            issuers: jwt::Issuers::default(),
            sessions: None,
        })
    }

    /// Adds `[[issuers]]` and the console's session keys.
    pub fn with_issuers(
        mut self,
        issuers: &[crate::config::IssuerConfig],
        sessions: Option<std::sync::Arc<session::Sessions>>,
    ) -> std::result::Result<Auth, AuthSetupError> {
        self.issuers = jwt::Issuers::new(issuers).map_err(AuthSetupError::Issuer)?;
        self.sessions = sessions;
        Ok(self)
    }

    pub fn dev_mode(&self) -> bool {
        self.entries.is_empty() && self.issuers.is_empty()
    }

    /// The configured issuers.
    pub(crate) fn issuers(&self) -> &jwt::Issuers {
        &self.issuers
    }

    /// The console's session keys (with an issuer that signs people in).
    pub(crate) fn sessions(&self) -> Option<&session::Sessions> {
        self.sessions.as_deref()
    }

    /// Fetches the keys a request's JWT needs when they are not at hand
    /// (an unknown `kid`), so that authenticating it is a lookup.
    pub async fn prepare(&self, headers: &http::HeaderMap) {
        if self.issuers.is_empty() {
            return;
        }
        let token = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer);
        if let Some(token) = token.filter(|t| jwt::looks_like_jwt(t)) {
            self.issuers.prepare(token).await;
        }
    }

    /// The roles `who` holds under this config: configured roles for a
    /// token principal, the current `role_map` for an issuer's (None when
    /// its principal or issuer is gone). Dev principals keep their own.
    /// Read for every event a stream passes, so a token principal's roles
    /// are borrowed from the table, not copied.
    pub fn roles_now<'a>(&'a self, who: &'a Principal) -> Option<Cow<'a, [String]>> {
        match &who.source {
            Source::Dev => Some(Cow::Borrowed(&who.roles)),
            Source::Token => self
                .roles
                .as_deref()
                .and_then(|m| m.get(&who.name))
                .map(|r| Cow::Borrowed(r.as_slice())),
            Source::Issuer { issuer, claims } => self
                .issuers
                .named(issuer)
                .map(|i| Cow::Owned(i.roles(claims))),
        }
    }

    /// The configured principal named `name` (a Slack user's mapped
    /// principal), as if it had authenticated with its token.
    pub fn principal_named(&self, name: &str) -> Option<Principal> {
        self.entries
            .iter()
            .find(|e| e.principal.name == name)
            .map(|e| e.principal.clone())
    }

    /// The configured principal whose `email` is `email` (lowercase).
    pub fn principal_with_email(&self, email: &str) -> Option<Principal> {
        self.entries
            .iter()
            .find(|e| e.email.as_deref() == Some(email))
            .map(|e| e.principal.clone())
    }

    /// Identifies the caller of a plain HTTP request: the same rules as
    /// gRPC metadata (bearer token, or the dev-mode headers).
    pub fn authenticate_headers(&self, headers: &http::HeaderMap) -> Result<Principal> {
        self.identify(|k| headers.get(k).map(|v| v.to_str().map_err(|_| ())))
    }

    /// Identifies the caller of a request.
    pub fn authenticate(&self, md: &MetadataMap) -> Result<Principal> {
        self.identify(|k| md.get(k).map(|v| v.to_str().map_err(|_| ())))
    }

    /// The rules, over a header lookup (`Err` for a value that is not text).
    fn identify<'a>(
        &self,
        get: impl Fn(&str) -> Option<std::result::Result<&'a str, ()>>,
    ) -> Result<Principal> {
        if self.dev_mode() {
            return Ok(dev_principal(|k| get(k).and_then(std::result::Result::ok)));
        }
        let Some(header) = get("authorization") else {
            return match get("cookie").and_then(std::result::Result::ok) {
                Some(cookies) if self.sessions.is_some() => self.session_principal(cookies),
                _ => Err(AuthError::Unauthenticated(
                    "missing authorization: Bearer token".into(),
                )),
            };
        };
        let header = header
            .map_err(|()| AuthError::Unauthenticated("malformed authorization header".into()))?;
        let token = bearer(header).ok_or_else(|| {
            AuthError::Unauthenticated("authorization must be \"Bearer TOKEN\"".into())
        })?;
        if jwt::looks_like_jwt(token) && !self.issuers.is_empty() {
            return self
                .issuers
                .authenticate(token)
                .map_err(|why| AuthError::Unauthenticated(format!("bearer JWT refused: {why}")));
        }
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        // Compare against every entry without stopping early, so timing
        // reveals nothing about which hash came close.
        let mut found = None;
        for entry in &self.entries {
            if bool::from(entry.token_hash.ct_eq(&hash)) {
                found = Some(&entry.principal);
            }
        }
        found
            .cloned()
            .ok_or_else(|| AuthError::Unauthenticated("unknown bearer token".into()))
    }

    /// The principal of a console session cookie.
    fn session_principal(&self, cookies: &str) -> Result<Principal> {
        let refused = |why: &str| AuthError::Unauthenticated(format!("session: {why}"));
        let sessions = self.sessions.as_deref().ok_or_else(|| refused("none"))?;
        let s = sessions
            .open_session(cookies)
            .ok_or_else(|| refused("missing, expired or not ours: sign in again"))?;
        let issuer = self.issuers.named(&s.issuer).ok_or_else(|| {
            refused(&format!(
                "issuer {} is no longer configured: sign in again",
                s.issuer
            ))
        })?;
        Ok(issuer.member(s.principal, s.claims))
    }

    /// The actor an answer counts for: the caller, or the operator it names
    /// in `on_behalf_of` when `can_act_for` allows it (with that operator's
    /// configured roles).
    pub fn actor_for(&self, caller: &Principal, on_behalf_of: &str) -> Result<Actor> {
        if on_behalf_of.is_empty() || on_behalf_of == caller.name {
            return Ok(caller.actor());
        }
        let allowed = caller
            .can_act_for
            .iter()
            .any(|n| n == "*" || n == on_behalf_of);
        if !allowed {
            return Err(AuthError::Denied(format!(
                "on_behalf_of: {} may not act for {on_behalf_of:?} (can_act_for)",
                caller.name
            )));
        }
        let operator = self
            .entries
            .iter()
            .find(|e| e.principal.name == on_behalf_of)
            .ok_or_else(|| {
                AuthError::Denied(format!(
                    "on_behalf_of: no principal is named {on_behalf_of:?}"
                ))
            })?;
        Ok(Actor {
            name: operator.principal.name.clone(),
            roles: operator.principal.roles.clone(),
            submitted_by: Some(caller.name.clone()),
            issuer: None,
        })
    }

    /// Every configured principal's roles (None in dev mode, where roles
    /// come with each request and cannot be re-checked).
    pub fn current_roles(
        &self,
    ) -> Option<std::sync::Arc<std::collections::BTreeMap<String, Vec<String>>>> {
        self.roles.clone()
    }
}

/// The token of an `authorization: Bearer TOKEN` value.
fn bearer(header: &str) -> Option<&str> {
    let scheme = header.get(..7)?;
    scheme
        .eq_ignore_ascii_case("bearer ")
        .then(|| header[7..].trim())
}

fn dev_principal<'a>(header: impl Fn(&str) -> Option<&'a str>) -> Principal {
    let get = |key: &str| header(key).map(str::trim).filter(|s| !s.is_empty());
    let name = get("x-witness-principal");
    let roles = get("x-witness-roles")
        .map(|r| {
            r.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    match name {
        Some(name) => Principal::dev(name, roles),
        None => Principal {
            anonymous: true,
            ..Principal::dev(ANONYMOUS, roles)
        },
    }
}

impl Principal {
    /// A dev-mode principal: any name, the given roles, may ask any kind.
    /// Only for dev mode, where the listener is loopback-only and every
    /// caller may claim any identity anyway.
    pub fn dev(name: &str, roles: Vec<String>) -> Principal {
        Principal {
            name: name.to_string(),
            roles,
            can_ask: any_kind(),
            can_act_for: Vec::new(),
            anonymous: false,
            source: Source::Dev,
        }
    }
}

/// The `*` glob, compiled once: compiling it for every dev-mode request
/// (a regex build) was ~7% of an Ask's server CPU.
fn any_kind() -> KindGlobs {
    static ANY: std::sync::OnceLock<KindGlobs> = std::sync::OnceLock::new();
    ANY.get_or_init(|| KindGlobs::new("can_ask", &["*".to_string()]).unwrap_or_default())
        .clone()
}

/// Lowercase hex SHA-256 of a token, as `token_sha256` expects.
pub fn token_sha256(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(name: &str, token: &str, roles: &[&str], act_for: &[&str]) -> PrincipalConfig {
        PrincipalConfig {
            name: name.into(),
            token_sha256: token_sha256(token),
            roles: roles.iter().map(ToString::to_string).collect(),
            can_ask: vec!["deploy.*".into()],
            can_act_for: act_for.iter().map(ToString::to_string).collect(),
            email: None,
        }
    }

    fn md(pairs: &[(&'static str, &str)]) -> MetadataMap {
        let mut m = MetadataMap::new();
        for (k, v) in pairs {
            m.insert(*k, v.parse().unwrap());
        }
        m
    }

    #[test]
    fn debug_output_names_principals_but_never_token_hashes() {
        let auth = Auth::new(&[config("alice", "s3cret", &["sre"], &[])]).unwrap();
        let shown = format!("{auth:?}");
        assert!(shown.contains("alice"), "{shown}");
        let hash = format!("{:?}", auth.entries[0].token_hash);
        assert!(!shown.contains(&hash), "{shown}");
        assert!(!shown.contains("token_hash"), "{shown}");
    }

    #[test]
    fn bearer_tokens_identify_and_refuse() {
        let auth = Auth::new(&[
            config("alice", "s3cret", &["sre"], &[]),
            config("bot", "b0t", &[], &["alice"]),
        ])
        .unwrap();
        let p = auth
            .authenticate(&md(&[("authorization", "Bearer s3cret")]))
            .unwrap();
        assert_eq!(
            (p.name.as_str(), p.roles.clone()),
            ("alice", vec!["sre".to_string()])
        );
        let err = auth.authenticate(&md(&[])).unwrap_err();
        assert!(matches!(err, AuthError::Unauthenticated(_)));
        let err = auth
            .authenticate(&md(&[("authorization", "Bearer wrong")]))
            .unwrap_err();
        assert_eq!(
            err,
            AuthError::Unauthenticated("unknown bearer token".into())
        );
        // Dev headers mean nothing once principals are configured.
        let err = auth
            .authenticate(&md(&[("x-witness-principal", "alice")]))
            .unwrap_err();
        assert!(matches!(err, AuthError::Unauthenticated(_)));
    }

    #[test]
    fn can_ask_and_can_act_for_enforce() {
        let auth = Auth::new(&[
            config("alice", "a", &["sre"], &[]),
            config("bot", "b", &["chat"], &["alice"]),
        ])
        .unwrap();
        let alice = auth
            .authenticate(&md(&[("authorization", "Bearer a")]))
            .unwrap();
        let bot = auth
            .authenticate(&md(&[("authorization", "Bearer b")]))
            .unwrap();
        assert!(alice.check_can_ask("deploy.prod").is_ok());
        assert!(matches!(
            alice.check_can_ask("scram.x"),
            Err(AuthError::Denied(_))
        ));
        let actor = auth.actor_for(&bot, "alice").unwrap();
        assert_eq!(actor.name, "alice");
        assert_eq!(actor.roles, vec!["sre".to_string()]);
        assert_eq!(actor.submitted_by.as_deref(), Some("bot"));
        assert!(matches!(
            auth.actor_for(&alice, "bot"),
            Err(AuthError::Denied(_))
        ));
        assert!(matches!(
            auth.actor_for(&bot, "nobody"),
            Err(AuthError::Denied(_))
        ));
    }

    #[test]
    fn dev_mode_reads_metadata_and_marks_anonymous() {
        let auth = Auth::new(&[]).unwrap();
        assert!(auth.dev_mode());
        let p = auth
            .authenticate(&md(&[
                ("x-witness-principal", "bob"),
                ("x-witness-roles", "sre, dba"),
            ]))
            .unwrap();
        assert_eq!(p.roles, vec!["sre".to_string(), "dba".to_string()]);
        assert!(p.check_identified().is_ok());
        let anon = auth.authenticate(&md(&[])).unwrap();
        assert_eq!(anon.name, ANONYMOUS);
        assert!(matches!(
            anon.check_identified(),
            Err(AuthError::Unauthenticated(_))
        ));
        assert!(anon.check_can_ask("anything").is_ok());
    }
}
