//! Merging a PEFT LoRA adapter into an installed Whisper model: `W' = W + s·B·A` for every
//! weight matrix the adapter changes, with `s = lora_alpha / r` (or `lora_alpha / √r` with
//! `use_rslora`), computed in f64 from the base file's f16/f32 values and then written in the
//! output type by the one ggml writer ([`convert::write_whisper_ggml`]), so a quantised
//! result rounds the merged weights once. Tensors the adapter does not touch are copied bit
//! for bit.
//!
//! Adapters name Hugging Face modules (`base_model.model.model.decoder.layers.3.self_attn.q_proj`);
//! [`hf::hf_module`] maps them to whisper.cpp's tensors. Only plain LoRA on linear layers has
//! this closed form. Variants that need more than `W + s·B·A` on the published base are
//! refused by name: DoRA (a learned magnitude per column), trained biases (`bias` other than
//! `none`, `lora_bias`), `modules_to_save` (whole replaced modules), embedding or
//! convolution LoRA, per-module ranks (`rank_pattern`, `alpha_pattern`), and initialisations
//! that change the base itself (PiSSA, OLoRA, LoftQ, CorDA). `fan_in_fan_out` only applies to
//! GPT-2-style `Conv1D` layers; Whisper's are `nn.Linear`, for which PEFT itself resets it to
//! false with a warning, and so does this module.

use crate::convert::{self, ConvertError, ConvertReport, FloatType, TensorValues, WhisperWeights};
use crate::ggml::{self, HParams, ModelHeader, TensorInfo, TensorSpec};
use crate::hf;
use crate::safetensors_file::TensorFiles;
use crate::Precision;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LoraError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a PEFT adapter config: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("{path}: {what} is not supported: {why}")]
    Unsupported {
        path: PathBuf,
        what: String,
        why: String,
    },
    #[error("{path}: {reason}")]
    Weights { path: PathBuf, reason: String },
    #[error(
        "{path} is quantised ({ty}); merge into the f16 or f32 model, then quantise the result"
    )]
    QuantisedBase { path: PathBuf, ty: Precision },
    #[error(transparent)]
    Safetensors(#[from] crate::safetensors_file::SafetensorsError),
    #[error(transparent)]
    ModelFile(#[from] ggml::ModelFileError),
}

/// `adapter_config.json`, the fields that decide what the adapter means. Unknown fields are
/// ignored (PEFT adds some in most releases); those that change the meaning are checked.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct AdapterConfig {
    #[serde(default = "lora")]
    pub peft_type: String,
    pub r: u32,
    pub lora_alpha: f64,
    pub target_modules: Option<Targets>,
    #[serde(default)]
    pub fan_in_fan_out: bool,
    #[serde(default)]
    pub use_rslora: bool,
    #[serde(default)]
    pub use_dora: bool,
    #[serde(default)]
    pub modules_to_save: Option<Vec<String>>,
    #[serde(default = "none")]
    pub bias: String,
    #[serde(default)]
    pub lora_bias: bool,
    #[serde(default)]
    pub rank_pattern: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub alpha_pattern: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub init_lora_weights: serde_json::Value,
}

fn lora() -> String {
    "LORA".into()
}

fn none() -> String {
    "none".into()
}

/// PEFT's `target_modules`: module-name suffixes, or one regular expression matched against
/// the whole module name (`all-linear` being a keyword).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(untagged)]
pub enum Targets {
    Names(Vec<String>),
    Pattern(String),
}

impl Targets {
    fn matches(&self, module: &str, pattern: Option<&regex::Regex>) -> bool {
        match self {
            Targets::Names(names) => names
                .iter()
                .any(|t| module == t || module.ends_with(&format!(".{t}"))),
            Targets::Pattern(p) if p == "all-linear" => true,
            Targets::Pattern(_) => pattern.is_some_and(|re| re.is_match(module)),
        }
    }
}

impl AdapterConfig {
    /// `s` in `W + s·B·A`.
    pub fn scale(&self) -> f64 {
        let r = f64::from(self.r);
        if self.use_rslora {
            self.lora_alpha / r.sqrt()
        } else {
            self.lora_alpha / r
        }
    }

