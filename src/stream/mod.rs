//! A live call: bytes as a telephony system sends them → per-channel utterances and interim
//! snapshots, one chunk at a time.
//!
//! [`LiveCall`] is the streaming driver of the shared stages (codec → resample → segment →
//! crosstalk check against the other channel, as the batch pipeline does); it does no
//! inference and no I/O, so the gRPC server, sound-card capture and tests drive the
//! same code. Every time it reports comes from the channel's 16 kHz sample counter, so a
//! 30-minute call has exactly the timestamps its audio implies, however the bytes were chunked.

pub mod driver;
pub mod report;
pub mod stabilise;

pub use driver::{
    CallDriver, CallOutput, CallSummary, Completed, DialectOutput, DriverSetup, FinalOutput,
    InterimOutput,
};
pub use report::{AcceptedCall, CallReport, FinalReport};
pub use stabilise::{Interim, Stabiliser};

use crate::audio::codec::{self, Encoding};
use crate::audio::resample::ResampleError;
use crate::audio::{CallTime, Resampler, Role, PIPELINE_RATE_HZ};
use crate::segment::crosstalk::{self, Crosstalk, Resolution};
use crate::segment::{SegmentEvent, Segmenter, Utterance, Vad};
use std::collections::VecDeque;

/// Sample rates a live call may declare: narrow-band telephony up to studio rates.
pub const RATE_RANGE_HZ: std::ops::RangeInclusive<u32> = 8_000..=48_000;
/// Agent and customer at most.
pub const MAX_CHANNELS: usize = 2;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum StreamError {
    #[error("sample_rate_hz {0} is outside 8000..48000")]
    SampleRate(u32),
    #[error("channel_count {0} is not supported (1 = mono, 2 = agent and customer interleaved)")]
    Channels(usize),
    #[error(
        "audio message of {len} bytes is not a whole number of {frame_bytes}-byte frames \
         ({encoding:?}, {channels} channel(s)); send whole sample frames"
    )]
    PartialFrame {
        len: usize,
        frame_bytes: usize,
        encoding: Encoding,
        channels: usize,
    },
    #[error("resampling failed: {0}")]
    Resample(String),
}

impl From<ResampleError> for StreamError {
    fn from(e: ResampleError) -> Self {
        StreamError::Resample(e.to_string())
    }
}

/// What the bytes are: fixed for the life of the call.
#[derive(Debug, Clone, PartialEq)]
pub struct CallFormat {
    pub encoding: Encoding,
    pub sample_rate_hz: u32,
    /// One role per channel, in channel order.
    pub roles: Vec<Role>,
}

impl CallFormat {
    pub fn validate(&self) -> Result<(), StreamError> {
        if !RATE_RANGE_HZ.contains(&self.sample_rate_hz) {
            return Err(StreamError::SampleRate(self.sample_rate_hz));
        }
        if self.roles.is_empty() || self.roles.len() > MAX_CHANNELS {
            return Err(StreamError::Channels(self.roles.len()));
        }
        Ok(())
    }

    /// Bytes of one sample frame (one sample of every channel).
    pub fn frame_bytes(&self) -> usize {
        self.encoding.bytes_per_sample() * self.roles.len()
    }
}

/// A live call as its client opens it: what the audio is, the per-call choices the plan
/// resolves, and what the client wants back.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveRequest {
    /// `None`: the server names the call.
    pub call_id: Option<String>,
    pub format: CallFormat,
    /// Model, adapter, region, language (each `None` for the server's own).
    pub choices: crate::plan::CallRequest,
    pub interim: bool,
    /// Silence that ends an utterance; `None`: the server's.
    pub endpoint_silence_ms: Option<u32>,
    /// The call's wall-clock start (Unix ms), as the telephony system knows it.
    pub started_at_unix_ms: Option<i64>,
}

