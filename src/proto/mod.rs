//! The gRPC API: the types generated from `proto/callscribe/v1/*.proto` at build time, and
//! [`convert`], the one place they meet the pipeline's own types.
//!
//! Protobuf goes no further than the gRPC edges: the server (`server/`), the client that
//! `stream` and `capture --server` use (`cli/client.rs`) and the `KnowledgeLookup` sink
//! (`forward/sink.rs`). Everything between works on domain types.

pub mod convert;

#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod v1 {
    tonic::include_proto!("callscribe.v1");

    /// For gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("callscribe_descriptor");
}
