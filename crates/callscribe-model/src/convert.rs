//! Conversion of a CTranslate2 Whisper model (faster-whisper's format) into whisper.cpp's
//! ggml file, so that models published only as CTranslate2 conversions can run on
//! whisper.cpp. The weights are the same OpenAI weights; what differs is packaging:
//! CTranslate2 fuses the attention projections (self-attention `linear_0` = q|k|v,
//! cross-attention `linear_1` = k|v, with a zero slot for Whisper's bias-less key), names
//! layers `layer_N/…` with `gamma`/`beta` norms, and keeps the tokenizer beside the weights.
//! whisper.cpp wants OpenAI's tensor names and separate projections without a key bias, F32
//! norms, biases and positional embeddings, conv biases shaped `[n_state, 1]`, the mel
//! filterbank in the header, and the byte-level vocabulary below `<|endoftext|>` (it names the
//! special tokens itself). Dropping the key bias would be exact even if it were not zero: it
//! adds the same `q·b` to every attention logit of a query, which softmax ignores.
//!
//! The tensor set, shapes and types come from [`ggml::expected_tensors`], the same table
//! [`ggml::inspect`] checks files against, so a conversion cannot drift from what the loader
//! accepts. Tensors are converted one at a time; F16 weights are copied bit for bit, or
//! quantised on the way (q8_0, q5_1, q5_0: the writer encodes them with
//! [`super::quantise::blocks`]) to give the same file as converting to F16 and quantising.

use super::ct2::{self, Ct2Dtype, Ct2Error, Ct2Model, Ct2Variable};
use super::ggml::{self, GgmlWriter, HParams, MelFilters, TensorData, TensorSpec};
use super::quantise::blocks;
use super::Precision;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Whisper's audio front end: 16 kHz audio, 400-sample (25 ms) FFT frames.
pub const SAMPLE_RATE: u32 = 16_000;
pub const N_FFT: usize = 400;
/// Whisper's attention heads are always 64 wide; used only if a model omits `num_heads`.
const HEAD_DIM: i64 = 64;

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error(transparent)]
    Ct2(#[from] Ct2Error),
    #[error(transparent)]
    Hf(#[from] crate::hf::HfError),
    #[error("{path}: {reason}")]
    Model { path: PathBuf, reason: String },
    #[error("{path}: variable '{name}' has shape {shape:?}, expected {expected}")]
    Shape {
        path: PathBuf,
        name: String,
        shape: Vec<usize>,
        expected: String,
    },
    #[error("{path}: {reason}")]
    Vocabulary { path: PathBuf, reason: String },
    #[error("cannot write {0} weights: the converter writes f32, f16, q8_0, q5_1 or q5_0")]
    UnsupportedPrecision(Precision),
    #[error("writing the ggml model: {0}")]
    Write(#[source] std::io::Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvertOptions {
    /// Precision of the large matrices. F16 (the default) keeps CTranslate2's float16 weights bit
    /// for bit; F32 doubles the file for no gain in accuracy; Q8_0, Q5_1 and Q5_0 quantise
    /// the float16 values as whisper.cpp's `quantize` tool would.
    pub precision: Precision,
}

impl Default for ConvertOptions {
    fn default() -> Self {
        Self {
            precision: Precision::F16,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertReport {
    pub hparams: HParams,
    pub tensors_written: usize,
    /// Size of the whole ggml file.
    pub bytes_written: u64,
    /// Tokens stored in the file's vocabulary (those below `<|endoftext|>`).
    pub vocab_written: usize,
    pub multilingual: bool,
}

/// Converts the CTranslate2 Whisper model in `dir` into a whisper.cpp ggml file written to
/// `out`. `progress(done, total)` is called with bytes of tensor data written. Everything is
/// validated before the first byte is written, so a failed conversion leaves `out` empty
/// unless writing itself fails.
pub fn convert_ct2_dir(
    dir: &Path,
    out: &mut impl Write,
    opts: &ConvertOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<ConvertReport, ConvertError> {
    if !Precision::WRITABLE.contains(&opts.precision) {
        return Err(ConvertError::UnsupportedPrecision(opts.precision));
    }
    let model = Ct2Model::read(&dir.join("model.bin"))?;
    let vocab_path = dir.join("vocabulary.txt");
    let tokens = ct2::read_vocabulary(&vocab_path)?;
    let hp = hparams_of(&model, opts.precision)?;
    let vocab = ggml_vocabulary(&tokens, &hp, &vocab_path)?;
    let config_path = dir.join("config.json");
    if config_path.is_file() {
        check_config(&ct2::read_config(&config_path)?, &tokens, &config_path)?;
    }
    check_tied_projection(&model)?;
    let mel = whisper_mel_filters(hp.n_mels);
    let report = write_whisper_ggml(&Ct2Weights(&model), &hp, &mel, &vocab, out, progress)?;
    tracing::info!(
        dir = %dir.display(),
        tensors = report.tensors_written,
        bytes = report.bytes_written,
        "converted CTranslate2 model to ggml"
    );
    Ok(report)
}

/// How a checkpoint stores a float tensor's elements (little-endian).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloatType {
    F32,
    F16,
    Bf16,
}

impl FloatType {
    pub fn size(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::F16 | Self::Bf16 => 2,
        }
    }

    pub fn to_f32(self, bytes: &[u8]) -> Vec<f32> {
        match self {
            Self::F32 => bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Self::F16 => bytes
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            Self::Bf16 => bytes
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
        }
    }
}

/// One tensor's values as a checkpoint supplies them, row-major in whisper.cpp's numpy shape.
#[derive(Debug, Clone)]
pub enum TensorValues<'a> {
    /// The checkpoint's own bytes: copied bit for bit when the ggml type is the same.
    Stored { ty: FloatType, bytes: &'a [u8] },
    /// Values computed here (weights with an adapter merged in).
    Computed(Vec<f32>),
}

/// A Whisper checkpoint read by whisper.cpp's (OpenAI's) tensor names. Each format knows
/// only its own names and packing (CTranslate2's fused projections, Hugging Face's
/// `q_proj`/`fc1`, a ggml file's own names); which tensors exist, their shapes and ggml types
/// and the file they go into are [`write_whisper_ggml`]'s, one place for every format.
pub trait WhisperWeights {
    /// Checks that `spec` can be supplied: present, float, and elements that fill its shape
    /// (size-1 axes aside). Called for every tensor before anything is written.
    fn check(&self, spec: &TensorSpec) -> Result<(), ConvertError>;
    /// The values of a checked `spec`.
    fn values(&self, spec: &TensorSpec) -> Result<TensorValues<'_>, ConvertError>;
    /// The file errors name.
    fn origin(&self) -> &Path;
}

/// Writes the ggml file whisper.cpp loads for `hp`: the header (`mel`, `vocab`), then every
/// tensor of [`ggml::expected_tensors`] from `weights`, in whisper's order and the type the
/// loader wants for `hp.ftype` (stored F16 into F16 and F32 into F32 bit for bit, anything
/// else through f32, quantised by the writer). Every tensor is checked before the first byte
/// is written. `progress(done, total)` counts tensor bytes written.
pub fn write_whisper_ggml(
    weights: &dyn WhisperWeights,
    hp: &HParams,
    mel: &MelFilters,
    vocab: &[Vec<u8>],
    out: &mut impl Write,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<ConvertReport, ConvertError> {
    let path = weights.origin();
    let specs = ggml::expected_tensors(hp).ok_or_else(|| ConvertError::Model {
        path: path.to_owned(),
        reason: format!("no tensor layout for ftype {}", hp.ftype),
    })?;
    for spec in &specs {
        weights.check(spec)?;
    }
    // whisper.cpp needs every weight matrix in the model's type, so one whose rows are not
    // whole quantisation blocks makes the whole model impossible in that type.
    if let Some(spec) = specs
        .iter()
        .find(|s| s.ty.is_quantised() && s.ne[0] % blocks::BLOCK_LEN != 0)
    {
        return Err(ConvertError::Model {
            path: path.to_owned(),
            reason: format!(
                "tensor '{}' has rows of {} values, not whole {}-value blocks, so the model \
                 cannot be {}",
                spec.name,
                spec.ne[0],
                blocks::BLOCK_LEN,
                spec.ty
            ),
        });
    }
    let total: u64 = specs
        .iter()
        .map(|spec| spec.ty.nbytes(&spec.ne).unwrap_or(0))
        .sum();

    let mut w = GgmlWriter::new(std::io::BufWriter::with_capacity(1 << 20, out));
    w.write_header(hp, mel, vocab)
        .map_err(ConvertError::Write)?;
    progress(0, total);
    let mut done = 0;
    for spec in &specs {
        let shape = spec.numpy_shape();
        done += match weights.values(spec)? {
            TensorValues::Stored { ty, bytes }
                if matches!(
                    (ty, spec.ty),
                    (FloatType::F16, Precision::F16) | (FloatType::F32, Precision::F32)
                ) =>
            {
                w.write_tensor(&spec.name, &shape, spec.ty, TensorData::Raw(bytes))
            }
            TensorValues::Stored { ty, bytes } => {
                let values = ty.to_f32(bytes);
                w.write_tensor(&spec.name, &shape, spec.ty, TensorData::F32(&values))
            }
            TensorValues::Computed(values) => {
                w.write_tensor(&spec.name, &shape, spec.ty, TensorData::F32(&values))
            }
        }
        .map_err(ConvertError::Write)?;
        progress(done, total);
    }
    w.flush().map_err(ConvertError::Write)?;
    Ok(ConvertReport {
        hparams: *hp,
        tensors_written: w.tensors_written(),
        bytes_written: w.bytes_written(),
        vocab_written: vocab.len(),
        multilingual: hp.is_multilingual(),
    })
}

/// A CTranslate2 model read by whisper.cpp's tensor names (through [`Source`]).
struct Ct2Weights<'m>(&'m Ct2Model);

impl Ct2Weights<'_> {
    fn source(&self, spec: &TensorSpec) -> Result<Source, ConvertError> {
        Source::of(&spec.name).ok_or_else(|| ConvertError::Model {
            path: self.0.path.clone(),
            reason: format!("no CTranslate2 source known for tensor '{}'", spec.name),
        })
    }
}

impl WhisperWeights for Ct2Weights<'_> {
    fn check(&self, spec: &TensorSpec) -> Result<(), ConvertError> {
        self.source(spec)?.resolve(self.0, spec).map(|_| ())
    }

    fn values(&self, spec: &TensorSpec) -> Result<TensorValues<'_>, ConvertError> {
        let src = self.source(spec)?;
        let var = src.resolve(self.0, spec)?;
        if spec.name.ends_with(".key.weight") {
            log_dropped_key_bias(self.0, var, &src);
        }
        let ty = match var.dtype {
            Ct2Dtype::F32 => FloatType::F32,
            Ct2Dtype::F16 => FloatType::F16,
            Ct2Dtype::Bf16 => FloatType::Bf16,
            other => unreachable!("resolve accepts only float variables, not {other:?}"),
        };
        Ok(TensorValues::Stored {
            ty,
            bytes: src.slice(self.0, var),
        })
    }

    fn origin(&self) -> &Path {
        &self.0.path
    }
}

/// Where a whisper.cpp tensor comes from: `part` of `parts` equal slices (along the first
/// axis) of a CTranslate2 variable.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Source {
    var: String,
    part: usize,
    parts: usize,
}