/// Something the call's audio has made known.
#[derive(Debug, Clone)]
pub enum CallEvent {
    SpeechStart {
        channel: u32,
        role: Role,
        at: CallTime,
    },
    /// An utterance is complete: transcribe it for a final result. `utterance_id` counts the
    /// channel's utterances from 1.
    Utterance {
        role: Role,
        utterance_id: u64,
        utterance: Utterance,
    },
    /// An utterance ended that is the other channel's speech heard again (line echo,
    /// headset bleed, or both channels carrying the same audio): not to be transcribed.
    Crosstalk {
        channel: u32,
        role: Role,
        utterance_id: u64,
        end: CallTime,
    },
}

/// The open utterance of a channel as it stands, for an interim decode.
#[derive(Debug, Clone)]
pub struct InterimSnapshot {
    pub channel: u32,
    pub role: Role,
    pub utterance_id: u64,
    pub start: CallTime,
    pub samples: Vec<f32>,
}

struct ChannelState {
    role: Role,
    resampler: Resampler,
    segmenter: Segmenter,
    /// Utterances begun on this channel; the open one, if any, has this id.
    utterance_id: u64,
    /// Length of the open utterance at its last interim snapshot.
    snapshot_len: usize,
    /// The channel's latest audio at 16 kHz, for judging the other channel's utterances
    /// against it: long enough for the longest utterance plus the echo lag.
    recent: VecDeque<f32>,
    /// Channel clock of `recent[0]`.
    recent_start: u64,
    /// This call's resampled audio of the channel, for the segmenter after every channel's
    /// `recent` has it.
    resampled: Vec<f32>,
}

impl ChannelState {
    fn remember(&mut self, samples: &[f32], keep: usize) {
        self.recent.extend(samples.iter().copied());
        let excess = self.recent.len().saturating_sub(keep);
        self.recent.drain(..excess);
        self.recent_start += excess as u64;
    }
}

/// One live call's audio path.
pub struct LiveCall {
    format: CallFormat,
    channels: Vec<ChannelState>,
    /// Source frames received: the call's length at the source rate.
    frames_in: u64,
    interim_every_samples: usize,
    interleaved: Vec<f32>,
    planar: Vec<f32>,
    segment_events: Vec<SegmentEvent>,
    /// How much of each channel's audio `ChannelState::recent` keeps.
    recent_samples: usize,
    /// Whether the two channels carry the same audio, decided on the call's first seconds of
    /// signal.
    same_audio: crosstalk::SameAudioDetector,
    /// Samples received that were NaN or infinite (replaced by silence).
    non_finite: u64,
}

impl LiveCall {
    /// `interim_every_ms`: how much an open utterance must grow before the next interim
    /// snapshot; 0 turns interim snapshots off.
    pub fn new(format: CallFormat, vad: &Vad, interim_every_ms: u32) -> Result<Self, StreamError> {
        format.validate()?;
        let channels = format
            .roles
            .iter()
            .enumerate()
            .map(|(i, &role)| {
                Ok(ChannelState {
                    role,
                    resampler: Resampler::new(format.sample_rate_hz)?,
                    segmenter: Segmenter::new(vad, i as u32),
                    utterance_id: 0,
                    snapshot_len: 0,
                    recent: VecDeque::new(),
                    recent_start: 0,
                    resampled: Vec::new(),
                })
            })
            .collect::<Result<Vec<_>, StreamError>>()?;
        let keep_ms = vad.config().max_utterance_ms
            + vad.config().pad_ms
            + 2 * crosstalk::MAX_ECHO_LAG_MS
            + 1000;
        Ok(Self {
            channels,
            recent_samples: keep_ms as usize * PIPELINE_RATE_HZ as usize / 1000,
            same_audio: crosstalk::SameAudioDetector::new(),
            frames_in: 0,
            interim_every_samples: interim_every_ms as usize * PIPELINE_RATE_HZ as usize / 1000,
            interleaved: Vec::new(),
            planar: Vec::new(),
            segment_events: Vec::new(),
            non_finite: 0,
            format,
        })
    }

    /// Samples received so far that were NaN or infinite and became silence.
    pub fn non_finite_samples(&self) -> u64 {
        self.non_finite
    }

    pub fn format(&self) -> &CallFormat {
        &self.format
    }

