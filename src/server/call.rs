//! One live call on a streaming RPC: the task that feeds its audio to a [`CallDriver`] (the
//! transport-agnostic call, shared with `capture`) and sends the driver's outputs back to the
//! client, in order, as its API's responses.
//!
//! The task is the same for every API that streams a call — `callscribe.v1`
//! StreamingTranscribe, Google's and Riva's StreamingRecognize: each front door converts its
//! first message into a [`LiveRequest`] and gives the task a [`Wire`], which reads audio out of
//! its later messages and turns the call's [`CallReport`]s into its responses.
//!
//! The task reads audio only while fewer than [`MAX_PENDING_FINALS`] finals are outstanding,
//! so a client sending faster than inference keeps up is slowed by HTTP/2 flow control rather
//! than queueing work without bound. Every way a call ends except the client vanishing (end of
//! input, bad audio, idle timeout, call too long, server shutdown) first finalises the audio
//! already received and delivers those finals; then the summary; then the status if any.
//! Then the call's audit line ([`super::audit`]), with its tenant and how it ended.

use super::audit::{self, CallRecord};
use super::auth::Caller;
use super::service::Admission;
use super::{Loaded, Shared, MAX_PENDING_FINALS};
use crate::forward::{CallContext, CallForwarding, Listener};
use crate::kb::Suggestion;
use crate::plan::CallPlan;
use crate::proto::convert::invalid;
use crate::segment::Vad;
use crate::stream::{
    CallDriver, CallFormat, CallOutput, CallReport, Completed, DialectOutput, DriverSetup,
    LiveRequest,
};
use prometheus_client::metrics::counter::Counter;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tonic::{Status, Streaming};

type ResponseItem<R> = Result<R, Status>;

/// What a streaming API makes of a live call: the one thing that differs between the APIs
/// whose calls [`run`] drives. Implementations live with their services and convert through
/// their API's module under `proto/`.
pub trait Wire: Send + 'static {
    /// A message of the client's stream after the first (the first was the request).
    type Request: Send + 'static;
    type Response: Send + 'static;
    /// The audio a later message carries; an error ends the call (after finalising).
    fn audio(&self, request: Self::Request) -> Result<Vec<u8>, Status>;
    /// What the client is sent once its call is accepted, before any audio (nothing, for
    /// APIs that answer only with results).
    fn opening(&mut self, _call_id: &str) -> Vec<Self::Response> {
        Vec::new()
    }
    /// The responses a report becomes (none where the API has no place for it).
    fn report(&mut self, call_id: &str, report: CallReport) -> Vec<Self::Response>;
    /// What a knowledge suggestion becomes; `None` where the API has no place for one (the
    /// final is forwarded all the same).
    fn suggestion(&self, _call_id: &str) -> Option<SuggestionMap<Self::Response>> {
        None
    }
    /// The call takes no more audio once this report is out (Google's `single_utterance`).
    fn ends_input(&self, _report: &CallReport) -> bool {
        false
    }
}

/// Makes a suggestion into a response.
pub type SuggestionMap<R> = Box<dyn Fn(&Suggestion) -> R + Send + Sync>;

/// The call task's side of its response stream.
pub struct ResponseTx<R> {
    tx: mpsc::Sender<ResponseItem<R>>,
    /// Ends the stream with a status ahead of the responses still queued: how a call ends
    /// whose client stopped reading, as nothing queued behind them would ever reach it.
    abort: Option<oneshot::Sender<Status>>,
}

/// The stream tonic sends to the client: the call's responses, or its abort status first.
pub struct Responses<R> {
    rx: mpsc::Receiver<ResponseItem<R>>,
    abort: Option<oneshot::Receiver<Status>>,
    ended: bool,
}

/// A call's response channel, `buffer` responses deep.
pub fn responses<R>(buffer: usize) -> (ResponseTx<R>, Responses<R>) {
    let (tx, rx) = mpsc::channel(buffer);
    let (abort_tx, abort_rx) = oneshot::channel();
    (
        ResponseTx {
            tx,
            abort: Some(abort_tx),
        },
        Responses {
            rx,
            abort: Some(abort_rx),
            ended: false,
        },
    )
}

