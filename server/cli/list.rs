//! `witness list`: open decisions first, newest first, in aligned columns.

use super::errors::{CliError, Result};
use super::{output, ListArgs};
use crate::proto;
use crate::proto::convert::micros_from_timestamp;
use serde_json::json;

/// Runs `witness list`.
pub(super) async fn run(a: ListArgs) -> Result {
    let statuses = a
        .status
        .iter()
        .map(|s| {
            crate::core::Status::parse(s)
                .map(|st| crate::api::convert::status(st) as i32)
                .ok_or_else(|| CliError::BadArgument {
                    flag: "--status",
                    message: format!(
                        "unknown status {s:?} (one of open, approved, rejected, cancelled, \
                         expired, context_changed)"
                    ),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut c = a.conn.client().await?;
    let mut token = a.page_token.clone();
    let mut all = Vec::new();
    loop {
        let req = proto::ListDecisionsRequest {
            statuses: statuses.clone(),
            kinds: a.kind.clone(),
            page_size: a.page_size,
            page_token: token,
        };
        let resp = c.list_decisions(req).await?.into_inner();
        all.extend(resp.decisions);
        token = resp.next_page_token;
        if !a.all || token.is_empty() {
            break;
        }
    }
    if a.conn.json {
        // Scripts get the server's order (creation order, as paged).
        let doc = json!({
            "decisions": all.iter().map(output::decision_json).collect::<Vec<_>>(),
            "next_page_token": token,
        });
        println!("{doc}");
        return Ok(super::exit::OK);
    }
    let anonymous = a.conn.principal.is_none() && a.conn.token.is_none();
    if all.is_empty() {
        if anonymous {
            println!("{ANONYMOUS_EMPTY}");
        } else {
            println!(
                "no decisions visible to you (you see those you asked and those whose \
                 authorized roles you hold)"
            );
        }
    } else {
        sort(&mut all);
        let now = crate::store::now_micros();
        print!("{}", table(&all, now));
        if anonymous {
            eprintln!("note: {ANONYMOUS_NOTE}");
        }
    }
    if !token.is_empty() {
        println!("(more: --page-token {token}, or --all)");
    }
    Ok(super::exit::OK)
}

const ANONYMOUS_NOTE: &str = "no --as or --token: you are anonymous, who sees only the \
     decisions it asked itself (dev mode: --as NAME --roles ROLE,... to see what NAME may answer)";

const ANONYMOUS_EMPTY: &str = "no decisions: without --as or --token you are anonymous, who sees \
     only the decisions it asked itself (dev mode: --as NAME --roles ROLE,... to see what NAME \
     may answer)";

/// Open decisions first, then newest first (ids are UUIDv7: creation order
/// breaks ties).
fn sort(ds: &mut [proto::Decision]) {
    ds.sort_by(|a, b| {
        let open = |d: &proto::Decision| d.status == proto::Status::Open as i32;
        let created = |d: &proto::Decision| d.created_at.as_ref().map(micros_from_timestamp);
        open(b)
            .cmp(&open(a))
            .then_with(|| created(b).cmp(&created(a)))
            .then_with(|| b.id.cmp(&a.id))
    });
}

/// A header and one row per decision, every column padded to its widest
/// cell; the last column is free text.
pub(super) fn table(ds: &[proto::Decision], now_us: i64) -> String {
    let mut rows = vec![[
        "ID".to_string(),
        "STATUS".into(),
        "KIND".into(),
        "APPROVALS".into(),
        "ROLES".into(),
        "ASKED BY".into(),
        "AGE".into(),
    ]];
    for d in ds {
        let approvals = d
            .answers
            .iter()
            .filter(|a| a.verdict == proto::Verdict::Approve as i32)
            .count();
        let age = d
            .created_at
            .as_ref()
            .map(|t| age(now_us.saturating_sub(micros_from_timestamp(t))))
            .unwrap_or_default();
        rows.push([
            output::shown(&d.id).into_owned(),
            output::status_name(d.status),
            output::shown(&d.kind).into_owned(),
            format!("{approvals}/{}", d.required_approvals),
            output::shown(&d.authorized_roles.join(",")).into_owned(),
            output::shown(&d.asked_by).into_owned(),
            age,
        ]);
    }
    let mut widths = [0usize; 7];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// "42s", "5m", "3h", "2d": how long ago, coarsely.
fn age(us: i64) -> String {
    let s = us.max(0) / 1_000_000;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(id: &str, status: proto::Status, created_s: i64, kind: &str) -> proto::Decision {
        proto::Decision {
            id: id.into(),
            kind: kind.into(),
            status: status as i32,
            created_at: Some(prost_types::Timestamp {
                seconds: created_s,
                nanos: 0,
            }),
            required_approvals: 1,
            authorized_roles: vec!["sre".into()],
            asked_by: "svc".into(),
            ..Default::default()
        }
    }

    #[test]
    fn open_first_then_newest_first_in_aligned_columns() {
        let mut ds = vec![
            d("a", proto::Status::Approved, 300, "deploy.production"),
            d("b", proto::Status::Open, 100, "x"),
            d("c", proto::Status::Open, 200, "db.failover"),
            d("d", proto::Status::Rejected, 400, "y"),
        ];
        sort(&mut ds);
        let ids: Vec<_> = ds.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["c", "b", "d", "a"]);
        let text = table(&ds, 400 * 1_000_000);
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 5);
        assert!(lines[0].starts_with("ID  STATUS    KIND"), "{text}");
        // Every row's KIND column starts where the header's does.
        let at = lines[0].find("KIND").unwrap();
        for l in &lines[1..] {
            assert_ne!(&l[at..at + 1], " ", "{text}");
            assert_eq!(&l[at - 2..at], "  ", "{text}");
        }
        assert!(
            lines[1].contains("OPEN") && lines[1].ends_with("3m"),
            "{text}"
        );
        assert!(lines[4].starts_with("a   APPROVED"), "{text}");
    }

    #[test]
    fn ages_are_coarse_and_never_negative() {
        assert_eq!(age(-5), "0s");
        assert_eq!(age(59_000_000), "59s");
        assert_eq!(age(3_600_000_000), "1h");
        assert_eq!(age(200_000 * 1_000_000), "2d");
    }
}
