//! Compiles the gRPC APIs with tonic/prost, using a vendored protoc so no system protobuf
//! compiler is needed. Generated code stays in OUT_DIR (see `src/proto/mod.rs`).
//!
//! Besides our own API (proto/callscribe), the speech APIs `serve` also answers: Google Cloud
//! Speech-to-Text v1 with google.longrunning, from the .proto files npm's @google-cloud/speech
//! and google-gax publish, and NVIDIA Riva ASR, from the descriptor set PyPI's
//! nvidia-riva-client ships (proto/vendor/SOURCES; `scripts/vendor-protos.sh` regenerates them).
//! Only their server side is generated: callscribe answers them, it does not call them.

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; prost-build reads PROTOC from the environment.
    unsafe { std::env::set_var("PROTOC", protoc) };
    let well_known = protoc_bin_vendored::include_path()?;
    let well_known = well_known
        .to_str()
        .ok_or("protoc include path is not UTF-8")?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("callscribe_descriptor.bin"))
        .compile_protos(
            &[
                "proto/callscribe/v1/transcription.proto",
                "proto/callscribe/v1/knowledge.proto",
            ],
            &["proto"],
        )?;
    tonic_prost_build::configure()
        .build_client(false)
        .file_descriptor_set_path(out.join("google_speech_descriptor.bin"))
        .compile_protos(
            &[
                "proto/vendor/google/cloud/speech/v1/cloud_speech.proto",
                "proto/vendor/google/longrunning/operations.proto",
            ],
            &["proto/vendor", well_known],
        )?;
    let riva = std::fs::read("proto/vendor/riva/riva_asr.binpb")?;
    tonic_prost_build::configure()
        .build_client(false)
        .compile_fds(prost_types::FileDescriptorSet::decode(riva.as_slice())?)?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