impl Source {
    /// The CTranslate2 variable behind a whisper.cpp tensor name.
    fn of(name: &str) -> Option<Self> {
        let whole = |var: String| {
            Some(Self {
                var,
                part: 0,
                parts: 1,
            })
        };
        let norm = |scope: String, param: &str| match param {
            "weight" => whole(format!("{scope}/gamma")),
            "bias" => whole(format!("{scope}/beta")),
            _ => None,
        };
        let (system, rest) = name.split_once('.')?;
        if system != "encoder" && system != "decoder" {
            return None;
        }
        match rest {
            "positional_embedding" => {
                return whole(format!("{system}/position_encodings/encodings"))
            }
            "token_embedding.weight" if system == "decoder" => {
                return whole("decoder/embeddings/weight".into())
            }
            _ => {}
        }
        let (module, param) = rest.rsplit_once('.')?;
        let Some(block) = module.strip_prefix("blocks.") else {
            return match module {
                "conv1" | "conv2" if system == "encoder" => {
                    whole(format!("encoder/{module}/{param}"))
                }
                "ln_post" if system == "encoder" => norm("encoder/layer_norm".into(), param),
                "ln" if system == "decoder" => norm("decoder/layer_norm".into(), param),
                _ => None,
            };
        };
        let (layer, module) = block.split_once('.')?;
        let layer: usize = layer.parse().ok()?;
        let scope = format!("{system}/layer_{layer}");
        let cross = system == "decoder";
        let (ct2, part, parts) = match module {
            "attn_ln" => return norm(format!("{scope}/self_attention/layer_norm"), param),
            "cross_attn_ln" if cross => {
                return norm(format!("{scope}/attention/layer_norm"), param)
            }
            "mlp_ln" => return norm(format!("{scope}/ffn/layer_norm"), param),
            "attn.query" => ("self_attention/linear_0", 0, 3),
            "attn.key" => ("self_attention/linear_0", 1, 3),
            "attn.value" => ("self_attention/linear_0", 2, 3),
            "attn.out" => ("self_attention/linear_1", 0, 1),
            "cross_attn.query" if cross => ("attention/linear_0", 0, 1),
            "cross_attn.key" if cross => ("attention/linear_1", 0, 2),
            "cross_attn.value" if cross => ("attention/linear_1", 1, 2),
            "cross_attn.out" if cross => ("attention/linear_2", 0, 1),
            "mlp.0" => ("ffn/linear_0", 0, 1),
            "mlp.2" => ("ffn/linear_1", 0, 1),
            _ => return None,
        };
        // Whisper's keys have no bias (CTranslate2's zero slot for it is not a tensor).
        if !(param == "weight" || param == "bias" && !module.ends_with(".key")) {
            return None;
        }
        Some(Self {
            var: format!("{scope}/{ct2}/{param}"),
            part,
            parts,
        })
    }

    /// Looks the variable up and checks it can supply `spec`: float data, and a shape that
    /// splits into `parts` slices of the tensor's shape (size-1 axes aside: CTranslate2 keeps
    /// conv biases 1-D where ggml wants `[1, n]`).
    fn resolve<'m>(
        &self,
        model: &'m Ct2Model,
        spec: &TensorSpec,
    ) -> Result<&'m Ct2Variable, ConvertError> {
        let var = model.get(&self.var).ok_or_else(|| ConvertError::Model {
            path: model.path.clone(),
            reason: format!(
                "variable '{}' (for whisper.cpp's '{}') is missing",
                self.var, spec.name
            ),
        })?;
        if !var.dtype.is_float() {
            return Err(ConvertError::Model {
                path: model.path.clone(),
                reason: format!(
                    "variable '{}' is {:?}: CTranslate2-quantised models (int8/int16) are not \
                     supported; use a float16 or float32 conversion",
                    var.name, var.dtype
                ),
            });
        }
        let mut want = spec.numpy_shape();
        want.retain(|&d| d != 1);
        if let Some(first) = want.first_mut() {
            *first *= self.parts;
        }
        let mut have = var.shape.clone();
        have.retain(|&d| d != 1);
        if have != want {
            let what = if self.parts > 1 {
                format!(
                    "{want:?} ({} stacked {:?} for '{}')",
                    self.parts,
                    spec.numpy_shape(),
                    spec.name
                )
            } else {
                format!("{want:?} (for '{}')", spec.name)
            };
            return Err(ConvertError::Shape {
                path: model.path.clone(),
                name: var.name.clone(),
                shape: var.shape.clone(),
                expected: what,
            });
        }
        Ok(var)
    }

    fn slice<'m>(&self, model: &'m Ct2Model, var: &Ct2Variable) -> &'m [u8] {
        let bytes = model.bytes(var);
        let n = bytes.len() / self.parts;
        &bytes[self.part * n..(self.part + 1) * n]
    }
}

