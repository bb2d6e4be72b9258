//! The fuzz targets' bodies, one function per target (`fuzz_targets/NAME.rs` calls `NAME`).
//!
//! Each takes any bytes, runs them through the parser or edge conversion that real input
//! reaches, and panics only where the code under test broke a promise: a panic inside it, or
//! an invariant asserted here (a decoded recording's channels are equally long, a live call
//! refuses exactly the torn messages, a request converted and converted back is the same
//! request). It returns `Ok` when the input was accepted, so the stable test that replays the
//! committed corpora (`tests/it/fuzz_corpus.rs`, which includes this file) can also check that
//! the valid seeds still are. Nothing here needs a model: the live call runs on a synthetic
//! Silero network.

use callscribe::audio::codec::{self, Encoding};
use callscribe::audio::decode::decode_bytes;
use callscribe::audio::wav::read_wav_bytes;
use callscribe::audio::{Role, WavAudio};
use callscribe::dialect::{Dialects, DialectsConfig, Normaliser, Profile};
use callscribe::engine::{DecodeConfig, ModelInfo};
use callscribe::model::ct2::Ct2Model;
use callscribe::model::ggml;
use callscribe::plan::CallPlan;
use callscribe::proto::convert;
use callscribe::proto::v1 as pb;
use callscribe::segment::silero::synthetic_weights;
use callscribe::segment::{SileroModel, Vad, VadConfig};
use callscribe::stream::{CallEvent, CallFormat, LiveCall, StreamError};
use prost::Message;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// `Ok`: the input was accepted; `Err`: refused, with the error's message.
pub type Outcome = Result<(), String>;

fn refused(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn check_audio(audio: &WavAudio) {
    assert!(!audio.channels.is_empty(), "decoded audio without channels");
    let frames = audio.channels[0].len();
    assert!(
        audio.channels.iter().all(|c| c.len() == frames),
        "channels of different lengths"
    );
}

/// A recording's bytes, as `transcribe` and gRPC `Transcribe` get them: our WAV reader, then
/// the sniffing decoder under a `.wav` name and under a name without an extension.
pub fn wav(data: &[u8]) -> Outcome {
    if let Ok(a) = read_wav_bytes(Path::new("fuzz.wav"), data) {
        check_audio(&a);
    }
    if let Ok(a) = decode_bytes("fuzz.wav", data.to_vec()) {
        check_audio(&a);
    }
    let audio = decode_bytes("recording", data.to_vec()).map_err(refused)?;
    check_audio(&audio);
    Ok(())
}

/// The segmenter on [`synthetic_weights`]: its code runs as with the real network.
fn synthetic_vad() -> &'static Vad {
    static VAD: OnceLock<Vad> = OnceLock::new();
    VAD.get_or_init(|| {
        let weights = synthetic_weights();
        // A low threshold so that the synthetic network's scores open utterances.
        let config = VadConfig {
            threshold: 0.3,
            end_threshold: 0.2,
            min_level_dbfs: -90.0,
            max_utterance_ms: 1000,
            min_speech_ms: 32,
            endpoint_silence_ms: 64,
            ..VadConfig::default()
        };
        Vad::new(config, Arc::new(SileroModel::new(weights)))
    })
}

const RATES_HZ: [u32; 7] = [8_000, 16_000, 44_100, 48_000, 11_025, 22_050, 32_000];