    /// Audio received so far, in milliseconds of call time.
    pub fn audio_ms(&self) -> u64 {
        self.frames_in * 1000 / u64::from(self.format.sample_rate_hz)
    }

    /// Feeds one message of audio bytes (whole sample frames, channels interleaved).
    pub fn push(&mut self, bytes: &[u8], events: &mut Vec<CallEvent>) -> Result<(), StreamError> {
        let frame_bytes = self.format.frame_bytes();
        if !bytes.len().is_multiple_of(frame_bytes) {
            return Err(StreamError::PartialFrame {
                len: bytes.len(),
                frame_bytes,
                encoding: self.format.encoding,
                channels: self.channels.len(),
            });
        }
        // Taken out and put back so the decoded samples can be borrowed while `self` is not.
        let mut interleaved = std::mem::take(&mut self.interleaved);
        interleaved.clear();
        codec::decode(self.format.encoding, bytes, &mut interleaved);
        let result = self.push_samples(&interleaved, events);
        self.interleaved = interleaved;
        result
    }

    /// Feeds decoded samples in [-1, 1], channels interleaved: the entry for sources that are
    /// not byte streams (a sound card delivers samples in its own format). The call's
    /// `encoding` is ignored here. A trailing partial frame is refused like a torn message.
    /// Samples that are not numbers become silence ([`audio::sanitise`](crate::audio::sanitise)),
    /// counted in [`LiveCall::non_finite_samples`] and logged once per call.
    pub fn push_samples(
        &mut self,
        interleaved: &[f32],
        events: &mut Vec<CallEvent>,
    ) -> Result<(), StreamError> {
        let n = self.channels.len();
        if !interleaved.len().is_multiple_of(n) {
            return Err(StreamError::PartialFrame {
                len: interleaved.len() * self.format.encoding.bytes_per_sample(),
                frame_bytes: self.format.frame_bytes(),
                encoding: self.format.encoding,
                channels: n,
            });
        }
        self.frames_in += (interleaved.len() / n) as u64;
        // Every channel's audio is remembered before any is segmented, so that an utterance
        // that ends on one channel is judged against the other's audio up to the same time.
        for c in 0..n {
            self.planar.clear();
            self.planar
                .extend(interleaved.iter().skip(c).step_by(n).copied());
            let bad = crate::audio::sanitise(&mut self.planar) as u64;
            if bad > 0 && self.non_finite == 0 {
                tracing::warn!(
                    channel = c,
                    "the call's audio holds samples that are not numbers (NaN or infinite): replaced by silence"
                );
            }
            self.non_finite += bad;
            let ch = &mut self.channels[c];
            ch.resampled.clear();
            ch.resampler.process(&self.planar, &mut ch.resampled)?;
            let resampled = std::mem::take(&mut ch.resampled);
            ch.remember(&resampled, self.recent_samples);
            ch.resampled = resampled;
        }
        if let [a, b] = self.channels.as_slice() {
            self.same_audio.push(&a.resampled, &b.resampled);
        }
        for c in 0..n {
            let ch = &mut self.channels[c];
            ch.segmenter.push(&ch.resampled, &mut self.segment_events);
            self.drain_segment_events(c, events);
        }
        Ok(())
    }

    /// Ends the call: flushes the resamplers and closes open utterances.
    pub fn finish(&mut self, events: &mut Vec<CallEvent>) -> Result<(), StreamError> {
        for ch in &mut self.channels {
            ch.resampled.clear();
            ch.resampler.finish(&mut ch.resampled)?;
            let resampled = std::mem::take(&mut ch.resampled);
            ch.remember(&resampled, self.recent_samples);
            ch.resampled = resampled;
        }
        for c in 0..self.channels.len() {
            let ch = &mut self.channels[c];
            ch.segmenter.push(&ch.resampled, &mut self.segment_events);
            ch.segmenter.finish(&mut self.segment_events);
            self.drain_segment_events(c, events);
        }
        Ok(())
    }

