//! gRPC's two streaming RPCs (`StreamDecisions`, `WatchDecision`) served
//! with a codec that writes already-encoded messages: each committed event
//! is encoded once (see `streams::encoded`) and every subscriber's frame is
//! a copy of those bytes, instead of one conversion and one encoding per
//! subscriber. Same requests, same handlers' rules (`GrpcApi::who`, the
//! service's `subscribe` / `watch`), same wire bytes as the generated
//! service; `WitnessEndpoint` routes the two paths here.
//!
//! Benchmark only: with `WITNESS_BENCH_STREAM_FLOOR=1` in the server's
//! environment, `StreamDecisions` sends one constant pre-encoded minimal
//! message per CREATED event instead of the event (`witness bench
//! --streams` measures this floor of the stack next to the real figures).

use super::streams::{self, EncodedStream};
use super::{observe, GrpcApi};
use crate::hub::Published;
use crate::proto;
use crate::service::StreamItem;
use bytes::{BufMut, Bytes};
use futures::future::BoxFuture;
use futures::StreamExt;
use std::marker::PhantomData;
use tonic::body::Body;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::server::{Grpc, ServerStreamingService};
use tonic::{Request, Response, Status};
use tonic_prost::ProstDecoder;

/// The environment variable that turns on the benchmark's floor mode.
pub const FLOOR_ENV: &str = "WITNESS_BENCH_STREAM_FLOOR";

const STREAM_DECISIONS: &str = "/witness.v1.WitnessService/StreamDecisions";
const WATCH_DECISION: &str = "/witness.v1.WitnessService/WatchDecision";

/// Decodes requests with prost; writes responses' bytes as they are.
struct EncodedCodec<Req>(PhantomData<Req>);

impl<Req> Default for EncodedCodec<Req> {
    fn default() -> Self {
        EncodedCodec(PhantomData)
    }
}

/// Writes an already-encoded message into the frame.
struct BytesEncoder;

impl Encoder for BytesEncoder {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

/// Prost's decoder, named so the codec's types stay spelled out.
struct RequestDecoder<Req>(ProstDecoder<Req>);

impl<Req: prost::Message + Default> Decoder for RequestDecoder<Req> {
    type Item = Req;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Req>, Status> {
        self.0.decode(buf)
    }
}

impl<Req: prost::Message + Default + Send + 'static> Codec for EncodedCodec<Req> {
    type Encode = Bytes;
    type Decode = Req;
    type Encoder = BytesEncoder;
    type Decoder = RequestDecoder<Req>;

    fn encoder(&mut self) -> BytesEncoder {
        BytesEncoder
    }

    fn decoder(&mut self) -> RequestDecoder<Req> {
        RequestDecoder(ProstDecoder::default())
    }
}

/// The two streaming methods over encoded bytes.
#[derive(Debug, Clone)]
pub struct EncodedStreams {
    api: GrpcApi,
    max_decoding_message_size: usize,
    /// The benchmark's floor message (see the module comment).
    floor: Option<Bytes>,
}

impl EncodedStreams {
    pub fn new(api: GrpcApi, max_decoding_message_size: usize) -> EncodedStreams {
        let floor = std::env::var_os(FLOOR_ENV).map(|_| {
            streams::response_bytes(&proto::DecisionEvent {
                r#type: proto::EventType::Created as i32,
                ..Default::default()
            })
        });
        EncodedStreams {
            api,
            max_decoding_message_size,
            floor,
        }
    }

    /// Whether this serves `path`.
    pub fn serves(path: &str) -> bool {
        path == STREAM_DECISIONS || path == WATCH_DECISION
    }

    /// Answers a gRPC request on one of the two paths.
    pub async fn call(self, req: http::Request<Body>) -> http::Response<Body> {
        let limit = Some(self.max_decoding_message_size);
        if req.uri().path() == WATCH_DECISION {
            Grpc::new(EncodedCodec::<proto::WatchDecisionRequest>::default())
                .apply_max_message_size_config(limit, None)
                .server_streaming(Watch(self.api), req)
                .await
        } else {
            Grpc::new(EncodedCodec::<proto::StreamDecisionsRequest>::default())
                .apply_max_message_size_config(limit, None)
                .server_streaming(Subscribe(self.api, self.floor), req)
                .await
        }
    }
}

struct Subscribe(GrpcApi, Option<Bytes>);

impl ServerStreamingService<proto::StreamDecisionsRequest> for Subscribe {
    type Response = Bytes;
    type ResponseStream = EncodedStream;
    type Future = BoxFuture<'static, Result<Response<EncodedStream>, Status>>;

    fn call(&mut self, req: Request<proto::StreamDecisionsRequest>) -> Self::Future {
        let (api, floor) = (self.0.clone(), self.1.clone());
        Box::pin(async move {
            let who = api.who(&req)?;
            let deadline = streams::deadline(req.metadata());
            let req = req.into_inner();
            let out = match floor {
                None => {
                    streams::stream_decisions_encoded(api.witness(), &who, req, deadline).await?
                }
                Some(floor) => {
                    let q = streams::subscribe_query(req);
                    let items = api.witness().subscribe(&who, q).await?;
                    Box::pin(items.filter_map(move |r| {
                        let floor = floor.clone();
                        async move {
                            match r {
                                Ok(StreamItem::Event(p)) if created(&p) => Some(Ok(floor)),
                                Ok(_) => None,
                                Err(e) => Some(Err(e.into())),
                            }
                        }
                    }))
                }
            };
            Ok(Response::new(out))
        })
    }
}

fn created(p: &Published) -> bool {
    matches!(p.event.kind, crate::core::EventKind::Created { .. })
}

struct Watch(GrpcApi);

impl ServerStreamingService<proto::WatchDecisionRequest> for Watch {
    type Response = Bytes;
    type ResponseStream = EncodedStream;
    type Future = BoxFuture<'static, Result<Response<EncodedStream>, Status>>;

    fn call(&mut self, req: Request<proto::WatchDecisionRequest>) -> Self::Future {
        let api = self.0.clone();
        Box::pin(async move {
            let who = api.who(&req)?;
            let deadline = streams::deadline(req.metadata());
            let id = req.into_inner().decision_id;
            observe::record_decision(&id);
            let out = streams::watch_decision_encoded(api.witness(), &who, id, deadline).await?;
            Ok(Response::new(out))
        })
    }
}