/// A live call's audio messages: `data[0]` picks the encoding, `data[1]` the rate (255: an
/// out-of-range one), `data[2]` the channel count (0 to 2); the rest is messages, each a
/// length byte and that many bytes, so messages tear frames wherever the fuzzer likes.
pub fn live_frames(data: &[u8]) -> Outcome {
    let [e, r, c, rest @ ..] = data else {
        return Err("too short".into());
    };
    let encoding = [Encoding::Linear16, Encoding::Mulaw, Encoding::Alaw][usize::from(*e % 3)];
    // The codec on its own: one sample per whole sample's bytes, all in [-1, 1].
    let mut samples = Vec::new();
    codec::decode(encoding, rest, &mut samples);
    assert_eq!(samples.len(), rest.len() / encoding.bytes_per_sample());
    assert!(samples.iter().all(|s| (-1.0..=1.0).contains(s)));

    let sample_rate_hz = if *r == 255 {
        u32::from(u16::from_le_bytes([*e, *c])) * 2
    } else {
        RATES_HZ[usize::from(*r) % RATES_HZ.len()]
    };
    let roles = [Role::Agent, Role::Customer][..usize::from(*c % 3)].to_vec();
    let format = CallFormat {
        encoding,
        sample_rate_hz,
        roles,
    };
    let mut call = LiveCall::new(format.clone(), synthetic_vad(), 200).map_err(refused)?;
    let frame_bytes = format.frame_bytes();
    let mut events = Vec::new();
    let mut frames = 0u64;
    let mut torn = 0usize;
    let mut message = rest;
    while let [len, tail @ ..] = message {
        let n = usize::from(*len).min(tail.len());
        let (chunk, next) = tail.split_at(n);
        message = next;
        match call.push(chunk, &mut events) {
            Ok(()) => {
                assert!(
                    chunk.len().is_multiple_of(frame_bytes),
                    "a torn message accepted"
                );
                frames += (chunk.len() / frame_bytes) as u64;
            }
            Err(StreamError::PartialFrame { len, .. }) => {
                assert!(!chunk.len().is_multiple_of(frame_bytes));
                assert_eq!(len, chunk.len());
                torn += 1;
            }
            Err(other) => panic!("a live call refused {} bytes: {other}", chunk.len()),
        }
        for channel in 0..call.channel_count() {
            if let Some(s) = call.interim_snapshot(channel) {
                assert_eq!(s.channel as usize, channel);
            }
        }
    }
    assert_eq!(call.audio_ms(), frames * 1000 / u64::from(sample_rate_hz));
    call.finish(&mut events).map_err(refused)?;
    for event in &events {
        if let CallEvent::Utterance { utterance, .. } = event {
            assert!((utterance.channel as usize) < call.channel_count());
        }
    }
    if torn > 0 {
        return Err(format!("{torn} torn message(s) refused"));
    }
    Ok(())
}

/// The models a fuzzed request is resolved against: a multilingual default and an
/// English-only one.
fn models() -> [ModelInfo; 2] {
    [
        ModelInfo {
            name: "base".into(),
            multilingual: true,
            languages: 99,
        },
        ModelInfo {
            name: "tiny.en".into(),
            multilingual: false,
            languages: 0,
        },
    ]
}

fn dialects() -> Arc<Dialects> {
    static DIALECTS: OnceLock<Arc<Dialects>> = OnceLock::new();
    DIALECTS
        .get_or_init(|| {
            Arc::new(
                Dialects::load(&DialectsConfig::default(), &|_: &str| true)
                    .expect("the built-in adapters load"),
            )
        })
        .clone()
}

/// A config as the server reads it: the edge conversion, its inverse (what a client sends)
/// giving back the same request, and the call plan.
fn config(cfg: &pb::StreamingConfig, fit_window: bool) -> Outcome {
    let request = convert::live_request(cfg, fit_window).map_err(|s| s.message().to_owned())?;
    request
        .format
        .validate()
        .expect("the edge accepts only formats a live call takes");
    let again = convert::live_request(&convert::streaming_config(&request), fit_window)
        .expect("a client's config of an accepted request is accepted");
    assert_eq!(again, request, "request → config → request changed it");
    let models = models();
    let plan = CallPlan::resolve(
        &request.choices,
        &DecodeConfig::default(),
        Some(dialects()),
        &models[..],
    )
    .map_err(refused)?;
    assert!(models.contains(&plan.model), "a model not offered");
    Ok(())
}

