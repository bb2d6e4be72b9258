//! One live call on `StreamingTranscribe`: the task that owns its [`LiveCall`], sends its
//! utterances to the inference pool and its results back to the client, in order.
//!
//! The task reads audio only while fewer than [`MAX_PENDING_FINALS`] finals are outstanding,
//! so a client sending faster than inference keeps up is slowed by HTTP/2 flow control rather
//! than queueing work without bound. Every way a call ends except the client vanishing (end of
//! input, bad audio, idle timeout, call too long, server shutdown) first finalises the audio
//! already received and delivers those finals; then the summary; then the status if any.

use super::convert::{final_result, invalid, role_to_proto};
use super::{Loaded, Shared, MAX_PENDING_FINALS};
use crate::audio::{CallTime, Role};
use crate::dialect::{Adapter, Dialects, Reason, Selection};
use crate::engine::{DecodeConfig, Decoded, EngineError, Priority, Worker};
use crate::proto::v1 as pb;
use crate::segment::{Utterance, VadConfig};
use crate::stream::{CallEvent, CallFormat, InterimSnapshot, LiveCall, Stabiliser};
use crate::transcript::Segment;
use futures::stream::{FuturesOrdered, FuturesUnordered};
use futures::StreamExt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tonic::{Status, Streaming};

pub type ResponseTx = mpsc::Sender<Result<pb::StreamingTranscribeResponse, Status>>;

/// A validated call, ready to run.
pub struct CallSetup {
    pub call_id: String,
    /// The config as the server will apply it (defaults filled in), echoed to the client.
    pub accepted: pb::StreamingConfig,
    pub format: CallFormat,
    pub vad: VadConfig,
    pub model: usize,
    /// `None`: detect from the first utterance decoded.
    pub language: Option<String>,
    pub decode: Arc<DecodeConfig>,
    pub interim: bool,
    /// The adapter chosen before audio; `None` while identification is pending.
    pub selection: Option<Selection>,
    /// The adapters as they were when the call began (identification maps into these).
    pub dialects: Arc<Dialects>,
}

/// Checks a stream's first message against the server's models, adapters and limits.
pub fn setup(
    shared: &Shared,
    loaded: &Loaded,
    cfg: pb::StreamingConfig,
) -> Result<CallSetup, Status> {
    let format = super::convert::call_format(&cfg)?;
    let dialects = shared.dialects();
    let mut decode = shared.settings.decode.clone();
    if !cfg.language.trim().is_empty() {
        decode.language = cfg.language.trim().to_owned();
    }
    if shared.settings.server.fit_window {
        decode.fit_window = true;
    }
    let requested_model = |name: &str| {
        loaded.model_index(name).ok_or_else(|| {
            Status::invalid_argument(format!(
                "model '{}' is not loaded here (loaded: {})",
                name,
                loaded.model_names().join(", ")
            ))
        })
    };
    let mut model = requested_model(&cfg.model)?;
    // The language as configured, resolved against the model (English-only → en).
    let configured = loaded.pool.engines()[model]
        .resolve_language(&decode.language)
        .map_err(invalid)?;
    let selection = dialects
        .select(Some(&cfg.dialect), Some(&cfg.region), configured.as_deref())
        .map_err(invalid)?;
    if let Some(sel) = &selection {
        if cfg.model.trim().is_empty() {
            // The adapter's own model when this server has it loaded.
            if let Some(m) = loaded.model_index(sel.adapter.model()) {
                model = m;
            }
        }
        decode = sel.adapter.decode(&decode);
    }
    let engine = &loaded.pool.engines()[model];
    let language = match &selection {
        Some(_) => engine.resolve_language(&decode.language).map_err(invalid)?,
        None => configured,
    };
    let mut vad = shared.settings.vad.clone();
    if cfg.endpoint_silence_ms != 0 {
        if !(100..=5000).contains(&cfg.endpoint_silence_ms) {
            return Err(Status::invalid_argument(format!(
                "endpoint_silence_ms {} is outside 100..5000",
                cfg.endpoint_silence_ms
            )));
        }
        vad.endpoint_silence_ms = cfg.endpoint_silence_ms;
    }
    let call_id = if cfg.call_id.trim().is_empty() {
        format!("call-{:016x}", rand_id())
    } else {
        cfg.call_id.trim().to_owned()
    };
    let accepted = pb::StreamingConfig {
        call_id: call_id.clone(),
        encoding: super::convert::encoding_to_proto(format.encoding) as i32,
        sample_rate_hz: format.sample_rate_hz,
        channel_count: format.roles.len() as u32,
        channel_roles: format
            .roles
            .iter()
            .map(|&r| role_to_proto(r) as i32)
            .collect(),
        language: language.clone().unwrap_or_else(|| "auto".into()),
        endpoint_silence_ms: vad.endpoint_silence_ms,
        model: engine.name().to_owned(),
        dialect: selection
            .as_ref()
            .map(|s| s.adapter.id().to_owned())
            .unwrap_or_default(),
        ..cfg
    };
    Ok(CallSetup {
        call_id,
        interim: accepted.interim_results && shared.settings.server.interim_interval_ms > 0,
        accepted,
        format,
        vad,
        model,
        language,
        decode: Arc::new(decode),
        selection,
        dialects,
    })
}