    /// Refuses, by name, every variant whose merge is not `W + s·B·A` on the published base.
    fn check(&self, path: &Path) -> Result<(), LoraError> {
        let no = |what: &str, why: &str| {
            Err(LoraError::Unsupported {
                path: path.to_owned(),
                what: what.into(),
                why: why.into(),
            })
        };
        if self.peft_type != "LORA" {
            return no(
                &format!("peft_type {}", self.peft_type),
                "only LoRA adapters can be merged",
            );
        }
        if self.use_dora {
            return no(
                "DoRA (use_dora = true)",
                "its learned magnitude vector rescales whole columns, which W + s·B·A cannot express",
            );
        }
        if let Some(m) = self.modules_to_save.as_ref().filter(|m| !m.is_empty()) {
            return no(
                &format!("modules_to_save {m:?}"),
                "the adapter replaces whole modules (often the embeddings); export a merged \
                 checkpoint with PEFT's merge_and_unload() and import it with `models import-hf`",
            );
        }
        if self.bias != "none" || self.lora_bias {
            return no(
                &format!(
                    "trained biases (bias = \"{}\", lora_bias = {})",
                    self.bias, self.lora_bias
                ),
                "only weight matrices are merged",
            );
        }
        if !self.rank_pattern.is_empty() || !self.alpha_pattern.is_empty() {
            return no(
                "per-module ranks or alphas (rank_pattern / alpha_pattern)",
                "every module must share r and lora_alpha",
            );
        }
        if let Some(init) = self.init_lora_weights.as_str() {
            let lower = init.to_ascii_lowercase();
            if ["pissa", "olora", "loftq", "corda", "eva"]
                .iter()
                .any(|v| lower.starts_with(v))
            {
                return no(
                    &format!("init_lora_weights = \"{init}\""),
                    "this initialisation changes the base weights themselves, so the adapter only \
                     fits its own modified base; convert it to a plain LoRA with PEFT first",
                );
            }
        }
        if self.r == 0 || !self.lora_alpha.is_finite() {
            return Err(LoraError::Config {
                path: path.to_owned(),
                reason: format!("r = {} and lora_alpha = {}", self.r, self.lora_alpha),
            });
        }
        Ok(())
    }
}

/// A read adapter: per whisper.cpp tensor, its `A` (r × in) and `B` (out × r).
pub struct LoraAdapter {
    pub dir: PathBuf,
    pub config: AdapterConfig,
    files: TensorFiles,
    /// whisper.cpp tensor name → (A's name, B's name) in `files`.
    pairs: BTreeMap<String, (String, String)>,
}