/// Any bytes as the two request messages that carry a `StreamingConfig`: a live call's first
/// message, and `Transcribe`'s (whose raw audio is then split into channels as the server
/// does).
pub fn proto_config(data: &[u8]) -> Outcome {
    let mut outcome = Err("not a request".to_owned());
    if let Ok(pb::StreamingTranscribeRequest {
        request: Some(pb::streaming_transcribe_request::Request::Config(cfg)),
    }) = pb::StreamingTranscribeRequest::decode(data)
    {
        outcome = config(&cfg, true);
    }
    if let Ok(req) = pb::TranscribeRequest::decode(data) {
        let cfg = req.config.unwrap_or_default();
        let transcribe = config(&cfg, false);
        if let Ok(format) = convert::call_format(&cfg) {
            if req.audio.len().is_multiple_of(format.frame_bytes()) {
                let mut interleaved = Vec::new();
                codec::decode(format.encoding, &req.audio, &mut interleaved);
                let n = format.roles.len();
                assert_eq!(interleaved.len() % n, 0);
            }
        }
        if outcome.is_err() {
            outcome = transcribe;
        }
    }
    outcome
}

/// Any bytes as the first message of a Google and of a Riva StreamingRecognize (their configs
/// share most field numbers, so one seed exercises both): the edge conversion, then the call
/// plan, as `serve` does.
pub fn speech_config(data: &[u8]) -> Outcome {
    use callscribe::proto::gen_google::cloud::speech::v1 as gs;
    use callscribe::proto::gen_riva::asr as ra;
    use callscribe::proto::speech::{CallMetadata, Named};
    use callscribe::proto::{google, riva};
    let d = dialects();
    let classify = |name: &str| {
        if models().iter().any(|m| m.name == name) {
            Named::Model
        } else if d.list().any(|a| a.id() == name) {
            Named::Adapter
        } else {
            Named::Neither
        }
    };
    let meta = CallMetadata::default();
    let plan = |request: &callscribe::stream::LiveRequest| -> Outcome {
        request
            .format
            .validate()
            .expect("the edge accepts only formats a live call takes");
        let models = models();
        CallPlan::resolve(
            &request.choices,
            &DecodeConfig::default(),
            Some(dialects()),
            &models[..],
        )
        .map_err(refused)?;
        Ok(())
    };
    let from_google = gs::StreamingRecognizeRequest::decode(data)
        .map_err(refused)
        .and_then(|r| google::first_config(Some(r)).map_err(|s| s.message().to_owned()))
        .and_then(|cfg| {
            google::live_request(&cfg, &meta, &classify, true).map_err(|s| s.message().to_owned())
        })
        .and_then(|(request, _)| plan(&request));
    let from_riva = ra::StreamingRecognizeRequest::decode(data)
        .map_err(refused)
        .and_then(|r| riva::first_config(Some(r)).map_err(|s| s.message().to_owned()))
        .and_then(|(cfg, id)| {
            riva::live_request(&cfg, id.as_ref(), &meta, &classify, true)
                .map_err(|s| s.message().to_owned())
        })
        .and_then(|(request, _)| plan(&request));
    from_google.or(from_riva)
}

fn temp_file(data: &[u8]) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().expect("a temporary file");
    file.write_all(data).expect("the temporary file written");
    file
}

/// A whisper.cpp model file, as `models inspect` and the loader's pre-check read it.
pub fn ggml(data: &[u8]) -> Outcome {
    let file = temp_file(data);
    let (info, header) = ggml::inspect_with_header(file.path()).map_err(refused)?;
    assert_eq!(
        info.precision(),
        header.hparams.precision().expect("checked")
    );
    Ok(())
}

