//! Crosstalk between the two channels of a call: are they the same audio, and is an utterance
//! on one channel only the other party leaking in?
//!
//! Two-channel calls carry the agent on channel 0 and the customer on channel 1, but not always
//! cleanly. Some recorders store a mixed call as stereo (both channels the same audio), so
//! every sentence would be transcribed twice: [`compare_channels`] and its live twin
//! [`SameAudioDetector`] tell. Line echo and headset bleed put each party into the other's
//! channel some 18–30 dB down, filtered and delayed: [`classify_span`] tells an utterance that
//! is such a copy ([`Crosstalk::EchoOf`]) from genuine speech ([`Crosstalk::Own`]), including
//! overlapping speech, which must be kept on both channels.
//!
//! Everything here is pure and works on 16 kHz ([`PIPELINE_RATE_HZ`]) `f32` samples of the two
//! channels, sample-aligned by call time; levels are dB relative to full scale (dBFS) or
//! between the channels. Both judgements use the same rule for what a leak is: a channel at
//! least [`LEAK_LEVEL_DB`] quieter than the other and explained by it.

use super::{Utterance, FRAME_SAMPLES};
use crate::audio::PIPELINE_RATE_HZ;
use realfft::RealFftPlanner;

const SAMPLES_PER_MS: usize = PIPELINE_RATE_HZ as usize / 1000;
/// A frame the detector scores at least this is speech, for finding where an utterance's own
/// speech begins and ends (the segmenter's default start threshold).
const SPEECH_SCORE: f32 = 0.5;

/// A channel this much quieter than the other (dB) over the same time, and explained by it, is
/// the other's leak (echo, bleed), not a copy and not a second talker. Both judgements use it:
/// recorders that store a mixed call as stereo give the channels the same or nearly the same
/// gain (well under 10 dB apart), while the line echo and headset bleed seen on our calls sit
/// around 24 dB down (18–30 dB in the tests). A second talker overlapping at −6 dB is
/// therefore never a leak by level alone; at −12 dB the explanation test has to tell (see
/// [`ECHO_MIN_CORRELATION`]).
pub const LEAK_LEVEL_DB: f32 = 10.0;

/// 10 ms: the frame over which "is there signal here" and noise floors are judged.
const LEVEL_FRAME_SAMPLES: usize = 10 * SAMPLES_PER_MS;

/// Frames quieter than this (RMS, dBFS) on both channels are silence, ignored by
/// [`compare_channels`]. Telephone speech sits around −30 to −15 dBFS and idle lines at −65 to
/// −55 dBFS, so −50 leaves room for quiet talkers without letting a quiet line's hiss decide.
pub const SIGNAL_FLOOR_DBFS: f32 = -50.0;

// ------------------------------------------------------------------------------------------
// Same audio on both channels
// ------------------------------------------------------------------------------------------

/// How the two channels of a call relate, judged on their audio.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChannelSimilarity {
    /// Normalised cross-correlation of the waveforms (absolute value, 0–1) at `lag_samples`,
    /// over the frames where either channel has signal: 1 for the same audio at any gain, near
    /// 0 for two talkers.
    pub correlation: f32,
    /// `b` lags `a` by this many samples (`a[n]` best matches `b[n + lag_samples]`); negative
    /// when `b` leads.
    pub lag_samples: i32,
    /// Level of `a` minus level of `b` over the judged frames, in dB.
    pub level_db_difference: f32,
}

impl ChannelSimilarity {
    /// The decision: same audio when the waveforms match ([`SAME_AUDIO_CORRELATION`]) and
    /// neither channel is a leak of the other ([`LEAK_LEVEL_DB`]). The level test matters on a
    /// genuine two-channel call whose first seconds of signal are one party only: then the
    /// other channel carries nothing but that party's echo, which correlates well but sits
    /// 18 dB or more down.
    pub fn is_same_audio(&self) -> bool {
        self.correlation >= SAME_AUDIO_CORRELATION && self.level_db_difference.abs() < LEAK_LEVEL_DB
    }
}

/// Correlation at or above which two channels are the same audio. The same mix at another
/// gain, with a sample or 5 ms of skew, or with independent noise 40 dB down measures 0.9999
/// or more (tests); independent noise would have to reach −6 dB relative to the speech to
/// pull it to 0.9. The two parties of en_call_16k measure 0.014; with each bleeding into the
/// other's channel at −24 dB through a telephone band, 0.64 — and 25 dB apart, so the level
/// test would refuse them even if a duller echo path correlated higher.
pub const SAME_AUDIO_CORRELATION: f32 = 0.9;

/// Largest constant skew between the channels searched for (ms). Recorders that duplicate a
/// mix skew channels by at most a few samples; 20 ms leaves room for a jitter buffer.
pub const SAME_AUDIO_MAX_LAG_MS: u32 = 20;
const SAME_AUDIO_MAX_LAG: usize = SAME_AUDIO_MAX_LAG_MS as usize * SAMPLES_PER_MS;

/// Signal (10 ms frames where either channel is above [`SIGNAL_FLOOR_DBFS`]) judged before the
/// verdict. A duplicated mix is identical throughout, so the first seconds of signal tell as
/// well as the whole call, and judging only those makes [`compare_channels`] cost the same on
/// a 30 min file as on a 30 s one, and its verdict the live one. Signal on *either* channel
/// counts: a channel that stays silent while the other talks is itself the answer (not the
/// same audio), and waiting for signal on both would leave a one-sided call undecided.
pub const SAME_AUDIO_SIGNAL_MS: u32 = 3000;
const SAME_AUDIO_SIGNAL_FRAMES: usize = SAME_AUDIO_SIGNAL_MS as usize / 10;

/// Samples taken into the buffers per step of [`SameAudioDetector::push`], so one huge push
/// (a whole file) never copies the file: buffers stay under a few thousand samples.
const PUSH_STEP_SAMPLES: usize = 4096;

/// Whether two channels are the same audio (or nearly: a mixed call stored as stereo, maybe at
/// different gains or with a constant small offset). Looks only at stretches where there is
/// signal; returns None when there is too little signal to judge (under
/// [`SAME_AUDIO_SIGNAL_MS`]); [`ChannelSimilarity::is_same_audio`] decides.
///
/// Exactly `SameAudioDetector` fed the whole of both channels: the judgement rests on the
/// first [`SAME_AUDIO_SIGNAL_MS`] of signal, and the rest of the file is not read. The
/// cost is therefore bounded: a waveform cross-correlation over ±[`SAME_AUDIO_MAX_LAG_MS`]
/// (641 lags) on 3 s of signal, plus a frame-energy scan of any silence before it; channels
/// of unequal length are compared over the shorter.
pub fn compare_channels(a: &[f32], b: &[f32]) -> Option<ChannelSimilarity> {
    let mut detector = SameAudioDetector::new();
    detector.push(a, b);
    detector.similarity()
}

/// Incremental [`compare_channels`] for live calls: push both channels' 16 kHz samples as they
/// arrive; [`verdict`](Self::verdict) becomes `Some` once [`SAME_AUDIO_SIGNAL_MS`] of signal
/// were seen and then never changes. Chunk sizes do not matter: frames are cut at fixed call
/// positions and summed in the same order, so any chunking of the same audio gives bit-for-bit
/// the same similarity as `compare_channels`.
#[derive(Debug, Clone)]
pub struct SameAudioDetector {
    /// Channel `a` from call sample `a_first` on.
    a: Vec<f32>,
    a_first: usize,
    /// Channel `b` from call sample `b_first - SAME_AUDIO_MAX_LAG` on: the first frame's lag
    /// window reaches before the call, which reads as silence (the zeros `new` puts here).
    b: Vec<f32>,
    b_first: usize,
    /// Call sample where the next frame to judge starts.
    next_frame: usize,
    /// Per lag `k` (index `k + L`): Σ a[n]·b[n+k] and Σ b[n+k]² over the judged frames.
    cross: Vec<f64>,
    b_energy: Vec<f64>,
    a_energy: f64,
    signal_frames: usize,
    decided: Option<ChannelSimilarity>,
}

