//! Where a live call meets the forwarder: one [`CallForwarding`] per call, told of each final
//! the call delivers, in order.
//!
//! Kept apart from the call loops (`server/call.rs`, `capture::session`) so that a loop makes
//! one call per final and knows nothing of sinks, spools or suggestions. It works on the
//! pipeline's own types; each front door turns suggestions into what its user sees (a gRPC
//! response, a printed line) in the [`Listener`] it passes.
//!
//! A call's forwarding also marks its life for the sinks that publish call events: `started`
//! when it is made, `ended` when it is dropped (however the call ended: a summary, an error,
//! a client gone), so a loop cannot forget either.

use super::segment::{unix_ms_now, CallEvent, CallEventKind, ForwardSegment};
use super::{Forwarder, Listener, Spooling};
use crate::stream::FinalOutput;
use std::sync::{Arc, Mutex};

/// What forwarding needs to know of a call besides its finals.
#[derive(Debug, Clone, PartialEq)]
pub struct CallContext {
    /// The calling tenant's id; empty without tenants (and for local calls).
    pub tenant: String,
    pub call_id: String,
    /// The adapter the call was accepted with (empty: none yet); a final decoded with an
    /// adapter names its own.
    pub dialect: String,
    /// The call's wall-clock start (Unix ms) as the telephony system gave it; `None`:
    /// estimated from the call's first final.
    pub started_at_unix_ms: Option<i64>,
}

/// A live call's forwarding: its finals go to every sink, and the suggestions the sinks
/// answer with go to the call's listener.
pub struct CallForwarding {
    forwarder: Forwarder,
    call: CallContext,
    /// Whether the call still takes suggestions; locked around each delivery, so that once
    /// [`close`](Self::close) returns no suggestion can follow what the call sends next.
    open: Arc<Mutex<bool>>,
    /// Finals forwarded, for the `ended` event.
    finals: std::sync::atomic::AtomicU64,
}

impl CallForwarding {
    /// Starts routing the call's suggestions to `listener`; only those with hits reach it
    /// (an empty answer is nothing to show a live call).
    pub fn new(forwarder: &Forwarder, call: CallContext, listener: Listener) -> Self {
        let Listener { deliver, alive } = listener;
        let open = Arc::new(Mutex::new(true));
        let gate = open.clone();
        forwarder.listen(
            &call.call_id,
            Listener {
                deliver: Box::new(move |s| {
                    let open = gate.lock().unwrap_or_else(|e| e.into_inner());
                    *open && (s.hits.is_empty() || deliver(s))
                }),
                alive,
            },
        );
        let this = Self {
            forwarder: forwarder.clone(),
            call,
            open,
            finals: std::sync::atomic::AtomicU64::new(0),
        };
        this.call_event(CallEventKind::Started, 0);
        this
    }

    fn call_event(&self, kind: CallEventKind, finals: u64) {
        // Without such a sink nothing is recorded, not even the call's start estimate.
        if !self.forwarder.takes_call_events() {
            return;
        }
        let now = unix_ms_now();
        let started_at = self.forwarder.call_started_at(
            &self.call.call_id,
            self.call.started_at_unix_ms.unwrap_or(now),
        );
        let event = CallEvent {
            kind,
            at_unix_ms: if kind == CallEventKind::Started {
                started_at
            } else {
                now
            },
            finals,
        };
        let call = ForwardSegment {
            call_id: self.call.call_id.clone(),
            segment_id: event.id(&self.call.call_id),
            sequence: 0,
            channel: 0,
            role: String::new(),
            dialect: self.call.dialect.clone(),
            raw_text: String::new(),
            text: String::new(),
            start_ms: 0,
            end_ms: 0,
            call_started_at_unix_ms: started_at,
            confidence: 0.0,
            language: String::new(),
            tenant: self.call.tenant.clone(),
        };
        self.forwarder.submit_call_event(call, event);
    }

    /// Stops the call's suggestions: none reaches the listener once this returns. A call
    /// closes before its last response (the summary), which nothing may follow.
    pub fn close(&self) {
        *self.open.lock().unwrap_or_else(|e| e.into_inner()) = false;
        self.forwarder.unlisten(&self.call.call_id);
    }

    /// Forwards a final of the call, in order; `language` is the call's as last decoded. A
    /// front door that promises its client's finals survive a crash waits on the returned
    /// [`Spooling`] before sending the final.
    pub fn forward_final(&self, language: Option<&str>, f: &FinalOutput) -> Spooling {
        self.finals
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let call_id = &self.call.call_id;
        let estimate = self
            .call
            .started_at_unix_ms
            .unwrap_or_else(|| unix_ms_now() - f.segment.end_ms as i64);
        let dialect = if f.dialect.is_empty() {
            &self.call.dialect
        } else {
            &f.dialect
        };
        self.forwarder.submit(
            ForwardSegment::new(
                call_id,
                f.sequence,
                &f.segment,
                language.unwrap_or_default(),
                dialect,
                self.forwarder.call_started_at(call_id, estimate),
            )
            .with_tenant(&self.call.tenant),
        )
    }
}

