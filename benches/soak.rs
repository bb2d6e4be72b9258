//! Soak: one long two-channel call streamed in real time to the real server over loopback,
//! with the process's memory, open files and threads sampled as it runs (issue #17).
//!
//! The call is `audio-fixtures/calls/en_call_8k.wav` (41.7 s, two channels, 8 kHz μ-law)
//! played back to back until `--minutes` are reached, sent at real-time pace in 100 ms
//! messages. Every `--sample-secs` the bench records RSS, open file descriptors and threads;
//! at the end it prints their first and last values after warm-up, the least-squares slope of
//! RSS per hour, and how far each final of the last copy of the recording lies from the same
//! final of the second copy moved by the copies in between: the call clock is a sample
//! counter, so after 30 minutes the times must still be where the samples put them.
//!
//! ```sh
//! cargo bench --bench soak -- --minutes 30 --model base
//! cargo bench --bench soak -- --minutes 3 --model tiny.en      # a quick look
//! ```

use callscribe::audio::codec::{self, Encoding};
use callscribe::audio::read_wav;
use callscribe::engine::{DecodeConfig, Engine};
use callscribe::model::{Catalogue, ModelStore, NoProgress, Precision};
use callscribe::proto::v1 as pb;
use callscribe::proto::v1::transcription_client::TranscriptionClient;
use callscribe::segment::{Vad, VadConfig};
use callscribe::server::{self, ServeSettings, ServerConfig};
use pb::streaming_transcribe_request::Request as Req;
use pb::streaming_transcribe_response::Response as Resp;
use std::path::Path;
use std::time::Duration;

const CHUNK: Duration = Duration::from_millis(100);

struct Args {
    model: String,
    minutes: f64,
    sample_secs: u64,
    warmup_secs: u64,
}

fn args() -> Args {
    let mut a = Args {
        model: "base".into(),
        minutes: 30.0,
        sample_secs: 10,
        warmup_secs: 120,
    };
    let mut it = std::env::args().skip(1);
    let num = |it: &mut std::iter::Skip<std::env::Args>, what: &str| -> f64 {
        it.next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{what} takes a number"))
    };
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--model" => a.model = it.next().expect("--model NAME"),
            "--minutes" => a.minutes = num(&mut it, "--minutes"),
            "--sample-secs" => a.sample_secs = num(&mut it, "--sample-secs") as u64,
            "--warmup-secs" => a.warmup_secs = num(&mut it, "--warmup-secs") as u64,
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

/// (RSS MiB, open file descriptors, threads) of this process now.
fn sample() -> (f64, usize, usize) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| -> f64 {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    };
    let fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count());
    (field("VmRSS:") / 1024.0, fds, field("Threads:") as usize)
}

