//! `callscribe submit`, `callscribe worker` and `callscribe jobs status`: the distributed
//! batch's front doors. The work is in [`crate::jobs`]; these parse, connect and print.

use super::bars::jobs_bar;
use super::flags::{DialectFlags, LanguageFlags, ModelFlags, RecordingFlags};
use crate::batch::{self, interrupt, output, Include};
use crate::config::Config;
use crate::engine::Pool;
use crate::forward::config::SinkTls;
use crate::forward::nats::NatsConnect;
use crate::jobs::submit::{Outcome, Submitted};
use crate::jobs::worker::{self, Transcriber, WorkerEvent, WorkerSettings};
use crate::jobs::{JobOptions, JobSpec, Queue};
use crate::plan::CallPlan;
use crate::runtime::{self, Workers};
use crate::transcript::format::Format;
use anyhow::Context;
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How `submit --wait` looks for finished jobs.
const WAIT_POLL: Duration = Duration::from_millis(500);

/// Where NATS is and how to log in; the same servers, creds and TLS as the `nats` sink.
#[derive(Debug, Clone, Args)]
pub struct NatsFlags {
    /// NATS server URL(s), comma-separated (nats://host:4222, tls://…).
    #[arg(long, value_delimiter = ',', required = true, env = "CALLSCRIBE_NATS")]
    pub nats: Vec<String>,
    /// NATS .creds file (JWT and NKey seed).
    #[arg(long)]
    pub nats_creds: Option<PathBuf>,
    /// File holding a NATS token.
    #[arg(long)]
    pub nats_token_file: Option<PathBuf>,
    /// PEM CA bundle to verify the NATS servers with (implies TLS).
    #[arg(long)]
    pub nats_tls_ca: Option<PathBuf>,
    /// JetStream replicas of the buckets and streams, when this command creates them.
    #[arg(long, default_value_t = 1)]
    pub replicas: usize,
    /// Seconds allowed to connect, and for each JetStream request.
    #[arg(long, default_value_t = 10)]
    pub nats_timeout: u64,
}

impl NatsFlags {
    fn connect(&self) -> anyhow::Result<NatsConnect> {
        let tls = self.nats_tls_ca.as_ref().map(|ca| SinkTls {
            ca_path: Some(ca.clone()),
            cert_path: None,
            key_path: None,
        });
        NatsConnect::new(
            &self.nats,
            self.nats_token_file.as_deref(),
            self.nats_creds.as_deref(),
            tls.as_ref(),
            Duration::from_secs(self.nats_timeout),
        )
        .map_err(anyhow::Error::msg)
        .context("--nats")
    }

    async fn open(&self) -> anyhow::Result<Queue> {
        anyhow::ensure!(
            matches!(self.replicas, 1..=5),
            "--replicas {}: JetStream keeps 1 to 5",
            self.replicas
        );
        Ok(Queue::open(&self.connect()?, self.replicas).await?)
    }
}

#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// Recordings and/or folders (searched recursively), as `transcribe` takes them.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    #[command(flatten)]
    pub nats: NatsFlags,
    /// Which files in folders to take, e.g. '*.mp3,*.wav' (default: every format callscribe
    /// reads).
    #[arg(long, value_name = "PATTERNS")]
    pub include: Option<Include>,
    /// Wait for the jobs, with a progress bar, and fetch the transcripts (JSON) into
    /// --output.
    #[arg(long)]
    pub wait: bool,
    /// Folder for the transcripts with --wait (default: ./transcripts).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub model: ModelFlags,
    #[command(flatten)]
    pub language: LanguageFlags,
    #[command(flatten)]
    pub recording: RecordingFlags,
    #[command(flatten)]
    pub dialect: DialectFlags,
}

impl SubmitArgs {
    fn options(&self) -> JobOptions {
        JobOptions {
            model: self.model.model.clone(),
            language: self.language.language.clone(),
            dialect: self.dialect.dialect.clone(),
            region: self.dialect.region.clone(),
            hotwords: self.language.hotwords.clone(),
            prompt: self.recording.prompt.clone(),
            channels: self.recording.channels.as_ref().map(ToString::to_string),
            no_vad: self.recording.no_vad,
            no_pack: self.recording.no_pack,
            fit_window: self.recording.fit_window,
        }
    }

