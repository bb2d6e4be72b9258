//! One configuration tree for every front door: TOML file → defaults → CLI flag overrides.
//!
//! Every section has `Default`, so an empty file (or none) is a valid configuration;
//! `deny_unknown_fields` turns a typo into an error that names the field.
//! `callscribe.example.toml` at the repository root documents every field and is loaded by a
//! test so it cannot rot.

use crate::audio::ChannelMode;
use crate::dialect::DialectsConfig;
use crate::engine::DecodeConfig;
use crate::forward::ForwardConfig;
use crate::segment::VadConfig;
use crate::server::auth::{TenantConfig, Tenants};
use crate::server::ServerConfig;
use crate::transcript::format::Format;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub models: ModelsConfig,
    pub decode: DecodeConfig,
    pub vad: VadConfig,
    pub transcribe: TranscribeConfig,
    pub server: ServerConfig,
    pub dialects: DialectsConfig,
    pub forward: ForwardConfig,
    /// `[[tenants]]`: who may call a server, with which keys, how much. None = no key asked
    /// for (a laptop, a trusted network); at least one = a key on every call.
    pub tenants: Vec<TenantConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelsConfig {
    /// Model store; `$CALLSCRIBE_MODELS` overrides it. Default: the user's data directory.
    pub dir: Option<PathBuf>,
    /// Model used when none is named: `base` is multilingual, as most of our calls are Chinese.
    pub default: String,
    /// Precision catalogue models run at: `q8_0` (quantised here from the published f16
    /// file, the fastest on a CPU), `f16` (as published), `q5_1`, `q5_0`. Imported models
    /// and ggml paths run as they are.
    #[serde(deserialize_with = "crate::model::Precision::deserialize_catalogue")]
    pub weights: crate::model::Precision,
    /// Fetch a missing model on first use instead of failing.
    pub auto_pull: bool,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        Self {
            dir: None,
            default: "base".into(),
            weights: Default::default(),
            auto_pull: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TranscribeConfig {
    pub format: Format,
    /// `agent,customer` (default), any one or two roles, or `mix`.
    pub channels: ChannelMode,
    /// whisper states; files are shared out among them, and a file with several decodes its
    /// windows side by side. 0 sizes them so that workers × threads ≤ cores.
    pub workers: usize,
    /// Segment by voice activity before whisper (off: fixed 30 s windows, for comparisons).
    pub vad: bool,
    /// Decode a channel's consecutive utterances together in one whisper window (up to 28 s)
    /// instead of a window each: about 3× faster on calls (BENCHMARKS.md).
    pub pack: bool,
}

impl Default for TranscribeConfig {
    fn default() -> Self {
        Self {
            format: Format::Txt,
            channels: ChannelMode::default(),
            workers: 0,
            vad: true,
            pack: true,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read config: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("${var}={value:?}: {reason}")]
    Env {
        var: &'static str,
        value: String,
        reason: &'static str,
    },
}

/// Overrides `decode.threads`, between the config file and the command line: a container or a
/// shared machine knows its CPU share better than a config file written for the fleet.
pub const THREADS_ENV: &str = "CALLSCRIBE_THREADS";

impl Config {
    pub fn from_toml(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().replace('\n', " "),
        })?;
        cfg.vad
            .validate()
            .and_then(|()| cfg.server.validate())
            .and_then(|()| cfg.forward.validate())
            .and_then(|()| cfg.decode.validate())
            .and_then(|()| {
                crate::engine::check_hotwords("dialects.hotwords", &cfg.dialects.hotwords)
            })
            .and_then(|()| {
                Tenants::new(&cfg.tenants)
                    .map(drop)
                    .map_err(|e| e.to_string())
            })
            .and_then(|()| {
                let p = cfg.dialects.detect_min_probability;
                if (0.0..=1.0).contains(&p) {
                    Ok(())
                } else {
                    Err(format!(
                        "dialects.detect_min_probability = {p} is outside 0..1"
                    ))
                }
            })
            .map_err(|message| ConfigError::Parse {
                path: path.to_owned(),
                message,
            })?;
        Ok(cfg)
    }

    /// Reads `path`, or returns the defaults when there is none, then applies the
    /// environment's overrides ([`THREADS_ENV`]).
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut cfg = match path {
            None => Config::default(),
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.to_owned(),
                    source,
                })?;
                Self::from_toml(p, &text)?
            }
        };
        if let Some(v) = std::env::var_os(THREADS_ENV) {
            cfg.decode.threads = threads_from_env(&v.to_string_lossy())?;
        }
        Ok(cfg)
    }
}

fn threads_from_env(value: &str) -> Result<usize, ConfigError> {
    value.trim().parse().map_err(|_| ConfigError::Env {
        var: THREADS_ENV,
        value: value.to_owned(),
        reason: "expected a whole number of threads per worker (0 = auto)",
    })
}

