//! The `nats` sink: each final, and each call's start and end, published to NATS JetStream
//! as a CloudEvents 1.0 JSON event (structured mode: the whole event is the message body).
//!
//! Exactly once downstream rests on two things. The spool holds a record until this sink
//! returns `Ok`, which it does only once JetStream has acknowledged the publish (the message
//! is stored, on a quorum of the stream's replicas), so a NATS server down or restarting,
//! or a callscribe killed mid-call, loses nothing. And every message carries
//! `Nats-Msg-Id` = the segment id (or `{call_id}/started|ended`), so the replay of a record
//! that was stored but not acknowledged to us is dropped by JetStream's duplicate window.
//!
//! Subjects: `<prefix>.<tenant>.calls.<call_id>.segments` for finals and `.events` for call
//! events; tenant and call id are written with [`subject_token`], which keeps any id valid
//! in a subject and distinct from every other id. The stream (`<prefix>.>`) is created on
//! first use when missing. The connection is made on first delivery and re-made by the
//! client after a loss, so a NATS down at start is retried like one that goes down later.

use super::config::{NatsRetention, NatsSinkConfig, SinkTls};
use super::segment::{CallEventKind, Spooled};
use super::sink::DeliveryError;
use async_nats::jetstream::{self, context::PublishErrorKind};
use std::path::Path;
use std::time::Duration;

/// CloudEvents `type` of a final segment.
pub const SEGMENT_EVENT_TYPE: &str = "com.callscribe.segment.final";
/// CloudEvents `type` of a call's start and end.
pub const CALL_STARTED_EVENT_TYPE: &str = "com.callscribe.call.started";
pub const CALL_ENDED_EVENT_TYPE: &str = "com.callscribe.call.ended";

/// How to reach NATS, checked and with its secrets read: the sink's connection, and the
/// distributed batch's (`crate::jobs`), which take the same servers, token, creds and TLS.
#[derive(Clone)]
pub struct NatsConnect {
    servers: Vec<async_nats::ServerAddr>,
    /// As given, for error messages.
    server_names: Vec<String>,
    /// The token, read at start.
    token: Option<String>,
    /// The `.creds` file's contents, read and checked at start.
    creds: Option<String>,
    tls: Option<SinkTls>,
    timeout: Duration,
}

impl NatsConnect {
    /// Checks the URLs and TLS files and reads the secrets; connects nothing yet.
    pub fn new(
        servers: &[String],
        token_file: Option<&Path>,
        creds_file: Option<&Path>,
        tls: Option<&SinkTls>,
        timeout: Duration,
    ) -> Result<Self, String> {
        if servers.is_empty() {
            return Err("`servers` is empty; give at least one nats:// URL".into());
        }
        let addrs = servers
            .iter()
            .map(|s| {
                s.parse::<async_nats::ServerAddr>()
                    .map_err(|e| format!("bad server URL '{s}': {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(tls) = tls {
            for path in [&tls.ca_path, &tls.cert_path, &tls.key_path]
                .into_iter()
                .flatten()
            {
                std::fs::metadata(path)
                    .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
            }
            if tls.cert_path.is_some() != tls.key_path.is_some() {
                return Err("tls.cert_path and tls.key_path go together".into());
            }
        }
        let token = match token_file {
            Some(path) => Some(super::sink::read_secret(path)?),
            None => None,
        };
        let creds = match creds_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
                async_nats::ConnectOptions::with_credentials(&text)
                    .map_err(|e| format!("{}: not a NATS creds file: {e}", path.display()))?;
                Some(text)
            }
            None => None,
        };
        Ok(Self {
            servers: addrs,
            server_names: servers.to_vec(),
            token,
            creds,
            tls: tls.cloned(),
            timeout,
        })
    }

    /// Time allowed to connect, and for each JetStream request.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn options(&self) -> Result<async_nats::ConnectOptions, String> {
        let mut options = match &self.creds {
            Some(creds) => async_nats::ConnectOptions::with_credentials(creds)
                .map_err(|e| format!("creds: {e}"))?,
            None => async_nats::ConnectOptions::new(),
        }
        .name("callscribe")
        .connection_timeout(self.timeout)
        // Never give up reconnecting: the spool (or the work queue) holds what waits
        // meanwhile.
        .max_reconnects(None);
        if let Some(token) = &self.token {
            options = options.token(token.clone());
        }
        if let Some(tls) = &self.tls {
            options = options.require_tls(true);
            if let Some(ca) = &tls.ca_path {
                options = options.add_root_certificates(ca.clone());
            }
            if let (Some(cert), Some(key)) = (&tls.cert_path, &tls.key_path) {
                options = options.add_client_certificate(cert.clone(), key.clone());
            }
        }
        Ok(options)
    }

