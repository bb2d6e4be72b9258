//! The recording pipeline shared by the front doors that hold a whole call at once:
//! decode → channel plan → resample → segment → language → transcribe → one timeline.
//!
//! Live streams use the same stages one chunk at a time; this is the all-at-once driver.

use crate::audio::resample::{resample_all, ResampleError};
use crate::audio::wav::{read_wav, WavAudio, WavError};
use crate::audio::{CallTime, ChannelAudio, Role, PIPELINE_RATE_HZ};
use crate::config::ChannelMode;
use crate::dialect::{DialectError, Dialects, Selection};
use crate::engine::pack::{pack, Pack, PACK_GAP, PACK_LIMIT};
use crate::engine::{DecodeConfig, Decoded, EngineError, Worker, WINDOW_SAMPLES};
use crate::segment::{segment_all, Cut, Utterance, VadConfig};
use crate::transcript::{ChannelInfo, DialectUsed, LanguageSource, Segment, Transcript};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Wav(#[from] WavError),
    #[error("{path}: {source}")]
    Resample { path: String, source: ResampleError },
    #[error("{path}: {message}")]
    Channels { path: String, message: String },
    #[error("{path}: {source}")]
    Dialect { path: String, source: DialectError },
    #[error("{path}: {source}")]
    Engine {
        path: String,
        source: Box<EngineError>,
    },
}

/// What the pipeline needs besides the audio.
#[derive(Debug, Clone)]
pub struct RecordingOptions {
    pub channels: ChannelMode,
    pub vad: VadConfig,
    /// false: fixed 30 s windows instead of voice activity.
    pub use_vad: bool,
    /// Decode a channel's consecutive utterances together, up to 28 s per whisper window
    /// (`engine::pack`), instead of one window per utterance.
    pub pack: bool,
    pub decode: DecodeConfig,
    /// Dialect adapters and the call's hints; `None` decodes with `decode` as it is.
    pub dialect: Option<DialectRequest>,
}

impl Default for RecordingOptions {
    fn default() -> Self {
        Self {
            channels: ChannelMode::default(),
            vad: VadConfig::default(),
            use_vad: false,
            pack: true,
            decode: DecodeConfig::default(),
            dialect: None,
        }
    }
}

/// How to choose a recording's dialect adapter.
#[derive(Debug, Clone)]
pub struct DialectRequest {
    pub dialects: Arc<Dialects>,
    /// An adapter id named by the user.
    pub explicit: Option<String>,
    /// The caller's region or telephone number, for the routing table.
    pub region: Option<String>,
}

/// Maps the file's channels to labelled pipeline channels (still at the file's rate).
pub fn plan_channels(audio: WavAudio, mode: &ChannelMode) -> Result<Vec<ChannelAudio>, String> {
    let n = audio.channels.len();
    match mode {
        ChannelMode::Mix => {
            let mut mixed = vec![0f32; audio.frames()];
            for ch in &audio.channels {
                for (m, s) in mixed.iter_mut().zip(ch) {
                    *m += s / n as f32;
                }
            }
            Ok(vec![ChannelAudio {
                channel: 0,
                role: Role::Mixed,
                samples: mixed,
            }])
        }
        ChannelMode::Separate(roles) => {
            if n == 1 {
                // One role named for a mono file labels it; otherwise both parties share it.
                let role = if roles.len() == 1 {
                    roles[0]
                } else {
                    Role::Mixed
                };
                let samples = audio.channels.into_iter().next().unwrap_or_default();
                return Ok(vec![ChannelAudio {
                    channel: 0,
                    role,
                    samples,
                }]);
            }
            if roles.len() != n {
                return Err(format!(
                    "{n} channels but {} role(s) given ({}); name one role per channel or use --channels mix",
                    roles.len(),
                    mode
                ));
            }
            Ok(audio
                .channels
                .into_iter()
                .zip(roles)
                .enumerate()
                .map(|(i, (samples, &role))| ChannelAudio {
                    channel: i as u32,
                    role,
                    samples,
                })
                .collect())
        }
    }
}

