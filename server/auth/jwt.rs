//! JWT bearer tokens from `[[issuers]]` (DESIGN §9). Signatures, `exp`,
//! `nbf`, `iss` and `aud` are `jsonwebtoken`'s to check; this module picks
//! the issuer and key, keeps each issuer's keys (discovery, then its JWKS,
//! fetched again on an unknown `kid` at most once per 30 s), and turns
//! claims into a principal. Refusals name the failed check, never the token.

use super::{Principal, Source};
use crate::config::{template_claims, IssuerConfig};
use crate::core::policy::KindGlobs;
use arc_swap::ArcSwap;
use base64::Engine as _;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Clock skew allowed on `exp` and `nbf`.
const LEEWAY_SECONDS: u64 = 60;
/// An unknown `kid` fetches the keys again at most this often.
const REFETCH_EVERY: Duration = Duration::from_secs(30);
/// A fetch of discovery or keys gives up after this.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether a bearer credential is a JWT (three base64url parts) rather
/// than a static token.
pub(crate) fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3 && token.starts_with("ey")
}

/// The parts of a JWT read before any key is chosen.
#[derive(Debug)]
struct Peek {
    alg: String,
    kid: Option<String>,
    iss: String,
}

/// The payload of a JWT, unverified: for a token already verified (the
/// console's ID token) or only to choose the rules (`peek`).
pub(crate) fn payload(token: &str) -> Result<Map<String, Value>, String> {
    part(token, 1)
}

fn part(token: &str, i: usize) -> Result<Map<String, Value>, String> {
    let raw = token.split('.').nth(i).unwrap_or_default();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw.trim_end_matches('='))
        .map_err(|_| "malformed JWT: a part is not base64url".to_string())?;
    serde_json::from_slice(&bytes).map_err(|_| "malformed JWT: a part is not a JSON object".into())
}

/// Reads `alg`, `kid` and the (unverified) `iss`, only to choose the rules:
/// everything is verified afterwards.
fn peek(token: &str) -> Result<Peek, String> {
    let header = part(token, 0)?;
    let payload = payload(token)?;
    let text = |m: &Map<String, Value>, k: &str| m.get(k).and_then(Value::as_str).map(String::from);
    Ok(Peek {
        alg: text(&header, "alg").unwrap_or_default(),
        kid: text(&header, "kid"),
        iss: text(&payload, "iss").ok_or("iss: missing")?,
    })
}

/// The only algorithms accepted: never `none`, never HS* (a shared secret
/// an issuer's public key could stand in for).
fn accepted(alg: &str) -> Result<Algorithm, String> {
    match alg {
        "RS256" => Ok(Algorithm::RS256),
        "ES256" => Ok(Algorithm::ES256),
        "EdDSA" => Ok(Algorithm::EdDSA),
        "none" | "" => Err("alg: unsigned tokens (alg none) are refused".into()),
        other => Err(format!(
            "alg: {other} is refused (only RS256, ES256 and EdDSA are accepted)"
        )),
    }
}

/// Whether `jwk` is a key of `alg`'s kind (so an RSA key never verifies an
/// ES256 signature, whatever the header says).
fn fits(jwk: &Jwk, alg: Algorithm) -> bool {
    match (&jwk.algorithm, alg) {
        (AlgorithmParameters::RSA(_), Algorithm::RS256) => true,
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES256) => {
            ec.curve == EllipticCurve::P256
        }
        (AlgorithmParameters::OctetKeyPair(okp), Algorithm::EdDSA) => {
            okp.curve == EllipticCurve::Ed25519
        }
        _ => false,
    }
}

/// One issuer's signing keys as last fetched.
#[derive(Default)]
struct Keys {
    set: Vec<(Jwk, DecodingKey)>,
    /// From discovery, kept so that a refetch reads only the JWKS.
    jwks_uri: Option<String>,
}

/// One configured issuer and its key cache.
pub(crate) struct Issuer {
    pub(crate) config: IssuerConfig,
    can_ask: KindGlobs,
    keys: ArcSwap<Keys>,
    /// When keys were last fetched again (or a fetch failed); the lock also
    /// makes concurrent callers with the same new `kid` wait for one fetch.
    fetched: tokio::sync::Mutex<Option<Instant>>,
    http: reqwest::Client,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("name", &self.config.name)
            .field("issuer", &self.config.issuer)
            .finish_non_exhaustive()
    }
}

