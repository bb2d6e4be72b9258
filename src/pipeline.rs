//! The recording pipeline shared by the front doors that hold a whole call at once
//! (`transcribe`, the unary `Transcribe` RPC), in named stages:
//!
//! 1. **channel plan** — the file's channels to labelled channels (roles, or one mix);
//! 2. **segment** — resample, merge channels that carry the same audio, voice activity →
//!    utterances, drop echo of the other channel, quiet the pauses;
//! 3. **plan** — each channel's [`CallPlan`]: the call's, or identified from its speech;
//! 4. **pack** — a channel's consecutive utterances into shared whisper windows;
//! 5. **decode** — the windows on the one inference executor ([`Pool`]), side by side;
//! 6. **emit** — whisper's pieces back onto their utterances, one timeline.
//!
//! Live calls use the same audio stages one chunk at a time (`stream::LiveCall`); this is the
//! all-at-once driver. Per-call decisions are the plan's, made before it is called.

use crate::audio::decode::{read_audio, DecodeError};
use crate::audio::resample::{resample_all, ResampleError};
use crate::audio::wav::{WavAudio, WavError};
use crate::audio::{sanitise, CallTime, ChannelAudio, ChannelMode, Role, PIPELINE_RATE_HZ};
use crate::engine::pack::{pack, Pack, PACK_GAP, PACK_LIMIT};
use crate::engine::{
    Decoded, EngineError, LanguageGuess, Pool, Recogniser, Window, WINDOW_SAMPLES,
};
use crate::plan::{CallPlan, Language};
use crate::segment::{
    crosstalk, identification_audio, segment_all, Cut, Utterance, Vad, FRAME_SAMPLES,
};
use crate::transcript::{
    ChannelInfo, ChannelLanguage, DialectUsed, LanguageSource, Segment, Transcript,
};
use std::path::Path;

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
    Engine {
        path: String,
        source: Box<EngineError>,
    },
    /// A stage panicked on this recording: a bug, reported as this recording's error so that
    /// the batch (or the server) goes on.
    #[error("{path}: {message}")]
    Panicked { path: String, message: String },
}

/// How a recording's audio is prepared and its windows formed; the decisions about model,
/// language and adapter are the [`CallPlan`]'s.
#[derive(Debug, Clone)]
pub struct RecordingOptions {
    pub channels: ChannelMode,
    /// The voice-activity detector; `None`: fixed 30 s windows instead of utterances.
    pub vad: Option<Vad>,
    /// Decode a channel's consecutive utterances together, up to 28 s per whisper window
    /// (`engine::pack`), instead of one window per utterance.
    pub pack: bool,
    /// Windows of this recording queued on the executor at once (0: one per inference
    /// worker). A recording's windows are independent (no text carries between them), so
    /// they decode side by side; the bound keeps one long recording from filling the queue.
    pub windows_in_flight: usize,
}

