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
//! - **setup**: everything per call is in [`DriverSetup`], its decisions in one
//!   [`CallPlan`] (the adapter selected before audio, or the adapters to identify one from the
//!   first speech);
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
use crate::dialect::{Adapter, Selection};
use crate::engine::{Decoded, EngineError, Pool, Priority, Recognizer, Window, WINDOW_SAMPLES};
use crate::plan::{CallPlan, Language};
use crate::segment::{identification_audio, Utterance, Vad};
use crate::transcript::{Numbering, Segment};
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
    /// Index of the plan's model in the pool.
    pub model: usize,
    /// Model, settings, language and adapter; a language still to identify is identified
    /// from the first utterance decoded, then kept for the call.
    pub plan: CallPlan,
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
    /// The plan the text was decoded with (its adapter normalises the text).
    plan: Arc<CallPlan>,
    /// This job identified the call's language: `plan` is the call's from now on.
    identified: bool,
    pieces: Vec<Decoded>,
    busy: Duration,
}

impl Decode {
    fn adapter(&self) -> Option<&Arc<Adapter>> {
        self.plan.selection.as_ref().map(|s| &s.adapter)
    }
}

/// A decode job for `samples` with `plan`; `identify` is the audio to identify the call's
/// language from when the plan has none yet (the utterance's confident speech).
fn decode_job(
    samples: Vec<f32>,
    identify: Option<Vec<f32>>,
    plan: Arc<CallPlan>,
) -> impl FnOnce(&mut dyn Recognizer) -> Result<Decode, EngineError> + Send + 'static {
    move |r: &mut dyn Recognizer| {
        let started = Instant::now();
        let (plan, identified) = match plan.language {
            Language::Fixed { .. } => (plan, false),
            Language::Identify => {
                let guess = r.detect_language(identify.as_deref().unwrap_or(&samples))?;
                (Arc::new(plan.identified(&guess)), true)
            }
        };
        let language = plan.language_code().unwrap_or("auto");
        let pieces = r.transcribe(&samples, language, &plan.decode, Window::Utterance)?;
        Ok(Decode {
            plan,
            identified,
            pieces,
            busy: started.elapsed(),
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
    /// How the next final decodes; fixed once the call's language is known.
    plan: Arc<CallPlan>,
    /// `plan` with the interim settings ([`crate::engine::DecodeConfig::for_interim`]).
    interim_plan: Arc<CallPlan>,
    /// The adapter, still to be announced.
    announce: Option<DialectOutput>,
    finals: FuturesOrdered<Pending<FinalDone>>,
    interims: FuturesUnordered<Pending<InterimDone>>,
    interim_in_flight: Vec<bool>,
    stabilisers: Vec<(u64, Stabiliser)>,
    /// Highest utterance id per channel sent for finalisation: older interims are stale.
    finalising: Vec<u64>,
    numbering: Numbering,
    final_count: u32,
    busy: Duration,
    events: Vec<CallEvent>,
}

impl<'p> CallDriver<'p> {
    pub fn new(pool: &'p Pool, setup: DriverSetup) -> Result<Self, StreamError> {
        let live = LiveCall::new(setup.format.clone(), &setup.vad, setup.interim_every_ms)?;
        let channels = setup.format.roles.len();
        let plan = Arc::new(setup.plan.clone());
        Ok(Self {
            pool,
            interim_plan: Arc::new(plan.for_interims()),
            announce: plan.selection.as_ref().map(|s| DialectOutput {
                selection: s.clone(),
                language: plan.language_code().unwrap_or_default().to_owned(),
            }),
            plan,
            setup,
            live,
            finals: FuturesOrdered::new(),
            interims: FuturesUnordered::new(),
            interim_in_flight: vec![false; channels],
            stabilisers: (0..channels).map(|_| (0, Stabiliser::new())).collect(),
            finalising: vec![0; channels],
            numbering: Numbering::default(),
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
        self.plan.language_code()
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
        let identify = (self.plan.language == Language::Identify)
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
            let job = decode_job(snapshot.samples.clone(), None, self.interim_plan.clone());
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
        if self.plan.language != Language::Identify || !d.identified {
            return;
        }
        let language = d.plan.language_code().unwrap_or_default().to_owned();
        tracing::info!(call_id = %self.setup.call_id, %language, dialect = %d.plan.adapter_id(), "language identified");
        // Interims decode with the identified plan too; an interim identifies with interim
        // settings, so the final plan is rebuilt from the call's own.
        let plan = match &d.plan.identified {
            Some(guess) => Arc::new(self.plan.identified(guess)),
            None => d.plan.clone(),
        };
        self.announce = plan.selection.as_ref().map(|s| DialectOutput {
            selection: s.clone(),
            language,
        });
        self.interim_plan = Arc::new(plan.for_interims());
        self.plan = plan;
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
                (decode.busy, decode.adapter().cloned(), decode.pieces)
            }
            Err(e) => {
                // One utterance failing to decode must not end the call: report and go on.
                tracing::error!(call_id = %self.setup.call_id, channel = done.channel, "final decode failed: {e}");
                let adapter = self.plan.selection.as_ref().map(|s| s.adapter.clone());
                (Duration::ZERO, adapter, Vec::new())
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
        let sequence = self.numbering.next(done.channel);
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
        let text = match decode.adapter() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::codec::Encoding;
    use crate::engine::scripted::{self, Request, Scripted};
    use crate::engine::ModelInfo;
    use crate::plan::CallRequest;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A real two-party call, mixed to mono at 8 kHz (41.7 s, eleven turns).
    fn call_audio() -> (u32, Vec<f32>) {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/audio-fixtures/calls/en_call_8k_mono.wav"
        );
        let audio = crate::audio::wav::read_wav(std::path::Path::new(path)).unwrap();
        (
            audio.sample_rate_hz,
            audio.channels.into_iter().next().unwrap(),
        )
    }

    fn plan(model: &Scripted, request: CallRequest, dialects: bool) -> CallPlan {
        let d = dialects.then(|| {
            Arc::new(crate::dialect::Dialects::load(&Default::default(), &|_: &str| true).unwrap())
        });
        let models: [ModelInfo; 1] = [crate::engine::Model::info(model)];
        CallPlan::resolve(
            &request,
            &crate::engine::DecodeConfig::default(),
            d,
            models.as_slice(),
        )
        .unwrap()
    }

    fn english() -> CallRequest {
        CallRequest {
            language: Some("en".into()),
            ..CallRequest::default()
        }
    }

    /// Streams the call in 20 ms chunks, ends it, and collects every output in order.
    async fn run(
        pool: &Pool,
        plan: CallPlan,
        interim_every_ms: u32,
    ) -> (Vec<CallOutput>, Vec<DialectOutput>, CallSummary) {
        let (rate, samples) = call_audio();
        let setup = DriverSetup {
            call_id: "call-1".into(),
            format: CallFormat {
                encoding: Encoding::Linear16,
                sample_rate_hz: rate,
                roles: vec![Role::Mixed],
            },
            vad: crate::segment::test_vad(),
            interim_every_ms,
            model: 0,
            plan,
        };
        let mut driver = CallDriver::new(pool, setup).unwrap();
        let mut outputs = Vec::new();
        let mut dialects: Vec<DialectOutput> = driver.take_dialect().into_iter().collect();
        let mut collect = |done: Completed, outputs: &mut Vec<CallOutput>| {
            dialects.extend(done.dialect);
            outputs.extend(done.output);
        };
        let mut events = Vec::new();
        for chunk in samples.chunks(rate as usize / 50) {
            driver.push_samples(chunk, &mut events).unwrap();
            outputs.append(&mut events);
            // Take what is ready without waiting, as a front door's select loop does.
            while let Some(Some(done)) = futures::FutureExt::now_or_never(driver.next()) {
                collect(done, &mut outputs);
            }
        }
        driver.finish(&mut events).unwrap();
        outputs.append(&mut events);
        while let Some(done) = driver.next().await {
            collect(done, &mut outputs);
        }
        (outputs, dialects, driver.summary())
    }

    fn finals(outputs: &[CallOutput]) -> Vec<&FinalOutput> {
        outputs
            .iter()
            .filter_map(|o| match o {
                CallOutput::Final(f) => Some(f),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn finals_arrive_in_utterance_order_even_when_later_ones_decode_first() {
        // Longer utterances take longer: with two workers, a short utterance queued behind a
        // long one finishes first, and must still be delivered after it.
        let model = Scripted::new("fake", "en", |samples, _| {
            std::thread::sleep(Duration::from_micros(samples.len() as u64 / 2));
            Ok(scripted::whole(
                &format!("{} samples", samples.len()),
                samples,
            ))
        });
        let pool = Pool::start(vec![model.clone()], 2, 1, 64).unwrap();
        let (outputs, _, summary) = run(&pool, plan(&model, english(), false), 0).await;
        let finals = finals(&outputs);
        assert!(finals.len() >= 6, "{} finals", finals.len());
        assert_eq!(summary.final_count as usize, finals.len());
        for (i, f) in finals.iter().enumerate() {
            assert_eq!(f.sequence, i as u64, "numbered in delivery order");
            let samples = (f.segment.end_ms - f.segment.start_ms) * 16;
            assert_eq!(
                f.segment.text,
                format!("{samples} samples"),
                "final {i} is its own utterance's"
            );
        }
        assert!(finals
            .windows(2)
            .all(|w| w[0].segment.start_ms < w[1].segment.start_ms));
        // Every speech end precedes the final of that utterance.
        let mut open = 0i32;
        for o in &outputs {
            match o {
                CallOutput::SpeechStart { .. } => open += 1,
                CallOutput::SpeechEnd { .. } => open -= 1,
                _ => {}
            }
            assert!((0..=1).contains(&open), "speech events nest");
        }
        // Finals decode in the plan's language with its settings: whole windows, word times.
        for r in model.requests() {
            match r {
                Request::Transcribe {
                    language,
                    window,
                    word_timestamps,
                    ..
                } => {
                    assert_eq!(
                        (language.as_str(), window, word_timestamps),
                        ("en", Window::Utterance, true)
                    );
                }
                Request::Detect { .. } => panic!("a fixed language is never identified"),
            }
        }
    }

    #[tokio::test]
    async fn interims_use_the_interim_settings_and_stop_once_their_final_is_under_way() {
        let model = Scripted::new("fake", "en", |samples, _| {
            Ok(scripted::whole("hello there", samples))
        });
        let pool = Pool::start(vec![model.clone()], 1, 1, 64).unwrap();
        let (outputs, _, _) = run(&pool, plan(&model, english(), false), 500).await;
        let interims = outputs
            .iter()
            .filter(|o| matches!(o, CallOutput::Interim(_)))
            .count();
        assert!(interims > 0, "interims are produced");
        // Fitted windows and no word times for interims; the finals keep the call's settings.
        let requests = model.requests();
        let fitted = requests
            .iter()
            .filter(|r| {
                matches!(
                    r,
                    Request::Transcribe {
                        fit_window: true,
                        word_timestamps: false,
                        ..
                    }
                )
            })
            .count();
        let finals = finals(&outputs);
        assert!(fitted >= interims);
        assert_eq!(
            requests.len() - fitted,
            finals.len(),
            "one final decode per final"
        );
        // No interim of an utterance is shown after its final.
        let mut finalised_until = 0;
        for o in &outputs {
            match o {
                CallOutput::Final(f) => finalised_until = f.segment.end_ms,
                CallOutput::Interim(i) => assert!(i.start.as_ms() >= finalised_until),
                _ => {}
            }
        }
    }

    #[tokio::test]
    async fn the_language_is_identified_once_and_the_adapter_announced_before_its_first_final() {
        let model = Scripted::new("fake", "zh", |samples, language| {
            Ok(scripted::whole(&format!("[{language}] 你好"), samples))
        });
        let pool = Pool::start(vec![model.clone()], 1, 1, 64).unwrap();
        let plan = plan(&model, CallRequest::default(), true);
        assert_eq!(plan.language, Language::Identify);
        let (outputs, dialects, _) = run(&pool, plan, 0).await;
        assert_eq!(dialects.len(), 1, "announced once: {dialects:?}");
        assert_eq!(dialects[0].selection.adapter.id(), "putonghua");
        assert_eq!(dialects[0].language, "zh");
        let finals = finals(&outputs);
        assert!(!finals.is_empty());
        for f in &finals {
            assert_eq!(f.dialect, "putonghua");
            assert!(f.segment.text.starts_with("[zh]"), "{}", f.segment.text);
        }
        // Identified from speech (jobs submitted before the first identification came back
        // identify too, so how many depends on timing).
        assert!(model
            .requests()
            .iter()
            .any(|r| matches!(r, Request::Detect { .. })));
    }

    #[tokio::test]
    async fn a_failed_or_panicking_decode_loses_its_utterance_and_the_call_goes_on() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let model = Scripted::new("fake", "en", move |samples, _| {
            match counter.fetch_add(1, Ordering::SeqCst) {
                1 => Err(EngineError::Inference("scripted failure".into())),
                2 => panic!("scripted panic"),
                _ => Ok(scripted::whole("fine", samples)),
            }
        });
        let pool = Pool::start(vec![model.clone()], 1, 1, 64).unwrap();
        let (outputs, _, summary) = run(&pool, plan(&model, english(), false), 0).await;
        let decodes = calls.load(Ordering::SeqCst);
        let finals = finals(&outputs);
        assert_eq!(
            finals.len(),
            decodes - 2,
            "the two failed utterances are missing, no others"
        );
        assert_eq!(summary.final_count as usize, finals.len());
        assert!(
            finals
                .iter()
                .enumerate()
                .all(|(i, f)| f.sequence == i as u64),
            "no gaps in numbering"
        );
        // The pool's thread survived the panic: later utterances were decoded.
        assert!(decodes >= 5);
    }
}
