//! The endpointing state machine around the detector's frame scores.

use super::silero::{SileroModel, SileroState};
use super::tones::ToneDetector;
use super::{Vad, VadConfig, FRAME_SAMPLES};
use crate::audio::CallTime;
use std::collections::VecDeque;
use std::sync::Arc;

/// Why an utterance ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Endpoint silence after speech.
    Endpoint,
    /// Reached `max_utterance_ms`; the speaker goes on in the next utterance.
    MaxLength,
    /// The input ended (end of file, stream closed) during speech.
    EndOfInput,
}

/// A stretch of one channel that holds speech, ready for the recogniser.
#[derive(Debug, Clone)]
pub struct Utterance {
    pub channel: u32,
    /// Position of `samples[0]` on the channel's clock.
    pub start: CallTime,
    pub samples: Vec<f32>,
    /// The detector's speech probability for each [`FRAME_SAMPLES`] frame of `samples`
    /// (the last one may cover a shorter tail).
    pub scores: Vec<f32>,
    pub cut: Cut,
}

impl Utterance {
    pub fn end(&self) -> CallTime {
        self.start + self.samples.len() as u64
    }

    /// The detector's mean speech probability over the utterance (1 for fixed windows,
    /// which were not scored).
    pub fn mean_score(&self) -> f32 {
        if self.scores.is_empty() {
            return 1.0;
        }
        self.scores.iter().sum::<f32>() / self.scores.len() as f32
    }
}

#[derive(Debug, Clone)]
pub enum SegmentEvent {
    /// Speech began (padding included) at `at`.
    SpeechStart { channel: u32, at: CallTime },
    /// Speech ended; the utterance is complete.
    Utterance(Utterance),
}

struct Frame {
    voiced: bool,
    energy: f32,
    score: f32,
    /// A telephone key tone ([`ToneDetector`]).
    tone: bool,
}

struct Open {
    start: CallTime,
    samples: Vec<f32>,
    frames: Vec<Frame>,
    /// Frame index (within `frames`, counting only frames after the pre-roll) of the last voiced frame + 1.
    voiced_end: usize,
    silence_run: usize,
}

/// Incremental voice-activity segmenter for one channel.
pub struct Segmenter {
    cfg: VadConfig,
    channel: u32,
    model: Arc<SileroModel>,
    detector: SileroState,
    tones: ToneDetector,
    frame: Vec<f32>,
    /// Probabilities of the pre-roll's frames, oldest first.
    preroll_scores: VecDeque<f32>,
    /// Samples consumed into whole frames so far: the channel clock.
    clock: u64,
    /// Recent audio kept for the leading pad; bounded by `pad_samples`.
    preroll: VecDeque<f32>,
    open: Option<Open>,
    pad_samples: usize,
    pad_frames: usize,
    endpoint_frames: usize,
    min_voiced_frames: usize,
    max_samples: usize,
    /// `min_level_dbfs` as mean-square energy.
    min_energy: f32,
}

fn ms_to_frames(ms: u32) -> usize {
    (ms as usize * 16).div_ceil(FRAME_SAMPLES)
}

impl Segmenter {
    pub fn new(vad: &Vad, channel: u32) -> Self {
        let cfg = vad.config().clone();
        // Whole frames, so that an utterance's samples and its frame list stay aligned.
        let pad_frames = ms_to_frames(cfg.pad_ms);
        let pad_samples = pad_frames * FRAME_SAMPLES;
        Self {
            channel,
            detector: vad.model().new_state(),
            tones: ToneDetector::new(),
            model: vad.model().clone(),
            frame: Vec::with_capacity(FRAME_SAMPLES),
            preroll_scores: VecDeque::with_capacity(pad_frames + 1),
            clock: 0,
            preroll: VecDeque::with_capacity(pad_samples + FRAME_SAMPLES),
            open: None,
            pad_samples,
            pad_frames,
            endpoint_frames: ms_to_frames(cfg.endpoint_silence_ms).max(1),
            min_voiced_frames: ms_to_frames(cfg.min_speech_ms),
            max_samples: cfg.max_utterance_ms as usize * 16,
            min_energy: 10f32.powf(cfg.min_level_dbfs / 10.0),
            cfg,
        }
    }

    pub fn config(&self) -> &VadConfig {
        &self.cfg
    }

    /// The channel clock: every sample pushed so far that has been through the detector.
    pub fn position(&self) -> CallTime {
        CallTime(self.clock)
    }

    /// The utterance being spoken now, if any: for interim decoding of live streams.
    pub fn open_utterance(&self) -> Option<(CallTime, &[f32])> {
        self.open.as_ref().map(|o| (o.start, o.samples.as_slice()))
    }

