//! NVIDIA Riva ASR (`nvidia.riva.asr`) ↔ the pipeline's own types, both ways: a Riva
//! `RecognitionConfig` in as the same [`LiveRequest`] / [`CallRequest`] the native API
//! makes, a call's [`CallReport`]s and a recording's [`Transcript`] out as Riva's results.
//! The README's "Coming from Google Speech or Riva" table is this module, field by field.
//!
//! Riva's config is Google v1's with Riva's encodings (LINEAR_PCM, MULAW, ALAW, FLAC,
//! OGGOPUS), an endpointing config, and a request `id` that the responses echo (and that names
//! the call when the metadata does not).

use super::gen_riva as rc;
use super::gen_riva::asr as ra;
use super::speech::{
    hotwords, is_container, language_tag, model_field, raw_format, AudioSpec, CallMetadata, Named,
};
use crate::audio::codec::Encoding;
use crate::engine::Word;
use crate::plan::CallRequest;
use crate::stream::{CallReport, LiveRequest};
use crate::transcript::{Segment, Transcript};
use tonic::Status;

/// How a client wants its results shaped: what its config asks beyond the domain request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResultShape {
    pub interim: bool,
    pub word_offsets: bool,
    /// Every channel's results; else only the first channel's.
    pub separate_channels: bool,
    /// The language tag asked for, reported with each alternative.
    pub language_code: String,
    /// The request's id, echoed in every response.
    pub id: Option<rc::RequestId>,
}

/// A Riva `RecognitionConfig` as the pipeline reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Recognition {
    pub audio: AudioSpec,
    pub choices: CallRequest,
    pub shape: ResultShape,
    /// From `endpointing_config.stop_history`.
    pub endpoint_silence_ms: Option<u32>,
}

/// Reads a Riva `RecognitionConfig`; `content` is the unary request's audio (`None` on a stream).
pub fn recognition(
    cfg: &ra::RecognitionConfig,
    content: Option<&[u8]>,
    id: Option<&rc::RequestId>,
    meta: &CallMetadata,
    classify: &dyn Fn(&str) -> Named,
) -> Result<Recognition, Status> {
    use rc::AudioEncoding as E;
    let encoding = E::try_from(cfg.encoding).map_err(|_| {
        Status::invalid_argument(format!(
            "config.encoding {} is not an encoding",
            cfg.encoding
        ))
    })?;
    let raw = |e: Encoding| {
        raw_format(
            e,
            cfg.sample_rate_hertz,
            cfg.audio_channel_count,
            meta.roles.as_deref(),
        )
    };
    let audio = match (encoding, content) {
        (_, Some(c)) if is_container(c) => AudioSpec::Container(meta.roles.clone()),
        (E::LinearPcm, _) => AudioSpec::Raw(raw(Encoding::Linear16)?),
        (E::Mulaw, _) => AudioSpec::Raw(raw(Encoding::Mulaw)?),
        (E::Alaw, _) => AudioSpec::Raw(raw(Encoding::Alaw)?),
        (E::EncodingUnspecified, _) => {
            return Err(Status::invalid_argument(
                "config.encoding is ENCODING_UNSPECIFIED and the audio has no WAV header: set \
                 LINEAR_PCM, MULAW or ALAW with sample_rate_hertz",
            ))
        }
        (E::Flac | E::Oggopus, _) => {
            return Err(Status::invalid_argument(format!(
                "config.encoding {}: send LINEAR_PCM, MULAW or ALAW (Recognize also takes a \
                 FLAC or Ogg Opus file with its header)",
                encoding.as_str_name()
            )))
        }
    };
    if cfg
        .diarization_config
        .as_ref()
        .is_some_and(|d| d.enable_speaker_diarization)
    {
        return Err(Status::invalid_argument(
            "config.diarization_config: speaker diarization is not supported; send each party on \
             its own channel (audio_channel_count 2 with enable_separate_recognition_per_channel)",
        ));
    }
    let endpoint_silence_ms = match cfg.endpointing_config.as_ref().and_then(|e| e.stop_history) {
        Some(ms) if ms > 0 => Some(u32::try_from(ms).unwrap_or(u32::MAX)),
        _ => None,
    };
    let contexts = cfg
        .speech_contexts
        .iter()
        .map(|c| (c.phrases.as_slice(), c.boost));
    let tag = language_tag(&cfg.language_code);
    let mut choices = CallRequest {
        region: meta.region.clone(),
        hotwords: hotwords(contexts, "config.speech_contexts")?,
        language: tag.language,
        dialect: tag.dialect,
        ..CallRequest::default()
    };
    model_field(&mut choices, &cfg.model, classify, &|_| false)?;
    Ok(Recognition {
        audio,
        choices,
        shape: ResultShape {
            word_offsets: cfg.enable_word_time_offsets,
            separate_channels: cfg.enable_separate_recognition_per_channel
                && cfg.audio_channel_count > 1,
            language_code: cfg.language_code.trim().to_owned(),
            id: id.filter(|i| !i.value.is_empty()).cloned(),
            ..ResultShape::default()
        },
        endpoint_silence_ms,
    })
}

