//! callscribe: phone calls in, timestamped dialect-aware transcripts out.
//!
//! The module tree is the pipeline (see `docs/DESIGN.md`):
//! [`audio`] (decode, resample) → [`segment`] (voice activity → utterances) →
//! [`engine`] (whisper) with [`dialect`] adapters → [`transcript`] (segments on the call
//! timeline) → [`forward`] (sinks, durable spool; [`kb`] the embedded knowledge base), with [`model`]
//! provisioning the weights and [`batch`] / [`cli`] as front doors. Every front door shares
//! these stages; none keeps a private copy.
//!
//! Protobuf stays at the gRPC edges: [`proto`] holds the wire types and their one conversion
//! to and from the pipeline's types, used by [`server`], the client in [`cli`] and the
//! `KnowledgeLookup` sink in [`forward`]. No top-level module depends on one that depends on
//! it (a unit test, `module_cycles`, checks).

pub mod audio;
pub mod batch;
pub mod capture;
pub mod cli;
pub mod config;
pub mod dialect;
pub mod engine;
pub mod forward;
pub mod jobs;
pub mod kb;
#[cfg(test)]
mod module_cycles;
pub mod pipeline;
pub mod plan;
pub mod proto;
pub mod runtime;
pub mod segment;
pub mod server;
pub mod stream;
pub mod transcript;
pub mod wer;

/// Model provisioning lives in its own crate (no server dependencies); `crate::model` is it.
pub use callscribe_model as model;
pub use config::Config;