impl LoraAdapter {
    /// Reads `adapter_config.json` and `adapter_model.safetensors` from `dir` and matches the
    /// adapter's modules to the tensors of a model with `hp`.
    pub fn open(dir: &Path, hp: &HParams) -> Result<Self, LoraError> {
        let config_path = dir.join("adapter_config.json");
        let text = std::fs::read(&config_path).map_err(|source| LoraError::Io {
            path: config_path.clone(),
            source,
        })?;
        let config: AdapterConfig =
            serde_json::from_slice(&text).map_err(|e| LoraError::Config {
                path: config_path.clone(),
                reason: e.to_string(),
            })?;
        config.check(&config_path)?;
        if config.fan_in_fan_out {
            tracing::warn!(
                "fan_in_fan_out is true, but Whisper's layers are nn.Linear: ignored, as PEFT does"
            );
        }
        let weights = dir.join("adapter_model.safetensors");
        if !weights.is_file() && dir.join("adapter_model.bin").is_file() {
            return Err(LoraError::Weights {
                path: dir.join("adapter_model.bin"),
                reason: "PyTorch pickles are not read (loading one runs code); save the adapter \
                         with safe_serialization=True to get adapter_model.safetensors"
                    .into(),
            });
        }
        let files = TensorFiles::open(&weights)?;
        let pattern = match &config.target_modules {
            Some(Targets::Pattern(p)) if p != "all-linear" => Some(
                regex::Regex::new(&format!("^(?:{p})$")).map_err(|e| LoraError::Config {
                    path: config_path.clone(),
                    reason: format!("target_modules is not a regular expression: {e}"),
                })?,
            ),
            _ => None,
        };
        // Hugging Face module → whisper.cpp weight tensor, for the modules LoRA can change.
        let specs = ggml::expected_tensors(hp).unwrap_or_default();
        let linear: HashMap<String, &TensorSpec> = specs
            .iter()
            .filter(|s| s.ne.len() == 2 && s.name.ends_with(".weight"))
            .filter_map(|s| {
                let (module, param) = hf::hf_module(&s.name)?;
                (param == "weight").then_some((module, s))
            })
            .collect();
        let bad = |reason: String| LoraError::Weights {
            path: weights.clone(),
            reason,
        };
        let mut halves: BTreeMap<String, [Option<String>; 2]> = BTreeMap::new();
        for name in files.names() {
            let Some((module, kind)) = split_key(name) else {
                let what = if name.contains("lora_magnitude_vector") {
                    "DoRA magnitude vectors"
                } else if name.contains("lora_embedding") {
                    "LoRA on the token embedding"
                } else {
                    return Err(bad(format!(
                        "tensor '{name}' is not a LoRA A or B matrix (modules_to_save or trained \
                         biases are not supported)"
                    )));
                };
                return Err(LoraError::Unsupported {
                    path: weights.clone(),
                    what: format!("{what} ('{name}')"),
                    why: "only LoRA on linear layers can be merged".into(),
                });
            };
            let slot = &mut halves.entry(module).or_default()[kind];
            *slot = Some(name.to_owned());
        }
        let mut pairs = BTreeMap::new();
        for (module, [a, b]) in halves {
            let (Some(a), Some(b)) = (a, b) else {
                return Err(bad(format!(
                    "module '{module}' has only one of lora_A and lora_B"
                )));
            };
            let Some(spec) = linear.get(&module) else {
                return Err(LoraError::Unsupported {
                    path: weights.clone(),
                    what: format!("LoRA on '{module}'"),
                    why: "it is not a linear layer of this Whisper model (LoRA on the \
                          convolutions or the embeddings cannot be merged)"
                        .into(),
                });
            };
            let full = format!("model.{module}");
            if let Some(t) = &config.target_modules {
                if !t.matches(&full, pattern.as_ref()) && !t.matches(&module, pattern.as_ref()) {
                    return Err(bad(format!(
                        "has weights for '{module}', which target_modules does not name"
                    )));
                }
            }
            let shape = spec.numpy_shape();
            let (ta, tb) = (
                files.get(&a).expect("listed"),
                files.get(&b).expect("listed"),
            );
            let r = config.r as usize;
            if ta.shape != [r, shape[1]] || tb.shape != [shape[0], r] {
                return Err(bad(format!(
                    "'{module}': lora_A is {:?} and lora_B {:?}, but r = {r} and the layer is \
                     {:?} (out × in) need A {:?} and B {:?}",
                    ta.shape,
                    tb.shape,
                    shape,
                    [r, shape[1]],
                    [shape[0], r]
                )));
            }
            for t in [&ta, &tb] {
                if t.float_type().is_none() {
                    return Err(bad(format!(
                        "'{module}' is stored as {:?}, not a float",
                        t.dtype
                    )));
                }
            }
            pairs.insert(spec.name.clone(), (a, b));
        }
        if pairs.is_empty() {
            return Err(bad("holds no lora_A/lora_B pairs".into()));
        }
        Ok(Self {
            dir: dir.to_owned(),
            config,
            files,
            pairs,
        })
    }

    /// whisper.cpp tensors the adapter changes.
    pub fn targets(&self) -> impl Iterator<Item = &str> {
        self.pairs.keys().map(String::as_str)
    }