impl<R> futures::Stream for Responses<R> {
    type Item = ResponseItem<R>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<ResponseItem<R>>> {
        use std::future::Future;
        use std::task::Poll;
        if self.ended {
            return Poll::Ready(None);
        }
        if let Some(abort) = self.abort.as_mut() {
            match std::pin::Pin::new(abort).poll(cx) {
                Poll::Ready(Ok(status)) => {
                    self.ended = true;
                    return Poll::Ready(Some(Err(status)));
                }
                // The call ended without aborting: its responses, to the last.
                Poll::Ready(Err(_)) => self.abort = None,
                Poll::Pending => {}
            }
        }
        self.rx.poll_recv(cx)
    }
}

/// Longest a final waits for the spool before going to the client anyway (a commit takes
/// milliseconds; a disk that stalls must not hold finals back).
const SPOOL_WAIT: Duration = Duration::from_secs(1);

/// A validated call, ready to run.
pub struct CallSetup {
    pub call_id: String,
    pub format: CallFormat,
    /// Silence that ends an utterance, as applied.
    pub endpoint_silence_ms: u32,
    pub vad: Vad,
    /// Index of the plan's model in the pool.
    pub model: usize,
    pub plan: CallPlan,
    pub interim: bool,
    /// The call's wall-clock start as the client gave it (forwarded with each final).
    pub started_at_unix_ms: Option<i64>,
    /// The longest call this API allows.
    pub limit: CallLimit,
}

/// The longest call, in seconds of audio, and the setting that says so (named in the error).
#[derive(Debug, Clone, Copy)]
pub struct CallLimit {
    pub max_secs: u64,
    pub setting: &'static str,
}

/// A call past every check: its setup, who is calling, what the audit line will say of it,
/// and its places in the tenant's quota and the server's capacity (held until it ends).
pub struct Admitted {
    pub setup: CallSetup,
    pub caller: Caller,
    pub record: CallRecord,
    pub admission: Admission,
}

/// Checks a live call's request (its first message, as its API's conversion read it)
/// against the server's models, adapters and limits.
pub fn setup(
    shared: &Shared,
    loaded: &Loaded,
    request: LiveRequest,
    limit: CallLimit,
) -> Result<CallSetup, Status> {
    let plan = CallPlan::resolve(
        &request.choices,
        &shared.settings.decode,
        Some(shared.dialects()),
        loaded.pool.models(),
    )
    .map_err(invalid)?;
    let model = loaded.plan_model(&plan)?;
    let mut vad_config = shared.settings.vad.config().clone();
    if let Some(ms) = request.endpoint_silence_ms {
        if !(100..=5000).contains(&ms) {
            return Err(Status::invalid_argument(format!(
                "endpoint_silence_ms {ms} is outside 100..5000"
            )));
        }
        vad_config.endpoint_silence_ms = ms;
    }
    let vad = shared.settings.vad.with_config(vad_config);
    let call_id = request
        .call_id
        .clone()
        .unwrap_or_else(|| format!("call-{:016x}", rand_id()));
    Ok(CallSetup {
        call_id,
        interim: request.interim && shared.settings.server.interim_interval_ms > 0,
        endpoint_silence_ms: vad.config().endpoint_silence_ms,
        format: request.format,
        vad,
        model,
        plan,
        started_at_unix_ms: request.started_at_unix_ms,
        limit,
    })
}

impl CallSetup {
    /// The transport-agnostic part, for the call driver.
    fn driver_setup(&self, shared: &Shared) -> DriverSetup {
        DriverSetup {
            call_id: self.call_id.clone(),
            format: self.format.clone(),
            vad: self.vad.clone(),
            interim_every_ms: if self.interim {
                shared.settings.server.interim_interval_ms
            } else {
                0
            },
            model: self.model,
            plan: self.plan.clone(),
        }
    }
}

/// A call id when the client gives none: unique enough to tell calls apart in logs.
pub fn rand_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

/// Why the call stops reading audio.
enum Ending {
    /// The client half-closed: a normal end.
    Complete,
    /// Finalise, then end the stream with this status.
    Fail(Status),
}

