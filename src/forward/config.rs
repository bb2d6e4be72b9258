//! `[forward]` section of the configuration: where final segments go.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ForwardConfig {
    /// Forward finals at all (`serve` and `transcribe`).
    pub enabled: bool,
    /// The durable spool (redb file). Default: `callscribe/spool.redb` in the user's data dir.
    pub spool: Option<PathBuf>,
    /// Where each final goes; several at once. Default: the embedded knowledge base only.
    pub sinks: Vec<SinkConfig>,
    /// Previous segments of the call sent along with each one (gRPC `context`).
    pub context_segments: usize,
    /// Suggestions per segment from the embedded knowledge base.
    pub max_suggestions: usize,
    /// Lowest BM25 score that is still a suggestion (filters greetings and small talk).
    pub min_score: f32,
    /// First retry delay after a transient failure; doubles up to `retry_max_ms`, with jitter.
    pub retry_initial_ms: u64,
    pub retry_max_ms: u64,
    /// `transcribe` waits this long for the sinks before exiting; what is left stays in the
    /// spool for the next run or `callscribe spool replay`.
    pub flush_timeout_ms: u64,
}

impl Default for ForwardConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            spool: None,
            sinks: vec![SinkConfig::Kb { dir: None }],
            context_segments: 3,
            max_suggestions: 3,
            min_score: 5.0,
            retry_initial_ms: 200,
            retry_max_ms: 30_000,
            flush_timeout_ms: 10_000,
        }
    }
}

impl ForwardConfig {
    pub fn spool_path(&self) -> PathBuf {
        self.spool.clone().unwrap_or_else(|| {
            dirs::data_dir()
                .unwrap_or_else(std::env::temp_dir)
                .join("callscribe")
                .join("spool.redb")
        })
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.retry_initial_ms == 0 || self.retry_max_ms < self.retry_initial_ms {
            return Err("forward.retry_initial_ms must be > 0 and ≤ forward.retry_max_ms".into());
        }
        let mut names: Vec<String> = self.sinks.iter().map(SinkConfig::name).collect();
        names.sort();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(format!(
                "forward.sinks: two sinks named '{}'; give one a `name`",
                w[0]
            ));
        }
        Ok(())
    }
}

/// One destination. The name keys the sink's queue in the spool, so renaming a sink leaves
/// its undelivered segments behind (visible in `callscribe spool status`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum SinkConfig {
    /// The embedded knowledge base; suggestions come back to the call.
    Kb {
        /// Folder of articles; none = the bundled sample (`kb/sample`).
        dir: Option<PathBuf>,
    },
    /// A downstream `callscribe.v1.KnowledgeLookup` service; its hits come back as suggestions.
    Grpc {
        name: Option<String>,
        /// `http://host:port`, or `https://host:port` for TLS.
        endpoint: String,
        #[serde(default = "default_timeout_ms")]
        timeout_ms: u64,
        /// For https://: the CA to trust (default: the public web CAs) and a client
        /// certificate for mutual TLS.
        #[serde(default)]
        tls: Option<SinkTls>,
        /// A file holding a token sent as `authorization: Bearer <token>`.
        #[serde(default)]
        bearer_token_file: Option<PathBuf>,
    },
    /// JSON POST of `{segment, context}` per segment.
    Webhook {
        name: Option<String>,
        url: String,
        #[serde(default = "default_timeout_ms")]
        timeout_ms: u64,
        /// For https://: the CA to trust (default: the public web CAs) and a client
        /// certificate for mutual TLS.
        #[serde(default)]
        tls: Option<SinkTls>,
        /// A file holding a token sent as `authorization: Bearer <token>`.
        #[serde(default)]
        bearer_token_file: Option<PathBuf>,
        /// A file holding the shared secret each delivery is signed with (HMAC-SHA256 over
        /// timestamp and body, `forward::sign`); none = unsigned.
        #[serde(default)]
        signing_secret_file: Option<PathBuf>,
    },
    /// One JSON line per segment, appended to a file (`-` = stdout).
    Ndjson { name: Option<String>, path: PathBuf },
    /// NATS JetStream: each final, and each call's start and end, as a CloudEvents 1.0 JSON
    /// event, de-duplicated by `Nats-Msg-Id` (`forward::nats`).
    Nats(NatsSinkConfig),
}

