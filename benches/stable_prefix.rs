//! What keeping the interims' stable text costs the finals (issue #23): every recording is
//! streamed at real-time pace over loopback gRPC with interim results, and each final is
//! scored twice against the reference: as sent (`text`, which begins with the last
//! `stable_text` of its utterance) and as the final decode alone heard it (`raw_text`,
//! normalised with the same adapter). Both come from the same call, so the only difference is
//! the constraint. It also counts utterances whose final would have reworded its stable text,
//! and checks that no final the client got breaks the promise.
//!
//! ```sh
//! cargo bench --bench stable_prefix -- [--model base] [--interim-ms 1000] [--real DIR] [--only NAME]
//!     [--workers 2 --threads 1]
//! ```
//! `--real DIR`: a directory of real recordings with a `references.tsv` (file, language,
//! reference, …), such as the held-out set in the shared workspace; its files are read there,
//! streamed as mono (channel 0). English is scored by word error rate, Chinese and Cantonese by
//! character error rate.

use callscribe::audio::codec::{self, Encoding};
use callscribe::audio::read_wav;
use callscribe::dialect::Dialects;
use callscribe::engine::{DecodeConfig, Engine};
use callscribe::model::{Catalogue, ModelStore, NoProgress, Precision};
use callscribe::proto::v1 as pb;
use callscribe::proto::v1::transcription_client::TranscriptionClient;
use callscribe::segment::{Vad, VadConfig};
use callscribe::server::{self, ServeSettings, ServerConfig};
use callscribe::wer::{edit_distance, normalise_chars, normalise_words};
use pb::streaming_transcribe_request::Request as Req;
use pb::streaming_transcribe_response::Response as Resp;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const CHUNK: Duration = Duration::from_millis(100);

/// One recording to stream: its audio (channels as streamed) and per-channel references.
struct Case {
    name: String,
    language: String,
    rate: u32,
    channels: Vec<Vec<f32>>,
    references: Vec<String>,
}

fn fixture_case(rel: &str) -> Case {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("audio-fixtures");
    let wav = root.join(rel);
    let audio = read_wav(&wav).expect("fixture reads");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(wav.with_extension("json")).unwrap())
            .unwrap();
    let references = (0..audio.channels.len())
        .map(|c| {
            json["utterances"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|u| u["channel"].as_u64() == Some(c as u64))
                .map(|u| u["text"].as_str().unwrap())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    Case {
        name: rel.into(),
        language: json["language"].as_str().unwrap_or("en").into(),
        rate: audio.sample_rate_hz,
        channels: audio.channels,
        references,
    }
}

fn real_cases(dir: &Path) -> Vec<Case> {
    let tsv = std::fs::read_to_string(dir.join("references.tsv")).expect("references.tsv");
    tsv.lines()
        .skip(1)
        .filter_map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            let (file, language, reference) = (cols.first()?, cols.get(1)?, cols.get(2)?);
            let audio = read_wav(&dir.join(file)).expect("recording reads");
            Some(Case {
                name: file.to_string(),
                language: language.to_string(),
                rate: audio.sample_rate_hz,
                channels: vec![audio.channels[0].clone()],
                references: vec![reference.to_string()],
            })
        })
        .collect()
}

/// Edits and reference length, in words (en) or characters.
fn errors(language: &str, reference: &str, hypothesis: &str) -> (usize, usize) {
    if language == "en" {
        let (r, h) = (normalise_words(reference), normalise_words(hypothesis));
        (edit_distance(&r, &h), r.len())
    } else {
        let (r, h) = (normalise_chars(reference), normalise_chars(hypothesis));
        (edit_distance(&r, &h), r.len())
    }
}

#[derive(Default)]
struct Score {
    edits_with: usize,
    edits_without: usize,
    length: usize,
    interims: usize,
    finals: usize,
    with_stable: usize,
    reworded: usize,
    broken: usize,
}

