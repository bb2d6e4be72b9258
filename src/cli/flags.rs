//! Flag groups shared by the commands that run whisper: `transcribe`, `capture` and `serve`
//! (`stream` passes the per-call ones on to its server). A flag is declared once, here, so it
//! reads and means the same in every command; each group applies itself to the [`Config`].

use crate::audio::ChannelMode;
use crate::config::Config;
use crate::engine::Hotword;
use crate::model::Precision;
use crate::plan::CallRequest;
use clap::Args;
use std::path::PathBuf;

/// Which model runs, and at what precision.
#[derive(Debug, Clone, Default, Args)]
pub struct ModelFlags {
    /// Model: a catalogue name (tiny.en, base), an imported name or a ggml file (default:
    /// `models.default`). Named here, it outranks a dialect adapter's model; for `serve`, it is
    /// the model of calls that name none.
    #[arg(short, long)]
    pub model: Option<String>,
    /// Precision of a catalogue model's weights (default: `models.weights`, q8_0).
    #[arg(long, value_parser = Precision::value_parser(Precision::CATALOGUE))]
    pub weights: Option<Precision>,
}

impl ModelFlags {
    /// `--model` becomes the default model (`models.default`) and `--weights` the precision.
    /// A front door that lets an adapter bring its own model still reads [`Self::model`]:
    /// a model named on the command line outranks the adapter's, the configured default does not.
    pub fn apply(&self, config: &mut Config) {
        if let Some(m) = &self.model {
            config.models.default.clone_from(m);
        }
        if let Some(w) = self.weights {
            config.models.weights = w;
        }
    }
}

/// What is spoken, and the terms to listen for.
#[derive(Debug, Clone, Default, Args)]
pub struct LanguageFlags {
    /// Spoken language (en, zh, yue, …) or auto.
    #[arg(short, long)]
    pub language: Option<String>,
    /// Terms to favour while decoding, comma-separated, each optionally `term:weight`
    /// (default weight 2): product and plan names whisper does not know.
    #[arg(long, value_delimiter = ',')]
    pub hotwords: Vec<Hotword>,
}

impl LanguageFlags {
    /// `--language` becomes `decode.language`; `--hotwords` are added to `decode.hotwords`.
    pub fn apply(&self, config: &mut Config) {
        if let Some(l) = &self.language {
            config.decode.language.clone_from(l);
        }
        config.decode.hotwords.extend(self.hotwords.iter().cloned());
    }
}

/// How one recording is decoded, beyond model, language and adapter: the per-recording
/// options `transcribe` applies to its configuration and `submit` sends with each job.
#[derive(Debug, Clone, Default, Args)]
pub struct RecordingFlags {
    /// Initial prompt: domain words and the written style to decode in.
    #[arg(long)]
    pub prompt: Option<String>,
    /// Roles of channels 0 and 1 (e.g. agent,customer or customer,agent), or `mix`.
    #[arg(long)]
    pub channels: Option<ChannelMode>,
    /// Skip voice-activity segmentation: fixed 30 s windows.
    #[arg(long)]
    pub no_vad: bool,
    /// One whisper window per utterance instead of packing a channel's utterances together.
    #[arg(long)]
    pub no_pack: bool,
    /// Fit whisper's encoder window to each utterance instead of 30 s (3.5× faster; costs
    /// accuracy on some utterances, see BENCHMARKS.md).
    #[arg(long)]
    pub fit_window: bool,
}

impl RecordingFlags {
    /// Each flag given overrides its setting (`decode.initial_prompt`, `transcribe.channels`,
    /// `transcribe.vad`, `transcribe.pack`, `decode.fit_window`).
    pub fn apply(&self, config: &mut Config) {
        if let Some(c) = &self.channels {
            config.transcribe.channels = c.clone();
        }
        if let Some(p) = &self.prompt {
            config.decode.initial_prompt = Some(p.clone());
        }
        if self.fit_window {
            config.decode.fit_window = true;
        }
        if self.no_vad {
            config.transcribe.vad = false;
        }
        if self.no_pack {
            config.transcribe.pack = false;
        }
    }
}

