//! One live call from audio to results, whatever carries the audio in and the results out.
//!
//! [`CallDriver`] owns a [`LiveCall`] and turns its events into inference jobs on the shared
//! [`Pool`]: one final decode per utterance (delivered in utterance order) and interim
//! re-decodes of open utterances (stabilised, dropped once their final is under way). It
//! yields typed [`CallOutput`]s; the gRPC call task maps them to protobuf, `capture` prints
//! them. It does no I/O and never blocks: inference runs on the pool's threads, and
//! [`CallDriver::next`] awaits the next result.
//!
//! Two seams are kept deliberately narrow for features that land later:
//! - **setup**: everything per call is in [`DriverSetup`], including the dialect adapter
//!   selected before audio (or the adapters to identify one from the first speech);
//! - **final delivery**: every final passes through [`CallDriver::deliver_final`] exactly
//!   once, in order, normalised with the call's adapter, before any front door sees it
//!   (the gRPC front door forwards it to knowledge lookup right after sending it).
//!
//! A final's text begins with the last `stable_text` its interims showed: the stable prefix is
//! a promise (agent-assist screens and lookups act on it), so the final decode supplies only
//! what follows it ([`stabilise::keep_committed`]).

use super::stabilise::{self, Stabiliser};
use super::{CallEvent, CallFormat, InterimSnapshot, LiveCall, StreamError};
use crate::audio::{CallTime, Role};
use crate::dialect::{Adapter, Dialects, Selection};
use crate::engine::{DecodeConfig, Decoded, EngineError, Pool, Priority, Worker, WINDOW_SAMPLES};
use crate::segment::{identification_audio, Utterance, Vad};
use crate::transcript::Segment;
use futures::stream::{FuturesOrdered, FuturesUnordered};
use futures::StreamExt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Everything a call is set up with; fixed for its life.
#[derive(Clone)]
pub struct DriverSetup {
    pub call_id: String,
    pub format: CallFormat,
    pub vad: Vad,
    /// How much an open utterance must grow before its next interim decode; 0 = no interims.
    pub interim_every_ms: u32,
    /// Index of the model in the pool's engines.
    pub model: usize,
    /// `None`: detect from the first utterance decoded, then keep it for the call.
    pub language: Option<String>,
    pub decode: Arc<DecodeConfig>,
    /// The adapter chosen before audio; `None` while identification is pending. `decode`
    /// and `language` already have the adapter applied.
    pub selection: Option<Selection>,
    /// The adapters as they were when the call began (identification maps into these).
    pub dialects: Arc<Dialects>,
}

/// A result of the call, in the order a listener should see it.
#[derive(Debug, Clone)]
pub enum CallOutput {
    SpeechStart {
        channel: u32,
        role: Role,
        at: CallTime,
    },
    SpeechEnd {
        channel: u32,
        role: Role,
        at: CallTime,
    },
    Interim(InterimOutput),
    Final(FinalOutput),
}

/// The call's dialect adapter, reported once: at the start when selected before audio,
/// else with the first decode that identified it (before that decode's result).
#[derive(Debug, Clone)]
pub struct DialectOutput {
    pub selection: Selection,
    /// The language the call is decoded in.
    pub language: String,
}

/// The open utterance as the latest re-decode hears it.
#[derive(Debug, Clone, PartialEq)]
pub struct InterimOutput {
    pub channel: u32,
    pub role: Role,
    pub start: CallTime,
    pub end: CallTime,
    pub shown: super::Interim,
}

/// One utterance, transcribed for good.
#[derive(Debug, Clone)]
pub struct FinalOutput {
    /// Counts the channel's finals from 0; with the call id and channel it names the segment.
    pub sequence: u64,
    /// Normalised with the adapter, and beginning with the utterance's committed interim
    /// text (`segment.raw_text` keeps whisper's text of the final decode, which may word that
    /// prefix differently).
    pub segment: Segment,
    /// Id of the adapter the final was decoded and normalised with (empty: none).
    pub dialect: String,
    /// From the segmenter closing the utterance to this final being ready.
    pub latency: Duration,
}

