//! Compiles the gRPC API (proto/) with tonic/prost, using a vendored protoc so no system
//! protobuf compiler is needed. Generated code stays in OUT_DIR (see `src/proto.rs`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; prost-build reads PROTOC from the environment.
    unsafe { std::env::set_var("PROTOC", protoc) };
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
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