/// Fixed windows for `use_vad = false`: the whole channel in ≤ 30 s pieces.
fn fixed_windows(channel: u32, samples: &[f32]) -> Vec<Utterance> {
    samples
        .chunks(WINDOW_SAMPLES)
        .enumerate()
        .map(|(i, chunk)| Utterance {
            channel,
            start: CallTime((i * WINDOW_SAMPLES) as u64),
            samples: chunk.to_vec(),
            cut: Cut::EndOfInput,
        })
        .collect()
}

/// Transcribes one WAV file. `progress` receives the seconds of the call transcribed so far.
/// Several workers decode the recording's windows side by side; the first also identifies the
/// language.
pub fn transcribe_file(
    path: &Path,
    workers: &mut [Worker],
    opts: &RecordingOptions,
    progress: &mut dyn FnMut(f64),
) -> Result<Transcript, PipelineError> {
    let audio = read_wav(path)?;
    let name = path.display().to_string();
    transcribe_audio(&name, audio, workers, opts, progress)
}

/// Transcribes decoded audio; `source` names it in errors and in the transcript.
pub fn transcribe_audio(
    source: &str,
    audio: WavAudio,
    workers: &mut [Worker],
    opts: &RecordingOptions,
    progress: &mut dyn FnMut(f64),
) -> Result<Transcript, PipelineError> {
    let Some(worker) = workers.first_mut() else {
        return Err(PipelineError::Engine {
            path: source.to_owned(),
            source: Box::new(EngineError::Inference("no inference worker".into())),
        });
    };
    let in_rate = audio.sample_rate_hz;
    let duration_ms = (audio.frames() as u64 * 1000) / u64::from(in_rate);
    let engine_err = |source_err: EngineError| PipelineError::Engine {
        path: source.to_owned(),
        source: Box::new(source_err),
    };
    // Resolve the language before any heavy work, so a bad setting fails fast.
    let configured = worker
        .engine()
        .resolve_language(&opts.decode.language)
        .map_err(engine_err)?;

    let channels =
        plan_channels(audio, &opts.channels).map_err(|message| PipelineError::Channels {
            path: source.to_owned(),
            message,
        })?;
    let mut infos = Vec::new();
    let mut channel_audio = Vec::new();
    let mut utterances: Vec<(Role, Utterance)> = Vec::new();
    for ch in channels {
        let samples = resample_all(&ch.samples, in_rate).map_err(|e| PipelineError::Resample {
            path: source.to_owned(),
            source: e,
        })?;
        debug_assert_eq!(PIPELINE_RATE_HZ, 16_000);
        let found = if opts.use_vad {
            segment_all(&opts.vad, ch.channel, &samples)
        } else {
            fixed_windows(ch.channel, &samples)
        };
        tracing::debug!(
            source,
            channel = ch.channel,
            utterances = found.len(),
            "segmented"
        );
        infos.push(ChannelInfo {
            channel: ch.channel,
            role: ch.role,
        });
        utterances.extend(found.into_iter().map(|u| (ch.role, u)));
        channel_audio.push(samples);
    }
    utterances.sort_by_key(|(_, u)| (u.start, u.channel));

    // The adapter, in the documented order: explicit, region, configured language, then
    // identification from the first speech, then the default.
    let mut selection: Option<Selection> = match &opts.dialect {
        Some(req) => req
            .dialects
            .select(
                req.explicit.as_deref(),
                req.region.as_deref(),
                configured.as_deref(),
            )
            .map_err(|e| PipelineError::Dialect {
                path: source.to_owned(),
                source: e,
            })?,
        None => None,
    };
    let mut decode = opts.decode.clone();
    let (language, language_source) = match (configured, &selection) {
        (Some(lang), _) => (lang, LanguageSource::Configured),
        (None, Some(sel)) => {
            let lang = sel.adapter.profile.model.language.clone();
            (lang, LanguageSource::Adapter)
        }
        (None, None) if utterances.is_empty() => ("und".to_owned(), LanguageSource::NoSpeech),
        (None, None) => {
            // The first 30 s of speech, whoever speaks it.
            let mut speech = Vec::with_capacity(WINDOW_SAMPLES);
            for (_, u) in &utterances {
                let room = WINDOW_SAMPLES - speech.len();
                speech.extend_from_slice(&u.samples[..u.samples.len().min(room)]);
                if speech.len() == WINDOW_SAMPLES {
                    break;
                }
            }
            let guess = worker.detect_language(&speech).map_err(engine_err)?;
            tracing::info!(source, language = %guess.code, probability = guess.probability, "language detected");
            if let Some(req) = &opts.dialect {
                let sel = req.dialects.for_detected(&guess.code, guess.probability);
                if !matches!(sel.reason, crate::dialect::Reason::Detected { .. }) {
                    // No adapter claims this language: decode in it rather than force another.
                    decode.language = guess.code.clone();
                }
                selection = Some(sel);
            }
            (
                guess.code,
                LanguageSource::Detected {
                    probability: guess.probability,
                },
            )
        }
    };
    if let Some(sel) = &selection {
        decode = sel.adapter.decode(&decode);
        // The adapter's language must suit the model (an English-only model cannot do zh).
        worker
            .engine()
            .resolve_language(&decode.language)
            .map_err(engine_err)?;
        tracing::info!(source, dialect = %sel.adapter.id(), reason = %sel.reason, "dialect adapter chosen");
        if sel.adapter.model() != worker.engine().name() {
            tracing::info!(source, adapter_model = %sel.adapter.model(), model = %worker.engine().name(), "adapter runs on this run's model instead of its own");
        }
    }
    let language = if selection.is_some() {
        decode.language.clone()
    } else {
        language
    };

    // Fixed windows are already full; voice-activity utterances share windows when packing.
    let (limit, gap) = if opts.pack && opts.use_vad {
        (PACK_LIMIT, PACK_GAP)
    } else {
        (0, 0)
    };
    let mut packs = Vec::new();
    for (info, audio) in infos.iter().zip(&channel_audio) {
        let mine: Vec<(usize, &Utterance)> = utterances
            .iter()
            .enumerate()
            .filter(|(_, (_, u))| u.channel == info.channel)
            .map(|(i, (_, u))| (i, u))
            .collect();
        let entries = mine.iter().enumerate().map(|(k, &(i, u))| {
            // The audio between this utterance and the next one (or the channel's end).
            let from = (u.end().0 as usize).min(audio.len());
            let to = mine
                .get(k + 1)
                .map_or(audio.len(), |(_, next)| next.start.0 as usize)
                .clamp(from, audio.len());
            (i, u.samples.as_slice(), &audio[from..to.min(from + gap)])
        });
        packs.extend(pack(entries, limit, gap));
    }
    drop(channel_audio);
    packs.sort_by_key(|p| {
        let first = &utterances[p.pieces[0].index].1;
        (first.start, first.channel)
    });
    tracing::debug!(
        source,
        utterances = utterances.len(),
        windows = packs.len(),
        "packed"
    );

    let model = worker.engine().name().to_owned();
    let ends: Vec<f64> = packs
        .iter()
        .map(|p| {
            utterances[p.pieces[p.pieces.len() - 1].index]
                .1
                .end()
                .as_secs_f64()
        })
        .collect();
    let decoded = decode_windows(workers, &packs, &language, &decode, &mut |done| {
        progress(ends[done - 1]);
    })
    .map_err(engine_err)?;
    let mut segments = Vec::new();
    for (p, decoded) in packs.iter().zip(decoded) {
        segments.extend(p.split(decoded).into_iter().map(|(piece, d)| {
            let (role, u) = &utterances[p.pieces[piece].index];
            let mut seg = Segment::from_decoded(u.channel, *role, u.start, d);
            if let Some(sel) = &selection {
                seg.normalise(&sel.adapter);
            }
            seg
        }));
    }
    let mut transcript = Transcript {
        source: source.to_owned(),
        duration_ms,
        model,
        language,
        language_source,
        dialect: selection.as_ref().map(DialectUsed::of),
        channels: infos,
        segments,
        suggestions: Vec::new(),
    };
    transcript.sort();
    Ok(transcript)
}

