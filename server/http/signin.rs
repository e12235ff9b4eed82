//! Console sign-in through an `[[issuers]]` entry with `client_id`
//! (DESIGN §9): the authorization-code flow with PKCE, `state` and `nonce`,
//! by `openidconnect`. `/auth/login?issuer=NAME` sends the browser to the
//! provider; `/auth/callback` exchanges the code, verifies the ID token
//! (signature by the provider's keys, RS256/ES256/EdDSA only, `iss`, `aud`,
//! `exp`, `nonce`) and sets the `__Host-witness` session cookie;
//! `/auth/logout` clears it. The flow's state rides in a sealed cookie, so
//! the callback may reach any replica sharing `[auth] session_key`.

use crate::auth::session::{self, Login, Session, LOGIN_COOKIE, SESSION_COOKIE};
use crate::config::IssuerConfig;
use crate::service::Witness;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use std::sync::Arc;

/// Why a sign-in failed: shown to the person, logged without secrets.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct SignInError(String);

fn fail(why: impl Into<String>) -> SignInError {
    SignInError(why.into())
}

impl IntoResponse for SignInError {
    fn into_response(self) -> Response {
        tracing::warn!(error = %self.0, "console sign-in failed");
        let body = format!(
            "<!doctype html><meta charset=utf-8><title>witness: sign-in failed</title>\
             <p id=error>Sign-in failed: {}</p><p><a href=\"/\">Back to the console</a></p>",
            escape(&self.0)
        );
        let mut res = (StatusCode::UNAUTHORIZED, body).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        res.headers_mut().insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(super::console::CSP),
        );
        res
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub(crate) fn router() -> Router<Arc<Witness>> {
    Router::new()
        .route("/auth/login", get(login))
        .route("/auth/callback", get(callback))
        .route("/auth/logout", get(logout).post(logout))
}

/// The HTTP client for the provider: its own URLs only, no redirects.
fn http_client() -> Result<reqwest::Client, SignInError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| fail(format!("http client: {e}")))
}

/// Discovery, then the client as configured. Read afresh at each step: a
/// sign-in is rare and the provider's keys may have rotated.
async fn oidc_client(
    cfg: &IssuerConfig,
    http: &reqwest::Client,
) -> Result<
    CoreClient<
        openidconnect::EndpointSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointMaybeSet,
        openidconnect::EndpointMaybeSet,
    >,
    SignInError,
> {
    let issuer = IssuerUrl::new(cfg.issuer.clone()).map_err(|e| fail(format!("issuer: {e}")))?;
    let meta = CoreProviderMetadata::discover_async(issuer, http)
        .await
        .map_err(|e| fail(format!("issuer {}: discovery failed: {e}", cfg.name)))?;
    let secret =
        (!cfg.client_secret.is_empty()).then(|| ClientSecret::new(cfg.client_secret.clone()));
    let redirect = RedirectUrl::new(cfg.redirect_url.clone())
        .map_err(|e| fail(format!("redirect_url: {e}")))?;
    Ok(
        CoreClient::from_provider_metadata(meta, ClientId::new(cfg.client_id.clone()), secret)
            .set_redirect_uri(redirect),
    )
}

/// The console issuer named by `?issuer=`, or the only one.
fn console_issuer(w: &Witness, name: Option<&str>) -> Result<IssuerConfig, SignInError> {
    let auth = w.auth();
    let mut people = auth.issuers().iter().filter(|i| i.config.signs_in_people());
    let found = match name {
        Some(n) => people.find(|i| i.config.name == n),
        None => {
            let first = people.next();
            if people.next().is_some() {
                return Err(fail(
                    "several issuers sign people in: name one with ?issuer=NAME",
                ));
            }
            first
        }
    };
    found
        .map(|i| i.config.clone())
        .ok_or_else(|| fail("no [[issuers]] entry with client_id has that name"))
}

#[derive(Debug, serde::Deserialize)]
struct LoginQuery {
    issuer: Option<String>,
}

