//! Where the front doors meet the forwarder: one call after a final is sent.
//!
//! Kept apart from the call driver (`server/call.rs`) so that the driver calls one function
//! and knows nothing of sinks, spools or suggestions.

use super::segment::{unix_ms_now, ForwardSegment};
use super::Forwarder;
use crate::proto::v1 as pb;
use crate::transcript::Segment;
use tokio::sync::mpsc;

/// Metadata key a telephony system may set on `StreamingConfig.metadata` to give the call's
/// wall-clock start (Unix milliseconds); without it the start is estimated from the first final.
pub const CALL_STARTED_AT_KEY: &str = "call_started_at_unix_ms";

type ResponseTx = mpsc::Sender<Result<pb::StreamingTranscribeResponse, tonic::Status>>;

/// A live call sent `result`: forward it, and route the call's suggestions back to its
/// response stream as `Suggestion` messages (dropped, not queued, if the client is slow:
/// a late suggestion is worth less than a timely final).
pub fn final_sent(
    forwarder: Option<&Forwarder>,
    config: &pb::StreamingConfig,
    language: Option<&str>,
    result: &pb::FinalResult,
    tx: &ResponseTx,
) {
    let Some(fwd) = forwarder else { return };
    let call_id = config.call_id.clone();
    if !fwd.is_listening(&call_id) {
        // Weak: the listener must not keep the call's response stream open after the call.
        let tx = tx.downgrade();
        let alive = tx.clone();
        let id = call_id.clone();
        fwd.listen(
            &call_id,
            super::Listener {
                deliver: Box::new(move |s| {
                    let Some(tx) = tx.upgrade() else {
                        return false;
                    };
                    if !s.hits.is_empty() {
                        let msg = pb::StreamingTranscribeResponse {
                            call_id: id.clone(),
                            response: Some(
                                pb::streaming_transcribe_response::Response::Suggestion(
                                    pb::Suggestion {
                                        segment_id: s.segment_id.clone(),
                                        hits: s.hits.iter().map(Into::into).collect(),
                                    },
                                ),
                            ),
                        };
                        let _ = tx.try_send(Ok(msg));
                    }
                    true
                }),
                alive: Box::new(move || alive.upgrade().is_some_and(|t| !t.is_closed())),
            },
        );
    }
    let estimate = config
        .metadata
        .get(CALL_STARTED_AT_KEY)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| unix_ms_now() - result.end_ms as i64);
    let role = pb::Role::try_from(result.role)
        .map_or("unspecified", |r| match r {
            pb::Role::Agent => "agent",
            pb::Role::Customer => "customer",
            pb::Role::Mixed => "mixed",
            pb::Role::Unspecified => "unspecified",
        })
        .to_owned();
    fwd.submit(ForwardSegment {
        call_started_at_unix_ms: fwd.call_started_at(&call_id, estimate),
        call_id,
        segment_id: result.segment_id.clone(),
        sequence: result.sequence,
        channel: result.channel,
        role,
        dialect: if result.dialect.is_empty() {
            config.dialect.clone()
        } else {
            result.dialect.clone()
        },
        raw_text: if result.raw_text.is_empty() {
            result.text.clone()
        } else {
            result.raw_text.clone()
        },
        text: result.text.clone(),
        start_ms: result.start_ms,
        end_ms: result.end_ms,
        confidence: result.confidence,
        language: language.unwrap_or_default().to_owned(),
    });
}

/// A recording's segment as forwarded by `transcribe`: the file is the call.
pub fn from_recording(
    call_id: &str,
    sequence: u64,
    segment: &Segment,
    language: &str,
    dialect: &str,
) -> ForwardSegment {
    ForwardSegment {
        call_id: call_id.to_owned(),
        segment_id: super::segment::segment_id(call_id, segment.channel, sequence),
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
        call_started_at_unix_ms: 0,
        confidence: segment.confidence,
        language: language.to_owned(),
    }
}