struct Call<'a, W: Wire> {
    shared: &'a Shared,
    call_id: String,
    driver: CallDriver<'a>,
    tx: ResponseTx<W::Response>,
    wire: W,
    limit: CallLimit,
    /// The wire wants no more audio (after a report that ends input).
    input_ended: bool,
    /// Where the call's finals go (spooled before each is sent); `None`: nowhere.
    forwarding: Option<CallForwarding>,
    outputs: Vec<CallOutput>,
    /// The call's tenant's audio counter.
    audio_seconds: Counter<f64, AtomicU64>,
    /// The adapter the call ended with (identification may choose it mid-call).
    adapter: String,
}

/// Nothing more can be delivered to the client.
enum Gone {
    /// It went away.
    Vanished,
    /// It stopped reading: a response waited `server.send_timeout_ms` for room.
    Stalled,
}

impl<W: Wire> Call<'_, W> {
    async fn send(&mut self, report: CallReport) -> Result<(), Gone> {
        self.input_ended |= self.wire.ends_input(&report);
        for msg in self.wire.report(&self.call_id, report) {
            self.send_item(Ok(msg)).await?;
        }
        Ok(())
    }

    async fn send_item(&mut self, item: ResponseItem<W::Response>) -> Result<(), Gone> {
        let limit = Duration::from_millis(self.shared.settings.server.send_timeout_ms);
        match tokio::time::timeout(limit, self.tx.tx.send(item)).await {
            Ok(sent) => sent.map_err(|_| Gone::Vanished),
            Err(_) => Err(Gone::Stalled),
        }
    }

    /// Sends the speech events the audio path produced.
    async fn send_outputs(&mut self) -> Result<(), Gone> {
        for o in std::mem::take(&mut self.outputs) {
            self.send(CallReport::output(&self.call_id, &o)).await?;
        }
        Ok(())
    }

    /// Reports the call's dialect adapter (once: the driver hands it over once).
    async fn announce_dialect(&mut self, d: Option<DialectOutput>) -> Result<(), Gone> {
        let Some(d) = d else {
            return Ok(());
        };
        d.selection.adapter.id().clone_into(&mut self.adapter);
        self.shared
            .metrics
            .dialect_calls
            .get_or_create(&super::metrics::DialectLabel {
                adapter: d.selection.adapter.id().to_owned(),
                reason: d.selection.reason.kind().to_owned(),
            })
            .inc();
        self.send(CallReport::dialect(&d)).await
    }

    /// Sends a decode's result, if it yields one, and counts it; before it, the dialect
    /// adapter the decode identified, if it did.
    async fn completed(&mut self, done: Completed) -> Result<(), Gone> {
        let metrics = &self.shared.metrics;
        metrics
            .inference_seconds
            .inc_by(done.inference.as_secs_f64());
        self.announce_dialect(done.dialect).await?;
        let Some(output) = done.output else {
            return Ok(());
        };
        if let (Some(forwarding), CallOutput::Final(f)) = (&self.forwarding, &output) {
            // On disk before the client has it: a final the client got survives a crash.
            forwarding
                .forward_final(self.driver.language(), f)
                .written(SPOOL_WAIT)
                .await;
        }
        self.send(CallReport::output(&self.call_id, &output))
            .await?;
        match &output {
            CallOutput::Final(f) => {
                self.shared.metrics.result("final");
                self.shared
                    .metrics
                    .finalisation_latency_seconds
                    .observe(f.latency.as_secs_f64());
            }
            CallOutput::Interim(_) => self.shared.metrics.result("interim"),
            CallOutput::SpeechStart { .. } | CallOutput::SpeechEnd { .. } => {}
        }
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
        let live = self.driver.live();
        let frame_bytes = live.format().frame_bytes();
        let msg_ms =
            (audio.len() / frame_bytes) as u64 * 1000 / u64::from(live.format().sample_rate_hz);
        if live.audio_ms() + msg_ms > self.limit.max_secs * 1000 {
            return Err(Status::out_of_range(format!(
                "the call is longer than {} = {} s",
                self.limit.setting, self.limit.max_secs
            )));
        }
        let channels = live.channel_count();
        self.driver
            .push_bytes(audio, &mut self.outputs)
            .map_err(invalid)?;
        self.audio_seconds
            .inc_by(msg_ms as f64 / 1000.0 * channels as f64);
        Ok(())
    }
}

