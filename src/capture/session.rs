//! A captured call, from the device's ring to wherever it goes: transcribed here by the same
//! call driver a gRPC call runs on (`capture`), or sent to a server as LINEAR16 (`capture
//! --server`). Both drain the ring every [`DRAIN_EVERY`], record what they drained, and end
//! on `stop` (Ctrl-C) by stopping the device, taking what it already delivered and
//! finalising the call.
//!
//! A sound card cannot be slowed down, so nothing here holds the device back: the ring
//! absorbs stalls, and its overrun count (logged per burst, totalled in the
//! [`CaptureSummary`]) reports what it could not.

use super::{Capture, CaptureError, CaptureFormat, Recorder};
use crate::audio::codec::{self, Encoding};
use crate::forward::{CallContext, CallForwarding, Forwarder, Listener};
use crate::kb::Suggestion;
use crate::stream::{CallDriver, CallOutput, CallReport, Completed, StreamError};
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinHandle};

/// How often the ring is drained: a tenth of the default ring, and short enough that speech
/// events reach the screen without a visible lag.
pub const DRAIN_EVERY: Duration = Duration::from_millis(10);
/// Audio messages queued towards a server before the loop waits on the network (and the
/// ring, not memory, absorbs the delay): 64 × 10 ms.
pub const SEND_QUEUE: usize = 64;
/// Suggestions waiting to be reported; more are dropped (a late suggestion is worth little).
const SUGGESTION_QUEUE: usize = 64;

/// The device side of a session: a [`Capture`], or a script in tests.
pub trait Ring {
    /// Moves every frame the device has delivered into `out` (interleaved).
    fn drain(&mut self, out: &mut Vec<f32>);
    /// Stops the device; what it delivered before stays to be drained.
    fn stop(&mut self);
    /// Frames lost so far because the ring was full.
    fn lost_frames(&self) -> u64;
}

impl Ring for Capture {
    fn drain(&mut self, out: &mut Vec<f32>) {
        Capture::drain(self, out);
    }
    fn stop(&mut self) {
        Capture::stop(self);
    }
    fn lost_frames(&self) -> u64 {
        self.stats().overrun_frames.load(Ordering::Relaxed)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error(transparent)]
    Stream(#[from] StreamError),
    /// The reports could not be written (a closed pipe, a full disk).
    #[error("writing the call's output: {0}")]
    Output(#[from] std::io::Error),
}

/// The ring drained into a buffer, recorded as it goes.
struct Drain<'a, R> {
    ring: &'a mut R,
    recorder: Option<&'a mut Recorder>,
    samples: Vec<f32>,
    /// Lost frames already logged.
    reported: u64,
}

impl<'a, R: Ring> Drain<'a, R> {
    fn new(ring: &'a mut R, recorder: Option<&'a mut Recorder>) -> Self {
        Self {
            ring,
            recorder,
            samples: Vec::new(),
            reported: 0,
        }
    }

    /// What the device delivered since the last call, recorded.
    fn next(&mut self) -> Result<&[f32], CaptureError> {
        self.samples.clear();
        self.ring.drain(&mut self.samples);
        if let Some(r) = self.recorder.as_mut() {
            r.write(&self.samples)?;
        }
        Ok(&self.samples)
    }

    /// Stops the device and returns what it delivered before it stopped.
    fn last(&mut self) -> Result<&[f32], CaptureError> {
        self.ring.stop();
        self.next()
    }

    /// Logs an overrun once per burst, never per callback.
    fn check_overruns(&mut self) {
        let lost = self.ring.lost_frames();
        if lost > self.reported {
            tracing::warn!(
                lost_frames = lost - self.reported,
                total_lost_frames = lost,
                "capture buffer overrun: the pipeline fell behind the device and frames were lost"
            );
            self.reported = lost;
        }
    }
}

/// A call transcribed here.
pub struct LocalCall<'p> {
    pub driver: CallDriver<'p>,
    /// Reported first, as a server reports the config it accepted.
    pub accepted: crate::stream::AcceptedCall,
    /// Where finals go on to (`None`: nowhere); suggestions come back as reports.
    pub forwarder: Option<Forwarder>,
    /// How long to wait for the sinks once the call is over.
    pub flush_timeout: Duration,
}

/// Where a local call's reports go, and each final on to forwarding.
struct Reports<'r, F> {
    call_id: String,
    report: &'r mut F,
    forwarding: Option<CallForwarding>,
    /// The call's language as last decoded (forwarded with each final).
    language: Option<String>,
}