/// How a call's dialect adapter is chosen. Per call (there is no configuration for it): the
/// front door passes these on with the call.
#[derive(Debug, Clone, Default, Args)]
pub struct DialectFlags {
    /// Dialect adapter id (`callscribe dialects list`); default: chosen per call (region,
    /// configured language, then identified from the first speech).
    #[arg(long)]
    pub dialect: Option<String>,
    /// The caller's region, city or telephone number, for the dialect routing table.
    #[arg(long)]
    pub region: Option<String>,
}

impl DialectFlags {
    /// The choices a run makes for its calls, once the groups have applied themselves to the
    /// config: the model named on the command line (it outranks an adapter's model, which
    /// `models.default` does not), the adapter and the region. The language and hotwords
    /// reach the plan through `decode`.
    pub fn request(&self, model: &ModelFlags) -> CallRequest {
        CallRequest {
            model: model.model.clone(),
            dialect: self.dialect.clone(),
            region: self.region.clone(),
            ..CallRequest::default()
        }
    }
}

/// How a client (`stream`, `capture --server`) reaches a secure server. `Debug` shows
/// whether a key is set, never the key.
#[derive(Clone, Default, Args)]
pub struct ConnectFlags {
    /// PEM CA bundle to verify the server's certificate with (default for https://: the
    /// public web CAs). Implies TLS: a server address without a scheme becomes https://.
    #[arg(long)]
    pub tls_ca: Option<PathBuf>,
    /// PEM client certificate, for a server that requires mutual TLS (with --tls-key).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// API key for a server with tenants, sent as `authorization: Bearer`. Prefer the
    /// environment variable: a flag is visible to every user in `ps`.
    #[arg(long, env = "CALLSCRIBE_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
}

impl ConnectFlags {
    /// Whether a TLS flag is given. (Not the key: `$CALLSCRIBE_API_KEY` may be set for
    /// other commands.)
    pub fn tls_given(&self) -> bool {
        self.tls_ca.is_some() || self.tls_cert.is_some() || self.tls_key.is_some()
    }
}

impl std::fmt::Debug for ConnectFlags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectFlags")
            .field("tls_ca", &self.tls_ca)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Command {
        #[command(flatten)]
        model: ModelFlags,
        #[command(flatten)]
        language: LanguageFlags,
        #[command(flatten)]
        dialect: DialectFlags,
    }

    #[test]
    fn the_groups_write_the_config_and_name_the_calls_choices() {
        let flags = Command::try_parse_from([
            "callscribe",
            "-m",
            "tiny.en",
            "--weights",
            "f16",
            "-l",
            "zh",
            "--hotwords",
            "宽带:3,Fibre Max",
            "--region",
            "020",
        ])
        .unwrap();
        let mut config = Config::default();
        let hotwords_before = config.decode.hotwords.len();
        flags.model.apply(&mut config);
        flags.language.apply(&mut config);
        assert_eq!(config.models.default, "tiny.en");
        assert_eq!(config.models.weights, Precision::F16);
        assert_eq!(config.decode.language, "zh");
        assert_eq!(config.decode.hotwords.len(), hotwords_before + 2);
        let request = flags.dialect.request(&flags.model);
        assert_eq!(request.model.as_deref(), Some("tiny.en"));
        assert_eq!(
            (request.dialect, request.region.as_deref()),
            (None, Some("020"))
        );
        assert_eq!((request.language, request.hotwords.len()), (None, 0));
    }

    #[test]
    fn no_flags_leave_the_config_as_it_was() {
        let flags = Command::try_parse_from(["callscribe"]).unwrap();
        let mut config = Config::default();
        flags.model.apply(&mut config);
        flags.language.apply(&mut config);
        assert_eq!(config, Config::default());
        assert_eq!(flags.dialect.request(&flags.model), CallRequest::default());
    }
}