    pub fn run(self) -> anyhow::Result<ExitCode> {
        let include = self.include.clone().unwrap_or_default();
        let out_dir = self
            .output
            .clone()
            .unwrap_or_else(|| PathBuf::from("transcripts"));
        // Discovered as `transcribe` does; the output paths are used with --wait only.
        let (found, missing) =
            batch::discover(&self.inputs, Some(&out_dir), Format::Json, &include);
        for m in &missing {
            eprintln!("error: {m}");
        }
        anyhow::ensure!(!found.is_empty(), "nothing to submit");
        let options = self.options();
        let runtime = runtime::build(Workers::One).context("starting the async runtime")?;
        runtime.block_on(async {
            let queue = self.nats.open().await?;
            let mut submitted: Vec<(JobSpec, PathBuf)> = Vec::new();
            let mut failed = missing.len();
            for job in &found {
                match queue.submit(&job.input, &options).await {
                    Ok((spec, state)) => {
                        let said = match state {
                            Submitted::Queued => "queued",
                            Submitted::AlreadyQueued => "already queued",
                            Submitted::AlreadyDone => "already done",
                        };
                        println!("{said} {} {}", spec.job_id, job.input.display());
                        let output = job
                            .output
                            .clone()
                            .unwrap_or_else(|| out_dir.join(&spec.file_name));
                        submitted.push((spec, output));
                    }
                    Err(e) => {
                        failed += 1;
                        eprintln!("error: {}", e.to_string().replace('\n', " "));
                    }
                }
            }
            if self.wait {
                failed += wait(&queue, &submitted).await?;
            }
            Ok(if failed > 0 {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        })
    }
}

/// Waits for every job's outcome, writing transcripts as they come; the number failed.
async fn wait(queue: &Queue, jobs: &[(JobSpec, PathBuf)]) -> anyhow::Result<usize> {
    let bar = jobs_bar(jobs.len());
    let mut pending: Vec<&(JobSpec, PathBuf)> = jobs.iter().collect();
    let mut failed = 0;
    while !pending.is_empty() {
        let mut still = Vec::with_capacity(pending.len());
        for entry @ (job, path) in pending {
            match queue.outcome(&job.job_id).await? {
                None => still.push(entry),
                Some(Outcome::Done(bytes)) => {
                    output::write_atomically(path, &bytes)
                        .with_context(|| format!("writing {}", path.display()))?;
                    bar.inc(1);
                }
                Some(Outcome::Failed(error)) => {
                    failed += 1;
                    bar.suspend(|| {
                        eprintln!(
                            "error: {} (job {}): {}",
                            job.file_name,
                            job.job_id,
                            error.replace('\n', " ")
                        )
                    });
                    bar.inc(1);
                }
            }
        }
        pending = still;
        bar.set_message(format!("{failed} failed"));
        if !pending.is_empty() {
            tokio::time::sleep(WAIT_POLL).await;
        }
    }
    bar.finish_and_clear();
    eprintln!(
        "{} transcript(s) written, {failed} failed",
        jobs.len() - failed
    );
    Ok(failed)
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub nats: NatsFlags,
    /// The worker's name in completion events (default: host/pid).
    #[arg(long)]
    pub name: Option<String>,
    /// Seconds without an ack before a job goes to another worker (in-progress acks are sent
    /// every third of it while a job works).
    #[arg(long, default_value_t = 60)]
    pub ack_wait: u64,
    /// Deliveries of a failing job before it goes to the dead letters.
    #[arg(long, default_value_t = 3)]
    pub max_deliver: i64,
    #[command(flatten)]
    pub model: ModelFlags,
    #[command(flatten)]
    pub language: LanguageFlags,
    /// whisper states (0 = auto).
    #[arg(long)]
    pub workers: Option<usize>,
    /// whisper threads per state (0 = auto).
    #[arg(long)]
    pub threads: Option<usize>,
}

impl WorkerArgs {
    pub fn run(self, mut config: Config) -> anyhow::Result<ExitCode> {
        anyhow::ensure!(self.ack_wait >= 1, "--ack-wait must be at least 1 second");
        anyhow::ensure!(self.max_deliver >= 1, "--max-deliver must be at least 1");
        self.model.apply(&mut config);
        self.language.apply(&mut config);
        if let Some(w) = self.workers {
            config.transcribe.workers = w;
        }
        if let Some(t) = self.threads {
            config.decode.threads = t;
        }
        let connect = self.nats.connect()?;
        // The worker's model is loaded once, before the first job, as `transcribe` does.
        let request = DialectFlags::default().request(&self.model);
        let models = super::OnDemand::new(&config);
        let dialects = super::load_dialects(&config)?;
        CallPlan::resolve(&request, &config.decode, Some(dialects.clone()), &models)?;
        let (workers, threads) =
            crate::config::batch_layout(1, config.transcribe.workers, config.decode.threads);
        let pool = Pool::start(vec![models.into_engine()?], workers, threads, workers * 2)?;
        let vad = if config.transcribe.vad {
            Some(super::resolve_vad(&config)?)
        } else {
            None
        };
        let settings = WorkerSettings {
            name: self.name.clone().unwrap_or_else(default_name),
            ack_wait: Duration::from_secs(self.ack_wait),
            max_deliver: self.max_deliver,
        };
        let transcriber = Arc::new(Transcriber {
            pool,
            config,
            dialects: Some(dialects),
            vad,
        });
        let stop = stop_on_signals()?;
        let runtime = runtime::build(Workers::One).context("starting the async runtime")?;
        runtime.block_on(async {
            let queue = Queue::open(&connect, self.nats.replicas).await?;
            println!("worker {} waiting for jobs", settings.name);
            let report = |event: WorkerEvent| print_event(&event);
            worker::run(&queue, transcriber, &settings, &stop, &report).await?;
            eprintln!("worker {} stopped", settings.name);
            Ok(ExitCode::SUCCESS)
        })
    }
}

/// One stdout line per job event (scripts and tests read them).
fn print_event(event: &WorkerEvent) {
    use std::io::Write;
    let line = match event {
        WorkerEvent::Started { job, delivery } => format!(
            "started {} {} (delivery {delivery})",
            job.job_id, job.file_name
        ),
        WorkerEvent::Done { job, already } => format!(
            "done {} {}{}",
            job.job_id,
            job.file_name,
            if *already {
                " (result was stored already)"
            } else {
                ""
            }
        ),
        WorkerEvent::Failed {
            job,
            error,
            delivery,
            dead,
        } => format!(
            "failed {} {} (delivery {delivery}{}): {}",
            job.job_id,
            job.file_name,
            if *dead {
                ", dead letter"
            } else {
                ", will retry"
            },
            error.replace('\n', " ")
        ),
        WorkerEvent::BadMessage(e) => format!("dropped a message: {e}"),
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn default_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".into());
    format!("{host}/{}", std::process::id())
}

/// Cancelled by the first SIGTERM or Ctrl-C: the job in progress finishes, then the worker
/// stops. A second one stops at once (the job comes back to another worker after the ack
/// wait).
fn stop_on_signals() -> anyhow::Result<CancellationToken> {
    interrupt::on_ctrl_c(
        || eprintln!("stopping: the job in progress finishes first (a second signal abandons it)"),
        || {},
    )
    .context("listening for Ctrl-C and SIGTERM")
}

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Jobs queued, in progress, done and failed.
    Status {
        #[command(flatten)]
        nats: NatsFlags,
        /// Print the counts as JSON.
        #[arg(long)]
        json: bool,
    },
}

impl JobsCommand {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let JobsCommand::Status { nats, json } = self;
        let runtime = runtime::build(Workers::One).context("starting the async runtime")?;
        let counts = runtime.block_on(async {
            nats.open()
                .await?
                .counts()
                .await
                .map_err(anyhow::Error::from)
        })?;
        if json {
            println!("{}", serde_json::to_string(&counts)?);
        } else {
            println!(
                "queued {}\nin progress {}\ndone {}\nfailed {}",
                counts.queued, counts.in_progress, counts.done, counts.failed
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}