/// CTranslate2 stores a zero bias for Whisper's bias-less keys in the fused projection;
/// whisper.cpp has no slot for it. Nonzero values would still be harmless (softmax ignores
/// a per-query constant), but they would mean the weights did not come from OpenAI's layout,
/// which is worth a line in the log.
fn log_dropped_key_bias(model: &Ct2Model, weight: &Ct2Variable, src: &Source) {
    let Some(bias_name) = weight
        .name
        .strip_suffix("/weight")
        .map(|s| format!("{s}/bias"))
    else {
        return;
    };
    let Some(bias) = model.get(&bias_name) else {
        return;
    };
    let part = Source {
        var: bias_name,
        ..src.clone()
    };
    let max = bias
        .dtype
        .to_f32(part.slice(model, bias))
        .into_iter()
        .fold(0f32, |m, v| m.max(v.abs()));
    if max != 0.0 {
        tracing::debug!(variable = %bias.name, max_abs = max, "dropped a nonzero key bias");
    }
}

/// whisper.cpp uses the token embedding as the output projection; a CTranslate2 model with
/// its own, different projection cannot be represented.
fn check_tied_projection(model: &Ct2Model) -> Result<(), ConvertError> {
    let (Some(proj), Some(emb)) = (
        model.get("decoder/projection/weight"),
        model.get("decoder/embeddings/weight"),
    ) else {
        return Ok(());
    };
    if proj.name != emb.name && model.bytes(proj) != model.bytes(emb) {
        return Err(ConvertError::Model {
            path: model.path.clone(),
            reason: "decoder/projection/weight differs from decoder/embeddings/weight; \
                     whisper.cpp needs them tied"
                .into(),
        });
    }
    Ok(())
}

/// Reads the hyper-parameters off the variables' shapes (CTranslate2's `config.json` does
/// not record them) and checks the architecture flags against what whisper.cpp implements.
pub fn hparams_of(model: &Ct2Model, precision: Precision) -> Result<HParams, ConvertError> {
    let path = &model.path;
    let bad = |reason: String| ConvertError::Model {
        path: path.clone(),
        reason,
    };
    if model.spec_name != "WhisperSpec" {
        return Err(bad(format!(
            "spec '{}' is not a Whisper model (expected WhisperSpec)",
            model.spec_name
        )));
    }
    let shape = |name: &str, rank: usize| -> Result<Vec<usize>, ConvertError> {
        let v = model
            .get(name)
            .ok_or_else(|| bad(format!("variable '{name}' is missing")))?;
        if v.shape.len() != rank {
            return Err(ConvertError::Shape {
                path: path.clone(),
                name: name.into(),
                shape: v.shape.clone(),
                expected: format!("rank {rank}"),
            });
        }
        Ok(v.shape.clone())
    };
    let to_i32 = |v: usize, what: &str| {
        i32::try_from(v).map_err(|_| bad(format!("{what} {v} is out of range")))
    };
    let enc_pos = shape("encoder/position_encodings/encodings", 2)?;
    let dec_pos = shape("decoder/position_encodings/encodings", 2)?;
    let emb = shape("decoder/embeddings/weight", 2)?;
    let conv1 = shape("encoder/conv1/weight", 3)?;
    let layers = |system: &str| {
        (0..)
            .take_while(|i| model.has_scope(&format!("{system}/layer_{i}")))
            .count()
    };
    let heads = |system: &str, state: usize| -> Result<i32, ConvertError> {
        let name = format!("{system}/num_heads");
        let n = match model.scalar_int(&name) {
            Some(n) => n,
            None => {
                tracing::warn!(variable = %name, "missing; assuming 64-wide heads");
                state as i64 / HEAD_DIM
            }
        };
        i32::try_from(n).map_err(|_| bad(format!("{name} is {n}")))
    };
    for (flag, want) in [
        ("decoder/pre_norm", 1),
        ("decoder/scale_embeddings", 0),
        ("decoder/alibi", 0),
    ] {
        if let Some(v) = model.scalar_int(flag) {
            if v != want {
                return Err(bad(format!(
                    "{flag} is {v}; whisper.cpp only implements Whisper's architecture ({want})"
                )));
            }
        }
    }
    let hp = HParams {
        n_vocab: to_i32(emb[0], "n_vocab")?,
        n_audio_ctx: to_i32(enc_pos[0], "n_audio_ctx")?,
        n_audio_state: to_i32(enc_pos[1], "n_audio_state")?,
        n_audio_head: heads("encoder", enc_pos[1])?,
        n_audio_layer: to_i32(layers("encoder"), "n_audio_layer")?,
        n_text_ctx: to_i32(dec_pos[0], "n_text_ctx")?,
        n_text_state: to_i32(dec_pos[1], "n_text_state")?,
        n_text_head: heads("decoder", dec_pos[1])?,
        n_text_layer: to_i32(layers("decoder"), "n_text_layer")?,
        n_mels: to_i32(conv1[1], "n_mels")?,
        ftype: precision.file_ftype(),
    };
    hp.validate()
        .map_err(|r| bad(format!("unusable hyper-parameters {hp:?}: {r}")))?;
    Ok(hp)
}

/// Special-token ids as whisper.cpp computes them from `n_vocab` (`whisper_vocab` and the
/// multilingual shift in `whisper_model_load`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecialTokens {
    pub eot: usize,
    pub sot: usize,
    pub transcribe: usize,
    pub no_timestamps: usize,
    pub timestamp_begin: usize,
}

impl SpecialTokens {
    pub fn for_n_vocab(n_vocab: i32) -> Self {
        let multilingual = n_vocab >= 51865;
        let num_languages = n_vocab - 51765 - i32::from(multilingual);
        let (shift, dt) = if multilingual {
            (1, (num_languages - 98).max(0) as usize)
        } else {
            (0, 0)
        };
        Self {
            eot: 50256 + shift,
            sot: 50257 + shift,
            transcribe: 50358 + dt,
            no_timestamps: 50362 + dt,
            timestamp_begin: 50363 + dt,
        }
    }
}

/// The ggml vocabulary: tokens `0..eot` as raw bytes, exactly what whisper's own
/// `convert-pt-to-ggml.py` writes from the tiktoken file. Also checks that this vocabulary
/// puts the special tokens where whisper.cpp will look for them, since whisper.cpp never
/// reads their names.
pub fn ggml_vocabulary(
    tokens: &[String],
    hp: &HParams,
    path: &Path,
) -> Result<Vec<Vec<u8>>, ConvertError> {
    let bad = |reason: String| ConvertError::Vocabulary {
        path: path.to_owned(),
        reason,
    };
    if tokens.len() != hp.n_vocab as usize {
        return Err(bad(format!(
            "{} tokens, but the model's embedding has {} rows",
            tokens.len(),
            hp.n_vocab
        )));
    }
    let special = SpecialTokens::for_n_vocab(hp.n_vocab);
    for (id, want) in [
        (special.eot, "<|endoftext|>"),
        (special.sot, "<|startoftranscript|>"),
        (special.transcribe, "<|transcribe|>"),
        (special.no_timestamps, "<|notimestamps|>"),
        (special.timestamp_begin, "<|0.00|>"),
    ] {
        if tokens[id] != want {
            return Err(bad(format!(
                "token {id} (line {}) is '{}', but whisper.cpp treats id {id} as {want}",
                id + 1,
                tokens[id]
            )));
        }
    }
    tokens[..special.eot]
        .iter()
        .enumerate()
        .map(|(id, t)| {
            token_to_bytes(t).ok_or_else(|| {
                bad(format!(
                    "token {id} (line {}) '{t}' is not in GPT-2's byte-level alphabet",
                    id + 1
                ))
            })
        })
        .collect()
}

/// `config.json` and `vocabulary.txt` must describe the same tokenizer: every language id
/// names a `<|xx|>` token.
fn check_config(
    config: &ct2::Ct2Config,
    tokens: &[String],
    path: &Path,
) -> Result<(), ConvertError> {
    for &id in &config.lang_ids {
        let ok = tokens
            .get(id as usize)
            .is_some_and(|t| t.starts_with("<|") && t.ends_with("|>"));
        if !ok {
            return Err(ConvertError::Vocabulary {
                path: path.to_owned(),
                reason: format!(
                    "lang_ids lists token {id}, which vocabulary.txt does not have as a \
                     language token"
                ),
            });
        }
    }
    Ok(())
}

