//! Forwarding: every final segment, with its timestamps, to the downstream sinks (embedded
//! knowledge base, gRPC `KnowledgeLookup`, webhook, NDJSON), at least once, in order per call.
//!
//! [`Forwarder::submit`] never waits on a downstream: it puts the segment on a bounded
//! in-memory queue that one intake thread writes to the durable [`Spool`] in batches (one
//! fsync per batch). Each sink has its own delivery task reading its pending segments from
//! the spool in sequence order, retrying transient failures with exponential backoff and
//! jitter, and parking segments the downstream rejects as invalid in a dead-letter table. A
//! segment leaves the spool once every sink has it, so a restart replays exactly what was not
//! yet delivered. A duplicate is possible (delivered, then killed before the acknowledgement
//! reached the disk): downstreams de-duplicate on `segment_id`.
//!
//! Sinks that answer lookups (the knowledge base, gRPC) produce [`Suggestion`]s, routed to
//! whoever [`listen`](Forwarder::listen)s for the call.

pub mod config;
pub mod hook;
pub mod metrics;
pub mod nats;
pub mod segment;
pub mod sign;
pub mod sink;
pub mod spool;

pub use config::{ForwardConfig, SinkConfig};
pub use hook::{CallContext, CallForwarding};
pub use metrics::ForwardMetrics;
pub use segment::{CallEvent, CallEventKind, ForwardSegment, Spooled};
pub use sink::{DeliveryError, Sink};
pub use spool::{DeadLetter, Spool, SpoolError, SpoolStatus};

use crate::kb::Suggestion;
use std::collections::{HashMap, VecDeque};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Segments waiting for the intake thread. A final is a few hundred bytes and calls produce
/// one every few seconds, so 4096 is minutes of a busy server's output: only a spool that
/// cannot be written (its disk full or failing) fills it. Then new segments are dropped from
/// forwarding, counted and logged, rather than held without bound or left to stall the call
/// that produced them: a call's finals always reach its client.
pub const SUBMIT_QUEUE: usize = 4096;
/// Most segments the intake thread commits in one transaction.
const INTAKE_BATCH: usize = 256;
/// Pending segments a delivery task reads from the spool at once.
const DELIVERY_BATCH: usize = 64;
/// Calls whose recent segments are kept for `context`; the oldest call is forgotten first.
const CONTEXT_CALLS: usize = 4096;
/// How long the intake thread holds the queue waiting for a first segment.
const INTAKE_POLL: Duration = Duration::from_millis(200);

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error(transparent)]
    Sink(#[from] sink::SinkError),
    #[error("forward config: {0}")]
    Config(String),
}

/// Where a call's suggestions go.
pub struct Listener {
    /// Called with each suggestion; false once the listener is gone.
    pub deliver: Box<dyn Fn(&Suggestion) -> bool + Send + Sync>,
    /// Whether the listener still wants suggestions: checked whenever a call starts
    /// listening, so calls that ended without a last suggestion do not pile up.
    pub alive: Box<dyn Fn() -> bool + Send + Sync>,
}

impl Listener {
    /// A listener that lives until [`Forwarder::unlisten`].
    pub fn new(deliver: impl Fn(&Suggestion) -> bool + Send + Sync + 'static) -> Self {
        Self {
            deliver: Box::new(deliver),
            alive: Box::new(|| true),
        }
    }

    /// A listener that puts each suggestion, as `map` makes it, on `tx` without waiting:
    /// dropped, not queued, when the channel is full (a late suggestion is worth less than a
    /// timely final). It holds `tx` weakly, so it never keeps a call's channel open after the
    /// call: it is gone once every other sender is, or the receiver.
    pub fn channel<T: Send + 'static>(
        tx: &tokio::sync::mpsc::Sender<T>,
        map: impl Fn(&Suggestion) -> T + Send + Sync + 'static,
    ) -> Self {
        let tx = tx.downgrade();
        let alive = tx.clone();
        Self {
            deliver: Box::new(move |s| {
                let Some(tx) = tx.upgrade() else {
                    return false;
                };
                let _ = tx.try_send(map(s));
                true
            }),
            alive: Box::new(move || alive.upgrade().is_some_and(|t| !t.is_closed())),
        }
    }
}