impl<F: FnMut(&CallReport) -> std::io::Result<()>> Reports<'_, F> {
    fn output(&mut self, o: &CallOutput) -> std::io::Result<()> {
        (self.report)(&CallReport::output(&self.call_id, o))?;
        if let (Some(forwarding), CallOutput::Final(f)) = (&self.forwarding, o) {
            // Printed here already; nobody else holds the final for a crash to strand.
            drop(forwarding.forward_final(self.language.as_deref(), f));
        }
        Ok(())
    }

    /// A decode's result, after the adapter it identified, if it did.
    fn completed(&mut self, done: Completed, language: Option<&str>) -> std::io::Result<()> {
        if let Some(d) = &done.dialect {
            (self.report)(&CallReport::dialect(d))?;
        }
        if let Some(o) = done.output {
            self.language = language.map(str::to_owned);
            self.output(&o)?;
        }
        Ok(())
    }
}

/// Transcribes the captured call here until `stop`, reporting as a server would: the call
/// as accepted, its adapter, speech events, interims, finals and their suggestions, then,
/// once every final is decoded and the sinks are flushed, the summary.
pub async fn transcribe(
    ring: &mut impl Ring,
    recorder: Option<&mut Recorder>,
    call: LocalCall<'_>,
    stop: impl Future<Output = ()>,
    report: &mut impl FnMut(&CallReport) -> std::io::Result<()>,
) -> Result<(), SessionError> {
    let LocalCall {
        mut driver,
        accepted,
        forwarder,
        flush_timeout,
    } = call;
    let call_id = driver.setup().call_id.clone();
    let (suggestions, mut suggested) = mpsc::channel(SUGGESTION_QUEUE);
    let forwarding = forwarder.as_ref().map(|f| {
        let context = CallContext {
            // A sound card on this machine is no tenant's.
            tenant: String::new(),
            call_id: call_id.clone(),
            dialect: accepted.dialect.clone(),
            started_at_unix_ms: None,
        };
        CallForwarding::new(
            f,
            context,
            Listener::channel(&suggestions, Suggestion::clone),
        )
    });
    let mut out = Reports {
        language: driver.language().map(str::to_owned),
        call_id,
        report,
        forwarding,
    };
    (out.report)(&CallReport::Accepted(accepted))?;
    if let Some(d) = driver.take_dialect() {
        (out.report)(&CallReport::dialect(&d))?;
    }
    let mut ring = Drain::new(ring, recorder);
    let mut outputs: Vec<CallOutput> = Vec::new();
    let mut tick = tokio::time::interval(DRAIN_EVERY);
    let mut stop = std::pin::pin!(stop);
    loop {
        tokio::select! {
            biased;
            () = &mut stop => break,
            Some(done) = driver.next() => out.completed(done, driver.language())?,
            Some(s) = suggested.recv() => (out.report)(&CallReport::Suggestion(s))?,
            _ = tick.tick() => {
                driver.push_samples(ring.next()?, &mut outputs)?;
                for o in outputs.drain(..) {
                    out.output(&o)?;
                }
                ring.check_overruns();
            }
        }
    }
    // Stopped: take what the device already delivered, finalise the open utterance.
    driver.push_samples(ring.last()?, &mut outputs)?;
    driver.finish(&mut outputs)?;
    for o in outputs.drain(..) {
        out.output(&o)?;
    }
    while let Some(done) = driver.next().await {
        out.completed(done, driver.language())?;
    }
    // Every final is submitted: wait for the sinks (and the suggestions they answer).
    if let Some(f) = &forwarder {
        f.flush_before_exit(flush_timeout).await;
    }
    while let Ok(s) = suggested.try_recv() {
        (out.report)(&CallReport::Suggestion(s))?;
    }
    (out.report)(&CallReport::Summary(driver.summary()))?;
    if let Some(f) = forwarder {
        f.shutdown().await;
    }
    Ok(())
}

/// Sends the captured audio to `audio` as LINEAR16 messages until `stop`, or until
/// `session` (the client task reading `audio`) ends on its own; then sends what the device
/// delivered before it stopped, half-closes, and waits for the session to finish the call.
/// Returns the session's own result.
pub async fn send<T>(
    ring: &mut impl Ring,
    recorder: Option<&mut Recorder>,
    stop: impl Future<Output = ()>,
    audio: mpsc::Sender<Vec<u8>>,
    mut session: JoinHandle<T>,
) -> Result<Result<T, JoinError>, CaptureError> {
    let encode = |samples: &[f32]| {
        let mut bytes = Vec::with_capacity(samples.len() * 2);
        codec::encode(Encoding::Linear16, samples, &mut bytes);
        bytes
    };
    let mut ring = Drain::new(ring, recorder);
    let mut tick = tokio::time::interval(DRAIN_EVERY);
    let mut stop = std::pin::pin!(stop);
    let mut ended_early = None;
    loop {
        tokio::select! {
            biased;
            () = &mut stop => break,
            r = &mut session => {
                // The server ended the call first (an error, or its shutdown).
                ended_early = Some(r);
                break;
            }
            _ = tick.tick() => {
                let samples = ring.next()?;
                // A send fails only once the session has ended; the next turn sees why.
                if !samples.is_empty() && audio.send(encode(samples)).await.is_err() {
                    continue;
                }
                ring.check_overruns();
            }
        }
    }
    let samples = ring.last()?;
    if !samples.is_empty() {
        let _ = audio.send(encode(samples)).await;
    }
    // Half-close: the server finalises the open utterance and sends the summary.
    drop(audio);
    Ok(match ended_early {
        Some(r) => r,
        None => session.await,
    })
}

