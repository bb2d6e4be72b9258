//! Ctrl-C during a batch: the first stops new files from starting and lets the ones in progress
//! finish (their transcripts are written whole); a second abandons them and exits at once,
//! which loses nothing either, since transcripts are only ever renamed into place complete
//! ([`super::output`]).

use tokio_util::sync::CancellationToken;

/// Exit status after a second Ctrl-C: 128 + SIGINT, as shells report it.
pub const EXIT_INTERRUPTED: i32 = 130;

/// Starts listening for Ctrl-C (or SIGTERM) on a thread of its own (the batch runs on plain
/// threads, not a runtime). The returned token is cancelled at the first request to stop,
/// after `on_first` ran; `on_second` runs before the process exits at the second.
pub fn on_ctrl_c(
    on_first: impl Fn() + Send + 'static,
    on_second: impl Fn() + Send + 'static,
) -> std::io::Result<CancellationToken> {
    let token = CancellationToken::new();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    // Listening from here, not from the thread, so that a Ctrl-C right after this returns
    // is caught.
    let mut requests = {
        let _guard = runtime.enter();
        crate::runtime::StopRequests::listen()
    };
    let cancel = token.clone();
    std::thread::Builder::new()
        .name("ctrl-c".into())
        .spawn(move || {
            runtime.block_on(async move {
                requests.recv().await;
                on_first();
                cancel.cancel();
                requests.recv().await;
                on_second();
                std::process::exit(EXIT_INTERRUPTED);
            })
        })?;
    Ok(token)
}

/// The command line of this run with `--skip-existing` added (once): what resumes it.
pub fn resume_command() -> String {
    let mut args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--skip-existing") {
        args.push("--skip-existing".into());
    }
    args.iter()
        .map(|a| crate::audio::decode::shell_word(std::path::Path::new(a)))
        .collect::<Vec<_>>()
        .join(" ")
}