/// Runs an admitted call to its end, then writes its audit line. Holds its admission (its
/// tenant's and the server's slots) until then.
pub async fn run<W: Wire>(
    shared: Arc<Shared>,
    admitted: Admitted,
    mut inbound: Streaming<W::Request>,
    tx: ResponseTx<W::Response>,
    wire: W,
) {
    let Admitted {
        setup,
        caller,
        mut record,
        admission,
    } = admitted;
    let _admission = admission;
    let ended = run_to_end(&shared, setup, &caller, &mut inbound, tx, wire).await;
    if !ended.adapter.is_empty() {
        record.adapter = ended.adapter;
    }
    audit::call(
        &shared.metrics,
        &caller,
        &record,
        &ended.outcome,
        ended.audio_secs,
    );
}

/// How a call ended, for its audit line.
struct Ended {
    /// `OK` or the status code; `Cancelled` when the client went away.
    outcome: String,
    /// The adapter the call ended with; empty if none was chosen.
    adapter: String,
    /// Audio received, channels summed (as `callscribe_audio_seconds_total` counts it).
    audio_secs: f64,
}

/// The call from its acceptance to its last response.
async fn run_to_end<W: Wire>(
    shared: &Arc<Shared>,
    setup: CallSetup,
    caller: &Caller,
    inbound: &mut Streaming<W::Request>,
    tx: ResponseTx<W::Response>,
    mut wire: W,
) -> Ended {
    let loaded = shared
        .loaded
        .get()
        .expect("calls start only after models load");
    let call_id = setup.call_id.clone();
    let span = tracing::info_span!("call", call_id = %call_id);
    let _active = ActiveGuard::new(shared);
    let channels = setup.format.roles.len();
    let forwarding = shared.forwarder.as_ref().map(|f| {
        let context = CallContext {
            tenant: caller.tenant_id().to_owned(),
            call_id: call_id.clone(),
            dialect: setup.plan.adapter_id().to_owned(),
            started_at_unix_ms: setup.started_at_unix_ms,
        };
        // Suggestions go to the client as responses of their own, beside the finals, where
        // its API has a place for them.
        let listener = match wire.suggestion(&call_id) {
            Some(map) => Listener::channel(&tx.tx, move |s| Ok(map(s))),
            None => Listener::new(|_| true),
        };
        CallForwarding::new(f, context, listener)
    });
    let driver = match CallDriver::new(&loaded.pool, setup.driver_setup(shared)) {
        Ok(d) => d,
        Err(e) => {
            let status = invalid(e);
            let outcome = audit::outcome(Some(&status));
            let _ = tx.tx.send(Err(status)).await;
            return Ended {
                outcome,
                adapter: String::new(),
                audio_secs: 0.0,
            };
        }
    };
    let opening = wire.opening(&call_id);
    let mut call = Call {
        shared,
        call_id: call_id.clone(),
        driver,
        tx,
        wire,
        limit: setup.limit,
        input_ended: false,
        forwarding,
        outputs: Vec::new(),
        audio_seconds: shared.metrics.audio_seconds(caller.tenant_id()),
        adapter: String::new(),
    };
    let ended = |call: &Call<W>, outcome: String| Ended {
        outcome,
        adapter: call.adapter.clone(),
        audio_secs: call.driver.live().audio_ms() as f64 / 1000.0
            * call.driver.live().channel_count() as f64,
    };
    let dialect = setup.plan.adapter_id().to_owned();
    for msg in opening {
        if call.send_item(Ok(msg)).await.is_err() {
            return ended(&call, "Cancelled".into());
        }
    }
    tracing::info!(parent: &span, channels, %dialect, "call accepted");
    let selected = call.driver.take_dialect();
    if call.announce_dialect(selected).await.is_err() {
        return ended(&call, "Cancelled".into());
    }
    let outcome = drive(&mut call, inbound).await;
    match outcome {
        Err(Gone::Vanished) => {
            tracing::info!(parent: &span, "client went away; call dropped");
            ended(&call, "Cancelled".into())
        }
        Err(Gone::Stalled) => {
            let status = call.stalled(&span);
            ended(&call, audit::outcome(Some(&status)))
        }
        Ok(status) => {
            // The summary is the call's last response: no suggestion may come after it.
            if let Some(forwarding) = &call.forwarding {
                forwarding.close();
            }
            let summary = call.driver.summary();
            tracing::info!(parent: &span, audio_ms = summary.audio_ms, finals = summary.final_count, rtf = summary.real_time_factor, "call ended");
            let outcome = audit::outcome(status.as_ref());
            let mut sent = call.send(CallReport::Summary(summary)).await;
            if let (Ok(()), Some(status)) = (&sent, status) {
                tracing::warn!(parent: &span, code = ?status.code(), "call ended with error: {}", status.message());
                shared.metrics.error(&status);
                sent = call.send_item(Err(status)).await;
            }
            if let Err(Gone::Stalled) = sent {
                let status = call.stalled(&span);
                return ended(&call, audit::outcome(Some(&status)));
            }
            ended(&call, outcome)
        }
    }
}