    /// Feeds 16 kHz samples; appends any events they complete.
    pub fn push(&mut self, samples: &[f32], events: &mut Vec<SegmentEvent>) {
        let mut rest = samples;
        while !rest.is_empty() {
            let take = (FRAME_SAMPLES - self.frame.len()).min(rest.len());
            self.frame.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.frame.len() == FRAME_SAMPLES {
                let frame = std::mem::take(&mut self.frame);
                self.process_frame(&frame, events);
                self.frame = frame;
                self.frame.clear();
            }
        }
    }

    /// Ends the input: a partial last frame is scored as padded, an open utterance is closed.
    pub fn finish(&mut self, events: &mut Vec<SegmentEvent>) {
        let tail = self.frame.len();
        if tail > 0 {
            let mut frame = std::mem::take(&mut self.frame);
            frame.resize(FRAME_SAMPLES, 0.0);
            self.process_frame(&frame, events);
            // The zero padding is not audio: take it back off the clock and the open utterance.
            let pad = (FRAME_SAMPLES - tail) as u64;
            self.clock -= pad;
            if let Some(open) = self.open.as_mut() {
                let keep = open.samples.len().saturating_sub(pad as usize);
                open.samples.truncate(keep);
            }
        }
        if let Some(open) = self.open.take() {
            self.close(open, Cut::EndOfInput, events);
        }
    }

    fn process_frame(&mut self, frame: &[f32], events: &mut Vec<SegmentEvent>) {
        let mut scored = [0f32; FRAME_SAMPLES];
        for (d, s) in scored.iter_mut().zip(frame) {
            // The detector was trained on [-1, 1]; resampler overshoot can exceed it slightly.
            *d = s.clamp(-1.0, 1.0);
        }
        let energy = frame.iter().map(|s| s * s).sum::<f32>() / FRAME_SAMPLES as f32;
        // Score every frame so the detector's context stays continuous, gate on level after.
        let score = self.model.predict(&mut self.detector, &scored);
        // Key tones have the rhythm of syllables and fool the detector; they are never speech.
        let tone = self.tones.is_key_tone(frame);
        let loud = energy >= self.min_energy && !tone;
        let starts = score >= self.cfg.threshold && loud;
        let continues = score >= self.cfg.end_threshold && loud;
        let frame_start = self.clock;
        self.clock += FRAME_SAMPLES as u64;

        match self.open.as_mut() {
            None if starts => {
                let lead: Vec<f32> = self.preroll.iter().copied().collect();
                let start = CallTime(frame_start - lead.len() as u64);
                let mut samples = Vec::with_capacity(self.max_samples + FRAME_SAMPLES);
                samples.extend_from_slice(&lead);
                samples.extend_from_slice(frame);
                // Pre-roll frames count as unvoiced history so cuts never land inside them.
                let lead_frames = lead.len() / FRAME_SAMPLES;
                let skip = self.preroll_scores.len().saturating_sub(lead_frames);
                let mut frames: Vec<Frame> = self
                    .preroll_scores
                    .iter()
                    .skip(skip)
                    .map(|&score| Frame {
                        voiced: false,
                        energy: f32::MAX,
                        score,
                        tone: false,
                    })
                    .collect();
                frames.push(Frame {
                    voiced: true,
                    energy,
                    score,
                    tone,
                });
                events.push(SegmentEvent::SpeechStart {
                    channel: self.channel,
                    at: start,
                });
                self.open = Some(Open {
                    start,
                    voiced_end: frames.len(),
                    samples,
                    frames,
                    silence_run: 0,
                });
            }
            None => {}
            Some(open) => {
                open.samples.extend_from_slice(frame);
                let voiced = continues;
                open.frames.push(Frame {
                    voiced,
                    energy,
                    score,
                    tone,
                });
                if voiced {
                    open.silence_run = 0;
                    open.voiced_end = open.frames.len();
                } else {
                    open.silence_run += 1;
                }
                if open.silence_run >= self.endpoint_frames {
                    let open = self.open.take().expect("matched Some above");
                    self.close(open, Cut::Endpoint, events);
                } else if open.samples.len() >= self.max_samples {
                    self.split_at_quietest(events);
                }
            }
        }

        self.preroll.extend(frame.iter().copied());
        while self.preroll.len() > self.pad_samples {
            self.preroll.pop_front();
        }
        self.preroll_scores.push_back(score);
        while self.preroll_scores.len() > self.pad_frames {
            self.preroll_scores.pop_front();
        }
    }

