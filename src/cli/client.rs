//! The gRPC client side of a live call, shared by `stream` (a recording) and `capture
//! --server` (a sound card): sends the config and the audio, prints what comes back.

use crate::proto::v1 as pb;
use crate::proto::v1::transcription_client::TranscriptionClient;
use anyhow::Context;
use futures::{Stream, StreamExt};
use std::io::{IsTerminal, Write};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StreamFormat {
    /// Human-readable lines (the interim line is rewritten in place on a terminal).
    Text,
    /// One JSON object per response (NDJSON).
    Json,
}

/// `host:port` or a URL; http:// is assumed when the scheme is missing.
pub fn server_url(server: &str) -> String {
    if server.contains("://") {
        server.to_owned()
    } else {
        format!("http://{server}")
    }
}

/// Streams one call: `config` first, then each audio chunk as a message, then half-close
/// when `audio` ends; prints every response until the server closes the call.
pub async fn stream_call(
    server: &str,
    config: pb::StreamingConfig,
    audio: impl Stream<Item = Vec<u8>> + Send + 'static,
    out: &mut Printer,
) -> anyhow::Result<()> {
    use pb::streaming_transcribe_request::Request;
    let mut client = TranscriptionClient::connect(server.to_owned())
        .await
        .with_context(|| format!("connecting to {server}"))?
        .max_decoding_message_size(64 << 20);
    let first = futures::stream::once(async move {
        pb::StreamingTranscribeRequest {
            request: Some(Request::Config(config)),
        }
    });
    let requests = first.chain(audio.map(|data| pb::StreamingTranscribeRequest {
        request: Some(Request::Audio(data)),
    }));
    let mut responses = client
        .streaming_transcribe(requests)
        .await
        .map_err(|s| anyhow::anyhow!("{:?}: {}", s.code(), s.message()))?
        .into_inner();
    loop {
        match responses.message().await {
            Ok(Some(r)) => out.response(&r)?,
            Ok(None) => break,
            Err(s) => {
                out.clear_interim()?;
                anyhow::bail!("server ended the call: {:?}: {}", s.code(), s.message());
            }
        }
    }
    out.clear_interim()?;
    Ok(())
}

fn clock(ms: u64) -> String {
    format!("{:02}:{:04.1}", ms / 60_000, (ms % 60_000) as f64 / 1000.0)
}

fn role_name(v: i32) -> &'static str {
    match pb::Role::try_from(v) {
        Ok(pb::Role::Agent) => "agent",
        Ok(pb::Role::Customer) => "customer",
        Ok(pb::Role::Mixed) => "mixed",
        _ => "unknown",
    }
}

/// Prints a call's responses: text for people (the interim line rewritten in place on a
/// terminal, one line per event otherwise) or NDJSON for programs.
pub struct Printer {
    format: StreamFormat,
    terminal: bool,
    interim_shown: bool,
}

impl Printer {
    pub fn new(format: StreamFormat) -> Self {
        Self {
            format,
            terminal: std::io::stdout().is_terminal(),
            interim_shown: false,
        }
    }

    pub fn clear_interim(&mut self) -> std::io::Result<()> {
        if self.interim_shown {
            let mut out = std::io::stdout().lock();
            write!(out, "\r\x1b[2K")?;
            out.flush()?;
            self.interim_shown = false;
        }
        Ok(())
    }