/// A stream's first message: its config and request id, or INVALID_ARGUMENT.
pub fn first_config(
    req: Option<ra::StreamingRecognizeRequest>,
) -> Result<(ra::StreamingRecognitionConfig, Option<rc::RequestId>), Status> {
    use ra::streaming_recognize_request::StreamingRequest as Q;
    let Some(req) = req else {
        return Err(Status::invalid_argument(
            "the stream ended before its streaming_config",
        ));
    };
    match req.streaming_request {
        Some(Q::StreamingConfig(c)) => Ok((c, req.id)),
        Some(Q::AudioContent(_)) => Err(Status::invalid_argument(
            "the first StreamingRecognizeRequest must carry streaming_config, not audio_content",
        )),
        None => Err(Status::invalid_argument(
            "the first StreamingRecognizeRequest must carry streaming_config",
        )),
    }
}

/// A later message's audio, or INVALID_ARGUMENT.
pub fn audio_content(req: ra::StreamingRecognizeRequest) -> Result<Vec<u8>, Status> {
    use ra::streaming_recognize_request::StreamingRequest as Q;
    match req.streaming_request {
        Some(Q::AudioContent(a)) => Ok(a),
        Some(Q::StreamingConfig(_)) => Err(Status::invalid_argument(
            "streaming_config sent twice: only the first StreamingRecognizeRequest carries it",
        )),
        None => Err(Status::invalid_argument(
            "empty StreamingRecognizeRequest: set audio_content",
        )),
    }
}

/// A stream's config as the live call the native API would have asked for.
pub fn live_request(
    cfg: &ra::StreamingRecognitionConfig,
    id: Option<&rc::RequestId>,
    meta: &CallMetadata,
    classify: &dyn Fn(&str) -> Named,
    fit_window: bool,
) -> Result<(LiveRequest, ResultShape), Status> {
    let config = cfg
        .config
        .as_ref()
        .ok_or_else(|| Status::invalid_argument("streaming_config.config is required"))?;
    let r = recognition(config, None, id, meta, classify)?;
    let AudioSpec::Raw(format) = r.audio else {
        unreachable!("a stream's audio is raw: no content to sniff")
    };
    let mut choices = r.choices;
    choices.fit_window = fit_window;
    let call_id = meta
        .call_id
        .clone()
        .or_else(|| r.shape.id.as_ref().map(|i| i.value.clone()));
    Ok((
        LiveRequest {
            call_id,
            format,
            choices,
            interim: cfg.interim_results,
            endpoint_silence_ms: r.endpoint_silence_ms,
            started_at_unix_ms: meta.started_at_unix_ms,
        },
        ResultShape {
            interim: cfg.interim_results,
            ..r.shape
        },
    ))
}

/// `channel_tag` (1-based) of a result on `channel` (0-based), or `None` when the shape
/// drops that channel.
fn channel_tag(channel: u32, shape: &ResultShape) -> Option<i32> {
    (shape.separate_channels || channel == 0)
        .then(|| i32::try_from(channel).unwrap_or(i32::MAX - 1) + 1)
}

fn ms(v: u64) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

fn word(w: &Word, shape: &ResultShape) -> ra::WordInfo {
    ra::WordInfo {
        start_time: ms(w.start_ms),
        end_time: ms(w.end_ms),
        word: w.text.trim().to_owned(),
        confidence: w.probability,
        speaker_tag: 0,
        language_code: shape.language_code.clone(),
    }
}

fn alternative(s: &Segment, shape: &ResultShape) -> ra::SpeechRecognitionAlternative {
    ra::SpeechRecognitionAlternative {
        transcript: s.text.clone(),
        confidence: s.confidence,
        words: if shape.word_offsets {
            s.words.iter().map(|w| word(w, shape)).collect()
        } else {
            Vec::new()
        },
        language_code: vec![shape.language_code.clone()],
    }
}