impl Default for SameAudioDetector {
    fn default() -> Self {
        Self::new()
    }
}

impl SameAudioDetector {
    pub fn new() -> Self {
        let lags = 2 * SAME_AUDIO_MAX_LAG + 1;
        Self {
            a: Vec::with_capacity(PUSH_STEP_SAMPLES + LEVEL_FRAME_SAMPLES),
            a_first: 0,
            b: vec![0.0; SAME_AUDIO_MAX_LAG],
            b_first: 0,
            next_frame: 0,
            cross: vec![0.0; lags],
            b_energy: vec![0.0; lags],
            a_energy: 0.0,
            signal_frames: 0,
            decided: None,
        }
    }

    /// Adds the next samples of both channels (normally equal lengths; a channel that runs
    /// ahead waits in the buffer for the other). Does nothing once the verdict is in.
    pub fn push(&mut self, a: &[f32], b: &[f32]) {
        let steps = a.len().max(b.len()).div_ceil(PUSH_STEP_SAMPLES);
        for step in 0..steps {
            if self.decided.is_some() {
                return;
            }
            let from = step * PUSH_STEP_SAMPLES;
            let to = from + PUSH_STEP_SAMPLES;
            self.a
                .extend_from_slice(&a[from.min(a.len())..to.min(a.len())]);
            self.b
                .extend_from_slice(&b[from.min(b.len())..to.min(b.len())]);
            self.judge_ready_frames();
        }
    }

    /// `Some(true)` when the channels are the same audio, `Some(false)` when not, `None` until
    /// enough signal was seen.
    pub fn verdict(&self) -> Option<bool> {
        self.decided.map(|s| s.is_same_audio())
    }

    /// The measurement the verdict rests on; `None` until there is a verdict.
    pub fn similarity(&self) -> Option<ChannelSimilarity> {
        self.decided
    }

    fn judge_ready_frames(&mut self) {
        const L: usize = SAME_AUDIO_MAX_LAG;
        const F: usize = LEVEL_FRAME_SAMPLES;
        let floor = db_to_power(SIGNAL_FLOOR_DBFS) * F as f32;
        loop {
            let a_at = self.next_frame - self.a_first;
            // b index of call sample `next_frame - L`, the start of this frame's lag window.
            let b_at = self.next_frame - self.b_first;
            if a_at + F > self.a.len() || b_at + F + 2 * L > self.b.len() {
                break;
            }
            let frame_a = &self.a[a_at..a_at + F];
            let window_b = &self.b[b_at..b_at + F + 2 * L];
            let energy_a = dot(frame_a, frame_a);
            let frame_b = &window_b[L..L + F];
            let energy_b = dot(frame_b, frame_b);
            if energy_a >= floor || energy_b >= floor {
                self.a_energy += f64::from(energy_a);
                // Σ b² over the window at each lag, slid one sample at a time.
                let mut sliding = dot(&window_b[..F], &window_b[..F]);
                for lag in 0..=2 * L {
                    if lag > 0 {
                        let gone = window_b[lag - 1];
                        let new = window_b[lag + F - 1];
                        sliding += new * new - gone * gone;
                    }
                    self.cross[lag] += f64::from(dot(frame_a, &window_b[lag..lag + F]));
                    self.b_energy[lag] += f64::from(sliding.max(0.0));
                }
                self.signal_frames += 1;
                if self.signal_frames >= SAME_AUDIO_SIGNAL_FRAMES {
                    self.decide();
                    return;
                }
            }
            self.next_frame += F;
        }
        // Keep only what the next frame needs.
        let a_done = self.next_frame - self.a_first;
        self.a.drain(..a_done);
        self.a_first = self.next_frame;
        let b_done = self.next_frame - self.b_first;
        self.b.drain(..b_done);
        self.b_first = self.next_frame;
    }

    fn decide(&mut self) {
        self.decided = Some(self.measure());
        self.a = Vec::new();
        self.b = Vec::new();
    }

    /// The best lag over the frames judged so far.
    fn measure(&self) -> ChannelSimilarity {
        let mut best = (0.0f64, 0usize);
        for (lag, (&cross, &b_energy)) in self.cross.iter().zip(&self.b_energy).enumerate() {
            let denom = (self.a_energy * b_energy).sqrt();
            let correlation = if denom > 0.0 {
                cross.abs() / denom
            } else {
                0.0
            };
            if correlation > best.0 {
                best = (correlation, lag);
            }
        }
        let (correlation, lag) = best;
        ChannelSimilarity {
            correlation: correlation.min(1.0) as f32,
            lag_samples: lag as i32 - SAME_AUDIO_MAX_LAG as i32,
            level_db_difference: power_ratio_db(self.a_energy, self.b_energy[lag]),
        }
    }
}

/// Signal (10 ms frames) a single utterance needs for [`span_similarity`] to judge it.
const SPAN_MIN_SIGNAL_FRAMES: usize = 30;

/// [`compare_channels`] for one utterance rather than a whole call: `span` is one channel's
/// samples `[start, start + span.len())` and `other` the other channel's over exactly the
/// same time (shorter: its end is missing). Judges all the utterance's signal, however short
/// of [`SAME_AUDIO_SIGNAL_MS`] (from 300 ms on): a live call's first utterance on a stereo
/// line that duplicates its mix may end before the whole-call detector has decided.
pub fn span_similarity(span: &[f32], other: &[f32]) -> Option<ChannelSimilarity> {
    let mut detector = SameAudioDetector::new();
    detector.push(span, other);
    if detector.decided.is_none() {
        // The last frames' lag windows reach past the span: judge them against silence.
        detector.push(&[], &[0.0; SAME_AUDIO_MAX_LAG + LEVEL_FRAME_SAMPLES]);
    }
    match detector.decided {
        Some(s) => Some(s),
        None if detector.signal_frames >= SPAN_MIN_SIGNAL_FRAMES => Some(detector.measure()),
        None => None,
    }
}

// ------------------------------------------------------------------------------------------
// Echo and bleed of one utterance
// ------------------------------------------------------------------------------------------

/// Longest echo delay searched for (ms). Line echo through a hybrid arrives within 0–60 ms,
/// VoIP legs with jitter buffers add up to ~200 ms; beyond that a copy is a replay, not echo.
pub const MAX_ECHO_LAG_MS: u32 = 250;
/// [`MAX_ECHO_LAG_MS`] in samples: the `max_lag` to pass to [`classify_span`].
pub const MAX_ECHO_LAG_SAMPLES: usize = MAX_ECHO_LAG_MS as usize * SAMPLES_PER_MS;

/// Smallest share of the span's signal the other channel must explain, as a correlation
/// (square root of the explained share of the power above the span's noise floor), for the
/// span to be its echo: 0.6, a little over a third of the power.
///
/// Measured in `echo_and_overlap_are_separated_with_margin` (espeak and real speech; echo
/// band-passed 300–3400 Hz or low-passed at 2 kHz, delayed 0/8/40 ms, at −18/−24/−30 dB, with
/// line noise at −50 dBFS): echo scores 0.80–0.99, lowest for real speech through the
/// telephone band at −30 dB, where the echo is about as loud as the line noise (espeak ≥ 0.93,
/// low-passed ≥ 0.90, −18/−24 dB ≥ 0.93). A second talker at −6 or −12 dB under the echo of
/// the louder one at −24 dB scores 0.11–0.34; in theory it is the echo's share of the span,
/// the square root of echo over talker plus echo, 0.24 at −12 dB. The threshold sits 0.2 below
/// the weakest echo and 0.26 above the strongest overlap. A talker much quieter than −12 dB
/// relative to the other party, down at the echo's own level, would start to score like echo.
pub const ECHO_MIN_CORRELATION: f32 = 0.6;

/// Echo-path filter taps fitted around a candidate delay: 4 ms either side. Covers a
/// hybrid's or headset's response, band-limiting included, which rings out within a few ms,
/// and the peak's offset from the direct path's delay when the path is dispersive.
const PATH_TAPS_BEFORE: usize = 4 * SAMPLES_PER_MS;
const PATH_TAPS_AFTER: usize = 4 * SAMPLES_PER_MS;

