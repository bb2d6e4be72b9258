//! In-process `callscribe` gRPC servers on loopback and a tonic client for them.
#![allow(dead_code)]

use super::engine;
use callscribe::audio::codec::{self, Encoding};
use callscribe::audio::read_wav;
use callscribe::engine::DecodeConfig;
use callscribe::proto::v1 as pb;
use callscribe::proto::v1::transcription_client::TranscriptionClient;
use callscribe::server::{self, ServeSettings, ServerConfig, ServerHandle};
use std::path::Path;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::Status;

pub use pb::streaming_transcribe_request::Request as Req;
pub use pb::streaming_transcribe_response::Response as Resp;

/// Server settings for tests: one inference worker, English; tiny.en by default and base for
/// the 8 kHz calls (tiny.en is too weak on narrow-band speech for a meaningful WER bound).
/// The built-in dialect adapters with the default selection policy.
pub fn shipped_dialects() -> std::sync::Arc<callscribe::dialect::Dialects> {
    std::sync::Arc::new(
        callscribe::dialect::Dialects::load(&Default::default(), &|_: &str| true)
            .expect("the shipped adapters load"),
    )
}

pub fn settings(max_streams: usize) -> ServeSettings {
    let server = ServerConfig {
        listen: "127.0.0.1:0".into(),
        metrics_listen: Some("127.0.0.1:0".into()),
        interim_interval_ms: 1000,
        // Tests hold calls open while others are transcribed; on a loaded 2-core CI machine
        // that can outlast the 30 s default. The idle-timeout test sets its own.
        idle_timeout_ms: 180_000,
        ..ServerConfig::default()
    };
    ServeSettings {
        server,
        vad: super::vad(),
        decode: DecodeConfig {
            language: "en".into(),
            ..DecodeConfig::default()
        },
        // Two single-threaded workers: see `TEST_THREADS`.
        workers: 2,
        threads: super::TEST_THREADS,
        max_streams,
        dialects: shipped_dialects(),
        tenants: Default::default(),
    }
}

pub async fn start(settings: ServeSettings) -> ServerHandle {
    let mut handle = server::start(
        settings,
        Box::new(|| Ok(vec![engine("tiny.en"), engine("base")])),
    )
    .await
    .expect("server starts");
    handle.ready().await.expect("model loads");
    handle
}

pub async fn client(handle: &ServerHandle) -> TranscriptionClient<Channel> {
    TranscriptionClient::connect(format!("http://{}", handle.addr))
        .await
        .expect("connect over loopback")
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20)
}

pub fn encoding_proto(e: Encoding) -> i32 {
    callscribe::proto::convert::encoding_to_proto(e) as i32
}

/// A fixture as a telephony system would send it: its config and chunks of `chunk_ms`.
pub fn call_audio(
    wav: &Path,
    call_id: &str,
    encoding: Encoding,
    chunk_ms: u32,
) -> (pb::StreamingConfig, Vec<Vec<u8>>) {
    let audio = read_wav(wav).expect("fixture reads");
    let channels = audio.channels.len();
    let mut interleaved = Vec::with_capacity(audio.frames() * channels);
    for i in 0..audio.frames() {
        for ch in &audio.channels {
            interleaved.push(ch[i]);
        }
    }
    let mut bytes = Vec::new();
    codec::encode(encoding, &interleaved, &mut bytes);
    let frames = (audio.sample_rate_hz * chunk_ms / 1000) as usize;
    let chunks = bytes
        .chunks(frames * channels * encoding.bytes_per_sample())
        .map(<[u8]>::to_vec)
        .collect();
    let config = pb::StreamingConfig {
        call_id: call_id.into(),
        encoding: encoding_proto(encoding),
        sample_rate_hz: audio.sample_rate_hz,
        channel_count: channels as u32,
        language: "en".into(),
        ..Default::default()
    };
    (config, chunks)
}

pub fn config_msg(c: pb::StreamingConfig) -> pb::StreamingTranscribeRequest {
    pb::StreamingTranscribeRequest {
        request: Some(Req::Config(c)),
    }
}

pub fn audio_msg(a: Vec<u8>) -> pb::StreamingTranscribeRequest {
    pb::StreamingTranscribeRequest {
        request: Some(Req::Audio(a)),
    }
}

/// Everything a call returned: its responses and the status it ended with (None = OK).
#[derive(Debug, Default)]
pub struct CallOutcome {
    pub responses: Vec<Resp>,
    pub status: Option<Status>,
}

impl CallOutcome {
    pub fn finals(&self) -> Vec<&pb::FinalResult> {
        self.responses
            .iter()
            .filter_map(|r| match r {
                Resp::Final(f) => Some(f),
                _ => None,
            })
            .collect()
    }

    pub fn interims(&self) -> Vec<&pb::InterimResult> {
        self.responses
            .iter()
            .filter_map(|r| match r {
                Resp::Interim(i) => Some(i),
                _ => None,
            })
            .collect()
    }

    pub fn summary(&self) -> Option<&pb::CallSummary> {
        self.responses.iter().find_map(|r| match r {
            Resp::Summary(s) => Some(s),
            _ => None,
        })
    }
}

/// Opens a call whose requests the test sends through the returned sender.
pub async fn open_call(
    client: &mut TranscriptionClient<Channel>,
    first: Vec<pb::StreamingTranscribeRequest>,
) -> (
    mpsc::Sender<pb::StreamingTranscribeRequest>,
    Result<tonic::Streaming<pb::StreamingTranscribeResponse>, Status>,
) {
    let (tx, rx) = mpsc::channel(first.len() + 64);
    for m in first {
        tx.send(m).await.expect("queue request");
    }
    let r = client
        .streaming_transcribe(ReceiverStream::new(rx))
        .await
        .map(tonic::Response::into_inner);
    (tx, r)
}

/// Reads a call's responses to its end.
pub async fn collect(mut s: tonic::Streaming<pb::StreamingTranscribeResponse>) -> CallOutcome {
    let mut out = CallOutcome::default();
    loop {
        match s.message().await {
            Ok(Some(r)) => out.responses.extend(r.response),
            Ok(None) => return out,
            Err(e) => {
                out.status = Some(e);
                return out;
            }
        }
    }
}

/// Streams a whole fixture call, as fast as possible or at real-time pace, and reads all.
pub async fn stream_call(
    client: &mut TranscriptionClient<Channel>,
    config: pb::StreamingConfig,
    chunks: Vec<Vec<u8>>,
    realtime_chunk: Option<Duration>,
) -> CallOutcome {
    let (tx, call) = open_call(client, vec![config_msg(config)]).await;
    let responses = match call {
        Ok(s) => s,
        Err(status) => {
            return CallOutcome {
                responses: Vec::new(),
                status: Some(status),
            }
        }
    };
    let sender = tokio::spawn(async move {
        let start = tokio::time::Instant::now();
        for (i, c) in chunks.into_iter().enumerate() {
            if let Some(d) = realtime_chunk {
                tokio::time::sleep_until(start + d * i as u32).await;
            }
            if tx.send(audio_msg(c)).await.is_err() {
                return;
            }
        }
    });
    let out = collect(responses).await;
    sender.await.expect("sender task");
    out
}
