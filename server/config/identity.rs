//! `[[issuers]]` (identity from the organisation's OpenID provider) and
//! `[auth]` (the console's session cookie): their types and the checks serde
//! cannot make. The JWT rules themselves live in `auth::jwt`.

use super::{secrets, ConfigError, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One `[[issuers]]` entry: an OpenID provider whose JWTs identify callers
/// (machines with `authorization: Bearer JWT`) and, with `client_id`, whose
/// sign-in the console offers.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// Short name recorded with every principal this issuer signs in
    /// (`issuer corp` in `witness whoami` and the audit log).
    pub name: String,
    /// The exact `iss` of its tokens; discovery is at
    /// `{issuer}/.well-known/openid-configuration`. https, or http on a
    /// loopback address (tests).
    pub issuer: String,
    /// Must be in a token's `aud`.
    pub audience: String,
    /// The claim naming the principal (`email`, `sub`), or a template of
    /// claims such as `{repository}@{environment}`.
    #[serde(default = "default_principal_claim")]
    pub principal_claim: String,
    /// A string or list claim whose values map to roles through `role_map`.
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    /// Claim value -> witness roles; values not listed give no role.
    #[serde(default)]
    pub role_map: BTreeMap<String, Vec<String>>,
    /// Claims a token must carry, each with one of the listed values (a
    /// list claim: one of its values). For issuers that sign for anyone,
    /// such as GitHub Actions: `{ repository_owner = ["acme"] }`.
    #[serde(default)]
    pub required_claims: BTreeMap<String, Vec<String>>,
    /// Kind globs its principals may ask about.
    #[serde(default = "super::everything")]
    pub can_ask: Vec<String>,
    /// The console's OpenID client; omit for a machine-only issuer.
    #[serde(default)]
    pub client_id: String,
    /// The client's secret (confidential clients). Prefer
    /// `client_secret_file` or `client_secret_env`.
    #[serde(default, skip_serializing)]
    pub client_secret: String,
    /// A file holding `client_secret`.
    #[serde(default)]
    pub client_secret_file: Option<std::path::PathBuf>,
    /// An environment variable holding `client_secret`.
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// Where the provider sends the browser back: this server's
    /// `/auth/callback`, as registered with the provider.
    #[serde(default)]
    pub redirect_url: String,
    /// Scopes the console's sign-in asks for; add the one that puts
    /// `roles_claim` in the ID token if the provider needs one (often
    /// `groups`).
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
}

fn default_scopes() -> Vec<String> {
    ["openid", "email", "profile"].map(String::from).to_vec()
}

fn default_principal_claim() -> String {
    "sub".into()
}

fn default_roles_claim() -> String {
    "groups".into()
}

impl IssuerConfig {
    /// Whether the console offers sign-in through this issuer.
    pub fn signs_in_people(&self) -> bool {
        !self.client_id.is_empty()
    }
}

/// `[auth]`: the console's session.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Base64 of at least 32 random bytes (`openssl rand -base64 32`) that
    /// authenticates and encrypts the `__Host-witness` session cookie.
    /// Replicas share it. Without it a loopback server makes one per start
    /// (sessions end with the process); any other address refuses to start
    /// when an issuer has `client_id`. Prefer `session_key_file` or
    /// `session_key_env`.
    #[serde(default, skip_serializing)]
    pub session_key: String,
    /// A file holding `session_key`.
    #[serde(default)]
    pub session_key_file: Option<std::path::PathBuf>,
    /// An environment variable holding `session_key`.
    #[serde(default)]
    pub session_key_env: Option<String>,
    /// Longest a console session lasts; it also ends at the ID token's expiry.
    #[serde(default = "default_session_max_age", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub session_max_age: std::time::Duration,
}

fn default_session_max_age() -> std::time::Duration {
    std::time::Duration::from_secs(12 * 3600)
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            session_key: String::new(),
            session_key_file: None,
            session_key_env: None,
            session_max_age: default_session_max_age(),
        }
    }
}

/// The session key's bytes (None when unset). Checked by [`validate`].
pub fn session_key_bytes(auth: &AuthConfig) -> Result<Option<Vec<u8>>> {
    use base64::Engine as _;
    if auth.session_key.is_empty() {
        return Ok(None);
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(auth.session_key.trim())
        .map_err(|_| {
            ConfigError("auth.session_key: must be base64 (openssl rand -base64 32)".into())
        })?;
    if bytes.len() < 32 {
        return Err(ConfigError(format!(
            "auth.session_key: {} bytes is too short; use at least 32 random bytes \
             (openssl rand -base64 32)",
            bytes.len()
        )));
    }
    Ok(Some(bytes))
}

/// Reads the secrets kept out of the file into their keys.
pub(super) fn resolve_secrets(issuers: &mut [IssuerConfig], auth: &mut AuthConfig) -> Result<()> {
    for (i, s) in issuers.iter_mut().enumerate() {
        s.client_secret = secrets::resolve(secrets::Sources {
            key: &format!("issuers[{i}].client_secret"),
            inline: &s.client_secret,
            file: secrets::path(&s.client_secret_file),
            env: s.client_secret_env.as_deref(),
        })?;
    }
    auth.session_key = secrets::resolve(secrets::Sources {
        key: "auth.session_key",
        inline: &auth.session_key,
        file: secrets::path(&auth.session_key_file),
        env: auth.session_key_env.as_deref(),
    })?;
    Ok(())
}

/// An http(s) URL, https unless its host is a loopback address.
fn check_url(key: &str, url: &str) -> Result<()> {
    let parsed = url.parse::<http::Uri>().ok();
    let scheme = parsed.as_ref().and_then(|u| u.scheme_str());
    let host = parsed.as_ref().and_then(|u| u.host()).unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match scheme {
        Some("https") => Ok(()),
        Some("http") if loopback => Ok(()),
        Some("http") => Err(ConfigError(format!(
            "{key}: {url:?} must be https (plain http only on a loopback address)"
        ))),
        _ => Err(ConfigError(format!("{key}: {url:?} is not an http(s) URL"))),
    }
}

/// The claim names a `principal_claim` template uses (`{a}@{b}` -> a, b;
/// a bare name is itself).
pub fn template_claims(template: &str) -> std::result::Result<Vec<&str>, String> {
    if !template.contains(['{', '}']) {
        return Ok(vec![template]);
    }
    let mut claims = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        if rest.as_bytes()[open] == b'}' {
            return Err("a `}` without its `{`".into());
        }
        let after = &rest[open + 1..];
        let close = after.find('}').ok_or("a `{` without its `}`")?;
        let name = &after[..close];
        if name.is_empty() || name.contains('{') {
            return Err("`{}` must name a claim, as in {repository}".into());
        }
        claims.push(name);
        rest = &after[close + 1..];
    }
    Ok(claims)
}