/// Threads per inference worker and number of workers for this machine: whisper.cpp scales
/// well to about 4 threads per state, beyond that more workers use the cores better, and
/// workers × threads never exceeds the cores. Oversubscription is far worse than idle cores:
/// ggml's threads spin at each barrier, so two 2-thread decodes sharing 2 cores ran 10× slower
/// than one after the other (BENCHMARKS.md, "Threads and workers").
pub fn worker_layout(requested_workers: usize, requested_threads: usize) -> (usize, usize) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = if requested_threads > 0 {
        requested_threads
    } else if let Some(share) = cores.checked_div(requested_workers) {
        share.max(1)
    } else {
        cores.min(4)
    };
    let workers = if requested_workers > 0 {
        requested_workers
    } else {
        (cores / threads).max(1)
    };
    (workers, threads)
}

/// Calls a server admits at once when `server.max_streams` is left at 0: two per core that
/// inference runs on. Measured, not guessed: on a 2-core machine (one worker × 2 threads) four
/// independent real-time base calls finalise at p95 1.24 s (≤ 1.5 s), and admitting eight
/// would queue their finals behind each other; `benches/stream_latency.rs` re-measures it
/// for another machine or model (`--streams 4,8 --max-streams 4`, RELIABILITY.md).
pub fn default_max_streams(workers: usize, threads: usize) -> usize {
    (2 * workers * threads).max(1)
}