    /// Whether the second channel should be compared with the first for the same audio:
    /// `Some(sim)` once the call's first seconds of signal showed the line carries the same
    /// audio on both ([`crosstalk::SameAudioDetector`]); until the detector has decided, each
    /// utterance of the second channel is compared on its own.
    fn same_audio(&self, c: usize) -> (Option<crosstalk::ChannelSimilarity>, bool) {
        if c != 1 {
            return (None, false);
        }
        match self.same_audio.verdict() {
            Some(true) => (self.same_audio.similarity(), false),
            Some(false) => (None, false),
            None => (None, true),
        }
    }

    /// How an open utterance's `samples` (from `start` on channel `c`) relate to the other
    /// channel: for interims, which are shown or not, never trimmed.
    fn crosstalk(&mut self, c: usize, start: CallTime, samples: &[f32]) -> Crosstalk {
        if self.channels.len() != 2 {
            return Crosstalk::Own;
        }
        let (same, check_same) = self.same_audio(c);
        if let Some(sim) = same {
            return Crosstalk::SameAudio {
                correlation: sim.correlation,
            };
        }
        let other = &mut self.channels[1 - c];
        let recent_start = other.recent_start as usize;
        let recent = other.recent.make_contiguous();
        crosstalk::judge(samples, start.0 as usize, recent, recent_start, check_same)
    }

    /// The crosstalk rules for a finished utterance of channel `c`, as the batch pipeline
    /// applies them ([`crosstalk::resolve`]).
    fn resolve(&mut self, c: usize, utterance: &mut Utterance) -> Resolution {
        if self.channels.len() != 2 {
            return Resolution::Own;
        }
        let (same, check_same) = self.same_audio(c);
        if let Some(sim) = same {
            return Resolution::Dropped(Crosstalk::SameAudio {
                correlation: sim.correlation,
            });
        }
        let other = &mut self.channels[1 - c];
        let recent_start = other.recent_start as usize;
        let recent = other.recent.make_contiguous();
        crosstalk::resolve(utterance, recent, recent_start, check_same)
    }

    fn drain_segment_events(&mut self, c: usize, events: &mut Vec<CallEvent>) {
        let mut segment_events = std::mem::take(&mut self.segment_events);
        for e in segment_events.drain(..) {
            match e {
                SegmentEvent::SpeechStart { channel, at } => {
                    let ch = &mut self.channels[c];
                    ch.utterance_id += 1;
                    ch.snapshot_len = 0;
                    events.push(CallEvent::SpeechStart {
                        channel,
                        role: ch.role,
                        at,
                    });
                }
                SegmentEvent::Utterance(mut utterance) => {
                    let end = utterance.end();
                    let resolution = self.resolve(c, &mut utterance);
                    let ch = &self.channels[c];
                    if let Resolution::Dropped(judged) = resolution {
                        tracing::debug!(
                            channel = utterance.channel,
                            start_ms = utterance.start.as_ms(),
                            ?judged,
                            "utterance is the other channel's speech: not transcribed"
                        );
                        events.push(CallEvent::Crosstalk {
                            channel: utterance.channel,
                            role: ch.role,
                            utterance_id: ch.utterance_id,
                            end,
                        });
                    } else {
                        events.push(CallEvent::Utterance {
                            role: ch.role,
                            utterance_id: ch.utterance_id,
                            utterance,
                        });
                    }
                }
            }
        }
        self.segment_events = segment_events;
    }

