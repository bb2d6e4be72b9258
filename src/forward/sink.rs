//! The sinks a segment is delivered to. Each answers `Ok(hits)` (empty for sinks that only
//! receive), `Transient` (retried with backoff, in order) or `Rejected` (the downstream says
//! the segment can never be accepted: dead-lettered).
//!
//! The gRPC sink is a client of a downstream `KnowledgeLookup` service, so it is a protobuf
//! edge of its own: its requests are built here, from the spooled segment, and nowhere else.
//!
//! The network sinks speak TLS (a custom CA, a client certificate) and send a token when
//! configured, and the webhook signs each delivery ([`super::sign`]). Secrets (tokens,
//! signing keys, NATS creds) are read from files at start. The `nats` sink ([`super::nats`])
//! is the one that also takes call events.

use super::config::{SinkConfig, SinkTls};
use super::segment::{ForwardSegment, Spooled};
use super::sign::{Signer, SIGNATURE_HEADER, TIMESTAMP_HEADER};
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
        /// `Bearer <token>`, if the downstream wants one.
        authorization: Option<tonic::metadata::AsciiMetadataValue>,
    },
    Webhook {
        agent: ureq::Agent,
        url: String,
        /// `Bearer <token>`, if the downstream wants one.
        authorization: Option<String>,
        signer: Option<Signer>,
    },
    Ndjson {
        /// None = stdout.
        path: Option<PathBuf>,
    },
    /// Boxed: its connection state is several times the size of the other sinks.
    Nats(Box<super::nats::NatsSink>),
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
                tls,
                bearer_token_file,
                ..
            } => {
                let mut ep = tonic::transport::Endpoint::from_shared(endpoint.clone())
                    .map_err(|e| setup(format!("bad endpoint '{endpoint}': {e}")))?
                    .connect_timeout(Duration::from_millis(*timeout_ms))
                    .timeout(Duration::from_millis(*timeout_ms));
                if endpoint.starts_with("https://") {
                    ep = ep
                        .tls_config(grpc_tls(tls.as_ref()).map_err(setup)?)
                        .map_err(|e| setup(format!("TLS: {e}")))?;
                } else if tls.is_some() {
                    return Err(setup("`tls` needs an https:// endpoint".into()));
                }
                let authorization = match bearer_token_file {
                    Some(path) => Some(
                        format!("Bearer {}", read_secret(path).map_err(setup)?)
                            .parse()
                            .map_err(|_| {
                                setup(format!(
                                    "{}: not a token a header can carry",
                                    path.display()
                                ))
                            })?,
                    ),
                    None => None,
                };
                Sink::Grpc {
                    client: pb::knowledge_lookup_client::KnowledgeLookupClient::new(
                        ep.connect_lazy(),
                    ),
                    timeout: Duration::from_millis(*timeout_ms),
                    authorization,
                }
            }
            SinkConfig::Webhook {
                url,
                timeout_ms,
                tls,
                bearer_token_file,
                signing_secret_file,
                ..
            } => {
                let mut config = ureq::Agent::config_builder()
                    .timeout_global(Some(Duration::from_millis(*timeout_ms)))
                    // 4xx/5xx are answers to classify, not transport errors.
                    .http_status_as_error(false);
                if let Some(tls) = tls {
                    if !url.starts_with("https://") {
                        return Err(setup("`tls` needs an https:// url".into()));
                    }
                    config = config.tls_config(webhook_tls(tls).map_err(setup)?);
                }
                let authorization = match bearer_token_file {
                    Some(path) => Some(format!("Bearer {}", read_secret(path).map_err(setup)?)),
                    None => None,
                };
                let signer = match signing_secret_file {
                    Some(path) => Some(Signer::from_file(path).map_err(|e| setup(e.to_string()))?),
                    None => None,
                };
                Sink::Webhook {
                    agent: config.build().new_agent(),
                    url: url.clone(),
                    authorization,
                    signer,
                }
            }
            SinkConfig::Ndjson { path, .. } => Sink::Ndjson {
                path: (path.as_os_str() != "-").then(|| path.clone()),
            },
            SinkConfig::Nats(c) => {
                Sink::Nats(Box::new(super::nats::NatsSink::new(c).map_err(setup)?))
            }
        })
    }

    /// Whether this sink's answers are suggestions for the agent.
    pub fn suggests(&self) -> bool {
        matches!(self, Sink::Kb { .. } | Sink::Grpc { .. })
    }

    /// Whether this sink takes call events (started / ended) besides finals.
    pub fn takes_call_events(&self) -> bool {
        matches!(self, Sink::Nats(_))
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
            Sink::Grpc {
                client,
                timeout,
                authorization,
            } => {
                let mut req = tonic::Request::new(lookup_request(record));
                req.set_timeout(*timeout);
                if let Some(a) = authorization {
                    req.metadata_mut().insert("authorization", a.clone());
                }
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
            Sink::Webhook {
                agent,
                url,
                authorization,
                signer,
            } => {
                let body = serde_json::to_string(record).expect("a record always serialises");
                let mut post = agent
                    .post(url.as_str())
                    .header("content-type", "application/json");
                if let Some(a) = authorization {
                    post = post.header("authorization", a);
                }
                if let Some(signer) = signer {
                    // Per attempt: a retry after an outage is signed with its own time.
                    let now = super::segment::unix_ms_now() / 1000;
                    post = post
                        .header(TIMESTAMP_HEADER, now.to_string())
                        .header(SIGNATURE_HEADER, signer.sign(now, body.as_bytes()));
                }
                tokio::task::spawn_blocking(move || {
                    let resp = post
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
            Sink::Nats(nats) => nats.publish(record).await.map(|()| Vec::new()),
        }
    }
}

/// A secret from its file, without surrounding whitespace.
pub(super) fn read_secret(path: &std::path::Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(format!("{}: empty", path.display()));
    }
    Ok(secret.to_owned())
}

fn read_file(path: &std::path::Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))
}