/// Layout for a batch of `jobs` recordings: (whisper states, threads per state). Left to auto,
/// one lane per recording up to the cores, and each lane up to 4 single-threaded states that
/// decode its recording's windows side by side; threads only take up cores left over.
/// Single-threaded states use the cores best: two of them got through two calls 1.3× faster,
/// and through one long call in 0.7× the wall, than one two-threaded state, whose threads
/// spin at every barrier (BENCHMARKS.md, "Threads and workers"). Four states per lane bound
/// the memory (one state of base is about 150 MB).
pub fn batch_layout(
    jobs: usize,
    requested_workers: usize,
    requested_threads: usize,
) -> (usize, usize) {
    if requested_workers > 0 || requested_threads > 0 {
        return worker_layout(requested_workers, requested_threads);
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let lanes = jobs.clamp(1, cores);
    let states = lanes * (cores / lanes).clamp(1, 4);
    (states, (cores / states).clamp(1, 4))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_in_the_repository_loads_and_matches_defaults_where_unset() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("callscribe.example.toml");
        let cfg = Config::load(Some(&path)).unwrap();
        assert_eq!(cfg.models.default, "base");
        assert_eq!(cfg.models.weights, crate::model::Precision::Q8_0);
        assert_eq!(cfg.vad, VadConfig::default());
        assert_eq!(cfg.transcribe.channels, ChannelMode::default());
        assert_eq!(cfg.forward, crate::forward::ForwardConfig::default());
    }

    #[test]
    fn forward_sinks_parse_and_a_sink_typo_is_an_error() {
        let cfg = Config::from_toml(
            Path::new("c.toml"),
            "[[forward.sinks]]\nkind = \"webhook\"\nurl = \"http://h/x\"\n\n\
             [[forward.sinks]]\nkind = \"kb\"\n",
        )
        .unwrap();
        assert_eq!(cfg.forward.sinks.len(), 2);
        assert_eq!(cfg.forward.sinks[0].name(), "webhook:http://h/x");
        let e = Config::from_toml(
            Path::new("c.toml"),
            "[[forward.sinks]]\nkind = \"grpc\"\nendpiont = \"http://h\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("endpiont"), "{e}");
    }

    #[test]
    fn a_nats_sink_parses_with_its_defaults_and_a_typo_is_an_error() {
        let cfg = Config::from_toml(
            Path::new("c.toml"),
            "[[forward.sinks]]\nkind = \"nats\"\nservers = [\"nats://127.0.0.1:4222\"]\n\
             replicas = 3\nretention = \"interest\"\n",
        )
        .unwrap();
        let crate::forward::SinkConfig::Nats(nats) = &cfg.forward.sinks[0] else {
            panic!("not a nats sink: {:?}", cfg.forward.sinks[0]);
        };
        assert_eq!(nats.subject_prefix, "callscribe");
        assert_eq!(nats.stream, "CALLSCRIBE");
        assert_eq!(nats.replicas, 3);
        assert_eq!(
            nats.retention,
            crate::forward::config::NatsRetention::Interest
        );
        assert_eq!(nats.duplicate_window_ms, 120_000);
        assert_eq!(cfg.forward.sinks[0].name(), "nats:CALLSCRIBE");
        let e = Config::from_toml(
            Path::new("c.toml"),
            "[[forward.sinks]]\nkind = \"nats\"\nservers = []\nsubject_prefx = \"x\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("subject_prefx"), "{e}");
    }

    /// The prompt and hotwords go to whisper.cpp as C strings: whisper-rs panics on a NUL.
    #[test]
    fn a_nul_in_the_prompt_or_a_hotword_is_an_error_naming_the_setting() {
        for (toml, setting) in [
            (
                "[decode]\ninitial_prompt = \"a\\u0000b\"\n",
                "decode.initial_prompt",
            ),
            (
                "[[decode.hotwords]]\nterm = \"ok\"\n[[decode.hotwords]]\nterm = \"x\\u0000\"\n",
                "decode.hotwords[1].term",
            ),
            (
                "[[dialects.hotwords]]\nterm = \"\\u0000\"\n",
                "dialects.hotwords[0].term",
            ),
        ] {
            let e = Config::from_toml(Path::new("c.toml"), toml)
                .unwrap_err()
                .to_string();
            assert!(e.contains(setting) && e.contains("NUL"), "{toml}: {e}");
        }
    }

    #[test]
    fn tls_and_tenants_parse_and_a_bad_key_hash_names_its_tenant() {
        let hash = crate::server::auth::key_hash("cs_test");
        let cfg = Config::from_toml(
            Path::new("c.toml"),
            &format!(
                "[server.tls]\ncert_path = \"s.pem\"\nkey_path = \"s.key\"\n\
                 client_ca_path = \"ca.pem\"\nclient_auth = \"optional\"\n\n\
                 [[tenants]]\nid = \"acme\"\nkey_hashes = [\"{hash}\"]\n\
                 max_concurrent_calls = 2\nmodels = [\"base\"]\n"
            ),
        )
        .unwrap();
        let tls = cfg.server.tls.unwrap();
        assert_eq!(tls.mutual(), Some(crate::server::tls::ClientAuth::Optional));
        assert_eq!(tls.watch_interval_ms, 2000);
        assert_eq!(cfg.tenants[0].id, "acme");
        assert_eq!(
            cfg.tenants[0].models.as_deref(),
            Some(&["base".to_owned()][..])
        );
        let e = Config::from_toml(
            Path::new("c.toml"),
            "[[tenants]]\nid = \"acme\"\nkey_hashes = [\"abc\"]\nmax_concurrent_calls = 2\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("c.toml:") && e.contains("'acme'"), "{e}");
        // A quota is not optional: a tenant without one is a typo, not unlimited.
        let e = Config::from_toml(
            Path::new("c.toml"),
            &format!("[[tenants]]\nid = \"acme\"\nkey_hashes = [\"{hash}\"]\n"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("max_concurrent_calls"), "{e}");
    }

    #[test]
    fn a_typo_is_an_error_naming_the_field_and_file() {
        let e = Config::from_toml(Path::new("c.toml"), "[vad]\nendpoint_silense_ms = 300\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("c.toml:") && e.contains("endpoint_silense_ms"),
            "{e}"
        );
    }

    #[test]
    fn partial_files_keep_defaults_for_the_rest() {
        let cfg =
            Config::from_toml(Path::new("c.toml"), "[vad]\nendpoint_silence_ms = 800\n").unwrap();
        assert_eq!(cfg.vad.endpoint_silence_ms, 800);
        assert_eq!(cfg.vad.pad_ms, VadConfig::default().pad_ms);
        assert_eq!(cfg.decode, DecodeConfig::default());
    }

    #[test]
    fn weights_are_named_as_ggml_names_them() {
        use crate::model::Precision;
        let cfg = Config::from_toml(Path::new("c.toml"), "[models]\nweights = \"f16\"\n").unwrap();
        assert_eq!(cfg.models.weights, Precision::F16);
        assert_eq!(Precision::F16.store_name("base"), "base");
        assert_eq!(Precision::Q8_0.store_name("base"), "base-q8_0");
        assert_eq!(Precision::Q5_1.to_string(), "q5_1");
        let e = Config::from_toml(Path::new("c.toml"), "[models]\nweights = \"q8\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("q8_0"), "{e}");
    }

    #[test]
    fn threads_from_the_environment_are_a_number_or_a_clear_error() {
        assert_eq!(threads_from_env(" 1 ").unwrap(), 1);
        let err = threads_from_env("two").unwrap_err().to_string();
        assert!(err.contains("$CALLSCRIBE_THREADS=\"two\""), "{err}");
    }

    #[test]
    fn worker_layout_never_oversubscribes() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let (w, t) = worker_layout(0, 0);
        assert!(w * t <= cores.max(1) && w >= 1 && t >= 1);
        assert_eq!(worker_layout(3, 1), (3, 1));
    }

    #[test]
    fn a_server_admits_two_calls_per_inference_core_by_default() {
        // This machine's measured case: one worker × 2 threads admits the 4 calls the latency
        // bench keeps under 1.5 s at p95.
        assert_eq!(default_max_streams(1, 2), 4);
        assert_eq!(default_max_streams(4, 4), 32);
        assert_eq!(default_max_streams(0, 0), 1);
    }

    #[test]
    fn a_batch_gets_single_threaded_states_up_to_the_cores() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let (w, t) = batch_layout(1, 0, 0);
        assert_eq!(w, cores.clamp(1, 4));
        assert!(w * t <= cores.max(1) && t >= 1);
        let (w, t) = batch_layout(cores * 3, 0, 0);
        assert_eq!((w, t), (cores, 1));
        // What the user asks for wins.
        assert_eq!(batch_layout(10, 1, 2), (1, 2));
        assert_eq!(batch_layout(10, 0, 1), worker_layout(0, 1));
    }
}