/// Least-squares slope of `ys` over `xs`.
fn slope(xs: &[f64], ys: &[f64]) -> f64 {
    let n = xs.len() as f64;
    let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let cov: f64 = xs.iter().zip(ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let var: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
    cov / var
}

fn main() {
    let a = args();
    let store = ModelStore::locate(None);
    let catalogue = Catalogue::builtin().expect("catalogue");
    let entry = catalogue.get(&a.model).expect("a catalogue model");
    let path = callscribe::model::provide(&store, entry, Precision::default(), None, &NoProgress)
        .unwrap_or_else(|e| panic!("{e}"));
    let engine = Engine::load(&a.model, &path).expect("model loads");
    let vad_path = callscribe::model::provide_vad(&store, None, &NoProgress)
        .expect("the Silero VAD: run `callscribe models pull silero-vad` first");
    let vad = Vad::load(VadConfig::default(), &vad_path).expect("the VAD loads");

    let wav = Path::new(env!("CARGO_MANIFEST_DIR")).join("audio-fixtures/calls/en_call_8k.wav");
    let audio = read_wav(&wav).expect("fixture");
    let mut once = Vec::new();
    for i in 0..audio.frames() {
        for ch in &audio.channels {
            once.push(ch[i]);
        }
    }
    let mut copy = Vec::new();
    codec::encode(Encoding::Mulaw, &once, &mut copy);
    // Kept in samples: the recording is 41,651.875 ms, and whole milliseconds per copy would
    // put 0.875 ms of false drift into every copy's offsets (76 ms an hour).
    let copy_frames = audio.frames() as u64;
    let rate = u64::from(audio.sample_rate_hz);
    let copy_ms = copy_frames * 1000 / rate;
    let copies = ((a.minutes * 60_000.0) / copy_ms as f64).ceil().max(2.0) as usize;
    let chunk_bytes = 800 * 2; // 100 ms of two-channel 8 kHz μ-law
    println!(
        "soak: model {} · {copies} copies of a {:.1} s two-channel call = {:.1} min, real time · sampling every {} s, warm-up {} s",
        a.model,
        copy_ms as f64 / 1000.0,
        (copies as u64 * copy_ms) as f64 / 60_000.0,
        a.sample_secs,
        a.warmup_secs
    );

    let settings = ServeSettings {
        tenants: Default::default(),
        server: ServerConfig {
            listen: "127.0.0.1:0".into(),
            max_call_secs: 24 * 3600,
            ..ServerConfig::default()
        },
        vad,
        decode: DecodeConfig {
            language: "en".into(),
            ..DecodeConfig::default()
        },
        workers: 1,
        threads: 2,
        max_streams: 1,
        dialects: std::sync::Arc::new(
            callscribe::dialect::Dialects::load(&Default::default(), &|_: &str| true)
                .expect("the shipped adapters load"),
        ),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let mut handle = server::start(settings, Box::new(move || Ok(vec![engine])))
            .await
            .expect("server");
        handle.ready().await.expect("ready");
        let mut client = TranscriptionClient::connect(format!("http://{}", handle.addr))
            .await
            .expect("connect");
        let config = pb::StreamingConfig {
            call_id: "soak".into(),
            encoding: pb::AudioEncoding::Mulaw as i32,
            sample_rate_hz: 8000,
            channel_count: 2,
            language: "en".into(),
            ..Default::default()
        };
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tx.send(pb::StreamingTranscribeRequest {
            request: Some(Req::Config(config)),
        })
        .await
        .unwrap();
        let start = tokio::time::Instant::now();
        let sender = tokio::spawn(async move {
            let mut k = 0u32;
            for _ in 0..copies {
                for c in copy.chunks(chunk_bytes) {
                    k += 1;
                    tokio::time::sleep_until(start + CHUNK * k).await;
                    let msg = pb::StreamingTranscribeRequest {
                        request: Some(Req::Audio(c.to_vec())),
                    };
                    if tx.send(msg).await.is_err() {
                        return;
                    }
                }
            }
        });
        let mut responses = client
            .streaming_transcribe(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .expect("call accepted")
            .into_inner();
        let samples = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sampler = tokio::spawn({
            let every = Duration::from_secs(a.sample_secs);
            let samples = samples.clone();
            async move {
                let mut next = tokio::time::Instant::now();
                loop {
                    let (rss, fds, threads) = sample();
                    let t = next.duration_since(start).as_secs_f64();
                    println!("t {t:7.0} s  rss {rss:7.1} MiB  fds {fds:4}  threads {threads:3}");
                    samples.lock().unwrap().push((t, rss, fds, threads));
                    next += every;
                    tokio::time::sleep_until(next).await;
                }
            }
        });
        let mut finals: Vec<(u32, u64, u64)> = Vec::new();
        let mut last_final_at = 0f64;
        let mut status = None;
        loop {
            match responses.message().await {
                Ok(Some(r)) => {
                    if let Some(Resp::Final(f)) = r.response {
                        finals.push((f.channel, f.start_ms, f.end_ms));
                        last_final_at = start.elapsed().as_secs_f64();
                    }
                }
                Ok(None) => break,
                Err(s) => {
                    status = Some(s);
                    break;
                }
            }
        }
        sender.await.unwrap();
        sampler.abort();
        handle.shutdown();
        let _ = handle.stopped().await;
        if let Some(s) = status {
            println!(
                "the call ended with {s:?} at {:.0} s; the last final arrived at {last_final_at:.0} s, {} audio messages sent by then",
                start.elapsed().as_secs_f64(),
                (start.elapsed().as_millis() / CHUNK.as_millis()),
            );
        }
        let samples = samples.lock().unwrap().clone();
        let after: Vec<_> = samples
            .iter()
            .filter(|s| s.0 >= a.warmup_secs as f64)
            .collect();
        if let (Some(f), Some(l)) = (after.first(), after.last()) {
            let xs: Vec<f64> = after.iter().map(|s| s.0 / 3600.0).collect();
            let ys: Vec<f64> = after.iter().map(|s| s.1).collect();
            let half = xs.len() / 2;
            println!(
                "after warm-up ({} samples): RSS {:.1} → {:.1} MiB (max {:.1}), slope {:+.2} MiB/hour; \
                 second half {:.1} → {:.1} MiB, slope {:+.2} MiB/hour; fds {} → {}; threads {} → {}",
                after.len(),
                f.1,
                l.1,
                ys.iter().copied().fold(f64::MIN, f64::max),
                slope(&xs, &ys),
                ys[half],
                l.1,
                slope(&xs[half..], &ys[half..]),
                f.2,
                l.2,
                f.3,
                l.3
            );
        }
        report(&finals, copies, copy_frames, rate);
    });
}

fn report(finals: &[(u32, u64, u64)], copies: usize, copy_frames: u64, rate: u64) {
    // Copy k starts at exactly k × copy_frames samples, rounded to a millisecond once.
    let start_ms = |k: u64| k * copy_frames * 1000 / rate;
    let in_copy = |k: usize| -> Vec<(u32, u64, u64)> {
        let (from, to) = (start_ms(k as u64), start_ms(k as u64 + 1));
        let mut v: Vec<_> = finals
            .iter()
            .filter(|f| f.1 >= from && f.1 < to)
            .map(|&(c, s, e)| (c, s - from, e - from))
            .collect();
        v.sort();
        v
    };
    // The second copy, not the first: the first starts from a fresh detector, every later one
    // follows the same recording's end, so from the second on each copy should segment alike.
    let reference = in_copy(1.min(copies - 2));
    // Per later copy: how far its finals lie from the reference's (signed, ms), start and end.
    let mut drift: Vec<(f64, f64)> = Vec::new();
    let mut worst = (0u64, 0u64);
    let mut last_copy = (0usize, 0u64, 0u64);
    for k in 2..copies {
        let copy = in_copy(k);
        let (mut starts, mut ends) = (Vec::new(), Vec::new());
        for f in &copy {
            if let Some(g) = reference
                .iter()
                .filter(|g| g.0 == f.0)
                .min_by_key(|g| g.1.abs_diff(f.1))
            {
                starts.push(f.1 as i64 - g.1 as i64);
                ends.push(f.2 as i64 - g.2 as i64);
            }
        }
        if starts.is_empty() {
            continue;
        }
        let max_start = starts.iter().map(|d| d.unsigned_abs()).max().unwrap_or(0);
        let max_end = ends.iter().map(|d| d.unsigned_abs()).max().unwrap_or(0);
        worst = (worst.0.max(max_start), worst.1.max(max_end));
        starts.sort_unstable();
        drift.push((
            start_ms(k as u64) as f64 / 3_600_000.0,
            starts[starts.len() / 2] as f64,
        ));
        last_copy = (starts.len(), max_start, max_end);
    }
    let (xs, ys): (Vec<f64>, Vec<f64>) = drift.iter().copied().unzip();
    println!(
        "finals: {} in all, {} in the reference (second) copy; last copy: {} matched, largest difference start {} ms, end {} ms; \
         over all {} later copies: largest start {} ms, end {} ms; median start offset per copy: trend {:+.1} ms/hour, range {:.0}..{:.0} ms",
        finals.len(),
        reference.len(),
        last_copy.0,
        last_copy.1,
        last_copy.2,
        drift.len(),
        worst.0,
        worst.1,
        if xs.len() > 1 { slope(&xs, &ys) } else { 0.0 },
        ys.iter().copied().fold(f64::MAX, f64::min),
        ys.iter().copied().fold(f64::MIN, f64::max),
    );
}
