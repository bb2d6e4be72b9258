//! The worker: pulls one job at a time from the shared durable consumer, transcribes its
//! recording with the batch pipeline ([`crate::pipeline::transcribe_file`]), stores the
//! transcript, announces it and acknowledges the job.
//!
//! One job at a time, fetched only when the last is finished: a worker never holds a job it
//! is not working on, so the others take what it has not started. While a job runs the
//! worker sends an in-progress ack every third of the ack wait, so a long file is not
//! redelivered while it decodes, and a worker that dies (even `kill -9`) stops sending them:
//! the job comes back to another after the ack wait. A failed job is given back (nak) for a
//! retry, on this or another worker, until its delivery count reaches `max_deliver`; then
//! its error goes to the dead letters and the job is terminated.

use super::{
    JobOptions, JobSpec, JobsError, Queue, CONSUMER, DEAD_SUBJECT_PREFIX, DONE_SUBJECT_PREFIX,
    JOB_DONE_EVENT_TYPE, JOB_FAILED_EVENT_TYPE,
};
use crate::audio::ChannelMode;
use crate::config::Config;
use crate::dialect::Dialects;
use crate::engine::Pool;
use crate::pipeline::{transcribe_file, RecordingOptions};
use crate::plan::{CallPlan, CallRequest};
use crate::segment::Vad;
use crate::transcript::format::{render, Format};
use crate::transcript::Transcript;
use async_nats::jetstream::consumer::{pull, AckPolicy, PullConsumer};
use async_nats::jetstream::message::AckKind;
use async_nats::jetstream::object_store::{InfoErrorKind, ObjectMetadata};
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long a worker waits for a job before looking at its stop token again.
const FETCH_WAIT: Duration = Duration::from_secs(2);
/// A failed job is offered again after this, so a retry is not immediate on the same worker.
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// How the shared consumer treats jobs, and who this worker is.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Names the worker in events and logs.
    pub name: String,
    /// Time without an ack (or in-progress ack) after which a job goes to another worker.
    pub ack_wait: Duration,
    /// Deliveries of a job before it is a dead letter.
    pub max_deliver: i64,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            name: "callscribe".into(),
            ack_wait: Duration::from_secs(60),
            max_deliver: 3,
        }
    }
}

/// What a worker reports to its front end.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkerEvent {
    Started {
        job: JobSpec,
        delivery: i64,
    },
    Done {
        job: JobSpec,
        /// The result was there already (a redelivered job that had been done).
        already: bool,
    },
    /// Failed on this delivery; `dead` when it went to the dead letters.
    Failed {
        job: JobSpec,
        error: String,
        delivery: i64,
        dead: bool,
    },
    /// A message on the queue that is no job: terminated.
    BadMessage(String),
}

/// Why one job failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Nats(#[from] JobsError),
    #[error("{0}")]
    Plan(String),
    #[error("{0}")]
    Transcribe(String),
}

/// The worker's models and settings: per job, the job's options over these, resolved by
/// [`CallPlan::resolve`] as for any call.
pub struct Transcriber {
    pub pool: Pool,
    /// The worker's configuration, its flags applied.
    pub config: Config,
    pub dialects: Option<Arc<Dialects>>,
    /// Loaded when the configuration asks for voice-activity segmentation.
    pub vad: Option<Vad>,
}

impl Transcriber {
    /// Transcribes `path` (a local copy of the job's recording) with the job's options.
    pub fn transcribe(
        &self,
        path: &std::path::Path,
        options: &JobOptions,
    ) -> Result<Transcript, JobError> {
        let mut decode = self.config.decode.clone();
        if let Some(p) = &options.prompt {
            decode.initial_prompt = Some(p.clone());
        }
        let request = CallRequest {
            model: options.model.clone(),
            dialect: options.dialect.clone(),
            region: options.region.clone(),
            language: options.language.clone(),
            hotwords: options.hotwords.clone(),
            fit_window: options.fit_window,
        };
        let plan = CallPlan::resolve(&request, &decode, self.dialects.clone(), self.pool.models())
            .map_err(|e| JobError::Plan(e.to_string()))?;
        let channels = match &options.channels {
            Some(c) => c
                .parse::<ChannelMode>()
                .map_err(|e| JobError::Plan(format!("channels '{c}': {e}")))?,
            None => self.config.transcribe.channels.clone(),
        };
        let opts = RecordingOptions {
            channels,
            vad: if options.no_vad {
                None
            } else {
                self.vad.clone()
            },
            pack: self.config.transcribe.pack && !options.no_pack,
            windows_in_flight: 0,
        };
        transcribe_file(path, &self.pool, &plan, &opts, &mut |_| {})
            .map_err(|e| JobError::Transcribe(e.to_string()))
    }
}