impl Score {
    fn add(&mut self, o: &Score) {
        self.edits_with += o.edits_with;
        self.edits_without += o.edits_without;
        self.length += o.length;
        self.interims += o.interims;
        self.finals += o.finals;
        self.with_stable += o.with_stable;
        self.reworded += o.reworded;
        self.broken += o.broken;
    }
    fn row(&self, name: &str) -> String {
        let rate = |e: usize| 100.0 * e as f64 / self.length.max(1) as f64;
        format!(
            "| {name} | {} | {} | {} | {} | {} | {:.2} | {:.2} | {:+.2} | {} |",
            self.length,
            self.interims,
            self.finals,
            self.with_stable,
            self.reworded,
            rate(self.edits_without),
            rate(self.edits_with),
            rate(self.edits_with) - rate(self.edits_without),
            self.broken
        )
    }
}

async fn stream(
    addr: std::net::SocketAddr,
    case: &Case,
    model: &str,
    dialects: &Dialects,
) -> Score {
    let mut client = TranscriptionClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");
    let frames = case.channels[0].len();
    let mut interleaved = Vec::with_capacity(frames * case.channels.len());
    for i in 0..frames {
        for ch in &case.channels {
            interleaved.push(ch[i]);
        }
    }
    // A second of silence so the last utterance ends by endpointing, as on a live line.
    interleaved.resize(
        interleaved.len() + case.rate as usize * case.channels.len(),
        0.0,
    );
    let mut bytes = Vec::new();
    codec::encode(Encoding::Linear16, &interleaved, &mut bytes);
    let chunk_bytes = (case.rate as usize / 10) * case.channels.len() * 2;
    let config = pb::StreamingConfig {
        call_id: case.name.clone(),
        encoding: pb::AudioEncoding::Linear16 as i32,
        sample_rate_hz: case.rate,
        channel_count: case.channels.len() as u32,
        language: case.language.clone(),
        model: model.into(),
        interim_results: true,
        ..Default::default()
    };
    let start = tokio::time::Instant::now();
    let n = bytes.len().div_ceil(chunk_bytes);
    let bytes = Arc::new(bytes);
    let audio = {
        use futures::StreamExt;
        let first = futures::stream::once(async move {
            pb::StreamingTranscribeRequest {
                request: Some(Req::Config(config)),
            }
        });
        first.chain(futures::stream::iter(0..n).then(move |i| {
            let bytes = bytes.clone();
            async move {
                tokio::time::sleep_until(start + CHUNK * (i as u32 + 1)).await;
                let end = ((i + 1) * chunk_bytes).min(bytes.len());
                pb::StreamingTranscribeRequest {
                    request: Some(Req::Audio(bytes[i * chunk_bytes..end].to_vec())),
                }
            }
        }))
    };
    let mut responses = client
        .streaming_transcribe(audio)
        .await
        .expect("call accepted")
        .into_inner();
    let mut score = Score::default();
    // (channel, utterance start) → last stable text, for utterances awaiting their final.
    let mut open: BTreeMap<(u32, u64), String> = BTreeMap::new();
    let mut finals: Vec<Vec<(u64, String, String)>> = vec![Vec::new(); case.channels.len()];
    while let Some(r) = responses.message().await.expect("call goes on") {
        match r.response {
            Some(Resp::Interim(i)) => {
                score.interims += 1;
                open.insert((i.channel, i.start_ms), i.stable_text);
            }
            Some(Resp::Final(f)) => {
                let stable = match open
                    .range((f.channel, 0)..=(f.channel, f.start_ms))
                    .next_back()
                {
                    Some((&key, _)) => {
                        let s = open.remove(&key).unwrap();
                        open.retain(|&(c, t), _| c != f.channel || t > key.1);
                        s
                    }
                    None => String::new(),
                };
                let unconstrained = match dialects.get(&f.dialect) {
                    Ok(a) if !f.dialect.is_empty() => a.normalise(&f.raw_text),
                    _ => f.raw_text.clone(),
                };
                score.finals += 1;
                score.with_stable += usize::from(!stable.is_empty());
                score.reworded += usize::from(!unconstrained.starts_with(&stable));
                if !f.text.starts_with(&stable) {
                    score.broken += 1;
                    eprintln!("BROKEN: stable {stable:?}, final {:?}", f.text);
                }
                if f.text != unconstrained {
                    eprintln!(
                        "  kept {stable:?}: {:?} (decode alone: {unconstrained:?})",
                        f.text
                    );
                }
                finals[f.channel as usize].push((f.start_ms, f.text, unconstrained));
            }
            _ => {}
        }
    }
    for (c, mut list) in finals.into_iter().enumerate() {
        list.sort_by_key(|f| f.0);
        let join = |pick: &dyn Fn(&(u64, String, String)) -> String| {
            list.iter().map(pick).collect::<Vec<_>>().join(" ")
        };
        let with = join(&|f| f.1.clone());
        let without = join(&|f| f.2.clone());
        let (e, len) = errors(&case.language, &case.references[c], &with);
        let (e2, _) = errors(&case.language, &case.references[c], &without);
        score.edits_with += e;
        score.edits_without += e2;
        score.length += len;
    }
    score
}

