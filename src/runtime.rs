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

/// Resolves when the process is asked to stop: Ctrl-C (SIGINT) or SIGTERM. SIGTERM is
/// listened for from the call on (so a signal sent right after cannot be missed), which
/// needs a runtime; where it cannot be, Ctrl-C alone ends the command and the reason is
/// logged.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| tracing::error!("cannot listen for SIGTERM: {e}"))
        .ok();
    async move {
        #[cfg(unix)]
        if let Some(mut term) = term {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
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
}