impl Issuer {
    pub(crate) fn new(config: IssuerConfig) -> Result<Issuer, String> {
        let can_ask = KindGlobs::new(&format!("issuers.{}.can_ask", config.name), &config.can_ask)
            .map_err(|e| e.message)?;
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            // Keys come from the issuer's own URLs, never from a redirect.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("issuers.{}: http client: {e}", config.name))?;
        Ok(Issuer {
            config,
            can_ask,
            keys: ArcSwap::default(),
            fetched: tokio::sync::Mutex::new(None),
            http,
        })
    }

    fn has_key(&self, kid: Option<&str>) -> bool {
        let keys = self.keys.load();
        match kid {
            Some(kid) => keys
                .set
                .iter()
                .any(|(j, _)| j.common.key_id.as_deref() == Some(kid)),
            None => !keys.set.is_empty(),
        }
    }

    /// Fetches the keys when `kid` is not among them. The first successful
    /// fetch is free; after it, a fetch (an unknown `kid`, a rotation) or a
    /// failed attempt holds the next one back for [`REFETCH_EVERY`], so
    /// forged `kid`s cannot make witness hammer the provider.
    pub(crate) async fn ensure_key(&self, kid: Option<&str>) {
        if self.has_key(kid) {
            return;
        }
        let mut last = self.fetched.lock().await;
        // Another caller may have fetched while this one waited.
        if self.has_key(kid) || last.is_some_and(|t| t.elapsed() < REFETCH_EVERY) {
            return;
        }
        let loaded = self.keys.load().jwks_uri.is_some();
        match self.fetch().await {
            Ok(keys) => {
                crate::metrics::jwks_fetched(&self.config.name, "ok");
                self.keys.store(Arc::new(keys));
                if loaded {
                    *last = Some(Instant::now());
                }
            }
            Err(e) => {
                crate::metrics::jwks_fetched(&self.config.name, "error");
                *last = Some(Instant::now());
                tracing::warn!(issuer = %self.config.name, error = %e, "cannot fetch the issuer's keys");
            }
        }
    }

    async fn get_json(&self, url: &str) -> Result<Value, String> {
        let res = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if !res.status().is_success() {
            return Err(format!("GET {url}: HTTP {}", res.status()));
        }
        let body = res.bytes().await.map_err(|e| format!("GET {url}: {e}"))?;
        serde_json::from_slice(&body).map_err(|e| format!("GET {url}: not JSON: {e}"))
    }

