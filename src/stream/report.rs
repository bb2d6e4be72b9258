//! What a live call reports to whoever follows it, in the order they should see it: the call
//! as accepted, its dialect adapter, speech events, interims and finals, suggestions for the
//! finals, and the summary.
//!
//! The gRPC response stream carries exactly these (`proto::convert` maps each to a
//! `StreamingTranscribeResponse` and back), and local `capture` hands them to its printer
//! with no wire in between, so a call printed by `capture` and one printed by `stream` read
//! the same. Only what reaches a client is here: a [`CallOutput`] says more (the role of a
//! speech event, a final's latency) for the front door's own use.

use super::driver::{CallOutput, CallSummary, DialectOutput, FinalOutput, InterimOutput};
use crate::audio::CallTime;
use crate::dialect::SelectionReport;
use crate::kb::Suggestion;
use crate::transcript::{segment_id, Segment};

#[derive(Debug, Clone, PartialEq)]
pub enum CallReport {
    Accepted(AcceptedCall),
    Dialect(SelectionReport),
    SpeechStart { channel: u32, at: CallTime },
    SpeechEnd { channel: u32, at: CallTime },
    Interim(InterimOutput),
    Final(FinalReport),
    Suggestion(Suggestion),
    Summary(CallSummary),
}

/// The call as accepted: what a client shows of its settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AcceptedCall {
    pub call_id: String,
    pub sample_rate_hz: u32,
    pub channel_count: u32,
    /// The spoken language; empty: the deployment's.
    pub language: String,
    /// Empty: the deployment's default.
    pub model: String,
    /// The adapter chosen before audio; empty while identification is pending.
    pub dialect: String,
    pub region: String,
}

/// One utterance, transcribed for good, as clients receive it.
#[derive(Debug, Clone, PartialEq)]
pub struct FinalReport {
    /// [`segment_id`]: the name downstreams and clients know the segment by.
    pub segment_id: String,
    /// Counts the channel's finals from 0.
    pub sequence: u64,
    pub segment: Segment,
    /// The adapter it was decoded and normalised with (empty: none).
    pub dialect: String,
}

impl FinalReport {
    /// Final `sequence` of call `call_id` on its segment's channel.
    pub fn new(call_id: &str, sequence: u64, segment: Segment, dialect: String) -> Self {
        Self {
            segment_id: segment_id(call_id, segment.channel, sequence),
            sequence,
            segment,
            dialect,
        }
    }

    pub fn of(call_id: &str, f: &FinalOutput) -> Self {
        Self::new(call_id, f.sequence, f.segment.clone(), f.dialect.clone())
    }
}

impl CallReport {
    /// What call `call_id`'s driver output shows a client.
    pub fn output(call_id: &str, o: &CallOutput) -> Self {
        match o {
            CallOutput::SpeechStart { channel, at, .. } => CallReport::SpeechStart {
                channel: *channel,
                at: *at,
            },
            CallOutput::SpeechEnd { channel, at, .. } => CallReport::SpeechEnd {
                channel: *channel,
                at: *at,
            },
            CallOutput::Interim(i) => CallReport::Interim(i.clone()),
            CallOutput::Final(f) => CallReport::Final(FinalReport::of(call_id, f)),
        }
    }

    /// The adapter a call's driver chose, and the language it decodes in.
    pub fn dialect(d: &DialectOutput) -> Self {
        CallReport::Dialect(SelectionReport::of(&d.selection, &d.language))
    }
}