/// Cross-correlation peaks tried by the fit, and how far apart they must be: the fit's own
/// reach, so no two candidates cover the same delays.
const DELAY_CANDIDATES: usize = 3;
const DELAY_CANDIDATE_SPACING: usize = PATH_TAPS_BEFORE + PATH_TAPS_AFTER;

/// Whether an utterance on one channel is the other party's echo or bleed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Crosstalk {
    /// The channel's own speech (possibly overlapping the other party's): keep it.
    Own,
    /// An attenuated, filtered, delayed copy of the other channel: drop it.
    EchoOf {
        /// How much quieter the span is than the other channel over the same time (dB).
        level_db_below: f32,
        /// How well the other channel explains the span (see [`EchoMeasure::correlation`]).
        correlation: f32,
    },
    /// The same audio as the other channel (a mix stored on both): the first channel keeps
    /// the words, the second drops them.
    SameAudio { correlation: f32 },
}

/// What [`measure_echo`] found; [`classify_span`] decides on it. Worth logging with the
/// decision: it says how close a call came to the thresholds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EchoMeasure {
    /// Level of the other channel over the span minus the span's level (dB): positive when the
    /// other is louder.
    pub level_db_below: f32,
    /// Square root of the share of the span's power above its noise floor that the other
    /// channel explains through a short linear filter (0–1): a multiple-correlation
    /// coefficient. A filter, not a plain gain, so band-limited or coloured echo still counts
    /// as explained; the noise floor is taken out so that quiet echo buried in line noise is
    /// judged on the echo, not on the hiss.
    pub correlation: f32,
    /// Delay of the span behind the other channel (samples) at which the fit is centred.
    pub delay_samples: i32,
}

impl EchoMeasure {
    pub fn is_echo(&self) -> bool {
        self.level_db_below >= LEAK_LEVEL_DB && self.correlation >= ECHO_MIN_CORRELATION
    }
}

/// Whether `span` (an utterance's samples on one channel) is an attenuated, time-aligned copy
/// of what the other channel carried over the same time.
///
/// Alignment contract: `span` is channel X's samples `[start, start + span.len())` of the call
/// and `other` is the other channel's samples `[start - max_lag, start + span.len() + max_lag)`,
/// so `other[i + max_lag]` is simultaneous with `span[i]`. Samples before the call's start are
/// zeros; an `other` shorter than that (a live call whose other channel has not yet arrived
/// that far) is read as if padded with zeros at its end, which only makes echo less likely.
/// [`aligned_other`] cuts this window out of a whole channel. Pass [`MAX_ECHO_LAG_SAMPLES`] as
/// `max_lag` unless the delay is known to be shorter.
///
/// Echo means the other channel is at least [`LEAK_LEVEL_DB`] louder over the span and
/// explains at least [`ECHO_MIN_CORRELATION`] of the span (see [`EchoMeasure`]). Overlapping
/// speech on the quieter channel is its own because the other channel cannot explain it: the
/// measure is a share of the span's power, and a second talker's words are nowhere in the
/// other channel. Cost, for n span samples: one FFT cross-correlation of about 2n points to
/// find candidate delays, then three least-squares fits of 129 taps (O(n·129) each); a 30 s
/// span took 0.2 s in the test build. Spans not [`LEAK_LEVEL_DB`] below the other skip all
/// of it.
pub fn classify_span(span: &[f32], other: &[f32], max_lag: usize) -> Crosstalk {
    let Some(level_db_below) = level_db_below(span, other, max_lag) else {
        return Crosstalk::Own;
    };
    // The level test is cheap and settles most own speech; the fit runs only for spans quiet
    // enough to be a leak.
    if level_db_below < LEAK_LEVEL_DB {
        return Crosstalk::Own;
    }
    match measure_echo(span, other, max_lag) {
        Some(m) if m.is_echo() => Crosstalk::EchoOf {
            level_db_below: m.level_db_below,
            correlation: m.correlation,
        },
        _ => Crosstalk::Own,
    }
}

/// What an utterance is, judged against the other channel of a two-channel call: the one
/// rule the batch pipeline and live calls both apply. `span` is the utterance's samples from
/// its channel's sample `start` on; `other` holds the other channel from its sample
/// `other_start` on (the whole channel, or a live call's recent audio). With
/// `check_same_audio` (the second channel, while the call is not known to be two different
/// parties) a span that is the other channel's very audio is [`Crosstalk::SameAudio`];
/// otherwise it is judged for echo by [`classify_span`].
pub fn judge(
    span: &[f32],
    start: usize,
    other: &[f32],
    other_start: usize,
    check_same_audio: bool,
) -> Crosstalk {
    let lag = MAX_ECHO_LAG_SAMPLES;
    // Relative to `other`; what lies before it reads as zeros, like the call's start does.
    let window = match start.checked_sub(other_start) {
        Some(at) => aligned_other(other, at, span.len(), lag),
        None => vec![0.0; span.len() + 2 * lag],
    };
    if check_same_audio {
        if let Some(sim) = span_similarity(span, &window[lag..lag + span.len()]) {
            if sim.is_same_audio() {
                return Crosstalk::SameAudio {
                    correlation: sim.correlation,
                };
            }
        }
    }
    classify_span(span, &window, lag)
}

/// Leading or trailing echo shorter than this stays in the utterance: too short to be heard
/// as words.
const MIN_TRIM_SAMPLES: usize = 500 * SAMPLES_PER_MS;
/// Frames kept beyond the first and last frame of the channel's own speech, for soft onsets
/// and word endings (the segmenter's own pad is about as long).
const TRIM_MARGIN_FRAMES: usize = 6;

/// What became of an utterance judged against the other channel ([`resolve`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Resolution {
    /// The channel's own speech, kept as it was.
    Own,
    /// Own speech that began or ended as the other channel's echo: the echo was cut off.
    /// `removed` are the channel-sample ranges taken out.
    Trimmed {
        removed: Vec<std::ops::Range<usize>>,
    },
    /// Not this channel's speech at all: not to be transcribed.
    Dropped(Crosstalk),
}

/// Applies the crosstalk rules to one utterance of a two-channel call: drops it when it is
/// the other channel's audio ([`judge`]), and otherwise cuts off echo it begins or ends with.
/// The second happens on every echoing line: the segmenter hears the far party's echo and
/// then the near party's answer as one stretch of speech, and whisper then writes both.
/// The echo part is found by level (frames the detector calls speech that sit
/// [`LEAK_LEVEL_DB`] below the other channel within the echo lag) and confirmed as echo by
/// [`classify_span`], so a quiet talker overlapping a loud one keeps their words. Same
/// arguments as [`judge`]; `utterance` is changed in place when trimmed.
pub fn resolve(
    utterance: &mut Utterance,
    other: &[f32],
    other_start: usize,
    check_same_audio: bool,
) -> Resolution {
    let start = utterance.start.0 as usize;
    let judged = judge(
        &utterance.samples,
        start,
        other,
        other_start,
        check_same_audio,
    );
    if judged != Crosstalk::Own {
        return Resolution::Dropped(judged);
    }
    let keep = own_frames(utterance, other, other_start);
    let frames = utterance.scores.len();
    if keep == (0..frames) {
        return Resolution::Own;
    }
    let from = keep.start * FRAME_SAMPLES;
    let to = (keep.end * FRAME_SAMPLES).min(utterance.samples.len());
    let len = utterance.samples.len();
    let mut removed = Vec::new();
    if from > 0 {
        removed.push(start..start + from);
    }
    if to < len {
        removed.push(start + to..start + len);
    }
    utterance.samples.truncate(to);
    utterance.samples.drain(..from);
    utterance.scores.truncate(keep.end);
    utterance.scores.drain(..keep.start);
    utterance.start = utterance.start + from as u64;
    Resolution::Trimmed { removed }
}

