//! The forwarded segment: one final with everything a downstream needs to act on it alone,
//! the same fields on every sink (gRPC `TranscriptSegment`, webhook and NDJSON JSON).

use crate::transcript::{segment_id, Segment};
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
    /// The tenant whose call this is (empty: a server without tenants, or a local call), so
    /// a knowledge service shared by tenants can keep them apart. Absent in segments spooled
    /// before tenants existed.
    #[serde(default)]
    pub tenant: String,
}

impl ForwardSegment {
    /// Final `sequence` (counted per channel from 0) of call `call_id`, decoded in `language`
    /// with adapter `dialect` (empty: none). A segment without a raw text (not normalised)
    /// forwards its text as the raw text.
    pub fn new(
        call_id: &str,
        sequence: u64,
        segment: &Segment,
        language: &str,
        dialect: &str,
        call_started_at_unix_ms: i64,
    ) -> Self {
        ForwardSegment {
            call_id: call_id.to_owned(),
            segment_id: segment_id(call_id, segment.channel, sequence),
            sequence,
            channel: segment.channel,
            role: segment.role.as_str().to_owned(),
            dialect: dialect.to_owned(),
            raw_text: if segment.raw_text.is_empty() {
                segment.text.clone()
            } else {
                segment.raw_text.clone()
            },
            text: segment.text.clone(),
            start_ms: segment.start_ms,
            end_ms: segment.end_ms,
            call_started_at_unix_ms,
            confidence: segment.confidence,
            language: language.to_owned(),
            tenant: String::new(),
        }
    }

    /// The segment as `tenant`'s.
    pub fn with_tenant(self, tenant: &str) -> Self {
        Self {
            tenant: tenant.to_owned(),
            ..self
        }
    }
}

/// What the spool holds: the segment and the context it had when it was submitted, or a
/// call event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spooled {
    pub segment: ForwardSegment,
    /// The call's previous segments, oldest first.
    pub context: Vec<ForwardSegment>,
    /// Set when the record is a call event, not a final: then `segment` names the call only
    /// (its id, tenant, dialect, start; `segment_id` is [`CallEvent::id`]). Call events go
    /// only to the sinks that publish them ([`super::Sink::takes_call_events`]), in the same
    /// sequence as the call's finals, so a call's `started` precedes its finals and `ended`
    /// follows them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_event: Option<CallEvent>,
}

impl Spooled {
    /// A final segment and its context.
    pub fn final_segment(segment: ForwardSegment, context: Vec<ForwardSegment>) -> Self {
        Self {
            segment,
            context,
            call_event: None,
        }
    }
}

/// A call starting or ending, as the forwarding sinks that publish events see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallEvent {
    pub kind: CallEventKind,
    /// When it happened, Unix ms.
    pub at_unix_ms: i64,
    /// Finals the call forwarded (0 for `started`).
    pub finals: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallEventKind {
    Started,
    Ended,
}

impl CallEvent {
    /// The event's idempotency key: `{call_id}/started` or `{call_id}/ended` (a segment id is
    /// `{call_id}/{channel}/{sequence}`, so the two never meet).
    pub fn id(&self, call_id: &str) -> String {
        match self.kind {
            CallEventKind::Started => format!("{call_id}/started"),
            CallEventKind::Ended => format!("{call_id}/ended"),
        }
    }
}

pub fn unix_ms_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
