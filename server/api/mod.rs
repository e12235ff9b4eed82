//! The gRPC layer: thin handlers that authenticate, convert, call the
//! service and convert back. Errors map to status codes in `error`.

pub mod convert;
pub mod encoded;
pub mod error;
pub mod observe;
pub mod streams;

use crate::auth::Principal;
use crate::proto::{self, witness_service_server::WitnessService};
use crate::service::{AnswerInput, AskInput, ListInput, ServiceError, Witness};
use convert::{decision, json_from_proto, opt_json_from_proto};
use futures::{Stream, StreamExt};
use std::pin::Pin;
use std::sync::Arc;
use tonic::{Request, Response, Status};

type Res<T> = Result<Response<T>, Status>;
/// A server stream of responses.
pub type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// The `witness.v1.WitnessService` implementation.
#[derive(Debug, Clone)]
pub struct GrpcApi {
    w: Arc<Witness>,
}

impl GrpcApi {
    pub fn new(w: Arc<Witness>) -> Self {
        GrpcApi { w }
    }

    /// Authenticates the caller and takes one request from its rate budget.
    /// The request guard (`crate::guard`) has usually authenticated it
    /// already, from the headers, before the body was read.
    pub(crate) fn who<T>(&self, req: &Request<T>) -> Result<Principal, Status> {
        let who = match req.extensions().get::<Principal>() {
            Some(who) => who.clone(),
            None => self
                .w
                .auth()
                .authenticate(req.metadata())
                .map_err(ServiceError::from)?,
        };
        observe::record_principal(&who.name);
        self.w.admit(&who)?;
        Ok(who)
    }

    /// The service behind the handlers.
    pub(crate) fn witness(&self) -> &Witness {
        &self.w
    }
}

#[tonic::async_trait]
impl WitnessService for GrpcApi {
    async fn ask(&self, req: Request<proto::AskRequest>) -> Res<proto::AskResponse> {
        let who = self.who(&req)?;
        let r = req.into_inner();
        let input = AskInput {
            request_id: r.request_id,
            kind: r.kind,
            input: json_from_proto("input", r.input)?,
            response_schema: opt_json_from_proto("response_schema", r.response_schema)?,
            authorized_roles: r.authorized_roles,
            surfaces: r.surfaces,
            required_approvals: r.required_approvals,
            context_snapshot: opt_json_from_proto("context_snapshot", r.context_snapshot)?,
            timeout_us: r
                .timeout
                .as_ref()
                .map(|d| convert::micros_from_duration("timeout", d))
                .transpose()?,
        };
        let out = self.w.ask(&who, input).await?;
        observe::record_decision(&out.decision.id);
        Ok(Response::new(proto::AskResponse {
            decision: Some(decision(&out.decision)),
            created: out.fresh,
        }))
    }

    async fn answer(&self, req: Request<proto::AnswerRequest>) -> Res<proto::AnswerResponse> {
        let who = self.who(&req)?;
        let r = req.into_inner();
        observe::record_decision(&r.decision_id);
        let input = AnswerInput {
            decision_id: r.decision_id,
            request_id: r.request_id,
            verdict: convert::verdict_from_proto(r.verdict),
            answer: json_from_proto("answer", r.answer)?,
            rationale: r.rationale,
            current_context: opt_json_from_proto("current_context", r.current_context)?,
            on_behalf_of: r.on_behalf_of,
        };
        let out = self.w.answer(&who, input).await?;
        Ok(Response::new(proto::AnswerResponse {
            decision: Some(decision(&out.decision)),
            outcome: convert::answer_outcome(out.outcome) as i32,
        }))
    }

    type StreamDecisionsStream = ResponseStream<proto::StreamDecisionsResponse>;

    async fn stream_decisions(
        &self,
        req: Request<proto::StreamDecisionsRequest>,
    ) -> Res<Self::StreamDecisionsStream> {
        let who = self.who(&req)?;
        let deadline = streams::deadline(req.metadata());
        let out = streams::stream_decisions(&self.w, &who, req.into_inner(), deadline)
            .await?
            .map(|r| r.map(|e| proto::StreamDecisionsResponse { event: Some(e) }));
        Ok(Response::new(Box::pin(out)))
    }

    type WatchDecisionStream = ResponseStream<proto::WatchDecisionResponse>;

    async fn watch_decision(
        &self,
        req: Request<proto::WatchDecisionRequest>,
    ) -> Res<Self::WatchDecisionStream> {
        let who = self.who(&req)?;
        let deadline = streams::deadline(req.metadata());
        let id = req.into_inner().decision_id;
        observe::record_decision(&id);
        let out = streams::watch_decision(&self.w, &who, id, deadline)
            .await?
            .map(|r| r.map(|e| proto::WatchDecisionResponse { event: Some(e) }));
        Ok(Response::new(Box::pin(out)))
    }

    async fn ack_delivery(
        &self,
        req: Request<proto::AckDeliveryRequest>,
    ) -> Res<proto::AckDeliveryResponse> {
        let who = self.who(&req)?;
        let r = req.into_inner();
        observe::record_decision(&r.decision_id);
        let out = self.w.ack(&who, r.decision_id, r.surface).await?;
        Ok(Response::new(proto::AckDeliveryResponse {
            accepted: out.outcome == crate::core::Outcome::Accepted,
            decision: Some(decision(&out.decision)),
        }))
    }

    async fn cancel(&self, req: Request<proto::CancelRequest>) -> Res<proto::CancelResponse> {
        let who = self.who(&req)?;
        let r = req.into_inner();
        observe::record_decision(&r.decision_id);
        let out = self.w.cancel(&who, r.decision_id, r.reason).await?;
        Ok(Response::new(proto::CancelResponse {
            decision: Some(decision(&out.decision)),
        }))
    }

    async fn report_context(
        &self,
        req: Request<proto::ReportContextRequest>,
    ) -> Res<proto::ReportContextResponse> {
        let who = self.who(&req)?;
        let r = req.into_inner();
        observe::record_decision(&r.decision_id);
        let snapshot = opt_json_from_proto("context_snapshot", r.context_snapshot)?;
        let out = self.w.report_context(&who, r.decision_id, snapshot).await?;
        Ok(Response::new(proto::ReportContextResponse {
            decision: Some(decision(&out.decision)),
            matched: out.outcome == crate::core::Outcome::ContextMatched,
        }))
    }

    async fn get_decision(
        &self,
        req: Request<proto::GetDecisionRequest>,
    ) -> Res<proto::GetDecisionResponse> {
        let who = self.who(&req)?;
        observe::record_decision(&req.get_ref().decision_id);
        let d = self.w.get(&who, &req.get_ref().decision_id).await?;
        Ok(Response::new(proto::GetDecisionResponse {
            decision: Some(decision(&d)),
            receipt: self.w.receipt(&d).await?,
        }))
    }

    async fn list_decisions(
        &self,
        req: Request<proto::ListDecisionsRequest>,
    ) -> Res<proto::ListDecisionsResponse> {
        let who = self.who(&req)?;
        let r = req.into_inner();
        let statuses = r
            .statuses
            .iter()
            .enumerate()
            .map(|(i, s)| convert::status_from_proto(&format!("statuses[{i}]"), *s))
            .collect::<Result<_, _>>()?;
        let q = ListInput {
            statuses,
            kinds: r.kinds,
            page_size: r.page_size,
            page_token: r.page_token,
        };
        let (decisions, next_page_token) = self.w.list(&who, q).await?;
        Ok(Response::new(proto::ListDecisionsResponse {
            decisions: decisions.iter().map(decision).collect(),
            next_page_token,
        }))
    }
}