/// The frames of `utterance` to keep: all of them unless it begins or ends with at least
/// [`MIN_TRIM_SAMPLES`] of confirmed echo.
fn own_frames(utterance: &Utterance, other: &[f32], other_start: usize) -> std::ops::Range<usize> {
    let n = utterance.scores.len();
    let span = &utterance.samples;
    let lag = MAX_ECHO_LAG_SAMPLES;
    let start = utterance.start.0 as usize;
    let window = match start.checked_sub(other_start) {
        Some(at) => aligned_other(other, at, span.len(), lag),
        None => vec![0.0; span.len() + 2 * lag],
    };
    // The other channel's loudest frame within the echo lag of each of the span's frames.
    let other_frames: Vec<f64> = window.chunks(FRAME_SAMPLES).map(energy).collect();
    let reach = (2 * lag).div_ceil(FRAME_SAMPLES) + 1;
    let leak = f64::from(db_to_power(LEAK_LEVEL_DB));
    let own = |i: usize| {
        let frame = &span[i * FRAME_SAMPLES..((i + 1) * FRAME_SAMPLES).min(span.len())];
        let mine = energy(frame) * (FRAME_SAMPLES as f64 / frame.len().max(1) as f64);
        let loudest = other_frames[i..(i + reach).min(other_frames.len())]
            .iter()
            .copied()
            .fold(0.0, f64::max);
        utterance.scores[i] >= SPEECH_SCORE && mine * leak > loudest
    };
    let Some(first) = (0..n).find(|&i| own(i)) else {
        return 0..n;
    };
    let last = (0..n).rev().find(|&i| own(i)).unwrap_or(first) + 1;
    // An utterance that ended with its input has a last frame shorter than the rest.
    let is_echo = |from: usize, to: usize| {
        let to = to.min(span.len());
        let from = from.min(to);
        to - from >= MIN_TRIM_SAMPLES
            && matches!(
                classify_span(&span[from..to], &window[from..to + 2 * lag], lag),
                Crosstalk::EchoOf { .. }
            )
    };
    // The margin is left out of the test as well as kept: the own speech's onset, louder
    // than any echo, would otherwise dilute the echo it follows.
    let (from, to) = (
        first.saturating_sub(TRIM_MARGIN_FRAMES),
        (last + TRIM_MARGIN_FRAMES).min(n),
    );
    let mut keep = 0..n;
    if is_echo(0, from * FRAME_SAMPLES) {
        keep.start = from;
    }
    if is_echo(to * FRAME_SAMPLES, span.len()) {
        keep.end = to;
    }
    keep
}

/// The measurements behind [`classify_span`] (same alignment contract), or None when either
/// side is digital silence or the span is shorter than 10 ms.
pub fn measure_echo(span: &[f32], other: &[f32], max_lag: usize) -> Option<EchoMeasure> {
    let level_db_below = level_db_below(span, other, max_lag)?;
    let padded;
    let other = if other.len() >= span.len() + 2 * max_lag {
        &other[..span.len() + 2 * max_lag]
    } else {
        let mut p = other.to_vec();
        p.resize(span.len() + 2 * max_lag, 0.0);
        padded = p;
        &padded[..]
    };
    let Some((path, delay)) = candidate_delays(span, other, max_lag)
        .into_iter()
        .map(|delay| (EchoPath::fit(span, other, max_lag, delay), delay))
        .max_by(|a, b| a.0.explained_estimate.total_cmp(&b.0.explained_estimate))
    else {
        return Some(EchoMeasure {
            level_db_below,
            correlation: 0.0,
            delay_samples: 0,
        });
    };
    let residual = path.residual(span, other, max_lag);
    let span_energy = energy(span);
    let explained = (span_energy - energy(&residual)).max(0.0);
    // Line noise on the span is not the other's to explain: measure the share of what lies
    // above the noise floor, read from the residual's quiet frames. The floor of the
    // denominator keeps a span that is nearly all noise from dividing by nearly nothing.
    let noise = noise_floor_energy(&residual).min(energy(&residual));
    let signal = (span_energy - noise).max(0.1 * span_energy);
    let share = (explained / signal).clamp(0.0, 1.0);
    Some(EchoMeasure {
        level_db_below,
        correlation: share.sqrt() as f32,
        delay_samples: delay,
    })
}

/// The other channel's window for [`classify_span`]: `channel[start - max_lag .. start + len +
/// max_lag)`, zeros where that reaches before the call's start or past what `channel` holds.
pub fn aligned_other(channel: &[f32], start: usize, len: usize, max_lag: usize) -> Vec<f32> {
    let mut window = vec![0.0; len + 2 * max_lag];
    let first = start as isize - max_lag as isize;
    for (i, w) in window.iter_mut().enumerate() {
        let t = first + i as isize;
        if t >= 0 && (t as usize) < channel.len() {
            *w = channel[t as usize];
        }
    }
    window
}

/// Other channel's level over the span minus the span's level (dB), None when either is
/// digital silence or the span too short to judge.
fn level_db_below(span: &[f32], other: &[f32], max_lag: usize) -> Option<f32> {
    if span.len() < LEVEL_FRAME_SAMPLES {
        return None;
    }
    let aligned = other.get(max_lag..).unwrap_or(&[]);
    let aligned = &aligned[..aligned.len().min(span.len())];
    let (span_energy, other_energy) = (energy(span), energy(aligned));
    (span_energy > 0.0 && other_energy > 0.0).then(|| power_ratio_db(other_energy, span_energy))
}

/// Candidate delays of `span` behind `other` (samples, within ±`max_lag`), best first: the
/// [`DELAY_CANDIDATES`] highest peaks, at least [`DELAY_CANDIDATE_SPACING`] apart, of their
/// phase-transform-weighted cross-correlation (GCC-PHAT). Whitening the cross-spectrum makes
/// the peak sharp whatever the echo path's filter does to the magnitudes (a telephone band
/// removes the voice's strongest band, the fundamental, and reshapes the envelope enough to put
/// an envelope correlation's peak 4–5 ms off on real speech), and a second talker on the span,
/// uncorrelated with the other channel, only lowers the peak instead of moving it. Several
/// peaks go to the fit because line noise at the echo's level can lift a wrong one to the top.
/// One FFT size of at least `span + other` samples: about 0.1 s for a 30 s span.
fn candidate_delays(span: &[f32], other: &[f32], max_lag: usize) -> Vec<i32> {
    let size = (span.len() + other.len()).next_power_of_two();
    let mut planner = RealFftPlanner::<f32>::new();
    let forward = planner.plan_fft_forward(size);
    let spectrum = |x: &[f32]| {
        let mut input = forward.make_input_vec();
        input[..x.len()].copy_from_slice(x);
        let mut out = forward.make_output_vec();
        forward
            .process(&mut input, &mut out)
            .expect("buffers come from the plan");
        out
    };
    let span_spectrum = spectrum(span);
    let mut cross = spectrum(other);
    let mut largest = 0.0f32;
    for (c, s) in cross.iter_mut().zip(&span_spectrum) {
        *c *= s.conj();
        largest = largest.max(c.norm());
    }
    // Bins with next to nothing in them (outside the band either channel carries) stay near
    // zero instead of being lifted to weight 1 with random phase.
    let floor = largest * 1e-6;
    for c in cross.iter_mut() {
        *c /= c.norm() + floor;
    }
    let inverse = planner.plan_fft_inverse(size);
    let mut correlation = inverse.make_output_vec();
    inverse
        .process(&mut cross, &mut correlation)
        .expect("buffers come from the plan");
    // correlation[k] = Σ span[t]·other[t + k]; span[t] lines up with other[t + max_lag], so
    // k = max_lag − delay.
    let mut peaks: Vec<(f32, usize)> = correlation[..=2 * max_lag]
        .iter()
        .enumerate()
        .map(|(k, c)| (c.abs(), k))
        .collect();
    peaks.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut picked: Vec<usize> = Vec::with_capacity(DELAY_CANDIDATES);
    for &(_, k) in &peaks {
        if picked.len() == DELAY_CANDIDATES {
            break;
        }
        if picked
            .iter()
            .all(|p| p.abs_diff(k) >= DELAY_CANDIDATE_SPACING)
        {
            picked.push(k);
        }
    }
    picked
        .into_iter()
        .map(|k| max_lag as i32 - k as i32)
        .collect()
}

