//! The recording pipeline shared by the front doors that hold a whole call at once:
//! decode → channel plan → resample → same-audio merge → segment → echo drop → language per
//! channel → pack → transcribe → one timeline.
//!
//! Live streams use the same stages one chunk at a time; this is the all-at-once driver.

use crate::audio::decode::{read_audio, DecodeError};
use crate::audio::resample::{resample_all, ResampleError};
use crate::audio::wav::{WavAudio, WavError};
use crate::audio::{CallTime, ChannelAudio, Role, PIPELINE_RATE_HZ};
use crate::config::ChannelMode;
use crate::dialect::{DialectError, Dialects, Reason, Selection};
use crate::engine::pack::{pack, Pack, PACK_GAP, PACK_LIMIT};
use crate::engine::{DecodeConfig, Decoded, EngineError, LanguageGuess, Worker, WINDOW_SAMPLES};
use crate::segment::{
    crosstalk, identification_audio, segment_all, Cut, Utterance, Vad, FRAME_SAMPLES,
};
use crate::transcript::{
    ChannelInfo, ChannelLanguage, DialectUsed, LanguageSource, Segment, Transcript,
};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Wav(#[from] WavError),
    #[error(transparent)]
    Decode(#[from] DecodeError),
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
    /// The voice-activity detector; `None`: fixed 30 s windows instead of utterances.
    pub vad: Option<Vad>,
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
            vad: None,
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

/// Fixed windows without a voice-activity detector: the whole channel in ≤ 30 s pieces.
fn fixed_windows(channel: u32, samples: &[f32]) -> Vec<Utterance> {
    samples
        .chunks(WINDOW_SAMPLES)
        .enumerate()
        .map(|(i, chunk)| Utterance {
            channel,
            start: CallTime((i * WINDOW_SAMPLES) as u64),
            samples: chunk.to_vec(),
            scores: Vec::new(),
            cut: Cut::EndOfInput,
        })
        .collect()
}

/// Transcribes one recording (any format [`read_audio`] reads). `progress` receives the seconds of the call transcribed so far.
/// Several workers decode the recording's windows side by side; the first also identifies the
/// language.
pub fn transcribe_file(
    path: &Path,
    workers: &mut [Worker],
    opts: &RecordingOptions,
    progress: &mut dyn FnMut(f64),
) -> Result<Transcript, PipelineError> {
    let audio = read_audio(path)?;
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
    let mut notes = Vec::new();
    let mut channels = resample_channels(source, channels, in_rate)?;
    if let Some(note) = merge_same_audio(&mut channels) {
        tracing::info!(source, "{note}");
        notes.push(note);
    }
    let mut infos: Vec<ChannelInfo> = channels
        .iter()
        .map(|c| ChannelInfo {
            channel: c.channel,
            role: c.role,
            language: None,
        })
        .collect();
    let mut utterances: Vec<(Role, Utterance)> = Vec::new();
    for ch in &channels {
        let found = match &opts.vad {
            Some(vad) => segment_all(vad, ch.channel, &ch.samples),
            None => fixed_windows(ch.channel, &ch.samples),
        };
        tracing::debug!(
            source,
            channel = ch.channel,
            utterances = found.len(),
            "segmented"
        );
        utterances.extend(found.into_iter().map(|u| (ch.role, u)));
    }
    if opts.vad.is_some() {
        let (dropped, trimmed) = remove_echo(&mut utterances, &channels);
        if dropped + trimmed > 0 {
            let note = format!(
                "echo of the other channel (an attenuated, time-aligned copy of its speech): {dropped} utterance(s) dropped, {trimmed} cut short"
            );
            tracing::info!(source, "{note}");
            notes.push(note);
        }
    }
    utterances.sort_by_key(|(_, u)| (u.start, u.channel));
    if opts.vad.is_some() {
        for ch in &mut channels {
            let spans: Vec<std::ops::Range<usize>> = utterances
                .iter()
                .filter(|(_, u)| u.channel == ch.channel)
                .map(|(_, u)| u.start.0 as usize..u.end().0 as usize)
                .collect();
            quiet_pauses(&mut ch.samples, &spans);
        }
    }

    // The adapter, in the documented order: explicit, region, configured language, then
    // identification from each channel's confident speech, then the default.
    let before_audio: Option<Selection> = match &opts.dialect {
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
    let plans: Vec<ChannelPlan> = match (configured, before_audio) {
        (Some(lang), selection) => {
            let plan = ChannelPlan::fixed(lang, LanguageSource::Configured, selection, opts);
            vec![plan; channels.len()]
        }
        (None, Some(sel)) => {
            let lang = sel.adapter.profile.model.language.clone();
            vec![ChannelPlan::fixed(lang, LanguageSource::Adapter, Some(sel), opts); channels.len()]
        }
        (None, None) => {
            let guesses = identify_channels(worker, &channels, &utterances).map_err(engine_err)?;
            guesses
                .into_iter()
                .map(|g| ChannelPlan::identified(g, opts))
                .collect()
        }
    };
    for (info, plan) in infos.iter_mut().zip(&plans) {
        if plan.source != LanguageSource::NoSpeech {
            // The adapter's language must suit the model (an English-only model cannot do zh).
            worker
                .engine()
                .resolve_language(&plan.language)
                .map_err(engine_err)?;
        }
        info.language = plan.identified.clone();
        if let Some(sel) = &plan.selection {
            tracing::info!(source, channel = info.channel, language = %plan.language, dialect = %sel.adapter.id(), reason = %sel.reason, "dialect adapter chosen");
            if sel.adapter.model() != worker.engine().name() {
                tracing::info!(source, adapter_model = %sel.adapter.model(), model = %worker.engine().name(), "adapter runs on this run's model instead of its own");
            }
        }
    }

    // Fixed windows are already full; voice-activity utterances share windows when packing.
    let (limit, gap) = if opts.pack && opts.vad.is_some() {
        (PACK_LIMIT, PACK_GAP)
    } else {
        (0, 0)
    };
    let mut packs = Vec::new();
    for ch in &channels {
        let audio = &ch.samples;
        let mine: Vec<(usize, &Utterance)> = utterances
            .iter()
            .enumerate()
            .filter(|(_, (_, u))| u.channel == ch.channel)
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
    drop(channels);
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
    let plan_of = |p: &Pack| {
        let channel = utterances[p.pieces[0].index].1.channel;
        let i = infos.iter().position(|c| c.channel == channel).unwrap_or(0);
        &plans[i]
    };
    let window_plans: Vec<&ChannelPlan> = packs.iter().map(plan_of).collect();
    let decoded = decode_windows(workers, &packs, &window_plans, &mut |done| {
        progress(ends[done - 1]);
    })
    .map_err(engine_err)?;
    let mut segments = Vec::new();
    for ((p, decoded), plan) in packs.iter().zip(decoded).zip(&window_plans) {
        segments.extend(p.split(decoded).into_iter().map(|(piece, d)| {
            let (role, u) = &utterances[p.pieces[piece].index];
            let mut seg = Segment::from_decoded(u.channel, *role, u.start, d);
            if let Some(sel) = &plan.selection {
                seg.normalise(&sel.adapter);
            }
            seg
        }));
    }
    // The call's language and adapter are those of the channel that spoke most.
    let main = main_channel(&infos, &utterances);
    let main_plan = plans.get(main).cloned();
    let (language, language_source, dialect) = match main_plan {
        Some(p) => (
            p.language,
            p.source,
            p.selection.as_ref().map(DialectUsed::of),
        ),
        None => ("und".to_owned(), LanguageSource::NoSpeech, None),
    };
    let mut transcript = Transcript {
        source: source.to_owned(),
        duration_ms,
        model,
        language,
        language_source,
        dialect,
        channels: infos,
        notes,
        segments,
        suggestions: Vec::new(),
    };
    transcript.sort();
    Ok(transcript)
}

/// The planned channels brought to the pipeline's rate.
fn resample_channels(
    source: &str,
    channels: Vec<ChannelAudio>,
    in_rate: u32,
) -> Result<Vec<ChannelAudio>, PipelineError> {
    debug_assert_eq!(PIPELINE_RATE_HZ, 16_000);
    channels
        .into_iter()
        .map(|mut ch| {
            ch.samples =
                resample_all(&ch.samples, in_rate).map_err(|e| PipelineError::Resample {
                    path: source.to_owned(),
                    source: e,
                })?;
            Ok(ch)
        })
        .collect()
}

/// Two channels that carry the same audio (a mixed call stored as stereo) become one mixed
/// channel, so that every sentence is transcribed once. The louder copy is kept rather than
/// an average: a copy a few samples off would comb-filter the mix. Returns the note for the
/// transcript.
fn merge_same_audio(channels: &mut Vec<ChannelAudio>) -> Option<String> {
    let [a, b] = channels.as_slice() else {
        return None;
    };
    let sim = crosstalk::compare_channels(&a.samples, &b.samples)?;
    if !sim.is_same_audio() {
        return None;
    }
    let keep = if sim.level_db_difference < 0.0 { 1 } else { 0 };
    let mut kept = channels.swap_remove(keep);
    channels.clear();
    kept.channel = 0;
    kept.role = Role::Mixed;
    channels.push(kept);
    Some(format!(
        "channels 0 and 1 carry the same audio (correlation {:.2}): transcribed once, as one mixed channel",
        sim.correlation
    ))
}

/// Applies the crosstalk rules ([`crosstalk::resolve`]) to every utterance: drops those that
/// are an attenuated, time-aligned copy of what the other channel carried at the time (line
/// echo, headset bleed), cuts off echo that an utterance begins or ends with, and keeps both
/// parties talking at once on both channels. Returns how many utterances were dropped and
/// how many cut short.
fn remove_echo(
    utterances: &mut Vec<(Role, Utterance)>,
    channels: &[ChannelAudio],
) -> (usize, usize) {
    let [a, b] = channels else {
        return (0, 0);
    };
    let (mut dropped, mut trimmed) = (0, 0);
    utterances.retain_mut(|(_, u)| {
        let other = if u.channel == a.channel { b } else { a };
        let (channel, start_ms) = (u.channel, u.start.as_ms());
        // Channels with the same audio were merged already: only echo is left to find.
        match crosstalk::resolve(u, &other.samples, 0, false) {
            crosstalk::Resolution::Own => true,
            crosstalk::Resolution::Trimmed { removed } => {
                tracing::debug!(channel, start_ms, ?removed, "echo cut off an utterance");
                trimmed += 1;
                true
            }
            crosstalk::Resolution::Dropped(judged) => {
                tracing::debug!(
                    channel,
                    start_ms,
                    ?judged,
                    "utterance dropped as echo of the other channel"
                );
                dropped += 1;
                false
            }
        }
    });
    (dropped, trimmed)
}

/// Brings what lies between a channel's utterances down to the channel's background level:
/// frames louder than the line's noise floor (the quietest tenth of the channel's frames) by
/// more than [`PAUSE_HEADROOM_DB`] are scaled to it. A packed window carries up to a second of
/// each pause to whisper (`engine::pack`: the call's own background between utterances kept
/// whisper from moving words across them, which zeros did not), and there the pause must
/// sound like a pause: hold music, key tones and the other party's echo that the detector
/// kept out of the utterances would otherwise be written as words of the utterance beside them
/// (on the echo fixture a "Hi." heard in the pause, at the end of the agent's sentence).
fn quiet_pauses(samples: &mut [f32], utterances: &[std::ops::Range<usize>]) {
    const FRAME: usize = FRAME_SAMPLES;
    let mean_square = |f: &[f32]| f.iter().map(|s| s * s).sum::<f32>() / f.len().max(1) as f32;
    let mut levels: Vec<f32> = samples.chunks(FRAME).map(mean_square).collect();
    if levels.is_empty() {
        return;
    }
    let tenth = levels.len() / 10;
    let floor = *levels.select_nth_unstable_by(tenth, f32::total_cmp).1;
    let ceiling = floor * 10f32.powf(PAUSE_HEADROOM_DB / 10.0);
    let mut next = utterances.iter().peekable();
    for (i, frame) in samples.chunks_mut(FRAME).enumerate() {
        let (from, to) = (i * FRAME, i * FRAME + frame.len());
        while next.peek().is_some_and(|u| u.end <= from) {
            next.next();
        }
        if next.peek().is_some_and(|u| u.start < to) {
            continue; // part of an utterance
        }
        let level = mean_square(frame);
        if level > ceiling {
            let gain = (floor / level).sqrt();
            frame.iter_mut().for_each(|s| *s *= gain);
        }
    }
}

/// How far above the channel's noise floor a pause may be before [`quiet_pauses`] lowers it.
const PAUSE_HEADROOM_DB: f32 = 6.0;

/// Identifies each channel's language from up to 30 s of its confident speech. Channels
/// without speech get `None`; when only one channel spoke, the other follows it.
fn identify_channels(
    worker: &mut Worker,
    channels: &[ChannelAudio],
    utterances: &[(Role, Utterance)],
) -> Result<Vec<Option<LanguageGuess>>, EngineError> {
    let mut guesses = Vec::with_capacity(channels.len());
    for ch in channels {
        let mine = utterances
            .iter()
            .map(|(_, u)| u)
            .filter(|u| u.channel == ch.channel);
        let speech = identification_audio(mine, WINDOW_SAMPLES);
        if speech.is_empty() {
            guesses.push(None);
            continue;
        }
        let guess = worker.detect_language(&speech)?;
        tracing::info!(channel = ch.channel, language = %guess.code, probability = guess.probability, speech_s = speech.len() as f32 / PIPELINE_RATE_HZ as f32, "language identified");
        guesses.push(Some(guess));
    }
    // A channel that said nothing decodes (nothing) like the one that spoke.
    if let Some(spoken) = guesses.iter().flatten().next().cloned() {
        for g in guesses.iter_mut().filter(|g| g.is_none()) {
            *g = Some(spoken.clone());
        }
    }
    Ok(guesses)
}

/// How one channel is decoded: its language, adapter and settings.
#[derive(Clone)]
struct ChannelPlan {
    language: String,
    source: LanguageSource,
    selection: Option<Selection>,
    decode: DecodeConfig,
    /// What identification heard on this channel, for the transcript.
    identified: Option<ChannelLanguage>,
}

impl ChannelPlan {
    /// A language (and maybe adapter) decided before any audio.
    fn fixed(
        language: String,
        source: LanguageSource,
        selection: Option<Selection>,
        opts: &RecordingOptions,
    ) -> Self {
        let decode = match &selection {
            Some(sel) => sel.adapter.decode(&opts.decode),
            None => opts.decode.clone(),
        };
        // With an adapter, its settings say the language (a configured one stays as it was).
        let language = match &selection {
            Some(_) => decode.language.clone(),
            None => language,
        };
        Self {
            language,
            source,
            selection,
            decode,
            identified: None,
        }
    }

    /// The plan for a channel identified as `guess` (`None`: no speech at all).
    fn identified(guess: Option<LanguageGuess>, opts: &RecordingOptions) -> Self {
        let Some(guess) = guess else {
            return Self {
                language: "und".to_owned(),
                source: LanguageSource::NoSpeech,
                selection: None,
                decode: opts.decode.clone(),
                identified: None,
            };
        };
        let identified = Some(ChannelLanguage {
            code: guess.code.clone(),
            probability: guess.probability,
        });
        let Some(req) = &opts.dialect else {
            let mut decode = opts.decode.clone();
            decode.language = guess.code.clone();
            return Self {
                language: guess.code,
                source: LanguageSource::Detected {
                    probability: guess.probability,
                },
                selection: None,
                decode,
                identified,
            };
        };
        let sel = req.dialects.for_detected(&guess.code, guess.probability);
        let decode = sel.decode_identified(&opts.decode, &guess.code);
        let source = match &sel.reason {
            Reason::Unsure { .. } => LanguageSource::Unsure {
                identified: guess.code.clone(),
                probability: guess.probability,
            },
            _ => LanguageSource::Detected {
                probability: guess.probability,
            },
        };
        Self {
            language: decode.language.clone(),
            source,
            selection: Some(sel),
            decode,
            identified,
        }
    }
}

/// Index (into `infos`) of the channel with the most speech.
fn main_channel(infos: &[ChannelInfo], utterances: &[(Role, Utterance)]) -> usize {
    (0..infos.len())
        .max_by_key(|&i| {
            let speech: usize = utterances
                .iter()
                .filter(|(_, u)| u.channel == infos[i].channel)
                .map(|(_, u)| u.samples.len())
                .sum();
            // Ties go to the first channel.
            (speech, std::cmp::Reverse(i))
        })
        .unwrap_or(0)
}

/// A window of several utterances runs the encoder over its audio plus a short margin; a lone
/// utterance is decoded as configured (whole window, or the live margin when fitted).
fn decode_window(
    worker: &mut Worker,
    window: &Pack,
    plan: &ChannelPlan,
) -> Result<Vec<Decoded>, EngineError> {
    let (language, decode) = (plan.language.as_str(), &plan.decode);
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
    plans: &[&ChannelPlan],
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
                let r = decode_window(worker, &windows[i], plans[i]);
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
    fn pauses_are_brought_down_to_the_line_noise_and_utterances_left_alone() {
        let mut rng = fastrand::Rng::with_seed(3);
        let noise = |rng: &mut fastrand::Rng| (rng.f32() - 0.5) * 0.002;
        // 2 s: line noise, with a loud tone in the pause at 0.5–1 s and speech at 1–1.5 s.
        let mut samples: Vec<f32> = (0..32_000).map(|_| noise(&mut rng)).collect();
        for (i, s) in samples[8_000..24_000].iter_mut().enumerate() {
            *s += 0.3 * (i as f32 * 0.3).sin();
        }
        let before = samples.clone();
        let utterance = std::ops::Range {
            start: 16_000,
            end: 24_000,
        };
        quiet_pauses(&mut samples, std::slice::from_ref(&utterance));
        let rms = |x: &[f32]| (x.iter().map(|s| s * s).sum::<f32>() / x.len() as f32).sqrt();
        assert_eq!(
            samples[16_000..24_000],
            before[16_000..24_000],
            "utterance untouched"
        );
        assert_eq!(samples[..7_680], before[..7_680], "background untouched");
        let tone = rms(&samples[8_704..15_360]);
        let line = rms(&before[..8_000]);
        assert!(
            tone < line * 1.5,
            "the tone in the pause is at {tone}, the line at {line}"
        );
    }

    #[test]
    fn stereo_with_one_role_is_an_error() {
        let e = plan_channels(stereo(), &"agent".parse().unwrap()).unwrap_err();
        assert!(e.contains("2 channels but 1 role"), "{e}");
    }
}