/// What the device did during a call.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptureSummary {
    pub device: String,
    pub format: CaptureFormat,
    /// Audio the device delivered, in seconds of its clock.
    pub captured_secs: f64,
    /// Overrun bursts, and the frames they lost.
    pub overruns: u64,
    pub overrun_frames: u64,
    pub device_errors: u64,
    /// The WAV written with `--record`, complete.
    pub recording: Option<PathBuf>,
}

/// Closes the recording (its header is written only now) and sums up what the device did.
pub fn finish(
    capture: Capture,
    recorder: Option<Recorder>,
) -> Result<CaptureSummary, CaptureError> {
    let format = capture.format();
    let stats = capture.stats();
    let frames = stats.device_frames.load(Ordering::Relaxed);
    Ok(CaptureSummary {
        recording: recorder.map(Recorder::finish).transpose()?,
        device: capture.device().to_owned(),
        captured_secs: frames as f64 / f64::from(format.sample_rate_hz),
        overruns: stats.overruns.load(Ordering::Relaxed),
        overrun_frames: stats.overrun_frames.load(Ordering::Relaxed),
        device_errors: stats.stream_errors.load(Ordering::Relaxed),
        format,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// A device that delivers one chunk per drain, and `at_stop` once stopped.
    #[derive(Default)]
    struct Scripted {
        chunks: VecDeque<Vec<f32>>,
        at_stop: Vec<f32>,
        stopped: bool,
    }

    impl Ring for Scripted {
        fn drain(&mut self, out: &mut Vec<f32>) {
            if self.stopped {
                out.append(&mut self.at_stop);
            } else if let Some(chunk) = self.chunks.pop_front() {
                out.extend(chunk);
            }
        }
        fn stop(&mut self) {
            self.stopped = true;
        }
        fn lost_frames(&self) -> u64 {
            0
        }
    }

    fn linear16(samples: &[f32]) -> Vec<u8> {
        let mut bytes = Vec::new();
        codec::encode(Encoding::Linear16, samples, &mut bytes);
        bytes
    }

    /// A client session: collects what it is sent until the half-close.
    fn collect(mut rx: mpsc::Receiver<Vec<u8>>) -> JoinHandle<Vec<Vec<u8>>> {
        tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(m) = rx.recv().await {
                got.push(m);
            }
            got
        })
    }

    #[tokio::test]
    async fn the_server_gets_what_the_device_delivered_then_the_rest_then_a_half_close() {
        let mut ring = Scripted {
            chunks: [vec![0.5; 8], vec![], vec![-0.25; 4]].into(),
            at_stop: vec![0.125; 2],
            ..Default::default()
        };
        let (tx, rx) = mpsc::channel(SEND_QUEUE);
        let stop = tokio::time::sleep(DRAIN_EVERY * 10);
        let sent = send(&mut ring, None, stop, tx, collect(rx))
            .await
            .unwrap()
            .unwrap();
        // Empty drains send nothing; the session ended because the sender closed.
        assert_eq!(
            sent,
            [
                linear16(&[0.5; 8]),
                linear16(&[-0.25; 4]),
                linear16(&[0.125; 2])
            ]
        );
        assert!(ring.stopped);
    }

    #[tokio::test]
    async fn a_call_the_server_ends_first_ends_the_capture() {
        let mut ring = Scripted {
            chunks: vec![vec![0.5; 8]; 10_000].into(),
            ..Default::default()
        };
        let (tx, mut rx) = mpsc::channel(SEND_QUEUE);
        let session = tokio::spawn(async move {
            rx.recv().await;
            rx.recv().await;
            "ended by the server"
        });
        let ended = send(&mut ring, None, std::future::pending(), tx, session)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ended, "ended by the server");
        assert!(
            ring.stopped,
            "the device is stopped when the server ends the call"
        );
    }
}