/// A least-squares echo-path filter: `span[t] ≈ Σ taps[j] · other[t + max_lag − (first_delay + j)]`.
struct EchoPath {
    first_delay: i32,
    taps: Vec<f64>,
    /// `tapsᵀ · (Σ span · regressor)`: the energy the fit explains, as the normal equations
    /// see it (exact for the exact normal equations, close for ours).
    explained_estimate: f64,
}

impl EchoPath {
    /// Fits `span` by `other` through an FIR filter whose taps cover delays `delay ± 4 ms`
    /// (clipped to ±`max_lag`). The normal equations use the other channel's autocorrelation
    /// (Toeplitz, so O(n·taps) to build instead of O(n·taps²)); [`EchoPath::residual`] is
    /// exact, so that approximation can only make the fit slightly worse, never make it claim
    /// more than it explains.
    fn fit(span: &[f32], other: &[f32], max_lag: usize, delay: i32) -> Self {
        let n = span.len();
        let lag = max_lag as i32;
        let first_delay = (delay - PATH_TAPS_BEFORE as i32).max(-lag);
        let last_delay = (delay + PATH_TAPS_AFTER as i32).min(lag);
        let count = (last_delay - first_delay + 1) as usize;
        let regressor = |j: usize| {
            let start = (lag - (first_delay + j as i32)) as usize;
            &other[start..start + n]
        };
        // Region of `other` any tap reads, from the longest delay's start to the shortest's end.
        let region_start = (lag - last_delay) as usize;
        let region = &other[region_start..(lag - first_delay) as usize + n];
        let scale = n as f64 / region.len() as f64;
        let autocorrelation: Vec<f64> = (0..count)
            .map(|tau| dot_long(&region[..region.len() - tau], &region[tau..]) * scale)
            .collect();
        let mut normal = vec![0.0f64; count * count];
        for r in 0..count {
            for c in 0..count {
                normal[r * count + c] = autocorrelation[r.abs_diff(c)];
            }
        }
        let rhs: Vec<f64> = (0..count).map(|j| dot_long(span, regressor(j))).collect();
        let taps = solve_symmetric(&mut normal, &rhs, count).unwrap_or_else(|| vec![0.0; count]);
        let explained_estimate = taps.iter().zip(&rhs).map(|(h, r)| h * r).sum();
        Self {
            first_delay,
            taps,
            explained_estimate,
        }
    }

    /// What of `span` the filtered other channel leaves unexplained.
    fn residual(&self, span: &[f32], other: &[f32], max_lag: usize) -> Vec<f32> {
        let mut residual = span.to_vec();
        for (j, &h) in self.taps.iter().enumerate() {
            let start = (max_lag as i32 - (self.first_delay + j as i32)) as usize;
            let h = h as f32;
            for (r, &x) in residual.iter_mut().zip(&other[start..start + span.len()]) {
                *r -= h * x;
            }
        }
        residual
    }
}

/// Noise floor of a signal as energy over its whole length: the 10th percentile of its 10 ms
/// frame powers. Speech pauses between words reach the floor well within the quietest tenth
/// of any utterance VAD cuts.
fn noise_floor_energy(x: &[f32]) -> f64 {
    let mut powers: Vec<f32> = x
        .chunks_exact(LEVEL_FRAME_SAMPLES)
        .map(|c| dot(c, c) / LEVEL_FRAME_SAMPLES as f32)
        .collect();
    if powers.is_empty() {
        return 0.0;
    }
    let k = powers.len() / 10;
    let (_, p, _) = powers.select_nth_unstable_by(k, f32::total_cmp);
    f64::from(*p) * x.len() as f64
}

/// Solves `m · h = rhs` for symmetric positive semi-definite `m` (row-major, `n × n`, consumed)
/// by Cholesky with a little diagonal loading, so a rank-deficient autocorrelation (a
/// band-limited or silent other channel) still gives the minimum-norm-ish fit. None when `m`
/// is zero.
fn solve_symmetric(m: &mut [f64], rhs: &[f64], n: usize) -> Option<Vec<f64>> {
    let load = m[0] * 1e-6;
    if load <= 0.0 {
        return None;
    }
    for i in 0..n {
        m[i * n + i] += load;
    }
    // In-place Cholesky: lower triangle becomes L with m = L·Lᵀ.
    for j in 0..n {
        let mut d = m[j * n + j];
        for k in 0..j {
            d -= m[j * n + k] * m[j * n + k];
        }
        if d <= 0.0 {
            return None;
        }
        let d = d.sqrt();
        m[j * n + j] = d;
        for i in j + 1..n {
            let mut s = m[i * n + j];
            for k in 0..j {
                s -= m[i * n + k] * m[j * n + k];
            }
            m[i * n + j] = s / d;
        }
    }
    let mut y = rhs.to_vec();
    for i in 0..n {
        for k in 0..i {
            y[i] -= m[i * n + k] * y[k];
        }
        y[i] /= m[i * n + i];
    }
    for i in (0..n).rev() {
        for k in i + 1..n {
            y[i] -= m[k * n + i] * y[k];
        }
        y[i] /= m[i * n + i];
    }
    Some(y)
}

/// Dot product of short slices (a frame or two), in `f32` over eight independent lanes so
/// it vectorises (a plain iterator sum is one serial chain of additions).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut lanes = [0.0f32; 8];
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        for k in 0..8 {
            lanes[k] += x[k] * y[k];
        }
    }
    let tail = n - n % 8;
    let rest: f32 = a[tail..].iter().zip(&b[tail..]).map(|(x, y)| x * y).sum();
    lanes.iter().sum::<f32>() + rest
}

/// Dot product of long slices (a whole span): `f32` within 256-sample blocks, `f64` across
/// them, so 30 s of audio sums without losing the small terms.
fn dot_long(a: &[f32], b: &[f32]) -> f64 {
    a.chunks(256)
        .zip(b.chunks(256))
        .map(|(x, y)| f64::from(dot(x, y)))
        .sum()
}

fn energy(x: &[f32]) -> f64 {
    x.iter().map(|&v| f64::from(v) * f64::from(v)).sum()
}

fn db_to_power(db: f32) -> f32 {
    10f32.powf(db / 10.0)
}