impl Default for RecordingOptions {
    fn default() -> Self {
        Self {
            channels: ChannelMode::default(),
            vad: None,
            pack: true,
            windows_in_flight: 0,
        }
    }
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

/// Transcribes one recording (any format [`read_audio`] reads) with `plan` on the executor
/// `pool`. `progress` receives the seconds of the call transcribed so far.
pub fn transcribe_file(
    path: &Path,
    pool: &Pool,
    plan: &CallPlan,
    opts: &RecordingOptions,
    progress: &mut dyn FnMut(f64),
) -> Result<Transcript, PipelineError> {
    let audio = read_audio(path)?;
    let name = path.display().to_string();
    transcribe_audio(&name, audio, pool, plan, opts, progress)
}

/// Transcribes decoded audio; `source` names it in errors and in the transcript. Runs the
/// stages in order — channel plan, segment, plan, pack, decode, emit — on this thread, except
/// the inference, which goes to `pool` at [`Priority::Batch`](crate::engine::Priority). Call
/// it from a plain thread (or `spawn_blocking`), never from an async task: it waits.
/// A stage that panics on this recording fails this recording only
/// ([`PipelineError::Panicked`]).
pub fn transcribe_audio(
    source: &str,
    audio: WavAudio,
    pool: &Pool,
    plan: &CallPlan,
    opts: &RecordingOptions,
    progress: &mut dyn FnMut(f64),
) -> Result<Transcript, PipelineError> {
    crate::runtime::contain(|| run_stages(source, audio, pool, plan, opts, progress))
        .unwrap_or_else(|message| {
            Err(PipelineError::Panicked {
                path: source.to_owned(),
                message,
            })
        })
}

fn run_stages(
    source: &str,
    audio: WavAudio,
    pool: &Pool,
    plan: &CallPlan,
    opts: &RecordingOptions,
    progress: &mut dyn FnMut(f64),
) -> Result<Transcript, PipelineError> {
    let engine_err = |e: EngineError| PipelineError::Engine {
        path: source.to_owned(),
        source: Box::new(e),
    };
    let model = pool.model_index(&plan.model.name).ok_or_else(|| {
        engine_err(EngineError::Inference(format!(
            "model {} is not loaded",
            plan.model.name
        )))
    })?;
    let inference = Inference {
        pool,
        model,
        in_flight: match opts.windows_in_flight {
            0 => pool.workers(),
            n => n,
        },
    };
    let duration_ms = (audio.frames() as u64 * 1000) / u64::from(audio.sample_rate_hz);
    let mut call = segment(source, audio, opts)?;
    let plans = plan_languages(&inference, plan, &call).map_err(engine_err)?;
    let windows = pack_windows(&call, opts);
    // The windows hold all the audio decode needs: the channels' own copy (38 MB for ten
    // minutes) is not kept through the decode.
    for ch in &mut call.channels {
        ch.samples = Vec::new();
    }
    let decoded = decode(&inference, &windows, &plans, progress).map_err(engine_err)?;
    Ok(emit(
        source,
        duration_ms,
        &plan.model.name,
        call,
        &plans,
        &windows,
        decoded,
    ))
}

/// Where a recording's inference runs.
struct Inference<'a> {
    pool: &'a Pool,
    model: usize,
    in_flight: usize,
}

/// A recording after the audio stages: its channels at the pipeline's rate (pauses quieted)
/// and its utterances in timeline order.
struct Segmented {
    channels: Vec<ChannelAudio>,
    utterances: Vec<(Role, Utterance)>,
    notes: Vec<String>,
}

/// Stages 1–2: samples made safe → channel plan → resample → same-audio merge → segment →
/// echo removal → quiet pauses.
fn segment(
    source: &str,
    mut audio: WavAudio,
    opts: &RecordingOptions,
) -> Result<Segmented, PipelineError> {
    let mut notes = Vec::new();
    let non_finite: usize = audio.channels.iter_mut().map(|c| sanitise(c)).sum();
    if non_finite > 0 {
        let note = format!(
            "{non_finite} sample(s) were not numbers (NaN or infinite) and were replaced by silence"
        );
        tracing::warn!(source, "{note}");
        notes.push(note);
    }
    let in_rate = audio.sample_rate_hz;
    let channels =
        plan_channels(audio, &opts.channels).map_err(|message| PipelineError::Channels {
            path: source.to_owned(),
            message,
        })?;
    let mut channels = resample_channels(source, channels, in_rate)?;
    if let Some(note) = merge_same_audio(&mut channels) {
        tracing::info!(source, "{note}");
        notes.push(note);
    }
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
    Ok(Segmented {
        channels,
        utterances,
        notes,
    })
}

/// Stage 3: each channel's plan. A language fixed before audio holds for every channel;
/// otherwise each channel's is identified from up to 30 s of its confident speech
/// ([`CallPlan::identified`]), a channel without speech following one that spoke.
fn plan_languages(
    inference: &Inference,
    plan: &CallPlan,
    call: &Segmented,
) -> Result<Vec<CallPlan>, EngineError> {
    let plans: Vec<CallPlan> = match plan.language {
        Language::Fixed { .. } => vec![plan.clone(); call.channels.len()],
        Language::Identify => identify_channels(inference, call)?
            .into_iter()
            .map(|guess| match guess {
                Some(g) => plan.identified(&g),
                None => plan.no_speech(),
            })
            .collect(),
    };
    for (ch, p) in call.channels.iter().zip(&plans) {
        if let Some(sel) = &p.selection {
            tracing::info!(channel = ch.channel, language = p.language_code().unwrap_or_default(), dialect = %sel.adapter.id(), reason = %sel.reason, "dialect adapter chosen");
            if sel.adapter.model() != p.model.name {
                tracing::info!(adapter_model = %sel.adapter.model(), model = %p.model.name, "adapter runs on this run's model instead of its own");
            }
        }
    }
    Ok(plans)
}

/// A whisper window of a recording: its utterances, the index of their channel, and where
/// the last of them ends (for progress).
struct PackedWindow {
    pack: Pack,
    channel: usize,
    end_secs: f64,
}

