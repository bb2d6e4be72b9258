//! Quantised weights on the real model: `models quantize` turns the store's f16 tiny.en into
//! q8_0, whisper.cpp loads it, and it transcribes a call about as well as the f16 model; and
//! catalogue models run at q8_0 unless told otherwise, written from the f16 file on first use.

mod common;

use callscribe::engine::Engine;
use callscribe::metrics::word_error_rate;
use callscribe::model::ggml::{self, GgmlType};
use callscribe::model::ModelStore;
use callscribe::pipeline::RecordingOptions;
use common::{callscribe, fixture, published_model_path, Reference};
use std::path::Path;

/// A store holding only a link to (or a copy of) the real f16 tiny.en.
fn store_with_tiny_en(dir: &Path) -> ModelStore {
    let src = published_model_path("tiny.en");
    let dst = dir.join("ggml-tiny.en.bin");
    if std::fs::hard_link(&src, &dst).is_err() {
        std::fs::copy(&src, &dst).expect("copy tiny.en into the temporary store");
    }
    ModelStore::new(dir)
}

fn run(store: &ModelStore, args: &[&str]) -> (bool, String) {
    let out = callscribe()
        .env("CALLSCRIBE_MODELS", store.dir())
        .args(args)
        .output()
        .expect("run callscribe");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// ggml's q8_0 quantiser as whisper.cpp's `quantize` tool calls it (no importance matrix).
fn ggml_q8_0(values: &[f32], n_per_row: usize) -> Vec<u8> {
    use whisper_rs::whisper_rs_sys as sys;
    let rows = values.len() / n_per_row;
    let mut out = vec![0u8; values.len() / 32 * 34];
    // SAFETY: `values` holds rows × n_per_row floats, `out` the 34-byte blocks for them.
    let n = unsafe {
        sys::ggml_quantize_chunk(
            sys::ggml_type_GGML_TYPE_Q8_0,
            values.as_ptr(),
            out.as_mut_ptr().cast(),
            0,
            rows as i64,
            n_per_row as i64,
            std::ptr::null(),
        )
    };
    assert_eq!(n, out.len());
    out
}

/// Per-channel WER of the two-channel 16 kHz call.
fn channel_wers(engine: &Engine) -> [f64; 2] {
    let path = fixture("calls/en_call_16k.wav");
    let opts = RecordingOptions {
        vad: Some(common::vad()),
        ..Default::default()
    };
    let decode = callscribe::engine::DecodeConfig {
        language: "en".into(),
        ..Default::default()
    };
    let t = common::transcribe_recording(&path, engine, 1, &decode, None, &opts, &mut |_| {})
        .expect("transcribe");
    let r = Reference::of(&path);
    [0, 1].map(|ch| {
        let hyp: Vec<&str> = t
            .segments
            .iter()
            .filter(|s| s.channel == ch)
            .map(|s| s.text.as_str())
            .collect();
        let wer = word_error_rate(&r.channel_text(ch), &hyp.join(" "));
        eprintln!(
            "{} channel {ch}: WER {wer:.3}: {}",
            engine.name(),
            hyp.join(" ")
        );
        wer
    })
}

#[test]
fn q8_0_tiny_en_from_the_cli_loads_and_transcribes_like_f16() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_tiny_en(dir.path());
    let (ok, out) = run(&store, &["models", "quantize", "tiny.en", "--to", "q8_0"]);
    assert!(ok, "{out}");
    assert!(out.contains("use --model tiny.en-q8_0"), "{out}");

    let q8 = store.installed("tiny.en-q8_0").expect("new store entry");
    let info = ggml::inspect(&q8.path).unwrap();
    assert_eq!(info.hparams.ftype, 2007, "q8_0 with GGML_QNT_VERSION 2");
    let f16_bytes = std::fs::metadata(store.path_for("tiny.en")).unwrap().len();
    let ratio = q8.bytes as f64 / f16_bytes as f64;
    // 34 / 64 bytes per weight for the matrices; positional embeddings stay f32.
    assert!((0.5..0.6).contains(&ratio), "q8_0 is {ratio:.3} of f16");
    let count = |ty| info.tensors.iter().filter(|t| t.ty == ty).count();
    assert_eq!(count(GgmlType::Q8_0), 4 * 6 + 4 * 10 + 1);
    assert_eq!(count(GgmlType::F16), 2, "the conv kernels");

    // The real weights come out as ggml's own quantiser makes them from the f16 values.
    let f16_info = ggml::inspect(&store.path_for("tiny.en")).unwrap();
    let f16_file = std::fs::read(store.path_for("tiny.en")).unwrap();
    let q8_file = std::fs::read(&q8.path).unwrap();
    for name in [
        "decoder.token_embedding.weight",
        "encoder.blocks.2.attn.query.weight",
        "decoder.blocks.3.mlp.2.weight",
    ] {
        let find = |i: &ggml::ModelFileInfo| i.tensors.iter().find(|t| t.name == name).cloned();
        let (src, dst) = (find(&f16_info).unwrap(), find(&info).unwrap());
        let values: Vec<f32> = f16_file[src.offset as usize..(src.offset + src.nbytes) as usize]
            .chunks(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect();
        let ours = &q8_file[dst.offset as usize..(dst.offset + dst.nbytes) as usize];
        assert!(
            ours == ggml_q8_0(&values, src.ne[0]),
            "{name} differs from ggml"
        );
    }

    let (ok, out) = run(&store, &["models", "list"]);
    assert!(
        ok && out.contains("tiny.en-q8_0") && out.contains("from quantize"),
        "{out}"
    );

    let f16 = channel_wers(&Engine::load("tiny.en", &store.path_for("tiny.en")).unwrap());
    let quant = Engine::load("tiny.en-q8_0", &q8.path).expect("whisper.cpp loads q8_0");
    let q = channel_wers(&quant);
    for ch in 0..2 {
        assert!(
            q[ch] <= f16[ch] + 0.05 && q[ch] <= 0.35,
            "channel {ch}: q8_0 WER {:.3}, f16 {:.3}",
            q[ch],
            f16[ch]
        );
    }
}

#[test]
fn cli_refusals_are_one_line_and_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let store = ModelStore::new(dir.path());
    let (ok, out) = run(&store, &["models", "quantize", "tiny.en", "--to", "q4_0"]);
    assert!(!ok && out.contains("invalid value 'q4_0'"), "{out}");
    assert!(out.contains("q8_0, q5_1, q5_0"), "{out}");

    let (ok, out) = run(&store, &["models", "quantize", "tiny.en", "--to", "q5_1"]);
    assert!(!ok, "{out}");
    assert!(out.contains("'tiny.en' is not installed"), "{out}");
}

