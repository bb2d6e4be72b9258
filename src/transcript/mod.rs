//! The transcript of a call: final segments on the call timeline, per channel and role.
//!
//! This is the shape every front door produces and every sink consumes: times are integer
//! milliseconds from the start of the call, derived from the channel's sample clock.

pub mod format;

use crate::audio::{CallTime, Role};
use crate::engine::{join_text, Decoded, Word};
use serde::{Deserialize, Serialize};

/// Numbers each channel's finals from 0, in the order they are delivered. With the call id
/// and the channel, a segment's number is its identity ([`segment_id`]): the idempotency key
/// a downstream de-duplicates by, so every front door numbers through this one type.
#[derive(Debug, Clone, Default)]
pub struct Numbering {
    next: std::collections::BTreeMap<u32, u64>,
}

impl Numbering {
    /// The number of `channel`'s next segment.
    pub fn next(&mut self, channel: u32) -> u64 {
        let n = self.next.entry(channel).or_insert(0);
        let this = *n;
        *n += 1;
        this
    }
}

/// A final segment's name, `{call_id}/{channel}/{sequence}`, where `sequence` counts the
/// channel's finals from 0 ([`Numbering`]): the id clients see and the idempotency key
/// downstreams de-duplicate on.
pub fn segment_id(call_id: &str, channel: u32, sequence: u64) -> String {
    format!("{call_id}/{channel}/{sequence}")
}

/// One finished piece of speech by one party.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    pub channel: u32,
    pub role: Role,
    pub start_ms: u64,
    pub end_ms: u64,
    /// The text in the dialect adapter's standard written form (what a knowledge lookup
    /// and a reader want).
    pub text: String,
    /// The text as whisper wrote it, before normalisation (for QA and re-normalising).
    #[serde(default)]
    pub raw_text: String,
    /// Mean probability of the segment's text tokens (0–1).
    pub confidence: f32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub words: Vec<Word>,
}

impl Segment {
    /// Places a decoded piece of an utterance that began at `utterance_start` on the call timeline.
    pub fn from_decoded(channel: u32, role: Role, utterance_start: CallTime, d: Decoded) -> Self {
        let base = utterance_start.as_ms();
        Segment {
            channel,
            role,
            start_ms: base + d.start_ms,
            end_ms: base + d.end_ms,
            raw_text: d.text.clone(),
            text: d.text,
            confidence: d.confidence,
            words: d
                .words
                .into_iter()
                .map(|w| Word {
                    start_ms: base + w.start_ms,
                    end_ms: base + w.end_ms,
                    ..w
                })
                .collect(),
        }
    }
    /// One segment for a whole utterance: its decoded pieces joined, on the call timeline.
    /// Live results are one final per utterance, so a downstream never sees half a sentence.
    /// `None` when whisper found no text.
    pub fn from_utterance(
        channel: u32,
        role: Role,
        utterance_start: CallTime,
        pieces: Vec<Decoded>,
    ) -> Option<Self> {
        let mut parts = pieces
            .into_iter()
            .filter(|d| !d.text.trim().is_empty())
            .map(|d| Segment::from_decoded(channel, role, utterance_start, d));
        let mut merged = parts.next()?;
        let mut weight = merged.text.chars().count() as f32;
        let mut weighted = merged.confidence * weight;
        for p in parts {
            let w = p.text.chars().count() as f32;
            weighted += p.confidence * w;
            weight += w;
            merged.text = join_text(&merged.text, &p.text);
            merged.raw_text = join_text(&merged.raw_text, &p.raw_text);
            merged.end_ms = merged.end_ms.max(p.end_ms);
            merged.words.extend(p.words);
        }
        merged.confidence = if weight > 0.0 { weighted / weight } else { 0.0 };
        Some(merged)
    }
}

impl Segment {
    /// Applies a dialect adapter's normalisation; the raw text stays in `raw_text`.
    pub fn normalise(&mut self, adapter: &crate::dialect::Adapter) {
        self.text = adapter.normalise(&self.raw_text);
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelInfo {
    pub channel: u32,
    pub role: Role,
    /// The language identified from this channel's own speech, where it was identified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<ChannelLanguage>,
}

/// A language identified from speech, with whisper's probability for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelLanguage {
    pub code: String,
    pub probability: f32,
}

/// A whole recording's transcript: the conversation timeline, both parties merged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transcript {
    /// The file (or call id) transcribed.
    pub source: String,
    pub duration_ms: u64,
    pub model: String,
    /// Language decoded in, and how it was chosen.
    pub language: String,
    pub language_source: LanguageSource,
    /// The dialect adapter used and why it was chosen; `None` when adapters are off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dialect: Option<DialectUsed>,
    pub channels: Vec<ChannelInfo>,
    /// What the pipeline decided about the audio itself that a reader should know: channels
    /// found to be the same audio, utterances dropped as echo.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Sorted by start time, then channel.
    pub segments: Vec<Segment>,
    /// Knowledge-base articles for segments (by `segment_id` = `{source stem}/{channel}/{n}`,
    /// n counting that channel's segments in timeline order), when forwarding is on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suggestions: Vec<crate::kb::Suggestion>,
}

/// The adapter a transcript was made with, as reported to users.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DialectUsed {
    pub id: String,
    pub version: String,
    pub reason: crate::dialect::Reason,
}

impl DialectUsed {
    pub fn of(selection: &crate::dialect::Selection) -> Self {
        Self {
            id: selection.adapter.id().to_owned(),
            version: selection.adapter.profile.version.clone(),
            reason: selection.reason.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum LanguageSource {
    /// Given by flag or config (or the model knows only one).
    Configured,
    /// Identified from up to 30 s of the recording's confident speech (per channel; this is
    /// the channel that spoke most).
    Detected { probability: f32 },
    /// Identification heard `identified` but less surely than
    /// `dialects.detect_min_probability`: the default adapter's language was used instead.
    Unsure {
        identified: String,
        probability: f32,
    },
    /// The dialect adapter chosen before any audio (by id or region) set it.
    Adapter,
    /// No speech was found, so nothing was detected.
    NoSpeech,
}

impl Transcript {
    /// The segments with their numbers ([`Numbering`]), in timeline order.
    pub fn numbered(&self) -> impl Iterator<Item = (u64, &Segment)> {
        let mut numbering = Numbering::default();
        self.segments
            .iter()
            .map(move |s| (numbering.next(s.channel), s))
    }

    /// Orders segments into one conversation timeline.
    pub fn sort(&mut self) {
        self.segments.sort_by(|a, b| {
            (a.start_ms, a.channel, a.end_ms).cmp(&(b.start_ms, b.channel, b.end_ms))
        });
    }

    /// All text in timeline order, one segment per line (`role: text`).
    pub fn plain_text(&self) -> String {
        self.segments
            .iter()
            .map(|s| format!("{}: {}\n", s.role, s.text))
            .collect()
    }
}
