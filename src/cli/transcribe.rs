//! `callscribe transcribe FILE|DIR...`: recordings → transcripts, with a progress bar.

use super::bars::batch_bar;
use super::flags::{DialectFlags, LanguageFlags, ModelFlags, RecordingFlags};
use crate::audio::decode;
use crate::batch::report::{write_summary, Report, Row};
use crate::batch::{self, interrupt, output, BatchObserver, Include, Job};
use crate::config::{batch_layout, Config};
use crate::engine::Pool;
use crate::forward::Forwarder;
use crate::pipeline::RecordingOptions;
use crate::plan::CallPlan;
use crate::runtime::{self, Workers};
use crate::transcript::format::{render, Format};
use crate::transcript::Transcript;
use anyhow::Context;
use clap::Args;
use indicatif::ProgressBar;
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Args)]
pub struct TranscribeArgs {
    /// Recordings (WAV, MP3, FLAC, Ogg, Opus, WebM, M4A…) and/or folders, searched
    /// recursively.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Which files in folders to take: comma-separated name patterns, e.g. '*.mp3,*.wav'
    /// (default: every format callscribe reads).
    #[arg(long, value_name = "PATTERNS")]
    pub include: Option<Include>,
    /// Leave out recordings whose transcript in --output is complete and newer than the
    /// recording: resumes an interrupted run.
    #[arg(long)]
    pub skip_existing: bool,
    /// Write a CSV report, one row per recording: status (done, skipped, failed,
    /// interrupted), error, duration, channels, language, adapter, words, real-time factor.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Write the run's totals and failures as JSON at the end.
    #[arg(long, value_name = "FILE")]
    pub summary_json: Option<PathBuf>,
    /// txt, json, srt or vtt.
    #[arg(short, long, value_enum)]
    pub format: Option<Format>,
    /// Folder for transcripts (default: stdout for one file, ./transcripts otherwise).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub model: ModelFlags,
    #[command(flatten)]
    pub language: LanguageFlags,
    #[command(flatten)]
    pub recording: RecordingFlags,
    /// whisper states: files share them out, a file with several decodes its windows side by
    /// side (0 = auto).
    #[arg(long)]
    pub workers: Option<usize>,
    /// whisper threads per state (0 = auto).
    #[arg(long)]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub dialect: DialectFlags,
}

struct Writer {
    format: Format,
    forward: Option<BatchForward>,
    report: Report,
    /// When each file in progress was started, for its real-time factor.
    started_at: Mutex<HashMap<PathBuf, Instant>>,
    /// Cancelled at the first Ctrl-C.
    stop: Option<CancellationToken>,
    bar: ProgressBar,
    total_secs: f64,
    files: usize,
    done: AtomicUsize,
    failed: AtomicUsize,
    started: Instant,
}

impl Writer {
    fn update_message(&self, done_secs: f64) {
        let elapsed = self.started.elapsed().as_secs_f64();
        let rtf = if done_secs > 0.0 {
            elapsed / done_secs
        } else {
            0.0
        };
        let failed = self.failed.load(Ordering::Relaxed);
        self.bar.set_message(format!(
            "{:.2}/{:.2} h audio · RTF {rtf:.2} · {}/{} files{}",
            done_secs / 3600.0,
            self.total_secs / 3600.0,
            self.done.load(Ordering::Relaxed),
            self.files,
            if failed > 0 {
                format!(" · {failed} failed")
            } else {
                String::new()
            }
        ));
    }
}

impl BatchObserver for Writer {
    fn audio_progress(&self, done_secs: f64) {
        self.bar.set_position((done_secs * 1000.0) as u64);
        self.update_message(done_secs);
    }

