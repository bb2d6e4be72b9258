//! Region-specific dialect adapters: everything that changes between a contact centre in
//! Guangzhou and one in Chengdu — model, whisper language token, prompt, hotwords, decoding
//! overrides and the normalisation to standard written Chinese.
//!
//! Adapters are versioned TOML profiles (`models/dialects/`, built into the binary; a
//! deployment's `dialects.dir` adds or replaces them). Each call gets one, chosen in a fixed
//! order that the transcript reports: an explicit id, the region routing table, the call's
//! configured language, automatic identification from the first speech, the default.

pub mod normalise;
pub mod profile;
pub mod route;

use crate::engine::{DecodeConfig, Hotword};
pub use normalise::Normaliser;
pub use profile::Profile;
pub use route::{Route, Routes};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The adapters shipped with callscribe (the files under `models/dialects/`).
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "putonghua.toml",
        include_str!("../../models/dialects/putonghua.toml"),
    ),
    (
        "cantonese.toml",
        include_str!("../../models/dialects/cantonese.toml"),
    ),
    (
        "southwest.toml",
        include_str!("../../models/dialects/southwest.toml"),
    ),
    ("wu.toml", include_str!("../../models/dialects/wu.toml")),
    (
        "minnan.toml",
        include_str!("../../models/dialects/minnan.toml"),
    ),
    (
        "english.toml",
        include_str!("../../models/dialects/english.toml"),
    ),
];

/// `[dialects]` section of the configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DialectsConfig {
    /// A folder of extra profiles; one with a built-in adapter's id replaces it.
    pub dir: Option<PathBuf>,
    /// The adapter when nothing else decides.
    pub default: String,
    /// Adapters this deployment offers; empty = all known. Their models are loaded by `serve`.
    pub load: Vec<String>,
    /// Identify the language from the first speech when neither an id nor a region decides.
    pub detect: bool,
    /// An identification less sure than this is not trusted: the call gets the default
    /// adapter instead of a guess. Whisper base gave the eval set's real speech 0.85–1.00
    /// (wide band and through the telephone band), the synthetic call fixtures 0.68–0.96, and
    /// an 8 kHz English call under −45 dBFS line noise 0.43–0.53; music alone, before the
    /// detector kept it out, 0.51 (BENCHMARKS.md, "Real call audio"). The floor sits under
    /// the noisy real call: a wrong fallback to Mandarin is worse than a noisy guess.
    pub detect_min_probability: f32,
    /// Whisper language code → adapter, for identification and configured languages.
    pub detect_map: BTreeMap<String, String>,
    /// Region name/code or telephone area code → adapter; overrides the profiles' regions.
    pub routes: BTreeMap<String, String>,
    /// Deployment-wide terms (product and plan names) added to every adapter's hotwords.
    pub hotwords: Vec<Hotword>,
}

