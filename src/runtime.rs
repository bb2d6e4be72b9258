//! How a front door runs its async side: the tokio runtime, built here and nowhere else, and
//! the signals that end a command.
//!
//! Inference never runs on the runtime (whisper has its own threads, see `engine`), so a
//! command whose async work is I/O beside inference gets one worker thread and takes no core
//! from whisper; only the server, with many calls at once, gets a worker per core.

use std::cell::{Cell, RefCell};
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

thread_local! {
    /// Whether this thread is inside [`contain`]: its panics are reported by the container.
    static CONTAINED: Cell<bool> = const { Cell::new(false) };
    /// The last panic on this thread, with its place, as the hook saw it.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Runs `f`; a panic inside it becomes `Err` with its message and place in the code, for the
/// caller to report as one file's or one job's error while everything else goes on. No
/// input should panic callscribe; this is the net under the stages for the bug that does.
pub fn contain<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    let outer = CONTAINED.with(|c| c.replace(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    CONTAINED.with(|c| c.set(outer));
    result.map_err(|payload| {
        LAST_PANIC
            .with(|l| l.borrow_mut().take())
            .unwrap_or_else(|| panic_message(payload.as_ref()))
    })
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// The binary's panic report: one `error:` line naming the bug's place, instead of Rust's
/// several lines; a panic inside [`contain`] is left to its container to report (one line
/// per file or job), and only logged at debug level here.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = panic_message(info.payload());
        let place = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_else(|| "an unknown place".to_owned());
        let line = format!("internal error (a bug in callscribe, at {place}): {message}");
        if CONTAINED.with(Cell::get) {
            tracing::debug!("{line}");
            LAST_PANIC.with(|l| *l.borrow_mut() = Some(line));
        } else {
            eprintln!("error: {line}");
        }
    }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_contained_panic_is_an_error_with_its_message() {
        assert_eq!(contain(|| 7), Ok(7));
        let e = contain(|| -> u32 { panic!("bad input {}", 3) }).unwrap_err();
        assert!(e.contains("bad input 3"), "{e}");
        // Nesting keeps the outer containment.
        let outer = contain(|| contain(|| -> () { panic!("inner") }).unwrap_err());
        assert!(outer.unwrap().contains("inner"));
    }

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
