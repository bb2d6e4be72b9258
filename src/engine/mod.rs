//! Whisper inference (whisper-rs / whisper.cpp): utterance samples → text with timestamps.
//!
//! One [`Engine`] per model holds the weights, loaded once and shared; each inference thread
//! owns a [`Worker`] with its own whisper state (KV caches, mel buffers), so workers never
//! contend for a lock. Everything here blocks for hundreds of milliseconds: call it from
//! dedicated threads or `spawn_blocking`, never from an async runtime worker.

pub mod guard;
pub mod hotwords;
pub mod pack;
pub mod pool;
mod soundalike;
mod words;

use crate::model::ggml;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};
use whisper_rs::{
    FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters, WhisperState,
};

pub use hotwords::Hotword;
pub use pool::{Pool, PoolError, Priority};
#[cfg(test)]
pub mod scripted;
pub use words::{join_text, Word};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    ModelFile(#[from] ggml::ModelFileError),
    #[error("{path}: whisper.cpp could not load the model: {reason}")]
    Load { path: PathBuf, reason: String },
    #[error("whisper inference failed: {0}")]
    Inference(String),
    #[error("language '{0}' is not one whisper knows (use a code such as en, zh, yue, or auto)")]
    UnknownLanguage(String),
    #[error("model {model} is English-only; it cannot transcribe language '{language}'")]
    EnglishOnly { model: String, language: String },
    #[error(
        "model {model} has no '{language}' token (it knows {languages} languages; yue needs a \
         large-v3-family model)"
    )]
    LanguageNotInModel {
        model: String,
        language: String,
        languages: usize,
    },
}

/// Decoding settings. Greedy decoding with whisper's temperature fallback by default:
/// beam search costs several times the CPU for a small gain on telephony audio.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DecodeConfig {
    /// Spoken language code (`en`, `zh`, `yue`, …) or `auto` to detect it once per recording.
    pub language: String,
    /// Threads per inference worker; 0 picks from the machine's cores.
    pub threads: usize,
    /// 1 = greedy; more = beam search with that width.
    pub beam_size: u32,
    /// Retry a failed decode (repetition, low confidence) at higher temperatures.
    pub temperature_fallback: bool,
    /// whisper.cpp treats a window as silence when the no-speech probability exceeds this and
    /// the decode is unsure.
    pub no_speech_threshold: f32,
    /// Text given to the decoder as previous context (domain words, written style).
    pub initial_prompt: Option<String>,
    /// Per-word times from token timestamps.
    pub word_timestamps: bool,
    /// Run the encoder on the utterance's own length (plus a margin) instead of a full 30 s
    /// window. Whisper's encoder cost is fixed per window, so a 3 s telephony utterance pays
    /// for 30 s; fitting the window cuts that roughly tenfold, at the accuracy cost measured
    /// in BENCHMARKS.md.
    pub fit_window: bool,
    /// Terms to favour while decoding (token-prefix boosting; see `engine::hotwords`).
    /// Dialect adapters add theirs to these.
    pub hotwords: Vec<Hotword>,
    /// Also try each utterance with the hotwords in the decoder prompt, keeping that text
    /// when it finds a listed term (most of their effect, at a second decode; BENCHMARKS.md).
    pub hotword_prompt: bool,
}

impl Default for DecodeConfig {
    fn default() -> Self {
        Self {
            language: "auto".into(),
            threads: 0,
            beam_size: 1,
            temperature_fallback: true,
            no_speech_threshold: 0.6,
            initial_prompt: None,
            word_timestamps: true,
            fit_window: false,
            hotwords: Vec::new(),
            hotword_prompt: true,
        }
    }
}

impl DecodeConfig {
    /// Checks the text that reaches whisper.cpp as C strings (the prompt and the hotwords,
    /// which the prompt may carry): a NUL byte cannot go there.
    pub fn validate(&self) -> Result<(), String> {
        check_c_text("decode.initial_prompt", self.initial_prompt.as_deref())?;
        check_hotwords("decode.hotwords", &self.hotwords)
    }

    /// The settings of an interim re-decode: speed over polish (no temperature fallback, no
    /// word times, a fitted window); the final decode of the utterance follows anyway.
    pub fn for_interim(&self) -> Self {
        Self {
            temperature_fallback: false,
            word_timestamps: false,
            fit_window: true,
            ..self.clone()
        }
    }
}