/// A call id when the client gives none: unique enough to tell calls apart in logs.
fn rand_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
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

fn decode_job(
    samples: Vec<f32>,
    plan: Plan,
) -> impl FnOnce(&mut Worker) -> Result<Decode, EngineError> + Send + 'static {
    move |w: &mut Worker| {
        let started = Instant::now();
        let (language, decode, adapter, identified) = match plan.language {
            Some(l) => (l, plan.decode, plan.adapter, None),
            None => {
                let guess = w.detect_language(&samples)?;
                let sel = plan.dialects.for_detected(&guess.code, guess.probability);
                let mut base = (*plan.decode).clone();
                if !matches!(sel.reason, Reason::Detected { .. }) {
                    // No adapter claims the language: decode in it rather than force another.
                    base.language = guess.code.clone();
                }
                let decode = sel.adapter.decode(&base);
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
    result: Result<Decode, String>,
}

struct InterimDone {
    snapshot: InterimSnapshot,
    result: Result<Decode, String>,
}

type Pending<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Why the call stops reading audio.
enum Ending {
    /// The client half-closed: a normal end.
    Complete,
    /// Finalise, then end the stream with this status.
    Fail(Status),
}

struct Call<'a> {
    shared: &'a Shared,
    loaded: &'a Loaded,
    setup: CallSetup,
    live: LiveCall,
    tx: ResponseTx,
    /// How the next job decodes; fixed once the call's adapter is known.
    plan: Plan,
    /// An adapter identified from speech, still to be announced to the client.
    announce: Option<pb::DialectSelected>,
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

/// The client went away: nothing more can be delivered.
struct Gone;

impl<'a> Call<'a> {
    fn response(
        &self,
        r: pb::streaming_transcribe_response::Response,
    ) -> pb::StreamingTranscribeResponse {
        pb::StreamingTranscribeResponse {
            call_id: self.setup.call_id.clone(),
            response: Some(r),
        }
    }

    async fn send(&mut self, r: pb::streaming_transcribe_response::Response) -> Result<(), Gone> {
        let msg = self.response(r);
        self.tx.send(Ok(msg)).await.map_err(|_| Gone)
    }

    /// Turns the audio path's events into responses and inference jobs.
    async fn handle_events(&mut self) -> Result<(), Gone> {
        let events = std::mem::take(&mut self.events);
        for e in events {
            match e {
                CallEvent::SpeechStart { channel, at, .. } => {
                    self.speech_event(pb::speech_event::Kind::SpeechStart, channel, at)
                        .await?;
                }
                CallEvent::Utterance {
                    role,
                    utterance_id,
                    utterance,
                } => {
                    let channel = utterance.channel;
                    self.speech_event(pb::speech_event::Kind::SpeechEnd, channel, utterance.end())
                        .await?;
                    self.finalising[channel as usize] = utterance_id;
                    self.submit_final(role, utterance);
                }
            }
        }
        Ok(())
    }

    async fn speech_event(
        &mut self,
        kind: pb::speech_event::Kind,
        channel: u32,
        at: CallTime,
    ) -> Result<(), Gone> {
        self.send(pb::streaming_transcribe_response::Response::SpeechEvent(
            pb::SpeechEvent {
                kind: kind as i32,
                channel,
                at_ms: at.as_ms(),
            },
        ))
        .await
    }

    fn submit_final(&mut self, role: Role, utterance: Utterance) {
        let job = decode_job(utterance.samples.clone(), self.plan.clone());
        let rx = self
            .loaded
            .pool
            .submit(self.setup.model, Priority::Final, job);
        let channel = utterance.channel;
        let closed_at = Instant::now();
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
                result,
            }
        }));
    }

    /// Starts interim decodes of channels that have grown enough and have none running.
    fn submit_interims(&mut self) {
        if !self.setup.interim {
            return;
        }
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
            let job = decode_job(snapshot.samples.clone(), plan);
            let Ok(rx) = self
                .loaded
                .pool
                .submit(self.setup.model, Priority::Interim, job)
            else {
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
    /// fixes the call's dialect adapter and language for every later job.
    fn account(&mut self, d: &Decode) {
        self.busy += d.busy;
        self.shared
            .metrics
            .inference_seconds
            .inc_by(d.busy.as_secs_f64());
        if self.plan.language.is_some() {
            return;
        }
        let Some(sel) = &d.identified else {
            return;
        };
        let mut base = (*self.setup.decode).clone();
        if !matches!(sel.reason, Reason::Detected { .. }) {
            base.language = d.language.clone();
        }
        let mut decode = sel.adapter.decode(&base);
        decode.language = d.language.clone();
        tracing::info!(call_id = %self.setup.call_id, language = %d.language, dialect = %sel.adapter.id(), reason = %sel.reason, "dialect identified");
        self.plan.language = Some(d.language.clone());
        self.plan.decode = Arc::new(decode);
        self.plan.adapter = Some(sel.adapter.clone());
        self.announce = Some(super::convert::dialect_selected(sel, &d.language));
    }

    /// Sends the identified adapter once, before the result that identified it.
    async fn announce_dialect(&mut self) -> Result<(), Gone> {
        match self.announce.take() {
            Some(d) => {
                self.shared
                    .metrics
                    .dialect_calls
                    .get_or_create(&super::metrics::DialectLabel {
                        adapter: d.adapter.clone(),
                        reason: d.reason.clone(),
                    })
                    .inc();
                self.send(pb::streaming_transcribe_response::Response::Dialect(d))
                    .await
            }
            None => Ok(()),
        }
    }

    async fn deliver_final(&mut self, done: FinalDone) -> Result<(), Gone> {
        let decode = match done.result {
            Ok(d) => d,
            Err(e) => {
                // One utterance failing to decode must not end the call: report and go on.
                tracing::error!(call_id = %self.setup.call_id, channel = done.channel, "final decode failed: {e}");
                return Ok(());
            }
        };
        self.account(&decode);
        self.announce_dialect().await?;
        let Some(mut segment) =
            Segment::from_utterance(done.channel, done.role, done.utterance.start, decode.pieces)
        else {
            return Ok(());
        };
        if let Some(adapter) = &decode.adapter {
            segment.normalise(adapter);
        }
        let seq = &mut self.sequences[done.channel as usize];
        let mut result = final_result(&self.setup.call_id, *seq, &segment);
        result.dialect = decode
            .adapter
            .as_ref()
            .map(|a| a.id().to_owned())
            .unwrap_or_default();
        *seq += 1;
        self.final_count += 1;
        tracing::debug!(call_id = %self.setup.call_id, segment_id = %result.segment_id, text = %result.text, "final");
        self.send(pb::streaming_transcribe_response::Response::Final(
            result.clone(),
        ))
        .await?;
        crate::forward::hook::final_sent(
            self.shared.forwarder.as_ref(),
            &self.setup.accepted,
            self.plan.language.as_deref(),
            &result,
            &self.tx,
        );
        self.shared.metrics.result("final");
        self.shared
            .metrics
            .finalisation_latency_seconds
            .observe(done.closed_at.elapsed().as_secs_f64());
        Ok(())
    }

    async fn deliver_interim(&mut self, done: InterimDone) -> Result<(), Gone> {
        let c = done.snapshot.channel as usize;
        self.interim_in_flight[c] = false;
        let Ok(decode) = done.result else {
            return Ok(());
        };
        self.account(&decode);
        self.announce_dialect().await?;
        if done.snapshot.utterance_id <= self.finalising[c] {
            return Ok(()); // its final is already on the way
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
                    crate::transcript::join_text(&acc, t)
                }
            });
        if text.is_empty() {
            return Ok(());
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
        let end = start + done.snapshot.samples.len() as u64;
        self.send(pb::streaming_transcribe_response::Response::Interim(
            pb::InterimResult {
                channel: done.snapshot.channel,
                role: role_to_proto(done.snapshot.role) as i32,
                text: shown.text,
                stable_text: shown.stable_text,
                stability: shown.stability,
                start_ms: start.as_ms(),
                end_ms: end.as_ms(),
            },
        ))
        .await?;
        self.shared.metrics.result("interim");
        Ok(())
    }

    /// Feeds one audio message; `Err(status)` ends the call after finalising.
    fn push_audio(&mut self, audio: &[u8]) -> Result<(), Status> {
        let limits = &self.shared.settings.server;
        if audio.len() > limits.max_message_bytes {
            return Err(Status::resource_exhausted(format!(
                "audio message of {} bytes exceeds the limit of {} bytes (server.max_message_bytes); \
                 send smaller chunks (20–200 ms each)",
                audio.len(),
                limits.max_message_bytes
            )));
        }
        let frame_bytes = self.live.format().frame_bytes();
        let msg_ms = (audio.len() / frame_bytes) as u64 * 1000
            / u64::from(self.live.format().sample_rate_hz);
        if self.live.audio_ms() + msg_ms > limits.max_call_secs * 1000 {
            return Err(Status::out_of_range(format!(
                "the call is longer than server.max_call_secs = {} s",
                limits.max_call_secs
            )));
        }
        self.live.push(audio, &mut self.events).map_err(invalid)?;
        self.shared
            .metrics
            .audio_seconds
            .inc_by(msg_ms as f64 / 1000.0 * self.live.channel_count() as f64);
        Ok(())
    }
}