/// A decode that came back: its inference time (for metrics), and what it yields, if
/// anything (a failed or empty decode yields nothing).
#[derive(Debug)]
pub struct Completed {
    pub inference: Duration,
    /// The call's adapter, identified by this decode: announce it before `output`.
    pub dialect: Option<DialectOutput>,
    pub output: Option<CallOutput>,
}

/// The call's totals at its end.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CallSummary {
    pub audio_ms: u64,
    pub final_count: u32,
    /// Inference time over audio time.
    pub real_time_factor: f32,
}

/// What an inference job hands back.
struct Decode {
    language: String,
    pieces: Vec<Decoded>,
    busy: Duration,
    /// The adapter the text was decoded with (normalise with it).
    adapter: Option<Arc<Adapter>>,
    /// Set when this job identified the call's dialect.
    identified: Option<Selection>,
}

/// How a job decodes: the call's adapter and language once known, or identify first.
#[derive(Clone)]
struct Plan {
    language: Option<String>,
    decode: Arc<DecodeConfig>,
    adapter: Option<Arc<Adapter>>,
    dialects: Arc<Dialects>,
}

/// A decode job for `samples`; `identify` is the audio to identify the call's language from
/// when the plan has none yet (the utterance's confident speech).
fn decode_job(
    samples: Vec<f32>,
    identify: Option<Vec<f32>>,
    plan: Plan,
) -> impl FnOnce(&mut Worker) -> Result<Decode, EngineError> + Send + 'static {
    move |w: &mut Worker| {
        let started = Instant::now();
        let (language, decode, adapter, identified) = match plan.language {
            Some(l) => (l, plan.decode, plan.adapter, None),
            None => {
                let guess = w.detect_language(identify.as_deref().unwrap_or(&samples))?;
                let sel = plan.dialects.for_detected(&guess.code, guess.probability);
                let decode = sel.decode_identified(&plan.decode, &guess.code);
                let language = match w.engine().resolve_language(&decode.language) {
                    Ok(Some(l)) => l,
                    _ => guess.code.clone(),
                };
                (
                    language,
                    Arc::new(decode),
                    Some(sel.adapter.clone()),
                    Some(sel),
                )
            }
        };
        let pieces = w.transcribe(&samples, &language, &decode)?;
        Ok(Decode {
            language,
            pieces,
            busy: started.elapsed(),
            adapter,
            identified,
        })
    }
}

/// A decode job's outcome, with a worker that died (its sender dropped) as an error.
async fn job_result(
    rx: tokio::sync::oneshot::Receiver<Result<Decode, EngineError>>,
) -> Result<Decode, String> {
    match rx.await {
        Ok(Ok(d)) => Ok(d),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the inference worker failed".into()),
    }
}

struct FinalDone {
    channel: u32,
    role: Role,
    utterance: Utterance,
    /// When the segmenter closed the utterance: the start of finalisation latency.
    closed_at: Instant,
    /// The utterance's last `stable_text` shown in an interim (empty: none): the final keeps it.
    committed: String,
    result: Result<Decode, String>,
}

struct InterimDone {
    snapshot: InterimSnapshot,
    result: Result<Decode, String>,
}

type Pending<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// One live call's decoding state.
pub struct CallDriver<'p> {
    pool: &'p Pool,
    setup: DriverSetup,
    live: LiveCall,
    /// How the next job decodes; fixed once the call's adapter is known.
    plan: Plan,
    /// The adapter, still to be announced.
    announce: Option<DialectOutput>,
    finals: FuturesOrdered<Pending<FinalDone>>,
    interims: FuturesUnordered<Pending<InterimDone>>,
    interim_in_flight: Vec<bool>,
    stabilisers: Vec<(u64, Stabiliser)>,
    /// Highest utterance id per channel sent for finalisation: older interims are stale.
    finalising: Vec<u64>,
    sequences: Vec<u64>,
    final_count: u32,
    busy: Duration,
    events: Vec<CallEvent>,
}