    async fn fetch(&self) -> Result<Keys, String> {
        let jwks_uri = match self.keys.load().jwks_uri.clone() {
            Some(uri) => uri,
            None => {
                let base = self.config.issuer.trim_end_matches('/');
                let url = format!("{base}/.well-known/openid-configuration");
                let doc = self.get_json(&url).await?;
                // OpenID Connect Discovery §4.3: the document names its issuer.
                if doc.get("issuer").and_then(Value::as_str) != Some(self.config.issuer.as_str()) {
                    return Err(format!("{url}: its issuer is not {:?}", self.config.issuer));
                }
                doc.get("jwks_uri")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("{url}: no jwks_uri"))?
                    .to_string()
            }
        };
        let set: JwkSet = serde_json::from_value(self.get_json(&jwks_uri).await?)
            .map_err(|e| format!("{jwks_uri}: not a JWK set: {e}"))?;
        let set = set
            .keys
            .into_iter()
            // Keys of other kinds (encryption keys, HS) are not ours to use.
            .filter_map(|jwk| DecodingKey::from_jwk(&jwk).ok().map(|k| (jwk, k)))
            .collect();
        Ok(Keys {
            set,
            jwks_uri: Some(jwks_uri),
        })
    }

    /// Verifies `token` against the keys at hand.
    fn verify(
        &self,
        token: &str,
        peek: &Peek,
        alg: Algorithm,
    ) -> Result<Map<String, Value>, String> {
        let keys = self.keys.load();
        let name = &self.config.name;
        let key = keys
            .set
            .iter()
            .filter(|(jwk, _)| fits(jwk, alg))
            .find(|(jwk, _)| peek.kid.is_none() || jwk.common.key_id == peek.kid)
            .map(|(_, key)| key);
        let Some(key) = key else {
            return Err(match &peek.kid {
                Some(kid) => format!("kid: {kid:?} is not among issuer {name}'s {alg:?} keys"),
                None => format!("kid: issuer {name} has no {alg:?} key"),
            });
        };
        let mut v = Validation::new(alg);
        v.leeway = LEEWAY_SECONDS;
        v.validate_nbf = true;
        v.set_issuer(&[&self.config.issuer]);
        v.set_audience(&[&self.config.audience]);
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        jsonwebtoken::decode::<Map<String, Value>>(token, key, &v)
            .map(|data| data.claims)
            .map_err(|e| self.refusal(&e))
    }

    fn refusal(&self, e: &jsonwebtoken::errors::Error) -> String {
        use jsonwebtoken::errors::ErrorKind as K;
        let name = &self.config.name;
        match e.kind() {
            K::ExpiredSignature => "exp: the token has expired".into(),
            K::ImmatureSignature => "nbf: the token is not valid yet".into(),
            K::InvalidAudience => format!("aud: does not contain {:?}", self.config.audience),
            K::InvalidIssuer => format!("iss: is not {:?}", self.config.issuer),
            K::InvalidSignature => {
                format!("signature: does not verify with issuer {name}'s key (tampered or forged)")
            }
            K::MissingRequiredClaim(c) => format!("{c}: missing"),
            K::InvalidAlgorithm => "alg: does not match the key".into(),
            _ => format!("malformed JWT ({e})"),
        }
    }

    /// The principal a verified token's claims name.
    pub(crate) fn principal(&self, claims: &Map<String, Value>) -> Result<Principal, String> {
        Ok(self.member(self.name_of(claims)?, self.role_values(claims)))
    }

    /// The principal name verified `claims` give, once `required_claims`
    /// hold.
    pub(crate) fn name_of(&self, claims: &Map<String, Value>) -> Result<String, String> {
        for (claim, accepted) in &self.config.required_claims {
            let values = claim_values(claims.get(claim));
            if !values.iter().any(|v| accepted.contains(v)) {
                return Err(format!(
                    "{claim}: must be one of {accepted:?} (issuer {}'s required_claims)",
                    self.config.name
                ));
            }
        }
        let name = render(&self.config.principal_claim, claims)?;
        if name == crate::config::ANONYMOUS {
            return Err(format!("principal_claim: {name:?} is reserved"));
        }
        Ok(name)
    }

    /// The values of `roles_claim` in `claims`.
    pub(crate) fn role_values(&self, claims: &Map<String, Value>) -> Vec<String> {
        claim_values(claims.get(&self.config.roles_claim))
    }

    /// The principal `name` this issuer vouches for, with `values` of its
    /// roles claim (from a token just verified, or a session cookie).
    pub(crate) fn member(&self, name: String, values: Vec<String>) -> Principal {
        Principal {
            roles: self.roles(&values),
            can_ask: self.can_ask.clone(),
            can_act_for: Vec::new(),
            anonymous: false,
            source: Source::Issuer {
                issuer: self.config.name.clone(),
                claims: values,
            },
            name,
        }
    }

    /// Roles of `roles_claim` values under the current `role_map`.
    pub(crate) fn roles(&self, values: &[String]) -> Vec<String> {
        let mut roles: Vec<String> = values
            .iter()
            .filter_map(|v| self.config.role_map.get(v))
            .flatten()
            .cloned()
            .collect();
        roles.sort();
        roles.dedup();
        roles
    }
}

/// A string or list-of-strings claim as a list.
fn claim_values(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect(),
        _ => Vec::new(),
    }
}