impl Drop for CallForwarding {
    fn drop(&mut self) {
        let finals = self.finals.load(std::sync::atomic::Ordering::Relaxed);
        self.call_event(CallEventKind::Ended, finals);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::Role;
    use crate::forward::{ForwardConfig, ForwardMetrics, SinkConfig};
    use crate::transcript::Segment;
    use std::time::Duration;

    fn final_output(dialect: &str) -> FinalOutput {
        FinalOutput {
            sequence: 2,
            segment: Segment {
                channel: 1,
                role: Role::Customer,
                start_ms: 1000,
                end_ms: 2500,
                text: "你好。".into(),
                raw_text: String::new(),
                confidence: 0.5,
                words: vec![],
            },
            dialect: dialect.into(),
            latency: Duration::ZERO,
        }
    }

    /// A call that has closed (it is about to send its summary) gets no more suggestions;
    /// one still open beside it does.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_closed_call_gets_no_suggestion_after_it_closes() {
        let dir = tempfile::tempdir().unwrap();
        let config = ForwardConfig {
            spool: Some(dir.path().join("spool.redb")),
            sinks: vec![SinkConfig::Kb { dir: None }],
            ..Default::default()
        };
        let fwd = Forwarder::start(config, ForwardMetrics::new()).unwrap();
        let listen = |call_id: &str| {
            let got = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let count = got.clone();
            let context = CallContext {
                tenant: String::new(),
                call_id: call_id.into(),
                dialect: String::new(),
                started_at_unix_ms: None,
            };
            let listener = Listener::new(move |_| {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                true
            });
            (CallForwarding::new(&fwd, context, listener), got)
        };
        let (open, open_got) = listen("open");
        let (closed, closed_got) = listen("closed");
        closed.close();
        let mut f = final_output("");
        f.segment.text = "I was charged twice for my order, I want a refund".into();
        for call in [&open, &closed] {
            assert!(
                call.forward_final(Some("en"), &f)
                    .written(Duration::from_secs(10))
                    .await
            );
        }
        assert!(fwd.flush(Duration::from_secs(10)).await);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while open_got.load(std::sync::atomic::Ordering::SeqCst) == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the open call got no suggestion"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(closed_got.load(std::sync::atomic::Ordering::SeqCst), 0);
        fwd.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_live_final_goes_out_with_its_calls_context() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("finals.ndjson");
        let config = ForwardConfig {
            spool: Some(dir.path().join("spool.redb")),
            sinks: vec![SinkConfig::Ndjson {
                name: None,
                path: out.clone(),
            }],
            ..Default::default()
        };
        let fwd = Forwarder::start(config, ForwardMetrics::new()).unwrap();
        let call = |call_id: &str, started_at_unix_ms| {
            let context = CallContext {
                tenant: "acme".into(),
                call_id: call_id.into(),
                dialect: "cantonese".into(),
                started_at_unix_ms,
            };
            CallForwarding::new(&fwd, context, Listener::new(|_| true))
        };
        let given =
            call("given", Some(1_700_000_000_000)).forward_final(Some("yue"), &final_output(""));
        // Told once the final is on disk, which is when a live call sends it to its client.
        assert!(given.written(Duration::from_secs(10)).await);
        assert_eq!(fwd.metrics().spooled.get(), 1);
        call("estimated", None).forward_final(None, &final_output("putonghua"));
        assert!(fwd.flush(Duration::from_secs(10)).await);
        fwd.shutdown().await;
        let lines: Vec<serde_json::Value> = std::fs::read_to_string(&out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let given = &lines[0]["segment"];
        assert_eq!(given["segment_id"], "given/1/2");
        assert_eq!(given["role"], "customer");
        // The call's adapter where the final names none; the text where it has no raw text.
        assert_eq!(given["dialect"], "cantonese");
        assert_eq!(given["raw_text"], "你好。");
        assert_eq!(given["language"], "yue");
        assert_eq!(given["call_started_at_unix_ms"], 1_700_000_000_000i64);
        // The tenant travels with every segment, for a knowledge service shared by tenants.
        assert_eq!(given["tenant"], "acme");
        let estimated = &lines[1]["segment"];
        assert_eq!(estimated["dialect"], "putonghua");
        assert_eq!(estimated["language"], "");
        assert!(estimated["call_started_at_unix_ms"].as_i64().unwrap() > 1_700_000_000_000);
    }
}
