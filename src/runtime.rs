//! How a front door runs its async side: the tokio runtime, built here and nowhere else, and
//! the signals that end a command.
//!
//! Inference never runs on the runtime (whisper has its own threads, see `engine`), so a
//! command whose async work is I/O beside inference gets one worker thread and takes no core
//! from whisper; only the server, with many calls at once, gets a worker per core.

use std::future::Future;

/// Worker threads of a runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workers {
    /// One per core: the gRPC server, with many calls at once.
    PerCore,
    /// One: a client, a sound-card capture, a one-shot command's forwarding.
    One,
}

/// The runtime a command runs its async side on.
pub fn build(workers: Workers) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if workers == Workers::One {
        builder.worker_threads(1);
    }
    builder.enable_all().build()
}

/// The requests to stop this process: Ctrl-C (SIGINT) and SIGTERM, listened for from
/// [`StopRequests::listen`] on, so a signal sent right after cannot be missed (or kill the
/// process with the default handler). Listening needs a runtime; where it cannot be had,
/// Ctrl-C alone is awaited (tokio's portable handler) and the reason is logged.
pub struct StopRequests {
    #[cfg(unix)]
    signals: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl StopRequests {
    /// Starts listening. Call it inside a runtime (`Runtime::enter` or an async context).
    pub fn listen() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let signals = signal(SignalKind::interrupt())
                .and_then(|int| Ok((int, signal(SignalKind::terminate())?)))
                .map_err(|e| tracing::error!("cannot listen for SIGINT/SIGTERM: {e}"))
                .ok();
            Self { signals }
        }
        #[cfg(not(unix))]
        Self {}
    }

    /// Resolves at the next request to stop.
    pub async fn recv(&mut self) {
        #[cfg(unix)]
        if let Some((int, term)) = &mut self.signals {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Resolves when the process is first asked to stop (Ctrl-C or SIGTERM); listening starts at
/// the call, which must be inside a runtime.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    let mut requests = StopRequests::listen();
    async move { requests.recv().await }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_command_runtime_has_one_worker() {
        assert_eq!(build(Workers::One).unwrap().metrics().num_workers(), 1);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(
            build(Workers::PerCore).unwrap().metrics().num_workers(),
            cores
        );
    }

    #[tokio::test]
    async fn sigterm_ends_a_command() {
        let stop = shutdown_signal();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &std::process::id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        tokio::time::timeout(Duration::from_secs(10), stop)
            .await
            .expect("SIGTERM resolves the shutdown signal");
    }

    #[tokio::test]
    async fn each_request_to_stop_is_seen_in_turn() {
        let mut requests = StopRequests::listen();
        for _ in 0..2 {
            let status = std::process::Command::new("kill")
                .args(["-INT", &std::process::id().to_string()])
                .status()
                .unwrap();
            assert!(status.success());
            tokio::time::timeout(Duration::from_secs(10), requests.recv())
                .await
                .expect("each Ctrl-C is a request to stop");
        }
    }
}
