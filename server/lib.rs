//! witness: a human-in-the-loop decision service.

pub mod accept;
pub mod api;
pub mod audit;
pub mod auth;
pub mod bench;
pub mod cli;
pub mod config;
pub mod core;
pub mod guard;
pub mod http;
pub mod hub;
pub mod limits;
pub mod mcp;
pub mod metrics;
pub mod outbox;
pub mod receipts;
pub mod reload;
pub mod server;
pub mod service;
pub mod slack;
pub mod store;
pub mod telemetry;
pub mod timers;

/// The Rust client (the witness-client crate), as `witness::client`.
pub use witness_client as client;
/// The generated protobuf and gRPC code for `witness.v1` and its
/// conversions (the witness-proto crate), as `witness::proto`.
pub use witness_proto as proto;