/// The durable consumer, made on start. Made again with `settings` when it exists: the
/// server takes the new ack wait and max deliveries (fields a consumer may change), so the
/// last worker started sets them.
async fn consumer(queue: &Queue, settings: &WorkerSettings) -> Result<PullConsumer, JobsError> {
    let config = pull::Config {
        durable_name: Some(CONSUMER.into()),
        ack_policy: AckPolicy::Explicit,
        ack_wait: settings.ack_wait,
        max_deliver: settings.max_deliver,
        ..Default::default()
    };
    match queue.jobs.create_consumer(config).await {
        Ok(consumer) => Ok(consumer),
        Err(e) => {
            tracing::warn!("consumer {CONSUMER} kept as it is ({e})");
            queue
                .jobs
                .get_consumer(CONSUMER)
                .await
                .map_err(|e| JobsError::nats(format!("consumer {CONSUMER}"), e))
        }
    }
}

/// Works jobs until `stop` is cancelled; the job in progress when it is finishes first.
/// Returns on a stop, or when the queue cannot be read.
pub async fn run(
    queue: &Queue,
    transcriber: Arc<Transcriber>,
    settings: &WorkerSettings,
    stop: &CancellationToken,
    report: &(dyn Fn(WorkerEvent) + Sync),
) -> Result<(), JobsError> {
    let consumer = consumer(queue, settings).await?;
    // Logged when it changes, not on every pull while NATS is away.
    let mut last_error = String::new();
    fn failed_pull(last_error: &mut String, e: String) {
        if e != *last_error {
            tracing::warn!("pulling a job: {e}");
            *last_error = e;
        }
    }
    while !stop.is_cancelled() {
        // One job per pull, and no pull while working: see the module documentation.
        let mut batch = match consumer
            .batch()
            .max_messages(1)
            .expires(FETCH_WAIT)
            .messages()
            .await
        {
            Ok(b) => b,
            Err(e) => {
                failed_pull(&mut last_error, e.to_string());
                tokio::time::sleep(FETCH_WAIT).await;
                continue;
            }
        };
        let message = match batch.next().await {
            None => continue,
            Some(Err(e)) => {
                failed_pull(&mut last_error, e.to_string());
                tokio::time::sleep(RETRY_DELAY).await;
                continue;
            }
            Some(Ok(m)) => m,
        };
        last_error.clear();
        work(queue, &transcriber, settings, message, report).await;
    }
    Ok(())
}

async fn work(
    queue: &Queue,
    transcriber: &Arc<Transcriber>,
    settings: &WorkerSettings,
    message: async_nats::jetstream::Message,
    report: &(dyn Fn(WorkerEvent) + Sync),
) {
    let delivery = message.info().map_or(1, |i| i.delivered);
    let job: JobSpec = match serde_json::from_slice(&message.payload) {
        Ok(job) => job,
        Err(e) => {
            report(WorkerEvent::BadMessage(format!("not a job: {e}")));
            let _ = message.ack_with(AckKind::Term).await;
            return;
        }
    };
    report(WorkerEvent::Started {
        job: job.clone(),
        delivery,
    });
    let result = {
        let job_work = process(queue, transcriber, settings, &job);
        tokio::pin!(job_work);
        let mut progress =
            tokio::time::interval((settings.ack_wait / 3).max(Duration::from_millis(500)));
        progress.tick().await;
        loop {
            tokio::select! {
                r = &mut job_work => break r,
                _ = progress.tick() => {
                    if let Err(e) = message.ack_with(AckKind::Progress).await {
                        tracing::warn!(job = %job.job_id, "in-progress ack: {e}");
                    }
                }
            }
        }
    };
    match result {
        Ok(already) => {
            // Acknowledged with confirmation: the job leaves the queue only now, after its
            // result and event are stored; a crash before this redoes it idempotently.
            if let Err(e) = message.double_ack().await {
                tracing::warn!(job = %job.job_id, "ack: {e} (the job will be redelivered and found done)");
            }
            report(WorkerEvent::Done { job, already });
        }
        Err(e) => {
            let error = e.to_string();
            let dead = delivery >= settings.max_deliver;
            if dead {
                let data = serde_json::json!({
                    "job_id": job.job_id,
                    "file_name": job.file_name,
                    "object_key": job.object_key,
                    "error": error,
                    "deliveries": delivery,
                    "worker": settings.name,
                });
                match queue
                    .publish_event(
                        DEAD_SUBJECT_PREFIX,
                        JOB_FAILED_EVENT_TYPE,
                        &settings.name,
                        &job,
                        data,
                    )
                    .await
                {
                    Ok(()) => {
                        let _ = message.ack_with(AckKind::Term).await;
                    }
                    Err(e) => {
                        // Not recorded: leave the job unacknowledged rather than lose it.
                        tracing::warn!(job = %job.job_id, "dead letter: {e}");
                    }
                }
            } else {
                let _ = message.ack_with(AckKind::Nak(Some(RETRY_DELAY))).await;
            }
            report(WorkerEvent::Failed {
                job,
                error,
                delivery,
                dead,
            });
        }
    }
}

