//! `callscribe spool status|replay|dead-letters`: look into and drain the forwarding spool.

use crate::config::Config;
use crate::forward::{ForwardMetrics, Forwarder, Spool};
use anyhow::Context;
use clap::Subcommand;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Subcommand)]
pub enum SpoolCommand {
    /// Segments held, pending per sink, dead letters per sink.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Deliver what the spool holds to the configured sinks, then exit.
    Replay {
        /// Give up after this long (0 = wait until everything is delivered).
        #[arg(long, default_value_t = 0)]
        timeout_secs: u64,
    },
    /// Segments the downstreams rejected, with the reason (one JSON object per line).
    DeadLetters,
}

impl SpoolCommand {
    pub fn run(self, config: Config) -> anyhow::Result<ExitCode> {
        let path = config.forward.spool_path();
        match self {
            SpoolCommand::Status { json } => {
                let status = Spool::open(&path)?.status()?;
                let mut out = std::io::stdout().lock();
                if json {
                    writeln!(out, "{}", serde_json::to_string(&status)?)?;
                } else {
                    writeln!(
                        out,
                        "spool {}: {} segment(s)",
                        path.display(),
                        status.segments
                    )?;
                    for (sink, n) in &status.pending {
                        writeln!(out, "  pending      {n:>6}  {sink}")?;
                    }
                    for (sink, n) in &status.dead_letters {
                        writeln!(out, "  dead letters {n:>6}  {sink}")?;
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
            SpoolCommand::DeadLetters => {
                let dead = Spool::open(&path)?.dead_letters()?;
                let mut out = std::io::stdout().lock();
                for d in dead {
                    writeln!(out, "{}", serde_json::to_string(&d)?)?;
                }
                Ok(ExitCode::SUCCESS)
            }
            SpoolCommand::Replay { timeout_secs } => {
                let runtime = crate::runtime::build(crate::runtime::Workers::One)
                    .context("starting the async runtime")?;
                let flushed = runtime.block_on(async move {
                    // Replaying is all this command does: a forwarder that cannot start is
                    // its failure (not the front doors' `start_for_calls`).
                    let fwd = Forwarder::start(config.forward, Default::default())?;
                    let timeout = if timeout_secs == 0 {
                        Duration::from_secs(100 * 365 * 86_400)
                    } else {
                        Duration::from_secs(timeout_secs)
                    };
                    let flushed = fwd.flush(timeout).await;
                    let m = fwd.metrics();
                    let delivered: u64 = fwd
                        .sink_names()
                        .iter()
                        .map(|n| m.delivered.get_or_create(&ForwardMetrics::sink(n)).get())
                        .sum();
                    fwd.shutdown().await;
                    Ok::<_, anyhow::Error>((flushed, delivered))
                })?;
                let (flushed, delivered) = flushed;
                eprintln!(
                    "{} segment deliveries{}",
                    delivered,
                    if flushed {
                        "; spool drained"
                    } else {
                        "; timed out with segments left"
                    }
                );
                Ok(if flushed {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                })
            }
        }
    }
}