impl<W: Wire> Call<'_, W> {
    /// Ends the call of a client that stopped reading: the status goes ahead of the
    /// responses it never took, and the call's slot is freed as this task ends.
    fn stalled(&mut self, span: &tracing::Span) -> Status {
        let status = Status::resource_exhausted(format!(
            "the client read no response for {} ms (server.send_timeout_ms) while {} \
             responses waited; the call was ended",
            self.shared.settings.server.send_timeout_ms,
            super::RESPONSE_BUFFER
        ));
        tracing::warn!(parent: span, "{}", status.message());
        self.shared.metrics.error(&status);
        if let Some(abort) = self.tx.abort.take() {
            let _ = abort.send(status.clone());
        }
        status
    }
}

/// The call's event loop. `Ok(status)`: the call ended in order (status to send after the
/// summary, if any); `Err(Gone)`: the client vanished.
async fn drive<W: Wire>(
    call: &mut Call<'_, W>,
    inbound: &mut Streaming<W::Request>,
) -> Result<Option<Status>, Gone> {
    let idle = Duration::from_millis(call.shared.settings.server.idle_timeout_ms);
    let mut idle_deadline = tokio::time::Instant::now() + idle;
    let shutdown = call.shared.shutdown.clone();
    let mut ending: Option<Ending> = None;
    loop {
        if let Some(end) = &ending {
            if call.driver.pending_finals() == 0 {
                return Ok(match end {
                    Ending::Complete => None,
                    Ending::Fail(s) => Some(s.clone()),
                });
            }
        }
        let reading = ending.is_none() && call.driver.pending_finals() < MAX_PENDING_FINALS;
        if !reading {
            // While back-pressure holds the client off, its silence is ours, not its own:
            // the idle clock starts again when reading resumes.
            idle_deadline = tokio::time::Instant::now() + idle;
        }
        let mut stop: Option<Ending> = None;
        tokio::select! {
            biased;
            () = call.tx.tx.closed() => return Err(Gone::Vanished),
            Some(done) = call.driver.next() => call.completed(done).await?,
            () = shutdown.cancelled(), if ending.is_none() => {
                stop = Some(Ending::Fail(Status::unavailable(
                    "the server is shutting down; open utterances were finalised and sent",
                )));
            }
            msg = inbound.message(), if reading => {
                idle_deadline = tokio::time::Instant::now() + idle;
                match msg {
                    Ok(None) => stop = Some(Ending::Complete),
                    // A reset stream or broken connection: nobody is left to answer.
                    Err(s) if is_disconnect(&s) => return Err(Gone::Vanished),
                    Err(s) => stop = Some(Ending::Fail(s)),
                    Ok(Some(req)) => match call.wire.audio(req) {
                        Ok(audio) => {
                            let pushed = call.push_audio(&audio);
                            call.send_outputs().await?;
                            if let Err(s) = pushed {
                                stop = Some(Ending::Fail(s));
                            } else if call.input_ended {
                                stop = Some(Ending::Complete);
                            }
                        }
                        Err(s) => stop = Some(Ending::Fail(s)),
                    },
                }
            }
            // After the inbound branch: a message already waiting is read, not timed out,
            // however long this task went unpolled.
            () = tokio::time::sleep_until(idle_deadline), if reading => {
                stop = Some(Ending::Fail(Status::deadline_exceeded(format!(
                    "no message for {} ms (server.idle_timeout_ms); the call was finalised",
                    idle.as_millis()
                ))));
            }
        }
        if let Some(end) = stop {
            // Finalise what was received: its finals still reach the client.
            if let Err(e) = call.driver.finish(&mut call.outputs) {
                tracing::error!("flushing the call's audio failed: {e}");
            }
            call.send_outputs().await?;
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