/// A CTranslate2 `model.bin` (`Ok` when it parses), and what the converter reads off it first.
pub fn ct2(data: &[u8]) -> Outcome {
    let model = Ct2Model::parse(Path::new("model.bin"), data.to_vec()).map_err(refused)?;
    for v in &model.variables {
        let bytes = model.bytes(v);
        assert_eq!(bytes.len(), v.n_elements() * v.dtype.size());
        if v.dtype.is_float() && bytes.len() <= 1 << 16 {
            assert_eq!(v.dtype.to_f32(bytes).len(), v.n_elements());
        }
        let _ = model.scalar_int(&v.name);
    }
    for (alias, _) in &model.aliases {
        let _ = model.get(alias);
    }
    let _ = model.has_scope("encoder/layer_0");
    // The converter's first reading; a well-formed file of another shape is still accepted.
    let _ = callscribe::model::convert::hparams_of(&model, callscribe::model::Precision::F16);
    Ok(())
}

fn known_language(code: &str) -> bool {
    matches!(code, "en" | "zh" | "yue" | "ja" | "ko" | "fr" | "de" | "es")
}

/// A dialect adapter profile: parsed, validated, its normaliser built and applied, and when
/// valid, loaded with the built-in adapters from a folder as `serve` loads `dialects.dir`.
pub fn dialect_profile(data: &[u8]) -> Outcome {
    let text = std::str::from_utf8(data).map_err(refused)?;
    let profile: Profile = toml::from_str(text).map_err(refused)?;
    let problems = profile.validate(&|_: &str| true, &known_language);
    let normaliser = Normaliser::new(&profile.normalise).map_err(refused)?;
    for sample in ["你好，請問有咩可以幫到你？", "hello, THREE one two", ""] {
        let _ = normaliser.apply(sample);
    }
    if let Some(p) = problems.first() {
        return Err(format!("{}: {}", p.field, p.message));
    }
    // What whisper-rs makes C strings of (and panics on a NUL in) must be clean once valid.
    assert!(!profile.model.language.contains('\0') && !profile.prompt.contains('\0'));
    assert!(profile.hotwords.iter().all(|h| !h.term.contains('\0')));
    let dir = tempfile::tempdir().expect("a temporary folder");
    std::fs::write(dir.path().join("fuzz.toml"), text).expect("the profile written");
    let cfg = DialectsConfig {
        dir: Some(dir.path().to_owned()),
        ..DialectsConfig::default()
    };
    let loaded = Dialects::load(&cfg, &|_: &str| true).map_err(refused)?;
    let adapter = loaded.get(&profile.id).map_err(refused)?;
    let _ = adapter.normalise("你好 hello 123");
    Ok(())
}

/// A knowledge article: `data[0]` picks Markdown (even) or JSONL (odd); the rest is the file.
pub fn kb_article(data: &[u8]) -> Outcome {
    let [kind, text @ ..] = data else {
        return Err("empty".into());
    };
    let text = std::str::from_utf8(text).map_err(refused)?;
    let source = if kind % 2 == 0 {
        "fuzz.md"
    } else {
        "fuzz.jsonl"
    };
    let mut articles = Vec::new();
    callscribe::kb::article::parse_file(Path::new(source), source, text, &mut articles)
        .map_err(refused)?;
    Ok(())
}

/// A spool record and a dead-letter entry as the spool reads them back; a record that decodes
/// encodes to one that decodes to the same.
pub fn spool_record(data: &[u8]) -> Outcome {
    use callscribe::forward::spool::{decode_dead_entry, decode_record};
    let text = std::str::from_utf8(data).map_err(refused)?;
    let _ = decode_dead_entry(text);
    let record = decode_record(text).map_err(refused)?;
    let json = serde_json::to_string(&record).expect("a record always serialises");
    assert_eq!(decode_record(&json).expect("re-encoded record"), record);
    Ok(())
}

/// A target's body.
pub type Target = fn(&[u8]) -> Outcome;

/// Every target by the name of its `fuzz_targets/` file and corpus folder.
pub const TARGETS: &[(&str, Target)] = &[
    ("wav", wav),
    ("live_frames", live_frames),
    ("proto_config", proto_config),
    ("speech_config", speech_config),
    ("ggml", ggml),
    ("ct2", ct2),
    ("dialect_profile", dialect_profile),
    ("kb_article", kb_article),
    ("spool_record", spool_record),
];
