//! Offline jobs: many recordings through the one inference executor.
//!
//! Lanes are threads, one per file being transcribed at once: each pulls the next file index
//! from a shared counter (the job list is only paths, so nothing grows with audio), runs the
//! pipeline's audio stages itself and sends the file's windows to the executor ([`Pool`]),
//! keeping its share of the executor's workers busy (fewer files than workers: a lane's
//! windows decode side by side). Results come back to the caller's thread over a bounded
//! channel, where outputs are written and progress is drawn. One bad file is reported and
//! counted; the others still finish.

mod inputs;
pub mod interrupt;
pub mod output;
pub mod report;

pub use inputs::{discover, Include, InputError, Job};

use crate::audio::decode;
use crate::engine::Pool;
use crate::pipeline::{transcribe_file, PipelineError, RecordingOptions};
use crate::plan::CallPlan;
use crate::transcript::Transcript;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Instant;

/// Results waiting for the writer: one per worker is enough to keep every worker busy while
/// the caller writes files; more would only hold finished transcripts in memory.
const RESULT_QUEUE_PER_WORKER: usize = 1;

/// What the batch reports to its front end (progress bar, logs).
pub trait BatchObserver: Sync {
    /// Seconds of audio finished so far across all files (monotonic).
    fn audio_progress(&self, done_secs: f64);
    /// A file finished: write its transcript. An `Err` here counts the file as failed.
    fn finished(&self, job: &Job, transcript: Transcript) -> Result<(), String>;
    /// A file failed; the message names the file.
    fn failed(&self, job: &Job, error: &str);
    /// A worker starts on a file (called from the worker's thread).
    fn started(&self, _job: &Job) {}
    /// Whether to start no more files (Ctrl-C): files in progress still finish.
    fn stop_requested(&self) -> bool {
        false
    }
    /// A file was not started because a stop was requested.
    fn not_started(&self, _job: &Job) {}
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchReport {
    pub files_ok: usize,
    pub files_failed: usize,
    /// Left out after a stop was requested.
    pub files_not_started: usize,
    pub audio_secs: f64,
    pub wall_secs: f64,
}

impl BatchReport {
    /// Wall time per second of audio (lower is faster; < 1 is faster than real time).
    pub fn real_time_factor(&self) -> f64 {
        if self.audio_secs > 0.0 {
            self.wall_secs / self.audio_secs
        } else {
            0.0
        }
    }
}

enum Msg {
    Progress {
        job: usize,
        secs: f64,
    },
    Done {
        job: usize,
        /// Boxed: a transcript is large next to the other messages.
        result: Box<Result<Transcript, PipelineError>>,
    },
}

/// Header durations of every job, for sizing progress (unreadable files, and containers that
/// state no duration, count as 0).
pub fn total_audio_secs(jobs: &[Job]) -> Vec<f64> {
    jobs.iter()
        .map(|j| {
            decode::probe(&j.input)
                .ok()
                .and_then(|i| i.duration_secs)
                .unwrap_or(0.0)
        })
        .collect()
}

/// Lanes for `files` files on an executor of `workers` workers: a file per worker, fewer
/// when there are fewer files.
pub fn lanes(files: usize, workers: usize) -> usize {
    workers.max(1).min(files).max(1)
}

/// Runs every job with `plan` on `pool`; never stops early for a bad file.
pub fn run(
    pool: &Pool,
    plan: &CallPlan,
    jobs: &[Job],
    opts: &RecordingOptions,
    observer: &dyn BatchObserver,
) -> BatchReport {
    let started = Instant::now();
    let durations = total_audio_secs(jobs);
    let next = AtomicUsize::new(0);
    let workers = pool.workers();
    let lanes = lanes(jobs.len(), workers);
    let (tx, rx) = mpsc::sync_channel::<Msg>(lanes * RESULT_QUEUE_PER_WORKER);
    let mut report = BatchReport::default();

    std::thread::scope(|scope| {
        for lane in 0..lanes {
            let tx = tx.clone();
            let next = &next;
            // The workers left over after an even share go to the first lanes.
            let opts = RecordingOptions {
                windows_in_flight: workers / lanes + usize::from(lane < workers % lanes),
                ..opts.clone()
            };
            scope.spawn(move || loop {
                if observer.stop_requested() {
                    break;
                }
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(job) = jobs.get(i) else { break };
                let _span = tracing::info_span!("file", path = %job.input.display()).entered();
                observer.started(job);
                let mut on_progress = |secs: f64| {
                    let _ = tx.send(Msg::Progress { job: i, secs });
                };
                let result = transcribe_file(&job.input, pool, plan, &opts, &mut on_progress);
                if tx
                    .send(Msg::Done {
                        job: i,
                        result: Box::new(result),
                    })
                    .is_err()
                {
                    break;
                }
            });
        }
        drop(tx);

        let mut file_done = vec![0f64; jobs.len()];
        let mut finished = vec![false; jobs.len()];
        for msg in rx {
            match msg {
                Msg::Progress { job, secs } => file_done[job] = secs.min(durations[job]),
                Msg::Done { job, result } => {
                    finished[job] = true;
                    file_done[job] = durations[job];
                    match *result {
                        Ok(t) => match observer.finished(&jobs[job], t) {
                            Ok(()) => report.files_ok += 1,
                            Err(e) => {
                                observer.failed(&jobs[job], &e);
                                report.files_failed += 1;
                            }
                        },
                        Err(e) => {
                            observer.failed(&jobs[job], &e.to_string());
                            report.files_failed += 1;
                        }
                    }
                }
            }
            observer.audio_progress(file_done.iter().sum());
        }
        // Jobs the lanes left when a stop was requested.
        for (i, _) in finished.iter().enumerate().filter(|(_, done)| !**done) {
            observer.not_started(&jobs[i]);
            report.files_not_started += 1;
        }
    });
    report.audio_secs = durations.iter().sum();
    report.wall_secs = started.elapsed().as_secs_f64();
    report
}