async fn login(
    State(w): State<Arc<Witness>>,
    Query(q): Query<LoginQuery>,
) -> Result<Response, SignInError> {
    let cfg = console_issuer(&w, q.issuer.as_deref())?;
    let http = http_client()?;
    let client = oidc_client(&cfg, &http).await?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client.authorize_url(
        CoreAuthenticationFlow::AuthorizationCode,
        CsrfToken::new_random,
        Nonce::new_random,
    );
    for scope in cfg.scopes.iter().filter(|s| *s != "openid") {
        request = request.add_scope(Scope::new(scope.clone()));
    }
    let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
    let auth = w.auth();
    let sessions = auth
        .sessions()
        .ok_or_else(|| fail("console sign-in is not configured"))?;
    let cookie = sessions.seal_login(&Login {
        issuer: cfg.name,
        state: state.secret().clone(),
        nonce: nonce.secret().clone(),
        pkce_verifier: verifier.secret().clone(),
        expires: session::now() + session::LOGIN_MAX_AGE.as_secs() as i64,
    });
    Ok(redirect(url.as_str(), &[cookie]))
}

#[derive(Debug, serde::Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

async fn callback(
    State(w): State<Arc<Witness>>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Result<Response, SignInError> {
    if let Some(e) = q.error {
        let more = q.error_description.unwrap_or_default();
        return Err(fail(format!("the identity provider said {e}: {more}")));
    }
    let auth = w.auth();
    let sessions = auth
        .sessions()
        .ok_or_else(|| fail("console sign-in is not configured"))?;
    let cookies = headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let login = sessions.open_login(cookies).ok_or_else(|| {
        fail("no sign-in in progress in this browser (or it took over 10 minutes): start again")
    })?;
    let state_ok = q.state.as_deref().is_some_and(|s| {
        subtle::ConstantTimeEq::ct_eq(s.as_bytes(), login.state.as_bytes()).into()
    });
    if !state_ok {
        return Err(fail("state: does not match this browser's sign-in"));
    }
    let code = q.code.ok_or_else(|| fail("code: missing"))?;
    let issuer = auth
        .issuers()
        .named(&login.issuer)
        .cloned()
        .ok_or_else(|| fail(format!("issuer {} is no longer configured", login.issuer)))?;
    let http = http_client()?;
    let client = oidc_client(&issuer.config, &http).await?;
    let token = client
        .exchange_code(AuthorizationCode::new(code))
        .map_err(|e| fail(format!("token endpoint: {e}")))?
        .set_pkce_verifier(PkceCodeVerifier::new(login.pkce_verifier))
        .request_async(&http)
        .await
        .map_err(|e| fail(format!("code exchange: {e}")))?;
    let id_token = token
        .id_token()
        .ok_or_else(|| fail("the provider sent no ID token"))?;
    let verifier = client.id_token_verifier().set_allowed_algs([
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        CoreJwsSigningAlgorithm::EcdsaP256Sha256,
        CoreJwsSigningAlgorithm::EdDsa,
    ]);
    let verified = id_token
        .claims(&verifier, &Nonce::new(login.nonce))
        .map_err(|e| fail(format!("ID token refused: {e}")))?;
    // Every claim (groups among them) of the token just verified.
    let claims = crate::auth::jwt::payload(&id_token.to_string())
        .map_err(|e| fail(format!("ID token: {e}")))?;
    let name = issuer
        .name_of(&claims)
        .map_err(|e| fail(format!("ID token: {e}")))?;
    let values = issuer.role_values(&claims);
    let roles = issuer.roles(&values);
    let max = session::now() + sessions.max_age.as_secs() as i64;
    let expires = verified.expiration().timestamp().min(max);
    tracing::info!(principal = %name, issuer = %issuer.config.name, ?roles, "console sign-in");
    let cookie = sessions.seal_session(&Session {
        principal: name,
        issuer: issuer.config.name.clone(),
        claims: values,
        expires,
    });
    Ok(redirect("/", &[cookie, session::clear(LOGIN_COOKIE)]))
}

async fn logout() -> Response {
    redirect("/", &[session::clear(SESSION_COOKIE)])
}

/// 303 to `to`, setting `cookies`.
fn redirect(to: &str, cookies: &[String]) -> Response {
    let mut res = StatusCode::SEE_OTHER.into_response();
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(to) {
        h.insert(header::LOCATION, v);
    }
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(c) {
            h.append(header::SET_COOKIE, v);
        }
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}