/// 10·log10(num / den) in dB; ±inf-free for the zero energies silence gives.
fn power_ratio_db(num: f64, den: f64) -> f32 {
    const TINY: f64 = 1e-20;
    (10.0 * ((num + TINY) / (den + TINY)).log10()) as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::{read_wav, resample::resample_all};
    use std::path::PathBuf;
    use std::sync::OnceLock;

    const RATE: usize = PIPELINE_RATE_HZ as usize;

    /// `[start, end)` in samples of a channel.
    type Span = (usize, usize);

    /// One talker's channel and the spans of its utterances.
    struct Speech {
        name: &'static str,
        samples: Vec<f32>,
        spans: Vec<Span>,
    }

    /// A quieter channel judged against a louder one.
    struct Case {
        what: String,
        measure: EchoMeasure,
        verdict: Crosstalk,
    }

    fn fixture(relative: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)
    }

    fn ms(ms: u64) -> usize {
        ms as usize * SAMPLES_PER_MS
    }

    /// Utterance times `(channel, start, end)` in samples from a fixture's reference JSON.
    fn utterances(json: &str) -> Vec<(usize, usize, usize)> {
        let text = std::fs::read_to_string(fixture(json)).expect("fixture reference JSON");
        let value: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        value["utterances"]
            .as_array()
            .expect("utterances array")
            .iter()
            .map(|u| {
                let field = |k: &str| u[k].as_u64().expect("numeric field");
                (
                    field("channel") as usize,
                    ms(field("start_ms")),
                    ms(field("end_ms")),
                )
            })
            .collect()
    }

    /// The espeak call: agent (channel 0) and customer (channel 1), turn by turn.
    struct Call {
        agent: Vec<f32>,
        customer: Vec<f32>,
        utterances: Vec<(usize, usize, usize)>,
    }

    fn en_call() -> Call {
        let wav = read_wav(&fixture("audio-fixtures/calls/en_call_16k.wav")).expect("en_call");
        assert_eq!(wav.sample_rate_hz, PIPELINE_RATE_HZ);
        let mut channels = wav.channels.into_iter();
        Call {
            agent: channels.next().expect("channel 0"),
            customer: channels.next().expect("channel 1"),
            utterances: utterances("audio-fixtures/calls/en_call_16k.json"),
        }
    }

    /// Real human voice prompts, mono, resampled to 16 kHz, with their utterance times.
    fn real_voice() -> (Vec<f32>, Vec<Span>) {
        let wav = read_wav(&fixture("audio-fixtures/real/alsa_voices_48k.wav")).expect("alsa");
        let voice = resample_all(&wav.channels[0], wav.sample_rate_hz).expect("resample");
        let times = utterances("audio-fixtures/real/alsa_voices_48k.json")
            .into_iter()
            .map(|(_, s, e)| (s, e))
            .collect();
        (voice, times)
    }

    /// RBJ-cookbook biquad: what a hybrid or a headset does to the echo, roughly.
    struct Biquad([f32; 5]);

    impl Biquad {
        fn new(low_pass: bool, f0_hz: f32) -> Self {
            let w0 = 2.0 * std::f32::consts::PI * f0_hz / RATE as f32;
            let (sin, cos) = w0.sin_cos();
            // Butterworth: Q = 1/√2, so alpha = sin(w0) / (2Q) = sin(w0) / √2.
            let alpha = sin * std::f32::consts::FRAC_1_SQRT_2;
            let a0 = 1.0 + alpha;
            let (b0, b1) = if low_pass {
                ((1.0 - cos) / 2.0, 1.0 - cos)
            } else {
                ((1.0 + cos) / 2.0, -(1.0 + cos))
            };
            Self([
                b0 / a0,
                b1 / a0,
                b0 / a0,
                -2.0 * cos / a0,
                (1.0 - alpha) / a0,
            ])
        }

        fn run(&self, x: &[f32]) -> Vec<f32> {
            let [b0, b1, b2, a1, a2] = self.0;
            let (mut x1, mut x2, mut y1, mut y2) = (0.0, 0.0, 0.0, 0.0);
            x.iter()
                .map(|&x0| {
                    let y0 = b0 * x0 + b1 * x1 + b2 * x2 - a1 * y1 - a2 * y2;
                    (x2, x1, y2, y1) = (x1, x0, y1, y0);
                    y0
                })
                .collect()
        }
    }

    #[derive(Clone, Copy, Debug)]
    enum EchoPath {
        /// Telephone band, 300–3400 Hz: a line hybrid.
        Telephone,
        /// Low-pass at 2 kHz: a headset's acoustic bleed.
        Muffled,
    }

    impl EchoPath {
        fn filter(self, x: &[f32]) -> Vec<f32> {
            match self {
                EchoPath::Telephone => {
                    Biquad::new(true, 3400.0).run(&Biquad::new(false, 300.0).run(x))
                }
                EchoPath::Muffled => Biquad::new(true, 2000.0).run(x),
            }
        }
    }

    /// `x` through `path`, `delay_ms` later and `gain_db` quieter, same length.
    fn echo_of(x: &[f32], path: EchoPath, delay_ms: u64, gain_db: f32) -> Vec<f32> {
        let filtered = path.filter(x);
        let mut out = vec![0.0; ms(delay_ms)];
        out.extend_from_slice(&filtered[..x.len().saturating_sub(ms(delay_ms))]);
        scaled(&out, gain_db)
    }

    fn scaled(x: &[f32], gain_db: f32) -> Vec<f32> {
        let g = 10f32.powf(gain_db / 20.0);
        x.iter().map(|v| v * g).collect()
    }

    /// White line noise at `dbfs` RMS.
    fn noise(len: usize, dbfs: f32, seed: u64) -> Vec<f32> {
        let mut rng = fastrand::Rng::with_seed(seed);
        let peak = 10f32.powf(dbfs / 20.0) * 3f32.sqrt();
        (0..len).map(|_| (rng.f32() * 2.0 - 1.0) * peak).collect()
    }

    fn mixed(parts: &[&[f32]]) -> Vec<f32> {
        let len = parts.iter().map(|p| p.len()).max().unwrap_or(0);
        let mut out = vec![0.0; len];
        for p in parts {
            for (o, v) in out.iter_mut().zip(p.iter()) {
                *o += v;
            }
        }
        out
    }

    fn level_dbfs(x: &[f32]) -> f32 {
        power_ratio_db(energy(x) / x.len() as f64, 1.0)
    }

    /// `channel[start..end]` classified against `other_channel`, with its measurement.
    fn judge(
        channel: &[f32],
        other_channel: &[f32],
        (start, end): Span,
    ) -> (Crosstalk, EchoMeasure) {
        let other = aligned_other(other_channel, start, end - start, MAX_ECHO_LAG_SAMPLES);
        let span = &channel[start..end];
        let verdict = classify_span(span, &other, MAX_ECHO_LAG_SAMPLES);
        let measure = measure_echo(span, &other, MAX_ECHO_LAG_SAMPLES).expect("signal on both");
        (verdict, measure)
    }

    /// Spans as the VAD cuts them: the reference utterance with 200 ms of padding.
    fn padded((start, end): Span, len: usize) -> Span {
        (start.saturating_sub(ms(200)), (end + ms(200)).min(len))
    }

    /// Agent spans of the espeak call and spans of the real voice: the speech echo is made of.
    fn speech_sources() -> Vec<Speech> {
        let call = en_call();
        let agent_spans = call
            .utterances
            .iter()
            .filter(|u| u.0 == 0)
            .take(2)
            .map(|&(_, s, e)| padded((s, e), call.agent.len()))
            .collect();
        let (voice, times) = real_voice();
        let voice_spans = times
            .iter()
            .take(3)
            .map(|&t| padded(t, voice.len()))
            .collect();
        vec![
            Speech {
                name: "espeak",
                samples: call.agent,
                spans: agent_spans,
            },
            Speech {
                name: "real",
                samples: voice,
                spans: voice_spans,
            },
        ]
    }

    const ECHO_DELAYS_MS: [u64; 3] = [0, 8, 40];
    const ECHO_GAINS_DB: [f32; 3] = [-18.0, -24.0, -30.0];
    const LINE_NOISE_DBFS: f32 = -50.0;

    /// Every echo case: (description, measure of the echo span, verdict on it, verdict on the
    /// talker's own span).
    fn echo_cases() -> &'static [(Case, Crosstalk)] {
        static CASES: OnceLock<Vec<(Case, Crosstalk)>> = OnceLock::new();
        CASES.get_or_init(build_echo_cases)
    }

    fn build_echo_cases() -> Vec<(Case, Crosstalk)> {
        let mut cases = Vec::new();
        for Speech {
            name,
            samples: talker,
            spans,
        } in speech_sources()
        {
            for path in [EchoPath::Telephone, EchoPath::Muffled] {
                for delay_ms in ECHO_DELAYS_MS {
                    for gain_db in ECHO_GAINS_DB {
                        let echo = echo_of(&talker, path, delay_ms, gain_db);
                        let line = noise(talker.len(), LINE_NOISE_DBFS, delay_ms + 7);
                        let leaky = mixed(&[&echo, &line]);
                        for &span in &spans {
                            let (verdict, measure) = judge(&leaky, &talker, span);
                            let (own, _) = judge(&talker, &leaky, span);
                            let what = format!(
                                "{name} {path:?} {delay_ms} ms {gain_db} dB at {} ms",
                                span.0 / SAMPLES_PER_MS
                            );
                            let case = Case {
                                what,
                                measure,
                                verdict,
                            };
                            cases.push((case, own));
                        }
                    }
                }
            }
        }
        cases
    }

    /// Every overlap case: the quieter channel carries a second talker at −6 or −12 dB relative
    /// to the louder one *and* the louder one's echo at −24 dB.
    fn overlap_cases() -> &'static [Case] {
        static CASES: OnceLock<Vec<Case>> = OnceLock::new();
        CASES.get_or_init(build_overlap_cases)
    }

    fn build_overlap_cases() -> Vec<Case> {
        let call = en_call();
        let (voice, times) = real_voice();
        // (name, louder channel, quieter channel's own speech already placed under it, spans)
        let mut setups: Vec<(Speech, Vec<f32>)> = Vec::new();
        // espeak: the customer's first sentence moved under the agent's first.
        let (_, agent_start, agent_end) = call.utterances[0];
        let (_, cust_start, cust_end) = call.utterances[1];
        let mut customer = vec![0.0; call.agent.len()];
        let moved = &call.customer[cust_start..cust_end];
        customer[agent_start..agent_start + moved.len()].copy_from_slice(moved);
        let span = padded((agent_start, agent_end), call.agent.len());
        let agent = Speech {
            name: "espeak",
            samples: call.agent.clone(),
            spans: vec![span],
        };
        setups.push((agent, customer));
        // Real voice: the same speaker saying the previous prompt (2177 ms earlier) at once.
        let shift = ms(2177);
        let mut earlier = vec![0.0; voice.len()];
        earlier[shift..].copy_from_slice(&voice[..voice.len() - shift]);
        let spans = times[1..3]
            .iter()
            .map(|&t| padded(t, voice.len()))
            .collect();
        let voice = Speech {
            name: "real",
            samples: voice,
            spans,
        };
        setups.push((voice, earlier));

        let mut cases = Vec::new();
        for (
            Speech {
                name,
                samples: louder,
                spans,
            },
            own,
        ) in setups
        {
            for own_db in [-6.0f32, -12.0] {
                for delay_ms in ECHO_DELAYS_MS {
                    for &(start, end) in &spans {
                        let relative =
                            level_dbfs(&own[start..end]) - level_dbfs(&louder[start..end]);
                        let own_speech = scaled(&own, own_db - relative);
                        let echo = echo_of(&louder, EchoPath::Telephone, delay_ms, -24.0);
                        let line = noise(louder.len(), LINE_NOISE_DBFS, 99);
                        let quieter = mixed(&[&own_speech, &echo, &line]);
                        let (verdict, measure) = judge(&quieter, &louder, (start, end));
                        let what = format!(
                            "{name} own {own_db} dB, echo {delay_ms} ms at {} ms",
                            start / SAMPLES_PER_MS
                        );
                        cases.push(Case {
                            what,
                            measure,
                            verdict,
                        });
                    }
                }
            }
        }
        cases
    }

    #[test]
    fn echo_of_the_other_party_is_echo_and_the_talker_is_own() {
        for (case, own) in echo_cases() {
            let Case {
                what,
                measure,
                verdict,
            } = case;
            assert!(
                matches!(verdict, Crosstalk::EchoOf { .. }),
                "{what}: {measure:?} judged {verdict:?}"
            );
            assert_eq!(*own, Crosstalk::Own, "{what}: the talker's own span");
        }
    }

    #[test]
    fn overlapping_speech_on_the_quieter_channel_is_own() {
        for Case {
            what,
            measure,
            verdict,
        } in overlap_cases()
        {
            assert_eq!(*verdict, Crosstalk::Own, "{what}: {measure:?}");
        }
    }

    /// The numbers behind [`ECHO_MIN_CORRELATION`]: run with `--nocapture` to see each case.
    #[test]
    fn echo_and_overlap_are_separated_with_margin() {
        let echo: Vec<&Case> = echo_cases().iter().map(|(case, _)| case).collect();
        let overlap: Vec<&Case> = overlap_cases().iter().collect();
        for (kind, cases) in [("echo", &echo), ("overlap", &overlap)] {
            for Case { what, measure, .. } in cases.iter() {
                println!(
                    "{kind:8}{what:45} below {:5.1} dB  r {:.3}  delay {}",
                    measure.level_db_below, measure.correlation, measure.delay_samples
                );
            }
        }
        let weakest_echo = echo
            .iter()
            .map(|c| c.measure.correlation)
            .fold(1.0, f32::min);
        let strongest_overlap = overlap
            .iter()
            .map(|c| c.measure.correlation)
            .fold(0.0, f32::max);
        println!("weakest echo r {weakest_echo:.3}, strongest overlap r {strongest_overlap:.3}");
        assert!(
            weakest_echo >= ECHO_MIN_CORRELATION + 0.1,
            "echo {weakest_echo}"
        );
        assert!(
            strongest_overlap <= ECHO_MIN_CORRELATION - 0.1,
            "overlap {strongest_overlap}"
        );
    }

    #[test]
    fn own_speech_with_nothing_on_the_other_channel_is_own() {
        let call = en_call();
        let (_, start, end) = call.utterances[1];
        let (verdict, measure) = judge(&call.customer, &call.agent, (start, end));
        assert_eq!(verdict, Crosstalk::Own, "{measure:?}");
    }

    #[test]
    fn span_at_the_call_start_and_a_short_other_window_are_handled() {
        let (voice, _) = real_voice();
        let echo = echo_of(&voice, EchoPath::Telephone, 8, -24.0);
        let leaky = mixed(&[&echo, &noise(voice.len(), LINE_NOISE_DBFS, 3)]);
        // From sample 0: the window before the call is zeros.
        let (start, end) = (0, ms(2000));
        let (verdict, _) = judge(&leaky, &voice, (start, end));
        assert!(matches!(verdict, Crosstalk::EchoOf { .. }), "{verdict:?}");
        // The other channel has only just arrived up to the span's end: still judged.
        let other = aligned_other(&voice, ms(300), ms(1700), MAX_ECHO_LAG_SAMPLES);
        let truncated = &other[..other.len() - MAX_ECHO_LAG_SAMPLES];
        let span = &leaky[ms(300)..ms(2000)];
        assert!(matches!(
            classify_span(span, truncated, MAX_ECHO_LAG_SAMPLES),
            Crosstalk::EchoOf { .. }
        ));
        assert_eq!(
            classify_span(span, &[], MAX_ECHO_LAG_SAMPLES),
            Crosstalk::Own
        );
        assert_eq!(
            classify_span(&[], &other, MAX_ECHO_LAG_SAMPLES),
            Crosstalk::Own
        );
    }

    // --------------------------------------------------------------------------------------

    /// A mixed call, as a recorder would store it on both channels.
    fn mixed_call() -> Vec<f32> {
        let call = en_call();
        mixed(&[&call.agent, &call.customer])
    }

    fn same(a: &[f32], b: &[f32]) -> ChannelSimilarity {
        let s = compare_channels(a, b).expect("enough signal");
        assert!(s.is_same_audio(), "{s:?}");
        s
    }

    #[test]
    fn identical_channels_are_the_same_audio() {
        let mix = mixed_call();
        let s = same(&mix, &mix);
        assert_eq!(s.lag_samples, 0);
        assert!(
            s.correlation > 0.999 && s.level_db_difference.abs() < 0.01,
            "{s:?}"
        );
        let (voice, _) = real_voice();
        same(&voice, &voice);
    }

    #[test]
    fn same_audio_at_another_gain_is_the_same_audio() {
        let mix = mixed_call();
        let s = same(&mix, &scaled(&mix, -6.0));
        assert!((s.level_db_difference - 6.0).abs() < 0.1, "{s:?}");
    }

    #[test]
    fn same_audio_with_independent_noise_is_the_same_audio() {
        let mix = mixed_call();
        let speech_dbfs = level_dbfs(&mix[ms(500)..ms(5500)]);
        let a = mixed(&[&mix, &noise(mix.len(), speech_dbfs - 40.0, 1)]);
        let b = mixed(&[&mix, &noise(mix.len(), speech_dbfs - 40.0, 2)]);
        let s = same(&a, &b);
        assert!(s.correlation > 0.99, "{s:?}");
    }

    #[test]
    fn same_audio_with_a_small_offset_is_the_same_audio() {
        let mix = mixed_call();
        for offset in [1, ms(5)] {
            let mut late = vec![0.0; offset];
            late.extend_from_slice(&mix[..mix.len() - offset]);
            let s = same(&mix, &late);
            assert_eq!(s.lag_samples, offset as i32, "{s:?}");
            let s = same(&late, &mix);
            assert_eq!(s.lag_samples, -(offset as i32), "{s:?}");
        }
    }

    #[test]
    fn the_two_parties_of_a_call_are_not_the_same_audio() {
        let call = en_call();
        let s = compare_channels(&call.agent, &call.customer).expect("enough signal");
        assert!(!s.is_same_audio(), "{s:?}");
        assert!(s.correlation < 0.2, "{s:?}");
        // With each party bleeding into the other's channel at −24 dB: the bleed correlates,
        // but it is a leak by level.
        let agent = mixed(&[
            &call.agent,
            &echo_of(&call.customer, EchoPath::Telephone, 8, -24.0),
        ]);
        let customer = mixed(&[
            &call.customer,
            &echo_of(&call.agent, EchoPath::Telephone, 8, -24.0),
        ]);
        let s = compare_channels(&agent, &customer).expect("enough signal");
        assert!(!s.is_same_audio(), "{s:?}");
    }

    #[test]
    fn silence_on_both_channels_cannot_be_judged() {
        let silence = vec![0.0; ms(10_000)];
        assert_eq!(compare_channels(&silence, &silence), None);
        let hiss_a = noise(ms(10_000), -65.0, 1);
        let hiss_b = noise(ms(10_000), -65.0, 2);
        assert_eq!(compare_channels(&hiss_a, &hiss_b), None);
        let mut detector = SameAudioDetector::new();
        detector.push(&hiss_a, &hiss_b);
        assert_eq!(detector.verdict(), None);
    }

    #[test]
    fn detector_fed_in_random_chunks_agrees_with_compare_channels() {
        let call = en_call();
        let mix = mixed_call();
        let gained = scaled(&mix, -6.0);
        let pairs: [(&[f32], &[f32]); 3] = [
            (&mix, &gained),
            (&call.agent, &call.customer),
            (&call.customer, &call.agent),
        ];
        let mut rng = fastrand::Rng::with_seed(42);
        for (a, b) in pairs {
            let whole = compare_channels(a, b);
            assert!(whole.is_some());
            let mut detector = SameAudioDetector::new();
            let mut at = 0;
            while at < a.len() {
                let to = (at + rng.usize(1..3000)).min(a.len());
                detector.push(&a[at..to], &b[at..to]);
                if at < ms(1000) {
                    assert_eq!(detector.verdict(), None, "not before 3 s of signal");
                }
                at = to;
            }
            assert_eq!(detector.similarity(), whole);
            assert_eq!(detector.verdict(), whole.map(|s| s.is_same_audio()));
        }
    }

    /// Timing, not a check (`cargo test --lib segment::crosstalk -- --ignored --nocapture`):
    /// compare_channels on 30 min of audio, speech from the start and speech only at the end.
    #[test]
    #[ignore]
    fn compare_channels_on_thirty_minutes() {
        let mix = mixed_call();
        let len = ms(30 * 60 * 1000);
        let talk: Vec<f32> = mix.iter().copied().cycle().take(len).collect();
        let start = std::time::Instant::now();
        let s = compare_channels(&talk, &talk);
        println!("30 min of talk: {:?} in {:?}", s, start.elapsed());
        let mut late = vec![0.0; len];
        late[len - mix.len()..].copy_from_slice(&mix);
        let start = std::time::Instant::now();
        let s = compare_channels(&late, &late);
        println!(
            "30 min, talk only in the last 42 s: {:?} in {:?}",
            s,
            start.elapsed()
        );
        let (voice, times) = real_voice();
        let long: Vec<f32> = voice.iter().copied().cycle().take(ms(30_000)).collect();
        let echo = mixed(&[
            &echo_of(&long, EchoPath::Telephone, 8, -24.0),
            &noise(long.len(), -50.0, 1),
        ]);
        let other = aligned_other(&long, 0, long.len(), MAX_ECHO_LAG_SAMPLES);
        let start = std::time::Instant::now();
        let c = classify_span(&echo, &other, MAX_ECHO_LAG_SAMPLES);
        println!(
            "classify_span on 30 s: {c:?} in {:?} ({} utterances)",
            start.elapsed(),
            times.len()
        );
    }

    /// An utterance of the given samples on its channel, scored as a detector would: speech
    /// (echo and own speech alike) where the frame is well above the −50 dBFS line, not in
    /// the pauses.
    fn utterance(samples: &[f32], start: usize) -> Utterance {
        let loud = db_to_power(-44.0) as f64;
        Utterance {
            channel: 1,
            start: crate::audio::CallTime(start as u64),
            samples: samples.to_vec(),
            scores: samples
                .chunks(FRAME_SAMPLES)
                .map(|f| {
                    if energy(f) / f.len() as f64 > loud {
                        0.9
                    } else {
                        0.1
                    }
                })
                .collect(),
            cut: crate::segment::Cut::EndOfInput,
        }
    }

    #[test]
    fn echo_an_utterance_begins_with_is_cut_off_and_own_speech_is_kept() {
        let call = en_call();
        let (agent_turn, customer_turn) = (call.utterances[0], call.utterances[1]);
        // Channel 1 carries the agent's first turn as echo (−24 dB), then the customer's own
        // first turn; the utterance runs from the echo to the end of the customer's words and
        // stops mid-frame, as one closed by the end of the input does.
        let echo = echo_of(&call.agent, EchoPath::Telephone, 20, -24.0);
        let line = noise(call.agent.len(), -50.0, 11);
        let near = mixed(&[&echo, &call.customer, &line]);
        let (start, end) = (agent_turn.1, customer_turn.2 + 100);
        let mut u = utterance(&near[start..end], start);
        let resolution = resolve(&mut u, &call.agent, 0, false);
        let Resolution::Trimmed { removed } = resolution else {
            panic!("expected the leading echo cut off, got {resolution:?}");
        };
        assert_eq!(removed.len(), 1, "{removed:?}");
        assert_eq!(removed[0].start, start);
        // The cut lands just before the customer's first word (the margin keeps its onset).
        let kept_from = u.start.0 as usize;
        assert!(
            kept_from <= customer_turn.1 && kept_from + ms(400) >= customer_turn.1,
            "kept from {} ms, the customer starts at {} ms",
            kept_from / SAMPLES_PER_MS,
            customer_turn.1 / SAMPLES_PER_MS
        );
        assert_eq!(u.end().0 as usize, end, "the end, mid-frame, stays");
        assert_eq!(u.scores.len(), u.samples.len().div_ceil(FRAME_SAMPLES));

        // The customer's turn alone, with no echo before it: kept as it is.
        let mut own = utterance(&near[customer_turn.1..end], customer_turn.1);
        assert_eq!(resolve(&mut own, &call.agent, 0, false), Resolution::Own);
        // Pure echo: dropped.
        let mut pure = utterance(&near[agent_turn.1..agent_turn.2], agent_turn.1);
        assert!(matches!(
            resolve(&mut pure, &call.agent, 0, false),
            Resolution::Dropped(Crosstalk::EchoOf { .. })
        ));
    }

    #[test]
    fn a_second_channel_carrying_the_same_audio_is_dropped_utterance_by_utterance() {
        let call = en_call();
        let (_, s, e) = call.utterances[0];
        let copy = scaled(&call.agent, -3.0);
        let mut u = utterance(&copy[s..e], s);
        assert!(matches!(
            resolve(&mut u, &call.agent, 0, true),
            Resolution::Dropped(Crosstalk::SameAudio { .. })
        ));
        // Without the check (the call is known to be two parties) it is the echo test's.
        let mut u = utterance(&copy[s..e], s);
        assert_eq!(resolve(&mut u, &call.agent, 0, false), Resolution::Own);
    }
}