/// A decoded piece of an utterance; times are milliseconds from the utterance's first sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub text: String,
    pub start_ms: u64,
    pub end_ms: u64,
    /// Mean probability of the text tokens.
    pub confidence: f32,
    pub no_speech_prob: f32,
    pub words: Vec<Word>,
}

/// A language guess with its probability.
#[derive(Debug, Clone, PartialEq)]
pub struct LanguageGuess {
    pub code: String,
    pub probability: f32,
}

/// What the call plan needs to know of a model: its name (as adapters and requests name it),
/// whether it knows more languages than English, and how many language tokens it has (99 for
/// the original multilingual vocabulary, 100 with large-v3's `yue`; whisper.cpp picks a
/// language's token by position, so a code past the model's count would decode with an
/// unrelated token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    pub name: String,
    pub multilingual: bool,
    pub languages: usize,
}

/// Checks a language setting against a model and resolves English-only models to `en`.
/// Returns `None` for `auto` on a multilingual model (identify it from speech).
pub fn resolve_language(model: &ModelInfo, language: &str) -> Result<Option<String>, EngineError> {
    let lang = language.trim().to_ascii_lowercase();
    if !model.multilingual {
        return match lang.as_str() {
            "auto" | "en" | "" => Ok(Some("en".into())),
            other => Err(EngineError::EnglishOnly {
                model: model.name.clone(),
                language: other.into(),
            }),
        };
    }
    if lang == "auto" || lang.is_empty() {
        return Ok(None);
    }
    if !is_whisper_language(&lang) {
        return Err(EngineError::UnknownLanguage(lang));
    }
    let position = crate::model::languages::LANGUAGES
        .iter()
        .position(|l| *l == lang);
    if position.is_some_and(|i| i >= model.languages) {
        return Err(EngineError::LanguageNotInModel {
            model: model.name.clone(),
            language: lang,
            languages: model.languages,
        });
    }
    Ok(Some(lang))
}

/// `text` (the setting `name`) can go to whisper.cpp as a C string.
pub fn check_c_text(name: &str, text: Option<&str>) -> Result<(), String> {
    match text {
        Some(t) if t.contains('\0') => Err(format!(
            "{name} contains a NUL character (whisper takes it as a C string)"
        )),
        _ => Ok(()),
    }
}

/// Each hotword's term can go to whisper.cpp (see [`check_c_text`]).
pub fn check_hotwords(name: &str, hotwords: &[Hotword]) -> Result<(), String> {
    hotwords
        .iter()
        .enumerate()
        .try_for_each(|(i, h)| check_c_text(&format!("{name}[{i}].term"), Some(&h.term)))
}

/// Whether whisper has a language token `code`. A code with a NUL byte (a request's
/// `language` may hold any string) is none: whisper-rs panics turning it into a C string.
pub fn is_whisper_language(code: &str) -> bool {
    !code.contains('\0') && whisper_rs::get_lang_id(code).is_some()
}

/// A loaded model, shared by every worker.
#[derive(Clone)]
pub struct Engine {
    ctx: Arc<WhisperContext>,
    name: String,
    multilingual: bool,
    languages: usize,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("name", &self.name)
            .field("multilingual", &self.multilingual)
            .finish()
    }
}

static LOG_HOOKS: Once = Once::new();

