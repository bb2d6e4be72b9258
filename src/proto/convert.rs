//! Between the wire types ([`v1`](super::v1)) and the pipeline's own, both ways: a request's
//! config in (validated, so that a bad one is INVALID_ARGUMENT naming the field), a call's
//! reports out as responses; and, for a client, those responses back into the same reports.
//! Nothing else in the crate builds or reads a message of the `Transcription` service.

use super::v1 as pb;
use crate::audio::codec::Encoding;
use crate::audio::{CallTime, Role};
use crate::dialect::SelectionReport;
use crate::engine::Word;
use crate::kb::{Hit, Suggestion};
use crate::plan::{CallPlan, CallRequest};
use crate::stream::{
    AcceptedCall, CallFormat, CallReport, CallSummary, FinalReport, Interim, InterimOutput,
    LiveRequest, StreamError, MAX_CHANNELS, RATE_RANGE_HZ,
};
use crate::transcript::Segment;
use pb::streaming_transcribe_response::Response as R;
use tonic::Status;

/// Metadata key a telephony system may set on `StreamingConfig.metadata` to give the call's
/// wall-clock start (Unix milliseconds); without it the start is estimated from the first final.
pub const CALL_STARTED_AT_KEY: &str = "call_started_at_unix_ms";

fn role(v: i32) -> Option<Role> {
    match pb::Role::try_from(v) {
        Ok(pb::Role::Agent) => Some(Role::Agent),
        Ok(pb::Role::Customer) => Some(Role::Customer),
        Ok(pb::Role::Mixed) => Some(Role::Mixed),
        _ => None,
    }
}

pub fn role_to_proto(role: Role) -> pb::Role {
    match role {
        Role::Agent => pb::Role::Agent,
        Role::Customer => pb::Role::Customer,
        Role::Mixed => pb::Role::Mixed,
    }
}

pub fn encoding_to_proto(e: Encoding) -> pb::AudioEncoding {
    match e {
        Encoding::Linear16 => pb::AudioEncoding::Linear16,
        Encoding::Mulaw => pb::AudioEncoding::Mulaw,
        Encoding::Alaw => pb::AudioEncoding::Alaw,
    }
}

pub fn invalid(e: impl std::fmt::Display) -> Status {
    Status::invalid_argument(e.to_string())
}

// In: a request's config.

/// The audio format a config declares; proto defaults (0) mean mono and default roles.
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
            .map(|&r| {
                role(r).ok_or_else(|| {
                    Status::invalid_argument(format!(
                        "channel_roles: {r} is not a role (AGENT, CUSTOMER or MIXED)"
                    ))
                })
            })
            .collect::<Result<_, _>>()?
    };
    Ok(CallFormat {
        encoding,
        sample_rate_hz: cfg.sample_rate_hz,
        roles,
    })
}

/// The call's wall-clock start from its metadata ([`CALL_STARTED_AT_KEY`]), if given and a
/// number.
pub fn call_started_at(cfg: &pb::StreamingConfig) -> Option<i64> {
    cfg.metadata.get(CALL_STARTED_AT_KEY)?.parse().ok()
}

/// The per-call choices a `StreamingConfig` asks for (blank fields: the server's defaults).
/// `live` calls fit whisper's window to the utterance when the server is so configured.
pub fn call_request(cfg: &pb::StreamingConfig, fit_window: bool) -> CallRequest {
    let given = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    CallRequest {
        model: given(&cfg.model),
        dialect: given(&cfg.dialect),
        region: given(&cfg.region),
        language: given(&cfg.language),
        hotwords: Vec::new(),
        fit_window,
    }
}

/// A live call's first message as the pipeline reads it: names trimmed, blank fields and
/// zeros the server's defaults.
pub fn live_request(cfg: &pb::StreamingConfig, fit_window: bool) -> Result<LiveRequest, Status> {
    Ok(LiveRequest {
        call_id: Some(cfg.call_id.trim().to_owned()).filter(|s| !s.is_empty()),
        format: call_format(cfg)?,
        choices: call_request(cfg, fit_window),
        interim: cfg.interim_results,
        endpoint_silence_ms: Some(cfg.endpoint_silence_ms).filter(|&ms| ms != 0),
        started_at_unix_ms: call_started_at(cfg),
    })
}

/// The audio of a message after the first; INVALID_ARGUMENT for anything else.
pub fn audio_message(req: pb::StreamingTranscribeRequest) -> Result<Vec<u8>, Status> {
    match req.request {
        Some(pb::streaming_transcribe_request::Request::Audio(audio)) => Ok(audio),
        Some(pb::streaming_transcribe_request::Request::Config(_)) => {
            Err(Status::invalid_argument(
                "config sent twice: only the first message carries config; later ones carry audio",
            ))
        }
        None => Err(Status::invalid_argument(
            "empty request: set config (first message) or audio",
        )),
    }
}