impl<'p> CallDriver<'p> {
    pub fn new(pool: &'p Pool, setup: DriverSetup) -> Result<Self, StreamError> {
        let live = LiveCall::new(setup.format.clone(), &setup.vad, setup.interim_every_ms)?;
        let channels = setup.format.roles.len();
        Ok(Self {
            pool,
            plan: Plan {
                language: setup.language.clone(),
                decode: setup.decode.clone(),
                adapter: setup.selection.as_ref().map(|s| s.adapter.clone()),
                dialects: setup.dialects.clone(),
            },
            announce: setup.selection.as_ref().map(|s| DialectOutput {
                selection: s.clone(),
                language: setup.language.clone().unwrap_or_default(),
            }),
            setup,
            live,
            finals: FuturesOrdered::new(),
            interims: FuturesUnordered::new(),
            interim_in_flight: vec![false; channels],
            stabilisers: (0..channels).map(|_| (0, Stabiliser::new())).collect(),
            finalising: vec![0; channels],
            sequences: vec![0; channels],
            final_count: 0,
            busy: Duration::ZERO,
            events: Vec::new(),
        })
    }

    pub fn setup(&self) -> &DriverSetup {
        &self.setup
    }

    pub fn live(&self) -> &LiveCall {
        &self.live
    }

    /// The call's language once configured or identified.
    pub fn language(&self) -> Option<&str> {
        self.plan.language.as_deref()
    }

    /// The adapter selected before audio, once, to report right after the call is accepted
    /// (an identified one comes with the [`Completed`] that identified it).
    pub fn take_dialect(&mut self) -> Option<DialectOutput> {
        self.announce.take()
    }

    /// Finals submitted and not yet delivered: a front door that can slow its source (gRPC
    /// flow control) stops reading at a limit; a sound card cannot, and does not.
    pub fn pending_finals(&self) -> usize {
        self.finals.len()
    }

    /// Feeds audio bytes in the call's encoding; speech events go to `out` at once.
    pub fn push_bytes(
        &mut self,
        bytes: &[u8],
        out: &mut Vec<CallOutput>,
    ) -> Result<(), StreamError> {
        self.live.push(bytes, &mut self.events)?;
        self.after_audio(out);
        Ok(())
    }

    /// Feeds decoded samples in [-1, 1], channels interleaved.
    pub fn push_samples(
        &mut self,
        interleaved: &[f32],
        out: &mut Vec<CallOutput>,
    ) -> Result<(), StreamError> {
        self.live.push_samples(interleaved, &mut self.events)?;
        self.after_audio(out);
        Ok(())
    }

    /// Ends the audio: closes open utterances and submits their finals. Interims still
    /// running are dropped (their finals supersede them); [`next`](Self::next) then yields
    /// the remaining finals and `None` once all are delivered.
    pub fn finish(&mut self, out: &mut Vec<CallOutput>) -> Result<(), StreamError> {
        let flushed = self.live.finish(&mut self.events);
        self.handle_events(out);
        self.interims.clear();
        self.interim_in_flight.iter_mut().for_each(|f| *f = false);
        flushed
    }

    /// The next decode to come back, finals first; `None` when none is outstanding.
    /// Cancel-safe: a result not returned stays queued.
    pub async fn next(&mut self) -> Option<Completed> {
        let mut done = tokio::select! {
            biased;
            Some(done) = self.finals.next() => self.deliver_final(done),
            Some(done) = self.interims.next() => self.deliver_interim(done),
            else => return None,
        };
        done.dialect = self.announce.take();
        Some(done)
    }

    pub fn summary(&self) -> CallSummary {
        let audio_ms = self.live.audio_ms();
        CallSummary {
            audio_ms,
            final_count: self.final_count,
            real_time_factor: if audio_ms > 0 {
                self.busy.as_secs_f32() / (audio_ms as f32 / 1000.0)
            } else {
                0.0
            },
        }
    }

    fn after_audio(&mut self, out: &mut Vec<CallOutput>) {
        self.handle_events(out);
        self.submit_interims();
    }