/// `kind = "nats"`: where and how finals and call events are published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsSinkConfig {
    pub name: Option<String>,
    /// Server URLs, `nats://host:4222` (`tls://` for TLS); several for a cluster, of which
    /// the client learns the rest from the first it reaches.
    pub servers: Vec<String>,
    /// First subject tokens: finals go to `<prefix>.<tenant>.calls.<call_id>.segments`, call
    /// events to `<prefix>.<tenant>.calls.<call_id>.events`.
    #[serde(default = "default_subject_prefix")]
    pub subject_prefix: String,
    /// The JetStream stream holding `<prefix>.>`; created when missing. An existing stream is
    /// used as it is (its settings are the operator's).
    #[serde(default = "default_stream")]
    pub stream: String,
    #[serde(default)]
    pub retention: NatsRetention,
    /// Copies of the stream in a cluster (1, 3 or 5; at most the cluster's size).
    #[serde(default = "default_replicas")]
    pub replicas: usize,
    /// How long JetStream remembers a `Nats-Msg-Id`: a replay within it is dropped. It must
    /// cover the longest outage after which the spool replays (a NATS or callscribe restart).
    #[serde(default = "default_duplicate_window_ms")]
    pub duplicate_window_ms: u64,
    /// Oldest message the stream keeps, in seconds; 0 = no limit.
    #[serde(default)]
    pub max_age_secs: u64,
    /// CloudEvents `source` of every event: which callscribe deployment published it.
    #[serde(default = "default_event_source")]
    pub source: String,
    /// Connecting, and waiting for JetStream's publish acknowledgement.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// The CA to trust and a client certificate for mutual TLS (as for the other sinks);
    /// setting it requires TLS of the server.
    #[serde(default)]
    pub tls: Option<SinkTls>,
    /// A file holding the server's authentication token (NATS `authorization { token }`).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// A NATS `.creds` file (user JWT and NKey seed) for decentralised authentication.
    #[serde(default)]
    pub creds_file: Option<PathBuf>,
}

/// When JetStream removes a message (its `RetentionPolicy`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NatsRetention {
    /// At the stream's limits (`max_age_secs`): every consumer reads everything.
    #[default]
    Limits,
    /// Once every consumer has acknowledged it.
    Interest,
    /// Once one consumer has acknowledged it.
    Workqueue,
}

fn default_subject_prefix() -> String {
    "callscribe".into()
}

fn default_stream() -> String {
    "CALLSCRIBE".into()
}

fn default_replicas() -> usize {
    1
}

fn default_duplicate_window_ms() -> u64 {
    // JetStream's own default.
    120_000
}

fn default_event_source() -> String {
    "/callscribe".into()
}

fn default_timeout_ms() -> u64 {
    5000
}

/// TLS towards a sink: `tls = { ca_path = "…", cert_path = "…", key_path = "…" }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkTls {
    /// PEM CA bundle the sink's certificate is verified against; none = the public web CAs.
    #[serde(default)]
    pub ca_path: Option<PathBuf>,
    /// PEM client certificate and key, for a sink that requires mutual TLS.
    #[serde(default)]
    pub cert_path: Option<PathBuf>,
    #[serde(default)]
    pub key_path: Option<PathBuf>,
}

impl SinkConfig {
    pub fn name(&self) -> String {
        match self {
            SinkConfig::Kb { .. } => "kb".into(),
            SinkConfig::Grpc { name, endpoint, .. } => {
                name.clone().unwrap_or_else(|| format!("grpc:{endpoint}"))
            }
            SinkConfig::Webhook { name, url, .. } => {
                name.clone().unwrap_or_else(|| format!("webhook:{url}"))
            }
            SinkConfig::Ndjson { name, path } => name
                .clone()
                .unwrap_or_else(|| format!("ndjson:{}", path.display())),
            SinkConfig::Nats(c) => c
                .name
                .clone()
                .unwrap_or_else(|| format!("nats:{}", c.stream)),
        }
    }
}