    /// Emits the open utterance up to its quietest frame in the last third and keeps the rest open.
    fn split_at_quietest(&mut self, events: &mut Vec<SegmentEvent>) {
        let open = self.open.as_mut().expect("called with an open utterance");
        let n = open.frames.len();
        let from = (n * 2 / 3).max(1);
        let cut_frame = (from..n)
            .min_by(|&a, &b| open.frames[a].energy.total_cmp(&open.frames[b].energy))
            .unwrap_or(n - 1);
        // Samples and frames are aligned: every frame pushed is whole (see `pad_frames`).
        let cut_sample = cut_frame * FRAME_SAMPLES;
        let tail_samples = open.samples.split_off(cut_sample);
        let tail_frames = open.frames.split_off(cut_frame);
        let head = Utterance {
            channel: self.channel,
            start: open.start,
            samples: std::mem::take(&mut open.samples),
            scores: open.frames.iter().map(|f| f.score).collect(),
            cut: Cut::MaxLength,
        };
        let tail_voiced_end = tail_frames
            .iter()
            .rposition(|f| f.voiced)
            .map_or(0, |i| i + 1);
        let new_start = head.end();
        *open = Open {
            start: new_start,
            samples: tail_samples,
            silence_run: tail_frames.len() - tail_voiced_end,
            voiced_end: tail_voiced_end,
            frames: tail_frames,
        };
        let mut samples = Vec::with_capacity(self.max_samples + FRAME_SAMPLES);
        samples.extend_from_slice(&open.samples);
        open.samples = samples;
        events.push(SegmentEvent::Utterance(head));
        events.push(SegmentEvent::SpeechStart {
            channel: self.channel,
            at: new_start,
        });
    }

    fn close(&self, mut open: Open, cut: Cut, events: &mut Vec<SegmentEvent>) {
        let voiced = open.frames.iter().filter(|f| f.voiced).count();
        if voiced < self.min_voiced_frames.max(1) {
            return;
        }
        // A dialled number: the gaps between its tones carry the detector's score, the
        // tones themselves are a good part of the stretch.
        let tones = open.frames.iter().filter(|f| f.tone).count();
        if tones * 4 >= open.frames.len() {
            return;
        }
        // Keep `pad` after the last voiced frame, drop the rest of the trailing silence.
        let keep_frames = (open.voiced_end + self.pad_frames).min(open.frames.len());
        let keep = (keep_frames * FRAME_SAMPLES).min(open.samples.len());
        open.samples.truncate(keep);
        let frames = open.samples.len().div_ceil(FRAME_SAMPLES);
        events.push(SegmentEvent::Utterance(Utterance {
            channel: self.channel,
            start: open.start,
            samples: open.samples,
            scores: open.frames.iter().take(frames).map(|f| f.score).collect(),
            cut,
        }));
    }
}

/// Mean speech probability at or above which an utterance counts as confident speech for
/// language identification. Whole utterances, not frames: whisper identified a 1.6 s Mandarin
/// clip at p = 0.97 but its confident frames alone, spliced, at 0.19 (BENCHMARKS.md).
pub const IDENTIFY_MIN_SCORE: f32 = 0.6;
/// With less confident speech than this (1 s), all of the utterances' audio is used instead
/// (a few short answers are better evidence than nothing).
const IDENTIFY_MIN_SAMPLES: usize = 16_000;

/// Up to `limit` samples of `utterances`' confident speech, in order: what a language is
/// identified from, in batch (a channel's utterances) and live calls (the first utterance)
/// alike, so that a call is not switched to a language by music or tones the detector let
/// through.
pub fn identification_audio<'a>(
    utterances: impl Iterator<Item = &'a Utterance> + Clone,
    limit: usize,
) -> Vec<f32> {
    let confident: Vec<f32> = utterances
        .clone()
        .filter(|u| u.mean_score() >= IDENTIFY_MIN_SCORE)
        .flat_map(|u| u.samples.iter().copied())
        .take(limit)
        .collect();
    if confident.len() >= IDENTIFY_MIN_SAMPLES.min(limit) {
        return confident;
    }
    utterances
        .flat_map(|u| u.samples.iter().copied())
        .take(limit)
        .collect()
}

/// Runs a whole channel through a fresh segmenter: the batch path.
pub fn segment_all(vad: &Vad, channel: u32, samples: &[f32]) -> Vec<Utterance> {
    let mut seg = Segmenter::new(vad, channel);
    let mut events = Vec::new();
    seg.push(samples, &mut events);
    seg.finish(&mut events);
    events
        .into_iter()
        .filter_map(|e| match e {
            SegmentEvent::Utterance(u) => Some(u),
            SegmentEvent::SpeechStart { .. } => None,
        })
        .collect()
}
