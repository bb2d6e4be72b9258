//! The submitting side: a recording into the object store and its job onto the queue, and,
//! for `submit --wait`, each job's outcome (its transcript or its dead letter).

use super::{hex, JOBS_SUBJECT};
use super::{job_id, result_key, JobOptions, JobSpec, JobsError, Queue, DEAD_SUBJECT_PREFIX};
use async_nats::jetstream::object_store::{GetErrorKind, InfoErrorKind, ObjectMetadata};
use sha2::{Digest, Sha256};
use std::path::Path;
use tokio::io::AsyncReadExt;

/// What became of one submitted recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submitted {
    /// Put on the queue now.
    Queued,
    /// The same job was queued within the duplicate window: not queued again.
    AlreadyQueued,
    /// Its transcript is in the results bucket already: not queued.
    AlreadyDone,
}

/// How a job ended, for `submit --wait`.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The transcript, JSON as the worker wrote it.
    Done(Vec<u8>),
    /// The dead letter's error.
    Failed(String),
}

/// SHA-256 of the file, hex, read in chunks (recordings may be hours long).
async fn content_hash(path: &Path) -> Result<(String, u64), JobsError> {
    let io = |source| JobsError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = tokio::fs::File::open(path).await.map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).await.map_err(io)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((hex(&hasher.finalize()), size))
}

impl Queue {
    /// Stores `path` (unless its content is stored already) and queues its job (unless it
    /// is queued or done already).
    pub async fn submit(
        &self,
        path: &Path,
        options: &JobOptions,
    ) -> Result<(JobSpec, Submitted), JobsError> {
        let (object_key, size_bytes) = content_hash(path).await?;
        let job = JobSpec {
            job_id: job_id(&object_key, options),
            file_name: path.file_name().map_or_else(
                || path.display().to_string(),
                |n| n.to_string_lossy().into(),
            ),
            object_key,
            size_bytes,
            options: options.clone(),
        };
        if self.result_exists(&job.job_id).await? {
            return Ok((job, Submitted::AlreadyDone));
        }
        match self.recordings.info(&job.object_key).await {
            Ok(_) => {}
            Err(e) if matches!(e.kind(), InfoErrorKind::NotFound) => {
                let mut file =
                    tokio::fs::File::open(path)
                        .await
                        .map_err(|source| JobsError::Io {
                            path: path.to_owned(),
                            source,
                        })?;
                let meta = ObjectMetadata {
                    name: job.object_key.clone(),
                    description: Some(job.file_name.clone()),
                    ..Default::default()
                };
                self.recordings
                    .put(meta, &mut file)
                    .await
                    .map_err(|e| JobsError::nats(format!("storing {}", path.display()), e))?;
            }
            Err(e) => {
                return Err(JobsError::nats(
                    format!("object {} of {}", job.object_key, path.display()),
                    e,
                ))
            }
        }
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, job.job_id.as_str());
        let body = serde_json::to_vec(&job).expect("a job always serialises");
        let what = || format!("queueing {} on {JOBS_SUBJECT}", path.display());
        let ack = self
            .js
            .publish_with_headers(JOBS_SUBJECT, headers, body.into())
            .await
            .map_err(|e| JobsError::nats(what(), e))?
            .await
            .map_err(|e| JobsError::nats(what(), e))?;
        let state = if ack.duplicate {
            Submitted::AlreadyQueued
        } else {
            Submitted::Queued
        };
        Ok((job, state))
    }

    async fn result_exists(&self, job_id: &str) -> Result<bool, JobsError> {
        let key = result_key(job_id);
        match self.results.info(&key).await {
            Ok(_) => Ok(true),
            Err(e) if matches!(e.kind(), InfoErrorKind::NotFound) => Ok(false),
            Err(e) => Err(JobsError::nats(format!("result {key}"), e)),
        }
    }

    /// The job's outcome, `None` while it is queued or in progress.
    pub async fn outcome(&self, job_id: &str) -> Result<Option<Outcome>, JobsError> {
        let key = result_key(job_id);
        match self.results.get(&key).await {
            Ok(mut object) => {
                let mut bytes = Vec::new();
                object
                    .read_to_end(&mut bytes)
                    .await
                    .map_err(|e| JobsError::nats(format!("result {key}"), e))?;
                return Ok(Some(Outcome::Done(bytes)));
            }
            Err(e) if matches!(e.kind(), GetErrorKind::NotFound) => {}
            Err(e) => return Err(JobsError::nats(format!("result {key}"), e)),
        }
        let subject = format!("{DEAD_SUBJECT_PREFIX}.{job_id}");
        match self.dead.get_last_raw_message_by_subject(&subject).await {
            Ok(message) => {
                let event: serde_json::Value =
                    serde_json::from_slice(&message.payload).unwrap_or_default();
                let error = event["data"]["error"]
                    .as_str()
                    .unwrap_or("failed (the dead letter names no error)")
                    .to_owned();
                Ok(Some(Outcome::Failed(error)))
            }
            Err(e)
                if matches!(
                    e.kind(),
                    async_nats::jetstream::stream::LastRawMessageErrorKind::NoMessageFound
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(JobsError::nats(subject, e)),
        }
    }
}
