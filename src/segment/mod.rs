//! Voice activity detection and endpointing: a channel's 16 kHz samples → utterances.
//!
//! Whisper invents text for silence, music, tones and line noise, so nothing reaches it that
//! the detector has not heard as speech. The detector is Silero VAD ([`silero`]: its small
//! network run in Rust on the published ONNX weights, 32 ms frames); around its frame scores
//! this module adds the call-centre policy: hysteresis (a frame starts speech at
//! `threshold` and keeps it going down to `end_threshold`), padding, an endpoint silence, a
//! minimum amount of voiced audio, and a maximum utterance length that is cut at the quietest
//! moment instead of mid-word.
//!
//! The [`Segmenter`] is incremental (push any number of samples, get events), so the batch
//! front door and live streams run the very same code and reach the very same decisions:
//! Silero's state carries from frame to frame whatever the chunking. Times are sample counts
//! of the channel.

pub mod crosstalk;
mod endpoint;
pub mod silero;
mod tones;

pub use endpoint::{
    identification_audio, segment_all, Cut, SegmentEvent, Segmenter, Utterance, IDENTIFY_MIN_SCORE,
};
pub use silero::{SileroModel, VadError};

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Samples per detector frame: Silero's 32 ms at 16 kHz.
pub const FRAME_SAMPLES: usize = silero::CHUNK_SAMPLES;

/// Endpointing policy. Defaults suit telephony: 500 ms of silence closes an utterance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VadConfig {
    /// Speech probability (0–1) at or above which a frame starts an utterance.
    pub threshold: f32,
    /// Inside an utterance a frame stays speech down to this probability (Silero's own
    /// hysteresis, `threshold − 0.15`): a soft syllable does not end the sentence.
    pub end_threshold: f32,
    /// Frames quieter than this (dBFS RMS) are never speech, whatever the detector says.
    pub min_level_dbfs: f32,
    /// The Silero VAD ONNX file to use instead of the model store's `silero-vad`.
    pub model: Option<PathBuf>,
    /// Silence that ends an utterance.
    pub endpoint_silence_ms: u32,
    /// Audio kept before the first and after the last voiced frame, so soft onsets and word
    /// endings reach whisper.
    pub pad_ms: u32,
    /// Utterances with less voiced audio than this are dropped as clicks and breaths.
    pub min_speech_ms: u32,
    /// Longer utterances are cut (at the quietest frame of their last third) so that every
    /// piece fits whisper's 30 s window and finals keep flowing during monologues.
    pub max_utterance_ms: u32,
}

impl Default for VadConfig {
    fn default() -> Self {
        Self {
            threshold: 0.5,
            end_threshold: 0.35,
            min_level_dbfs: -55.0,
            model: None,
            endpoint_silence_ms: 500,
            pad_ms: 200,
            min_speech_ms: 250,
            max_utterance_ms: 15_000,
        }
    }
}

impl VadConfig {
    /// Names the first field that makes no sense, for config-file errors.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.threshold) {
            return Err(format!(
                "vad.threshold = {} is outside 0..1",
                self.threshold
            ));
        }
        if !(0.0..=self.threshold).contains(&self.end_threshold) {
            return Err(format!(
                "vad.end_threshold = {} must be within 0..vad.threshold ({})",
                self.end_threshold, self.threshold
            ));
        }
        if self.max_utterance_ms < 1000 || self.max_utterance_ms > 29_000 {
            return Err(format!(
                "vad.max_utterance_ms = {} must be within 1000..29000 (whisper's window is 30 s)",
                self.max_utterance_ms
            ));
        }
        if self.endpoint_silence_ms < 32 {
            return Err("vad.endpoint_silence_ms must be at least one 32 ms frame".into());
        }
        Ok(())
    }
}

/// The detector's weights and the endpointing policy: what every channel's [`Segmenter`] is
/// made from. Loaded once per process and shared; each segmenter keeps its own detector state.
#[derive(Clone)]
pub struct Vad {
    config: VadConfig,
    model: Arc<SileroModel>,
}

impl std::fmt::Debug for Vad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vad").field("config", &self.config).finish()
    }
}

impl Vad {
    pub fn new(config: VadConfig, model: Arc<SileroModel>) -> Self {
        Self { config, model }
    }

    /// Reads the Silero weights from `path`.
    pub fn load(config: VadConfig, path: &Path) -> Result<Self, VadError> {
        Ok(Self::new(config, Arc::new(SileroModel::load(path)?)))
    }

    pub fn config(&self) -> &VadConfig {
        &self.config
    }

    /// The same weights under another policy (a call's own endpoint silence, say).
    pub fn with_config(&self, config: VadConfig) -> Self {
        Self {
            config,
            model: self.model.clone(),
        }
    }

    pub fn model(&self) -> &Arc<SileroModel> {
        &self.model
    }
}

/// The store's Silero VAD with the default policy, for unit tests (pulled when missing).
#[cfg(test)]
pub(crate) fn test_vad() -> Vad {
    let store = crate::model::ModelStore::locate(None);
    let path = crate::model::provide_vad(
        &store,
        Some(crate::model::Source::Auto),
        &crate::model::NoProgress,
    )
    .expect("the Silero VAD weights (callscribe models pull silero-vad)");
    Vad::load(VadConfig::default(), &path).expect("the store's Silero VAD loads")
}
