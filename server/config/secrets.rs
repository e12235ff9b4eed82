//! Secrets kept out of the config file: a key written as `secret = "…"` may
//! instead be `secret_file = "/path"` (the file's content, one trailing
//! newline trimmed) or `secret_env = "VAR"` (that variable's value). An
//! array entry cannot be overridden by a `WITNESS__WEBHOOKS__0__SECRET`
//! variable (figment would merge a map into the array), so this is how
//! secrets of `[[webhooks]]` reach a systemd `EnvironmentFile`; `[store]`
//! takes the database password the same way (`password_file`,
//! `password_env`). Errors name the key, never the value.

use super::{ConfigError, Result};
use std::path::{Path, PathBuf};

/// Where one secret may come from, as written in the config.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sources<'a> {
    /// The key, e.g. `webhooks[0].secret`; `_file` and `_env` are its siblings.
    pub key: &'a str,
    pub inline: &'a str,
    pub file: Option<&'a Path>,
    pub env: Option<&'a str>,
}

/// The secret, from whichever one source is set; empty when none is.
pub(super) fn resolve(s: Sources<'_>) -> Result<String> {
    let key = s.key;
    let set = usize::from(!s.inline.is_empty())
        + usize::from(s.file.is_some())
        + usize::from(s.env.is_some());
    if set > 1 {
        return Err(ConfigError(format!(
            "{key}: set only one of {key}, {key}_file and {key}_env"
        )));
    }
    if let Some(path) = s.file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("{key}_file: cannot read {}: {e}", path.display())))?;
        let text = text.strip_suffix('\n').unwrap_or(&text);
        let text = text.strip_suffix('\r').unwrap_or(text);
        if text.is_empty() {
            return Err(ConfigError(format!(
                "{key}_file: {} is empty",
                path.display()
            )));
        }
        return Ok(text.to_string());
    }
    if let Some(var) = s.env {
        return match std::env::var(var) {
            Ok(v) if !v.is_empty() => Ok(v),
            Ok(_) => Err(ConfigError(format!(
                "{key}_env: the environment variable {var} is empty"
            ))),
            Err(_) => Err(ConfigError(format!(
                "{key}_env: the environment variable {var} is not set"
            ))),
        };
    }
    Ok(s.inline.to_string())
}

/// `url` with `password` as its password (percent-encoded), for
/// `postgres://USER@HOST…` URLs that carry none.
pub(super) fn with_password(url: &str, password: &str) -> Result<String> {
    let refuse = |why: &str| {
        Err(ConfigError(format!(
            "store.password_file / password_env: {why}"
        )))
    };
    let Some(rest) = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
    else {
        return refuse("only a postgres:// store URL takes a password");
    };
    let scheme = &url[..url.len() - rest.len()];
    let Some((user, host)) = rest.split_once('@') else {
        return refuse("store.url must name the user (postgres://USER@HOST/DB)");
    };
    if user.contains(':') {
        return refuse("store.url already carries a password; keep it in one place");
    }
    let encoded: String = password
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    Ok(format!("{scheme}{user}:{encoded}@{host}"))
}

/// A path for `PathBuf` fields, borrowed.
pub(super) fn path(p: &Option<PathBuf>) -> Option<&Path> {
    p.as_deref()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources<'a>(inline: &'a str, file: Option<&'a Path>, env: Option<&'a str>) -> Sources<'a> {
        Sources {
            key: "webhooks[0].secret",
            inline,
            file,
            env,
        }
    }

    #[test]
    fn one_source_each_named_in_errors_never_quoted() {
        assert_eq!(resolve(sources("inline", None, None)).unwrap(), "inline");
        assert_eq!(resolve(sources("", None, None)).unwrap(), "");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("hook.secret");
        std::fs::write(&f, "from-a-file\n").unwrap();
        assert_eq!(resolve(sources("", Some(&f), None)).unwrap(), "from-a-file");
        std::env::set_var("WITNESS_TEST_SECRET_7F3A", "from-the-env");
        let env = Some("WITNESS_TEST_SECRET_7F3A");
        assert_eq!(resolve(sources("", None, env)).unwrap(), "from-the-env");
        let e = resolve(sources("inline", Some(&f), None)).unwrap_err().0;
        assert!(e.contains("set only one of webhooks[0].secret"), "{e}");
        assert!(!e.contains("inline") || !e.contains("from-a-file"), "{e}");
        let e = resolve(sources("", None, Some("WITNESS_TEST_UNSET_9C1")))
            .unwrap_err()
            .0;
        assert_eq!(
            e,
            "webhooks[0].secret_env: the environment variable WITNESS_TEST_UNSET_9C1 is not set"
        );
        let missing = dir.path().join("nope");
        let e = resolve(sources("", Some(&missing), None)).unwrap_err().0;
        assert!(e.starts_with("webhooks[0].secret_file: cannot read"), "{e}");
    }

    #[test]
    fn a_password_goes_into_a_postgres_url_encoded() {
        assert_eq!(
            with_password(
                "postgres://witness@db1,db2/w?target_session_attrs=read-write",
                "p@ss:w/rd"
            )
            .unwrap(),
            "postgres://witness:p%40ss%3Aw%2Frd@db1,db2/w?target_session_attrs=read-write"
        );
        assert!(with_password("postgres://w:x@h/db", "y").is_err());
        assert!(with_password("sqlite://witness.db", "y").is_err());
        assert!(with_password("postgres://h/db", "y").is_err());
    }
}
