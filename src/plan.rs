//! The per-call decisions, made in one place for every front door (`serve`'s two RPCs,
//! `capture`, `transcribe`): which model decodes the call, with which settings, in which
//! language — fixed before any audio, or identified from the call's confident speech — and
//! with which dialect adapter, and why.
//!
//! [`CallPlan::resolve`] follows one order:
//! 1. **adapter before audio**: the id named in the request, else the route for its region,
//!    else the mapping of a configured language (`Dialects::select`); none, and
//!    identification on: decided from speech (step 5);
//! 2. **model**: the one named, else that adapter's model where this front door has it
//!    ([`ModelSet`]), else the default;
//! 3. **language**: the configured one, checked against the model (an English-only model
//!    knows only `en`, which may in turn select an adapter by step 1's language rule);
//! 4. **settings**: the deployment's `[decode]` plus the request's hotwords, then the adapter's
//!    prompt, hotwords, overrides and language (unless a language was configured);
//! 5. **no language yet**: the driver identifies it (per channel for a recording, from the
//!    first utterance of a live call) and [`CallPlan::identified`] chooses the adapter for
//!    what was heard.
//!
//! Nothing here runs inference or reads audio; the table-driven test at the end pins the order.

use crate::dialect::{DialectError, Dialects, Reason, Selection};
use crate::engine::{
    resolve_language, DecodeConfig, EngineError, Hotword, LanguageGuess, ModelInfo,
};
use crate::transcript::LanguageSource;
use std::sync::Arc;

/// What one call or recording asks for, whatever front door it came through. Empty fields
/// take the deployment's defaults.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallRequest {
    /// A model name (`base`, `tiny.en`, an imported name).
    pub model: Option<String>,
    /// A dialect adapter id.
    pub dialect: Option<String>,
    /// The caller's region, city or telephone number, for the routing table.
    pub region: Option<String>,
    /// A language code or `auto`; `None`: the deployment's `decode.language`.
    pub language: Option<String>,
    /// Terms to favour, on top of the deployment's and the adapter's.
    pub hotwords: Vec<Hotword>,
    /// Fit whisper's encoder window to each utterance (live calls, per `server.fit_window`):
    /// a final must come within real time.
    pub fit_window: bool,
}

impl CallRequest {
    /// A request field as given: blank means "not given".
    fn given(field: &Option<String>) -> Option<&str> {
        field.as_deref().map(str::trim).filter(|s| !s.is_empty())
    }
}

/// The models a front door can decode with.
pub trait ModelSet {
    /// The model for a call: `named` when given (an error if this front door cannot have
    /// it), else `adapter_model` if it can have that, else its default.
    fn choose(
        &self,
        named: Option<&str>,
        adapter_model: Option<&str>,
    ) -> Result<ModelInfo, PlanError>;
}