// Out: a client's request, and what a call reports, as responses.

/// The config a client sent as the server applies it: defaults filled in, the plan's
/// model, language and adapter.
pub fn accepted_config(
    cfg: pb::StreamingConfig,
    call_id: &str,
    plan: &CallPlan,
    endpoint_silence_ms: u32,
    format: &CallFormat,
) -> pb::StreamingConfig {
    let mut accepted = pb::StreamingConfig {
        call_id: call_id.to_owned(),
        language: plan.language_code().unwrap_or("auto").to_owned(),
        endpoint_silence_ms,
        model: plan.model.name.clone(),
        dialect: plan.adapter_id().to_owned(),
        ..cfg
    };
    set_call_format(&mut accepted, format);
    accepted
}

/// The first response of a call: its config as applied, whole.
pub fn accepted_response(
    call_id: &str,
    cfg: pb::StreamingConfig,
) -> pb::StreamingTranscribeResponse {
    pb::StreamingTranscribeResponse {
        call_id: call_id.to_owned(),
        response: Some(R::AcceptedConfig(cfg)),
    }
}

/// The first message of a live call a client sends. Hotwords and window fitting are the
/// server's to decide: they do not travel.
pub fn streaming_config(request: &LiveRequest) -> pb::StreamingConfig {
    let or_default = |s: &Option<String>| s.clone().unwrap_or_default();
    let choices = &request.choices;
    let mut cfg = pb::StreamingConfig {
        call_id: or_default(&request.call_id),
        dialect: or_default(&choices.dialect),
        region: or_default(&choices.region),
        language: or_default(&choices.language),
        interim_results: request.interim,
        endpoint_silence_ms: request.endpoint_silence_ms.unwrap_or(0),
        metadata: request
            .started_at_unix_ms
            .map(|ms| (CALL_STARTED_AT_KEY.to_owned(), ms.to_string()))
            .into_iter()
            .collect(),
        model: or_default(&choices.model),
        ..Default::default()
    };
    set_call_format(&mut cfg, &request.format);
    cfg
}

/// Writes `format` into a config, as the server echoes it in `accepted_config` and as a
/// client declares what it sends.
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

/// A transcript segment on the wire.
pub fn final_result(f: FinalReport) -> pb::FinalResult {
    let s = f.segment;
    pb::FinalResult {
        segment_id: f.segment_id,
        channel: s.channel,
        role: role_to_proto(s.role) as i32,
        text: s.text,
        start_ms: s.start_ms,
        end_ms: s.end_ms,
        confidence: s.confidence,
        words: s
            .words
            .into_iter()
            .map(|w| pb::Word {
                text: w.text,
                start_ms: w.start_ms,
                end_ms: w.end_ms,
                probability: w.probability,
            })
            .collect(),
        sequence: f.sequence,
        raw_text: s.raw_text,
        dialect: f.dialect,
    }
}

