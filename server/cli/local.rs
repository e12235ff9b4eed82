//! Local subcommands that work on the store directly (no server needed).

use super::errors::{CliError, Result};
use crate::config::Config;
use crate::store::{now_micros, OutboxItem, OutboxStatus};
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum OutboxCommand {
    /// Show webhook deliveries, newest first.
    List {
        /// TOML configuration file naming the store (default: sqlite://witness.db).
        #[arg(long)]
        config: Option<PathBuf>,
        /// pending, delivered or dead.
        #[arg(long)]
        status: Option<String>,
        /// Most deliveries to show.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Put a dead delivery (or all of them) back in line now.
    Retry {
        /// The delivery id (from `outbox list`).
        id: Option<i64>,
        /// TOML configuration file naming the store (default: sqlite://witness.db).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Every dead delivery.
        #[arg(long, conflicts_with = "id")]
        all_dead: bool,
    },
}

fn micros_text(us: i64) -> String {
    super::output::rfc3339(us)
}

fn item_json(i: &OutboxItem) -> serde_json::Value {
    serde_json::json!({
        "id": i.id, "webhook": i.webhook, "decision_id": i.decision_id, "sequence": i.sequence,
        "event_type": i.event_type.as_str(), "status": i.status.as_str(), "attempts": i.attempts,
        "next_attempt_at": micros_text(i.next_attempt_at), "last_error": i.last_error,
        "delivered_at": i.delivered_at.map(micros_text),
    })
}

/// The configured store, which must exist: the outbox commands read or
/// retry what a server wrote, so a missing SQLite file is an error, never a
/// new empty database.
async fn open(config: Option<PathBuf>) -> Result<std::sync::Arc<dyn crate::store::Store>> {
    let config = Config::load(config.as_deref())?;
    Ok(crate::store::open_existing(&config.store.url, &config.store.pg_options()).await?)
}

/// Runs `witness outbox …`.
pub(crate) async fn outbox(cmd: OutboxCommand) -> Result {
    match cmd {
        OutboxCommand::List {
            config,
            status,
            limit,
            json,
        } => {
            let status = match status.as_deref() {
                None => None,
                Some(s) => Some(OutboxStatus::parse(s).ok_or_else(|| CliError::BadArgument {
                    flag: "--status",
                    message: format!("unknown status {s:?}"),
                })?),
            };
            let store = open(config).await?;
            let items = store.outbox_list(status, limit).await?;
            for i in &items {
                if json {
                    println!("{}", item_json(i));
                } else {
                    println!(
                        "{:>6} {:<9} tries {:<2} {:<12} {} seq {} {}  next {}{}",
                        i.id,
                        i.status.as_str(),
                        i.attempts,
                        i.webhook,
                        i.decision_id,
                        i.sequence,
                        i.event_type,
                        micros_text(i.next_attempt_at),
                        i.last_error
                            .as_deref()
                            .map(|e| format!("  last error: {e}"))
                            .unwrap_or_default()
                    );
                }
            }
            Ok(0)
        }
        OutboxCommand::Retry {
            id,
            config,
            all_dead,
        } => {
            if id.is_none() && !all_dead {
                return Err(CliError::Usage(
                    "outbox retry: give a delivery id or --all-dead",
                ));
            }
            let store = open(config).await?;
            let n = store.outbox_retry(id, now_micros()).await?;
            println!(
                "{n} deliver{} queued again",
                if n == 1 { "y" } else { "ies" }
            );
            Ok(if n == 0 && id.is_some() { 1 } else { 0 })
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Print every key of the config file, its default and its meaning
    /// (Markdown; the book's configuration page embeds it).
    Reference,
    /// Validate FILE (with the WITNESS__ environment) as `serve` and a
    /// SIGHUP reload would, and print what a reload from the running
    /// config (--running, default: no file) would change.
    Check {
        /// The config file to check.
        file: PathBuf,
        /// The config the server runs now, to compare against.
        #[arg(long)]
        running: Option<PathBuf>,
    },
}

/// Runs `witness config …`.
pub(crate) fn config(cmd: ConfigCommand) -> i32 {
    match cmd {
        ConfigCommand::Reference => print!("{}", crate::config::reference()),
        ConfigCommand::Check { file, running } => return config_check(&file, running.as_deref()),
    }
    super::exit::OK
}

fn config_check(file: &std::path::Path, running: Option<&std::path::Path>) -> i32 {
    let new = match Config::load(Some(file)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return super::exit::ERROR;
        }
    };
    if let Err(e) = crate::reload::live(&new, None) {
        eprintln!("error: config: {e}");
        return super::exit::ERROR;
    }
    let old = match running.map(|p| Config::load(Some(p))).transpose() {
        Ok(old) => old,
        Err(e) => {
            eprintln!("error: --running: {e}");
            return super::exit::ERROR;
        }
    };
    println!("{}: valid", file.display());
    let Some(old) = old else {
        return super::exit::OK;
    };
    let changes = crate::reload::diff(&old, &new);
    if changes.is_empty() {
        println!("a reload would change nothing");
    } else {
        println!("a reload would change:");
        for c in &changes {
            println!("  {c}");
        }
    }
    if crate::reload::restart_keys(&old, &new).is_empty() {
        super::exit::OK
    } else {
        println!("a reload would be refused: restart to apply the keys marked \"needs a restart\"");
        super::exit::ERROR
    }
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Print a fresh random bearer token once, and the config entry with its hash.
    New {
        /// The principal's name (what the audit log records).
        name: String,
        /// Roles of the new principal (comma-separated).
        #[arg(long, value_delimiter = ',')]
        roles: Vec<String>,
    },
}

/// Runs `witness token …`.
pub(crate) fn token(cmd: TokenCommand) -> i32 {
    let TokenCommand::New { name, roles } = cmd;
    use base64::Engine;
    let token = format!(
        "wit_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
    );
    let roles: Vec<String> = roles.iter().map(|r| format!("{r:?}")).collect();
    println!("# The token is shown only this once: give it to {name} and keep it secret.");
    println!("# token: {token}");
    println!("[[principals]]");
    println!("name = {name:?}");
    println!("token_sha256 = \"{}\"", crate::auth::token_sha256(&token));
    println!("roles = [{}]", roles.join(", "));
    0
}

#[derive(Subcommand, Debug)]
pub enum ReceiptCommand {
    /// Fetch a closed decision's signed receipt and write it as one JSON file.
    Get {
        /// The decision id.
        id: String,
        /// Output file (default: stdout).
        #[arg(long, short)]
        out: Option<PathBuf>,
        #[command(flatten)]
        conn: super::Conn,
    },
    /// Verify a receipt file offline; exit 0 when valid, 1 when not.
    Verify {
        /// The receipt file (as `receipt get` writes it).
        file: PathBuf,
        /// File holding the server's public key (as `receipt public-key` prints it).
        #[arg(long)]
        public_key: PathBuf,
    },
    /// Print the server's receipt public key (from its key file).
    PublicKey {
        /// The server's TOML configuration (for `[receipts] key_file`).
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

/// Runs `witness receipt …`.
pub(crate) async fn receipt(cmd: ReceiptCommand) -> Result {
    use base64::Engine;
    match cmd {
        ReceiptCommand::Get { id, out, conn } => {
            super::errors::decision_id(&id)?;
            let mut c = conn.client().await?;
            let resp = c
                .get_decision(crate::proto::GetDecisionRequest {
                    decision_id: id.clone(),
                })
                .await?
                .into_inner();
            let r = resp.receipt.ok_or(CliError::NoReceipt(id))?;
            let file = crate::receipts::ReceiptFile {
                body: r.body,
                signature: base64::engine::general_purpose::STANDARD.encode(r.signature),
                key_id: r.key_id,
            };
            let text = serde_json::to_string_pretty(&file).map_err(CliError::Encode)? + "\n";
            match out {
                Some(path) => {
                    std::fs::write(&path, text)
                        .map_err(|source| CliError::File { path, source })?;
                }
                None => print!("{text}"),
            }
            Ok(0)
        }
        ReceiptCommand::Verify { file, public_key } => {
            let read = |path: &PathBuf| {
                std::fs::read_to_string(path).map_err(|source| CliError::File {
                    path: path.clone(),
                    source,
                })
            };
            let text = read(&file)?;
            let key = read(&public_key)?;
            let receipt: crate::receipts::ReceiptFile = match serde_json::from_str(&text) {
                Ok(r) => r,
                Err(e) => {
                    println!("invalid: not a receipt file: {e}");
                    return Ok(1);
                }
            };
            match crate::receipts::verify(&receipt, &key) {
                Ok(()) => {
                    println!("valid: {}", receipt.body);
                    Ok(0)
                }
                Err(e) => {
                    println!("invalid: {e}");
                    Ok(1)
                }
            }
        }
        ReceiptCommand::PublicKey { config } => {
            let config = Config::load(config.as_deref())?;
            let key = crate::receipts::ReceiptKey::load(&config.receipt_key_file())?;
            println!("{}", key.public_key_hex());
            Ok(0)
        }
    }
}
