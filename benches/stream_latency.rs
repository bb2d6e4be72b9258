//! Finalisation latency of live calls over real loopback gRPC, and the number of concurrent
//! real-time calls one machine sustains.
//!
//! Each stream sends `audio-fixtures/calls/en_call_8k.wav` (two-channel, 8 kHz) as μ-law at
//! real-time pace: the chunk holding audio [k·100 ms, (k+1)·100 ms) is sent at (k+1)·100 ms
//! after the call starts, as a telephony system can only send audio once it has it. The
//! latency of a final is the wall time it reaches the client minus the moment its last
//! audio (its `end_ms`) was sent; it includes the endpoint silence (500 ms) the server waits
//! for before it may call an utterance finished.
//!
//! ```sh
//! cargo bench --bench stream_latency -- --model base --streams 1,2,4
//! cargo bench --bench stream_latency -- --model tiny.en --streams 1,2,4,6,8
//! cargo bench --bench stream_latency -- --model base --streams 4 --stagger 10.4
//! cargo bench --bench stream_latency -- --model base --streams 4,8 --max-streams 4 --stagger 5.2
//! ```
//! `--tls` serves the calls over TLS (a CA and a server certificate made for the run, as in
//! `[server.tls]`), `--mtls` over mutual TLS with a client certificate too: the cost of
//! securing a deployment (issue #18), to compare with the same command without the flag.
//! `--max-streams N` admits at most N calls (default: every call offered); the calls beyond it
//! are refused, and the row says how long the slowest refusal took and the process's peak RSS,
//! which is the overload check of issue #17: offered twice the capacity, the admitted calls
//! should finalise as fast as the same calls alone.
//! All calls send the same recording, so by default their utterances end at the same moments:
//! the worst case for a shared inference pool. `--stagger SECS` starts call i at i × SECS, as
//! independent calls arrive. Besides the client's latency, each row gives the server's mean
//! from the segmenter closing an utterance to its final (queue + decode) and whisper's time per
//! final; the rest of the client's latency is the endpoint silence.
//! Models come from the model store (`callscribe models pull NAME` first), at callscribe's
//! default weights (q8_0) unless `--weights f16` (or q5_1, q5_0) is given.

use callscribe::audio::codec::{self, Encoding};
use callscribe::audio::read_wav;
use callscribe::engine::{DecodeConfig, Engine};
use callscribe::model::{Catalogue, ModelStore, NoProgress, Precision};
use callscribe::proto::v1 as pb;
use callscribe::proto::v1::transcription_client::TranscriptionClient;
use callscribe::segment::{Vad, VadConfig};
use callscribe::server::tls::TlsConfig;
use callscribe::server::{self, ServeSettings, ServerConfig};
use pb::streaming_transcribe_request::Request as Req;
use pb::streaming_transcribe_response::Response as Resp;
use std::path::Path;
use std::time::{Duration, Instant};
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

const CHUNK: Duration = Duration::from_millis(100);

struct Args {
    model: String,
    weights: Precision,
    streams: Vec<usize>,
    fit_window: bool,
    workers: usize,
    threads: usize,
    /// Seconds between call starts; 0 = all calls start together.
    stagger: f64,
    /// Calls admitted at once; 0 = as many as offered.
    max_streams: usize,
    tls: Security,
}

/// How the bench's calls reach the server.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Security {
    Plaintext,
    Tls,
    MutualTls,
}