impl Default for DialectsConfig {
    fn default() -> Self {
        Self {
            dir: None,
            default: "putonghua".into(),
            load: Vec::new(),
            detect: true,
            detect_min_probability: 0.35,
            detect_map: [("zh", "putonghua"), ("yue", "cantonese"), ("en", "english")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            routes: BTreeMap::new(),
            hotwords: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DialectError {
    #[error("{file}: {message}")]
    Parse { file: String, message: String },
    #[error("{file}: field `{field}`: {message}")]
    Field {
        file: String,
        field: String,
        message: String,
    },
    #[error("{dir}: cannot read dialect profiles: {source}")]
    Io {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("unknown dialect adapter '{id}' (known: {known})")]
    Unknown { id: String, known: String },
    #[error("{0}")]
    Many(ManyErrors),
}

/// Several profile errors at once: `dialects check` and loading report them all, not the first.
#[derive(Debug)]
pub struct ManyErrors(pub Vec<DialectError>);

impl std::fmt::Display for ManyErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lines: Vec<String> = self.0.iter().map(|e| e.to_string()).collect();
        f.write_str(&lines.join("\n"))
    }
}

/// A loaded, validated adapter.
#[derive(Debug)]
pub struct Adapter {
    pub profile: Profile,
    /// Where it was loaded from (`builtin:cantonese.toml` or a path).
    pub origin: String,
    normaliser: Normaliser,
    /// Deployment-wide hotwords, appended to the profile's.
    extra_hotwords: Vec<Hotword>,
}

impl Adapter {
    pub fn id(&self) -> &str {
        &self.profile.id
    }

    pub fn model(&self) -> &str {
        &self.profile.model.name
    }

    /// The decoding settings for a call with this adapter: the deployment's `[decode]`, with
    /// the adapter's language (unless a language was configured explicitly), prompt,
    /// hotwords and overrides.
    pub fn decode(&self, base: &DecodeConfig) -> DecodeConfig {
        let mut d = base.clone();
        let lang = d.language.trim();
        if lang.is_empty() || lang.eq_ignore_ascii_case("auto") {
            d.language = self.profile.model.language.clone();
        }
        if !self.profile.prompt.trim().is_empty() {
            d.initial_prompt = Some(match d.initial_prompt.take().filter(|p| !p.is_empty()) {
                // A prompt given on the command line adds to the adapter's.
                Some(user) => format!("{} {user}", self.profile.prompt.trim()),
                None => self.profile.prompt.trim().to_owned(),
            });
        }
        d.hotwords.extend(self.profile.hotwords.iter().cloned());
        d.hotwords.extend(self.extra_hotwords.iter().cloned());
        let o = &self.profile.decode;
        if let Some(b) = o.beam_size {
            d.beam_size = b;
        }
        if let Some(t) = o.temperature_fallback {
            d.temperature_fallback = t;
        }
        if let Some(t) = o.no_speech_threshold {
            d.no_speech_threshold = t;
        }
        d
    }

    /// Raw whisper text → this adapter's standard written form.
    pub fn normalise(&self, raw: &str) -> String {
        self.normaliser.apply(raw)
    }
}

/// Why a call got its adapter: reported in transcripts, gRPC responses and logs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum Reason {
    /// Named by the caller (`--dialect`, `StreamingConfig.dialect`).
    Explicit,
    /// The region routing table matched this key.
    Region { key: String },
    /// The call's language was configured (or the model is English-only).
    Language { code: String },
    /// Whisper identified the language from the first speech.
    Detected { language: String, probability: f32 },
    /// Whisper's identification was less sure than `dialects.detect_min_probability`, so the
    /// deployment default was used rather than a guess.
    Unsure { language: String, probability: f32 },
    /// Nothing else decided.
    Default,
}

impl Reason {
    /// The identified language and its probability, where identification decided or was
    /// overruled.
    pub fn identified(&self) -> Option<(&str, f32)> {
        match self {
            Reason::Detected {
                language,
                probability,
            }
            | Reason::Unsure {
                language,
                probability,
            } => Some((language, *probability)),
            _ => None,
        }
    }
}

impl Reason {
    /// One word for the reason, as clients see it: `explicit`, `region`, `language`,
    /// `detected`, `unsure` or `default`.
    pub fn kind(&self) -> &'static str {
        match self {
            Reason::Explicit => "explicit",
            Reason::Region { .. } => "region",
            Reason::Language { .. } => "language",
            Reason::Detected { .. } => "detected",
            Reason::Unsure { .. } => "unsure",
            Reason::Default => "default",
        }
    }
}

/// A call's adapter and why, in the words clients are shown: the gRPC `DialectSelected`
/// response, and the `dialect` line `capture` and `stream` print. Plain text, so that a
/// client can rebuild it from the wire without the adapter's profile.
#[derive(Debug, Clone, PartialEq)]
pub struct SelectionReport {
    pub adapter: String,
    pub version: String,
    /// [`Reason::kind`].
    pub reason: String,
    /// The reason in a sentence ([`Reason`]'s `Display`).
    pub detail: String,
    /// The language the call is decoded in.
    pub language: String,
    /// What identification heard, where it decided or was overruled; empty otherwise.
    pub identified_language: String,
    pub language_probability: f32,
}

impl SelectionReport {
    /// Adapter `adapter` (at `version`), chosen for `reason`, decoding `language`.
    pub fn new(adapter: &str, version: &str, reason: &Reason, language: &str) -> Self {
        let (identified, probability) = reason.identified().unwrap_or_default();
        Self {
            adapter: adapter.to_owned(),
            version: version.to_owned(),
            reason: reason.kind().to_owned(),
            detail: reason.to_string(),
            language: language.to_owned(),
            identified_language: identified.to_owned(),
            language_probability: probability,
        }
    }