    fn finished(&self, job: &Job, mut transcript: Transcript) -> Result<(), String> {
        if let Some(d) = &transcript.dialect {
            tracing::info!(file = %job.input.display(), dialect = %d.id, reason = %d.reason, "dialect");
        }
        if let Some(f) = &self.forward {
            transcript.suggestions = f.forward(job, &transcript, self.format == Format::Json);
        }
        let text = render(&transcript, self.format);
        match &job.output {
            None => self.bar.suspend(|| {
                let mut out = std::io::stdout().lock();
                out.write_all(text.as_bytes()).and_then(|_| out.flush())
            }),
            // Whole or not at all: a run killed here leaves no half transcript to skip later.
            Some(path) => output::write_atomically(path, text.as_bytes()),
        }
        .map_err(|e| format!("writing transcript of {}: {e}", job.input.display()))?;
        self.done.fetch_add(1, Ordering::Relaxed);
        let started = self
            .started_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&job.input);
        let wall = started.map_or(0.0, |t| t.elapsed().as_secs_f64());
        self.report.add(Row::done(&job.input, &transcript, wall));
        Ok(())
    }

    fn failed(&self, job: &Job, error: &str) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        self.done.fetch_add(1, Ordering::Relaxed);
        self.bar
            .suspend(|| eprintln!("error: {}", error.replace('\n', " ")));
        let info = decode::probe(&job.input).ok();
        self.report
            .add(Row::failed(&job.input, error, info.as_ref()));
    }

    fn started(&self, job: &Job) {
        self.started_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(job.input.clone(), Instant::now());
    }

    fn stop_requested(&self) -> bool {
        self.stop
            .as_ref()
            .is_some_and(CancellationToken::is_cancelled)
    }

    fn not_started(&self, job: &Job) {
        let info = decode::probe(&job.input).ok();
        self.report.add(Row::interrupted(&job.input, info.as_ref()));
    }
}

impl TranscribeArgs {
    pub fn run(self, mut config: Config) -> anyhow::Result<ExitCode> {
        self.model.apply(&mut config);
        self.language.apply(&mut config);
        if let Some(f) = self.format {
            config.transcribe.format = f;
        }
        self.recording.apply(&mut config);
        if let Some(w) = self.workers {
            config.transcribe.workers = w;
        }
        if let Some(t) = self.threads {
            config.decode.threads = t;
        }
        let format = config.transcribe.format;
        let run_started = Instant::now();
        let include = self.include.clone().unwrap_or_default();
        let (jobs, missing) =
            batch::discover(&self.inputs, self.output.as_deref(), format, &include);
        let report = Report::create(&jobs, self.report.as_deref())?;
        for m in &missing {
            eprintln!("error: {m}");
            report.add(Row::failed(&m.path, &m.to_string(), None));
        }
        let found = jobs.len();
        let (jobs, skipped) = if self.skip_existing {
            output::skip_existing(jobs, format)
        } else {
            (jobs, Vec::new())
        };
        for (job, existing) in &skipped {
            let t = match existing {
                output::Existing::Done(t) => t.as_deref(),
                _ => None,
            };
            let info = t
                .is_none()
                .then(|| decode::probe(&job.input).ok())
                .flatten();
            report.add(Row::skipped(&job.input, t, info.as_ref()));
        }
        if !skipped.is_empty() {
            eprintln!(
                "skipping {} of {found} recording(s): their transcripts are complete (--skip-existing)",
                skipped.len()
            );
        }
        if found == 0 {
            write_reports(&report, self.summary_json.as_deref(), run_started)?;
            anyhow::bail!("nothing to transcribe");
        }
        if jobs.is_empty() {
            write_reports(&report, self.summary_json.as_deref(), run_started)?;
            return Ok(if missing.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }

        // Fails on a bad --model, --language or --dialect before the batch starts, not once
        // per file.
        let request = self.dialect.request(&self.model);
        let models = super::OnDemand::new(&config);
        let plan = CallPlan::resolve(
            &request,
            &config.decode,
            Some(super::load_dialects(&config)?),
            &models,
        )?;
        let (workers, threads) =
            batch_layout(jobs.len(), config.transcribe.workers, config.decode.threads);
        tracing::info!(model = %plan.model.name, workers, threads, files = jobs.len(), "transcribing");
        // Each lane keeps its share of the workers busy, and identifies a language at most
        // once per channel at a time.
        let queue = workers * 2;
        let pool = Pool::start(vec![models.into_engine()?], workers, threads, queue)?;

        let total_secs: f64 = batch::total_audio_secs(&jobs).iter().sum();
        let forward = BatchForward::start(&config)?;
        let bar = batch_bar(total_secs, jobs.len());
        let stop = interrupt::on_ctrl_c(
            {
                let bar = bar.clone();
                move || {
                    bar.suspend(|| {
                        eprintln!("stopping: the files in progress finish first (Ctrl-C again abandons them)")
                    })
                }
            },
            || eprintln!("\ninterrupted; transcripts written so far are complete. Resume with:\n  {}", interrupt::resume_command()),
        )
        .map_err(|e| tracing::warn!("Ctrl-C will stop the run at once: {e}"))
        .ok();
        let writer = Writer {
            format,
            forward,
            report,
            started_at: Mutex::new(HashMap::new()),
            stop,
            bar,
            total_secs,
            files: jobs.len(),
            done: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            started: Instant::now(),
        };
        let opts = RecordingOptions {
            channels: config.transcribe.channels.clone(),
            vad: if config.transcribe.vad {
                Some(super::resolve_vad(&config)?)
            } else {
                None
            },
            pack: config.transcribe.pack,
            windows_in_flight: 0,
        };
        let report = batch::run(&pool, &plan, &jobs, &opts, &writer);
        writer.bar.finish_and_clear();
        if let Some(f) = &writer.forward {
            f.finish();
        }
        let summary = writer.report.summary(report.wall_secs);
        let failed = summary.failed;
        if jobs.iter().any(|j| j.output.is_some()) || failed > 0 {
            let mut also = String::new();
            if summary.skipped > 0 {
                also += &format!("; {} skipped", summary.skipped);
            }
            if failed > 0 {
                also += &format!("; {failed} failed");
            }
            eprintln!(
                "transcribed {} file(s), {:.1} min of audio in {:.1} s (real-time factor {:.3}){also}",
                report.files_ok,
                summary.audio_s / 60.0,
                report.wall_secs,
                summary.real_time_factor.unwrap_or(0.0),
            );
        }
        write_reports(&writer.report, self.summary_json.as_deref(), run_started)?;
        if report.files_not_started > 0 {
            eprintln!(
                "interrupted: {} recording(s) not started; transcripts written so far are complete. Resume with:\n  {}",
                report.files_not_started,
                interrupt::resume_command()
            );
            return Ok(ExitCode::from(interrupt::EXIT_INTERRUPTED as u8));
        }
        Ok(if failed > 0 {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        })
    }
}

/// The ordered CSV report and the JSON summary, where asked for.
fn write_reports(
    report: &Report,
    summary_json: Option<&std::path::Path>,
    started: Instant,
) -> anyhow::Result<()> {
    report.finish()?;
    if let Some(path) = summary_json {
        write_summary(path, &report.summary(started.elapsed().as_secs_f64()))?;
    }
    Ok(())
}

/// Forwarding for batch jobs: each recording is a call (its file stem the call id), each
/// segment a final. A tokio runtime of one thread carries the delivery tasks.
struct BatchForward {
    runtime: tokio::runtime::Runtime,
    forwarder: Forwarder,
    flush_timeout: std::time::Duration,
}

impl BatchForward {
    /// Forwarding for the run under the front doors' one policy
    /// ([`Forwarder::start_for_calls`]): `None` when it is off, or when another process holds
    /// the spool.
    fn start(config: &Config) -> anyhow::Result<Option<Self>> {
        let runtime = runtime::build(Workers::One).context("starting the async runtime")?;
        let forwarder = {
            let _guard = runtime.enter();
            Forwarder::start_for_calls(&config.forward).context("starting the forwarder")?
        };
        Ok(forwarder.map(|forwarder| Self {
            runtime,
            forwarder,
            flush_timeout: std::time::Duration::from_millis(config.forward.flush_timeout_ms),
        }))
    }