impl Engine {
    /// Validates the file (so corrupt models fail here with a message, not inside whisper.cpp),
    /// then loads it.
    pub fn load(name: &str, path: &Path) -> Result<Self, EngineError> {
        let started = std::time::Instant::now();
        let info = ggml::inspect(path)?;
        // whisper.cpp 1.8.3 loads f32 models but aborts in its convolution (GGML_ASSERT on an
        // f32 kernel) at the first decode; refuse them here instead.
        if info.hparams.ftype % 1000 == 0 {
            return Err(EngineError::Load {
                path: path.to_owned(),
                reason: "f32 models abort inside whisper.cpp 1.8.3; convert with f16 weights"
                    .into(),
            });
        }
        // whisper.cpp prints its loading chatter to stderr; route it through tracing instead.
        LOG_HOOKS.call_once(whisper_rs::install_logging_hooks);
        // Flash attention stays off (whisper-rs's default): on this CPU it saved 22 % of peak
        // memory but no time (BENCHMARKS.md).
        let ctx = WhisperContext::new_with_params(path, WhisperContextParameters::default())
            .map_err(|e| EngineError::Load {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
        tracing::info!(
            model = name,
            weights = %info.precision(),
            load_ms = started.elapsed().as_millis() as u64,
            "model loaded"
        );
        Ok(Self {
            ctx: Arc::new(ctx),
            name: name.to_owned(),
            multilingual: info.hparams.n_vocab >= 51865,
            languages: crate::model::languages::languages_of(info.hparams.n_vocab).len(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn is_multilingual(&self) -> bool {
        self.multilingual
    }

    /// The hotwords as token sequences of this model's vocabulary.
    pub fn hotword_bias(&self, hotwords: &[Hotword]) -> hotwords::Bias {
        if hotwords.is_empty() {
            return hotwords::Bias::default();
        }
        let tokenize = |text: &str| self.ctx.tokenize(text, 64).ok();
        hotwords::Bias::new(
            hotwords,
            self.ctx.token_eot(),
            self.ctx.n_vocab() as usize,
            &tokenize,
        )
    }

    /// A worker with its own decoding state, for one inference thread.
    pub fn worker(&self, threads: usize) -> Result<Worker, EngineError> {
        let state = self
            .ctx
            .create_state()
            .map_err(|e| EngineError::Inference(format!("cannot create whisper state: {e}")))?;
        Ok(Worker {
            state,
            threads: threads.max(1),
            engine: self.clone(),
        })
    }

    pub fn info(&self) -> ModelInfo {
        ModelInfo {
            name: self.name.clone(),
            multilingual: self.multilingual,
            languages: self.languages,
        }
    }
}

/// What the drivers (a live call, a recording's stages) need of a speech recogniser: whisper
/// in production ([`Worker`]), a scripted fake in unit tests (`engine::scripted`). One per
/// inference thread and model; it blocks for hundreds of milliseconds per call.
pub trait Recogniser: Send {
    /// Identifies the spoken language from up to 30 s of speech.
    fn detect_language(&mut self, speech: &[f32]) -> Result<LanguageGuess, EngineError>;

    /// Transcribes up to 30 s of audio in `language`, times relative to its first sample.
    /// `window` says how much encoder context the audio gets.
    fn transcribe(
        &mut self,
        samples: &[f32],
        language: &str,
        cfg: &DecodeConfig,
        window: Window,
    ) -> Result<Vec<Decoded>, EngineError>;
}

/// The encoder context of a decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// One utterance: the whole 30 s window, or fitted to the audio plus the live margin when
    /// `DecodeConfig::fit_window` is set.
    Utterance,
    /// Several utterances packed together (`engine::pack`): the audio plus
    /// [`PACKED_MARGIN_POSITIONS`].
    Packed,
}

/// A model the executor makes recognisers of, one per inference thread.
pub trait Model: Send + Sync {
    fn info(&self) -> ModelInfo;
    fn recogniser(&self, threads: usize) -> Result<Box<dyn Recogniser>, EngineError>;
}

impl<M: Model + ?Sized> Model for Box<M> {
    fn info(&self) -> ModelInfo {
        (**self).info()
    }

    fn recogniser(&self, threads: usize) -> Result<Box<dyn Recogniser>, EngineError> {
        (**self).recogniser(threads)
    }
}

impl Model for Engine {
    fn info(&self) -> ModelInfo {
        Engine::info(self)
    }

    fn recogniser(&self, threads: usize) -> Result<Box<dyn Recogniser>, EngineError> {
        Ok(Box::new(self.worker(threads)?))
    }
}

impl Recogniser for Worker {
    fn detect_language(&mut self, speech: &[f32]) -> Result<LanguageGuess, EngineError> {
        Worker::detect_language(self, speech)
    }

    fn transcribe(
        &mut self,
        samples: &[f32],
        language: &str,
        cfg: &DecodeConfig,
        window: Window,
    ) -> Result<Vec<Decoded>, EngineError> {
        match window {
            Window::Utterance => Worker::transcribe(self, samples, language, cfg),
            Window::Packed => self.transcribe_packed(samples, language, cfg),
        }
    }
}

/// One inference thread's state. Not shared: each worker thread owns one.
pub struct Worker {
    state: WhisperState,
    threads: usize,
    engine: Engine,
}

/// Whisper's context in samples: audio beyond 30 s in one call is not seen.
pub const WINDOW_SAMPLES: usize = 30 * 16_000;
/// Encoder positions in a full window: one per 20 ms (two 10 ms mel frames).
const WINDOW_POSITIONS: usize = 1500;
/// Samples (16 kHz) per encoder position.
const SAMPLES_PER_POSITION: usize = 320;
/// Extra encoder positions beyond the audio when the window is fitted: 6 s of trailing
/// silence. With 2 s the decoder often started the utterance over (tiny.en repeated whole
/// sentences); 6 s keeps WER within 0.5 points of full windows (BENCHMARKS.md).
const FIT_MARGIN_POSITIONS: usize = 300;

/// ggml's tiled matrix kernels (llamafile's tinyBLAS) take a product only when its inner
/// dimension is a multiple of this; otherwise it runs in ggml's one-dot-product-at-a-time loop.
/// The attention's value product runs over the encoder positions, and Whisper's 1500 is not
/// such a multiple: that one product was a fifth of a batch run's CPU (BENCHMARKS.md).
const KERNEL_STEP: usize = 16;

/// Margin of a packed window (several utterances with the call's own pauses between them):
/// 2 s. Over the fixtures and the long call, error rates with it were as low as with the whole
/// window or lower (f16 mean 0.209 against 0.213, q8_0 0.192 against 0.210), for 0.85× the
/// wall time; 1 s was 4 % faster and 0.7 points worse (BENCHMARKS.md). A lone utterance keeps
/// the whole window (or the live margin when fitted): alone, a tight window costs it words.
pub const PACKED_MARGIN_POSITIONS: usize = 100;

/// Encoder context for `n` samples of audio: the audio plus `margin` positions, or with no
/// margin the whole window. Rounded to [`KERNEL_STEP`] positions, which costs nothing below
/// 29.76 s (1488 positions): windows are packed to 28 s at most, and the last positions of a
/// full window are padding. Only audio that needs the full 1500 gets it, slow product and all.
pub fn encoder_positions(n: usize, margin: Option<usize>) -> i32 {
    let audio = n.div_ceil(SAMPLES_PER_POSITION);
    let aligned_max = WINDOW_POSITIONS / KERNEL_STEP * KERNEL_STEP;
    if audio > aligned_max {
        return WINDOW_POSITIONS as i32;
    }
    let wanted = margin.map_or(WINDOW_POSITIONS, |m| audio + m);
    (wanted.div_ceil(KERNEL_STEP) * KERNEL_STEP).min(aligned_max) as i32
}

impl Worker {
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Detects the spoken language from up to 30 s of speech.
    pub fn detect_language(&mut self, speech: &[f32]) -> Result<LanguageGuess, EngineError> {
        let n = speech.len().min(WINDOW_SAMPLES);
        self.state
            .pcm_to_mel(&speech[..n], self.threads)
            .map_err(|e| EngineError::Inference(format!("mel spectrogram: {e}")))?;
        let (id, probs) = self
            .state
            .lang_detect(0, self.threads)
            .map_err(|e| EngineError::Inference(format!("language detection: {e}")))?;
        let code = whisper_rs::get_lang_str(id)
            .ok_or_else(|| EngineError::Inference(format!("language id {id} has no code")))?;
        Ok(LanguageGuess {
            code: code.to_owned(),
            probability: probs.get(id as usize).copied().unwrap_or(0.0),
        })
    }

    /// Transcribes one utterance (≤ 30 s) in `language`.
    ///
    /// With hotwords and `hotword_prompt`, the utterance is decoded a second time with the
    /// terms in the prompt where the first text has something that sounds like a missing term
    /// (`soundalike`), and that text is kept only if it contains a listed term the first
    /// one lacks and does not echo the term list (`hotwords::prefer_prompted`). Listing
    /// the terms in every prompt found them (0 → 3 of 6 on our fixture) but also changed
    /// unrelated calls (+5.8 WER points); verifying keeps the gain and leaves calls without
    /// the terms as they were, at the cost of a second decode where a term was nearly heard
    /// (BENCHMARKS.md).
    pub fn transcribe(
        &mut self,
        samples: &[f32],
        language: &str,
        cfg: &DecodeConfig,
    ) -> Result<Vec<Decoded>, EngineError> {
        let margin = cfg.fit_window.then_some(FIT_MARGIN_POSITIONS);
        self.transcribe_in(samples, language, cfg, margin)
    }

    /// [`Self::transcribe`] for a window of several packed utterances: its encoder runs over
    /// the audio plus [`PACKED_MARGIN_POSITIONS`].
    pub fn transcribe_packed(
        &mut self,
        samples: &[f32],
        language: &str,
        cfg: &DecodeConfig,
    ) -> Result<Vec<Decoded>, EngineError> {
        self.transcribe_in(samples, language, cfg, Some(PACKED_MARGIN_POSITIONS))
    }

    /// Decodes (twice where a hotword was nearly heard), then drops what the audio does not
    /// support ([`guard`]).
    fn transcribe_in(
        &mut self,
        samples: &[f32],
        language: &str,
        cfg: &DecodeConfig,
        margin: Option<usize>,
    ) -> Result<Vec<Decoded>, EngineError> {
        let mut pieces = self.transcribe_chosen(samples, language, cfg, margin)?;
        let prompt = cfg.initial_prompt.as_deref();
        guard::Guard::new(prompt, &cfg.hotwords, cfg.no_speech_threshold).apply(&mut pieces);
        Ok(pieces)
    }

    fn transcribe_chosen(
        &mut self,
        samples: &[f32],
        language: &str,
        cfg: &DecodeConfig,
        margin: Option<usize>,
    ) -> Result<Vec<Decoded>, EngineError> {
        let first = self.decode(
            samples,
            language,
            cfg,
            margin,
            cfg.initial_prompt.as_deref(),
        )?;
        if !cfg.hotword_prompt || cfg.hotwords.is_empty() {
            return Ok(first);
        }
        let text = |d: &[Decoded]| {
            d.iter()
                .map(|p| p.text.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        };
        let first_text = text(&first);
        let near = soundalike::near_misses(&first_text, &cfg.hotwords);
        if near.is_empty() {
            // Nothing heard sounds like a missing term: a second decode would seldom find one.
            return Ok(first);
        }
        tracing::debug!(terms = ?near.iter().map(|h| h.term.as_str()).collect::<Vec<_>>(), "hotword near miss: decoding again with the terms in the prompt");
        let prompt = hotwords::prompt_with_terms(cfg.initial_prompt.as_deref(), &cfg.hotwords);
        let second = self.decode(samples, language, cfg, margin, prompt.as_deref())?;
        if hotwords::prefer_prompted(&first_text, &text(&second), &cfg.hotwords) {
            Ok(second)
        } else {
            Ok(first)
        }
    }

    fn decode(
        &mut self,
        samples: &[f32],
        language: &str,
        cfg: &DecodeConfig,
        margin: Option<usize>,
        prompt: Option<&str>,
    ) -> Result<Vec<Decoded>, EngineError> {
        let strategy = if cfg.beam_size > 1 {
            SamplingStrategy::BeamSearch {
                beam_size: cfg.beam_size as i32,
                patience: -1.0,
            }
        } else {
            SamplingStrategy::Greedy { best_of: 1 }
        };
        let mut params = FullParams::new(strategy);
        params.set_n_threads(self.threads as i32);
        params.set_language(Some(language));
        params.set_translate(false);
        // Utterances are independent: carrying text across them invites repetition loops.
        params.set_no_context(true);
        params.set_print_progress(false);
        params.set_print_realtime(false);
        params.set_print_special(false);
        params.set_print_timestamps(false);
        params.set_suppress_blank(true);
        // Never emit non-speech tokens (♪, [music], …): what faster-whisper's default
        // `suppress_tokens=[-1]` does too, and nothing a call transcript wants.
        params.set_suppress_nst(true);
        params.set_token_timestamps(cfg.word_timestamps);
        params.set_no_speech_thold(cfg.no_speech_threshold);
        if !cfg.temperature_fallback {
            params.set_temperature_inc(0.0);
        }
        if let Some(prompt) = prompt.filter(|p| !p.is_empty()) {
            params.set_initial_prompt(prompt);
        }
        // Lives on this frame until `full` returns: whisper.cpp calls back into it while decoding.
        let bias = self.engine.hotword_bias(&cfg.hotwords);
        if !bias.is_empty() {
            // SAFETY: `bias` outlives `full` below, and the callback only reads it.
            unsafe {
                params.set_filter_logits_callback(Some(hotwords::Bias::callback));
                params.set_filter_logits_callback_user_data(
                    &bias as *const hotwords::Bias as *mut std::ffi::c_void,
                );
            }
        }
        let n = samples.len().min(WINDOW_SAMPLES);
        params.set_audio_ctx(encoder_positions(n, margin));
        self.state
            .full(params, &samples[..n])
            .map_err(|e| EngineError::Inference(e.to_string()))?;

        let limit_ms = (n as u64 * 1000) / 16_000;
        let eot = self.engine.ctx.token_eot();
        let mut out = Vec::new();
        for segment in self.state.as_iter() {
            let mut tokens = Vec::with_capacity(segment.n_tokens() as usize);
            let mut prob_sum = 0.0f32;
            let mut text_tokens = 0usize;
            for i in 0..segment.n_tokens() {
                let Some(tok) = segment.get_token(i) else {
                    continue;
                };
                let data = tok.token_data();
                if data.id >= eot {
                    continue; // special and timestamp tokens carry no text
                }
                prob_sum += data.p;
                text_tokens += 1;
                tokens.push(words::TokenPiece {
                    bytes: tok.to_bytes().unwrap_or_default().to_vec(),
                    start_ms: (data.t0.max(0) as u64 * 10).min(limit_ms),
                    end_ms: (data.t1.max(0) as u64 * 10).min(limit_ms),
                    probability: data.p,
                });
            }
            let text = segment
                .to_str_lossy()
                .map_err(|e| EngineError::Inference(e.to_string()))?
                .trim()
                .to_owned();
            if text.is_empty() {
                continue;
            }
            let start_ms = (segment.start_timestamp().max(0) as u64 * 10).min(limit_ms);
            let end_ms = (segment.end_timestamp().max(0) as u64 * 10).clamp(start_ms, limit_ms);
            out.push(Decoded {
                text,
                start_ms,
                end_ms,
                confidence: if text_tokens == 0 {
                    0.0
                } else {
                    prob_sum / text_tokens as f32
                },
                no_speech_prob: segment.no_speech_probability(),
                words: if cfg.word_timestamps {
                    words::group(&tokens)
                } else {
                    Vec::new()
                },
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `proto_config` fuzz target: a request's `language` with a NUL byte
    /// panicked inside whisper-rs (`get_lang_id` makes a C string of it).
    #[test]
    fn a_language_with_a_nul_byte_is_unknown_not_a_panic() {
        let base = ModelInfo {
            name: "base".into(),
            multilingual: true,
            languages: 99,
        };
        for language in ["\0", "y\0\0n", "en\0"] {
            match resolve_language(&base, language) {
                Err(EngineError::UnknownLanguage(code)) => assert!(code.contains('\0')),
                other => panic!("{language:?}: {other:?}"),
            }
        }
        assert_eq!(
            resolve_language(&base, " ZH ").ok(),
            Some(Some("zh".to_owned()))
        );
        assert!(!is_whisper_language("zh\0"));
        assert!(is_whisper_language("zh"));
    }

    #[test]
    fn yue_needs_a_model_with_the_hundredth_language_token() {
        let model = |languages| ModelInfo {
            name: "m".into(),
            multilingual: true,
            languages,
        };
        match resolve_language(&model(99), "yue") {
            Err(EngineError::LanguageNotInModel { languages: 99, .. }) => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(
            resolve_language(&model(100), "yue").unwrap(),
            Some("yue".to_owned())
        );
        assert_eq!(
            resolve_language(&model(99), "su").unwrap(),
            Some("su".to_owned())
        );
    }

    #[test]
    fn encoder_positions_are_whole_kernel_steps_unless_the_audio_needs_all_1500() {
        let secs = |s: f64| (s * 16_000.0) as usize;
        let live = Some(FIT_MARGIN_POSITIONS);
        // Whole windows of up to 29.76 s: 1488, not 1500.
        assert_eq!(encoder_positions(secs(28.0), None), 1488);
        assert_eq!(encoder_positions(secs(2.0), None), 1488);
        // Fitted: 2 s is 100 positions, plus the 300 margin, rounded up to 16.
        assert_eq!(encoder_positions(secs(2.0), live), 400);
        assert_eq!(encoder_positions(secs(2.01), live), 416);
        assert_eq!(encoder_positions(secs(27.0), live), 1488);
        assert_eq!(encoder_positions(secs(20.0), Some(50)), 1056);
        // Audio beyond 29.76 s keeps every position: no speech is cut off for speed.
        assert_eq!(encoder_positions(secs(29.9), None), 1500);
        assert_eq!(encoder_positions(secs(29.9), live), 1500);
        assert_eq!(encoder_positions(secs(30.0), Some(0)), 1500);
        for n in (0..=WINDOW_SAMPLES).step_by(997) {
            for margin in [None, Some(0), Some(PACKED_MARGIN_POSITIONS), live] {
                let p = encoder_positions(n, margin) as usize;
                assert!(p * SAMPLES_PER_POSITION >= n, "{n} samples cut at {p}");
                assert!(p == WINDOW_POSITIONS || p.is_multiple_of(KERNEL_STEP));
            }
        }
    }
}
