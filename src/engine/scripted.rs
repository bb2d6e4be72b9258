//! A scripted [`Recogniser`] for unit tests of the drivers (a live call, a recording's stages,
//! the executor): it runs no model, answers from a script, and logs every request, so tests
//! can check ordering, plans, endpointing and error handling in milliseconds and without a
//! downloaded model. End-to-end tests keep the real whisper.

use super::{
    DecodeConfig, Decoded, EngineError, LanguageGuess, Model, ModelInfo, Recogniser, Window,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request a scripted recogniser received.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Detect {
        samples: usize,
    },
    Transcribe {
        samples: usize,
        language: String,
        window: Window,
        fit_window: bool,
        word_timestamps: bool,
        prompt: Option<String>,
    },
}

type Answer = dyn Fn(&[f32], &str) -> Result<Vec<Decoded>, EngineError> + Send + Sync;

/// The script: what every recogniser made from this model answers.
#[derive(Clone)]
pub struct Scripted {
    info: ModelInfo,
    language: LanguageGuess,
    answer: Arc<Answer>,
    delay: Duration,
    silent_when_packed: bool,
    log: Arc<Mutex<Vec<Request>>>,
}

impl Scripted {
    /// A multilingual model named `name` that hears `language` (probability 0.9) and answers
    /// every decode with `answer(samples, language)`.
    pub fn new(
        name: &str,
        language: &str,
        answer: impl Fn(&[f32], &str) -> Result<Vec<Decoded>, EngineError> + Send + Sync + 'static,
    ) -> Self {
        Self {
            info: ModelInfo {
                name: name.to_owned(),
                multilingual: true,
                languages: crate::model::languages::LANGUAGES.len(),
            },
            language: LanguageGuess {
                code: language.to_owned(),
                probability: 0.9,
            },
            answer: Arc::new(answer),
            delay: Duration::ZERO,
            silent_when_packed: false,
            log: Arc::default(),
        }
    }

    /// Every decode takes this long (to make jobs overlap).
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Packed windows decode to nothing, as whisper's no-speech gate (which judges a window as
    /// a whole) may leave them; utterances alone are answered by the script.
    pub fn silent_when_packed(mut self) -> Self {
        self.silent_when_packed = true;
        self
    }

    /// Requests received so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn record(&self, r: Request) {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).push(r);
    }
}

/// One piece of text covering all of `samples` (16 kHz).
pub fn whole(text: &str, samples: &[f32]) -> Vec<Decoded> {
    vec![Decoded {
        text: text.to_owned(),
        start_ms: 0,
        end_ms: samples.len() as u64 / 16,
        confidence: 0.9,
        no_speech_prob: 0.01,
        words: Vec::new(),
    }]
}

impl Model for Scripted {
    fn info(&self) -> ModelInfo {
        self.info.clone()
    }

    fn recogniser(&self, _threads: usize) -> Result<Box<dyn Recogniser>, EngineError> {
        Ok(Box::new(self.clone()))
    }
}

impl Recogniser for Scripted {
    fn detect_language(&mut self, speech: &[f32]) -> Result<LanguageGuess, EngineError> {
        self.record(Request::Detect {
            samples: speech.len(),
        });
        Ok(self.language.clone())
    }

    fn transcribe(
        &mut self,
        samples: &[f32],
        language: &str,
        cfg: &DecodeConfig,
        window: Window,
    ) -> Result<Vec<Decoded>, EngineError> {
        self.record(Request::Transcribe {
            samples: samples.len(),
            language: language.to_owned(),
            window,
            fit_window: cfg.fit_window,
            word_timestamps: cfg.word_timestamps,
            prompt: cfg.initial_prompt.clone(),
        });
        if !self.delay.is_zero() {
            std::thread::sleep(self.delay);
        }
        if self.silent_when_packed && window == Window::Packed {
            return Ok(Vec::new());
        }
        (self.answer)(samples, language)
    }
}
