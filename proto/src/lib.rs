//! witness-proto: the `witness.v1` protocol for Rust. It owns the
//! tonic/prost code generated from `proto/witness/v1/witness.proto` (client
//! and server stubs, messages, enums), the encoded file descriptor set (for
//! server reflection and the Connect adapter's descriptor pool), and in
//! [`convert`] the conversions both the server and the client need:
//! protobuf `Value` <-> JSON, `Timestamp` and `Duration` <-> microseconds.
//! Nothing here knows the server's domain types.

/// The generated code, outside the workspace lints (its paths are the generator's).
#[allow(unused_qualifications, missing_debug_implementations)]
mod generated {
    tonic::include_proto!("witness.v1");
}
pub use generated::*;

pub mod convert;

/// The encoded descriptor set of `witness.v1`, for server reflection and
/// for building a `prost-reflect` descriptor pool.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("witness_descriptor");
