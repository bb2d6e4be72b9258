//! Distributed batch on NATS JetStream: recordings submitted from one machine, transcribed
//! by workers on any number of others, through the same pipeline as `transcribe`.
//!
//! Everything lives in JetStream, so no process holds state another needs:
//! - recordings in the object store bucket [`RECORDINGS_BUCKET`], under their content hash
//!   (a file submitted twice is stored once);
//! - jobs ([`JobSpec`]) on the work-queue stream [`JOBS_STREAM`], each published with
//!   `Nats-Msg-Id` = its [`job_id`] (content hash and options), so a double submit inside the
//!   duplicate window queues it once; workers share one durable pull consumer
//!   ([`CONSUMER`]) with explicit acks, so a job a killed worker held comes back after the
//!   ack wait, and one that failed `max_deliver` times goes to the dead letters;
//! - transcripts (JSON) in the bucket [`RESULTS_BUCKET`] under `<job id>.json`: a job done
//!   twice writes the same key, and a worker that finds the result already there only
//!   acknowledges;
//! - a CloudEvent per finished job on `callscribe.jobs.done.<job id>` and per dead letter on
//!   `callscribe.jobs.dead.<job id>`, in streams that keep one message per subject, so their
//!   message counts are the done and failed jobs.
//!
//! [`submit`] holds the submitting side, [`worker`] the worker, [`status`] the counts.

pub mod status;
pub mod submit;
pub mod worker;

use crate::engine::Hotword;
use crate::forward::nats::NatsConnect;
use async_nats::jetstream::{self, object_store::ObjectStore, stream::Stream};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::time::Duration;

/// Object store bucket of submitted recordings, keyed by content hash.
pub const RECORDINGS_BUCKET: &str = "callscribe-recordings";
/// Object store bucket of transcripts, keyed by job id.
pub const RESULTS_BUCKET: &str = "callscribe-results";
/// The work-queue stream of jobs and its one subject.
pub const JOBS_STREAM: &str = "CALLSCRIBE_JOBS";
pub const JOBS_SUBJECT: &str = "callscribe.jobs";
/// Completion events, one subject per job.
pub const DONE_STREAM: &str = "CALLSCRIBE_JOBS_DONE";
pub const DONE_SUBJECT_PREFIX: &str = "callscribe.jobs.done";
/// Dead letters: jobs that failed `max_deliver` times, with their error.
pub const DEAD_STREAM: &str = "CALLSCRIBE_JOBS_DEAD";
pub const DEAD_SUBJECT_PREFIX: &str = "callscribe.jobs.dead";
/// The durable pull consumer every worker shares.
pub const CONSUMER: &str = "callscribe-workers";
/// How long a job id is remembered for de-duplication: a resubmit of the same batch within
/// this time queues nothing again (after it, a job whose result exists is still skipped).
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(3600);

/// CloudEvents `type` of a finished job and of a dead letter.
pub const JOB_DONE_EVENT_TYPE: &str = "com.callscribe.job.done";
pub const JOB_FAILED_EVENT_TYPE: &str = "com.callscribe.job.failed";

/// What a job asks of the transcription, as `transcribe`'s flags do; `None`/empty fields
/// take the worker's configuration. Part of the job id: the same file with other options is
/// another job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobOptions {
    pub model: Option<String>,
    pub language: Option<String>,
    /// Dialect adapter id.
    pub dialect: Option<String>,
    pub region: Option<String>,
    pub hotwords: Vec<Hotword>,
    /// Initial prompt.
    pub prompt: Option<String>,
    /// Channel roles (`agent,customer`) or `mix`, as `--channels` takes them.
    pub channels: Option<String>,
    pub no_vad: bool,
    pub no_pack: bool,
    pub fit_window: bool,
}

/// A job on the work queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    pub job_id: String,
    /// The recording's key in [`RECORDINGS_BUCKET`]: its SHA-256, hex.
    pub object_key: String,
    /// The submitted file's name (no folders): the transcript's `source`, and the name
    /// `submit --wait` writes it under.
    pub file_name: String,
    pub size_bytes: u64,
    pub options: JobOptions,
}

impl JobSpec {
    /// The transcript's key in [`RESULTS_BUCKET`].
    pub fn result_key(&self) -> String {
        result_key(&self.job_id)
    }
}

pub fn result_key(job_id: &str) -> String {
    format!("{job_id}.json")
}