    /// `W + s·B·A` for the tensor `name` with base values `w` (row-major out × in).
    fn merge(&self, name: &str, w: &[f32]) -> Option<Vec<f32>> {
        let (a, b) = self.pairs.get(name)?;
        let (a, b) = (self.files.get(a)?, self.files.get(b)?);
        let r = self.config.r as usize;
        let (out_dim, in_dim) = (b.shape[0], a.shape[1]);
        let av = a.float_type()?.to_f32(a.bytes);
        let bv = b.float_type()?.to_f32(b.bytes);
        let s = self.config.scale();
        let mut merged = Vec::with_capacity(w.len());
        let mut row = vec![0f64; in_dim];
        for o in 0..out_dim {
            row.iter_mut()
                .zip(&w[o * in_dim..(o + 1) * in_dim])
                .for_each(|(acc, &x)| *acc = f64::from(x));
            for k in 0..r {
                let coef = s * f64::from(bv[o * r + k]);
                if coef == 0.0 {
                    continue;
                }
                for (acc, &x) in row.iter_mut().zip(&av[k * in_dim..(k + 1) * in_dim]) {
                    *acc += coef * f64::from(x);
                }
            }
            merged.extend(row.iter().map(|&v| v as f32));
        }
        Some(merged)
    }
}

/// `base_model.model.model.decoder.layers.0.self_attn.q_proj.lora_A.weight` →
/// (`decoder.layers.0.self_attn.q_proj`, 0); `lora_B` → 1. PEFT writes the adapter name
/// (`.default`) only in unsaved state dicts; both spellings are accepted.
fn split_key(name: &str) -> Option<(String, usize)> {
    let rest = name.strip_prefix("base_model.model.").unwrap_or(name);
    let rest = rest.strip_prefix("model.").unwrap_or(rest);
    for (marker, kind) in [(".lora_A", 0), (".lora_B", 1)] {
        if let Some((module, tail)) = rest.split_once(marker) {
            if matches!(tail, ".weight" | ".default.weight") {
                return Some((module.to_owned(), kind));
            }
        }
    }
    None
}

/// A ggml model file read tensor by tensor, with an adapter merged into the tensors it changes.
struct MergedWeights<'a> {
    path: PathBuf,
    map: memmap2::Mmap,
    tensors: HashMap<String, TensorInfo>,
    adapter: &'a LoraAdapter,
}

impl WhisperWeights for MergedWeights<'_> {
    fn check(&self, spec: &TensorSpec) -> Result<(), ConvertError> {
        match self.tensors.get(&spec.name) {
            Some(t) if t.ne == spec.ne => Ok(()),
            _ => Err(ConvertError::Model {
                path: self.path.clone(),
                reason: format!("tensor '{}' is missing or misshapen", spec.name),
            }),
        }
    }

    fn values(&self, spec: &TensorSpec) -> Result<TensorValues<'_>, ConvertError> {
        self.check(spec)?;
        let t = &self.tensors[&spec.name];
        let bytes = &self.map[t.offset as usize..(t.offset + t.nbytes) as usize];
        let ty = match t.ty {
            Precision::F16 => FloatType::F16,
            Precision::F32 => FloatType::F32,
            other => {
                return Err(ConvertError::Model {
                    path: self.path.clone(),
                    reason: format!("tensor '{}' is {other}, not a float", spec.name),
                })
            }
        };
        match self.adapter.merge(&spec.name, &ty.to_f32(bytes)) {
            Some(merged) => Ok(TensorValues::Computed(merged)),
            None => Ok(TensorValues::Stored { ty, bytes }),
        }
    }

    fn origin(&self) -> &Path {
        &self.path
    }
}

/// What [`merge_lora`] did.
#[derive(Debug, Clone)]
pub struct MergeReport {
    pub convert: ConvertReport,
    pub tensors_merged: usize,
    pub scale: f64,
}