/// GPT-2's `bytes_to_unicode`: the 188 printable Latin-1 bytes stand for themselves and the
/// other 68 (controls, space, DEL, NBSP, soft hyphen) are given U+0100.. in byte order, so
/// every token is a visible string. `vocabulary.txt` is written in this alphabet.
pub fn byte_to_char_table() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut next = 0x100u32;
    for (b, slot) in table.iter_mut().enumerate() {
        *slot = if is_printable(b as u8) {
            char::from(b as u8)
        } else {
            let c = char::from_u32(next).unwrap_or(char::REPLACEMENT_CHARACTER);
            next += 1;
            c
        };
    }
    table
}

fn is_printable(b: u8) -> bool {
    matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF)
}

/// Inverse of [`byte_to_char_table`] for one character.
pub fn char_to_byte(c: char) -> Option<u8> {
    let u = c as u32;
    if u < 0x100 {
        return is_printable(u as u8).then_some(u as u8);
    }
    // The n-th non-printable byte: 0x00..=0x20, then 0x7F..=0xA0, then 0xAD.
    match u - 0x100 {
        n @ 0..=32 => Some(n as u8),
        n @ 33..=66 => Some((0x7F + (n - 33)) as u8),
        67 => Some(0xAD),
        _ => None,
    }
}

/// A `vocabulary.txt` token back to the bytes it stands for; `None` if it contains a
/// character outside the byte-level alphabet.
pub fn token_to_bytes(token: &str) -> Option<Vec<u8>> {
    token.chars().map(char_to_byte).collect()
}

/// Bytes to their `vocabulary.txt` spelling.
pub fn bytes_to_token(bytes: &[u8]) -> String {
    let table = byte_to_char_table();
    bytes.iter().map(|&b| table[b as usize]).collect()
}

/// The filterbank a ggml file of `n_mels` bins carries: [`mel_filters`] for whisper's
/// 400-point FFT at 16 kHz (80 bins for most models, 128 for large-v3 and turbo).
pub fn whisper_mel_filters(n_mels: i32) -> MelFilters {
    let n_mel = n_mels.max(0) as usize;
    MelFilters {
        n_mel,
        n_fft: N_FFT / 2 + 1,
        data: mel_filters(n_mel, N_FFT, SAMPLE_RATE),
    }
}