    pub fn response(&mut self, r: &pb::StreamingTranscribeResponse) -> anyhow::Result<()> {
        use pb::streaming_transcribe_response::Response as R;
        let Some(resp) = &r.response else {
            return Ok(());
        };
        if self.format == StreamFormat::Json {
            let mut v = match resp {
                R::AcceptedConfig(c) => serde_json::json!({"accepted_config": {
                    "call_id": c.call_id, "sample_rate_hz": c.sample_rate_hz,
                    "channel_count": c.channel_count, "language": c.language, "model": c.model,
                    "dialect": c.dialect, "region": c.region}}),
                R::Interim(i) => serde_json::json!({"interim": {
                    "channel": i.channel, "role": role_name(i.role), "text": i.text,
                    "stable_text": i.stable_text, "stability": i.stability,
                    "start_ms": i.start_ms, "end_ms": i.end_ms}}),
                R::Final(f) => serde_json::json!({"final": {
                    "segment_id": f.segment_id, "channel": f.channel, "role": role_name(f.role),
                    "text": f.text, "start_ms": f.start_ms, "end_ms": f.end_ms,
                    "confidence": f.confidence, "sequence": f.sequence,
                    "words": f.words.iter().map(|w| serde_json::json!({"text": w.text,
                        "start_ms": w.start_ms, "end_ms": w.end_ms, "probability": w.probability}))
                        .collect::<Vec<_>>()}}),
                R::SpeechEvent(e) => serde_json::json!({"speech_event": {
                    "kind": if e.kind == pb::speech_event::Kind::SpeechStart as i32 {"SPEECH_START"} else {"SPEECH_END"},
                    "channel": e.channel, "at_ms": e.at_ms}}),
                R::Dialect(d) => serde_json::json!({"dialect": {
                    "adapter": d.adapter, "version": d.version, "reason": d.reason,
                    "detail": d.detail, "language": d.language}}),
                R::Summary(s) => serde_json::json!({"summary": {
                    "call_id": s.call_id, "audio_ms": s.audio_ms,
                    "final_results": s.final_results, "real_time_factor": s.real_time_factor}}),
                R::Suggestion(s) => serde_json::json!({"suggestion": {
                    "segment_id": s.segment_id,
                    "hits": s.hits.iter().map(|h| serde_json::json!({"article_id": h.article_id,
                        "title": h.title, "snippet": h.snippet, "score": h.score, "source": h.source}))
                        .collect::<Vec<_>>()}}),
            };
            let mut out = std::io::stdout().lock();
            v["call_id"] = serde_json::json!(r.call_id);
            writeln!(out, "{v}")?;
            out.flush()?;
            return Ok(());
        }
        match resp {
            R::Interim(i) => {
                let line = format!(
                    "~ [{}–{}] {}: {}",
                    clock(i.start_ms),
                    clock(i.end_ms),
                    role_name(i.role),
                    i.text
                );
                let mut out = std::io::stdout().lock();
                if self.terminal {
                    write!(out, "\r\x1b[2K{line}")?;
                    self.interim_shown = true;
                } else {
                    writeln!(out, "{line}")?;
                }
                out.flush()?;
            }
            R::Final(f) => {
                self.clear_interim()?;
                let mut out = std::io::stdout().lock();
                writeln!(
                    out,
                    "[{}–{}] {}: {}",
                    clock(f.start_ms),
                    clock(f.end_ms),
                    role_name(f.role),
                    f.text
                )?;
                out.flush()?;
            }
            R::Dialect(d) => {
                self.clear_interim()?;
                eprintln!(
                    "dialect adapter {} {} ({}), language {}",
                    d.adapter, d.version, d.detail, d.language
                );
            }
            R::Summary(s) => {
                self.clear_interim()?;
                eprintln!(
                    "call {}: {:.1} s of audio, {} final result(s), real-time factor {:.3}",
                    s.call_id,
                    s.audio_ms as f64 / 1000.0,
                    s.final_results,
                    s.real_time_factor
                );
            }
            R::AcceptedConfig(c) => {
                tracing::info!(call_id = %c.call_id, model = %c.model, language = %c.language, "call accepted");
            }
            R::Suggestion(s) => {
                if let Some(h) = s.hits.first() {
                    self.clear_interim()?;
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "  ↳ kb {}: {} — {}", h.article_id, h.title, h.snippet)?;
                    out.flush()?;
                }
            }
            R::SpeechEvent(_) => {}
        }
        Ok(())
    }
}
