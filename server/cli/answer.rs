//! `witness answer ID approve|reject`, and its shortcuts `witness approve
//! ID` and `witness reject ID`.

use super::errors::{self, CliError, Result};
use super::output::Printer;
use super::{exit, fresh_id, opt_json_arg, Conn, VerdictArg};
use crate::proto;
use clap::Args;

/// Everything an answer says besides the decision and the verdict.
#[derive(Args, Debug)]
pub struct VoteArgs {
    /// Why (required, recorded in the audit log and the receipt).
    #[arg(long)]
    pub rationale: String,
    /// Answer payload: JSON, or @FILE.
    #[arg(long)]
    pub answer: Option<String>,
    /// The context as you see it: JSON, or @FILE.
    #[arg(long)]
    pub context: Option<String>,
    /// Answer for this operator (needs `can_act_for` in the config).
    #[arg(long, default_value = "")]
    pub on_behalf_of: String,
    /// Idempotency key (default: a fresh UUID).
    #[arg(long)]
    pub request_id: Option<String>,
    #[command(flatten)]
    pub conn: Conn,
}

/// Sends the answer and prints the outcome.
pub(super) async fn run(id: &str, verdict: VerdictArg, a: VoteArgs) -> Result<i32> {
    errors::decision_id(id)?;
    if a.conn.anonymous() {
        return Err(CliError::NeedsIdentity);
    }
    let p = Printer::new(a.conn.json);
    let req = proto::AnswerRequest {
        decision_id: id.to_string(),
        request_id: a.request_id.clone().unwrap_or_else(fresh_id),
        verdict: match verdict {
            VerdictArg::Approve => proto::Verdict::Approve,
            VerdictArg::Reject => proto::Verdict::Reject,
        } as i32,
        answer: opt_json_arg("--answer", &a.answer)?,
        rationale: a.rationale.clone(),
        current_context: opt_json_arg("--context", &a.context)?,
        on_behalf_of: a.on_behalf_of.clone(),
    };
    let mut c = a.conn.client().await?;
    let resp = c.answer(req).await?.into_inner();
    p.answered(&resp);
    Ok(exit::OK)
}