/// A client certificate chain and its private key, as PEM.
type PemPair = (Vec<u8>, Vec<u8>);

/// The client certificate and key of `tls`, both or neither.
fn client_pair(tls: &SinkTls) -> Result<Option<PemPair>, String> {
    match (&tls.cert_path, &tls.key_path) {
        (Some(c), Some(k)) => Ok(Some((read_file(c)?, read_file(k)?))),
        (None, None) => Ok(None),
        _ => Err("tls.cert_path and tls.key_path go together".into()),
    }
}

fn grpc_tls(tls: Option<&SinkTls>) -> Result<tonic::transport::ClientTlsConfig, String> {
    let mut config = tonic::transport::ClientTlsConfig::new();
    let Some(tls) = tls else {
        return Ok(config.with_webpki_roots());
    };
    config = match &tls.ca_path {
        Some(ca) => config.ca_certificate(tonic::transport::Certificate::from_pem(read_file(ca)?)),
        None => config.with_webpki_roots(),
    };
    if let Some((cert, key)) = client_pair(tls)? {
        config = config.identity(tonic::transport::Identity::from_pem(cert, key));
    }
    Ok(config)
}

fn webhook_tls(tls: &SinkTls) -> Result<ureq::tls::TlsConfig, String> {
    use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey, RootCerts};
    let certs = |path: &std::path::Path| -> Result<Vec<Certificate<'static>>, String> {
        let pem = read_file(path)?;
        let certs: Vec<Certificate<'static>> = ureq::tls::parse_pem(&pem)
            .filter_map(|item| match item {
                Ok(PemItem::Certificate(c)) => Some(Ok(c)),
                Ok(_) => None,
                Err(e) => Some(Err(format!("{}: {e}", path.display()))),
            })
            .collect::<Result<_, _>>()?;
        if certs.is_empty() {
            return Err(format!("{}: no PEM certificate", path.display()));
        }
        Ok(certs)
    };
    let mut config = ureq::tls::TlsConfig::builder();
    if let Some(ca) = &tls.ca_path {
        config = config.root_certs(RootCerts::new_with_certs(&certs(ca)?));
    }
    if let (Some(cert), Some(key)) = (&tls.cert_path, &tls.key_path) {
        let key_pem = read_file(key)?;
        let key = PrivateKey::from_pem(&key_pem).map_err(|e| format!("{}: {e}", key.display()))?;
        config = config.client_cert(Some(ClientCert::new_with_certs(&certs(cert)?, key)));
    } else if tls.cert_path.is_some() || tls.key_path.is_some() {
        return Err("tls.cert_path and tls.key_path go together".into());
    }
    Ok(config.build())
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
        tenant: s.tenant.clone(),
    }
}

fn lookup_request(r: &Spooled) -> pb::LookupRequest {
    pb::LookupRequest {
        segment: Some(transcript_segment(&r.segment)),
        context: r.context.iter().map(transcript_segment).collect(),
    }
}