/// The adapter report sent to clients.
pub fn dialect_selected(d: SelectionReport) -> pb::DialectSelected {
    pb::DialectSelected {
        adapter: d.adapter,
        version: d.version,
        reason: d.reason,
        detail: d.detail,
        language: d.language,
        identified_language: d.identified_language,
        language_probability: d.language_probability,
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

/// One report of call `call_id` as the response a client receives.
pub fn report_to_proto(call_id: &str, report: CallReport) -> pb::StreamingTranscribeResponse {
    let speech = |kind: pb::speech_event::Kind, channel: u32, at: CallTime| {
        R::SpeechEvent(pb::SpeechEvent {
            kind: kind as i32,
            channel,
            at_ms: at.as_ms(),
        })
    };
    let response = match report {
        CallReport::Accepted(a) => R::AcceptedConfig(pb::StreamingConfig {
            call_id: a.call_id,
            sample_rate_hz: a.sample_rate_hz,
            channel_count: a.channel_count,
            language: a.language,
            model: a.model,
            dialect: a.dialect,
            region: a.region,
            ..Default::default()
        }),
        CallReport::Dialect(d) => R::Dialect(dialect_selected(d)),
        CallReport::SpeechStart { channel, at } => {
            speech(pb::speech_event::Kind::SpeechStart, channel, at)
        }
        CallReport::SpeechEnd { channel, at } => {
            speech(pb::speech_event::Kind::SpeechEnd, channel, at)
        }
        CallReport::Interim(i) => R::Interim(pb::InterimResult {
            channel: i.channel,
            role: role_to_proto(i.role) as i32,
            text: i.shown.text,
            stable_text: i.shown.stable_text,
            stability: i.shown.stability,
            start_ms: i.start.as_ms(),
            end_ms: i.end.as_ms(),
        }),
        CallReport::Final(f) => R::Final(final_result(f)),
        CallReport::Suggestion(s) => R::Suggestion(pb::Suggestion {
            segment_id: s.segment_id,
            hits: s.hits.iter().map(Into::into).collect(),
        }),
        CallReport::Summary(s) => R::Summary(summary_to_proto(call_id, &s)),
    };
    pb::StreamingTranscribeResponse {
        call_id: call_id.to_owned(),
        response: Some(response),
    }
}

// Back: a client reading a call's responses.

/// A response no callscribe server sends.
#[derive(Debug, thiserror::Error)]
#[error("the server sent {0}")]
pub struct InvalidResponse(String);

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

fn response_role(v: i32, what: &str) -> Result<Role, InvalidResponse> {
    role(v).ok_or_else(|| InvalidResponse(format!("{what} with role {v}")))
}

/// A response of call `call_id` as the report it carries.
pub fn report_from_proto(call_id: &str, response: R) -> Result<CallReport, InvalidResponse> {
    Ok(match response {
        R::AcceptedConfig(c) => CallReport::Accepted(AcceptedCall {
            call_id: c.call_id,
            sample_rate_hz: c.sample_rate_hz,
            channel_count: c.channel_count,
            language: c.language,
            model: c.model,
            dialect: c.dialect,
            region: c.region,
        }),
        R::Dialect(d) => CallReport::Dialect(SelectionReport {
            adapter: d.adapter,
            version: d.version,
            reason: d.reason,
            detail: d.detail,
            language: d.language,
            identified_language: d.identified_language,
            language_probability: d.language_probability,
        }),
        R::SpeechEvent(e) => {
            let at = CallTime::from_ms(e.at_ms);
            match pb::speech_event::Kind::try_from(e.kind) {
                Ok(pb::speech_event::Kind::SpeechStart) => CallReport::SpeechStart {
                    channel: e.channel,
                    at,
                },
                Ok(pb::speech_event::Kind::SpeechEnd) => CallReport::SpeechEnd {
                    channel: e.channel,
                    at,
                },
                _ => return Err(InvalidResponse(format!("speech event kind {}", e.kind))),
            }
        }
        R::Interim(i) => CallReport::Interim(InterimOutput {
            channel: i.channel,
            role: response_role(i.role, "an interim")?,
            start: CallTime::from_ms(i.start_ms),
            end: CallTime::from_ms(i.end_ms),
            shown: Interim {
                text: i.text,
                stable_text: i.stable_text,
                stability: i.stability,
            },
        }),
        R::Final(f) => CallReport::Final(FinalReport {
            segment_id: f.segment_id,
            sequence: f.sequence,
            segment: Segment {
                channel: f.channel,
                role: response_role(f.role, "a final")?,
                start_ms: f.start_ms,
                end_ms: f.end_ms,
                text: f.text,
                raw_text: f.raw_text,
                confidence: f.confidence,
                words: f
                    .words
                    .into_iter()
                    .map(|w| Word {
                        text: w.text,
                        start_ms: w.start_ms,
                        end_ms: w.end_ms,
                        probability: w.probability,
                    })
                    .collect(),
            },
            dialect: f.dialect,
        }),
        R::Suggestion(s) => CallReport::Suggestion(Suggestion {
            call_id: call_id.to_owned(),
            segment_id: s.segment_id,
            // Not on the wire.
            sink: String::new(),
            hits: s.hits.into_iter().map(Into::into).collect(),
        }),
        R::Summary(s) => CallReport::Summary(CallSummary {
            audio_ms: s.audio_ms,
            final_count: s.final_results,
            real_time_factor: s.real_time_factor,
        }),
    })
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

    /// One report of every kind, as a call sends them.
    fn reports() -> Vec<CallReport> {
        let segment = Segment {
            channel: 1,
            role: Role::Customer,
            start_ms: 1250,
            end_ms: 3500,
            text: "我的快递还没到。".into(),
            raw_text: "我的快递还没到".into(),
            confidence: 0.875,
            words: vec![Word {
                text: "我".into(),
                start_ms: 1250,
                end_ms: 1500,
                probability: 0.5,
            }],
        };
        vec![
            CallReport::Accepted(AcceptedCall {
                call_id: "c1".into(),
                sample_rate_hz: 8000,
                channel_count: 2,
                language: "zh".into(),
                model: "base".into(),
                dialect: String::new(),
                region: "广州".into(),
            }),
            CallReport::Dialect(SelectionReport::new(
                "cantonese",
                "2",
                &crate::dialect::Reason::Detected {
                    language: "yue".into(),
                    probability: 0.75,
                },
                "yue",
            )),
            CallReport::SpeechStart {
                channel: 1,
                at: CallTime::from_ms(1250),
            },
            CallReport::Interim(InterimOutput {
                channel: 1,
                role: Role::Customer,
                start: CallTime::from_ms(1250),
                end: CallTime::from_ms(2250),
                shown: Interim {
                    text: "我的快递".into(),
                    stable_text: "我的".into(),
                    stability: 0.5,
                },
            }),
            CallReport::SpeechEnd {
                channel: 1,
                at: CallTime::from_ms(3500),
            },
            CallReport::Final(FinalReport::new("c1", 4, segment, "cantonese".into())),
            CallReport::Suggestion(Suggestion {
                call_id: "c1".into(),
                segment_id: "c1/1/4".into(),
                sink: String::new(),
                hits: vec![Hit {
                    article_id: "delivery-status-zh".into(),
                    title: "快递查询".into(),
                    snippet: "查询单号".into(),
                    score: 7.25,
                    source: "kb".into(),
                }],
            }),
            CallReport::Summary(CallSummary {
                audio_ms: 62_500,
                final_count: 5,
                real_time_factor: 0.125,
            }),
        ]
    }

    #[test]
    fn every_report_reads_back_from_its_response_unchanged() {
        for report in reports() {
            let response = report_to_proto("c1", report.clone());
            assert_eq!(response.call_id, "c1");
            let back = report_from_proto("c1", response.response.unwrap()).unwrap();
            assert_eq!(back, report);
        }
    }

    #[test]
    fn a_final_on_the_wire_is_named_by_call_channel_and_sequence() {
        let CallReport::Final(f) = &reports()[5] else {
            panic!("the sixth report is a final")
        };
        let wire = final_result(f.clone());
        assert_eq!(
            (wire.segment_id.as_str(), wire.sequence, wire.channel),
            ("c1/1/4", 4, 1)
        );
        assert_eq!(wire.role, pb::Role::Customer as i32);
        assert_eq!(wire.dialect, "cantonese");
    }

    #[test]
    fn responses_no_server_sends_are_errors_not_guesses() {
        let final_without_role = R::Final(pb::FinalResult::default());
        let e = report_from_proto("c1", final_without_role).unwrap_err();
        assert!(e.to_string().contains("role 0"), "{e}");
        let no_kind = R::SpeechEvent(pb::SpeechEvent::default());
        assert!(report_from_proto("c1", no_kind).is_err());
    }

    #[test]
    fn a_clients_request_reads_back_as_the_server_sees_it() {
        let request = LiveRequest {
            call_id: Some("c1".into()),
            format: CallFormat {
                encoding: Encoding::Mulaw,
                sample_rate_hz: 8000,
                roles: vec![Role::Customer, Role::Agent],
            },
            choices: CallRequest {
                model: Some("base".into()),
                language: None,
                dialect: Some("cantonese".into()),
                region: Some("020".into()),
                hotwords: Vec::new(),
                fit_window: true,
            },
            interim: true,
            endpoint_silence_ms: Some(700),
            started_at_unix_ms: Some(1_700_000_000_000),
        };
        let read = live_request(&streaming_config(&request), true).unwrap();
        assert_eq!(read, request);
        let padded = pb::StreamingConfig {
            call_id: "  ".into(),
            language: " zh ".into(),
            ..cfg(8000, 1)
        };
        let read = live_request(&padded, false).unwrap();
        assert_eq!(
            (read.call_id, read.choices.language),
            (None, Some("zh".into()))
        );
        assert_eq!(read.format.roles, vec![Role::Mixed]);
    }

    #[test]
    fn the_call_start_comes_from_metadata_when_it_is_a_number() {
        let with = |v: &str| pb::StreamingConfig {
            metadata: [(CALL_STARTED_AT_KEY.to_owned(), v.to_owned())].into(),
            ..Default::default()
        };
        assert_eq!(
            call_started_at(&with("1700000000000")),
            Some(1_700_000_000_000)
        );
        assert_eq!(call_started_at(&with("yesterday")), None);
        assert_eq!(call_started_at(&pb::StreamingConfig::default()), None);
    }
}
