//! callscribe's integration tests, one module per area, built as one test binary: every test
//! binary links whisper.cpp, tantivy and tonic, so twelve of them cost twelve links of a few
//! hundred megabytes each for every change to the library.
//!
//! Run one area with a filter on its module path: `cargo test --test it grpc::`.

mod common;

mod capture;
mod cli;
mod conditions;
mod dialects;
mod formats;
mod forward;
mod fuzz_corpus;
mod grpc;
mod grpc_python;
mod haproxy;
mod long_recording;
mod models_import;
mod nats;
mod nats_batch;
mod properties;
mod quantize;
mod reliability;
mod security;
mod segment;
mod silero;
mod speech_apis;
mod transcribe;