/// Stage 4: a channel's consecutive utterances share windows when packing; fixed windows are
/// already full. Windows come out in timeline order.
fn pack_windows(call: &Segmented, opts: &RecordingOptions) -> Vec<PackedWindow> {
    let (limit, gap) = if opts.pack && opts.vad.is_some() {
        (PACK_LIMIT, PACK_GAP)
    } else {
        (0, 0)
    };
    let utterances = &call.utterances;
    let mut packs = Vec::new();
    for ch in &call.channels {
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
    packs.sort_by_key(|p| {
        let first = &utterances[p.pieces[0].index].1;
        (first.start, first.channel)
    });
    tracing::debug!(
        utterances = utterances.len(),
        windows = packs.len(),
        "packed"
    );
    packs
        .into_iter()
        .map(|pack| {
            let first = &utterances[pack.pieces[0].index].1;
            let last = &utterances[pack.pieces[pack.pieces.len() - 1].index].1;
            PackedWindow {
                channel: call
                    .channels
                    .iter()
                    .position(|c| c.channel == first.channel)
                    .unwrap_or(0),
                end_secs: last.end().as_secs_f64(),
                pack,
            }
        })
        .collect()
}

/// Stage 5: every window decoded on the executor, side by side, in its channel's plan, and
/// whisper's pieces mapped back onto their utterances. A window of several utterances runs
/// the encoder over its audio plus a short margin; a lone utterance is decoded as configured.
///
/// whisper's no-speech gate judges a window as a whole: a packed window of short, isolated
/// words (tiny.en on "rear left … side right", a second apart) can come back empty although
/// every piece decodes alone. The VAD heard speech there, so such a window's utterances are
/// decoded again one by one; a window of music or tones that the gate emptied stays empty
/// then too, through the same gate and [`guard`](crate::engine) per utterance.
fn decode(
    inference: &Inference,
    windows: &[PackedWindow],
    plans: &[CallPlan],
    progress: &mut dyn FnMut(f64),
) -> Result<Vec<Vec<(usize, Decoded)>>, EngineError> {
    let job = |w: &PackedWindow, samples: Vec<f32>, kind: Window| {
        let plan = &plans[w.channel];
        let language = plan.language_code().unwrap_or("auto").to_owned();
        let decode = plan.decode.clone();
        move |r: &mut dyn Recogniser| r.transcribe(&samples, &language, &decode, kind)
    };
    // Built as they are submitted: a window's copy of its audio exists only while in flight.
    let jobs = windows.iter().map(|w| {
        let kind = if w.pack.pieces.len() > 1 {
            Window::Packed
        } else {
            Window::Utterance
        };
        job(w, w.pack.samples.clone(), kind)
    });
    let decoded =
        inference
            .pool
            .run_batch(inference.model, jobs, inference.in_flight, &mut |done| {
                progress(windows[done - 1].end_secs)
            })?;
    let mut pieces: Vec<Vec<(usize, Decoded)>> = windows
        .iter()
        .zip(decoded)
        .map(|(w, d)| w.pack.split(d))
        .collect();
    let emptied: Vec<(usize, usize)> = windows
        .iter()
        .enumerate()
        .filter(|(i, w)| w.pack.pieces.len() > 1 && pieces[*i].is_empty())
        .flat_map(|(i, w)| (0..w.pack.pieces.len()).map(move |p| (i, p)))
        .collect();
    if emptied.is_empty() {
        return Ok(pieces);
    }
    tracing::debug!(
        utterances = emptied.len(),
        "packed windows decoded to nothing: decoding their utterances one by one"
    );
    let jobs = emptied.iter().map(|&(i, p)| {
        let w = &windows[i];
        job(w, w.pack.piece_samples(p).to_vec(), Window::Utterance)
    });
    let alone =
        inference
            .pool
            .run_batch(inference.model, jobs, inference.in_flight, &mut |_| {})?;
    for (&(i, p), decoded) in emptied.iter().zip(alone) {
        pieces[i].extend(decoded.into_iter().map(|d| (p, d)));
    }
    Ok(pieces)
}

/// Stage 6: each utterance's text normalised with its channel's adapter, on one timeline;
/// the call's language and adapter are those of the channel that spoke most.
fn emit(
    source: &str,
    duration_ms: u64,
    model: &str,
    call: Segmented,
    plans: &[CallPlan],
    windows: &[PackedWindow],
    decoded: Vec<Vec<(usize, Decoded)>>,
) -> Transcript {
    let mut segments = Vec::new();
    for (w, decoded) in windows.iter().zip(decoded) {
        let (window, plan) = (&w.pack, &plans[w.channel]);
        segments.extend(decoded.into_iter().map(|(piece, d)| {
            let (role, u) = &call.utterances[window.pieces[piece].index];
            let mut seg = Segment::from_decoded(u.channel, *role, u.start, d);
            if let Some(sel) = &plan.selection {
                seg.normalise(&sel.adapter);
            }
            seg
        }));
    }
    let channels: Vec<ChannelInfo> = call
        .channels
        .iter()
        .zip(plans)
        .map(|(c, p)| ChannelInfo {
            channel: c.channel,
            role: c.role,
            language: p.identified.as_ref().map(|g| ChannelLanguage {
                code: g.code.clone(),
                probability: g.probability,
            }),
        })
        .collect();
    let main = main_channel(&channels, &call.utterances);
    let (language, language_source, dialect) = match plans.get(main) {
        Some(p) => (
            p.language_code().unwrap_or("und").to_owned(),
            p.language_source()
                .cloned()
                .unwrap_or(LanguageSource::NoSpeech),
            p.selection.as_ref().map(DialectUsed::of),
        ),
        None => ("und".to_owned(), LanguageSource::NoSpeech, None),
    };
    let mut transcript = Transcript {
        source: source.to_owned(),
        duration_ms,
        model: model.to_owned(),
        language,
        language_source,
        dialect,
        channels,
        notes: call.notes,
        segments,
        suggestions: Vec::new(),
    };
    transcript.sort();
    transcript
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

/// Identifies each channel's language from up to 30 s of its confident speech, on the
/// executor. Channels without speech get `None`; when only one channel spoke, the other
/// follows it.
fn identify_channels(
    inference: &Inference,
    call: &Segmented,
) -> Result<Vec<Option<LanguageGuess>>, EngineError> {
    let speech: Vec<Vec<f32>> = call
        .channels
        .iter()
        .map(|ch| {
            let mine = call
                .utterances
                .iter()
                .map(|(_, u)| u)
                .filter(|u| u.channel == ch.channel);
            identification_audio(mine, WINDOW_SAMPLES)
        })
        .collect();
    let spoken: Vec<Vec<f32>> = speech.iter().filter(|s| !s.is_empty()).cloned().collect();
    let jobs = spoken
        .into_iter()
        .map(|s| move |r: &mut dyn Recogniser| r.detect_language(&s));
    let mut found = inference
        .pool
        .run_batch(inference.model, jobs, inference.in_flight, &mut |_| {})?
        .into_iter();
    let mut guesses: Vec<Option<LanguageGuess>> = speech
        .iter()
        .map(|s| if s.is_empty() { None } else { found.next() })
        .collect();
    for (ch, (g, s)) in call.channels.iter().zip(guesses.iter().zip(&speech)) {
        if let Some(g) = g {
            tracing::info!(channel = ch.channel, language = %g.code, probability = g.probability, speech_s = s.len() as f32 / PIPELINE_RATE_HZ as f32, "language identified");
        }
    }
    // A channel that said nothing decodes (nothing) like the one that spoke.
    if let Some(spoken) = guesses.iter().flatten().next().cloned() {
        for g in guesses.iter_mut().filter(|g| g.is_none()) {
            *g = Some(spoken.clone());
        }
    }
    Ok(guesses)
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

    /// The two-party call fixture (16 kHz stereo, 41.7 s), through the stages on a scripted
    /// recogniser that hears English and answers each window with its length.
    fn scripted_call(
        fail_window: Option<usize>,
        silent_when_packed: bool,
    ) -> (
        Result<Transcript, PipelineError>,
        crate::engine::scripted::Scripted,
        Vec<f64>,
    ) {
        use crate::engine::scripted::{whole, Scripted};
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/audio-fixtures/calls/en_call_16k.wav"
        );
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let model = Scripted::new("fake", "en", move |samples, language| {
            let n = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if Some(n) == fail_window {
                return Err(EngineError::Inference("scripted failure".into()));
            }
            Ok(whole(&format!("{language} {}", samples.len()), samples))
        });
        let model = if silent_when_packed {
            model.silent_when_packed()
        } else {
            model
        };
        let pool = Pool::start(vec![model.clone()], 2, 1, 16).unwrap();
        let models = [crate::engine::Model::info(&model)];
        let plan = CallPlan::resolve(
            &crate::plan::CallRequest::default(),
            &crate::engine::DecodeConfig::default(),
            None,
            models.as_slice(),
        )
        .unwrap();
        let opts = RecordingOptions {
            channels: "agent,customer".parse().unwrap(),
            vad: Some(crate::segment::test_vad()),
            ..RecordingOptions::default()
        };
        let mut progress = Vec::new();
        let t = transcribe_file(Path::new(path), &pool, &plan, &opts, &mut |s| {
            progress.push(s)
        });
        (t, model, progress)
    }

    #[test]
    fn stages_identify_each_channel_then_decode_packed_windows_onto_one_timeline() {
        use crate::engine::scripted::Request;
        let (t, model, progress) = scripted_call(None, false);
        let t = t.unwrap();
        let requests = model.requests();
        // Plan before decode: one identification per channel, from its own speech.
        let detects: Vec<usize> = requests
            .iter()
            .enumerate()
            .filter(|(_, r)| matches!(r, Request::Detect { .. }))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(detects, [0, 1], "{requests:?}");
        for c in &t.channels {
            let heard = c.language.as_ref().expect("identified");
            assert_eq!((heard.code.as_str(), heard.probability), ("en", 0.9));
        }
        assert_eq!(t.language, "en");
        assert!(matches!(t.language_source, LanguageSource::Detected { .. }));
        // Packed: fewer windows than segments, and the packed ones got the packed margin.
        let windows: Vec<&Request> = requests[2..].iter().collect();
        assert!(windows.iter().any(|r| matches!(
            r,
            Request::Transcribe {
                window: Window::Packed,
                ..
            }
        )));
        // Eleven turns over 42 s fit in a window or two per channel.
        assert!(windows.len() <= 4, "{} windows", windows.len());
        assert!(windows
            .iter()
            .all(|r| matches!(r, Request::Transcribe { language, .. } if language == "en")));
        // Both parties, on one sorted timeline, each segment inside the call.
        assert!(t.segments.iter().any(|s| s.role == Role::Agent));
        assert!(t.segments.iter().any(|s| s.role == Role::Customer));
        assert!(t
            .segments
            .windows(2)
            .all(|w| (w[0].start_ms, w[0].channel) <= (w[1].start_ms, w[1].channel)));
        assert!(t.segments.iter().all(|s| s.end_ms <= t.duration_ms));
        // Progress grows to the last window's end, once per finished leading window.
        assert_eq!(progress.len(), windows.len());
        assert!(progress.windows(2).all(|w| w[0] <= w[1]));
        let last_end = t.segments.iter().map(|s| s.end_ms).max().unwrap() as f64 / 1000.0;
        assert!(progress.last().unwrap() + 0.5 >= last_end);
    }

    #[test]
    fn a_packed_window_the_no_speech_gate_emptied_is_decoded_utterance_by_utterance() {
        use crate::engine::scripted::Request;
        let (packed, _, _) = scripted_call(None, false);
        let (t, model, _) = scripted_call(None, true);
        let (packed, t) = (packed.unwrap(), t.unwrap());
        let requests = model.requests();
        let kinds = |w: Window| {
            requests
                .iter()
                .filter(|r| matches!(r, Request::Transcribe { window, .. } if *window == w))
                .count()
        };
        assert!(kinds(Window::Packed) >= 1, "{requests:?}");
        // Every utterance of the emptied windows, alone: a segment each, each with its own
        // utterance's length as its text, on both channels.
        assert!(packed.segments.len() < t.segments.len());
        assert_eq!(kinds(Window::Utterance), t.segments.len());
        assert!(t.segments.iter().any(|s| s.role == Role::Agent));
        assert!(t.segments.iter().any(|s| s.role == Role::Customer));
        for s in &t.segments {
            let samples: u64 = s.text.trim_start_matches("en ").parse().unwrap();
            assert_eq!(samples / 16, s.end_ms - s.start_ms, "{s:?}");
        }
    }

    #[test]
    fn a_window_that_fails_fails_the_recording_with_its_name() {
        let (t, _, _) = scripted_call(Some(1), false);
        let e = t.unwrap_err();
        assert!(matches!(e, PipelineError::Engine { .. }));
        assert!(
            e.to_string().contains("en_call_16k.wav") && e.to_string().contains("scripted failure"),
            "{e}"
        );
    }

    #[test]
    fn stereo_with_one_role_is_an_error() {
        let e = plan_channels(stereo(), &"agent".parse().unwrap()).unwrap_err();
        assert!(e.contains("2 channels but 1 role"), "{e}");
    }
}
