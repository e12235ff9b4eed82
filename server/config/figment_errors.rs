//! Turns figment's extraction errors into messages that name the file (or
//! environment variable) and the dotted key a user wrote, without figment's
//! internal `default.` profile prefix or its doubled backticks.

use figment::error::Kind;
use figment::Source;

/// Keys that earlier releases accepted and this one refuses, with what to
/// do instead (see CHANGELOG.md).
const REMOVED: &[(&str, &str)] = &[(
    "streams.subscriber_buffer",
    "was removed in 0.2.0: each stream is now bounded by its HTTP/2 flow-control \
     window, and how far a subscriber may fall behind by [streams] ring; remove it",
)];

/// One line per problem figment found.
pub(super) fn describe(error: figment::Error) -> String {
    error
        .into_iter()
        .map(|e| one(&e))
        .collect::<Vec<_>>()
        .join("; ")
}

fn one(e: &figment::Error) -> String {
    let key = dotted(&e.path);
    let source = source(e);
    let what = match &e.kind {
        Kind::UnknownField(field, expected) => {
            // The path of an unknown field already ends with the field.
            let full = if key.is_empty() {
                field.clone()
            } else {
                key.clone()
            };
            if let Some((_, why)) = REMOVED.iter().find(|(k, _)| *k == full) {
                return format!("{source}: {full} {why}");
            }
            return format!(
                "{source}: unknown key {full}{}",
                known(" (known keys here: ", expected, ")")
            );
        }
        Kind::UnknownVariant(found, expected) => {
            format!(
                "unknown value {found:?}{}",
                known(" (expected one of: ", expected, ")")
            )
        }
        Kind::MissingField(field) => {
            let full = if key.is_empty() {
                field.to_string()
            } else {
                format!("{key}.{field}")
            };
            return format!("{source}: missing key {full}");
        }
        other => other.to_string(),
    };
    if key.is_empty() {
        format!("{source}: {what}")
    } else {
        format!("{source}: {key}: {what}")
    }
}

/// `webhooks.0.format` as the user reads it elsewhere: `webhooks[0].format`.
fn dotted(path: &[String]) -> String {
    let mut out = String::new();
    for part in path {
        if part.bytes().all(|b| b.is_ascii_digit()) && !out.is_empty() {
            out.push_str(&format!("[{part}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(part);
        }
    }
    out
}

fn known(before: &str, expected: &[&str], after: &str) -> String {
    if expected.is_empty() {
        String::new()
    } else {
        format!("{before}{}{after}", expected.join(", "))
    }
}

/// The file a value came from, or the environment variable that set it.
fn source(e: &figment::Error) -> String {
    match e.metadata.as_ref().and_then(|m| m.source.as_ref()) {
        Some(Source::File(path)) => path.display().to_string(),
        Some(other) => other.to_string(),
        None if e.metadata.is_some() => {
            let var: Vec<String> = e.path.iter().map(|k| k.to_ascii_uppercase()).collect();
            format!("environment variable WITNESS__{}", var.join("__"))
        }
        None => "configuration".to_string(),
    }
}
