//! Command-line front doors. Each command is a struct with `run()` that parses its flags
//! (shared groups in [`flags`]), applies them to the configuration and prints; the library
//! does the work, run loops included (`capture::session`, `runtime`, `forward`).

mod bars;
mod capture;
mod client;
mod dialects;
mod flags;
mod jobs;
mod kb;
mod keys;
mod models;
mod printer;
mod serve;
mod spool;
mod stream;
mod transcribe;

pub use dialects::{load_dialects, model_resolver};
pub use models::{resolve_model, resolve_vad, OnDemand};

use crate::config::Config;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "callscribe",
    version,
    about = "Timestamped, dialect-aware call transcripts with whisper"
)]
pub struct Cli {
    /// TOML configuration file (see callscribe.example.toml); flags override it.
    #[arg(long, global = true, env = "CALLSCRIBE_CONFIG")]
    pub config: Option<PathBuf>,
    /// More log output (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Transcribe WAV recordings (files or folders) into timestamped transcripts.
    Transcribe(transcribe::TranscribeArgs),
    /// List, fetch and import whisper models.
    #[command(subcommand)]
    Models(models::ModelsCommand),
    /// List, show and check dialect adapters.
    #[command(subcommand)]
    Dialects(dialects::DialectsCommand),
    /// Serve live calls and recordings over gRPC (telephony systems, QA tools).
    Serve(serve::ServeArgs),
    /// Stream a recording to a server as a live call and print the results as they arrive.
    Stream(stream::StreamArgs),
    /// Transcribe a call live from a sound card (or send it to a server), until Ctrl-C.
    Capture(capture::CaptureArgs),
    /// Index and query the embedded knowledge base.
    #[command(subcommand)]
    Kb(kb::KbCommand),
    /// Inspect and drain the forwarding spool.
    #[command(subcommand)]
    Spool(spool::SpoolCommand),
    /// Make API keys for a server's tenants.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Queue recordings for workers on NATS JetStream (distributed batch).
    Submit(jobs::SubmitArgs),
    /// Transcribe queued recordings from NATS JetStream until stopped.
    Worker(jobs::WorkerArgs),
    /// The distributed batch's jobs.
    #[command(subcommand)]
    Jobs(jobs::JobsCommand),
}

impl Cli {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let config = Config::load(self.config.as_deref())?;
        match self.command {
            Command::Transcribe(args) => args.run(config),
            Command::Models(cmd) => cmd.run(config),
            Command::Dialects(cmd) => cmd.run(config),
            Command::Serve(args) => args.run(config, self.config.clone()),
            Command::Stream(args) => args.run(),
            Command::Capture(args) => args.run(config),
            Command::Kb(cmd) => cmd.run(config),
            Command::Spool(cmd) => cmd.run(config),
            Command::Keys(cmd) => cmd.run(config),
            Command::Submit(args) => args.run(),
            Command::Worker(args) => args.run(config),
            Command::Jobs(cmd) => cmd.run(),
        }
    }
}

/// Logs go to stderr so that stdout carries only transcripts.
pub fn init_logging(verbose: u8) {
    // symphonia logs what it skips and where a probe ended (a text file named .mp3 is an
    // ERROR there); audio::decode turns what matters into the file's one error line.
    // The audit trail (one line per server call, `server::audit`) is kept at every level.
    let default = match verbose {
        0 => "warn,symphonia=off,audit=info",
        1 => "info,whisper_rs=warn,symphonia=off",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours for a person at a terminal only: a log file or journald (where the audit
        // lines are read by tools) gets plain `key=value` text.
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}

/// An error and its causes on one line: `outer: inner: root`.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let s = cause.to_string().replace('\n', " ");
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ")
}
