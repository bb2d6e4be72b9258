//! Voice activity detection and endpointing: a channel's 16 kHz samples → utterances.
//!
//! Whisper invents text for silence and noise, so nothing reaches it that the detector has not
//! heard as speech. The detector is earshot (a small neural VAD in pure Rust, 16 ms frames);
//! around its frame scores this module adds the call-centre policy: padding, an endpoint
//! silence, a minimum amount of voiced audio, and a maximum utterance length that is cut at the
//! quietest moment instead of mid-word.
//!
//! The [`Segmenter`] is incremental (push any number of samples, get events), so the batch
//! front door and live streams run the very same code. Times are sample counts of the channel.

pub mod crosstalk;
mod endpoint;
pub mod silero;

pub use endpoint::{segment_all, Cut, SegmentEvent, Segmenter, Utterance};

use serde::{Deserialize, Serialize};

/// Samples per detector frame: earshot's fixed 16 ms at 16 kHz.
pub const FRAME_SAMPLES: usize = 256;

/// Endpointing policy. Defaults suit telephony: 500 ms of silence closes an utterance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VadConfig {
    /// Frame score (0–1) at or above which a frame counts as speech.
    pub threshold: f32,
    /// Frames quieter than this (dBFS RMS) are never speech. earshot scores band-limited line
    /// noise near 0.5 on 8 kHz telephony audio; real speech is far above this floor.
    pub min_level_dbfs: f32,
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
            min_level_dbfs: -55.0,
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
        if self.max_utterance_ms < 1000 || self.max_utterance_ms > 29_000 {
            return Err(format!(
                "vad.max_utterance_ms = {} must be within 1000..29000 (whisper's window is 30 s)",
                self.max_utterance_ms
            ));
        }
        if self.endpoint_silence_ms < 16 {
            return Err("vad.endpoint_silence_ms must be at least one 16 ms frame".into());
        }
        Ok(())
    }
}