    /// Submits the transcript's segments; when `wait`, collects the suggestions for them
    /// (up to the flush timeout) for the JSON output.
    fn forward(&self, job: &Job, t: &Transcript, wait: bool) -> Vec<crate::kb::Suggestion> {
        let call_id = job
            .input
            .file_stem()
            .map_or_else(|| t.source.clone(), |s| s.to_string_lossy().into_owned());
        let suggesting = self
            .forwarder
            .config()
            .sinks
            .iter()
            .filter(|s| {
                matches!(
                    s,
                    crate::forward::SinkConfig::Kb { .. } | crate::forward::SinkConfig::Grpc { .. }
                )
            })
            .count();
        let expected = if wait {
            t.segments.len() * suggesting
        } else {
            0
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(expected + 1);
        if expected > 0 {
            self.forwarder.listen(
                &call_id,
                crate::forward::Listener::new(move |s| tx.try_send(s.clone()).is_ok()),
            );
        }
        for (sequence, s) in t.numbered() {
            self.forwarder.submit(crate::forward::ForwardSegment::new(
                &call_id,
                sequence,
                s,
                &t.language,
                t.dialect.as_ref().map_or("", |d| d.id.as_str()),
                0,
            ));
        }
        let deadline = Instant::now() + self.flush_timeout;
        let mut out = Vec::new();
        while out.len() < expected {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(s) => out.push(s),
                Err(_) => break,
            }
        }
        self.forwarder.unlisten(&call_id);
        out.retain(|s| !s.hits.is_empty());
        out
    }

    /// Waits (up to the flush timeout) for the sinks; what is left stays in the spool.
    fn finish(&self) {
        self.runtime
            .block_on(self.forwarder.flush_before_exit(self.flush_timeout));
        self.runtime.block_on(self.forwarder.shutdown());
    }
}