/// A window of several utterances runs the encoder over its audio plus a short margin; a lone
/// utterance is decoded as configured (whole window, or the live margin when fitted).
fn decode_window(
    worker: &mut Worker,
    window: &Pack,
    language: &str,
    decode: &DecodeConfig,
) -> Result<Vec<Decoded>, EngineError> {
    if window.pieces.len() > 1 {
        worker.transcribe_packed(&window.samples, language, decode)
    } else {
        worker.transcribe(&window.samples, language, decode)
    }
}

/// Decodes every window, in order. The windows are shared out as the workers come free: a
/// recording's windows are independent (no text carries between them), and two
/// single-threaded whisper states got through a long call in 0.7× the wall time of one
/// two-threaded state, whose threads spin at every barrier (BENCHMARKS.md). One worker is the
/// same loop on one thread. `done` hears how many leading windows are finished, each time that
/// number grows. The first error stops the workers taking new windows.
fn decode_windows(
    workers: &mut [Worker],
    windows: &[Pack],
    language: &str,
    decode: &DecodeConfig,
    done: &mut dyn FnMut(usize),
) -> Result<Vec<Vec<Decoded>>, EngineError> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let mut results: Vec<Option<Result<Vec<Decoded>, EngineError>>> =
        (0..windows.len()).map(|_| None).collect();
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel();
        for worker in workers.iter_mut() {
            let (tx, next, failed) = (tx.clone(), &next, &failed);
            scope.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= windows.len() || failed.load(Ordering::Relaxed) {
                    break;
                }
                let r = decode_window(worker, &windows[i], language, decode);
                failed.fetch_or(r.is_err(), Ordering::Relaxed);
                if tx.send((i, r)).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        let mut leading = 0;
        for (i, r) in rx {
            results[i] = Some(r);
            let before = leading;
            while results.get(leading).is_some_and(Option::is_some) {
                leading += 1;
            }
            if leading > before {
                done(leading);
            }
        }
    });
    // In window order, so the error reported is the earliest; windows never started after a
    // failure are `None` and only possible behind an error (the caller has at least one
    // worker).
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(EngineError::Inference("not decoded".into()))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stereo() -> WavAudio {
        WavAudio {
            sample_rate_hz: 8000,
            channels: vec![vec![0.5; 4], vec![-0.5; 4]],
        }
    }

    #[test]
    fn stereo_channels_get_their_roles_in_order() {
        let chans = plan_channels(stereo(), &"customer,agent".parse().unwrap()).unwrap();
        assert_eq!(chans.len(), 2);
        assert_eq!((chans[0].channel, chans[0].role), (0, Role::Customer));
        assert_eq!((chans[1].channel, chans[1].role), (1, Role::Agent));
        assert_eq!(chans[1].samples, vec![-0.5; 4]);
    }

    #[test]
    fn mix_averages_channels() {
        let chans = plan_channels(stereo(), &ChannelMode::Mix).unwrap();
        assert_eq!(chans.len(), 1);
        assert_eq!(chans[0].role, Role::Mixed);
        assert!(chans[0].samples.iter().all(|s| s.abs() < 1e-6));
    }

    #[test]
    fn mono_is_mixed_unless_one_role_is_named() {
        let mono = || WavAudio {
            sample_rate_hz: 8000,
            channels: vec![vec![0.1; 4]],
        };
        assert_eq!(
            plan_channels(mono(), &ChannelMode::default()).unwrap()[0].role,
            Role::Mixed
        );
        assert_eq!(
            plan_channels(mono(), &"customer".parse().unwrap()).unwrap()[0].role,
            Role::Customer
        );
    }

    #[test]
    fn stereo_with_one_role_is_an_error() {
        let e = plan_channels(stereo(), &"agent".parse().unwrap()).unwrap_err();
        assert!(e.contains("2 channels but 1 role"), "{e}");
    }
}