    /// Connects (the client reconnects by itself after a loss) and returns a JetStream
    /// context whose requests time out after [`Self::timeout`].
    pub async fn jetstream(&self) -> Result<jetstream::Context, String> {
        let client = self
            .options()?
            .connect(self.servers.clone())
            .await
            .map_err(|e| {
                format!(
                    "cannot connect to NATS ({}): {e}",
                    self.server_names.join(", ")
                )
            })?;
        let mut context = jetstream::new(client);
        context.set_timeout(self.timeout);
        Ok(context)
    }
}

pub struct NatsSink {
    config: NatsSinkConfig,
    connect: NatsConnect,
    /// Made on first delivery; then kept (the client reconnects by itself).
    context: tokio::sync::Mutex<Option<jetstream::Context>>,
    /// Whether the stream is known to exist; cleared when a publish finds no stream.
    stream_ready: std::sync::atomic::AtomicBool,
}

impl NatsSink {
    /// Checks the configuration and reads its secrets; connects nothing yet.
    pub fn new(config: &NatsSinkConfig) -> Result<Self, String> {
        let connect = NatsConnect::new(
            &config.servers,
            config.token_file.as_deref(),
            config.creds_file.as_deref(),
            config.tls.as_ref(),
            Duration::from_millis(config.timeout_ms),
        )?;
        validate_prefix(&config.subject_prefix)?;
        if config.stream.is_empty()
            || config
                .stream
                .chars()
                .any(|c| matches!(c, '.' | '*' | '>' | '/' | '\\') || c.is_whitespace())
        {
            return Err(format!(
                "stream name '{}' must be non-empty, without '.', '*', '>', slashes or spaces",
                config.stream
            ));
        }
        if !matches!(config.replicas, 1..=5) {
            return Err(format!(
                "replicas = {}: JetStream keeps 1 to 5",
                config.replicas
            ));
        }
        if config.duplicate_window_ms == 0 {
            return Err(
                "duplicate_window_ms = 0 turns off de-duplication, which replays rely on".into(),
            );
        }
        Ok(Self {
            config: config.clone(),
            connect,
            context: tokio::sync::Mutex::new(None),
            stream_ready: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The JetStream context, connecting first if there is none yet.
    async fn context(&self) -> Result<jetstream::Context, DeliveryError> {
        let mut held = self.context.lock().await;
        if let Some(context) = held.as_ref() {
            return Ok(context.clone());
        }
        let context = self
            .connect
            .jetstream()
            .await
            .map_err(DeliveryError::Transient)?;
        *held = Some(context.clone());
        Ok(context)
    }

    /// Creates the stream unless it exists (once per connection, and again after a publish
    /// found none).
    async fn ensure_stream(&self, context: &jetstream::Context) -> Result<(), DeliveryError> {
        use std::sync::atomic::Ordering;
        if self.stream_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let c = &self.config;
        let config = jetstream::stream::Config {
            name: c.stream.clone(),
            subjects: vec![format!("{}.>", c.subject_prefix)],
            retention: match c.retention {
                NatsRetention::Limits => jetstream::stream::RetentionPolicy::Limits,
                NatsRetention::Interest => jetstream::stream::RetentionPolicy::Interest,
                NatsRetention::Workqueue => jetstream::stream::RetentionPolicy::WorkQueue,
            },
            num_replicas: c.replicas,
            duplicate_window: Duration::from_millis(c.duplicate_window_ms),
            max_age: Duration::from_secs(c.max_age_secs),
            storage: jetstream::stream::StorageType::File,
            ..Default::default()
        };
        context.get_or_create_stream(config).await.map_err(|e| {
            DeliveryError::Transient(format!("JetStream stream '{}': {e}", c.stream))
        })?;
        self.stream_ready.store(true, Ordering::Release);
        Ok(())
    }

    /// Publishes the record and waits for JetStream's acknowledgement.
    pub async fn publish(&self, record: &Spooled) -> Result<(), DeliveryError> {
        let context = self.context().await?;
        self.ensure_stream(&context).await?;
        let (subject, id, event) = cloud_event(record, &self.config);
        let body = serde_json::to_vec(&event).expect("an event always serialises");
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
        headers.insert("Content-Type", "application/cloudevents+json");
        let classify = |e: jetstream::context::PublishError| match e.kind() {
            PublishErrorKind::MaxPayloadExceeded => DeliveryError::Rejected(e.to_string()),
            PublishErrorKind::StreamNotFound => {
                // Deleted, or never made: made again on the retry.
                self.stream_ready
                    .store(false, std::sync::atomic::Ordering::Release);
                DeliveryError::Transient(format!("{subject}: {e}"))
            }
            _ => DeliveryError::Transient(format!("{subject}: {e}")),
        };
        let ack = context
            .publish_with_headers(subject.clone(), headers, body.into())
            .await
            .map_err(classify)?
            .await
            .map_err(classify)?;
        if ack.duplicate {
            tracing::debug!(%id, "JetStream had it already (a replay)");
        }
        Ok(())
    }
}

fn validate_prefix(prefix: &str) -> Result<(), String> {
    let bad = prefix.is_empty()
        || prefix
            .split('.')
            .any(|t| t.is_empty() || t == "*" || t == ">" || t.chars().any(|c| c.is_whitespace()));
    if bad {
        return Err(format!(
            "subject_prefix '{prefix}' must be dot-separated non-empty tokens without spaces or wildcards"
        ));
    }
    Ok(())
}

/// `id` as one subject token: `.`, `*`, `>`, `%`, whitespace, control and non-ASCII
/// characters are percent-encoded (UTF-8 bytes), so the token is valid in any subject and
/// two different ids never share one; empty is `_`.
pub fn subject_token(id: &str) -> String {
    if id.is_empty() {
        return "_".into();
    }
    let mut out = String::with_capacity(id.len());
    for c in id.chars() {
        if c.is_ascii_graphic() && !matches!(c, '.' | '*' | '>' | '%') {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

/// The subject, the de-duplication id and the CloudEvent of a record.
pub fn cloud_event(
    record: &Spooled,
    config: &NatsSinkConfig,
) -> (String, String, serde_json::Value) {
    let s = &record.segment;
    let base = format!(
        "{}.{}.calls.{}",
        config.subject_prefix,
        subject_token(&s.tenant),
        subject_token(&s.call_id)
    );
    let (subject, kind, at_unix_ms, data) = match &record.call_event {
        None => (
            format!("{base}.segments"),
            SEGMENT_EVENT_TYPE,
            // When the segment ended, on the wall clock: the same on every replay.
            if s.call_started_at_unix_ms > 0 {
                s.call_started_at_unix_ms + s.end_ms as i64
            } else {
                super::segment::unix_ms_now()
            },
            serde_json::to_value(s).expect("a segment always serialises"),
        ),
        Some(event) => {
            let mut data = serde_json::json!({
                "tenant": s.tenant,
                "call_id": s.call_id,
                "dialect": s.dialect,
                "started_at_unix_ms": s.call_started_at_unix_ms,
            });
            let kind = match event.kind {
                CallEventKind::Started => CALL_STARTED_EVENT_TYPE,
                CallEventKind::Ended => {
                    data["ended_at_unix_ms"] = event.at_unix_ms.into();
                    data["finals"] = event.finals.into();
                    CALL_ENDED_EVENT_TYPE
                }
            };
            (format!("{base}.events"), kind, event.at_unix_ms, data)
        }
    };
    let time = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_unix_ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    let event = serde_json::json!({
        "specversion": "1.0",
        "type": kind,
        "source": config.source,
        "id": s.segment_id,
        "time": time,
        "subject": format!("calls/{}", s.call_id),
        "datacontenttype": "application/json",
        "data": data,
    });
    (subject, s.segment_id.clone(), event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward::segment::{CallEvent, ForwardSegment};

    fn config() -> NatsSinkConfig {
        toml::from_str::<NatsSinkConfig>("servers = [\"nats://127.0.0.1:4222\"]").unwrap()
    }

    fn segment(call_id: &str, tenant: &str) -> ForwardSegment {
        ForwardSegment {
            call_id: call_id.into(),
            segment_id: crate::transcript::segment_id(call_id, 1, 4),
            sequence: 4,
            channel: 1,
            role: "customer".into(),
            dialect: "cantonese".into(),
            raw_text: "raw".into(),
            text: "text".into(),
            start_ms: 1000,
            end_ms: 2500,
            call_started_at_unix_ms: 1_700_000_000_000,
            confidence: 0.75,
            language: "yue".into(),
            tenant: tenant.into(),
        }
    }

    #[test]
    fn subject_tokens_are_valid_and_distinct() {
        assert_eq!(subject_token("call-1"), "call-1");
        assert_eq!(subject_token(""), "_");
        assert_eq!(subject_token("a.b"), "a%2Eb");
        assert_eq!(subject_token("a b>*"), "a%20b%3E%2A");
        // `%` itself is encoded, so an id that looks encoded stays apart from the one it
        // looks like.
        assert_ne!(subject_token("a%2Eb"), subject_token("a.b"));
        assert_eq!(subject_token("电话"), "%E7%94%B5%E8%AF%9D");
        for id in ["x.y", "*", ">", "a\tb", "ü"] {
            let t = subject_token(id);
            assert!(
                t.chars()
                    .all(|c| c.is_ascii_graphic() && !matches!(c, '.' | '*' | '>')),
                "{id} → {t}"
            );
        }
    }

    #[test]
    fn a_final_is_a_cloudevent_on_its_calls_subject() {
        let record = Spooled::final_segment(segment("c.1", "acme"), vec![]);
        let (subject, id, event) = cloud_event(&record, &config());
        assert_eq!(subject, "callscribe.acme.calls.c%2E1.segments");
        assert_eq!(id, "c.1/1/4");
        assert_eq!(event["specversion"], "1.0");
        assert_eq!(event["type"], SEGMENT_EVENT_TYPE);
        assert_eq!(event["id"], "c.1/1/4");
        assert_eq!(event["source"], "/callscribe");
        assert_eq!(event["datacontenttype"], "application/json");
        // Call start + end_ms: 2023-11-14T22:13:20Z + 2.5 s.
        assert_eq!(event["time"], "2023-11-14T22:13:22.5Z");
        let data = &event["data"];
        for (k, v) in [
            ("tenant", "acme"),
            ("call_id", "c.1"),
            ("role", "customer"),
            ("dialect", "cantonese"),
            ("text", "text"),
            ("raw_text", "raw"),
        ] {
            assert_eq!(data[k], v, "{k}");
        }
        assert_eq!(data["channel"], 1);
        assert_eq!(data["start_ms"], 1000);
        assert_eq!(data["end_ms"], 2500);
        assert_eq!(data["confidence"], 0.75);
    }

    #[test]
    fn call_events_go_to_the_calls_events_subject_with_their_own_ids() {
        let mut c = config();
        c.subject_prefix = "cs.prod".into();
        let event = CallEvent {
            kind: CallEventKind::Ended,
            at_unix_ms: 1_700_000_060_000,
            finals: 7,
        };
        let mut call = segment("c1", "");
        call.segment_id = event.id("c1");
        let record = Spooled {
            segment: call,
            context: vec![],
            call_event: Some(event),
        };
        let (subject, id, ce) = cloud_event(&record, &c);
        assert_eq!(subject, "cs.prod._.calls.c1.events");
        assert_eq!(id, "c1/ended");
        assert_eq!(ce["type"], CALL_ENDED_EVENT_TYPE);
        assert_eq!(ce["data"]["finals"], 7);
        assert_eq!(ce["data"]["ended_at_unix_ms"], 1_700_000_060_000i64);
        assert_eq!(ce["time"], "2023-11-14T22:14:20Z");
    }

    #[test]
    fn a_config_that_cannot_work_is_refused_at_start() {
        let bad = |edit: fn(&mut NatsSinkConfig)| {
            let mut c = config();
            edit(&mut c);
            NatsSink::new(&c).err().expect("refused")
        };
        assert!(bad(|c| c.servers.clear()).contains("servers"));
        assert!(bad(|c| c.servers = vec!["nats://[::1".into()]).contains("bad server URL"));
        assert!(bad(|c| c.subject_prefix = "a..b".into()).contains("subject_prefix"));
        assert!(bad(|c| c.subject_prefix = "a.>".into()).contains("subject_prefix"));
        assert!(bad(|c| c.stream = "a.b".into()).contains("stream name"));
        assert!(bad(|c| c.replicas = 0).contains("replicas"));
        assert!(bad(|c| c.duplicate_window_ms = 0).contains("duplicate_window_ms"));
        assert!(bad(|c| c.token_file = Some("/nonexistent/token".into())).contains("cannot read"));
        assert!(NatsSink::new(&config()).is_ok());
    }
}
