//! Hotword effect, measured: term recall on a call full of invented product names
//! (`en_terms_8k`), and word error rate on that call and on one without the terms
//! (`en_half_44k_mono`), for each way of applying hotwords.
//!
//! `cargo bench --bench hotwords [-- MODEL...]` (default: tiny.en base). Needs the models in
//! the store (`callscribe models pull`). Prints a Markdown table for BENCHMARKS.md.

use callscribe::engine::{DecodeConfig, Engine, Hotword, Pool};
use callscribe::metrics::word_error_rate;
use callscribe::model::ModelStore;
use callscribe::pipeline::{transcribe_file, RecordingOptions};
use callscribe::plan::{CallPlan, CallRequest};
use std::path::Path;

fn main() {
    let models: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let models = if models.is_empty() {
        vec!["tiny.en".to_owned(), "base".to_owned()]
    } else {
        models
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("audio-fixtures/calls");
    let terms_wav = root.join("en_terms_8k.wav");
    let plain_wav = root.join("en_half_44k_mono.wav");
    let reference = |wav: &Path| -> (String, Vec<String>) {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(wav.with_extension("json")).unwrap())
                .unwrap();
        let text = v["utterances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["text"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
            .join(" ");
        let terms = v["hotwords"]
            .as_array()
            .map(|a| a.iter().map(|t| t.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default();
        (text, terms)
    };
    let (terms_ref, terms) = reference(&terms_wav);
    let (plain_ref, _) = reference(&plain_wav);
    let hot = |w: f32| -> Vec<Hotword> {
        terms
            .iter()
            .map(|t| Hotword {
                term: t.clone(),
                weight: w,
            })
            .collect()
    };
    // (label, hotwords, list them in the prompt)
    let variants: Vec<(&str, Vec<Hotword>, bool)> = vec![
        ("none", vec![], true),
        ("prompt only", hot(0.0), true),
        ("boost only (w=2)", hot(2.0), false),
        ("prompt + boost (w=2, default)", hot(2.0), true),
        ("prompt + boost (w=5)", hot(5.0), true),
    ];
    println!("| model | hotwords | term recall | WER, terms call | WER, call without the terms |");
    println!("|---|---|---|---|---|");
    let store = ModelStore::locate(None);
    let vad_path = callscribe::model::provide_vad(&store, None, &callscribe::model::NoProgress)
        .expect("the Silero VAD: run `callscribe models pull silero-vad` first");
    let vad = callscribe::segment::Vad::load(Default::default(), &vad_path).expect("the VAD loads");
    for name in &models {
        let Some(m) = store.installed(name) else {
            eprintln!("{name}: not installed (callscribe models pull {name})");
            continue;
        };
        let engine = Engine::load(name, &m.path).expect("model loads");
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let pool = Pool::start(vec![engine.clone()], 1, threads, 8).expect("whisper state");
        let models = [engine.info()];
        for (label, hotwords, prompt) in &variants {
            let opts = RecordingOptions {
                vad: Some(vad.clone()),
                ..Default::default()
            };
            let decode = DecodeConfig {
                language: "en".into(),
                hotwords: hotwords.clone(),
                hotword_prompt: *prompt,
                ..DecodeConfig::default()
            };
            let plan = CallPlan::resolve(&CallRequest::default(), &decode, None, models.as_slice())
                .expect("plan");
            let t = transcribe_file(&terms_wav, &pool, &plan, &opts, &mut |_| {}).unwrap();
            let text = t.plain_text();
            let lower = text.to_lowercase();
            let recall = terms
                .iter()
                .filter(|x| lower.contains(&x.to_lowercase()))
                .count();
            let words = |t: &callscribe::transcript::Transcript| {
                t.segments
                    .iter()
                    .map(|s| s.text.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            let wer_terms = word_error_rate(&terms_ref, &words(&t));
            let p = transcribe_file(&plain_wav, &pool, &plan, &opts, &mut |_| {}).unwrap();
            let wer_plain = word_error_rate(&plain_ref, &words(&p));
            println!(
                "| {name} | {label} | {recall}/{} | {wer_terms:.3} | {wer_plain:.3} |",
                terms.len()
            );
            eprintln!("{name} {label}:\n{text}");
        }
    }
}
