//! Whether this server takes new calls, as load balancers and orchestrators ask: the standard
//! gRPC health service (`grpc.health.v1.Health`, for the whole server `""` and for
//! `callscribe.v1.Transcription`) and `GET /health` on the metrics listener (200 / 503, for
//! balancers whose checks cannot speak gRPC: HAProxy's HTTP checks cannot send the NUL
//! bytes a gRPC message starts with).
//!
//! SERVING means "send me a new call": the models are loaded, the server is not draining,
//! and a call would be admitted (a free slot of `max_streams`). A server at capacity or
//! draining says NOT_SERVING, so a balancer sends new calls elsewhere while the calls in
//! flight go on; it says SERVING again when a call ends.
//!
//! One task owns the reporter and recomputes the status whenever something that changes it
//! happens ([`Health::nudge`]): the last computation always sees the latest state, so
//! concurrent calls starting and ending cannot leave a stale status behind.

use crate::proto::v1::transcription_server::TranscriptionServer;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::{watch, Notify, Semaphore};
use tokio_util::sync::CancellationToken;

pub struct Health {
    loaded: AtomicBool,
    draining: AtomicBool,
    admission: Arc<Semaphore>,
    changed: Notify,
    serving: watch::Sender<bool>,
}

impl Health {
    /// Starts the task that keeps `reporter` current until `shutdown`. NOT_SERVING until
    /// [`loaded`](Self::loaded).
    pub async fn start(
        reporter: tonic_health::server::HealthReporter,
        admission: Arc<Semaphore>,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        let health = Arc::new(Self {
            loaded: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            admission,
            changed: Notify::new(),
            serving: watch::channel(false).0,
        });
        set(&reporter, false).await;
        let task = health.clone();
        tokio::spawn(async move {
            let mut last = false;
            loop {
                let now = task.compute();
                if now != last {
                    set(&reporter, now).await;
                    task.serving.send_replace(now);
                    last = now;
                }
                tokio::select! {
                    () = task.changed.notified() => {}
                    () = shutdown.cancelled() => {
                        set(&reporter, false).await;
                        task.serving.send_replace(false);
                        return;
                    }
                }
            }
        });
        health
    }

    fn compute(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
            && !self.draining.load(Ordering::Acquire)
            && self.admission.available_permits() > 0
    }

    /// Something that changes the status happened (a call admitted or ended).
    pub fn nudge(&self) {
        self.changed.notify_one();
    }

    pub fn loaded(&self) {
        self.loaded.store(true, Ordering::Release);
        self.nudge();
    }

    /// From now on the server takes no new call.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Release);
        self.nudge();
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// The status as last reported.
    pub fn serving(&self) -> bool {
        *self.serving.borrow()
    }

    /// A guard that [`nudge`](Self::nudge)s when dropped: declared after a call's admission
    /// permit, it runs once the permit is back.
    pub fn on_drop(self: &Arc<Self>) -> Nudge {
        Nudge(self.clone())
    }
}

pub struct Nudge(Arc<Health>);

impl Drop for Nudge {
    fn drop(&mut self) {
        self.0.nudge();
    }
}

async fn set(reporter: &tonic_health::server::HealthReporter, serving: bool) {
    let status = if serving {
        tonic_health::ServingStatus::Serving
    } else {
        tonic_health::ServingStatus::NotServing
    };
    reporter.set_service_status("", status).await;
    reporter
        .set_service_status(
            <TranscriptionServer<super::service::TranscriptionService> as tonic::server::NamedService>::NAME,
            status,
        )
        .await;
}