/// The job id: SHA-256 of the content hash and the options (their JSON, whose field order
/// is fixed), hex, first 32 digits. The same recording with the same options is the same
/// job on every machine, whatever the file is called.
pub fn job_id(object_key: &str, options: &JobOptions) -> String {
    let mut h = Sha256::new();
    h.update(object_key.as_bytes());
    h.update(b"\n");
    h.update(serde_json::to_vec(options).expect("options always serialise"));
    hex(&h.finalize())[..32].to_owned()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    #[error("{0}")]
    Connect(String),
    /// A JetStream request failed: `what` names the stream, bucket or key.
    #[error("{what}: {message}")]
    Nats { what: String, message: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl JobsError {
    fn nats(what: impl Into<String>, e: impl std::fmt::Display) -> Self {
        JobsError::Nats {
            what: what.into(),
            message: e.to_string(),
        }
    }
}

/// The JetStream side of the distributed batch: buckets and streams, made when missing.
pub struct Queue {
    pub(crate) js: jetstream::Context,
    pub(crate) recordings: ObjectStore,
    pub(crate) results: ObjectStore,
    pub(crate) jobs: Stream,
    pub(crate) done: Stream,
    pub(crate) dead: Stream,
}

impl Queue {
    /// Connects and opens (creating when missing, with `replicas` copies each) the buckets
    /// and streams.
    pub async fn open(connect: &NatsConnect, replicas: usize) -> Result<Self, JobsError> {
        let js = connect.jetstream().await.map_err(JobsError::Connect)?;
        let bucket = |name: &str| {
            let js = js.clone();
            let name = name.to_owned();
            async move {
                match js.get_object_store(&name).await {
                    Ok(store) => Ok(store),
                    Err(_) => js
                        .create_object_store(jetstream::object_store::Config {
                            bucket: name.clone(),
                            num_replicas: replicas,
                            storage: jetstream::stream::StorageType::File,
                            ..Default::default()
                        })
                        .await
                        .map_err(|e| JobsError::nats(format!("object store bucket {name}"), e)),
                }
            }
        };
        let recordings = bucket(RECORDINGS_BUCKET).await?;
        let results = bucket(RESULTS_BUCKET).await?;
        let stream = |name: &str, subject: String, workqueue: bool| {
            let js = js.clone();
            let name = name.to_owned();
            async move {
                let defaults = jetstream::stream::Config::default();
                js.get_or_create_stream(jetstream::stream::Config {
                    name: name.clone(),
                    subjects: vec![subject],
                    retention: if workqueue {
                        jetstream::stream::RetentionPolicy::WorkQueue
                    } else {
                        jetstream::stream::RetentionPolicy::Limits
                    },
                    // Events: one per job, so the count is the number of jobs.
                    max_messages_per_subject: if workqueue {
                        defaults.max_messages_per_subject
                    } else {
                        1
                    },
                    num_replicas: replicas,
                    duplicate_window: DUPLICATE_WINDOW,
                    storage: jetstream::stream::StorageType::File,
                    ..defaults
                })
                .await
                .map_err(|e| JobsError::nats(format!("stream {name}"), e))
            }
        };
        let jobs = stream(JOBS_STREAM, JOBS_SUBJECT.to_owned(), true).await?;
        let done = stream(DONE_STREAM, format!("{DONE_SUBJECT_PREFIX}.*"), false).await?;
        let dead = stream(DEAD_STREAM, format!("{DEAD_SUBJECT_PREFIX}.*"), false).await?;
        Ok(Self {
            js,
            recordings,
            results,
            jobs,
            done,
            dead,
        })
    }

    /// Publishes a CloudEvent about `job` on `<prefix>.<job id>` and waits for JetStream's
    /// ack; `Nats-Msg-Id` = `<job id>/<kind>`, so a repeat is dropped.
    pub(crate) async fn publish_event(
        &self,
        prefix: &str,
        kind: &str,
        source: &str,
        job: &JobSpec,
        data: serde_json::Value,
    ) -> Result<(), JobsError> {
        let subject = format!("{prefix}.{}", job.job_id);
        let event = cloud_event(kind, source, job, data);
        let mut headers = async_nats::HeaderMap::new();
        let id = format!("{}/{}", job.job_id, kind);
        headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
        headers.insert("Content-Type", "application/cloudevents+json");
        let body = serde_json::to_vec(&event).expect("an event always serialises");
        self.js
            .publish_with_headers(subject.clone(), headers, body.into())
            .await
            .map_err(|e| JobsError::nats(&subject, e))?
            .await
            .map_err(|e| JobsError::nats(&subject, e))?;
        Ok(())
    }
}

/// A CloudEvents 1.0 event (structured mode) about a job, as the `nats` sink writes them.
pub fn cloud_event(
    kind: &str,
    source: &str,
    job: &JobSpec,
    data: serde_json::Value,
) -> serde_json::Value {
    let time = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    serde_json::json!({
        "specversion": "1.0",
        "type": kind,
        "source": source,
        "id": format!("{}/{}", job.job_id, kind),
        "time": time,
        "subject": format!("jobs/{}", job.job_id),
        "datacontenttype": "application/json",
        "data": data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_id_follows_the_content_and_the_options() {
        let a = JobOptions::default();
        let b = JobOptions {
            language: Some("en".into()),
            ..JobOptions::default()
        };
        assert_eq!(job_id("abc", &a), job_id("abc", &a));
        assert_eq!(job_id("abc", &a).len(), 32);
        assert_ne!(job_id("abc", &a), job_id("abd", &a));
        assert_ne!(job_id("abc", &a), job_id("abc", &b));
        assert!(job_id("abc", &b).chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn a_job_round_trips_through_its_json() {
        let job = JobSpec {
            job_id: job_id("k", &JobOptions::default()),
            object_key: "k".into(),
            file_name: "call.wav".into(),
            size_bytes: 10,
            options: JobOptions {
                hotwords: vec!["Acme:3".parse().unwrap()],
                channels: Some("mix".into()),
                ..JobOptions::default()
            },
        };
        let back: JobSpec = serde_json::from_slice(&serde_json::to_vec(&job).unwrap()).unwrap();
        assert_eq!(back, job);
        assert_eq!(job.result_key(), format!("{}.json", job.job_id));
    }
}
