//! Between the wire types (`proto::v1`) and the pipeline's own, with the validation that turns
//! a bad request into INVALID_ARGUMENT naming the field.

use crate::audio::codec::Encoding;
use crate::audio::Role;
use crate::proto::v1 as pb;
use crate::stream::{
    CallFormat, CallOutput, CallSummary, StreamError, MAX_CHANNELS, RATE_RANGE_HZ,
};
use crate::transcript::Segment;
use tonic::Status;

pub fn role_to_proto(role: Role) -> pb::Role {
    match role {
        Role::Agent => pb::Role::Agent,
        Role::Customer => pb::Role::Customer,
        Role::Mixed => pb::Role::Mixed,
    }
}

fn role_from_proto(v: i32) -> Result<Role, Status> {
    match pb::Role::try_from(v) {
        Ok(pb::Role::Agent) => Ok(Role::Agent),
        Ok(pb::Role::Customer) => Ok(Role::Customer),
        Ok(pb::Role::Mixed) => Ok(Role::Mixed),
        _ => Err(Status::invalid_argument(format!(
            "channel_roles: {v} is not a role (AGENT, CUSTOMER or MIXED)"
        ))),
    }
}

pub fn encoding_to_proto(e: Encoding) -> pb::AudioEncoding {
    match e {
        Encoding::Linear16 => pb::AudioEncoding::Linear16,
        Encoding::Mulaw => pb::AudioEncoding::Mulaw,
        Encoding::Alaw => pb::AudioEncoding::Alaw,
    }
}

/// Writes `format` into a config, as the server echoes it in `accepted_config` and as
/// `capture --server` declares what the card delivers.
pub fn set_call_format(cfg: &mut pb::StreamingConfig, format: &CallFormat) {
    cfg.encoding = encoding_to_proto(format.encoding) as i32;
    cfg.sample_rate_hz = format.sample_rate_hz;
    cfg.channel_count = format.roles.len() as u32;
    cfg.channel_roles = format
        .roles
        .iter()
        .map(|&r| role_to_proto(r) as i32)
        .collect();
}

/// The audio format a config declares; proto defaults (0) mean mono and default roles.
/// The per-call choices a `StreamingConfig` asks for (blank fields: the server's defaults).
/// `live` calls fit whisper's window to the utterance when the server is so configured.
pub fn call_request(cfg: &pb::StreamingConfig, fit_window: bool) -> crate::plan::CallRequest {
    let given = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    crate::plan::CallRequest {
        model: given(&cfg.model),
        dialect: given(&cfg.dialect),
        region: given(&cfg.region),
        language: given(&cfg.language),
        hotwords: Vec::new(),
        fit_window,
    }
}

pub fn call_format(cfg: &pb::StreamingConfig) -> Result<CallFormat, Status> {
    let encoding = match pb::AudioEncoding::try_from(cfg.encoding) {
        Ok(pb::AudioEncoding::Linear16) => Encoding::Linear16,
        Ok(pb::AudioEncoding::Mulaw) => Encoding::Mulaw,
        Ok(pb::AudioEncoding::Alaw) => Encoding::Alaw,
        _ => {
            return Err(Status::invalid_argument(
                "encoding must be LINEAR16, MULAW or ALAW",
            ))
        }
    };
    if !RATE_RANGE_HZ.contains(&cfg.sample_rate_hz) {
        return Err(invalid(StreamError::SampleRate(cfg.sample_rate_hz)));
    }
    let channels = if cfg.channel_count == 0 {
        1
    } else {
        cfg.channel_count as usize
    };
    if channels > MAX_CHANNELS {
        return Err(invalid(StreamError::Channels(channels)));
    }
    let roles = if cfg.channel_roles.is_empty() {
        if channels == 1 {
            vec![Role::Mixed]
        } else {
            vec![Role::Agent, Role::Customer]
        }
    } else {
        if cfg.channel_roles.len() != channels {
            return Err(Status::invalid_argument(format!(
                "channel_roles names {} role(s) for {channels} channel(s); give one per channel",
                cfg.channel_roles.len()
            )));
        }
        cfg.channel_roles
            .iter()
            .map(|&r| role_from_proto(r))
            .collect::<Result<_, _>>()?
    };
    Ok(CallFormat {
        encoding,
        sample_rate_hz: cfg.sample_rate_hz,
        roles,
    })
}

pub fn invalid(e: impl std::fmt::Display) -> Status {
    Status::invalid_argument(e.to_string())
}