/// Merges the adapter in `adapter_dir` into the f16/f32 ggml model at `base`, writing the
/// result to `out` with its matrices in `precision` (`None`: the base's own type).
pub fn merge_lora(
    base: &Path,
    adapter_dir: &Path,
    precision: Option<Precision>,
    out: &mut impl Write,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<MergeReport, crate::ModelError> {
    let (info, header): (_, ModelHeader) = ggml::inspect_with_header(base)?;
    let from = info.precision();
    if from.is_quantised() {
        return Err(LoraError::QuantisedBase {
            path: base.to_owned(),
            ty: from,
        }
        .into());
    }
    let precision = precision.unwrap_or(from);
    if !Precision::WRITABLE.contains(&precision) {
        return Err(ConvertError::UnsupportedPrecision(precision).into());
    }
    let adapter = LoraAdapter::open(adapter_dir, &header.hparams)?;
    let file = std::fs::File::open(base).map_err(crate::ModelError::io(base))?;
    // SAFETY: read-only map of a file in the model store, which is only ever replaced by
    // rename (never written in place), so its contents cannot change under the map.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(crate::ModelError::io(base))?;
    let weights = MergedWeights {
        path: base.to_owned(),
        map,
        tensors: info
            .tensors
            .iter()
            .map(|t| (t.name.clone(), t.clone()))
            .collect(),
        adapter: &adapter,
    };
    let mut hp = header.hparams;
    hp.ftype = precision.file_ftype();
    let report =
        convert::write_whisper_ggml(&weights, &hp, &header.mel, &header.vocab, out, progress)?;
    Ok(MergeReport {
        convert: report,
        tensors_merged: adapter.pairs.len(),
        scale: adapter.config.scale(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adapter_keys_name_hugging_face_modules() {
        assert_eq!(
            split_key("base_model.model.model.decoder.layers.0.self_attn.q_proj.lora_A.weight"),
            Some(("decoder.layers.0.self_attn.q_proj".into(), 0))
        );
        assert_eq!(
            split_key("base_model.model.model.encoder.layers.5.fc1.lora_B.default.weight"),
            Some(("encoder.layers.5.fc1".into(), 1))
        );
        assert_eq!(
            split_key(
                "base_model.model.model.decoder.layers.0.self_attn.q_proj.lora_magnitude_vector"
            ),
            None
        );
    }

    fn config(json: &str) -> Result<(), LoraError> {
        let c: AdapterConfig = serde_json::from_str(json).unwrap();
        c.check(Path::new("adapter_config.json"))
    }

    #[test]
    fn unsupported_peft_variants_are_refused_by_name() {
        let ok =
            r#"{"peft_type":"LORA","r":8,"lora_alpha":16,"target_modules":["q_proj","v_proj"]}"#;
        config(ok).unwrap();
        for (json, name) in [
            (r#"{"r":8,"lora_alpha":16,"use_dora":true}"#, "DoRA"),
            (
                r#"{"r":8,"lora_alpha":16,"modules_to_save":["embed_tokens"]}"#,
                "modules_to_save",
            ),
            (r#"{"r":8,"lora_alpha":16,"bias":"all"}"#, "trained biases"),
            (
                r#"{"r":8,"lora_alpha":16,"rank_pattern":{"q_proj":4}}"#,
                "rank_pattern",
            ),
            (
                r#"{"r":8,"lora_alpha":16,"init_lora_weights":"pissa"}"#,
                "pissa",
            ),
            (r#"{"peft_type":"IA3","r":8,"lora_alpha":16}"#, "IA3"),
        ] {
            let e = config(json).unwrap_err().to_string();
            assert!(e.contains(name) && e.contains("not supported"), "{e}");
        }
    }

    #[test]
    fn scale_is_alpha_over_r_or_over_its_root_with_rslora() {
        let c: AdapterConfig = serde_json::from_str(r#"{"r":16,"lora_alpha":32}"#).unwrap();
        assert_eq!(c.scale(), 2.0);
        let c: AdapterConfig =
            serde_json::from_str(r#"{"r":16,"lora_alpha":32,"use_rslora":true}"#).unwrap();
        assert_eq!(c.scale(), 8.0);
    }

    #[test]
    fn targets_match_suffixes_or_a_whole_name_pattern() {
        let names = Targets::Names(vec!["q_proj".into()]);
        assert!(names.matches("model.decoder.layers.0.self_attn.q_proj", None));
        assert!(!names.matches("model.decoder.layers.0.self_attn.k_proj", None));
        let re = regex::Regex::new(r"^(?:.*decoder.*\.(q_proj|v_proj))$").unwrap();
        let p = Targets::Pattern(String::new());
        assert!(p.matches("model.decoder.layers.0.self_attn.v_proj", Some(&re)));
        assert!(!p.matches("model.encoder.layers.0.self_attn.v_proj", Some(&re)));
    }
}