/// Fetches, transcribes, stores and announces one job; `Ok(true)` when its result was
/// stored already.
async fn process(
    queue: &Queue,
    transcriber: &Arc<Transcriber>,
    settings: &WorkerSettings,
    job: &JobSpec,
) -> Result<bool, JobError> {
    let key = job.result_key();
    let already = match queue.results.info(&key).await {
        Ok(_) => true,
        Err(e) if matches!(e.kind(), InfoErrorKind::NotFound) => false,
        Err(e) => return Err(JobsError::nats(format!("result {key}"), e).into()),
    };
    let transcript_meta = if already {
        None
    } else {
        let local = fetch(queue, job).await?;
        let transcriber = transcriber.clone();
        let options = job.options.clone();
        let file_name = job.file_name.clone();
        let mut transcript = tokio::task::spawn_blocking(move || {
            // Errors name the recording as submitted, not the worker's temporary copy.
            let local_name = local.path().display().to_string();
            transcriber
                .transcribe(local.path(), &options)
                .map_err(|e| match e {
                    JobError::Transcribe(m) => {
                        JobError::Transcribe(m.replace(&local_name, &file_name))
                    }
                    other => other,
                })
        })
        .await
        .map_err(|e| JobError::Transcribe(format!("the transcription panicked: {e}")))??;
        transcript.source = job.file_name.clone();
        let body = render(&transcript, Format::Json);
        let meta = ObjectMetadata {
            name: key.clone(),
            description: Some(job.file_name.clone()),
            ..Default::default()
        };
        queue
            .results
            .put(meta, &mut body.as_bytes())
            .await
            .map_err(|e| JobsError::nats(format!("storing result {key}"), e))?;
        Some((
            transcript.duration_ms,
            transcript.segments.len(),
            transcript.language.clone(),
        ))
    };
    let mut data = serde_json::json!({
        "job_id": job.job_id,
        "file_name": job.file_name,
        "object_key": job.object_key,
        "result_bucket": super::RESULTS_BUCKET,
        "result_key": key,
        "worker": settings.name,
    });
    if let Some((duration_ms, segments, language)) = transcript_meta {
        data["duration_ms"] = duration_ms.into();
        data["segments"] = segments.into();
        data["language"] = language.into();
    }
    queue
        .publish_event(
            DONE_SUBJECT_PREFIX,
            JOB_DONE_EVENT_TYPE,
            &settings.name,
            job,
            data,
        )
        .await?;
    Ok(already)
}

/// The job's recording in a temporary file named like the original (the decoder goes by
/// the extension first); removed when dropped.
async fn fetch(queue: &Queue, job: &JobSpec) -> Result<tempfile::NamedTempFile, JobError> {
    let suffix = std::path::Path::new(&job.file_name)
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    let local = tempfile::Builder::new()
        .prefix("callscribe-job-")
        .suffix(&suffix)
        .tempfile()
        .map_err(|e| JobError::Transcribe(format!("a temporary file for the recording: {e}")))?;
    let what = || format!("recording {} ({})", job.object_key, job.file_name);
    let mut object = queue
        .recordings
        .get(&job.object_key)
        .await
        .map_err(|e| JobsError::nats(what(), e))?;
    let mut file = tokio::fs::File::create(local.path())
        .await
        .map_err(|source| JobsError::Io {
            path: local.path().to_owned(),
            source,
        })?;
    tokio::io::copy(&mut object, &mut file)
        .await
        .map_err(|e| JobsError::nats(what(), e))?;
    use tokio::io::AsyncWriteExt;
    file.flush().await.map_err(|source| JobsError::Io {
        path: local.path().to_owned(),
        source,
    })?;
    Ok(local)
}