/// Runs an accepted call to its end. Holds `permit` (its admission slot) until then.
pub async fn run(
    shared: Arc<Shared>,
    setup: CallSetup,
    mut inbound: Streaming<pb::StreamingTranscribeRequest>,
    tx: ResponseTx,
    permit: OwnedSemaphorePermit,
) {
    let _permit = permit;
    let loaded = shared
        .loaded
        .get()
        .expect("calls start only after models load");
    let call_id = setup.call_id.clone();
    let span = tracing::info_span!("call", call_id = %call_id);
    let _active = ActiveGuard::new(&shared);
    let channels = setup.format.roles.len();
    let live = match LiveCall::new(
        setup.format.clone(),
        &setup.vad,
        shared.settings.server.interim_interval_ms,
    ) {
        Ok(l) => l,
        Err(e) => {
            let _ = tx.send(Err(invalid(e))).await;
            return;
        }
    };
    let mut call = Call {
        shared: &shared,
        loaded,
        plan: Plan {
            language: setup.language.clone(),
            decode: setup.decode.clone(),
            adapter: setup.selection.as_ref().map(|s| s.adapter.clone()),
            dialects: setup.dialects.clone(),
        },
        announce: setup
            .selection
            .as_ref()
            .map(|s| super::convert::dialect_selected(s, setup.language.as_deref().unwrap_or(""))),
        setup,
        live,
        tx,
        finals: FuturesOrdered::new(),
        interims: FuturesUnordered::new(),
        interim_in_flight: vec![false; channels],
        stabilisers: (0..channels).map(|_| (0, Stabiliser::new())).collect(),
        finalising: vec![0; channels],
        sequences: vec![0; channels],
        final_count: 0,
        busy: Duration::ZERO,
        events: Vec::new(),
    };
    let accepted = call.setup.accepted.clone();
    if call
        .send(pb::streaming_transcribe_response::Response::AcceptedConfig(
            accepted,
        ))
        .await
        .is_err()
    {
        return;
    }
    tracing::info!(parent: &span, channels, dialect = %call.setup.accepted.dialect, "call accepted");
    if call.announce_dialect().await.is_err() {
        return;
    }
    let outcome = drive(&mut call, &mut inbound).await;
    match outcome {
        Err(Gone) => {
            tracing::info!(parent: &span, "client went away; call dropped");
        }
        Ok(status) => {
            let summary = pb::CallSummary {
                call_id: call_id.clone(),
                audio_ms: call.live.audio_ms(),
                final_results: call.final_count,
                real_time_factor: if call.live.audio_ms() > 0 {
                    call.busy.as_secs_f32() / (call.live.audio_ms() as f32 / 1000.0)
                } else {
                    0.0
                },
            };
            tracing::info!(parent: &span, audio_ms = summary.audio_ms, finals = summary.final_results, rtf = summary.real_time_factor, "call ended");
            if call
                .send(pb::streaming_transcribe_response::Response::Summary(
                    summary,
                ))
                .await
                .is_ok()
            {
                if let Some(status) = status {
                    tracing::warn!(parent: &span, code = ?status.code(), "call ended with error: {}", status.message());
                    shared.metrics.error(&status);
                    let _ = call.tx.send(Err(status)).await;
                }
            }
        }
    }
}