/// A transcript segment on the wire; `sequence` counts the channel's finals from 0.
pub fn final_result(call_id: &str, sequence: u64, s: &Segment) -> pb::FinalResult {
    pb::FinalResult {
        segment_id: crate::transcript::segment_id(call_id, s.channel, sequence),
        channel: s.channel,
        role: role_to_proto(s.role) as i32,
        text: s.text.clone(),
        start_ms: s.start_ms,
        end_ms: s.end_ms,
        confidence: s.confidence,
        words: s
            .words
            .iter()
            .map(|w| pb::Word {
                text: w.text.clone(),
                start_ms: w.start_ms,
                end_ms: w.end_ms,
                probability: w.probability,
            })
            .collect(),
        sequence,
        raw_text: s.raw_text.clone(),
        dialect: String::new(),
    }
}

/// The adapter report sent to clients.
pub fn dialect_selected(sel: &crate::dialect::Selection, language: &str) -> pb::DialectSelected {
    use crate::dialect::Reason;
    let reason = match &sel.reason {
        Reason::Explicit => "explicit",
        Reason::Region { .. } => "region",
        Reason::Language { .. } => "language",
        Reason::Detected { .. } => "detected",
        Reason::Unsure { .. } => "unsure",
        Reason::Default => "default",
    };
    let (identified, probability) = sel.reason.identified().unwrap_or_default();
    pb::DialectSelected {
        adapter: sel.adapter.id().to_owned(),
        version: sel.adapter.profile.version.clone(),
        reason: reason.into(),
        detail: sel.reason.to_string(),
        language: language.to_owned(),
        identified_language: identified.to_owned(),
        language_probability: probability,
    }
}

/// A call driver's output as the response a client receives.
pub fn output_to_proto(
    call_id: &str,
    o: &CallOutput,
) -> pb::streaming_transcribe_response::Response {
    use pb::streaming_transcribe_response::Response as R;
    let speech = |kind: pb::speech_event::Kind, channel: u32, at: crate::audio::CallTime| {
        R::SpeechEvent(pb::SpeechEvent {
            kind: kind as i32,
            channel,
            at_ms: at.as_ms(),
        })
    };
    match o {
        CallOutput::SpeechStart { channel, at, .. } => {
            speech(pb::speech_event::Kind::SpeechStart, *channel, *at)
        }
        CallOutput::SpeechEnd { channel, at, .. } => {
            speech(pb::speech_event::Kind::SpeechEnd, *channel, *at)
        }
        CallOutput::Interim(i) => R::Interim(pb::InterimResult {
            channel: i.channel,
            role: role_to_proto(i.role) as i32,
            text: i.shown.text.clone(),
            stable_text: i.shown.stable_text.clone(),
            stability: i.shown.stability,
            start_ms: i.start.as_ms(),
            end_ms: i.end.as_ms(),
        }),
        CallOutput::Final(f) => {
            let mut result = final_result(call_id, f.sequence, &f.segment);
            result.dialect = f.dialect.clone();
            R::Final(result)
        }
    }
}

pub fn summary_to_proto(call_id: &str, s: &CallSummary) -> pb::CallSummary {
    pb::CallSummary {
        call_id: call_id.to_owned(),
        audio_ms: s.audio_ms,
        final_results: s.final_count,
        real_time_factor: s.real_time_factor,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(rate: u32, channels: u32) -> pb::StreamingConfig {
        pb::StreamingConfig {
            encoding: pb::AudioEncoding::Mulaw as i32,
            sample_rate_hz: rate,
            channel_count: channels,
            ..Default::default()
        }
    }

    #[test]
    fn defaults_fill_roles_by_channel_count() {
        assert_eq!(call_format(&cfg(8000, 0)).unwrap().roles, vec![Role::Mixed]);
        assert_eq!(
            call_format(&cfg(8000, 2)).unwrap().roles,
            vec![Role::Agent, Role::Customer]
        );
    }

    #[test]
    fn bad_configs_are_invalid_argument_naming_the_field() {
        for (c, field) in [
            (cfg(0, 1), "sample_rate_hz"),
            (cfg(1_000_000, 1), "sample_rate_hz"),
            (cfg(8000, 3), "channel_count"),
            (
                pb::StreamingConfig {
                    encoding: 0,
                    ..cfg(8000, 1)
                },
                "encoding",
            ),
            (
                pb::StreamingConfig {
                    channel_roles: vec![1],
                    ..cfg(8000, 2)
                },
                "channel_roles",
            ),
        ] {
            let e = call_format(&c).unwrap_err();
            assert_eq!(e.code(), tonic::Code::InvalidArgument);
            assert!(e.message().contains(field), "{field}: {}", e.message());
        }
    }
}