/// The mel filterbank of `librosa.filters.mel(sr, n_fft, n_mels)` with librosa's defaults
/// (Slaney mel scale, `htk=False`; Slaney area normalisation; 0 Hz to sr/2): the one OpenAI
/// ships as `mel_filters.npz` and whisper's converter copies into every ggml file. Computed
/// in f64 the way librosa does, rounded once to f32. Row-major `n_mels × (n_fft/2 + 1)`.
pub fn mel_filters(n_mels: usize, n_fft: usize, sample_rate: u32) -> Vec<f32> {
    // Slaney's scale: linear below 1 kHz, logarithmic above.
    const F_SP: f64 = 200.0 / 3.0;
    const MIN_LOG_HZ: f64 = 1000.0;
    const MIN_LOG_MEL: f64 = MIN_LOG_HZ / F_SP;
    let logstep = 6.4f64.ln() / 27.0;
    let hz_to_mel = |f: f64| {
        if f >= MIN_LOG_HZ {
            MIN_LOG_MEL + (f / MIN_LOG_HZ).ln() / logstep
        } else {
            f / F_SP
        }
    };
    let mel_to_hz = |m: f64| {
        if m >= MIN_LOG_MEL {
            MIN_LOG_HZ * (logstep * (m - MIN_LOG_MEL)).exp()
        } else {
            F_SP * m
        }
    };

    let n_bins = n_fft / 2 + 1;
    let sr = f64::from(sample_rate);
    // numpy.fft.rfftfreq(n_fft, 1/sr), computed the same way.
    let bin_step = 1.0 / (n_fft as f64 * (1.0 / sr));
    let fft_freqs: Vec<f64> = (0..n_bins).map(|k| k as f64 * bin_step).collect();
    // numpy.linspace(mel(0), mel(sr/2), n_mels + 2), then back to Hz.
    let (mel_lo, mel_hi) = (hz_to_mel(0.0), hz_to_mel(sr / 2.0));
    let n_points = n_mels + 2;
    let mel_step = (mel_hi - mel_lo) / (n_points - 1) as f64;
    let hz: Vec<f64> = (0..n_points)
        .map(|i| {
            let m = if i == n_points - 1 {
                mel_hi
            } else {
                mel_lo + i as f64 * mel_step
            };
            mel_to_hz(m)
        })
        .collect();

    let mut weights = Vec::with_capacity(n_mels * n_bins);
    for i in 0..n_mels {
        let (lo, mid, hi) = (hz[i], hz[i + 1], hz[i + 2]);
        let enorm = 2.0 / (hi - lo);
        for &f in &fft_freqs {
            let rising = -(lo - f) / (mid - lo);
            let falling = (hi - f) / (hi - mid);
            weights.push((rising.min(falling).max(0.0) * enorm) as f32);
        }
    }
    weights
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ct2::tests::{f16_bytes, write_model_bin};
    use crate::ggml::{inspect, ModelFileInfo};

    #[rustfmt::skip]
    mod mel_reference {
        // Generated by testdata/mel_reference.py from faster-whisper 1.2.1's
        // FeatureExtractor.get_mel_filters(16000, 400, 80), float64 values (shortest repr).
        pub const POINTS: [(usize, usize, f64); 20] = [
            (0, 1, 0.024862593984176087),
            (4, 5, 0.016899306431783816),
            (8, 9, 0.008936018879391546),
            (12, 12, 0.023889862657176797),
            (16, 16, 0.0218536815349792),
            (20, 20, 0.01389039398258697),
            (24, 23, 0.0189354875539814),
            (28, 28, 0.004762193862440573),
            (32, 32, 0.014853145171184367),
            (36, 36, 0.006065350444974491),
            (40, 43, 0.01473556574143909),
            (44, 52, 0.0010091040034667087),
            (48, 57, 0.003447454713363931),
            (52, 68, 0.008653006854042392),
            (56, 82, 0.0017961093868460642),
            (60, 90, 0.001434534354105327),
            (64, 109, 0.004859979047679789),
            (68, 131, 9.264904953156329e-05),
            (72, 142, 0.0003559796144170625),
            (79, 199, 0.00044875902758905584),
        ];
        /// Sum of each of the 80 rows.
        pub const ROW_SUMS: [f64; 80] = [
            0.024862593984176087, 0.024862593984176087, 0.02486259398417609, 0.024862593984176083,
            0.02486259398417609, 0.02486259398417609, 0.02486259398417609, 0.02486259398417609,
            0.02486259398417609, 0.02486259398417608, 0.0248625939841761, 0.02486259398417609,
            0.02486259398417609, 0.02588068454527485, 0.02583532531117542, 0.02486259398417605,
            0.024862593984176094, 0.024862593984176094, 0.02486259398417609, 0.02486259398417609,
            0.02486259398417609, 0.024862593984176087, 0.02486259398417609, 0.02486259398417609,
            0.024862593984176094, 0.024914435587623244, 0.02543282339112269, 0.025347691746778565,
            0.025259895363008208, 0.02507927747636448, 0.02481880923345417, 0.024490097651781534,
            0.024103514674733893, 0.02648386079632608, 0.025296075752776755, 0.023199915057545942,
            0.02698750668629811, 0.023507524421315307, 0.026231922210214573, 0.023394937379861095,
            0.026664860534783195, 0.024523787035533304, 0.02464064908957806, 0.02495032075347255,
            0.025116331904401386, 0.025156845166954208, 0.025088175060267705, 0.02492496002188644,
            0.024680319171280433, 0.02523522892439769, 0.025129429426288603, 0.024789992300027375,
            0.02489705333420543, 0.025391730212166785, 0.024833084595415392, 0.02495680837152213,
            0.02496133146139169, 0.024862290863656333, 0.02531572870623758, 0.024823766356571637,
            0.02510154118105604, 0.02485339138823935, 0.025032290025517823, 0.02508438152690031,
            0.02502610105306679, 0.024872197095273767, 0.025119465409222403, 0.02488178629563465,
            0.025036489448567973, 0.02506755045595946, 0.02499107844068179, 0.02490122995208663,
            0.02507821801456285, 0.02499012967645179, 0.024969926719277107, 0.025084813848021685,
            0.024923146913806704, 0.025015751780770194, 0.025022621742158677, 0.024925339738858847,
        ];
        /// Number of nonzero weights in each row.
        pub const ROW_NONZERO: [usize; 80] = [
            1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 2, 2, 2, 2, 2,
            2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 2, 3, 3, 3, 4,
            3, 3, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7,
            7, 8, 8, 8, 8, 8, 9, 10, 10, 10, 10, 11, 11, 11, 13, 13, 13, 14, 14, 14,
        ];
        /// `get_mel_filters(16000, 400, 128)`: (row, col, value) and (row, row sum).
        pub const POINTS_128: [(usize, usize, f64); 4] = [
            (0, 1, 0.012373986332636965),
            (50, 31, 0.010725830262017993),
            (100, 102, 0.009409416247795765),
            (127, 195, 0.005041601675024642),
        ];
        pub const ROW_SUMS_128: [(usize, f64); 4] = [
            (0, 0.012373986332636965),
            (50, 0.0217647744526597),
            (100, 0.02529001787857137),
            (127, 0.02493604388376728),
        ];
    }

    fn assert_close(got: f64, want: f64, what: &str) {
        let tol = 1e-6 * want.abs().max(1e-30);
        assert!(
            (got - want).abs() <= tol,
            "{what}: got {got:e}, want {want:e}"
        );
    }

    #[test]
    fn mel_filterbank_matches_faster_whisper_reference() {
        let w = mel_filters(80, N_FFT, SAMPLE_RATE);
        assert_eq!(w.len(), 80 * 201);
        for &(r, c, v) in &mel_reference::POINTS {
            assert_close(f64::from(w[r * 201 + c]), v, &format!("filter[{r}][{c}]"));
        }
        for (r, &sum) in mel_reference::ROW_SUMS.iter().enumerate() {
            let row = &w[r * 201..(r + 1) * 201];
            assert_close(
                row.iter().map(|&x| f64::from(x)).sum(),
                sum,
                &format!("row {r} sum"),
            );
            let nonzero = row.iter().filter(|&&x| x != 0.0).count();
            assert_eq!(
                nonzero,
                mel_reference::ROW_NONZERO[r],
                "row {r} nonzero count"
            );
        }
        assert!(w.iter().all(|&x| x >= 0.0));

        let w = mel_filters(128, N_FFT, SAMPLE_RATE);
        assert_eq!(w.len(), 128 * 201);
        for &(r, c, v) in &mel_reference::POINTS_128 {
            assert_close(
                f64::from(w[r * 201 + c]),
                v,
                &format!("128-bin filter[{r}][{c}]"),
            );
        }
        for &(r, sum) in &mel_reference::ROW_SUMS_128 {
            let got = w[r * 201..(r + 1) * 201]
                .iter()
                .map(|&x| f64::from(x))
                .sum();
            assert_close(got, sum, &format!("128-bin row {r} sum"));
        }
    }

    #[test]
    fn byte_alphabet_round_trips_every_byte() {
        let table = byte_to_char_table();
        let mut seen = std::collections::HashSet::new();
        for b in 0..=255u8 {
            let c = table[b as usize];
            assert!(seen.insert(c), "{c:?} used twice");
            assert!(
                !c.is_whitespace() && !c.is_control(),
                "byte {b:#x} -> {c:?}"
            );
            assert_eq!(char_to_byte(c), Some(b));
        }
        assert_eq!(table[b' ' as usize], 'Ġ');
        assert_eq!(table[b'\n' as usize], 'Ċ');
        assert_eq!(table[0xAD], 'Ń');
        assert_eq!(table[b'A' as usize], 'A');
        assert_eq!(char_to_byte(' '), None);
        assert_eq!(char_to_byte('Ģ'), Some(0x80));
        assert_eq!(char_to_byte('Ĭ'), Some(0x8A));
        assert_eq!(char_to_byte('ń'), None);
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(token_to_bytes(&bytes_to_token(&all)), Some(all));
        assert_eq!(token_to_bytes("Ġthe").as_deref(), Some(&b" the"[..]));
        assert_eq!(
            token_to_bytes("âĢĻ").as_deref(),
            Some("\u{2019}".as_bytes())
        );
        assert_eq!(
            token_to_bytes("<|endoftext|>").as_deref(),
            Some(&b"<|endoftext|>"[..])
        );
        assert_eq!(token_to_bytes("日本"), None);
    }

    #[test]
    fn special_token_ids_follow_whisper_cpp() {
        let en = SpecialTokens::for_n_vocab(51864);
        assert_eq!(
            (en.eot, en.sot, en.transcribe, en.timestamp_begin),
            (50256, 50257, 50358, 50363)
        );
        let multi = SpecialTokens::for_n_vocab(51865);
        assert_eq!(
            (
                multi.eot,
                multi.sot,
                multi.transcribe,
                multi.timestamp_begin
            ),
            (50257, 50258, 50359, 50364)
        );
        let v3 = SpecialTokens::for_n_vocab(51866);
        assert_eq!(
            (v3.eot, v3.transcribe, v3.no_timestamps, v3.timestamp_begin),
            (50257, 50360, 50364, 50365)
        );
    }

    // ---- a small synthetic CTranslate2 model ----

    const STATE: usize = 4;
    const N_VOCAB: usize = 51864;

    /// Distinct values, exact in f16 (multiples of 1/64 below 32), different per variable.
    fn values(seed: usize, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((seed * 7919 + i * 31) % 2001) as f32 / 64.0 - 15.625)
            .collect()
    }

    struct Synthetic {
        vars: Vec<(String, Vec<usize>, Ct2Dtype, Vec<u8>)>,
    }

    impl Synthetic {
        fn new(audio_layers: usize, text_layers: usize) -> Self {
            let mut s = Self { vars: Vec::new() };
            let n = STATE;
            s.f16("encoder/conv1/weight", &[n, 2, 3]);
            s.f16("encoder/conv1/bias", &[n]);
            s.f16("encoder/conv2/weight", &[n, n, 3]);
            s.f16("encoder/conv2/bias", &[n]);
            s.f16("encoder/position_encodings/encodings", &[6, n]);
            s.int("encoder/num_heads", 2);
            for i in 0..audio_layers {
                s.layer(&format!("encoder/layer_{i}"), false);
            }
            s.norm("encoder/layer_norm");
            s.f16("decoder/embeddings/weight", &[N_VOCAB, n]);
            s.f16("decoder/position_encodings/encodings", &[5, n]);
            s.int("decoder/num_heads", 2);
            s.vars
                .push(("decoder/pre_norm".into(), vec![], Ct2Dtype::I8, vec![1]));
            s.vars.push((
                "decoder/scale_embeddings".into(),
                vec![],
                Ct2Dtype::I8,
                vec![0],
            ));
            for i in 0..text_layers {
                s.layer(&format!("decoder/layer_{i}"), true);
            }
            s.norm("decoder/layer_norm");
            s
        }

        fn f16(&mut self, name: &str, shape: &[usize]) {
            let n = shape.iter().product();
            let data = f16_bytes(&values(self.vars.len(), n));
            self.vars
                .push((name.into(), shape.to_vec(), Ct2Dtype::F16, data));
        }

        fn int(&mut self, name: &str, v: i16) {
            self.vars
                .push((name.into(), vec![], Ct2Dtype::I16, v.to_le_bytes().to_vec()));
        }

        fn norm(&mut self, scope: &str) {
            self.f16(&format!("{scope}/gamma"), &[STATE]);
            self.f16(&format!("{scope}/beta"), &[STATE]);
        }

        fn linear(&mut self, scope: &str, out: usize, inp: usize) {
            self.f16(&format!("{scope}/weight"), &[out, inp]);
            self.f16(&format!("{scope}/bias"), &[out]);
        }

        fn layer(&mut self, scope: &str, cross: bool) {
            let n = STATE;
            self.norm(&format!("{scope}/self_attention/layer_norm"));
            self.linear(&format!("{scope}/self_attention/linear_0"), 3 * n, n);
            self.linear(&format!("{scope}/self_attention/linear_1"), n, n);
            if cross {
                self.norm(&format!("{scope}/attention/layer_norm"));
                self.linear(&format!("{scope}/attention/linear_0"), n, n);
                self.linear(&format!("{scope}/attention/linear_1"), 2 * n, n);
                self.linear(&format!("{scope}/attention/linear_2"), n, n);
            }
            self.norm(&format!("{scope}/ffn/layer_norm"));
            self.linear(&format!("{scope}/ffn/linear_0"), 4 * n, n);
            self.linear(&format!("{scope}/ffn/linear_1"), n, 4 * n);
        }

        fn get(&self, name: &str) -> Vec<f32> {
            let (_, _, dtype, data) = self.vars.iter().find(|v| v.0 == name).unwrap();
            dtype.to_f32(data)
        }

        fn edit(
            mut self,
            name: &str,
            f: impl FnOnce(&mut (String, Vec<usize>, Ct2Dtype, Vec<u8>)),
        ) -> Self {
            let v = self.vars.iter_mut().find(|v| v.0 == name).unwrap();
            f(v);
            self
        }

        fn write(&self, dir: &Path) {
            let vars: Vec<(&str, Vec<usize>, Ct2Dtype, Vec<u8>)> = self
                .vars
                .iter()
                .map(|(n, s, d, b)| (n.as_str(), s.clone(), *d, b.clone()))
                .collect();
            let bin = write_model_bin(
                &vars,
                &[("decoder/projection/weight", "decoder/embeddings/weight")],
            );
            std::fs::write(dir.join("model.bin"), bin).unwrap();
            std::fs::write(
                dir.join("vocabulary.txt"),
                synthetic_vocabulary().join("\n") + "\n",
            )
            .unwrap();
        }
    }

    /// An English-only Whisper vocabulary layout: byte-level tokens, then the specials.
    fn synthetic_vocabulary() -> Vec<String> {
        let mut v: Vec<String> = (0..50256)
            .map(|id| match id {
                0..=255 => bytes_to_token(&[id as u8]),
                _ => bytes_to_token(format!(" tok{id}").as_bytes()),
            })
            .collect();
        v.push("<|endoftext|>".into());
        v.push("<|startoftranscript|>".into());
        v.extend((0..99).map(|i| format!("<|l{i}|>")));
        for s in [
            "translate",
            "transcribe",
            "startoflm",
            "startofprev",
            "nocaptions",
            "notimestamps",
        ] {
            v.push(format!("<|{s}|>"));
        }
        v.extend((0..=1500).map(|i| format!("<|{:.2}|>", f64::from(i) * 0.02)));
        assert_eq!(v.len(), N_VOCAB);
        v
    }

    /// Converts `dir` to a file beside it; returns the file, the report and the progress calls.
    fn convert_to_file(
        dir: &Path,
        precision: Precision,
    ) -> (PathBuf, ConvertReport, Vec<(u64, u64)>) {
        let out_path = dir.join(format!("out-{precision}.ggml.bin"));
        let mut out = std::fs::File::create(&out_path).unwrap();
        let mut calls = Vec::new();
        let report = convert_ct2_dir(dir, &mut out, &ConvertOptions { precision }, &mut |d, t| {
            calls.push((d, t))
        })
        .unwrap();
        (out_path, report, calls)
    }

    /// A tensor's values from a converted file.
    fn tensor_f32(path: &Path, info: &ModelFileInfo, name: &str) -> (Vec<usize>, Vec<f32>) {
        let t = info
            .tensors
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("no {name}"));
        let bytes = std::fs::read(path).unwrap();
        let data = &bytes[t.offset as usize..(t.offset + t.nbytes) as usize];
        let values = match t.ty {
            Precision::F32 => Ct2Dtype::F32.to_f32(data),
            Precision::F16 => Ct2Dtype::F16.to_f32(data),
            other => panic!("{other}"),
        };
        (t.ne.clone(), values)
    }

    #[test]
    fn fused_projections_are_split_into_whisper_tensors() {
        let dir = tempfile::tempdir().unwrap();
        let syn = Synthetic::new(1, 2);
        syn.write(dir.path());
        let (path, report, calls) = convert_to_file(dir.path(), Precision::F16);
        let info = inspect(&path).unwrap();
        assert_eq!(report.tensors_written, info.tensors.len());
        assert_eq!(report.tensors_written, 11 + 15 + 2 * 24);
        assert_eq!(report.bytes_written, info.file_len);
        assert_eq!(report.vocab_written, 50256);
        assert!(!report.multilingual);
        assert_eq!(
            report.hparams,
            HParams {
                n_vocab: 51864,
                n_audio_ctx: 6,
                n_audio_state: 4,
                n_audio_head: 2,
                n_audio_layer: 1,
                n_text_ctx: 5,
                n_text_state: 4,
                n_text_head: 2,
                n_text_layer: 2,
                n_mels: 2,
                ftype: 1
            }
        );
        let total: u64 = info.tensors.iter().map(|t| t.nbytes).sum();
        assert_eq!(calls.first(), Some(&(0, total)));
        assert_eq!(calls.last(), Some(&(total, total)));
        assert!(calls.windows(2).all(|w| w[0].0 <= w[1].0));

        let n = STATE;
        let t = |name: &str| tensor_f32(&path, &info, name);
        let rows = |v: Vec<f32>, from: usize, to: usize| v[from * n..to * n].to_vec();
        let qkv_w = syn.get("decoder/layer_1/self_attention/linear_0/weight");
        let qkv_b = syn.get("decoder/layer_1/self_attention/linear_0/bias");
        assert_eq!(
            t("decoder.blocks.1.attn.query.weight"),
            (vec![n, n], rows(qkv_w.clone(), 0, n))
        );
        assert_eq!(
            t("decoder.blocks.1.attn.key.weight"),
            (vec![n, n], rows(qkv_w.clone(), n, 2 * n))
        );
        assert_eq!(
            t("decoder.blocks.1.attn.value.weight"),
            (vec![n, n], rows(qkv_w, 2 * n, 3 * n))
        );
        assert_eq!(
            t("decoder.blocks.1.attn.query.bias"),
            (vec![n], qkv_b[..n].to_vec())
        );
        assert_eq!(
            t("decoder.blocks.1.attn.value.bias"),
            (vec![n], qkv_b[2 * n..].to_vec())
        );
        let kv_w = syn.get("decoder/layer_0/attention/linear_1/weight");
        let kv_b = syn.get("decoder/layer_0/attention/linear_1/bias");
        assert_eq!(
            t("decoder.blocks.0.cross_attn.key.weight").1,
            rows(kv_w.clone(), 0, n)
        );
        assert_eq!(
            t("decoder.blocks.0.cross_attn.value.weight").1,
            rows(kv_w, n, 2 * n)
        );
        assert_eq!(
            t("decoder.blocks.0.cross_attn.value.bias").1,
            kv_b[n..].to_vec()
        );
        assert_eq!(
            t("decoder.blocks.0.cross_attn.query.weight").1,
            syn.get("decoder/layer_0/attention/linear_0/weight")
        );
        assert_eq!(
            t("decoder.blocks.0.cross_attn.out.bias").1,
            syn.get("decoder/layer_0/attention/linear_2/bias")
        );
        assert_eq!(
            t("encoder.blocks.0.attn.out.weight").1,
            syn.get("encoder/layer_0/self_attention/linear_1/weight")
        );
        assert_eq!(
            t("encoder.blocks.0.mlp.0.weight"),
            (
                vec![n, 4 * n],
                syn.get("encoder/layer_0/ffn/linear_0/weight")
            )
        );
        assert_eq!(
            t("encoder.blocks.0.mlp.2.weight"),
            (
                vec![4 * n, n],
                syn.get("encoder/layer_0/ffn/linear_1/weight")
            )
        );
        assert_eq!(
            t("decoder.blocks.1.cross_attn_ln.weight").1,
            syn.get("decoder/layer_1/attention/layer_norm/gamma")
        );
        assert_eq!(
            t("decoder.blocks.1.mlp_ln.bias").1,
            syn.get("decoder/layer_1/ffn/layer_norm/beta")
        );
        assert_eq!(
            t("encoder.ln_post.bias").1,
            syn.get("encoder/layer_norm/beta")
        );
        assert_eq!(
            t("decoder.ln.weight").1,
            syn.get("decoder/layer_norm/gamma")
        );
        assert_eq!(
            t("encoder.conv1.weight"),
            (vec![3, 2, n], syn.get("encoder/conv1/weight"))
        );
        assert_eq!(
            t("encoder.conv2.bias"),
            (vec![1, n], syn.get("encoder/conv2/bias"))
        );
        assert_eq!(
            t("encoder.positional_embedding"),
            (vec![n, 6], syn.get("encoder/position_encodings/encodings"))
        );
        assert_eq!(
            t("decoder.token_embedding.weight"),
            (vec![n, N_VOCAB], syn.get("decoder/embeddings/weight"))
        );
        let ty = |name: &str| info.tensors.iter().find(|t| t.name == name).unwrap().ty;
        assert_eq!(ty("encoder.conv2.bias"), Precision::F32);
        assert_eq!(ty("decoder.positional_embedding"), Precision::F32);
        assert_eq!(ty("decoder.blocks.0.attn_ln.weight"), Precision::F32);
        assert_eq!(ty("decoder.blocks.0.attn.key.weight"), Precision::F16);
        assert_eq!(ty("encoder.conv1.weight"), Precision::F16);

        // F32 output: same values, all F32.
        let (path32, report32, _) = convert_to_file(dir.path(), Precision::F32);
        let info32 = inspect(&path32).unwrap();
        assert_eq!(report32.hparams.ftype, 0);
        assert!(info32.tensors.iter().all(|t| t.ty == Precision::F32));
        assert_eq!(
            tensor_f32(&path32, &info32, "decoder.blocks.1.attn.key.weight"),
            t("decoder.blocks.1.attn.key.weight")
        );
    }

    #[test]
    fn quantised_conversion_needs_rows_of_whole_blocks_and_writes_nothing_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        Synthetic::new(1, 1).write(dir.path());
        let mut out = Vec::new();
        let e = convert_ct2_dir(
            dir.path(),
            &mut out,
            &ConvertOptions {
                precision: Precision::Q8_0,
            },
            &mut |_, _| {},
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("'encoder.blocks.0.attn.query.weight' has rows of 4 values")
                && e.ends_with("cannot be q8_0"),
            "{e}"
        );
        assert!(out.is_empty());
        // The same model converted to F16 cannot be quantised afterwards either.
        let (f16, _, _) = convert_to_file(dir.path(), Precision::F16);
        let e = crate::quantise::quantise_model(&f16, &mut out, Precision::Q5_1, &mut |_, _| {})
            .unwrap_err();
        assert!(
            matches!(
                e,
                crate::quantise::QuantiseError::RowNotWholeBlocks { row: 4, .. }
            ),
            "{e}"
        );
        assert!(out.is_empty());
    }

    #[test]
    fn vocabulary_header_holds_the_byte_tokens_below_endoftext() {
        let dir = tempfile::tempdir().unwrap();
        Synthetic::new(1, 1).write(dir.path());
        let (path, _, _) = convert_to_file(dir.path(), Precision::F16);
        let tokens = read_ggml_vocab(&path, 2);
        assert_eq!(tokens.len(), 50256);
        assert_eq!(tokens[32], b" ");
        assert_eq!(tokens[10], b"\n");
        assert_eq!(tokens[300], b" tok300");
    }

    /// The vocabulary block of a ggml file.
    fn read_ggml_vocab(path: &Path, n_mel: usize) -> Vec<Vec<u8>> {
        let bytes = std::fs::read(path).unwrap();
        let i32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let mut at = 4 + 11 * 4 + 8 + n_mel * 201 * 4;
        let n = i32_at(at);
        at += 4;
        (0..n)
            .map(|_| {
                let len = i32_at(at);
                at += 4 + len;
                bytes[at - len..at].to_vec()
            })
            .collect()
    }

    fn convert_err(syn: Synthetic, vocab: Option<Vec<String>>) -> String {
        let dir = tempfile::tempdir().unwrap();
        syn.write(dir.path());
        if let Some(v) = vocab {
            std::fs::write(dir.path().join("vocabulary.txt"), v.join("\n") + "\n").unwrap();
        }
        let mut out = Vec::new();
        let e = convert_ct2_dir(
            dir.path(),
            &mut out,
            &ConvertOptions::default(),
            &mut |_, _| {},
        )
        .expect_err("conversion should fail");
        assert!(
            out.is_empty(),
            "nothing is written before validation passes"
        );
        let msg = e.to_string();
        assert!(msg.starts_with(&dir.path().display().to_string()), "{msg}");
        msg
    }

    #[test]
    fn bad_inputs_fail_before_writing_with_the_file_and_variable_named() {
        let msg = convert_err(
            Synthetic::new(1, 1).edit("decoder/layer_0/self_attention/linear_0/weight", |v| {
                v.1 = vec![4 * STATE, STATE * 3 / 4];
            }),
            None,
        );
        assert!(msg.contains("model.bin: variable 'decoder/layer_0/self_attention/linear_0/weight' has shape [16, 3], expected [12, 4]"), "{msg}");

        let msg = convert_err(
            Synthetic::new(1, 1).edit("encoder/conv1/weight", |v| v.1 = vec![STATE, 6]),
            None,
        );
        assert!(
            msg.contains("variable 'encoder/conv1/weight' has shape [4, 6], expected rank 3"),
            "{msg}"
        );

        let mut syn = Synthetic::new(1, 1);
        syn.vars
            .retain(|v| v.0 != "encoder/layer_0/ffn/linear_1/bias");
        let msg = convert_err(syn, None);
        assert!(msg.contains("variable 'encoder/layer_0/ffn/linear_1/bias' (for whisper.cpp's 'encoder.blocks.0.mlp.2.bias') is missing"), "{msg}");

        let msg = convert_err(
            Synthetic::new(1, 1).edit("encoder/layer_0/ffn/linear_0/weight", |v| {
                v.2 = Ct2Dtype::I8;
                v.3.truncate(v.3.len() / 2);
            }),
            None,
        );
        assert!(
            msg.contains("not supported; use a float16 or float32 conversion"),
            "{msg}"
        );

        let msg = convert_err(
            Synthetic::new(1, 1).edit("decoder/scale_embeddings", |v| v.3 = vec![1]),
            None,
        );
        assert!(msg.contains("decoder/scale_embeddings is 1"), "{msg}");

        let mut vocab = synthetic_vocabulary();
        vocab.swap(50256, 50257);
        let msg = convert_err(Synthetic::new(1, 1), Some(vocab));
        assert!(
            msg.contains("vocabulary.txt: token 50256 (line 50257) is '<|startoftranscript|>'"),
            "{msg}"
        );

        let mut vocab = synthetic_vocabulary();
        vocab[1000] = "日本".into();
        let msg = convert_err(Synthetic::new(1, 1), Some(vocab));
        assert!(msg.contains("vocabulary.txt: token 1000 (line 1001) '日本' is not in GPT-2's byte-level alphabet"), "{msg}");

        let mut vocab = synthetic_vocabulary();
        vocab.pop();
        let msg = convert_err(Synthetic::new(1, 1), Some(vocab));
        assert!(
            msg.contains("51863 tokens, but the model's embedding has 51864 rows"),
            "{msg}"
        );

        let dir = tempfile::tempdir().unwrap();
        let e = convert_ct2_dir(
            dir.path(),
            &mut Vec::new(),
            &ConvertOptions {
                precision: Precision::Q4_0,
            },
            &mut |_, _| {},
        );
        assert!(matches!(
            e,
            Err(ConvertError::UnsupportedPrecision(Precision::Q4_0))
        ));
        let e = convert_ct2_dir(
            dir.path(),
            &mut Vec::new(),
            &ConvertOptions::default(),
            &mut |_, _| {},
        )
        .unwrap_err();
        assert!(e.to_string().contains("model.bin"), "{e}");
    }

    #[test]
    fn every_whisper_cpp_tensor_has_a_ct2_source() {
        let hp = HParams::base(1);
        let specs = ggml::expected_tensors(&hp).unwrap();
        let mut sources = std::collections::HashSet::new();
        for s in &specs {
            let src = Source::of(&s.name).unwrap_or_else(|| panic!("no source for {}", s.name));
            assert!(
                sources.insert((src.var.clone(), src.part)),
                "{} reuses {src:?}",
                s.name
            );
        }
        assert_eq!(Source::of("encoder.blocks.0.attn.key.bias"), None);
        assert_eq!(Source::of("encoder.blocks.0.cross_attn.query.weight"), None);
        assert_eq!(
            Source::of("decoder.blocks.5.cross_attn.value.bias"),
            Some(Source {
                var: "decoder/layer_5/attention/linear_1/bias".into(),
                part: 1,
                parts: 2
            })
        );
    }

    // ---- the real faster-whisper models ----

    fn real_dir(var: &str, default: &str) -> Option<PathBuf> {
        let dir = std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from);
        if dir.join("model.bin").is_file() {
            Some(dir)
        } else {
            eprintln!(
                "skipped: no CTranslate2 model at {} (set {var})",
                dir.display()
            );
            None
        }
    }

    /// Converts a real model, checks it with `inspect` and returns what it found.
    fn convert_real(dir: &Path) -> (tempfile::TempDir, PathBuf, ConvertReport, ModelFileInfo) {
        let out_dir = tempfile::tempdir().unwrap();
        let path = out_dir.path().join("model.ggml.bin");
        let mut out = std::fs::File::create(&path).unwrap();
        let mut last = (0, 0);
        let report = convert_ct2_dir(dir, &mut out, &ConvertOptions::default(), &mut |d, t| {
            last = (d, t)
        })
        .unwrap();
        drop(out);
        let info = inspect(&path).unwrap();
        assert_eq!(last.0, last.1);
        assert_eq!(last.1, info.tensors.iter().map(|t| t.nbytes).sum::<u64>());
        assert_eq!(report.bytes_written, info.file_len);
        assert_eq!(report.hparams, info.hparams);
        (out_dir, path, report, info)
    }

    /// CTranslate2 keeps a slot for Whisper's missing key bias in each fused projection; in
    /// faster-whisper's conversions it is exactly zero, so dropping it changes nothing.
    fn assert_key_bias_slots_are_zero(model: &Ct2Model, layers: usize, decoder: bool) {
        let system = if decoder { "decoder" } else { "encoder" };
        for i in 0..layers {
            let mut fused = vec![(
                format!("{system}/layer_{i}/self_attention/linear_0/bias"),
                1,
                3,
            )];
            if decoder {
                fused.push((format!("{system}/layer_{i}/attention/linear_1/bias"), 0, 2));
            }
            for (name, part, parts) in fused {
                let src = Source {
                    var: name.clone(),
                    part,
                    parts,
                };
                let v = model.get(&name).unwrap();
                assert!(
                    v.dtype
                        .to_f32(src.slice(model, v))
                        .iter()
                        .all(|&x| x == 0.0),
                    "{name}"
                );
            }
        }
    }

    #[test]
    fn converts_real_tiny_en() {
        let Some(dir) = real_dir("CALLSCRIBE_CT2_TINY_EN", "/tmp/ct2/tiny.en") else {
            return;
        };
        let (_tmp, path, report, info) = convert_real(&dir);
        assert_eq!(info.hparams, HParams::tiny_en(1));
        assert!(!report.multilingual);
        assert_eq!((info.n_mel, info.n_fft, info.vocab_len), (80, 201, 50256));
        assert_eq!(info.tensors.len(), 11 + 15 * 4 + 24 * 4);
        let ne = |name: &str| {
            info.tensors
                .iter()
                .find(|t| t.name == name)
                .unwrap()
                .ne
                .clone()
        };
        assert_eq!(ne("encoder.conv1.weight"), vec![3, 80, 384]);
        assert_eq!(ne("encoder.conv1.bias"), vec![1, 384]);
        assert_eq!(ne("encoder.positional_embedding"), vec![384, 1500]);
        assert_eq!(ne("decoder.token_embedding.weight"), vec![384, 51864]);
        assert_eq!(ne("decoder.blocks.3.mlp.0.weight"), vec![384, 1536]);
        // whisper.cpp's own ggml-tiny.en.bin is 77,704,715 bytes (models/catalogue.toml). It
        // was converted from GPT-2's vocab.json, which also lists "<|endoftext|>" (4 + 13
        // bytes); today's convert-pt-to-ggml.py (tiktoken) and we stop below it, so that
        // whisper.cpp names it "[_EOT_]" like every other special token.
        assert_eq!(info.file_len, 77_704_715 - (4 + 13));

        let tokens = read_ggml_vocab(&path, 80);
        assert_eq!(tokens[262], b" the");
        assert_eq!(tokens[220], b" ");
        assert_eq!(
            tokens[447],
            [0xE2, 0x80],
            "half a UTF-8 sequence stays raw bytes"
        );
        assert_eq!(tokens[2634], "é".as_bytes());
        assert_eq!(tokens[50255], b" gazed");

        let model = Ct2Model::read(&dir.join("model.bin")).unwrap();
        assert_key_bias_slots_are_zero(&model, 4, false);
        assert_key_bias_slots_are_zero(&model, 4, true);
        // F16 weights are copied bit for bit; F32 tensors are the exact f16 values.
        let src = model
            .get("decoder/layer_2/self_attention/linear_0/weight")
            .unwrap();
        let want = src
            .dtype
            .to_f32(&model.bytes(src)[src.len / 3..2 * src.len / 3]);
        assert_eq!(
            tensor_f32(&path, &info, "decoder.blocks.2.attn.key.weight").1,
            want
        );
        let src = model.get("encoder/position_encodings/encodings").unwrap();
        assert_eq!(
            tensor_f32(&path, &info, "encoder.positional_embedding").1,
            src.dtype.to_f32(model.bytes(src))
        );

        // Converting straight to q8_0 gives the same file as quantising the f16 conversion.
        let mut direct = Vec::new();
        convert_ct2_dir(
            &dir,
            &mut direct,
            &ConvertOptions {
                precision: Precision::Q8_0,
            },
            &mut |_, _| {},
        )
        .unwrap();
        let mut two_step = Vec::new();
        crate::quantise::quantise_model(&path, &mut two_step, Precision::Q8_0, &mut |_, _| {})
            .unwrap();
        assert!(direct == two_step, "direct q8_0 conversion differs");
    }

    #[test]
    fn converts_real_base() {
        let Some(dir) = real_dir("CALLSCRIBE_CT2_BASE", "/tmp/ct2/base") else {
            return;
        };
        let (_tmp, path, report, info) = convert_real(&dir);
        assert_eq!(info.hparams, HParams::base(1));
        assert!(report.multilingual && info.is_multilingual());
        assert_eq!(info.vocab_len, 50257);
        assert_eq!(info.tensors.len(), 11 + 15 * 6 + 24 * 6);
        // The same size as whisper.cpp's own ggml-base.bin (models/catalogue.toml).
        assert_eq!(info.file_len, 147_951_465);
        let tokens = read_ggml_vocab(&path, 80);
        assert_eq!(
            tokens[50256], b"",
            "the multilingual vocabulary's empty token"
        );
        assert_eq!(tokens[220], b" ");
        let model = Ct2Model::read(&dir.join("model.bin")).unwrap();
        assert_key_bias_slots_are_zero(&model, 6, false);
        assert_key_bias_slots_are_zero(&model, 6, true);
    }
}