struct Inner {
    config: ForwardConfig,
    intake: SyncSender<Queued>,
    queue: Mutex<Receiver<Queued>>,
    /// Set while spool writes fail: callers stop waiting for them (see [`Spooling`]).
    spool_failing: std::sync::atomic::AtomicBool,
    spool: Arc<Spool>,
    sink_names: Vec<String>,
    /// The sinks that take call events (started / ended) besides finals.
    event_sinks: Vec<String>,
    wake: Vec<Arc<Notify>>,
    metrics: ForwardMetrics,
    listeners: Mutex<HashMap<String, Arc<Listener>>>,
    calls: Mutex<CallMemory>,
    shutdown: CancellationToken,
}

/// A segment on its way to the intake thread, with whom to tell once it is on disk.
struct Queued {
    record: Spooled,
    written: Option<tokio::sync::oneshot::Sender<()>>,
}

/// A submitted segment on its way to the spool. A live call waits for it before sending the
/// final to its client, so that a final the client has is one the spool has: a crash after
/// the send loses nothing. The wait is bounded, and skipped while the spool is failing: a
/// full or broken disk never holds a final back from its client for long.
pub struct Spooling {
    on_disk: Option<tokio::sync::oneshot::Receiver<()>>,
    inner: Arc<Inner>,
}

impl Spooling {
    /// Waits until the segment is on disk, at most `limit`; whether it is.
    pub async fn written(self, limit: Duration) -> bool {
        let Some(on_disk) = self.on_disk else {
            return false;
        };
        if self
            .inner
            .spool_failing
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return false;
        }
        matches!(tokio::time::timeout(limit, on_disk).await, Ok(Ok(())))
    }
}

