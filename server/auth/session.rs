//! The console's session: one `__Host-witness` cookie, authenticated and
//! encrypted (AES-256-GCM, the `cookie` crate's private jar) with a key
//! derived from `[auth] session_key`, so any replica holding the key reads
//! it. It carries who signed in, through which issuer, the values of the
//! issuer's roles claim (roles are mapped on every request, so a reload's
//! `role_map` applies at once) and its expiry. The sign-in flow's own
//! state (PKCE verifier, `state`, `nonce`) rides in a second, short-lived
//! cookie sealed the same way, so the callback may land on any replica.

use cookie::{Cookie, CookieJar, Key, SameSite};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// The session cookie. `__Host-`: browsers accept it only Secure, from the
/// host itself, with `Path=/` (loopback counts as secure).
pub const SESSION_COOKIE: &str = "__Host-witness";
/// The sign-in flow's state, between `/auth/login` and `/auth/callback`.
pub const LOGIN_COOKIE: &str = "__Host-witness-login";
/// How long a sign-in may take at the provider.
pub const LOGIN_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(600);

/// A signed-in person.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Session {
    /// The principal.
    pub principal: String,
    /// The issuer's configured name.
    pub issuer: String,
    /// The values of the issuer's roles claim.
    pub claims: Vec<String>,
    /// Unix seconds after which the session is void.
    pub expires: i64,
}

/// A sign-in in progress.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Login {
    pub issuer: String,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
    pub expires: i64,
}

/// Seals and opens the cookies.
pub struct Sessions {
    key: Key,
    pub max_age: std::time::Duration,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("max_age", &self.max_age)
            .finish_non_exhaustive()
    }
}

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl Sessions {
    /// From the configured key's bytes (at least 32; HKDF derives the
    /// cipher's key from them).
    pub fn new(master: &[u8], max_age: std::time::Duration) -> Sessions {
        Sessions {
            key: Key::derive_from(master),
            max_age,
        }
    }

    /// A fresh random key, for a loopback server started without one.
    pub fn random(max_age: std::time::Duration) -> Sessions {
        Sessions {
            key: Key::generate(),
            max_age,
        }
    }

    fn seal<T: Serialize>(
        &self,
        name: &'static str,
        same_site: SameSite,
        value: &T,
        max_age: i64,
    ) -> String {
        let mut jar = CookieJar::new();
        let json = serde_json::to_string(value).unwrap_or_default();
        jar.private_mut(&self.key).add(Cookie::new(name, json));
        let mut c = jar
            .get(name)
            .cloned()
            .unwrap_or_else(|| Cookie::new(name, ""));
        c.set_secure(true);
        c.set_http_only(true);
        c.set_same_site(same_site);
        c.set_path("/");
        c.set_max_age(cookie::time::Duration::seconds(max_age.max(0)));
        c.to_string()
    }

    fn open<T: DeserializeOwned>(&self, name: &str, header: &str) -> Option<T> {
        let mut jar = CookieJar::new();
        for c in Cookie::split_parse(header.to_string()).flatten() {
            jar.add_original(c);
        }
        let c = jar.private(&self.key).get(name)?;
        serde_json::from_str(c.value()).ok()
    }

    /// `Set-Cookie` for a session.
    pub fn seal_session(&self, s: &Session) -> String {
        self.seal(SESSION_COOKIE, SameSite::Strict, s, s.expires - now())
    }

    /// The session in a `Cookie` header, if it is ours and not expired.
    pub fn open_session(&self, cookie_header: &str) -> Option<Session> {
        self.open::<Session>(SESSION_COOKIE, cookie_header)
            .filter(|s| s.expires > now())
    }

    /// `Set-Cookie` for a sign-in in progress.
    pub fn seal_login(&self, l: &Login) -> String {
        // The callback is a top-level navigation from the provider: Strict
        // would withhold this cookie there.
        self.seal(LOGIN_COOKIE, SameSite::Lax, l, l.expires - now())
    }

    /// The sign-in in progress, if it is ours and not stale.
    pub fn open_login(&self, cookie_header: &str) -> Option<Login> {
        self.open::<Login>(LOGIN_COOKIE, cookie_header)
            .filter(|l| l.expires > now())
    }
}

/// `Set-Cookie` that removes `name`.
pub fn clear(name: &str) -> String {
    format!("{name}=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Strict")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(set_cookie: &str) -> String {
        set_cookie.split(';').next().unwrap().to_string()
    }

    #[test]
    fn sessions_round_trip_under_one_key_and_refuse_others() {
        let a = Sessions::new(&[1u8; 32], std::time::Duration::from_secs(60));
        let b = Sessions::new(&[2u8; 32], std::time::Duration::from_secs(60));
        let s = Session {
            principal: "alice".into(),
            issuer: "corp".into(),
            claims: vec!["sre-team".into()],
            expires: now() + 60,
        };
        let set = a.seal_session(&s);
        assert!(set.starts_with("__Host-witness="), "{set}");
        for attr in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(set.contains(attr), "{attr} in {set}");
        }
        assert!(!set.contains("alice"), "the cookie is encrypted: {set}");
        assert_eq!(a.open_session(&header(&set)), Some(s.clone()));
        // A replica with the same key reads it; another key does not.
        let a2 = Sessions::new(&[1u8; 32], std::time::Duration::from_secs(60));
        assert_eq!(a2.open_session(&header(&set)), Some(s.clone()));
        assert_eq!(b.open_session(&header(&set)), None);
        // A flipped byte fails authentication.
        let mut forged = header(&set).into_bytes();
        let n = forged.len() - 3;
        forged[n] = if forged[n] == b'A' { b'B' } else { b'A' };
        assert_eq!(a.open_session(&String::from_utf8(forged).unwrap()), None);
        // An expired session is void.
        let old = Session {
            expires: now() - 1,
            ..s
        };
        assert_eq!(a.open_session(&header(&a.seal_session(&old))), None);
    }
}
