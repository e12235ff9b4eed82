//! `witness audit …`: local subcommands on the store's log. `verify`
//! checks the hash chain and the projection; `lost` tells which
//! acknowledged decisions the store no longer has as acknowledged (after a
//! failover to an asynchronous standby that had not received them), so
//! that their askers can be told to ask again.

use super::errors::{CliError, Result};
use super::output;
use crate::config::Config;
use clap::Subcommand;
use serde_json::json;
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Check the hash chain and the projection; exit 1 at the first problem.
    Verify {
        /// TOML configuration file naming the store (default: sqlite://witness.db).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// List the acknowledged decisions the store lost: absent, or behind
    /// the version acknowledged (an answer or close lost); exit 1 if any.
    Lost {
        /// What was acknowledged, one decision a line: its id, or a JSON
        /// object with `id` and optionally `version` (a line of `witness
        /// ask --json`, or of the asker's log); `-` reads standard input.
        /// Blank lines and lines starting with `#` are skipped.
        #[arg(long, value_name = "FILE")]
        acked: PathBuf,
        /// TOML configuration file naming the store (default: sqlite://witness.db).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `witness audit …`.
pub(crate) async fn run(cmd: AuditCommand) -> Result {
    match cmd {
        AuditCommand::Verify { config, json } => {
            let config = Config::load(config.as_deref())?;
            let store =
                crate::store::open_existing(&config.store.url, &config.store.pg_options()).await?;
            let report = crate::audit::verify(store.as_ref()).await?;
            Ok(output::audit(&report, json))
        }
        AuditCommand::Lost {
            acked,
            config,
            json,
        } => lost(&acked, config, json).await,
    }
}

/// One acknowledged decision: its id, and the version acknowledged.
#[derive(Debug, PartialEq)]
pub(crate) struct Acked {
    pub id: String,
    pub version: Option<u64>,
}

/// Parses the `--acked` file's lines (1-based line numbers in errors).
pub(crate) fn parse_acked(text: &str) -> std::result::Result<Vec<Acked>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |why: &str| format!("line {}: {why}: {line:.80}", n + 1);
        if line.starts_with('{') {
            let v: serde_json::Value =
                serde_json::from_str(line).map_err(|e| bad(&format!("not JSON ({e})")))?;
            // `witness ask --json` prints the decision; an AskResponse
            // (or a log line holding one) nests it under `decision`.
            let d = if v.get("id").is_some() {
                &v
            } else {
                &v["decision"]
            };
            let id = d["id"]
                .as_str()
                .ok_or_else(|| bad("a JSON line needs a string `id`"))?;
            let version = match &d["version"] {
                serde_json::Value::Null => None,
                v => Some(
                    v.as_u64()
                        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                        .ok_or_else(|| bad("`version` is not a number"))?,
                ),
            };
            out.push(Acked {
                id: checked_id(id).map_err(|e| bad(&e))?,
                version,
            });
        } else {
            out.push(Acked {
                id: checked_id(line).map_err(|e| bad(&e))?,
                version: None,
            });
        }
    }
    Ok(out)
}

fn checked_id(id: &str) -> std::result::Result<String, String> {
    uuid::Uuid::parse_str(id)
        .map(|_| id.to_string())
        .map_err(|_| "not a decision id (a UUID)".to_string())
}

async fn lost(acked: &PathBuf, config: Option<PathBuf>, as_json: bool) -> Result {
    let text = if acked.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(acked)
    }
    .map_err(|source| CliError::File {
        path: acked.clone(),
        source,
    })?;
    let list = parse_acked(&text).map_err(|message| CliError::BadArgument {
        flag: "--acked",
        message,
    })?;
    let config = Config::load(config.as_deref())?;
    let store = crate::store::open_existing(&config.store.url, &config.store.pg_options()).await?;
    let mut lost = Vec::new();
    for a in &list {
        let stored = store.get(&a.id).await?.map(|d| d.version);
        let is_lost = match (stored, a.version) {
            (None, _) => true,
            (Some(s), Some(v)) => s < v,
            (Some(_), None) => false,
        };
        if is_lost {
            lost.push((a, stored));
        }
    }
    if as_json {
        let doc = json!({
            "acknowledged": list.len(),
            "lost": lost.iter().map(|(a, stored)| json!({
                "id": a.id,
                "acknowledged_version": a.version,
                "stored_version": stored,
            })).collect::<Vec<_>>(),
        });
        println!("{doc}");
    } else {
        for (a, stored) in &lost {
            match (stored, a.version) {
                (None, _) => println!("lost {}: not in the store", a.id),
                (Some(s), Some(v)) => println!(
                    "lost {}: acknowledged at version {v}, the store has version {s}",
                    a.id
                ),
                (Some(_), None) => {}
            }
        }
        println!(
            "{} acknowledged, {} lost{}",
            list.len(),
            lost.len(),
            if lost.is_empty() {
                ""
            } else {
                ": ask these again"
            }
        );
    }
    Ok(if lost.is_empty() { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::{parse_acked, Acked};

    const ID: &str = "0190f3c2-7c1e-7b9a-9c3e-2f4d5e6f7a8b";

    #[test]
    fn acked_lines_are_ids_or_decisions_as_json() {
        let text = format!(
            "# from the asker's log\n{ID}\n\n{{\"id\":\"{ID}\",\"version\":3}}\n{{\"created\":true,\"decision\":{{\"id\":\"{ID}\",\"version\":\"2\"}}}}\n"
        );
        let got = parse_acked(&text).expect("parses");
        let want = |version| Acked {
            id: ID.into(),
            version,
        };
        assert_eq!(got, vec![want(None), want(Some(3)), want(Some(2))]);
    }

    #[test]
    fn a_bad_line_is_refused_with_its_number() {
        let err = parse_acked(&format!("{ID}\nnot-an-id\n")).unwrap_err();
        assert!(err.starts_with("line 2: not a decision id"), "{err}");
        let err = parse_acked("{\"version\":1}\n").unwrap_err();
        assert!(
            err.contains("line 1: a JSON line needs a string `id`"),
            "{err}"
        );
    }
}