/// The forwarding stage. Cheap to clone.
#[derive(Clone)]
pub struct Forwarder {
    inner: Arc<Inner>,
    tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Forwarder {
    /// Opens the spool and starts the intake thread and one delivery task per sink on the
    /// current tokio runtime. Whatever the spool holds from an earlier run is delivered first.
    pub fn start(config: ForwardConfig, metrics: ForwardMetrics) -> Result<Self, ForwardError> {
        config.validate().map_err(ForwardError::Config)?;
        // Sinks first: a configuration that cannot work is reported as such even when the
        // spool is unavailable too.
        let sinks = config
            .sinks
            .iter()
            .map(|c| Sink::new(c, config.max_suggestions, config.min_score).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        let spool = Arc::new(Spool::open(&config.spool_path())?);
        let sink_names: Vec<String> = config.sinks.iter().map(SinkConfig::name).collect();
        let event_sinks = sink_names
            .iter()
            .zip(&sinks)
            .filter(|(_, s)| s.takes_call_events())
            .map(|(n, _)| n.clone())
            .collect();
        let status = spool.status()?;
        for name in &sink_names {
            metrics
                .pending
                .get_or_create(&ForwardMetrics::sink(name))
                .set(status.pending.get(name).copied().unwrap_or(0) as i64);
        }
        let (intake, queue) = std::sync::mpsc::sync_channel(SUBMIT_QUEUE);
        let inner = Arc::new(Inner {
            wake: sink_names.iter().map(|_| Arc::new(Notify::new())).collect(),
            config,
            intake,
            queue: Mutex::new(queue),
            spool_failing: std::sync::atomic::AtomicBool::new(false),
            spool,
            sink_names,
            event_sinks,
            metrics,
            listeners: Mutex::new(HashMap::new()),
            calls: Mutex::new(CallMemory::default()),
            shutdown: CancellationToken::new(),
        });
        {
            let inner = inner.clone();
            std::thread::Builder::new()
                .name("forward-intake".into())
                .spawn(move || intake_loop(&inner))
                .map_err(|e| ForwardError::Config(format!("cannot start intake thread: {e}")))?;
        }
        let tasks = sinks
            .into_iter()
            .enumerate()
            .map(|(i, sink)| tokio::spawn(deliver_loop(inner.clone(), i, sink)))
            .collect();
        tracing::info!(sinks = ?inner.sink_names, spool = %inner.spool.path().display(), "forwarding finals");
        Ok(Self {
            inner,
            tasks: Arc::new(Mutex::new(tasks)),
        })
    }

    /// Starts forwarding for a front door that transcribes calls (`serve`, `capture`,
    /// `transcribe`), under the one policy they share:
    /// - `forward.enabled = false`: `Ok(None)`;
    /// - a configuration that cannot work (bad settings, a sink that cannot be built): `Err`,
    ///   and the command fails at start, as it does for an unknown model;
    /// - a spool that cannot be opened (usually another callscribe process holds it, as a
    ///   `transcribe` run beside `serve` does): `Ok(None)` with a warning, and calls are
    ///   transcribed without forwarding. The transcript is the product; the process that
    ///   holds the spool is the one forwarding from it.
    ///
    /// `callscribe spool replay`, whose whole job is forwarding, uses [`Forwarder::start`].
    /// Needs a tokio runtime: the delivery tasks run on it.
    pub fn start_for_calls(config: &ForwardConfig) -> Result<Option<Self>, ForwardError> {
        if !config.enabled {
            return Ok(None);
        }
        match Self::start(config.clone(), ForwardMetrics::default()) {
            Ok(f) => Ok(Some(f)),
            Err(ForwardError::Spool(e)) => {
                tracing::warn!("forwarding is off for this run: {e}");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Queues a final segment for every sink. Never waits on a downstream; the previous
    /// segments of the same call go along as context. The returned [`Spooling`] says when the
    /// segment is on disk.
    pub fn submit(&self, segment: ForwardSegment) -> Spooling {
        let context = self
            .inner
            .calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remember(&segment, self.inner.config.context_segments);
        self.enqueue(Spooled::final_segment(segment, context))
    }

    /// Queues a call event for the sinks that take them (none: nothing is queued). It goes
    /// through the same queue as the call's finals, so it keeps its place among them.
    /// `call` names the call as [`CallEvent::id`] says.
    pub fn submit_call_event(&self, call: ForwardSegment, event: CallEvent) {
        if !self.takes_call_events() {
            return;
        }
        drop(self.enqueue(Spooled {
            segment: call,
            context: Vec::new(),
            call_event: Some(event),
        }));
    }

    /// Whether a sink publishes call events.
    pub fn takes_call_events(&self) -> bool {
        !self.inner.event_sinks.is_empty()
    }

    fn enqueue(&self, record: Spooled) -> Spooling {
        let (written, on_disk) = tokio::sync::oneshot::channel();
        let queued = Queued {
            record,
            written: Some(written),
        };
        match self.inner.intake.try_send(queued) {
            Ok(()) => {
                self.inner.metrics.queue_depth.inc();
                Spooling {
                    on_disk: Some(on_disk),
                    inner: self.inner.clone(),
                }
            }
            Err(TrySendError::Full(q) | TrySendError::Disconnected(q)) => {
                let dropped = self.inner.metrics.dropped.inc() + 1;
                if dropped == 1 || dropped.is_multiple_of(100) {
                    tracing::error!(
                        call_id = %q.record.segment.call_id,
                        segment_id = %q.record.segment.segment_id,
                        dropped,
                        "the spool has not taken a segment for {SUBMIT_QUEUE} segments \
                         (see the spool errors above); this one is not forwarded"
                    );
                }
                Spooling {
                    on_disk: None,
                    inner: self.inner.clone(),
                }
            }
        }
    }

    /// Wall-clock start of a call as first estimated from one of its finals (see [`hook`]).
    pub fn call_started_at(&self, call_id: &str, estimate_unix_ms: i64) -> i64 {
        self.inner
            .calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .started_at(call_id, estimate_unix_ms)
    }

    /// Routes the call's suggestions to `listener` (replacing an earlier one).
    pub fn listen(&self, call_id: &str, listener: Listener) {
        let mut listeners = self
            .inner
            .listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        listeners.retain(|_, l| (l.alive)());
        listeners.insert(call_id.to_owned(), Arc::new(listener));
    }

    pub fn is_listening(&self, call_id: &str) -> bool {
        self.inner
            .listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(call_id)
    }

    pub fn unlisten(&self, call_id: &str) {
        self.inner
            .listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(call_id);
    }

    pub fn metrics(&self) -> &ForwardMetrics {
        &self.inner.metrics
    }

    /// The spool, for status and dead letters while the forwarder runs (redb lets one
    /// process open the file at a time).
    pub fn spool(&self) -> &Spool {
        &self.inner.spool
    }

    pub fn sink_names(&self) -> &[String] {
        &self.inner.sink_names
    }

    /// Whether any sink answers with suggestions (so a caller knows whether to wait for them).
    pub fn config(&self) -> &ForwardConfig {
        &self.inner.config
    }

    /// Waits until everything submitted has reached every sink (delivered or dead-lettered),
    /// or `timeout`. Returns whether it did.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let queued = self.inner.metrics.queue_depth.get() > 0;
            let inner = self.inner.clone();
            let pending = tokio::task::spawn_blocking(move || {
                inner.spool.status().map(|s| {
                    inner
                        .sink_names
                        .iter()
                        .any(|n| s.pending.get(n).copied().unwrap_or(0) > 0)
                })
            })
            .await;
            if !queued && matches!(pending, Ok(Ok(false))) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// [`flush`](Self::flush) for a command about to exit: what is not delivered by `timeout`
    /// stays in the spool, and a warning says where to find it.
    pub async fn flush_before_exit(&self, timeout: Duration) {
        if !self.flush(timeout).await {
            tracing::warn!(
                "some segments are not delivered yet; they stay in the spool \
                 (`callscribe spool status`, `callscribe spool replay`)"
            );
        }
    }

    /// Stops delivery and waits for the tasks; what is undelivered stays in the spool.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        let tasks: Vec<_> =
            std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for t in tasks {
            let _ = t.await;
        }
        // Whatever the intake thread had not written yet.
        let inner = self.inner.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || spool_queued(&inner)).await {
            tracing::error!("{e}; segments still queued are lost");
        }
    }
}

/// Writes everything queued to the spool in one commit (at shutdown: the intake thread has
/// stopped, and what it had not written goes now).
fn spool_queued(inner: &Inner) -> Result<usize, SpoolError> {
    let queue = inner.queue.lock().unwrap_or_else(|e| e.into_inner());
    let mut batch: Vec<Queued> = queue.try_iter().collect();
    let n = batch.len();
    write_batch(inner, &mut batch).inspect_err(|_| {
        inner.metrics.queue_depth.dec_by(n as i64);
        inner.metrics.dropped.inc_by(n as u64);
    })
}

/// Writes `batch` to the spool in one commit; then tells each segment's submitter.
fn write_batch(inner: &Inner, batch: &mut [Queued]) -> Result<usize, SpoolError> {
    if batch.is_empty() {
        return Ok(0);
    }
    let records: Vec<Spooled> = batch.iter().map(|q| q.record.clone()).collect();
    let route = |r: &Spooled| -> &[String] {
        if r.call_event.is_some() {
            &inner.event_sinks
        } else {
            &inner.sink_names
        }
    };
    inner.spool.append_routed(&records, route)?;
    inner
        .spool_failing
        .store(false, std::sync::atomic::Ordering::Relaxed);
    inner.metrics.queue_depth.dec_by(batch.len() as i64);
    inner.metrics.spooled.inc_by(batch.len() as u64);
    for q in batch.iter_mut() {
        if let Some(w) = q.written.take() {
            let _ = w.send(());
        }
    }
    for (name, wake) in inner.sink_names.iter().zip(&inner.wake) {
        let added = records.iter().filter(|r| route(r).contains(name)).count();
        inner
            .metrics
            .pending
            .get_or_create(&ForwardMetrics::sink(name))
            .inc_by(added as i64);
        wake.notify_one();
    }
    Ok(batch.len())
}

fn intake_loop(inner: &Inner) {
    loop {
        let written = {
            let queue = inner.queue.lock().unwrap_or_else(|e| e.into_inner());
            match queue.recv_timeout(INTAKE_POLL) {
                Ok(first) => {
                    let mut batch = vec![first];
                    batch.extend(queue.try_iter().take(INTAKE_BATCH - 1));
                    let n = batch.len();
                    // Retried until it works (the segments are only in memory) or the
                    // forwarder stops. Meanwhile the queue fills and `submit` drops what
                    // does not fit; the calls themselves are not held up.
                    let mut delay = Duration::from_millis(100);
                    while let Err(e) = write_batch(inner, &mut batch) {
                        inner.metrics.spool_errors.inc();
                        inner
                            .spool_failing
                            .store(true, std::sync::atomic::Ordering::Relaxed);
                        if inner.shutdown.is_cancelled() {
                            tracing::error!("{e}; stopping: {n} segments are not forwarded");
                            inner.metrics.queue_depth.dec_by(n as i64);
                            inner.metrics.dropped.inc_by(n as u64);
                            break;
                        }
                        tracing::error!("{e}; {n} segments wait in memory, retrying in {delay:?}");
                        std::thread::sleep(delay);
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                    n
                }
                Err(RecvTimeoutError::Timeout) => 0,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        };
        if written == 0 && inner.shutdown.is_cancelled() {
            return;
        }
    }
}

/// Exponential backoff with equal jitter: half the delay fixed, half random, so retries of
/// many calls after an outage do not arrive at the downstream in lockstep.
pub fn backoff(config: &ForwardConfig, attempt: u32) -> Duration {
    let exp = config
        .retry_initial_ms
        .saturating_mul(1u64 << attempt.min(20))
        .min(config.retry_max_ms);
    Duration::from_millis(exp / 2 + fastrand::u64(0..=exp / 2))
}

/// A spool write a delivery task runs off the runtime.
type SpoolOp = Box<dyn FnOnce(&Spool) -> Result<(), SpoolError> + Send>;

async fn deliver_loop(inner: Arc<Inner>, index: usize, sink: Arc<Sink>) {
    let name = inner.sink_names[index].clone();
    let label = ForwardMetrics::sink(&name);
    let wake = inner.wake[index].clone();
    let blocking = |f: SpoolOp| {
        let spool = inner.spool.clone();
        async move {
            match tokio::task::spawn_blocking(move || f(&spool)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!("{e}"),
                Err(e) => tracing::error!("spool task failed: {e}"),
            }
        }
    };
    loop {
        if inner.shutdown.is_cancelled() {
            return;
        }
        let batch = {
            let (spool, name) = (inner.spool.clone(), name.clone());
            tokio::task::spawn_blocking(move || spool.pending(&name, DELIVERY_BATCH)).await
        };
        let batch = match batch {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => {
                tracing::error!(sink = %name, "{e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(e) => {
                tracing::error!(sink = %name, "reading the spool failed: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if batch.is_empty() {
            tokio::select! {
                () = wake.notified() => {}
                () = inner.shutdown.cancelled() => return,
                // A safety net: segments written by another path without a wake-up.
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            continue;
        }
        for (seq, record) in batch {
            let mut attempt = 0u32;
            loop {
                match sink.deliver(&record).await {
                    Ok(hits) => {
                        let sink_name = name.clone();
                        blocking(Box::new(move |s| s.ack(&sink_name, seq))).await;
                        inner.metrics.delivered.get_or_create(&label).inc();
                        inner.metrics.pending.get_or_create(&label).dec();
                        if sink.suggests() {
                            suggest(&inner, &name, &record, hits);
                        }
                        break;
                    }
                    Err(DeliveryError::Rejected(reason)) => {
                        tracing::warn!(sink = %name, segment_id = %record.segment.segment_id, "rejected; dead-lettered: {reason}");
                        let sink_name = name.clone();
                        blocking(Box::new(move |s| s.dead_letter(&sink_name, seq, &reason))).await;
                        inner.metrics.dead_lettered.get_or_create(&label).inc();
                        inner.metrics.pending.get_or_create(&label).dec();
                        break;
                    }
                    Err(DeliveryError::Transient(e)) => {
                        inner.metrics.retried.get_or_create(&label).inc();
                        let delay = backoff(&inner.config, attempt);
                        if attempt == 0 || attempt.is_multiple_of(10) {
                            tracing::warn!(sink = %name, segment_id = %record.segment.segment_id, attempt, "delivery failed, retrying in {delay:?}: {e}");
                        }
                        attempt = attempt.saturating_add(1);
                        tokio::select! {
                            () = tokio::time::sleep(delay) => {}
                            () = inner.shutdown.cancelled() => return,
                        }
                    }
                }
            }
        }
    }
}

fn suggest(inner: &Inner, sink: &str, record: &Spooled, hits: Vec<crate::kb::Hit>) {
    let call_id = &record.segment.call_id;
    let listener = inner
        .listeners
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(call_id)
        .cloned();
    let Some(listener) = listener else { return };
    let suggestion = Suggestion {
        call_id: call_id.clone(),
        segment_id: record.segment.segment_id.clone(),
        sink: sink.to_owned(),
        hits,
    };
    if !(listener.deliver)(&suggestion) {
        inner
            .listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(call_id);
    }
}

/// Recent segments and the estimated start of each call the forwarder has seen lately.
#[derive(Default)]
struct CallMemory {
    calls: HashMap<String, (i64, VecDeque<ForwardSegment>)>,
    order: VecDeque<String>,
}

impl CallMemory {
    fn entry(&mut self, call_id: &str, started_at: i64) -> &mut (i64, VecDeque<ForwardSegment>) {
        if !self.calls.contains_key(call_id) {
            if self.order.len() >= CONTEXT_CALLS {
                if let Some(old) = self.order.pop_front() {
                    self.calls.remove(&old);
                }
            }
            self.order.push_back(call_id.to_owned());
        }
        self.calls
            .entry(call_id.to_owned())
            .or_insert_with(|| (started_at, VecDeque::new()))
    }

    /// The context for `segment` (the call's last `keep` segments); then remembers it.
    fn remember(&mut self, segment: &ForwardSegment, keep: usize) -> Vec<ForwardSegment> {
        let (_, recent) = self.entry(&segment.call_id, segment.call_started_at_unix_ms);
        let context: Vec<_> = recent.iter().cloned().collect();
        if keep > 0 {
            if recent.len() >= keep {
                recent.pop_front();
            }
            recent.push_back(segment.clone());
        }
        context
    }

    fn started_at(&mut self, call_id: &str, estimate: i64) -> i64 {
        self.entry(call_id, estimate).0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(call: &str, seq: u64) -> ForwardSegment {
        ForwardSegment {
            call_id: call.into(),
            segment_id: crate::transcript::segment_id(call, 0, seq),
            sequence: seq,
            channel: 0,
            role: "customer".into(),
            dialect: String::new(),
            raw_text: format!("text {seq}"),
            text: format!("text {seq}"),
            start_ms: seq * 1000,
            end_ms: seq * 1000 + 500,
            call_started_at_unix_ms: 0,
            confidence: 0.9,
            language: "en".into(),
            tenant: String::new(),
        }
    }

    #[test]
    fn a_channel_listener_drops_when_full_and_goes_with_its_senders() {
        let (tx, mut rx) = tokio::sync::mpsc::channel(1);
        let listener = Listener::channel(&tx, |s: &Suggestion| s.segment_id.clone());
        let suggestion = |id: &str| Suggestion {
            call_id: "a".into(),
            segment_id: id.into(),
            sink: "kb".into(),
            hits: vec![],
        };
        assert!((listener.deliver)(&suggestion("a/0/0")));
        // Full: dropped, and the listener stays.
        assert!((listener.deliver)(&suggestion("a/0/1")));
        assert!((listener.alive)());
        assert_eq!(rx.try_recv().ok().as_deref(), Some("a/0/0"));
        assert!(rx.try_recv().is_err());
        drop(tx);
        assert!(!(listener.alive)());
        assert!(!(listener.deliver)(&suggestion("a/0/2")));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_front_door_fails_on_a_sink_that_cannot_work_and_goes_on_without_a_spool() {
        let dir = tempfile::tempdir().unwrap();
        let config = |spool: &std::path::Path, sinks| ForwardConfig {
            spool: Some(spool.to_owned()),
            sinks,
            ..Default::default()
        };
        let ndjson = vec![SinkConfig::Ndjson {
            name: None,
            path: dir.path().join("out.ndjson"),
        }];
        let off = ForwardConfig {
            enabled: false,
            ..config(&dir.path().join("off.redb"), ndjson.clone())
        };
        assert!(Forwarder::start_for_calls(&off).unwrap().is_none());
        let held = dir.path().join("held.redb");
        let first = Forwarder::start_for_calls(&config(&held, ndjson.clone()))
            .unwrap()
            .expect("a free spool opens");
        // The spool is this process's already: the second front door runs without it.
        assert!(Forwarder::start_for_calls(&config(&held, ndjson))
            .unwrap()
            .is_none());
        let broken = vec![SinkConfig::Grpc {
            name: None,
            endpoint: "not a url".into(),
            timeout_ms: 100,
            tls: None,
            bearer_token_file: None,
        }];
        let Err(e) = Forwarder::start_for_calls(&config(&held, broken)) else {
            panic!("a sink that cannot be built starts nothing");
        };
        assert!(matches!(e, ForwardError::Sink(_)), "{e}");
        first.shutdown().await;
    }

    #[test]
    fn backoff_grows_to_the_cap_and_never_exceeds_it() {
        let c = ForwardConfig {
            retry_initial_ms: 100,
            retry_max_ms: 1000,
            ..Default::default()
        };
        for attempt in 0..40 {
            let d = backoff(&c, attempt).as_millis() as u64;
            let exp = (100u64 << attempt.min(20)).min(1000);
            assert!(d >= exp / 2 && d <= exp, "attempt {attempt}: {d} ms");
        }
    }

    #[test]
    fn context_is_the_calls_previous_segments_only() {
        let mut m = CallMemory::default();
        assert!(m.remember(&seg("a", 0), 2).is_empty());
        m.remember(&seg("b", 0), 2);
        m.remember(&seg("a", 1), 2);
        let ctx = m.remember(&seg("a", 2), 2);
        let ids: Vec<_> = ctx.iter().map(|s| s.sequence).collect();
        assert_eq!(ids, vec![0, 1]);
        assert!(ctx.iter().all(|s| s.call_id == "a"));
    }

    #[test]
    fn a_spool_keeps_a_record_until_every_sink_has_it() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(&dir.path().join("s.redb")).unwrap();
        let sinks = vec!["kb".to_string(), "hook".to_string()];
        let rec = Spooled::final_segment(seg("a", 0), vec![]);
        let seqs = spool.append(&[rec.clone(), rec], &sinks).unwrap();
        assert_eq!(seqs, vec![0, 1]);
        spool.ack("kb", 0).unwrap();
        assert_eq!(spool.status().unwrap().segments, 2);
        spool.dead_letter("hook", 0, "HTTP 400").unwrap();
        spool.ack("kb", 1).unwrap();
        spool.ack("hook", 1).unwrap();
        let st = spool.status().unwrap();
        // seq 0 is held by its dead letter; seq 1 is gone.
        assert_eq!(st.segments, 1);
        assert_eq!(st.pending.values().sum::<u64>(), 0);
        let dead = spool.dead_letters().unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!((dead[0].seq, dead[0].reason.as_str()), (0, "HTTP 400"));
        drop(spool);
        // Sequence numbers continue after a reopen: order survives restarts.
        let spool = Spool::open(&dir.path().join("s.redb")).unwrap();
        let seqs = spool
            .append(&[Spooled::final_segment(seg("a", 1), vec![])], &sinks)
            .unwrap();
        assert_eq!(seqs, vec![2]);
    }
}
