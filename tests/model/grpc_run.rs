//! (b) Running commands against the real server over gRPC and comparing
//! each response and the decision read back with the model.

use crate::common::*;
use crate::reference::{ctx_value, Cmd, Model, Res, Seen, ASKER};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// The proto status name without its prefix.
fn proto_status(s: i32) -> String {
    proto::Status::try_from(s)
        .map(|s| s.as_str_name().trim_start_matches("STATUS_").to_string())
        .unwrap_or_default()
}

fn grpc_result<T>(r: Result<tonic::Response<T>, tonic::Status>, ok: impl Fn(T) -> Res) -> Res {
    match r {
        Ok(resp) => ok(resp.into_inner()),
        Err(s) => match s.code() {
            tonic::Code::NotFound => Res::NotFound,
            tonic::Code::PermissionDenied => Res::Denied,
            tonic::Code::FailedPrecondition => Res::Precondition,
            tonic::Code::InvalidArgument => Res::Invalid,
            other => panic!("unexpected {other:?}: {}", s.message()),
        },
    }
}

/// (b) The real server, over gRPC, against the model.
pub(crate) async fn run_server(
    clients: &[witness::client::GrpcClient],
    shape: (usize, bool, Option<i64>),
    cmds: &[Cmd],
) -> Result<(), TestCaseError> {
    let (required, has_ctx, _) = shape;
    let mut model = Model::new(true, required, has_ctx, None);
    let mut req = ask("model.k", &["sre"], required as u32, None);
    req.context_snapshot = has_ctx.then(|| json(ctx_value(true)));
    let id = clients[ASKER]
        .clone()
        .ask(req)
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap()
        .id;
    for (i, cmd) in cmds.iter().enumerate() {
        let expected = model.step(cmd);
        let got = match *cmd {
            Cmd::Answer {
                who,
                approve: yes,
                ctx,
                empty_rationale,
            } => {
                let mut a = if yes {
                    approve(&id, "looked")
                } else {
                    reject(&id, "looked")
                };
                if empty_rationale {
                    a.rationale = " ".into();
                }
                a.current_context = ctx.map(|same| json(ctx_value(same)));
                let r = clients[who].clone().answer(a).await;
                grpc_result(r, |r| match proto::AnswerOutcome::try_from(r.outcome) {
                    Ok(proto::AnswerOutcome::AwaitingApprovals) => Res::Awaiting,
                    Ok(proto::AnswerOutcome::Closed) => Res::Closed,
                    Ok(proto::AnswerOutcome::ContextChanged) => Res::ContextChanged,
                    other => panic!("answer outcome {other:?}"),
                })
            }
            Cmd::Report { who, same } => {
                let r = clients[who]
                    .clone()
                    .report_context(proto::ReportContextRequest {
                        decision_id: id.clone(),
                        context_snapshot: Some(json(ctx_value(same))),
                    })
                    .await;
                grpc_result(r, |r| {
                    if r.matched {
                        Res::Matched
                    } else {
                        Res::ContextChanged
                    }
                })
            }
            Cmd::Ack { who } => {
                let r = clients[who]
                    .clone()
                    .ack_delivery(proto::AckDeliveryRequest {
                        decision_id: id.clone(),
                        surface: "console".into(),
                    })
                    .await;
                grpc_result(r, |r| {
                    if r.accepted {
                        Res::Accepted
                    } else {
                        Res::NotAccepted
                    }
                })
            }
            Cmd::Cancel { who } => {
                let r = clients[who]
                    .clone()
                    .cancel(proto::CancelRequest {
                        decision_id: id.clone(),
                        reason: String::new(),
                    })
                    .await;
                grpc_result(r, |_| Res::Done)
            }
            Cmd::Wait(_) | Cmd::Expire | Cmd::Fallback => unreachable!("not sent to the server"),
        };
        prop_assert_eq!(got, expected, "step {} {:?}", i, cmd);
        let d = clients[1]
            .clone()
            .get_decision(proto::GetDecisionRequest {
                decision_id: id.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .decision
            .unwrap();
        let seen = Seen {
            status: proto_status(d.status),
            approvals: d
                .answers
                .iter()
                .filter(|a| a.verdict == proto::Verdict::Approve as i32)
                .count(),
            answers: d.answers.len(),
            delivered: d.delivered_at.is_some(),
            version: d.version,
        };
        prop_assert_eq!(seen, Seen::of_model(&model), "after step {} {:?}", i, cmd);
    }
    Ok(())
}
