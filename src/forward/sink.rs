//! The sinks a segment is delivered to. Each answers `Ok(hits)` (empty for sinks that only
//! receive), `Transient` (retried with backoff, in order) or `Rejected` (the downstream says
//! the segment can never be accepted: dead-lettered).
//!
//! The gRPC sink is a client of a downstream `KnowledgeLookup` service, so it is a protobuf
//! edge of its own: its requests are built here, from the spooled segment, and nowhere else.

use super::config::SinkConfig;
use super::segment::{ForwardSegment, Spooled};
use crate::kb::{Hit, KnowledgeBase};
use crate::proto::v1 as pb;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("{0}")]
    Transient(String),
    #[error("{0}")]
    Rejected(String),
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("sink {sink}: {message}")]
    Setup { sink: String, message: String },
}

pub enum Sink {
    Kb {
        kb: Arc<KnowledgeBase>,
        limit: usize,
        min_score: f32,
    },
    Grpc {
        client: pb::knowledge_lookup_client::KnowledgeLookupClient<tonic::transport::Channel>,
        timeout: Duration,
    },
    Webhook {
        agent: ureq::Agent,
        url: String,
    },
    Ndjson {
        /// None = stdout.
        path: Option<PathBuf>,
    },
}

impl Sink {
    /// Builds a sink. The gRPC channel connects lazily, so a downstream that is down at start
    /// is retried like one that goes down later.
    pub fn new(
        cfg: &SinkConfig,
        max_suggestions: usize,
        min_score: f32,
    ) -> Result<Self, SinkError> {
        let setup = |message: String| SinkError::Setup {
            sink: cfg.name(),
            message,
        };
        Ok(match cfg {
            SinkConfig::Kb { dir } => {
                let kb = match dir {
                    None => KnowledgeBase::sample(),
                    Some(d) => KnowledgeBase::open(d),
                }
                .map_err(|e| setup(e.to_string()))?;
                Sink::Kb {
                    kb: Arc::new(kb),
                    limit: max_suggestions,
                    min_score,
                }
            }
            SinkConfig::Grpc {
                endpoint,
                timeout_ms,
                ..
            } => {
                let channel = tonic::transport::Endpoint::from_shared(endpoint.clone())
                    .map_err(|e| setup(format!("bad endpoint '{endpoint}': {e}")))?
                    .connect_timeout(Duration::from_millis(*timeout_ms))
                    .timeout(Duration::from_millis(*timeout_ms))
                    .connect_lazy();
                Sink::Grpc {
                    client: pb::knowledge_lookup_client::KnowledgeLookupClient::new(channel),
                    timeout: Duration::from_millis(*timeout_ms),
                }
            }
            SinkConfig::Webhook {
                url, timeout_ms, ..
            } => {
                let agent = ureq::Agent::config_builder()
                    .timeout_global(Some(Duration::from_millis(*timeout_ms)))
                    // 4xx/5xx are answers to classify, not transport errors.
                    .http_status_as_error(false)
                    .build()
                    .new_agent();
                Sink::Webhook {
                    agent,
                    url: url.clone(),
                }
            }
            SinkConfig::Ndjson { path, .. } => Sink::Ndjson {
                path: (path.as_os_str() != "-").then(|| path.clone()),
            },
        })
    }

    /// Whether this sink's answers are suggestions for the agent.
    pub fn suggests(&self) -> bool {
        matches!(self, Sink::Kb { .. } | Sink::Grpc { .. })
    }

    pub async fn deliver(&self, record: &Spooled) -> Result<Vec<Hit>, DeliveryError> {
        match self {
            Sink::Kb {
                kb,
                limit,
                min_score,
            } => {
                let (kb, text, limit, min) =
                    (kb.clone(), record.segment.text.clone(), *limit, *min_score);
                tokio::task::spawn_blocking(move || kb.query(&text, limit, min))
                    .await
                    .map_err(|e| DeliveryError::Transient(format!("kb query panicked: {e}")))?
                    .map_err(|e| DeliveryError::Transient(e.to_string()))
            }
            Sink::Grpc { client, timeout } => {
                let mut req = tonic::Request::new(lookup_request(record));
                req.set_timeout(*timeout);
                match client.clone().lookup(req).await {
                    Ok(resp) => Ok(resp.into_inner().hits.into_iter().map(Into::into).collect()),
                    Err(s) if s.code() == tonic::Code::InvalidArgument => Err(
                        DeliveryError::Rejected(format!("INVALID_ARGUMENT: {}", s.message())),
                    ),
                    Err(s) => Err(DeliveryError::Transient(format!(
                        "{:?}: {}",
                        s.code(),
                        s.message()
                    ))),
                }
            }
            Sink::Webhook { agent, url } => {
                let (agent, url) = (agent.clone(), url.clone());
                let body = serde_json::to_string(record).expect("a record always serialises");
                tokio::task::spawn_blocking(move || {
                    let resp = agent
                        .post(&url)
                        .header("content-type", "application/json")
                        .send(body.as_bytes())
                        .map_err(|e| DeliveryError::Transient(e.to_string()))?;
                    let status = resp.status().as_u16();
                    match status {
                        200..=299 => Ok(Vec::new()),
                        // Timeout and rate limiting are the downstream's state, not the segment's.
                        408 | 429 => Err(DeliveryError::Transient(format!("HTTP {status}"))),
                        400..=499 => Err(DeliveryError::Rejected(format!("HTTP {status}"))),
                        _ => Err(DeliveryError::Transient(format!("HTTP {status}"))),
                    }
                })
                .await
                .map_err(|e| DeliveryError::Transient(format!("webhook task panicked: {e}")))?
            }
            Sink::Ndjson { path } => {
                let mut line = serde_json::to_string(record).expect("a record always serialises");
                line.push('\n');
                let path = path.clone();
                tokio::task::spawn_blocking(move || match path {
                    None => {
                        let mut out = std::io::stdout().lock();
                        out.write_all(line.as_bytes()).and_then(|()| out.flush())
                    }
                    Some(p) => std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&p)
                        .and_then(|mut f| f.write_all(line.as_bytes())),
                })
                .await
                .map_err(|e| DeliveryError::Transient(format!("ndjson task panicked: {e}")))?
                .map_err(|e| DeliveryError::Transient(e.to_string()))
                .map(|()| Vec::new())
            }
        }
    }
}

fn transcript_segment(s: &ForwardSegment) -> pb::TranscriptSegment {
    pb::TranscriptSegment {
        call_id: s.call_id.clone(),
        segment_id: s.segment_id.clone(),
        sequence: s.sequence,
        channel: s.channel,
        role: s.role.clone(),
        dialect: s.dialect.clone(),
        raw_text: s.raw_text.clone(),
        text: s.text.clone(),
        start_ms: s.start_ms,
        end_ms: s.end_ms,
        call_started_at_unix_ms: s.call_started_at_unix_ms,
        confidence: s.confidence,
        language: s.language.clone(),
    }
}

fn lookup_request(r: &Spooled) -> pb::LookupRequest {
    pb::LookupRequest {
        segment: Some(transcript_segment(&r.segment)),
        context: r.context.iter().map(transcript_segment).collect(),
    }
}