    pub fn of(selection: &Selection, language: &str) -> Self {
        Self::new(
            selection.adapter.id(),
            &selection.adapter.profile.version,
            &selection.reason,
            language,
        )
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Explicit => f.write_str("explicit"),
            Reason::Region { key } => write!(f, "region {key}"),
            Reason::Language { code } => write!(f, "configured language {code}"),
            Reason::Detected {
                language,
                probability,
            } => write!(f, "detected {language} (p={probability:.2})"),
            Reason::Unsure {
                language,
                probability,
            } => write!(
                f,
                "identification unsure ({language}, p={probability:.2}): deployment default"
            ),
            Reason::Default => f.write_str("deployment default"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Selection {
    pub adapter: Arc<Adapter>,
    pub reason: Reason,
}

impl Selection {
    /// The decoding settings once identification heard `language`: the adapter's, except
    /// that a language no adapter claims (the default was chosen for want of one) is decoded
    /// as heard rather than forced into the default's. An unsure identification keeps the
    /// default's language: that guess is what it does not trust.
    pub fn decode_identified(&self, base: &DecodeConfig, language: &str) -> DecodeConfig {
        let mut base = base.clone();
        if self.reason == Reason::Default {
            base.language = language.to_owned();
        }
        self.adapter.decode(&base)
    }
}

/// The adapters a deployment offers, its routing table and its selection policy.
#[derive(Debug)]
pub struct Dialects {
    adapters: BTreeMap<String, Arc<Adapter>>,
    routes: Routes,
    cfg: DialectsConfig,
}

/// A parsed profile and where it came from, before cross-checks.
fn parse(origin: &str, text: &str) -> Result<Profile, DialectError> {
    toml::from_str(text).map_err(|e| DialectError::Parse {
        file: origin.to_owned(),
        message: e.to_string().trim_end().replace('\n', " "),
    })
}

fn known_language(code: &str) -> bool {
    crate::engine::is_whisper_language(code)
}

/// Parses and validates one profile; every problem becomes an error naming file and field.
fn load_profile(
    origin: &str,
    text: &str,
    known_model: &dyn Fn(&str) -> bool,
) -> Result<Profile, Vec<DialectError>> {
    let profile = parse(origin, text).map_err(|e| vec![e])?;
    let problems = profile.validate(known_model, &known_language);
    if problems.is_empty() {
        Ok(profile)
    } else {
        Err(problems
            .into_iter()
            .map(|p| DialectError::Field {
                file: origin.to_owned(),
                field: p.field,
                message: p.message,
            })
            .collect())
    }
}

/// The `*.toml` files of a folder, sorted, as (display path, text).
fn read_dir(dir: &Path) -> Result<Vec<(String, String)>, DialectError> {
    let io = |source| DialectError::Io {
        dir: dir.to_owned(),
        source,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).map_err(|source| DialectError::Io {
                dir: p.clone(),
                source,
            })?;
            Ok((p.display().to_string(), text))
        })
        .collect()
}

/// Says why model `model` cannot decode language token `language`, or `None` if it can.
pub type LanguageCheck<'a> = &'a dyn Fn(&str, &str) -> Option<String>;

/// The error for a profile whose model lacks its language token.
fn language_error(origin: &str, profile: &Profile, check: LanguageCheck) -> Option<DialectError> {
    let why = check(&profile.model.name, &profile.model.language)?;
    Some(DialectError::Field {
        file: origin.to_owned(),
        field: "model.language".into(),
        message: format!(
            "model '{}' has no '{}' token: {why}",
            profile.model.name, profile.model.language
        ),
    })
}

/// Validates every profile in `dir` (the `dialects check` command): all errors, not the first.
pub fn check_dir(dir: &Path, known_model: &dyn Fn(&str) -> bool) -> Result<usize, DialectError> {
    check_dir_languages(dir, known_model, &|_, _| None)
}

/// [`check_dir`], also checking that each profile's model has its language token.
pub fn check_dir_languages(
    dir: &Path,
    known_model: &dyn Fn(&str) -> bool,
    languages: LanguageCheck,
) -> Result<usize, DialectError> {
    let files = read_dir(dir)?;
    let mut errors = Vec::new();
    let mut ids: BTreeMap<String, String> = BTreeMap::new();
    for (origin, text) in &files {
        match load_profile(origin, text, known_model) {
            Ok(p) => {
                errors.extend(language_error(origin, &p, languages));
                if let Some(first) = ids.insert(p.id.clone(), origin.clone()) {
                    errors.push(DialectError::Field {
                        file: origin.clone(),
                        field: "id".into(),
                        message: format!("'{}' is already defined in {first}", p.id),
                    });
                }
            }
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() {
        Ok(files.len())
    } else {
        Err(DialectError::Many(ManyErrors(errors)))
    }
}

impl Dialects {
    /// The built-in adapters, then `cfg.dir`'s, filtered by `cfg.load`, with the routing
    /// table and the selection policy checked against them.
    pub fn load(
        cfg: &DialectsConfig,
        known_model: &dyn Fn(&str) -> bool,
    ) -> Result<Self, DialectError> {
        let mut sources: Vec<(String, String)> = BUILTIN
            .iter()
            .map(|(f, t)| (format!("builtin:{f}"), (*t).to_owned()))
            .collect();
        if let Some(dir) = &cfg.dir {
            sources.extend(read_dir(dir)?);
        }
        let mut errors = Vec::new();
        let mut adapters: BTreeMap<String, Arc<Adapter>> = BTreeMap::new();
        for (origin, text) in sources {
            let profile = match load_profile(&origin, &text, known_model) {
                Ok(p) => p,
                Err(mut e) => {
                    errors.append(&mut e);
                    continue;
                }
            };
            let normaliser = match Normaliser::new(&profile.normalise) {
                Ok(n) => n,
                Err(message) => {
                    errors.push(DialectError::Field {
                        file: origin.clone(),
                        field: "normalise.lexicon".into(),
                        message,
                    });
                    continue;
                }
            };
            if let Some(old) = adapters.get(&profile.id) {
                tracing::info!(id = %profile.id, replaced = %old.origin, by = %origin, "dialect adapter replaced");
            }
            adapters.insert(
                profile.id.clone(),
                Arc::new(Adapter {
                    profile,
                    origin,
                    normaliser,
                    extra_hotwords: cfg.hotwords.clone(),
                }),
            );
        }
        if !errors.is_empty() {
            return Err(DialectError::Many(ManyErrors(errors)));
        }
        let known = |adapters: &BTreeMap<String, Arc<Adapter>>| {
            adapters.keys().cloned().collect::<Vec<_>>().join(", ")
        };
        let config_error = |field: String, message: String| DialectError::Field {
            file: "config [dialects]".into(),
            field,
            message,
        };
        if !cfg.load.is_empty() {
            for id in &cfg.load {
                if !adapters.contains_key(id) {
                    errors.push(config_error(
                        "load".into(),
                        format!("unknown adapter '{id}' (known: {})", known(&adapters)),
                    ));
                }
            }
            adapters.retain(|id, _| cfg.load.contains(id));
        }
        let mut need = |field: String, id: &str| {
            if !adapters.contains_key(id) {
                errors.push(config_error(
                    field,
                    format!(
                        "adapter '{id}' is not loaded (loaded: {})",
                        known(&adapters)
                    ),
                ));
            }
        };
        need("default".into(), &cfg.default);
        for (lang, id) in &cfg.detect_map {
            need(format!("detect_map.{lang}"), id);
        }
        for (key, id) in &cfg.routes {
            need(format!("routes.\"{key}\""), id);
        }
        if !errors.is_empty() {
            return Err(DialectError::Many(ManyErrors(errors)));
        }
        // Profiles' own regions first; the deployment's routes override them.
        let mut routes = Routes::default();
        for a in adapters.values() {
            let r = &a.profile.regions;
            for key in r.provinces.iter().chain(&r.cities).chain(&r.area_codes) {
                routes.insert(key, a.id());
            }
        }
        for (key, id) in &cfg.routes {
            routes.insert(key, id);
        }
        Ok(Self {
            adapters,
            routes,
            cfg: cfg.clone(),
        })
    }

    pub fn get(&self, id: &str) -> Result<Arc<Adapter>, DialectError> {
        self.adapters
            .get(id.trim())
            .cloned()
            .ok_or_else(|| DialectError::Unknown {
                id: id.trim().to_owned(),
                known: self.adapters.keys().cloned().collect::<Vec<_>>().join(", "),
            })
    }

    pub fn list(&self) -> impl Iterator<Item = &Arc<Adapter>> {
        self.adapters.values()
    }

    pub fn routes(&self) -> &Routes {
        &self.routes
    }

    pub fn config(&self) -> &DialectsConfig {
        &self.cfg
    }

    /// Adapters whose model lacks their language token, one error each.
    pub fn check_languages(&self, languages: LanguageCheck) -> Result<(), DialectError> {
        let errors: Vec<_> = self
            .adapters
            .values()
            .filter_map(|a| language_error(&a.origin, &a.profile, languages))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(DialectError::Many(ManyErrors(errors)))
        }
    }

    /// Every model the loaded adapters run on, so a server loads each once.
    pub fn models(&self) -> BTreeSet<String> {
        self.adapters
            .values()
            .map(|a| a.model().to_owned())
            .collect()
    }

    /// Selection before any audio: an explicit id, the routing table, a configured
    /// language. `Ok(None)` means identify from the first speech ([`Dialects::for_detected`]);
    /// with identification off it returns the default instead.
    pub fn select(
        &self,
        explicit: Option<&str>,
        region: Option<&str>,
        language: Option<&str>,
    ) -> Result<Option<Selection>, DialectError> {
        if let Some(id) = explicit.map(str::trim).filter(|s| !s.is_empty()) {
            return Ok(Some(Selection {
                adapter: self.get(id)?,
                reason: Reason::Explicit,
            }));
        }
        if let Some(region) = region.map(str::trim).filter(|s| !s.is_empty()) {
            match self.routes.lookup(region) {
                Some(route) => {
                    return Ok(Some(Selection {
                        adapter: self.get(&route.adapter)?,
                        reason: Reason::Region { key: route.key },
                    }))
                }
                None => tracing::info!(region, "no dialect route for region"),
            }
        }
        if let Some(code) = language
            .map(str::trim)
            .filter(|s| !s.is_empty() && *s != "auto")
        {
            if let Some(id) = self.cfg.detect_map.get(code) {
                return Ok(Some(Selection {
                    adapter: self.get(id)?,
                    reason: Reason::Language { code: code.into() },
                }));
            }
        }
        if self.cfg.detect {
            return Ok(None);
        }
        Ok(Some(self.default_selection()))
    }

    /// The adapter for an identified language: the mapping, or the default for a language
    /// no adapter claims or an identification less sure than `detect_min_probability`.
    pub fn for_detected(&self, language: &str, probability: f32) -> Selection {
        if probability < self.cfg.detect_min_probability {
            return Selection {
                reason: Reason::Unsure {
                    language: language.into(),
                    probability,
                },
                ..self.default_selection()
            };
        }
        match self
            .cfg
            .detect_map
            .get(language)
            .and_then(|id| self.adapters.get(id))
        {
            Some(a) => Selection {
                adapter: a.clone(),
                reason: Reason::Detected {
                    language: language.into(),
                    probability,
                },
            },
            None => self.default_selection(),
        }
    }

    pub fn default_selection(&self) -> Selection {
        Selection {
            adapter: self
                .adapters
                .get(&self.cfg.default)
                .cloned()
                .expect("load() checked that the default adapter is loaded"),
            reason: Reason::Default,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn any_model(_: &str) -> bool {
        true
    }

    fn shipped() -> Dialects {
        Dialects::load(&DialectsConfig::default(), &any_model).unwrap()
    }

    #[test]
    fn a_selection_report_names_the_reason_and_what_identification_heard() {
        let unsure = Reason::Unsure {
            language: "yue".into(),
            probability: 0.25,
        };
        let r = SelectionReport::new("putonghua", "3", &unsure, "zh");
        assert_eq!(
            (
                r.reason.as_str(),
                r.identified_language.as_str(),
                r.language_probability
            ),
            ("unsure", "yue", 0.25)
        );
        assert!(
            r.detail.starts_with("identification unsure (yue"),
            "{}",
            r.detail
        );
        let region = Reason::Region {
            key: "广州".into()
        };
        let r = SelectionReport::new("cantonese", "2", &region, "yue");
        assert_eq!(
            (
                r.reason.as_str(),
                r.detail.as_str(),
                r.identified_language.as_str()
            ),
            ("region", "region 广州", "")
        );
    }

    /// The shipped English profile with `from` replaced by `to`, checked on its own: the error.
    fn check_english_edited(from: &str, to: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let english = BUILTIN
            .iter()
            .find(|(f, _)| *f == "english.toml")
            .unwrap()
            .1;
        let profile = english.replace(from, to);
        assert_ne!(profile, english);
        std::fs::write(dir.path().join("edited.toml"), profile).unwrap();
        check_dir(dir.path(), &any_model).unwrap_err().to_string()
    }

    /// A profile's language goes to whisper-rs's `get_lang_id`, which panicked on a NUL byte
    /// (found through the same call by the `proto_config` fuzz target).
    #[test]
    fn a_profile_language_with_a_nul_byte_is_a_field_error() {
        let err = check_english_edited("language = \"en\"", "language = \"e\\u0000n\"");
        assert!(err.contains("field `model.language`"), "{err}");
    }

    /// The prompt and hotwords reach whisper-rs's `set_initial_prompt`, which panics on a NUL
    /// byte inside a decode: refused when the profile loads instead.
    #[test]
    fn a_profile_prompt_or_hotword_with_a_nul_byte_is_a_field_error() {
        let err = check_english_edited(
            "name = \"English\"\n",
            "name = \"English\"\nprompt = \"Hello\\u0000\"\nhotwords = [{ term = \"a\\u0000b\" }]\n",
        );
        assert!(err.contains("field `prompt`: contains a NUL"), "{err}");
        assert!(
            err.contains("field `hotwords[0].term`: contains a NUL"),
            "{err}"
        );
    }

    #[test]
    fn the_shipped_adapters_load_and_cover_the_regions_we_serve() {
        let d = shipped();
        let ids: Vec<&str> = d.list().map(|a| a.id()).collect();
        assert_eq!(
            ids,
            [
                "cantonese",
                "english",
                "minnan",
                "putonghua",
                "southwest",
                "wu"
            ]
        );
        for (region, want) in [
            ("Guangdong", "cantonese"),
            ("香港", "cantonese"),
            ("+853 2888 1234", "cantonese"),
            ("020 3456 7890", "cantonese"),
            ("Chengdu", "southwest"),
            ("023 6123 4567", "southwest"),
            ("Shanghai", "wu"),
            ("0512 6666 8888", "wu"),
            ("Xiamen", "minnan"),
            ("+886 2 2345 6789", "minnan"),
            ("010 6512 3456", "putonghua"),
        ] {
            assert_eq!(
                d.routes().lookup(region).map(|r| r.adapter),
                Some(want.into()),
                "{region}"
            );
        }
    }

    #[test]
    fn selection_order_explicit_region_language_detect_default() {
        let d = shipped();
        let s = d
            .select(Some("wu"), Some("Guangdong"), Some("en"))
            .unwrap()
            .unwrap();
        assert_eq!((s.adapter.id(), s.reason), ("wu", Reason::Explicit));
        let s = d
            .select(None, Some("Guangdong"), Some("en"))
            .unwrap()
            .unwrap();
        assert_eq!(s.adapter.id(), "cantonese");
        assert_eq!(
            s.reason,
            Reason::Region {
                key: "guangdong".into()
            }
        );
        let s = d
            .select(None, Some("Atlantis"), Some("en"))
            .unwrap()
            .unwrap();
        assert_eq!(
            (s.adapter.id(), s.reason),
            ("english", Reason::Language { code: "en".into() })
        );
        assert!(
            d.select(None, None, None).unwrap().is_none(),
            "identify from speech"
        );
        let s = d.for_detected("yue", 0.8);
        assert_eq!(s.adapter.id(), "cantonese");
        assert_eq!(d.for_detected("ja", 0.9).reason, Reason::Default);
        // A call is not switched to a language whisper barely heard (hold music, noise).
        let unsure = d.for_detected("en", 0.3);
        assert_eq!(unsure.adapter.id(), "putonghua");
        assert_eq!(
            unsure.reason.identified(),
            Some(("en", 0.3)),
            "{}",
            unsure.reason
        );
        assert!(matches!(unsure.reason, Reason::Unsure { .. }));
        let off = Dialects::load(
            &DialectsConfig {
                detect: false,
                ..Default::default()
            },
            &any_model,
        )
        .unwrap();
        let s = off.select(None, None, None).unwrap().unwrap();
        assert_eq!((s.adapter.id(), s.reason), ("putonghua", Reason::Default));
        let e = d
            .select(Some("klingon"), None, None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown dialect adapter 'klingon'") && e.contains("cantonese"),
            "{e}"
        );
    }

    #[test]
    fn deployment_routes_override_profile_regions() {
        let mut cfg = DialectsConfig::default();
        cfg.routes.insert("020".into(), "putonghua".into());
        let d = Dialects::load(&cfg, &any_model).unwrap();
        assert_eq!(
            d.routes().lookup("02012345678").unwrap().adapter,
            "putonghua"
        );
    }

    #[test]
    fn config_naming_unknown_adapters_is_an_error_per_field() {
        let mut cfg = DialectsConfig {
            default: "nope".into(),
            ..Default::default()
        };
        cfg.routes.insert("0731".into(), "xiang".into());
        let e = Dialects::load(&cfg, &any_model).unwrap_err().to_string();
        assert!(e.contains("field `default`: adapter 'nope'"), "{e}");
        assert!(
            e.contains("field `routes.\"0731\"`: adapter 'xiang'"),
            "{e}"
        );
    }

    #[test]
    fn load_filters_and_models_are_shared() {
        let cfg = DialectsConfig {
            load: vec!["putonghua".into(), "cantonese".into()],
            detect_map: [("zh".to_owned(), "putonghua".to_owned())].into(),
            ..Default::default()
        };
        let d = Dialects::load(&cfg, &any_model).unwrap();
        assert_eq!(d.list().count(), 2);
        assert_eq!(d.models().into_iter().collect::<Vec<_>>(), ["base"]);
    }

    #[test]
    fn adapter_decode_settings_layer_over_the_deployment() {
        let d = shipped();
        let yue = d.get("cantonese").unwrap();
        let base = DecodeConfig {
            hotwords: vec![Hotword {
                term: "Zentrix".into(),
                weight: 1.0,
            }],
            ..Default::default()
        };
        let dc = yue.decode(&base);
        assert_eq!(dc.language, "zh");
        assert!(dc.initial_prompt.as_deref().is_some_and(|p| !p.is_empty()));
        assert_eq!(dc.hotwords[0].term, "Zentrix");
        assert!(dc.hotwords.len() > 1, "the adapter's own hotwords follow");
        let explicit = DecodeConfig {
            language: "yue".into(),
            ..Default::default()
        };
        assert_eq!(
            yue.decode(&explicit).language,
            "yue",
            "a configured language wins"
        );
        assert_eq!(yue.normalise("佢哋話唔得"), "他们说不行");
    }

    #[test]
    fn a_bad_profile_names_its_file_and_fields() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("bad.toml"),
            "schema = 1\nid = \"Bad Id\"\nversion = \"1\"\nname = \"x\"\n\
             [model]\nname = \"huge\"\nlanguage = \"xx\"\n\
             [[hotwords]]\nterm = \"a\"\nweight = -1\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("typo.toml"), "schema = 1\nidd = \"x\"\n").unwrap();
        let e = check_dir(dir.path(), &|m| m == "base")
            .unwrap_err()
            .to_string();
        let bad = dir.path().join("bad.toml").display().to_string();
        for field in ["id", "model.name", "model.language", "hotwords[0].weight"] {
            assert!(
                e.contains(&format!("{bad}: field `{field}`")),
                "{field}: {e}"
            );
        }
        assert!(e.contains("typo.toml") && e.contains("idd"), "{e}");
    }
}