    /// Turns the audio path's events into outputs and final jobs.
    fn handle_events(&mut self, out: &mut Vec<CallOutput>) {
        for e in std::mem::take(&mut self.events) {
            match e {
                CallEvent::SpeechStart { channel, role, at } => {
                    out.push(CallOutput::SpeechStart { channel, role, at });
                }
                CallEvent::Utterance {
                    role,
                    utterance_id,
                    utterance,
                } => {
                    let channel = utterance.channel;
                    out.push(CallOutput::SpeechEnd {
                        channel,
                        role,
                        at: utterance.end(),
                    });
                    self.finalising[channel as usize] = utterance_id;
                    self.submit_final(role, utterance_id, utterance);
                }
                CallEvent::Crosstalk {
                    channel,
                    role,
                    utterance_id,
                    end,
                } => {
                    // The other channel's speech heard again: it ends, and is not transcribed.
                    out.push(CallOutput::SpeechEnd {
                        channel,
                        role,
                        at: end,
                    });
                    self.finalising[channel as usize] = utterance_id;
                }
            }
        }
    }

    fn submit_final(&mut self, role: Role, utterance_id: u64, utterance: Utterance) {
        let identify = self
            .plan
            .language
            .is_none()
            .then(|| identification_audio(std::iter::once(&utterance), WINDOW_SAMPLES));
        let job = decode_job(utterance.samples.clone(), identify, self.plan.clone());
        let rx = self.pool.submit(self.setup.model, Priority::Final, job);
        let channel = utterance.channel;
        let closed_at = Instant::now();
        // Read now: no interim of this utterance is shown after this (`finalising`), and the
        // stabiliser moves on to the next utterance before this final may be delivered.
        let committed = match &self.stabilisers[channel as usize] {
            (id, stabiliser) if *id == utterance_id => stabiliser.stable_text(),
            _ => String::new(),
        };
        self.finals.push_back(Box::pin(async move {
            let result = match rx {
                Err(e) => Err(e.to_string()),
                Ok(rx) => job_result(rx).await,
            };
            FinalDone {
                channel,
                role,
                utterance,
                closed_at,
                committed,
                result,
            }
        }));
    }

    /// Starts interim decodes of channels that have grown enough and have none running.
    fn submit_interims(&mut self) {
        for c in 0..self.live.channel_count() {
            if self.interim_in_flight[c] {
                continue;
            }
            let Some(snapshot) = self.live.interim_snapshot(c) else {
                continue;
            };
            // Interims favour speed: no temperature fallback, no word times.
            let mut plan = self.plan.clone();
            let mut decode = (*plan.decode).clone();
            decode.temperature_fallback = false;
            decode.word_timestamps = false;
            decode.fit_window = true;
            plan.decode = Arc::new(decode);
            let job = decode_job(snapshot.samples.clone(), None, plan);
            let Ok(rx) = self.pool.submit(self.setup.model, Priority::Interim, job) else {
                continue; // a skipped interim costs nothing; the final still comes
            };
            self.interim_in_flight[c] = true;
            self.interims.push(Box::pin(async move {
                let result = job_result(rx).await;
                InterimDone { snapshot, result }
            }));
        }
    }

    /// Counts a decode's inference time and, from the first decode that identified it,
    /// fixes the call's dialect adapter and language for every later job (and queues the
    /// announcement).
    fn account(&mut self, d: &Decode) {
        self.busy += d.busy;
        if self.plan.language.is_some() {
            return;
        }
        let Some(sel) = &d.identified else {
            return;
        };
        let mut decode = sel.decode_identified(&self.setup.decode, &d.language);
        decode.language = d.language.clone();
        tracing::info!(call_id = %self.setup.call_id, language = %d.language, dialect = %sel.adapter.id(), reason = %sel.reason, "dialect identified");
        self.plan.language = Some(d.language.clone());
        self.plan.decode = Arc::new(decode);
        self.plan.adapter = Some(sel.adapter.clone());
        self.announce = Some(DialectOutput {
            selection: sel.clone(),
            language: d.language.clone(),
        });
    }