/// A live call's reports as Riva `StreamingRecognizeResponse`s.
pub fn stream_report(
    report: CallReport,
    shape: &ResultShape,
) -> Option<ra::StreamingRecognizeResponse> {
    let result = match report {
        CallReport::Interim(i) if shape.interim => ra::StreamingRecognitionResult {
            channel_tag: channel_tag(i.channel, shape)?,
            alternatives: vec![ra::SpeechRecognitionAlternative {
                transcript: i.shown.text,
                language_code: vec![shape.language_code.clone()],
                ..Default::default()
            }],
            is_final: false,
            stability: i.shown.stability,
            audio_processed: i.end.as_ms() as f32 / 1000.0,
            pipeline_states: None,
        },
        CallReport::Final(f) => ra::StreamingRecognitionResult {
            channel_tag: channel_tag(f.segment.channel, shape)?,
            alternatives: vec![alternative(&f.segment, shape)],
            is_final: true,
            stability: 1.0,
            audio_processed: f.segment.end_ms as f32 / 1000.0,
            pipeline_states: None,
        },
        _ => return None,
    };
    Some(ra::StreamingRecognizeResponse {
        results: vec![result],
        id: shape.id.clone(),
    })
}

/// A recording's transcript as Riva's RecognizeResponse.
pub fn recognize_response(t: &Transcript, shape: &ResultShape) -> ra::RecognizeResponse {
    ra::RecognizeResponse {
        results: t
            .segments
            .iter()
            .filter_map(|s| {
                Some(ra::SpeechRecognitionResult {
                    channel_tag: channel_tag(s.channel, shape)?,
                    alternatives: vec![alternative(s, shape)],
                    audio_processed: s.end_ms as f32 / 1000.0,
                })
            })
            .collect(),
        id: shape.id.clone(),
    }
}

/// What GetRivaSpeechRecognitionConfig lists: one entry per loaded model and one per
/// dialect adapter (`model_name` is what a request's `model` may name).
pub struct Offered {
    pub name: String,
    /// BCP-47-ish language: `multi` for a multilingual model without an adapter.
    pub language_code: String,
    /// For an adapter: the model it runs on.
    pub model: Option<String>,
}

pub fn config_response(offered: Vec<Offered>) -> ra::RivaSpeechRecognitionConfigResponse {
    ra::RivaSpeechRecognitionConfigResponse {
        model_config: offered
            .into_iter()
            .map(|o| {
                let mut parameters = std::collections::HashMap::from([
                    ("language_code".to_owned(), o.language_code),
                    ("type".to_owned(), "online".to_owned()),
                    ("streaming".to_owned(), "true".to_owned()),
                ]);
                if let Some(m) = o.model {
                    parameters.insert("model".to_owned(), m);
                }
                ra::riva_speech_recognition_config_response::Config {
                    model_name: o.name,
                    parameters,
                }
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::Role;
    use crate::stream::FinalReport;

    fn cfg() -> ra::RecognitionConfig {
        ra::RecognitionConfig {
            encoding: rc::AudioEncoding::Alaw as i32,
            sample_rate_hertz: 8000,
            language_code: "zh-CN".into(),
            audio_channel_count: 1,
            endpointing_config: Some(ra::EndpointingConfig {
                stop_history: Some(600),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn neither(_: &str) -> Named {
        Named::Neither
    }

    #[test]
    fn a_riva_stream_becomes_the_native_live_request_named_by_its_id() {
        let sc = ra::StreamingRecognitionConfig {
            config: Some(cfg()),
            interim_results: true,
        };
        let id = rc::RequestId {
            value: "r-1".into(),
        };
        let (req, shape) =
            live_request(&sc, Some(&id), &CallMetadata::default(), &neither, false).unwrap();
        assert_eq!(req.call_id.as_deref(), Some("r-1"));
        assert_eq!(req.format.encoding, Encoding::Alaw);
        assert_eq!(req.choices.language.as_deref(), Some("zh"));
        assert_eq!(req.endpoint_silence_ms, Some(600));
        assert_eq!(shape.id, Some(id));
    }

    #[test]
    fn stream_encodings_nothing_decodes_live_are_refused_by_name() {
        let c = ra::RecognitionConfig {
            encoding: rc::AudioEncoding::Oggopus as i32,
            ..cfg()
        };
        let e = recognition(&c, None, None, &CallMetadata::default(), &neither).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().contains("OGGOPUS"), "{}", e.message());
    }

    #[test]
    fn finals_carry_the_request_id_and_a_one_based_channel() {
        let shape = ResultShape {
            separate_channels: true,
            language_code: "en-US".into(),
            id: Some(rc::RequestId {
                value: "r-2".into(),
            }),
            ..Default::default()
        };
        let segment = Segment {
            channel: 1,
            role: Role::Customer,
            start_ms: 0,
            end_ms: 1500,
            text: "hello".into(),
            raw_text: "hello".into(),
            confidence: 0.5,
            words: Vec::new(),
        };
        let r = stream_report(
            CallReport::Final(FinalReport::new("c", 0, segment, String::new())),
            &shape,
        )
        .unwrap();
        assert_eq!(r.id.unwrap().value, "r-2");
        let res = &r.results[0];
        assert!(res.is_final);
        assert_eq!((res.channel_tag, res.audio_processed), (2, 1.5));
    }
}
