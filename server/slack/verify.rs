//! Slack's request signing (v0): `X-Slack-Signature` is
//! `v0=` hex HMAC-SHA256 of `v0:{X-Slack-Request-Timestamp}:{raw body}`
//! under the app's signing secret. A request is accepted once: within five
//! minutes of its timestamp, and never again with the same signature.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::Mutex;
use subtle::ConstantTimeEq;

/// How far a request's timestamp may be from now (Slack's advice).
pub const WINDOW_SECS: i64 = 5 * 60;

/// Why a request is refused (the 401's text; never the expected value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("missing X-Slack-Request-Timestamp or X-Slack-Signature")]
    Missing,
    #[error("X-Slack-Request-Timestamp is more than 5 minutes from now")]
    Stale,
    #[error("X-Slack-Signature does not match")]
    BadSignature,
    #[error("this request was already received (replay)")]
    Replayed,
}

/// `v0=HEX(HMAC-SHA256(secret, "v0:" TIMESTAMP ":" BODY))`.
pub fn signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .expect("HMAC accepts any key length");
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

/// The signatures seen within the window, to refuse replays.
#[derive(Debug, Default)]
pub struct Replays {
    seen: Mutex<HashMap<String, i64>>,
}

impl Replays {
    /// Checks one request at `now` (Unix seconds); records it when accepted.
    pub fn check(
        &self,
        secret: &str,
        timestamp: Option<&str>,
        sig: Option<&str>,
        body: &[u8],
        now: i64,
    ) -> Result<(), Refused> {
        let (Some(timestamp), Some(sig)) = (timestamp, sig) else {
            return Err(Refused::Missing);
        };
        let ts: i64 = timestamp.trim().parse().map_err(|_| Refused::Stale)?;
        if (now - ts).abs() > WINDOW_SECS {
            return Err(Refused::Stale);
        }
        let want = signature(secret, timestamp, body);
        if !bool::from(want.as_bytes().ct_eq(sig.as_bytes())) {
            return Err(Refused::BadSignature);
        }
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Entries older than the window can no longer pass the timestamp
        // check, so they need not be kept.
        seen.retain(|_, at| now - *at <= WINDOW_SECS);
        if seen.insert(want, ts).is_some() {
            return Err(Refused::Replayed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slacks_documented_example() {
        // The example in Slack's "Verifying requests from Slack" guide.
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        assert_eq!(
            signature("8f742231b10e8888abcd99yyyzzz85a5", "1531420618", body),
            "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
        );
    }

    #[test]
    fn refuses_stale_forged_and_replayed() {
        let r = Replays::default();
        let body = b"payload=%7B%7D";
        let sig = signature("s", "1000", body);
        let check = |ts: &str, sig: &str, now| r.check("s", Some(ts), Some(sig), body, now);
        assert_eq!(check("1000", &sig, 1000 + 301), Err(Refused::Stale));
        assert_eq!(check("1000", "v0=00", 1000), Err(Refused::BadSignature));
        let other = signature("t", "1000", body);
        assert_eq!(check("1000", &other, 1000), Err(Refused::BadSignature));
        assert_eq!(check("1000", &sig, 1000), Ok(()));
        assert_eq!(check("1000", &sig, 1010), Err(Refused::Replayed));
        assert_eq!(
            r.check("s", None, Some(&sig), body, 1000),
            Err(Refused::Missing)
        );
    }
}