    /// The one place every final passes, in utterance order, exactly once: it gets its
    /// sequence number here. Knowledge forwarding belongs here, so that every front door
    /// forwards the same segments with the same ids.
    ///
    /// The final keeps what the utterance's interims committed: its text is that prefix and
    /// then what the final decode heard after it, its words likewise; a decode that failed or
    /// heard nothing still yields the committed text, so a client never sees it taken back.
    fn deliver_final(&mut self, done: FinalDone) -> Completed {
        let (inference, adapter, pieces) = match done.result {
            Ok(decode) => {
                self.account(&decode);
                (decode.busy, decode.adapter, decode.pieces)
            }
            Err(e) => {
                // One utterance failing to decode must not end the call: report and go on.
                tracing::error!(call_id = %self.setup.call_id, channel = done.channel, "final decode failed: {e}");
                (Duration::ZERO, self.plan.adapter.clone(), Vec::new())
            }
        };
        let decoded =
            Segment::from_utterance(done.channel, done.role, done.utterance.start, pieces);
        let segment = match decoded {
            Some(mut segment) => {
                if let Some(adapter) = &adapter {
                    segment.normalise(adapter);
                }
                if !done.committed.is_empty() {
                    let text = stabilise::keep_committed(&done.committed, &segment.text);
                    if text != segment.text {
                        tracing::debug!(call_id = %self.setup.call_id, channel = done.channel, committed = %done.committed, decoded = %segment.text, "final reworded the committed prefix; the prefix is kept");
                    }
                    segment.text = text;
                    segment.words =
                        stabilise::keep_committed_words(&done.committed, &segment.words);
                }
                segment
            }
            None if done.committed.is_empty() => {
                return Completed {
                    inference,
                    dialect: None,
                    output: None,
                }
            }
            // Whisper's text is empty, so `raw_text` is; no word times and no confidence are
            // known for what the interims committed.
            None => Segment {
                channel: done.channel,
                role: done.role,
                start_ms: done.utterance.start.as_ms(),
                end_ms: done.utterance.end().as_ms(),
                text: done.committed.clone(),
                raw_text: String::new(),
                confidence: 0.0,
                words: Vec::new(),
            },
        };
        let seq = &mut self.sequences[done.channel as usize];
        let sequence = *seq;
        *seq += 1;
        self.final_count += 1;
        tracing::debug!(call_id = %self.setup.call_id, channel = done.channel, sequence, text = %segment.text, "final");
        Completed {
            inference,
            dialect: None,
            output: Some(CallOutput::Final(FinalOutput {
                sequence,
                segment,
                dialect: adapter.map(|a| a.id().to_owned()).unwrap_or_default(),
                latency: done.closed_at.elapsed(),
            })),
        }
    }

    fn deliver_interim(&mut self, done: InterimDone) -> Completed {
        let c = done.snapshot.channel as usize;
        self.interim_in_flight[c] = false;
        let decode = match done.result {
            Ok(decode) => decode,
            Err(e) => {
                // A lost interim costs nothing (the final still comes), but say why.
                tracing::debug!(call_id = %self.setup.call_id, channel = c, "interim decode failed: {e}");
                return Completed {
                    inference: Duration::ZERO,
                    dialect: None,
                    output: None,
                };
            }
        };
        self.account(&decode);
        let nothing = Completed {
            inference: decode.busy,
            dialect: None,
            output: None,
        };
        if done.snapshot.utterance_id <= self.finalising[c] {
            return nothing; // its final is already on the way
        }
        let text = decode
            .pieces
            .iter()
            .map(|p| p.text.trim())
            .filter(|t| !t.is_empty())
            .fold(String::new(), |acc, t| {
                if acc.is_empty() {
                    t.to_owned()
                } else {
                    crate::engine::join_text(&acc, t)
                }
            });
        if text.is_empty() {
            return nothing;
        }
        // Interims read like the final will: in the adapter's written form.
        let text = match &decode.adapter {
            Some(a) => a.normalise(&text),
            None => text,
        };
        let (id, stabiliser) = &mut self.stabilisers[c];
        if *id != done.snapshot.utterance_id {
            *id = done.snapshot.utterance_id;
            stabiliser.reset();
        }
        let shown = stabiliser.update(&text);
        let start = done.snapshot.start;
        Completed {
            inference: decode.busy,
            dialect: None,
            output: Some(CallOutput::Interim(InterimOutput {
                channel: done.snapshot.channel,
                role: done.snapshot.role,
                start,
                end: start + done.snapshot.samples.len() as u64,
                shown,
            })),
        }
    }
}
