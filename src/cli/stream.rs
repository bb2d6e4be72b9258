//! `callscribe stream --server URL FILE.wav`: the reference client. Sends a recording the way a
//! telephony system streams a live call and prints interim and final results as they arrive.

use super::client;
use super::flags::{ConnectFlags, DialectFlags};
use super::printer::{Printer, StreamFormat};
use crate::audio::codec::{self, Encoding};
use crate::audio::{read_audio, Role};
use crate::plan::CallRequest;
use crate::runtime::{self, Workers};
use crate::stream::{CallFormat, LiveRequest};
use anyhow::Context;
use clap::Args;
use futures::StreamExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct StreamArgs {
    /// Server address, e.g. http://127.0.0.1:50051 (http:// is assumed when missing).
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    pub server: String,
    // TLS, mutual TLS and the API key for a secure server.
    #[command(flatten)]
    pub connect: ConnectFlags,
    /// Recording to send (any format `transcribe` reads; mono or two-channel agent/customer).
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
    // Dialect adapter and caller region, passed on to the server.
    #[command(flatten)]
    pub dialect: DialectFlags,
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

impl StreamArgs {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        if self.chunk_ms == 0 || self.chunk_ms > 10_000 {
            anyhow::bail!("--chunk-ms must be within 1..10000");
        }
        let audio = read_audio(&self.file)?;
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
        let request = LiveRequest {
            call_id: Some(call_id),
            format: CallFormat {
                encoding: self.encoding,
                sample_rate_hz: rate,
                roles: if channels == 2 {
                    vec![Role::Agent, Role::Customer]
                } else {
                    vec![Role::Mixed; channels]
                },
            },
            choices: CallRequest {
                model: self.model.clone(),
                language: self.language.clone(),
                dialect: self.dialect.dialect.clone(),
                region: self.dialect.region.clone(),
                ..CallRequest::default()
            },
            interim: self.interim,
            endpoint_silence_ms: None,
            started_at_unix_ms: None,
        };
        let server = client::Connection::new(&self.server, &self.connect)?;
        let runtime = runtime::build(Workers::One).context("starting the async runtime")?;
        runtime.block_on(self.session(server, request, bytes, chunk_bytes))
    }

    async fn session(
        &self,
        server: client::Connection,
        request: LiveRequest,
        bytes: Vec<u8>,
        chunk_bytes: usize,
    ) -> anyhow::Result<ExitCode> {
        let chunk = Duration::from_millis(u64::from(self.chunk_ms));
        let audio = audio_chunks(bytes, chunk_bytes, chunk, self.realtime);
        let mut out = Printer::new(self.format);
        client::stream_call(&server, &request, audio, &mut out).await?;
        Ok(ExitCode::SUCCESS)
    }
}

/// The recording in chunks, paced in real time if asked.
fn audio_chunks(
    bytes: Vec<u8>,
    chunk_bytes: usize,
    chunk: Duration,
    realtime: bool,
) -> impl futures::Stream<Item = Vec<u8>> + Send + 'static {
    let start = tokio::time::Instant::now();
    let chunks: Vec<Vec<u8>> = bytes.chunks(chunk_bytes).map(<[u8]>::to_vec).collect();
    futures::stream::iter(chunks.into_iter().enumerate()).then(move |(i, data)| async move {
        if realtime {
            // Paced against the start, not the previous send, so the pace never drifts.
            tokio::time::sleep_until(start + chunk * i as u32).await;
        }
        data
    })
}