/// Checks `[[issuers]]` and `[auth]`.
pub(super) fn validate(issuers: &[IssuerConfig], auth: &AuthConfig) -> Result<()> {
    let mut names = std::collections::HashSet::new();
    let mut urls = std::collections::HashSet::new();
    for (i, s) in issuers.iter().enumerate() {
        let at = |key: &str| format!("issuers[{i}].{key}");
        if s.name.trim().is_empty() || s.name.contains(char::is_whitespace) {
            return Err(ConfigError(format!(
                "{}: must be a short name without spaces, such as \"corp\"",
                at("name")
            )));
        }
        if !names.insert(s.name.as_str()) {
            return Err(ConfigError(format!(
                "{}: {:?} appears twice",
                at("name"),
                s.name
            )));
        }
        check_url(&at("issuer"), &s.issuer)?;
        if !urls.insert(s.issuer.as_str()) {
            return Err(ConfigError(format!(
                "{}: {:?} appears twice (one entry per issuer)",
                at("issuer"),
                s.issuer
            )));
        }
        if s.audience.trim().is_empty() {
            return Err(ConfigError(format!(
                "{}: must name the audience its tokens carry (e.g. \"witness\")",
                at("audience")
            )));
        }
        template_claims(&s.principal_claim)
            .map_err(|e| ConfigError(format!("{}: {e}", at("principal_claim"))))?;
        if s.principal_claim.trim().is_empty() {
            return Err(ConfigError(format!(
                "{}: must name a claim",
                at("principal_claim")
            )));
        }
        if let Some((claim, _)) = s.required_claims.iter().find(|(_, v)| v.is_empty()) {
            return Err(ConfigError(format!(
                "{}.{claim}: list at least one accepted value",
                at("required_claims")
            )));
        }
        crate::core::policy::KindGlobs::new(&at("can_ask"), &s.can_ask)
            .map_err(|e| ConfigError(e.message))?;
        if s.signs_in_people() {
            if s.redirect_url.is_empty() {
                return Err(ConfigError(format!(
                    "{}: required with client_id (this server's /auth/callback)",
                    at("redirect_url")
                )));
            }
            check_url(&at("redirect_url"), &s.redirect_url)?;
            if !s.redirect_url.ends_with("/auth/callback") {
                return Err(ConfigError(format!(
                    "{}: must end with /auth/callback",
                    at("redirect_url")
                )));
            }
        } else if !s.client_secret.is_empty() || !s.redirect_url.is_empty() {
            return Err(ConfigError(format!(
                "{}: client_secret and redirect_url need client_id",
                at("client_id")
            )));
        }
    }
    session_key_bytes(auth)?;
    if auth.session_max_age.is_zero() {
        return Err(ConfigError(
            "auth.session_max_age: must be more than zero (e.g. \"12h\")".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_name_their_claims_and_refuse_broken_braces() {
        assert_eq!(template_claims("email").unwrap(), vec!["email"]);
        assert_eq!(
            template_claims("{repository}@{environment}").unwrap(),
            vec!["repository", "environment"]
        );
        for bad in ["{repository", "repo}", "{}", "a{b{c}}"] {
            assert!(template_claims(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn plain_http_issuers_only_on_loopback() {
        assert!(check_url("k", "https://login.example.com").is_ok());
        assert!(check_url("k", "http://127.0.0.1:9000").is_ok());
        assert!(check_url("k", "http://localhost:9000").is_ok());
        let e = check_url("k", "http://login.example.com").unwrap_err();
        assert!(e.0.contains("must be https"), "{e}");
        assert!(check_url("k", "login.example.com").is_err());
    }

    #[test]
    fn session_keys_must_be_long_base64() {
        let mut a = AuthConfig::default();
        assert!(session_key_bytes(&a).unwrap().is_none());
        a.session_key = "c2hvcnQ=".into();
        assert!(session_key_bytes(&a).unwrap_err().0.contains("too short"));
        a.session_key = "not base64!".into();
        assert!(session_key_bytes(&a).unwrap_err().0.contains("base64"));
        a.session_key =
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [7u8; 32]);
        assert_eq!(session_key_bytes(&a).unwrap().unwrap().len(), 32);
    }
}
