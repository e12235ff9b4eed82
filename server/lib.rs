//! witness: a human-in-the-loop decision service.

pub mod accept;
pub mod api;
pub mod audit;
pub mod auth;
pub mod bench;
pub mod cli;
pub mod client;
pub mod config;
pub mod core;
pub mod http;
pub mod hub;
pub mod limits;
pub mod metrics;
pub mod outbox;
pub mod receipts;
pub mod server;
pub mod service;
pub mod store;
pub mod telemetry;
pub mod timers;

/// The generated protobuf and gRPC code for `witness.v1`.
pub mod proto {
    tonic::include_proto!("witness.v1");
    /// The encoded descriptor set, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("witness_descriptor");
}