    /// The open utterance of `channel` if it has grown by the interim interval since the
    /// last snapshot (and holds at least that much audio).
    pub fn interim_snapshot(&mut self, channel: usize) -> Option<InterimSnapshot> {
        if self.interim_every_samples == 0 {
            return None;
        }
        let every = self.interim_every_samples;
        let ch = self.channels.get_mut(channel)?;
        let (start, samples) = ch.segmenter.open_utterance()?;
        if samples.len() < ch.snapshot_len + every {
            return None;
        }
        ch.snapshot_len = samples.len();
        let samples = samples.to_vec();
        // Echo is not shown as an interim either: its final will not come.
        if self.crosstalk(channel, start, &samples) != Crosstalk::Own {
            return None;
        }
        let ch = &self.channels[channel];
        Some(InterimSnapshot {
            channel: channel as u32,
            role: ch.role,
            utterance_id: ch.utterance_id,
            start,
            samples,
        })
    }

    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    pub fn role(&self, channel: usize) -> Option<Role> {
        self.channels.get(channel).map(|c| c.role)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format(encoding: Encoding, rate: u32, channels: usize) -> CallFormat {
        CallFormat {
            encoding,
            sample_rate_hz: rate,
            roles: [Role::Agent, Role::Customer, Role::Mixed][..channels].to_vec(),
        }
    }

    #[test]
    fn impossible_formats_are_refused_with_the_field_named() {
        let vad = crate::segment::test_vad();
        let e = LiveCall::new(format(Encoding::Linear16, 1_000_000, 1), &vad, 0).err();
        assert_eq!(e, Some(StreamError::SampleRate(1_000_000)));
        assert!(e.unwrap().to_string().contains("sample_rate_hz"));
        assert_eq!(
            LiveCall::new(format(Encoding::Linear16, 0, 1), &vad, 0).err(),
            Some(StreamError::SampleRate(0))
        );
        assert_eq!(
            LiveCall::new(format(Encoding::Mulaw, 8000, 3), &vad, 0).err(),
            Some(StreamError::Channels(3))
        );
    }

    #[test]
    fn partial_frames_are_refused_and_whole_ones_counted() {
        let mut call = LiveCall::new(
            format(Encoding::Linear16, 8000, 2),
            &crate::segment::test_vad(),
            0,
        )
        .unwrap();
        let mut events = Vec::new();
        let e = call.push(&[0u8; 321], &mut events).unwrap_err();
        assert!(
            matches!(
                e,
                StreamError::PartialFrame {
                    len: 321,
                    frame_bytes: 4,
                    ..
                }
            ),
            "{e}"
        );
        call.push(&[0u8; 3200], &mut events).unwrap();
        assert_eq!(call.audio_ms(), 100);
        call.finish(&mut events).unwrap();
        assert!(
            events.is_empty(),
            "digital silence holds no speech: {events:?}"
        );
    }

    /// A sound card at 48 kHz delivering garbage floats: no panic in the resampler, the bad
    /// samples counted, the clock unmoved, and speech-free garbage yields no utterance.
    #[test]
    fn samples_that_are_not_numbers_become_silence_and_are_counted() {
        let mut call = LiveCall::new(
            format(Encoding::Linear16, 48_000, 2),
            &crate::segment::test_vad(),
            0,
        )
        .unwrap();
        let mut events = Vec::new();
        let mut frames = vec![0f32; 2 * 48_000];
        for (i, s) in frames.iter_mut().enumerate() {
            *s = match i % 7 {
                0 => f32::NAN,
                1 => f32::INFINITY,
                2 => f32::NEG_INFINITY,
                3 => 1e30,
                _ => 0.0,
            };
        }
        for chunk in frames.chunks(960) {
            call.push_samples(chunk, &mut events).unwrap();
        }
        call.finish(&mut events).unwrap();
        let bad = frames.iter().filter(|s| !s.is_finite()).count() as u64;
        assert_eq!(call.non_finite_samples(), bad);
        assert_eq!(call.audio_ms(), 1000);
    }

    /// Drive the clock with silence only and check the one invariant that matters here:
    /// chunking does not move time.
    #[test]
    fn chunk_size_does_not_change_the_call_clock() {
        let bytes = vec![0xFFu8; 8000 * 3]; // 3 s of μ-law silence (0xFF = 0), mono
        let vad = crate::segment::test_vad();
        let mut a = LiveCall::new(format(Encoding::Mulaw, 8000, 1), &vad, 0).unwrap();
        let mut b = LiveCall::new(format(Encoding::Mulaw, 8000, 1), &vad, 0).unwrap();
        let mut events = Vec::new();
        a.push(&bytes, &mut events).unwrap();
        for chunk in bytes.chunks(160) {
            b.push(chunk, &mut events).unwrap();
        }
        assert_eq!(a.audio_ms(), 3000);
        assert_eq!(b.audio_ms(), 3000);
    }
}