fn args() -> Args {
    let mut a = Args {
        model: "base".into(),
        weights: Precision::default(),
        streams: vec![1, 2, 4],
        fit_window: true,
        workers: 1,
        threads: 2,
        stagger: 0.0,
        max_streams: 0,
        tls: Security::Plaintext,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--model" => a.model = it.next().expect("--model NAME"),
            "--weights" => {
                let w = it.next().expect("--weights f16|q8_0|q5_1|q5_0");
                a.weights = Precision::parse_among(&w, Precision::CATALOGUE)
                    .unwrap_or_else(|e| panic!("--weights: {e}"))
            }
            "--streams" => {
                a.streams = it
                    .next()
                    .expect("--streams 1,2,4")
                    .split(',')
                    .map(|s| s.parse().expect("a number"))
                    .collect()
            }
            "--full-window" => a.fit_window = false,
            "--workers" => a.workers = it.next().and_then(|v| v.parse().ok()).expect("--workers N"),
            "--threads" => a.threads = it.next().and_then(|v| v.parse().ok()).expect("--threads N"),
            "--stagger" => {
                a.stagger = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--stagger SECS")
            }
            "--max-streams" => {
                a.max_streams = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--max-streams N")
            }
            "--tls" => a.tls = Security::Tls,
            "--mtls" => a.tls = Security::MutualTls,
            "--bench" => {} // cargo bench passes this
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

/// The process's peak resident memory so far (`VmHWM`), in MiB.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

/// One real-time call; returns each final's latency in seconds, or the refusal and how long
/// it took from the call's start.
async fn one_call(
    target: Target,
    id: usize,
    bytes: std::sync::Arc<Vec<u8>>,
    chunk_bytes: usize,
    delay: Duration,
) -> Result<Vec<f64>, (tonic::Status, f64)> {
    tokio::time::sleep(delay).await;
    let began = Instant::now();
    stream_one(target, id, bytes, chunk_bytes)
        .await
        .map_err(|s| (s, began.elapsed().as_secs_f64()))
}

async fn stream_one(
    target: Target,
    id: usize,
    bytes: std::sync::Arc<Vec<u8>>,
    chunk_bytes: usize,
) -> Result<Vec<f64>, tonic::Status> {
    let mut endpoint = tonic::transport::Endpoint::from_shared(target.url).expect("a URL");
    if let Some(tls) = target.tls {
        endpoint = endpoint.tls_config(tls).expect("the client's TLS settings");
    }
    let mut client = TranscriptionClient::new(endpoint.connect().await.expect("connect"));
    let config = pb::StreamingConfig {
        call_id: format!("bench-{id}"),
        encoding: pb::AudioEncoding::Mulaw as i32,
        sample_rate_hz: 8000,
        channel_count: 2,
        language: "en".into(),
        ..Default::default()
    };
    let start = tokio::time::Instant::now();
    let wall_start = Instant::now();
    let n_chunks = bytes.len().div_ceil(chunk_bytes);
    let reqs = async_stream_requests(config, bytes, chunk_bytes, start);
    let mut responses = client.streaming_transcribe(reqs).await?.into_inner();
    let mut latencies = Vec::new();
    while let Some(r) = responses.message().await? {
        if let Some(Resp::Final(f)) = r.response {
            // When the chunk holding the utterance's last audio was sent.
            let chunk_index = (f.end_ms / CHUNK.as_millis() as u64).min(n_chunks as u64 - 1);
            let sent = CHUNK * (chunk_index as u32 + 1);
            latencies.push(wall_start.elapsed().as_secs_f64() - sent.as_secs_f64());
        }
    }
    Ok(latencies)
}

/// Where a call connects, and how.
#[derive(Clone)]
struct Target {
    url: String,
    tls: Option<ClientTlsConfig>,
}

/// Certificates made for the run with rcgen: a CA, the server's certificate for `localhost`
/// (and, for mutual TLS, the CA verifies a client certificate too).
struct Pki {
    _dir: tempfile::TempDir,
    server: TlsConfig,
    client: ClientTlsConfig,
}

fn pki(mutual: bool) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca =
        CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("CA key")).expect("the CA");
    let leaf = |name: &str| {
        let key = KeyPair::generate().expect("a key");
        let cert = CertificateParams::new(vec![name.to_owned()])
            .expect("leaf params")
            .signed_by(&key, &ca)
            .expect("a leaf");
        (cert.pem(), key.serialize_pem())
    };
    let dir = tempfile::tempdir().expect("a temp dir");
    let write = |name: &str, pem: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, pem).expect("write a PEM file");
        path
    };
    let (cert, key) = leaf("localhost");
    let server = TlsConfig {
        cert_path: write("server.pem", &cert),
        key_path: write("server.key", &key),
        client_ca_path: mutual.then(|| write("ca.pem", &ca.pem())),
        client_auth: None,
        watch_interval_ms: 0,
        metrics: false,
    };
    let mut client = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca.pem()))
        .domain_name("localhost");
    if mutual {
        let (cert, key) = leaf("bench-client");
        client = client.identity(Identity::from_pem(cert, key));
    }
    Pki {
        _dir: dir,
        server,
        client,
    }
}

fn async_stream_requests(
    config: pb::StreamingConfig,
    bytes: std::sync::Arc<Vec<u8>>,
    chunk_bytes: usize,
    start: tokio::time::Instant,
) -> impl futures::Stream<Item = pb::StreamingTranscribeRequest> + Send + 'static {
    use futures::StreamExt;
    let first = futures::stream::once(async move {
        pb::StreamingTranscribeRequest {
            request: Some(Req::Config(config)),
        }
    });
    let n = bytes.len().div_ceil(chunk_bytes);
    let audio = futures::stream::iter(0..n).then(move |i| {
        let bytes = bytes.clone();
        async move {
            tokio::time::sleep_until(start + CHUNK * (i as u32 + 1)).await;
            let end = ((i + 1) * chunk_bytes).min(bytes.len());
            pb::StreamingTranscribeRequest {
                request: Some(Req::Audio(bytes[i * chunk_bytes..end].to_vec())),
            }
        }
    });
    first.chain(audio)
}

