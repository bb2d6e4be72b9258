//! `jobs status`: how many jobs are queued, in progress, done and failed, read from the
//! work queue's consumer and the two event streams (one message per job each).

use super::{JobsError, Queue, CONSUMER};
use serde::Serialize;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct JobCounts {
    /// On the queue, not delivered to a worker yet.
    pub queued: u64,
    /// Delivered and not acknowledged: being worked, or held by a worker that died (back on
    /// the queue after the ack wait), or given back for a retry.
    pub in_progress: u64,
    /// With a transcript in the results bucket (one completion event each).
    pub done: u64,
    /// Dead letters.
    pub failed: u64,
}

impl Queue {
    pub async fn counts(&self) -> Result<JobCounts, JobsError> {
        let mut jobs = self.jobs.clone();
        let stored = jobs
            .info()
            .await
            .map_err(|e| JobsError::nats(super::JOBS_STREAM, e))?
            .state
            .messages;
        // No consumer yet (no worker ever started): every stored job is queued.
        let (queued, in_progress) = match self
            .jobs
            .get_consumer::<async_nats::jetstream::consumer::pull::Config>(CONSUMER)
            .await
        {
            Ok(mut consumer) => {
                let info = consumer
                    .info()
                    .await
                    .map_err(|e| JobsError::nats(format!("consumer {CONSUMER}"), e))?;
                (info.num_pending, info.num_ack_pending as u64)
            }
            Err(_) => (stored, 0),
        };
        let count = |stream: &async_nats::jetstream::stream::Stream, name: &'static str| {
            let mut stream = stream.clone();
            async move {
                stream
                    .info()
                    .await
                    .map(|i| i.state.messages)
                    .map_err(|e| JobsError::nats(name, e))
            }
        };
        Ok(JobCounts {
            queued,
            in_progress,
            done: count(&self.done, super::DONE_STREAM).await?,
            failed: count(&self.dead, super::DEAD_STREAM).await?,
        })
    }
}
