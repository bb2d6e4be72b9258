//! Google Cloud Speech-to-Text v1 (`google.cloud.speech.v1`) ↔ the pipeline's own types, both
//! ways: a `RecognitionConfig` in as the same [`LiveRequest`] / [`CallRequest`] the native API
//! makes, a call's [`CallReport`]s and a recording's [`Transcript`] out as Google's results.
//! The README's "Coming from Google Speech or Riva" table is this module, field by field.
//!
//! Fields with no counterpart are refused where ignoring them would change what the client
//! gets back without its knowing (diarization, stored adaptation resources, transcript
//! normalisation, audio by URI, encodings nothing here decodes), and ignored where Google
//! itself treats them as hints (profanity filter, metadata, `use_enhanced`).

use super::gen_google::cloud::speech::v1 as gs;
use super::gen_google::{longrunning, rpc};
use super::speech::{
    hotwords, is_container, language_tag, model_field, raw_format, AudioSpec, CallMetadata, Named,
    GOOGLE_MODELS,
};
use crate::audio::codec::Encoding;
use crate::engine::Word;
use crate::plan::CallRequest;
use crate::stream::{CallReport, FinalReport, InterimOutput, LiveRequest};
use crate::transcript::{LanguageSource, Segment, Transcript};
use gs::recognition_config::AudioEncoding as GEncoding;
use gs::streaming_recognize_response::SpeechEventType;
use prost::Message;
use tonic::Status;

/// The Any type of a finished LongRunningRecognize operation's response.
pub const LONG_RUNNING_RESPONSE_TYPE: &str =
    "type.googleapis.com/google.cloud.speech.v1.LongRunningRecognizeResponse";
/// The Any type of an operation's metadata.
pub const LONG_RUNNING_METADATA_TYPE: &str =
    "type.googleapis.com/google.cloud.speech.v1.LongRunningRecognizeMetadata";

/// How a client wants its results shaped: what its config asks beyond the domain request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResultShape {
    pub interim: bool,
    pub single_utterance: bool,
    pub voice_events: bool,
    pub word_offsets: bool,
    pub word_confidence: bool,
    /// Every channel's results, `channel_tag` 1..N; else only the first channel's, untagged
    /// (Google recognises only the first channel then).
    pub separate_channels: bool,
    /// Each result's `language_code`: the tag asked for, lower-cased as Google reports it,
    /// until identification names the language heard.
    pub language_code: String,
}

/// A `RecognitionConfig` as the pipeline reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Recognition {
    pub audio: AudioSpec,
    pub choices: CallRequest,
    pub shape: ResultShape,
}

