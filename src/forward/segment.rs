//! The forwarded segment: one final with everything a downstream needs to act on it alone,
//! the same fields on every sink (gRPC `TranscriptSegment`, webhook and NDJSON JSON).

use crate::kb::Hit;
use crate::proto::v1 as pb;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForwardSegment {
    pub call_id: String,
    /// `{call_id}/{channel}/{sequence}`: the idempotency key.
    pub segment_id: String,
    pub sequence: u64,
    pub channel: u32,
    /// agent, customer or mixed.
    pub role: String,
    /// Dialect adapter id (empty when the call had none).
    pub dialect: String,
    /// Whisper's text, before dialect normalisation.
    pub raw_text: String,
    /// Normalised text (equal to `raw_text` without a dialect adapter).
    pub text: String,
    /// Call-relative milliseconds.
    pub start_ms: u64,
    pub end_ms: u64,
    /// Wall-clock start of the call, Unix ms; 0 = unknown.
    pub call_started_at_unix_ms: i64,
    pub confidence: f32,
    pub language: String,
}

/// What the spool holds: the segment and the context it had when it was submitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spooled {
    pub segment: ForwardSegment,
    /// The call's previous segments, oldest first.
    pub context: Vec<ForwardSegment>,
}

/// Knowledge-base articles for one segment, from a sink that answers lookups.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suggestion {
    pub call_id: String,
    pub segment_id: String,
    /// The sink that answered (`kb`, or a gRPC sink's name).
    pub sink: String,
    pub hits: Vec<Hit>,
}

pub use crate::transcript::segment_id;

pub fn unix_ms_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl From<&ForwardSegment> for pb::TranscriptSegment {
    fn from(s: &ForwardSegment) -> Self {
        pb::TranscriptSegment {
            call_id: s.call_id.clone(),
            segment_id: s.segment_id.clone(),
            sequence: s.sequence,
            channel: s.channel,
            role: s.role.clone(),
            dialect: s.dialect.clone(),
            raw_text: s.raw_text.clone(),
            text: s.text.clone(),
            start_ms: s.start_ms,
            end_ms: s.end_ms,
            call_started_at_unix_ms: s.call_started_at_unix_ms,
            confidence: s.confidence,
            language: s.language.clone(),
        }
    }
}

impl From<&Spooled> for pb::LookupRequest {
    fn from(r: &Spooled) -> Self {
        pb::LookupRequest {
            segment: Some((&r.segment).into()),
            context: r.context.iter().map(Into::into).collect(),
        }
    }
}

impl From<pb::KnowledgeHit> for Hit {
    fn from(h: pb::KnowledgeHit) -> Self {
        Hit {
            article_id: h.article_id,
            title: h.title,
            snippet: h.snippet,
            score: h.score,
            source: h.source,
        }
    }
}

impl From<&Hit> for pb::KnowledgeHit {
    fn from(h: &Hit) -> Self {
        pb::KnowledgeHit {
            article_id: h.article_id.clone(),
            title: h.title.clone(),
            snippet: h.snippet.clone(),
            score: h.score,
            source: h.source.clone(),
        }
    }
}