#[test]
fn catalogue_models_run_at_q8_0_written_once_from_the_f16_file_unless_told_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_tiny_en(dir.path());
    let call = fixture("calls/en_call_8k.wav");
    let call = call.to_str().unwrap();

    // f16 asked for: the published file runs and nothing is written.
    let (ok, out) = run(
        &store,
        &["transcribe", "--model", "tiny.en", "--weights", "f16", call],
    );
    assert!(ok && out.contains("customer:"), "{out}");
    assert!(
        store.installed("tiny.en-q8_0").is_none(),
        "f16 must not write a copy"
    );

    // The default: the q8_0 copy is written on first use, then reused.
    let (ok, out) = run(&store, &["transcribe", "--model", "tiny.en", call]);
    assert!(ok && out.contains("customer:"), "{out}");
    let q8 = store.installed("tiny.en-q8_0").expect("q8_0 copy written");
    assert_eq!(ggml::inspect(&q8.path).unwrap().hparams.ftype, 2007);
    assert_eq!(q8.provenance.unwrap().source, "quantize");
    let written = std::fs::metadata(&q8.path).unwrap().modified().unwrap();
    let (ok, out) = run(&store, &["transcribe", "--model", "tiny.en", call]);
    assert!(ok, "{out}");
    assert_eq!(
        std::fs::metadata(&q8.path).unwrap().modified().unwrap(),
        written,
        "the copy is reused, not rewritten"
    );

    // `models pull` writes the copy too, and names both files.
    std::fs::remove_file(&q8.path).unwrap();
    let (ok, out) = run(&store, &["models", "pull", "tiny.en", "--weights", "q5_1"]);
    assert!(ok && out.contains("tiny.en already installed"), "{out}");
    assert!(out.contains("tiny.en-q5_1 written"), "{out}");
    let q5 = store.installed("tiny.en-q5_1").unwrap();
    assert_eq!(
        ggml::inspect(&q5.path).unwrap().weight_type(),
        GgmlType::Q5_1
    );

    // Without the f16 file and without fetching, the error says what to run.
    let empty = tempfile::tempdir().unwrap();
    let out = callscribe()
        .env("CALLSCRIBE_MODELS", empty.path())
        .args(["--config"])
        .arg(config_without_auto_pull(empty.path()))
        .args(["transcribe", "--model", "tiny.en", call])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("q8_0") && err.contains("callscribe models pull tiny.en"),
        "{err}"
    );
}

fn config_without_auto_pull(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("no-pull.toml");
    std::fs::write(&p, "[models]\nauto_pull = false\n").unwrap();
    p
}