fn main() {
    let a = args();
    let store = ModelStore::locate(None);
    let catalogue = Catalogue::builtin().expect("catalogue");
    let entry = catalogue.get(&a.model).expect("a catalogue model");
    let path = callscribe::model::provide(&store, entry, a.weights, None, &NoProgress)
        .unwrap_or_else(|e| panic!("{e}"));
    let engine = Engine::load(&a.model, &path).expect("model loads");
    let wav = Path::new(env!("CARGO_MANIFEST_DIR")).join("audio-fixtures/calls/en_call_8k.wav");
    let audio = read_wav(&wav).expect("fixture");
    let mut interleaved = Vec::new();
    for i in 0..audio.frames() {
        for ch in &audio.channels {
            interleaved.push(ch[i]);
        }
    }
    let mut bytes = Vec::new();
    codec::encode(Encoding::Mulaw, &interleaved, &mut bytes);
    let bytes = std::sync::Arc::new(bytes);
    let chunk_bytes = 800 * 2; // 100 ms of two-channel 8 kHz μ-law

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let pki = (a.tls != Security::Plaintext).then(|| pki(a.tls == Security::MutualTls));
    println!(
        "model {} ({}) · {:?} · fit_window {} · workers {} × threads {} · calls start {} s apart · call {:.1} s two-channel 8 kHz μ-law, real-time pace",
        a.model,
        a.weights,
        a.tls,
        a.fit_window,
        a.workers,
        a.threads,
        a.stagger,
        audio.duration_secs()
    );
    println!(
        "| streams | admitted | finals | p50 latency s | p95 latency s | max s | refused | slowest refusal s | RTF (inference/audio) | mean close→final s | inference per final s | peak RSS MiB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    let vad_path = callscribe::model::provide_vad(&store, None, &NoProgress)
        .expect("the Silero VAD: run `callscribe models pull silero-vad` first");
    let vad = Vad::load(VadConfig::default(), &vad_path).expect("the VAD loads");
    for &n in &a.streams {
        let engine = engine.clone();
        let settings = ServeSettings {
            tenants: Default::default(),
            server: ServerConfig {
                listen: "127.0.0.1:0".into(),
                interim_interval_ms: 0,
                tls: pki.as_ref().map(|p| p.server.clone()),
                ..ServerConfig::default()
            },
            vad: vad.clone(),
            decode: DecodeConfig {
                language: "en".into(),
                fit_window: a.fit_window,
                ..DecodeConfig::default()
            },
            workers: a.workers,
            threads: a.threads,
            max_streams: if a.max_streams > 0 { a.max_streams } else { n },
            dialects: std::sync::Arc::new(
                callscribe::dialect::Dialects::load(&Default::default(), &|_: &str| true)
                    .expect("the shipped adapters load"),
            ),
        };
        runtime.block_on(async {
            let mut handle = server::start(settings, Box::new(move || Ok(vec![engine])))
                .await
                .expect("server");
            handle.ready().await.expect("ready");
            let target = Target {
                url: format!(
                    "{}://{}",
                    if pki.is_some() { "https" } else { "http" },
                    handle.addr
                ),
                tls: pki.as_ref().map(|p| p.client.clone()),
            };
            let calls: Vec<_> = (0..n)
                .map(|i| {
                    let delay = Duration::from_secs_f64(a.stagger * i as f64);
                    tokio::spawn(one_call(target.clone(), i, bytes.clone(), chunk_bytes, delay))
                })
                .collect();
            let mut all = Vec::new();
            let mut refused = 0;
            let mut slowest_refusal = 0f64;
            for c in calls {
                match c.await.expect("call task") {
                    Ok(l) => all.extend(l),
                    Err((s, after)) => {
                        if s.code() != tonic::Code::ResourceExhausted {
                            eprintln!("call failed: {s:?}");
                        }
                        refused += 1;
                        slowest_refusal = slowest_refusal.max(after);
                    }
                }
            }
            all.sort_by(f64::total_cmp);
            let metrics = handle.metrics_text();
            let read = |name: &str| -> f64 {
                metrics
                    .lines()
                    .find(|l| l.starts_with(name))
                    .and_then(|l| l.split_whitespace().last())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(f64::NAN)
            };
            let rtf =
                read("callscribe_inference_seconds_total") / read("callscribe_audio_seconds_total");
            // Server side: from the segmenter closing an utterance to its final (queue + decode),
            // and whisper's own time per final; the rest of the client's latency is the endpoint.
            let closed = read("callscribe_finalisation_latency_seconds_sum")
                / read("callscribe_finalisation_latency_seconds_count");
            let busy = read("callscribe_inference_seconds_total") / all.len() as f64;
            println!(
                "| {n} | {} | {} | {:.2} | {:.2} | {:.2} | {refused} | {slowest_refusal:.3} | {rtf:.3} | {closed:.2} | {busy:.2} | {:.0} |",
                n - refused,
                all.len(),
                percentile(&all, 0.5),
                percentile(&all, 0.95),
                all.last().copied().unwrap_or(f64::NAN),
                peak_rss_mib(),
            );
            handle.shutdown();
            let _ = handle.stopped().await;
        });
    }
}