/// The principal name: one claim, or a template of claims.
fn render(template: &str, claims: &Map<String, Value>) -> Result<String, String> {
    let names = template_claims(template).map_err(|e| format!("principal_claim: {e}"))?;
    let mut out = if template.contains('{') {
        template.to_string()
    } else {
        "{".to_string() + template + "}"
    };
    for name in names {
        let value = match claims.get(name) {
            Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => return Err(format!("{name}: the claim naming the principal is missing")),
        };
        out = out.replace(&format!("{{{name}}}"), &value);
    }
    Ok(out)
}

/// The configured issuers.
#[derive(Debug, Default)]
pub(crate) struct Issuers(Vec<Arc<Issuer>>);

impl Issuers {
    pub(crate) fn new(configs: &[IssuerConfig]) -> Result<Issuers, String> {
        configs
            .iter()
            .map(|c| Issuer::new(c.clone()).map(Arc::new))
            .collect::<Result<_, _>>()
            .map(Issuers)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Arc<Issuer>> {
        self.0.iter()
    }

    pub(crate) fn named(&self, name: &str) -> Option<&Arc<Issuer>> {
        self.0.iter().find(|i| i.config.name == name)
    }

    fn by_iss(&self, iss: &str) -> Option<&Arc<Issuer>> {
        self.0.iter().find(|i| i.config.issuer == iss)
    }

    /// Fetches the keys a token needs, when they are not at hand.
    pub(crate) async fn prepare(&self, token: &str) {
        if let Ok(p) = peek(token) {
            if let Some(issuer) = self.by_iss(&p.iss) {
                issuer.ensure_key(p.kid.as_deref()).await;
            }
        }
    }

    /// The principal of a JWT, or why it is refused.
    pub(crate) fn authenticate(&self, token: &str) -> Result<Principal, String> {
        let p = peek(token)?;
        let alg = accepted(&p.alg)?;
        let issuer = self
            .by_iss(&p.iss)
            .ok_or_else(|| format!("iss: {:?} is not a configured issuer", p.iss))?;
        let claims = issuer.verify(token, &p, alg)?;
        issuer.principal(&claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn templates_and_claims_name_the_principal() {
        let c =
            claims(json!({"repository": "acme/api", "environment": "prod", "sub": "x", "n": 7}));
        assert_eq!(
            render("{repository}@{environment}", &c).unwrap(),
            "acme/api@prod"
        );
        assert_eq!(render("sub", &c).unwrap(), "x");
        assert_eq!(render("n", &c).unwrap(), "7");
        assert!(render("email", &c).unwrap_err().starts_with("email:"));
    }

    #[test]
    fn required_claims_refuse_tokens_without_them() {
        let mut config: IssuerConfig = toml_issuer();
        config
            .required_claims
            .insert("repository_owner".into(), vec!["acme".into()]);
        let issuer = Issuer::new(config).unwrap();
        let ok = claims(json!({"sub": "a", "repository_owner": "acme"}));
        assert_eq!(issuer.principal(&ok).unwrap().name, "a");
        for bad in [
            json!({"sub": "a", "repository_owner": "evil"}),
            json!({"sub": "a"}),
        ] {
            let e = issuer.principal(&claims(bad)).unwrap_err();
            assert!(e.starts_with("repository_owner: must be one of"), "{e}");
        }
    }

    fn toml_issuer() -> IssuerConfig {
        serde_json::from_value(json!({
            "name": "gh", "issuer": "https://token.actions.githubusercontent.com", "audience": "witness"
        }))
        .unwrap()
    }

    #[test]
    fn only_asymmetric_algorithms_pass() {
        assert!(accepted("RS256").is_ok());
        assert!(accepted("ES256").is_ok());
        assert!(accepted("EdDSA").is_ok());
        assert!(accepted("none").unwrap_err().contains("alg none"));
        assert!(accepted("HS256").unwrap_err().contains("HS256 is refused"));
        assert!(accepted("RS512").is_err());
    }

    #[test]
    fn role_claims_may_be_a_string_or_a_list() {
        assert_eq!(claim_values(Some(&json!("a"))), vec!["a"]);
        assert_eq!(claim_values(Some(&json!(["a", 1, "b"]))), vec!["a", "b"]);
        assert!(claim_values(Some(&json!(3))).is_empty());
        assert!(claim_values(None).is_empty());
    }
}