/// Models already loaded (a server's, a test's): the first is the default.
impl ModelSet for [ModelInfo] {
    fn choose(
        &self,
        named: Option<&str>,
        adapter_model: Option<&str>,
    ) -> Result<ModelInfo, PlanError> {
        let find = |name: &str| self.iter().find(|m| m.name == name);
        if let Some(name) = named {
            return find(name)
                .cloned()
                .ok_or_else(|| PlanError::ModelNotLoaded {
                    name: name.to_owned(),
                    loaded: self
                        .iter()
                        .map(|m| m.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
        }
        adapter_model
            .and_then(find)
            .or_else(|| self.first())
            .cloned()
            .ok_or_else(|| PlanError::ModelNotLoaded {
                name: adapter_model.unwrap_or("(default)").to_owned(),
                loaded: String::new(),
            })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("model '{name}' is not loaded here (loaded: {loaded})")]
    ModelNotLoaded { name: String, loaded: String },
    /// A front door that loads models on demand could not provide this one.
    #[error("model '{name}': {reason}")]
    ModelUnavailable { name: String, reason: String },
    #[error(transparent)]
    Dialect(#[from] DialectError),
    /// Boxed: an engine error is large next to the other variants.
    #[error(transparent)]
    Language(Box<EngineError>),
    #[error("dialect adapter {adapter}: {source}")]
    AdapterLanguage {
        adapter: String,
        source: Box<EngineError>,
    },
}

impl From<EngineError> for PlanError {
    fn from(e: EngineError) -> Self {
        PlanError::Language(Box::new(e))
    }
}

/// The language a call decodes in.
#[derive(Debug, Clone, PartialEq)]
pub enum Language {
    /// Known: `code` (also in `decode.language`), for the reason `source` gives.
    Fixed {
        code: String,
        source: LanguageSource,
    },
    /// Identify from speech, then [`CallPlan::identified`].
    Identify,
}

/// How a call (or one channel of a recording) is decoded.
#[derive(Debug, Clone)]
pub struct CallPlan {
    pub model: ModelInfo,
    /// The settings every decode of the call uses, the adapter's applied; `decode.language`
    /// is the language once it is fixed.
    pub decode: DecodeConfig,
    pub language: Language,
    /// The dialect adapter and why it was chosen; `None` without adapters, or while the
    /// language is still to be identified.
    pub selection: Option<Selection>,
    /// What identification heard, when it decided the language.
    pub identified: Option<LanguageGuess>,
    /// The adapters as they were when the call began (identification maps into these);
    /// `None`: decode without adapters.
    pub dialects: Option<Arc<Dialects>>,
}

impl CallPlan {
    /// Resolves a request against the deployment's settings, adapters and models, in the
    /// order the module documentation gives.
    pub fn resolve(
        request: &CallRequest,
        decode: &DecodeConfig,
        dialects: Option<Arc<Dialects>>,
        models: &(impl ModelSet + ?Sized),
    ) -> Result<Self, PlanError> {
        let mut decode = decode.clone();
        if let Some(l) = CallRequest::given(&request.language) {
            decode.language = l.to_owned();
        }
        decode.hotwords.extend(request.hotwords.iter().cloned());
        decode.fit_window |= request.fit_window;
        let written = decode.language.trim().to_ascii_lowercase();
        let configured = Some(written.as_str()).filter(|l| !l.is_empty());
        let explicit = CallRequest::given(&request.dialect);
        let region = CallRequest::given(&request.region);

        let before_model = match &dialects {
            Some(d) => d.select(explicit, region, configured)?,
            None => None,
        };
        let model = models.choose(
            CallRequest::given(&request.model),
            before_model.as_ref().map(|s| s.adapter.model()),
        )?;
        let configured = resolve_language(&model, &decode.language)?;
        // An English-only model fixes the language, which may select an adapter.
        let selection = match (before_model, &dialects) {
            (Some(s), _) => Some(s),
            (None, Some(d)) => d.select(None, None, configured.as_deref())?,
            (None, None) => None,
        };
        if let Some(sel) = &selection {
            decode = sel.adapter.decode(&decode);
        }
        let language = match (&selection, configured) {
            (Some(sel), configured) => {
                let code = resolve_language(&model, &decode.language)
                    .map_err(|source| PlanError::AdapterLanguage {
                        adapter: sel.adapter.id().to_owned(),
                        source: Box::new(source),
                    })?
                    .unwrap_or_else(|| decode.language.clone());
                let source = if configured.is_some() {
                    LanguageSource::Configured
                } else {
                    LanguageSource::Adapter
                };
                Language::Fixed { code, source }
            }
            (None, Some(code)) => Language::Fixed {
                code,
                source: LanguageSource::Configured,
            },
            (None, None) => Language::Identify,
        };
        if let Language::Fixed { code, .. } = &language {
            decode.language = code.clone();
        }
        Ok(Self {
            model,
            decode,
            language,
            selection,
            identified: None,
            dialects,
        })
    }

    /// The plan once identification heard `guess`: the adapter mapped to that language (the
    /// default for a language no adapter claims, or for a guess less sure than
    /// `dialects.detect_min_probability`), and its settings.
    pub fn identified(&self, guess: &LanguageGuess) -> Self {
        let (mut decode, selection, source) = match &self.dialects {
            None => (
                self.decode.clone(),
                None,
                LanguageSource::Detected {
                    probability: guess.probability,
                },
            ),
            Some(d) => {
                let sel = d.for_detected(&guess.code, guess.probability);
                let decode = sel.decode_identified(&self.decode, &guess.code);
                let source = match &sel.reason {
                    Reason::Unsure { .. } => LanguageSource::Unsure {
                        identified: guess.code.clone(),
                        probability: guess.probability,
                    },
                    _ => LanguageSource::Detected {
                        probability: guess.probability,
                    },
                };
                (decode, Some(sel), source)
            }
        };
        // Without an adapter, or with the default one, the language heard.
        if selection.is_none() {
            decode.language = guess.code.clone();
        }
        let code = match resolve_language(&self.model, &decode.language) {
            Ok(Some(l)) => l,
            _ => guess.code.clone(),
        };
        decode.language = code.clone();
        Self {
            model: self.model.clone(),
            decode,
            language: Language::Fixed { code, source },
            selection,
            identified: Some(guess.clone()),
            dialects: self.dialects.clone(),
        }
    }

    /// The same plan with the settings of interim re-decodes
    /// ([`DecodeConfig::for_interim`]).
    pub fn for_interims(&self) -> Self {
        Self {
            decode: self.decode.for_interim(),
            ..self.clone()
        }
    }

    /// The plan of a channel on which identification found no speech at all.
    pub fn no_speech(&self) -> Self {
        Self {
            language: Language::Fixed {
                code: "und".to_owned(),
                source: LanguageSource::NoSpeech,
            },
            selection: None,
            identified: None,
            ..self.clone()
        }
    }

    /// The language, once fixed.
    pub fn language_code(&self) -> Option<&str> {
        match &self.language {
            Language::Fixed { code, .. } => Some(code),
            Language::Identify => None,
        }
    }

    /// How the language was decided (`None` while it is still to be identified).
    pub fn language_source(&self) -> Option<&LanguageSource> {
        match &self.language {
            Language::Fixed { source, .. } => Some(source),
            Language::Identify => None,
        }
    }

    /// The adapter's id, or empty without one.
    pub fn adapter_id(&self) -> &str {
        self.selection.as_ref().map_or("", |s| s.adapter.id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::DialectsConfig;

    /// The shipped adapters, with Cantonese replaced by one on its own fine-tuned model
    /// (`yue-ft`, decoding `yue`), so the table can show an adapter bringing its model.
    fn dialects(detect: bool) -> Arc<Dialects> {
        let dir = tempfile::tempdir().unwrap();
        let shipped = crate::dialect::BUILTIN
            .iter()
            .find(|(f, _)| *f == "cantonese.toml")
            .unwrap()
            .1;
        let profile = shipped
            .replace("name = \"base\"", "name = \"yue-ft\"")
            .replace("language = \"zh\"", "language = \"yue\"");
        std::fs::write(dir.path().join("cantonese.toml"), profile).unwrap();
        let cfg = DialectsConfig {
            dir: Some(dir.path().to_owned()),
            detect,
            ..DialectsConfig::default()
        };
        Arc::new(Dialects::load(&cfg, &|_: &str| true).unwrap())
    }

    /// `yue-ft` stands for a large-v3-family fine-tune (100 languages, with `yue`).
    fn model(name: &str, multilingual: bool) -> ModelInfo {
        let languages = match (multilingual, name.starts_with("yue")) {
            (false, _) => 0,
            (true, false) => 99,
            (true, true) => 100,
        };
        ModelInfo {
            name: name.into(),
            multilingual,
            languages,
        }
    }

    /// The adapter's model not loaded, or another model named: the call would decode `yue`
    /// on a model without that token (whisper.cpp would use whatever token sits at that
    /// position), so the plan is refused with the reason.
    #[test]
    fn an_adapter_language_the_chosen_model_lacks_is_refused() {
        for (named, loaded) in [(None, BASE), (Some("base"), ALL)] {
            let models: Vec<ModelInfo> = loaded
                .iter()
                .map(|n| model(n, !n.ends_with(".en")))
                .collect();
            let request = CallRequest {
                model: named.map(Into::into),
                dialect: Some("cantonese".into()),
                ..CallRequest::default()
            };
            let e = CallPlan::resolve(
                &request,
                &DecodeConfig::default(),
                Some(dialects(true)),
                models.as_slice(),
            )
            .unwrap_err()
            .to_string();
            assert!(e.contains("model base has no 'yue' token"), "{e}");
        }
    }

    /// One row: what was asked, what is loaded, what the plan must decide.
    struct Row {
        why: &'static str,
        model: Option<&'static str>,
        dialect: Option<&'static str>,
        region: Option<&'static str>,
        language: Option<&'static str>,
        detect: bool,
        loaded: &'static [&'static str],
        /// model, language ("?" = identify), adapter ("" = none), reason
        want: (&'static str, &'static str, &'static str, &'static str),
    }

    const ALL: &[&str] = &["base", "tiny.en", "yue-ft"];
    const BASE: &[&str] = &["base"];
    const EN: &[&str] = &["tiny.en", "base"];

    #[test]
    fn one_selection_order_for_every_front_door() {
        let rows = [
            Row {
                why: "nothing asked: identify from speech on the default model",
                model: None,
                dialect: None,
                region: None,
                language: None,
                detect: true,
                loaded: ALL,
                want: ("base", "?", "", ""),
            },
            Row {
                why: "explicit adapter brings its model",
                model: None,
                dialect: Some("cantonese"),
                region: None,
                language: None,
                detect: true,
                loaded: ALL,
                want: ("yue-ft", "yue", "cantonese", "explicit"),
            },
            Row {
                why: "explicit adapter wins over region",
                model: None,
                dialect: Some("wu"),
                region: Some("0755"),
                language: None,
                detect: true,
                loaded: ALL,
                want: ("base", "zh", "wu", "explicit"),
            },
            Row {
                why: "region routes",
                model: None,
                dialect: None,
                region: Some("0755"),
                language: None,
                detect: true,
                loaded: ALL,
                want: ("yue-ft", "yue", "cantonese", "region 0755"),
            },
            Row {
                why: "region wins over a configured language; the language stays",
                model: None,
                dialect: None,
                region: Some("成都"),
                language: Some("en"),
                detect: true,
                loaded: ALL,
                want: ("base", "en", "southwest", "region 成都"),
            },
            Row {
                why: "unknown region: the configured language's adapter",
                model: None,
                dialect: None,
                region: Some("nowhere"),
                language: Some("zh"),
                detect: true,
                loaded: ALL,
                want: ("base", "zh", "putonghua", "configured language zh"),
            },
            Row {
                why: "configured language maps to its adapter and model",
                model: None,
                dialect: None,
                region: None,
                language: Some("yue"),
                detect: true,
                loaded: ALL,
                want: ("yue-ft", "yue", "cantonese", "configured language yue"),
            },
            Row {
                why: "a configured language no adapter claims: no adapter, that language",
                model: None,
                dialect: None,
                region: None,
                language: Some("fr"),
                detect: true,
                loaded: ALL,
                want: ("base", "fr", "", ""),
            },
            Row {
                why: "identification off: the default adapter",
                model: None,
                dialect: None,
                region: None,
                language: None,
                detect: false,
                loaded: ALL,
                want: ("base", "zh", "putonghua", "deployment default"),
            },
            Row {
                why: "English-only default model fixes en, which selects its adapter",
                model: None,
                dialect: None,
                region: None,
                language: None,
                detect: true,
                loaded: EN,
                want: ("tiny.en", "en", "english", "configured language en"),
            },
            Row {
                why: "case and blanks in a request are not choices",
                model: Some(" "),
                dialect: Some(""),
                region: Some("  "),
                language: Some(" ZH "),
                detect: true,
                loaded: ALL,
                want: ("base", "zh", "putonghua", "configured language zh"),
            },
        ];
        for row in rows {
            let models: Vec<ModelInfo> = row
                .loaded
                .iter()
                .map(|n| model(n, !n.ends_with(".en")))
                .collect();
            let request = CallRequest {
                model: row.model.map(Into::into),
                dialect: row.dialect.map(Into::into),
                region: row.region.map(Into::into),
                language: row.language.map(Into::into),
                ..CallRequest::default()
            };
            let plan = CallPlan::resolve(
                &request,
                &DecodeConfig::default(),
                Some(dialects(row.detect)),
                models.as_slice(),
            )
            .unwrap_or_else(|e| panic!("{}: {e}", row.why));
            let reason = plan
                .selection
                .as_ref()
                .map_or(String::new(), |s| s.reason.to_string());
            let got = (
                plan.model.name.as_str(),
                plan.language_code().unwrap_or("?"),
                plan.adapter_id(),
                reason.as_str(),
            );
            let want = row.want;
            assert_eq!(
                (got.0, got.1, got.2),
                (want.0, want.1, want.2),
                "{}",
                row.why
            );
            assert!(got.3.starts_with(want.3), "{}: reason {}", row.why, got.3);
            if let Some(code) = plan.language_code() {
                assert_eq!(plan.decode.language, code, "{}", row.why);
            }
        }
    }

    #[test]
    fn bad_requests_are_refused_before_any_audio() {
        let models = [model("base", true), model("tiny.en", false)];
        let resolve = |request: CallRequest| {
            CallPlan::resolve(
                &request,
                &DecodeConfig::default(),
                Some(dialects(true)),
                models.as_slice(),
            )
            .map(|_| ())
            .unwrap_err()
            .to_string()
        };
        let e = resolve(CallRequest {
            model: Some("large".into()),
            ..CallRequest::default()
        });
        assert!(
            e.contains("'large' is not loaded") && e.contains("base, tiny.en"),
            "{e}"
        );
        let e = resolve(CallRequest {
            dialect: Some("klingon".into()),
            ..CallRequest::default()
        });
        assert!(e.contains("klingon"), "{e}");
        let e = resolve(CallRequest {
            language: Some("xx".into()),
            ..CallRequest::default()
        });
        assert!(e.contains("'xx'"), "{e}");
        let e = resolve(CallRequest {
            model: Some("tiny.en".into()),
            dialect: Some("putonghua".into()),
            ..CallRequest::default()
        });
        assert!(e.contains("putonghua") && e.contains("English-only"), "{e}");
    }

    #[test]
    fn identification_maps_what_was_heard_to_its_adapter() {
        let models = [model("base", true)];
        let plan = CallPlan::resolve(
            &CallRequest::default(),
            &DecodeConfig::default(),
            Some(dialects(true)),
            models.as_slice(),
        )
        .unwrap();
        assert_eq!(plan.language, Language::Identify);
        let heard = |code: &str, probability: f32| {
            plan.identified(&LanguageGuess {
                code: code.into(),
                probability,
            })
        };
        // zh → putonghua, decoding zh with its prompt.
        let p = heard("zh", 0.9);
        assert_eq!(
            (p.language_code(), p.adapter_id()),
            (Some("zh"), "putonghua")
        );
        assert!(p.decode.initial_prompt.is_some());
        assert!(matches!(
            p.language_source(),
            Some(LanguageSource::Detected { .. })
        ));
        // A language no adapter claims: the default adapter's settings, the language heard.
        let p = heard("fr", 0.9);
        assert_eq!(
            (p.language_code(), p.adapter_id()),
            (Some("fr"), "putonghua")
        );
        // Unsure: the default adapter and its language, and what was heard is kept.
        let p = heard("en", 0.2);
        assert_eq!(
            (p.language_code(), p.adapter_id()),
            (Some("zh"), "putonghua")
        );
        assert!(
            matches!(p.language_source(), Some(LanguageSource::Unsure { identified, .. }) if identified == "en")
        );
        assert_eq!(p.identified.as_ref().map(|g| g.code.as_str()), Some("en"));
        // Without adapters: the language heard, nothing else.
        let bare = CallPlan {
            dialects: None,
            ..plan.clone()
        };
        let p = bare.identified(&LanguageGuess {
            code: "de".into(),
            probability: 0.5,
        });
        assert_eq!((p.language_code(), p.adapter_id()), (Some("de"), ""));
    }
}