/// Reads a `RecognitionConfig`. `content` is the unary request's audio (`None` on a stream,
/// where only raw LINEAR16 and MULAW can be read as it comes); `classify` says which of ours
/// the `model` field names.
pub fn recognition(
    cfg: &gs::RecognitionConfig,
    content: Option<&[u8]>,
    meta: &CallMetadata,
    classify: &dyn Fn(&str) -> Named,
) -> Result<Recognition, Status> {
    let encoding = GEncoding::try_from(cfg.encoding).map_err(|_| {
        Status::invalid_argument(format!(
            "config.encoding {} is not an encoding",
            cfg.encoding
        ))
    })?;
    let container = content.is_some_and(is_container);
    let raw = |e: Encoding| {
        raw_format(
            e,
            cfg.sample_rate_hertz,
            cfg.audio_channel_count,
            meta.roles.as_deref(),
        )
    };
    let audio =
        match (encoding, content) {
            // A WAV header says what follows, whatever the config says (as Google reads it).
            (_, Some(_)) if container => AudioSpec::Container(meta.roles.clone()),
            (GEncoding::Linear16, _) => AudioSpec::Raw(raw(Encoding::Linear16)?),
            (GEncoding::Mulaw, _) => AudioSpec::Raw(raw(Encoding::Mulaw)?),
            (GEncoding::EncodingUnspecified, _) => return Err(Status::invalid_argument(
                "config.encoding is ENCODING_UNSPECIFIED and the audio has no WAV or FLAC header: \
                 set LINEAR16 or MULAW with sample_rate_hertz",
            )),
            (GEncoding::Flac | GEncoding::OggOpus | GEncoding::WebmOpus, None) => {
                return Err(Status::invalid_argument(format!(
                    "config.encoding {}: a stream takes LINEAR16 or MULAW (Recognize and \
                 LongRunningRecognize also take FLAC, OGG_OPUS and WEBM_OPUS files)",
                    encoding.as_str_name()
                )))
            }
            (other, _) => {
                return Err(Status::invalid_argument(format!(
                    "config.encoding {} is not supported: send LINEAR16 or MULAW (or, to \
                 Recognize, a WAV, FLAC, OGG_OPUS or WEBM_OPUS file)",
                    other.as_str_name()
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
    if cfg
        .transcript_normalization
        .as_ref()
        .is_some_and(|t| !t.entries.is_empty())
    {
        return Err(Status::invalid_argument(
            "config.transcript_normalization is not supported (dialect adapters normalise text)",
        ));
    }
    let mut contexts: Vec<(&[String], f32)> = cfg
        .speech_contexts
        .iter()
        .map(|c| (c.phrases.as_slice(), c.boost))
        .collect();
    let mut inline = Vec::new();
    if let Some(a) = &cfg.adaptation {
        if !a.phrase_set_references.is_empty()
            || !a.custom_classes.is_empty()
            || a.abnf_grammar.is_some()
        {
            return Err(Status::invalid_argument(
                "config.adaptation: phrase set references, custom classes and grammars are not \
                 supported; give phrases inline (speech_contexts or adaptation.phrase_sets)",
            ));
        }
        for set in &a.phrase_sets {
            for p in &set.phrases {
                let boost = if p.boost > 0.0 { p.boost } else { set.boost };
                inline.push((vec![p.value.clone()], boost));
            }
        }
    }
    contexts.extend(inline.iter().map(|(p, b)| (p.as_slice(), *b)));
    let mut choices = CallRequest {
        region: meta.region.clone(),
        hotwords: hotwords(contexts, "config.speech_contexts")?,
        ..CallRequest::default()
    };
    let tag = language_tag(&cfg.language_code);
    if cfg.alternative_language_codes.is_empty() {
        choices.language = tag.language;
        choices.dialect = tag.dialect;
    } else {
        // Alternatives: the language is identified from the first speech.
        choices.language = Some("auto".into());
    }
    model_field(&mut choices, &cfg.model, classify, &|m| {
        GOOGLE_MODELS.contains(&m)
    })?;
    let separate = cfg.enable_separate_recognition_per_channel && cfg.audio_channel_count > 1;
    Ok(Recognition {
        audio,
        choices,
        shape: ResultShape {
            word_offsets: cfg.enable_word_time_offsets,
            word_confidence: cfg.enable_word_confidence,
            separate_channels: separate,
            language_code: cfg.language_code.trim().to_ascii_lowercase(),
            ..ResultShape::default()
        },
    })
}

/// A stream's first message: its config, or INVALID_ARGUMENT.
pub fn first_config(
    req: Option<gs::StreamingRecognizeRequest>,
) -> Result<gs::StreamingRecognitionConfig, Status> {
    use gs::streaming_recognize_request::StreamingRequest as Q;
    match req.and_then(|r| r.streaming_request) {
        Some(Q::StreamingConfig(c)) => Ok(c),
        Some(Q::AudioContent(_)) => Err(Status::invalid_argument(
            "the first StreamingRecognizeRequest must carry streaming_config, not audio_content",
        )),
        None => Err(Status::invalid_argument(
            "the stream ended before its streaming_config",
        )),
    }
}

/// A later message's audio, or INVALID_ARGUMENT.
pub fn audio_content(req: gs::StreamingRecognizeRequest) -> Result<Vec<u8>, Status> {
    use gs::streaming_recognize_request::StreamingRequest as Q;
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
    cfg: &gs::StreamingRecognitionConfig,
    meta: &CallMetadata,
    classify: &dyn Fn(&str) -> Named,
    fit_window: bool,
) -> Result<(LiveRequest, ResultShape), Status> {
    let rc = cfg
        .config
        .as_ref()
        .ok_or_else(|| Status::invalid_argument("streaming_config.config is required"))?;
    let r = recognition(rc, None, meta, classify)?;
    let AudioSpec::Raw(format) = r.audio else {
        unreachable!("a stream's audio is raw: no content to sniff")
    };
    let mut choices = r.choices;
    choices.fit_window = fit_window;
    let shape = ResultShape {
        interim: cfg.interim_results,
        single_utterance: cfg.single_utterance,
        voice_events: cfg.enable_voice_activity_events,
        ..r.shape
    };
    Ok((
        LiveRequest {
            call_id: meta.call_id.clone(),
            format,
            choices,
            interim: cfg.interim_results,
            endpoint_silence_ms: None,
            started_at_unix_ms: meta.started_at_unix_ms,
        },
        shape,
    ))
}

/// Milliseconds as a protobuf Duration.
pub fn duration(ms: u64) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(ms / 1000).unwrap_or(i64::MAX),
        nanos: i32::try_from((ms % 1000) * 1_000_000).unwrap_or(0),
    }
}

/// A segment's text as Google's one alternative.
fn alternative(s: &Segment, shape: &ResultShape) -> gs::SpeechRecognitionAlternative {
    gs::SpeechRecognitionAlternative {
        transcript: s.text.clone(),
        confidence: s.confidence,
        words: if shape.word_offsets || shape.word_confidence {
            s.words.iter().map(|w| word(w, shape)).collect()
        } else {
            Vec::new()
        },
    }
}

fn word(w: &Word, shape: &ResultShape) -> gs::WordInfo {
    gs::WordInfo {
        start_time: shape.word_offsets.then(|| duration(w.start_ms)),
        end_time: shape.word_offsets.then(|| duration(w.end_ms)),
        word: w.text.trim().to_owned(),
        confidence: if shape.word_confidence {
            w.probability
        } else {
            0.0
        },
        ..Default::default()
    }
}

/// `channel_tag` of a result on `channel` (0-based), or `None` when the shape drops it.
fn channel_tag(channel: u32, shape: &ResultShape) -> Option<i32> {
    if shape.separate_channels {
        Some(i32::try_from(channel).unwrap_or(i32::MAX - 1) + 1)
    } else if channel == 0 {
        Some(0)
    } else {
        None
    }
}

/// A live call's reports as `StreamingRecognizeResponse`s.
#[derive(Debug, Clone)]
pub struct StreamReplies {
    pub shape: ResultShape,
    /// END_OF_SINGLE_UTTERANCE has been sent.
    utterance_ended: bool,
}

impl StreamReplies {
    pub fn new(shape: ResultShape) -> Self {
        Self {
            shape,
            utterance_ended: false,
        }
    }

    /// Whether, with `single_utterance`, this report ends the utterance (and the input).
    pub fn ends_input(&self, report: &CallReport) -> bool {
        self.shape.single_utterance
            && matches!(report, CallReport::SpeechEnd { channel, .. } if channel_tag(*channel, &self.shape).is_some())
    }

    pub fn report(&mut self, report: CallReport) -> Vec<gs::StreamingRecognizeResponse> {
        let event = |kind: SpeechEventType, at_ms: u64| gs::StreamingRecognizeResponse {
            speech_event_type: kind as i32,
            speech_event_time: Some(duration(at_ms)),
            ..Default::default()
        };
        match report {
            CallReport::Dialect(d)
                if self.shape.language_code.is_empty() || !d.identified_language.is_empty() =>
            {
                if !d.language.is_empty() {
                    self.shape.language_code = d.language;
                }
                Vec::new()
            }
            CallReport::SpeechStart { channel, at } if self.shape.voice_events => {
                if channel_tag(channel, &self.shape).is_none() {
                    return Vec::new();
                }
                vec![event(SpeechEventType::SpeechActivityBegin, at.as_ms())]
            }
            CallReport::SpeechEnd { channel, at } => {
                if channel_tag(channel, &self.shape).is_none() {
                    return Vec::new();
                }
                let mut out = Vec::new();
                if self.shape.voice_events {
                    out.push(event(SpeechEventType::SpeechActivityEnd, at.as_ms()));
                }
                if self.shape.single_utterance && !self.utterance_ended {
                    self.utterance_ended = true;
                    out.push(event(SpeechEventType::EndOfSingleUtterance, at.as_ms()));
                }
                out
            }
            CallReport::Interim(i) if self.shape.interim => self.interim(&i).into_iter().collect(),
            CallReport::Final(f) => self.final_result(&f).into_iter().collect(),
            _ => Vec::new(),
        }
    }

    fn interim(&self, i: &InterimOutput) -> Option<gs::StreamingRecognizeResponse> {
        let tag = channel_tag(i.channel, &self.shape)?;
        Some(gs::StreamingRecognizeResponse {
            results: vec![gs::StreamingRecognitionResult {
                alternatives: vec![gs::SpeechRecognitionAlternative {
                    transcript: i.shown.text.clone(),
                    ..Default::default()
                }],
                is_final: false,
                stability: i.shown.stability,
                result_end_time: Some(duration(i.end.as_ms())),
                channel_tag: tag,
                language_code: self.shape.language_code.clone(),
            }],
            ..Default::default()
        })
    }

    fn final_result(&self, f: &FinalReport) -> Option<gs::StreamingRecognizeResponse> {
        let s = &f.segment;
        let tag = channel_tag(s.channel, &self.shape)?;
        Some(gs::StreamingRecognizeResponse {
            results: vec![gs::StreamingRecognitionResult {
                alternatives: vec![alternative(s, &self.shape)],
                is_final: true,
                stability: 0.0,
                result_end_time: Some(duration(s.end_ms)),
                channel_tag: tag,
                language_code: self.shape.language_code.clone(),
            }],
            ..Default::default()
        })
    }
}

/// A recording's transcript as Google's results, in timeline order.
pub fn recognize_results(t: &Transcript, shape: &ResultShape) -> Vec<gs::SpeechRecognitionResult> {
    let identified = matches!(
        t.language_source,
        LanguageSource::Detected { .. } | LanguageSource::Unsure { .. }
    );
    let language = if shape.language_code.is_empty() || identified {
        t.language.clone()
    } else {
        shape.language_code.clone()
    };
    t.segments
        .iter()
        .filter_map(|s| {
            Some(gs::SpeechRecognitionResult {
                channel_tag: channel_tag(s.channel, shape)?,
                alternatives: vec![alternative(s, shape)],
                result_end_time: Some(duration(s.end_ms)),
                language_code: language.clone(),
            })
        })
        .collect()
}

/// Google's RecognizeResponse for a transcript.
pub fn recognize_response(t: &Transcript, shape: &ResultShape) -> gs::RecognizeResponse {
    gs::RecognizeResponse {
        results: recognize_results(t, shape),
        total_billed_time: Some(duration(t.duration_ms)),
        ..Default::default()
    }
}

/// A long-running recognition as its `Operation`: pending, or done with its response or
/// its error. Times are Unix milliseconds.
pub fn operation(
    name: &str,
    started_unix_ms: i64,
    result: Option<Result<(&Transcript, &ResultShape), &Status>>,
) -> longrunning::Operation {
    use longrunning::operation::Result as OpResult;
    let now = unix_ms_now();
    let metadata = gs::LongRunningRecognizeMetadata {
        progress_percent: if result.is_some() { 100 } else { 0 },
        start_time: Some(timestamp(started_unix_ms)),
        last_update_time: Some(timestamp(now)),
        uri: String::new(),
    };
    let result = result.map(|r| match r {
        Ok((t, shape)) => {
            let response = gs::LongRunningRecognizeResponse {
                results: recognize_results(t, shape),
                total_billed_time: Some(duration(t.duration_ms)),
                ..Default::default()
            };
            OpResult::Response(prost_types::Any {
                type_url: LONG_RUNNING_RESPONSE_TYPE.into(),
                value: response.encode_to_vec(),
            })
        }
        Err(s) => OpResult::Error(rpc::Status {
            code: s.code() as i32,
            message: s.message().to_owned(),
            details: Vec::new(),
        }),
    });
    longrunning::Operation {
        name: name.to_owned(),
        metadata: Some(prost_types::Any {
            type_url: LONG_RUNNING_METADATA_TYPE.into(),
            value: metadata.encode_to_vec(),
        }),
        done: result.is_some(),
        result,
    }
}

fn timestamp(unix_ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: unix_ms.div_euclid(1000),
        nanos: i32::try_from(unix_ms.rem_euclid(1000) * 1_000_000).unwrap_or(0),
    }
}

/// Now, in Unix milliseconds.
pub fn unix_ms_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::CallTime;
    use crate::audio::Role;
    use crate::stream::Interim;

    fn cfg(encoding: GEncoding) -> gs::RecognitionConfig {
        gs::RecognitionConfig {
            encoding: encoding as i32,
            sample_rate_hertz: 8000,
            audio_channel_count: 2,
            enable_separate_recognition_per_channel: true,
            language_code: "cmn-Hans-CN".into(),
            speech_contexts: vec![gs::SpeechContext {
                phrases: vec!["Zentrix".into()],
                boost: 15.0,
            }],
            model: "phone_call".into(),
            ..Default::default()
        }
    }

    fn neither(_: &str) -> Named {
        Named::Neither
    }

    #[test]
    fn a_stream_config_becomes_the_native_live_request() {
        let sc = gs::StreamingRecognitionConfig {
            config: Some(cfg(GEncoding::Mulaw)),
            interim_results: true,
            ..Default::default()
        };
        let meta = CallMetadata {
            call_id: Some("c9".into()),
            ..Default::default()
        };
        let (req, shape) = live_request(&sc, &meta, &neither, true).unwrap();
        assert_eq!(req.call_id.as_deref(), Some("c9"));
        assert_eq!(req.format.encoding, Encoding::Mulaw);
        assert_eq!(req.format.roles, vec![Role::Agent, Role::Customer]);
        assert_eq!(req.choices.language.as_deref(), Some("zh"));
        assert_eq!(
            req.choices.model, None,
            "Google's model names mean the default"
        );
        assert_eq!(req.choices.hotwords[0].term, "Zentrix");
        assert!(req.interim && shape.interim && shape.separate_channels);
        assert_eq!(shape.language_code, "cmn-hans-cn");
    }

    #[test]
    fn refused_configs_name_the_field() {
        let meta = CallMetadata::default();
        for (c, field) in [
            (cfg(GEncoding::Amr), "AMR"),
            (cfg(GEncoding::Flac), "FLAC"),
            (
                gs::RecognitionConfig {
                    sample_rate_hertz: 4000,
                    ..cfg(GEncoding::Linear16)
                },
                "sample_rate_hertz",
            ),
            (
                gs::RecognitionConfig {
                    diarization_config: Some(gs::SpeakerDiarizationConfig {
                        enable_speaker_diarization: true,
                        ..Default::default()
                    }),
                    ..cfg(GEncoding::Linear16)
                },
                "diarization_config",
            ),
            (
                gs::RecognitionConfig {
                    model: "whisper-huge".into(),
                    ..cfg(GEncoding::Linear16)
                },
                "whisper-huge",
            ),
        ] {
            let e = recognition(&c, None, &meta, &neither).unwrap_err();
            assert_eq!(e.code(), tonic::Code::InvalidArgument);
            assert!(e.message().contains(field), "{field}: {}", e.message());
        }
        let adapter = |m: &str| {
            if m == "cantonese" {
                Named::Adapter
            } else {
                Named::Neither
            }
        };
        let r = recognition(
            &gs::RecognitionConfig {
                model: "cantonese".into(),
                ..cfg(GEncoding::Linear16)
            },
            None,
            &meta,
            &adapter,
        )
        .unwrap();
        assert_eq!(r.choices.dialect.as_deref(), Some("cantonese"));
    }

    #[test]
    fn a_wav_file_is_read_whatever_the_encoding_says() {
        let r = recognition(
            &cfg(GEncoding::EncodingUnspecified),
            Some(b"RIFF\0\0\0\0WAVE"),
            &CallMetadata::default(),
            &neither,
        )
        .unwrap();
        assert_eq!(r.audio, AudioSpec::Container(None));
        let e = recognition(
            &cfg(GEncoding::EncodingUnspecified),
            Some(&[0u8; 16]),
            &CallMetadata::default(),
            &neither,
        )
        .unwrap_err();
        assert!(
            e.message().contains("ENCODING_UNSPECIFIED"),
            "{}",
            e.message()
        );
    }

    fn segment(channel: u32) -> Segment {
        Segment {
            channel,
            role: Role::Customer,
            start_ms: 1250,
            end_ms: 3500,
            text: "my parcel".into(),
            raw_text: "my parcel".into(),
            confidence: 0.75,
            words: vec![Word {
                text: " my".into(),
                start_ms: 1250,
                end_ms: 1500,
                probability: 0.5,
            }],
        }
    }

    #[test]
    fn finals_and_interims_are_tagged_by_channel_from_one() {
        let mut replies = StreamReplies::new(ResultShape {
            interim: true,
            separate_channels: true,
            word_offsets: true,
            language_code: "en-us".into(),
            ..Default::default()
        });
        let f = replies.report(CallReport::Final(FinalReport::new(
            "c",
            0,
            segment(1),
            String::new(),
        )));
        let r = &f[0].results[0];
        assert!(r.is_final);
        assert_eq!((r.channel_tag, r.language_code.as_str()), (2, "en-us"));
        assert_eq!(r.result_end_time, Some(duration(3500)));
        let w = &r.alternatives[0].words[0];
        assert_eq!(
            (w.word.as_str(), w.start_time),
            ("my", Some(duration(1250)))
        );
        let i = replies.report(CallReport::Interim(InterimOutput {
            channel: 0,
            role: Role::Agent,
            start: CallTime::from_ms(0),
            end: CallTime::from_ms(900),
            shown: Interim {
                text: "hello".into(),
                stable_text: "hel".into(),
                stability: 0.5,
            },
        }));
        let r = &i[0].results[0];
        assert!(!r.is_final);
        assert_eq!((r.channel_tag, r.stability), (1, 0.5));
    }

    #[test]
    fn without_separate_recognition_only_the_first_channel_answers() {
        let mut replies = StreamReplies::new(ResultShape::default());
        assert!(replies
            .report(CallReport::Final(FinalReport::new(
                "c",
                0,
                segment(1),
                String::new()
            )))
            .is_empty());
        let f = replies.report(CallReport::Final(FinalReport::new(
            "c",
            0,
            segment(0),
            String::new(),
        )));
        assert_eq!(f[0].results[0].channel_tag, 0);
        assert!(
            f[0].results[0].alternatives[0].words.is_empty(),
            "words only when asked"
        );
    }

    #[test]
    fn single_utterance_ends_once_with_the_first_speech_end() {
        let mut replies = StreamReplies::new(ResultShape {
            single_utterance: true,
            voice_events: true,
            ..Default::default()
        });
        let end = CallReport::SpeechEnd {
            channel: 0,
            at: CallTime::from_ms(2000),
        };
        assert!(replies.ends_input(&end));
        let kinds: Vec<i32> = replies
            .report(end.clone())
            .iter()
            .map(|r| r.speech_event_type)
            .collect();
        assert_eq!(
            kinds,
            vec![
                SpeechEventType::SpeechActivityEnd as i32,
                SpeechEventType::EndOfSingleUtterance as i32
            ]
        );
        assert_eq!(replies.report(end).len(), 1, "END_OF_SINGLE_UTTERANCE once");
    }

    #[test]
    fn an_operation_is_pending_then_done_with_its_response() {
        let pending = operation("op-1", 1_700_000_000_000, None);
        assert!(!pending.done && pending.result.is_none());
        let err = Status::invalid_argument("bad audio");
        let failed = operation("op-1", 1_700_000_000_000, Some(Err(&err)));
        match failed.result {
            Some(longrunning::operation::Result::Error(e)) => {
                assert_eq!((e.code, e.message.as_str()), (3, "bad audio"))
            }
            other => panic!("{other:?}"),
        }
    }
}