fn main() {
    let mut model = "base".to_owned();
    let mut interim_ms = 1000u32;
    let mut real: Option<PathBuf> = None;
    let mut only: Option<String> = None;
    // Two single-threaded workers, the layout for a shared machine (BENCHMARKS.md, "Threads
    // and workers"): ggml's two threads spin-wait on each other when the cores are busy.
    let (mut workers, mut threads) = (2usize, 1usize);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--model" => model = it.next().expect("--model NAME"),
            "--interim-ms" => interim_ms = it.next().and_then(|v| v.parse().ok()).expect("ms"),
            "--real" => real = Some(it.next().expect("--real DIR").into()),
            "--only" => only = it.next(),
            "--workers" => workers = it.next().and_then(|v| v.parse().ok()).expect("N"),
            "--threads" => threads = it.next().and_then(|v| v.parse().ok()).expect("N"),
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let store = ModelStore::locate(None);
    let catalogue = Catalogue::builtin().expect("catalogue");
    let entry = catalogue.get(&model).expect("a catalogue model");
    let path = callscribe::model::provide(&store, entry, Precision::default(), None, &NoProgress)
        .unwrap_or_else(|e| panic!("{e}"));
    let engine = Engine::load(&model, &path).expect("model loads");
    let vad_path = callscribe::model::provide_vad(&store, None, &NoProgress)
        .expect("the Silero VAD: run `callscribe models pull silero-vad` first");
    let vad = Vad::load(VadConfig::default(), &vad_path).expect("the VAD loads");
    let dialects = Arc::new(
        Dialects::load(&Default::default(), &|_: &str| true).expect("the shipped adapters load"),
    );
    let mut cases: Vec<(String, Case)> = [
        "calls/en_call_8k.wav",
        "calls/en_half_44k_mono.wav",
        "calls/en_terms_8k.wav",
        "calls/zh_call_16k.wav",
        "real/alsa_voices_48k.wav",
    ]
    .iter()
    .map(|r| ("fixtures".to_owned(), fixture_case(r)))
    .collect();
    if let Some(dir) = &real {
        cases.extend(real_cases(dir).into_iter().map(|c| ("real".to_owned(), c)));
    }
    if let Some(only) = &only {
        cases.retain(|(_, c)| c.name.contains(only.as_str()));
    }
    let settings = ServeSettings {
        tenants: Default::default(),
        server: ServerConfig {
            listen: "127.0.0.1:0".into(),
            interim_interval_ms: interim_ms,
            ..ServerConfig::default()
        },
        vad,
        decode: DecodeConfig::default(),
        workers,
        threads,
        max_streams: 1,
        dialects: dialects.clone(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!("model {model} (q8_0) · {workers} worker(s) × {threads} thread(s) · interims every {interim_ms} ms · real-time pace, 100 ms chunks");
    println!("| recording | ref words/chars | interims | finals | with stable text | reworded by the final | error % without | error % with | Δ points | broken |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    runtime.block_on(async {
        let mut handle = server::start(settings, Box::new(move || Ok(vec![engine])))
            .await
            .expect("server");
        handle.ready().await.expect("ready");
        let mut totals: BTreeMap<String, Score> = BTreeMap::new();
        for (set, case) in &cases {
            let s = stream(handle.addr, case, &model, &dialects).await;
            println!("{}", s.row(&case.name));
            let group = format!(
                "{set} {}",
                if case.language == "en" {
                    "en (WER)"
                } else {
                    "zh/yue (CER)"
                }
            );
            totals.entry(group).or_default().add(&s);
        }
        for (group, s) in &totals {
            println!("{}", s.row(&format!("**{group}**")));
        }
    });
}
