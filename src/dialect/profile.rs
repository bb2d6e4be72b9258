//! An adapter profile as written in `models/dialects/*.toml`, and its validation.
//!
//! Profiles are data a regional team edits, so every mistake must point at the file and the
//! field: serde names unknown or mistyped fields (with `deny_unknown_fields`), and
//! [`Profile::validate`] checks what types cannot (a known model, a whisper language token,
//! finite positive weights, a lexicon without empty or duplicate entries).

use crate::engine::Hotword;
use serde::{Deserialize, Serialize};

/// The profile format this build reads. A profile names the format it was written for, so
/// an old binary refuses a newer profile instead of silently ignoring fields.
pub const SCHEMA: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Profile format version ([`SCHEMA`]).
    pub schema: u32,
    /// Stable identifier used in configs, CLI flags and gRPC (`cantonese`).
    pub id: String,
    /// The adapter's own version, reported with every transcript it produced.
    pub version: String,
    pub name: String,
    /// What this adapter does with the stock model, and what a fine-tune would add.
    #[serde(default)]
    pub note: String,
    #[serde(default)]
    pub regions: Regions,
    pub model: ModelChoice,
    /// Initial prompt in the dialect's usual written form: it steers whisper's script
    /// (simplified vs traditional), punctuation and vocabulary.
    #[serde(default)]
    pub prompt: String,
    #[serde(default)]
    pub hotwords: Vec<Hotword>,
    #[serde(default)]
    pub decode: DecodeOverrides,
    #[serde(default)]
    pub normalise: NormaliseSpec,
}

/// Where an adapter is the natural choice. Matching is case-insensitive for names; area codes
/// match the start of a telephone number (`020` matches `02012345678`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Regions {
    /// Provinces, special administrative regions or ISO 3166-2 codes (`CN-GD`, `Guangdong`, `广东`).
    pub provinces: Vec<String>,
    pub cities: Vec<String>,
    /// Telephone area codes, domestic (`020`) or international (`+852`).
    pub area_codes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelChoice {
    /// A model of the catalogue or one imported into the store (`models import-ct2 --name`),
    /// so a dialect fine-tune plugs in by name.
    pub name: String,
    /// Whisper's language token for decoding (`zh`, `en`, `yue` on models that know it).
    pub language: String,
}

/// Decoding settings this adapter changes; unset ones keep the deployment's `[decode]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DecodeOverrides {
    pub beam_size: Option<u32>,
    pub temperature_fallback: Option<bool>,
    pub no_speech_threshold: Option<f32>,
}

/// Target script of the normalised text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Script {
    /// Standard written Chinese as used on the mainland (简体).
    #[default]
    Simplified,
    Traditional,
    /// Leave the characters as whisper wrote them (English adapters).
    Keep,
}

/// Target punctuation width of the normalised text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Punctuation {
    /// Chinese text takes full-width marks (，。？！：；).
    #[default]
    Fullwidth,
    Halfwidth,
    Keep,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NormaliseSpec {
    pub script: Script,
    pub punctuation: Punctuation,
    /// Dialect expressions → standard written Chinese, applied before script conversion
    /// (longest match first).
    pub lexicon: Vec<LexiconEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LexiconEntry {
    pub from: String,
    pub to: String,
    /// Where the correspondence comes from, so a reviewer can check it.
    pub source: String,
}

/// A validation failure: the dotted path of the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl Profile {
    /// Checks what serde cannot. `known_model` says whether a model name can be resolved
    /// (catalogue or store); `known_language` whether whisper has that language token.
    pub fn validate(
        &self,
        known_model: &dyn Fn(&str) -> bool,
        known_language: &dyn Fn(&str) -> bool,
    ) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if self.schema != SCHEMA {
            errors.push(FieldError::new(
                "schema",
                format!(
                    "format {} is not supported (this build reads {SCHEMA})",
                    self.schema
                ),
            ));
        }
        let id_ok = !self.id.is_empty()
            && self
                .id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !id_ok {
            errors.push(FieldError::new(
                "id",
                format!(
                    "'{}' must be non-empty lowercase ASCII letters, digits, '-' or '_'",
                    self.id
                ),
            ));
        }
        if self.version.trim().is_empty() {
            errors.push(FieldError::new("version", "must not be empty"));
        }
        if self.name.trim().is_empty() {
            errors.push(FieldError::new("name", "must not be empty"));
        }
        if !known_model(&self.model.name) {
            errors.push(FieldError::new(
                "model.name",
                format!(
                    "unknown model '{}' (not in the catalogue nor the model store)",
                    self.model.name
                ),
            ));
        }
        if !known_language(&self.model.language) {
            errors.push(FieldError::new(
                "model.language",
                format!("'{}' is not a whisper language token", self.model.language),
            ));
        }
        for (i, code) in self.regions.area_codes.iter().enumerate() {
            let digits = code.strip_prefix('+').unwrap_or(code);
            if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
                errors.push(FieldError::new(
                    format!("regions.area_codes[{i}]"),
                    format!("'{code}' is not an area code (digits, optionally after '+')"),
                ));
            }
        }
        // whisper-rs hands the prompt (with the hotwords appended) to whisper.cpp as a C
        // string and panics on a NUL.
        const NUL: &str = "contains a NUL character (whisper takes it as a C string)";
        if self.prompt.contains('\0') {
            errors.push(FieldError::new("prompt", NUL));
        }
        for (i, h) in self.hotwords.iter().enumerate() {
            if h.term.trim().is_empty() {
                errors.push(FieldError::new(
                    format!("hotwords[{i}].term"),
                    "must not be empty",
                ));
            } else if h.term.contains('\0') {
                errors.push(FieldError::new(format!("hotwords[{i}].term"), NUL));
            }
            if !(h.weight.is_finite() && h.weight > 0.0 && h.weight <= 10.0) {
                errors.push(FieldError::new(
                    format!("hotwords[{i}].weight"),
                    format!("{} must be in (0, 10]", h.weight),
                ));
            }
        }
        if let Some(b) = self.decode.beam_size {
            if !(1..=16).contains(&b) {
                errors.push(FieldError::new(
                    "decode.beam_size",
                    format!("{b} must be 1..=16"),
                ));
            }
        }
        if let Some(t) = self.decode.no_speech_threshold {
            if !(0.0..=1.0).contains(&t) {
                errors.push(FieldError::new(
                    "decode.no_speech_threshold",
                    format!("{t} must be within 0..=1"),
                ));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (i, e) in self.normalise.lexicon.iter().enumerate() {
            let field = |f: &str| format!("normalise.lexicon[{i}].{f}");
            if e.from.is_empty() {
                errors.push(FieldError::new(field("from"), "must not be empty"));
            } else if !seen.insert(e.from.as_str()) {
                errors.push(FieldError::new(
                    field("from"),
                    format!("'{}' is listed twice", e.from),
                ));
            }
            if e.source.trim().is_empty() {
                errors.push(FieldError::new(
                    field("source"),
                    "every entry names its source",
                ));
            }
        }
        errors
    }
}