/// The call's event loop. `Ok(status)`: the call ended in order (status to send after the
/// summary, if any); `Err(Gone)`: the client vanished.
async fn drive(
    call: &mut Call<'_>,
    inbound: &mut Streaming<pb::StreamingTranscribeRequest>,
) -> Result<Option<Status>, Gone> {
    let idle = Duration::from_millis(call.shared.settings.server.idle_timeout_ms);
    let mut idle_deadline = tokio::time::Instant::now() + idle;
    let shutdown = call.shared.shutdown.clone();
    let mut ending: Option<Ending> = None;
    loop {
        if let Some(end) = &ending {
            if call.finals.is_empty() {
                return Ok(match end {
                    Ending::Complete => None,
                    Ending::Fail(s) => Some(s.clone()),
                });
            }
        }
        let reading = ending.is_none() && call.finals.len() < MAX_PENDING_FINALS;
        if !reading {
            // While back-pressure holds the client off, its silence is ours, not its own:
            // the idle clock starts again when reading resumes.
            idle_deadline = tokio::time::Instant::now() + idle;
        }
        let mut stop: Option<Ending> = None;
        tokio::select! {
            biased;
            () = call.tx.closed() => return Err(Gone),
            Some(done) = call.finals.next() => call.deliver_final(done).await?,
            Some(done) = call.interims.next(), if ending.is_none() => call.deliver_interim(done).await?,
            () = shutdown.cancelled(), if ending.is_none() => {
                stop = Some(Ending::Fail(Status::unavailable(
                    "the server is shutting down; open utterances were finalised and sent",
                )));
            }
            () = tokio::time::sleep_until(idle_deadline), if reading => {
                stop = Some(Ending::Fail(Status::deadline_exceeded(format!(
                    "no message for {} ms (server.idle_timeout_ms); the call was finalised",
                    idle.as_millis()
                ))));
            }
            msg = inbound.message(), if reading => {
                idle_deadline = tokio::time::Instant::now() + idle;
                match msg {
                    Ok(None) => stop = Some(Ending::Complete),
                    // A reset stream or broken connection: nobody is left to answer.
                    Err(s) if is_disconnect(&s) => return Err(Gone),
                    Err(s) => stop = Some(Ending::Fail(s)),
                    Ok(Some(req)) => match req.request {
                        Some(pb::streaming_transcribe_request::Request::Audio(audio)) => {
                            match call.push_audio(&audio) {
                                Ok(()) => {
                                    call.handle_events().await?;
                                    call.submit_interims();
                                }
                                Err(s) => stop = Some(Ending::Fail(s)),
                            }
                        }
                        Some(pb::streaming_transcribe_request::Request::Config(_)) => {
                            stop = Some(Ending::Fail(Status::invalid_argument(
                                "config sent twice: only the first message carries config; later ones carry audio",
                            )));
                        }
                        None => {
                            stop = Some(Ending::Fail(Status::invalid_argument(
                                "empty request: set config (first message) or audio",
                            )));
                        }
                    },
                }
            }
        }
        if let Some(end) = stop {
            // Finalise what was received: its finals still reach the client.
            if let Err(e) = call.live.finish(&mut call.events) {
                tracing::error!("flushing the call's audio failed: {e}");
            }
            call.handle_events().await?;
            call.interims.clear();
            ending = Some(end);
        }
    }
}

/// Errors that mean the client is gone rather than that it sent something wrong.
fn is_disconnect(s: &Status) -> bool {
    matches!(s.code(), tonic::Code::Cancelled | tonic::Code::Unknown)
        || s.message().contains("reset")
        || s.message().contains("broken pipe")
}

/// Counts the call in `active_streams` for exactly as long as it lives.
struct ActiveGuard<'a>(&'a Shared);

impl<'a> ActiveGuard<'a> {
    fn new(shared: &'a Shared) -> Self {
        shared.metrics.active_streams.inc();
        Self(shared)
    }
}

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.metrics.active_streams.dec();
    }
}
