//! `callscribe stream --server URL FILE.wav`: the reference client. Sends a recording the way a
//! telephony system streams a live call and prints interim and final results as they arrive.

use crate::audio::codec::{self, Encoding};
use crate::audio::read_wav;
use crate::proto::v1 as pb;
use crate::proto::v1::transcription_client::TranscriptionClient;
use anyhow::Context;
use clap::Args;
use futures::StreamExt;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StreamFormat {
    /// Human-readable lines (the interim line is rewritten in place on a terminal).
    Text,
    /// One JSON object per response (NDJSON).
    Json,
}

#[derive(Debug, Args)]
pub struct StreamArgs {
    /// Server address, e.g. http://127.0.0.1:50051 (http:// is assumed when missing).
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    pub server: String,
    /// Recording to send (WAV, mono or two-channel agent/customer).
    pub file: PathBuf,
    /// Send at the pace of the audio, as a live call does (default: as fast as possible).
    #[arg(long)]
    pub realtime: bool,
    /// Wire encoding of the audio.
    #[arg(long, value_enum, default_value = "linear16")]
    pub encoding: Encoding,
    /// Audio per message, in milliseconds.
    #[arg(long, default_value_t = 100)]
    pub chunk_ms: u32,
    /// Ask for interim results.
    #[arg(long)]
    pub interim: bool,
    /// Call id (default: the file name).
    #[arg(long)]
    pub call_id: Option<String>,
    /// Spoken language (en, zh, …); default: the server's.
    #[arg(short, long)]
    pub language: Option<String>,
    /// Model; default: the server's.
    #[arg(short, long)]
    pub model: Option<String>,
    /// Dialect adapter id and caller region, passed through to the server.
    #[arg(long)]
    pub dialect: Option<String>,
    #[arg(long)]
    pub region: Option<String>,
    #[arg(long, value_enum, default_value = "text")]
    pub format: StreamFormat,
}

impl clap::ValueEnum for Encoding {
    fn value_variants<'a>() -> &'a [Self] {
        &[Encoding::Linear16, Encoding::Mulaw, Encoding::Alaw]
    }
    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(match self {
            Encoding::Linear16 => "linear16",
            Encoding::Mulaw => "mulaw",
            Encoding::Alaw => "alaw",
        }))
    }
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

impl StreamArgs {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        if self.chunk_ms == 0 || self.chunk_ms > 10_000 {
            anyhow::bail!("--chunk-ms must be within 1..10000");
        }
        let audio = read_wav(&self.file)?;
        let channels = audio.channels.len();
        let rate = audio.sample_rate_hz;
        let mut interleaved = Vec::with_capacity(audio.frames() * channels);
        for i in 0..audio.frames() {
            for ch in &audio.channels {
                interleaved.push(ch[i]);
            }
        }
        let mut bytes = Vec::new();
        codec::encode(self.encoding, &interleaved, &mut bytes);
        let frames_per_chunk = (rate as usize * self.chunk_ms as usize / 1000).max(1);
        let chunk_bytes = frames_per_chunk * channels * self.encoding.bytes_per_sample();
        let call_id = self.call_id.clone().unwrap_or_else(|| {
            self.file
                .file_stem()
                .map_or("call".into(), |s| s.to_string_lossy().into_owned())
        });
        let config = pb::StreamingConfig {
            call_id,
            encoding: crate::server::convert::encoding_to_proto(self.encoding) as i32,
            sample_rate_hz: rate,
            channel_count: channels as u32,
            channel_roles: if channels == 2 {
                vec![pb::Role::Agent as i32, pb::Role::Customer as i32]
            } else {
                Vec::new()
            },
            dialect: self.dialect.clone().unwrap_or_default(),
            region: self.region.clone().unwrap_or_default(),
            language: self.language.clone().unwrap_or_default(),
            interim_results: self.interim,
            model: self.model.clone().unwrap_or_default(),
            ..Default::default()
        };
        let server = if self.server.contains("://") {
            self.server.clone()
        } else {
            format!("http://{}", self.server)
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        runtime.block_on(self.session(server, config, bytes, chunk_bytes))
    }

    async fn session(
        &self,
        server: String,
        config: pb::StreamingConfig,
        bytes: Vec<u8>,
        chunk_bytes: usize,
    ) -> anyhow::Result<ExitCode> {
        let mut client = TranscriptionClient::connect(server.clone())
            .await
            .with_context(|| format!("connecting to {server}"))?
            .max_decoding_message_size(64 << 20);
        let chunk = Duration::from_millis(u64::from(self.chunk_ms));
        let realtime = self.realtime;
        let requests = async_stream(config, bytes, chunk_bytes, chunk, realtime);
        let mut responses = client
            .streaming_transcribe(requests)
            .await
            .map_err(|s| anyhow::anyhow!("{:?}: {}", s.code(), s.message()))?
            .into_inner();
        let mut out = Printer::new(self.format);
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
        Ok(ExitCode::SUCCESS)
    }
}

/// The request stream: the config, then the audio in chunks (paced in real time if asked),
/// then half-close.
fn async_stream(
    config: pb::StreamingConfig,
    bytes: Vec<u8>,
    chunk_bytes: usize,
    chunk: Duration,
    realtime: bool,
) -> impl futures::Stream<Item = pb::StreamingTranscribeRequest> + Send + 'static {
    use pb::streaming_transcribe_request::Request;
    let first = futures::stream::once(async move {
        pb::StreamingTranscribeRequest {
            request: Some(Request::Config(config)),
        }
    });
    let start = tokio::time::Instant::now();
    let chunks: Vec<Vec<u8>> = bytes.chunks(chunk_bytes).map(<[u8]>::to_vec).collect();
    let audio =
        futures::stream::iter(chunks.into_iter().enumerate()).then(move |(i, data)| async move {
            if realtime {
                // Paced against the start, not the previous send, so the pace never drifts.
                tokio::time::sleep_until(start + chunk * i as u32).await;
            }
            pb::StreamingTranscribeRequest {
                request: Some(Request::Audio(data)),
            }
        });
    first.chain(audio)
}

struct Printer {
    format: StreamFormat,
    terminal: bool,
    interim_shown: bool,
}

impl Printer {
    fn new(format: StreamFormat) -> Self {
        Self {
            format,
            terminal: std::io::stdout().is_terminal(),
            interim_shown: false,
        }
    }

    fn clear_interim(&mut self) -> std::io::Result<()> {
        if self.interim_shown {
            let mut out = std::io::stdout().lock();
            write!(out, "\r\x1b[2K")?;
            out.flush()?;
            self.interim_shown = false;
        }
        Ok(())
    }

    fn response(&mut self, r: &pb::StreamingTranscribeResponse) -> anyhow::Result<()> {
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
