//! The gRPC APIs: the types generated at build time, and the one conversion module per API
//! where they meet the pipeline's own types — [`convert`] for callscribe's own
//! (`proto/callscribe/v1`), [`google`] for Google Cloud Speech-to-Text v1 and [`riva`] for
//! NVIDIA Riva ASR (the public protos as their packages publish them, `proto/vendor`).
//!
//! Protobuf goes no further than the gRPC edges: the server (`server/`), the client that
//! `stream` and `capture --server` use (`cli/client.rs`) and the `KnowledgeLookup` sink
//! (`forward/sink.rs`). Everything between works on domain types.

pub mod convert;
pub mod google;
pub mod riva;
pub mod speech;

#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod v1 {
    tonic::include_proto!("callscribe.v1");

    /// For gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("callscribe_descriptor");
}

/// Google Cloud Speech-to-Text v1 and what it imports (server side only), laid out as the
/// protobuf packages are, since the generated code names its neighbours by relative path.
#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod gen_google {
    pub mod api {
        tonic::include_proto!("google.api");
    }
    pub mod rpc {
        tonic::include_proto!("google.rpc");
    }
    pub mod longrunning {
        tonic::include_proto!("google.longrunning");
    }
    pub mod cloud {
        pub mod speech {
            pub mod v1 {
                tonic::include_proto!("google.cloud.speech.v1");
            }
        }
    }

    /// For gRPC server reflection: the Speech and Operations services and every file they import.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("google_speech_descriptor");
}

/// NVIDIA Riva ASR (server side only).
#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod gen_riva {
    tonic::include_proto!("nvidia.riva");
    pub mod asr {
        tonic::include_proto!("nvidia.riva.asr");
    }

    /// For gRPC server reflection: the descriptor set build.rs compiled.
    pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!("../../proto/vendor/riva/riva_asr.binpb");
}
