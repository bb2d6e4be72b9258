//! Hugging Face `transformers` Whisper checkpoints (`WhisperForConditionalGeneration`, the
//! form regional fine-tunes are published in) read as whisper.cpp's tensors, for the one ggml
//! writer ([`convert::write_whisper_ggml`]).
//!
//! A checkpoint directory holds the weights in safetensors (`model.safetensors`, or shards
//! listed by `model.safetensors.index.json`), `config.json` (the sizes), the tokenizer
//! (`tokenizer.json`, or `vocab.json` + `added_tokens.json`) and usually
//! `generation_config.json` (language tokens, alignment heads). The weights are OpenAI's under
//! other names (`q_proj` for `attn.query`, `fc1` for `mlp.0`, …): [`hf_module`] is the one
//! table between the two namings, used by the importer and by LoRA merging ([`crate::lora`]),
//! whose adapters name the Hugging Face modules they change.
//!
//! PyTorch pickles (`pytorch_model.bin`) are refused: unpickling runs arbitrary code, and
//! `transformers` converts them to safetensors in one call (the error says how).

use crate::convert::{
    self, ggml_vocabulary, ConvertError, ConvertOptions, ConvertReport, TensorValues,
    WhisperWeights,
};
use crate::ggml::{HParams, TensorSpec};
use crate::safetensors_file::{SafetensorsError, TensorFiles};
use crate::Precision;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum HfError {
    #[error(
        "{dir} holds only PyTorch weights ({file}); callscribe reads safetensors (loading a pickle \
         runs code). Convert it once with transformers: python -c \"from transformers import \
         WhisperForConditionalGeneration as M; M.from_pretrained('{dir}').save_pretrained('OUT', \
         safe_serialization=True)\", then copy the tokenizer files into OUT and import OUT"
    )]
    PytorchOnly { dir: PathBuf, file: String },
    #[error("{dir}: no model.safetensors or model.safetensors.index.json (is this a Hugging Face checkpoint directory?)")]
    NoWeights { dir: PathBuf },
    #[error(transparent)]
    Safetensors(#[from] SafetensorsError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    Tokenizer { path: PathBuf, reason: String },
}

/// The parts of `config.json` whisper.cpp's file needs or cannot represent otherwise.
#[derive(Debug, Clone, Deserialize)]
pub struct HfConfig {
    #[serde(default)]
    pub model_type: String,
    #[serde(default)]
    pub architectures: Vec<String>,
    pub vocab_size: i32,
    pub num_mel_bins: i32,
    pub d_model: i32,
    pub encoder_layers: i32,
    pub decoder_layers: i32,
    pub encoder_attention_heads: i32,
    pub decoder_attention_heads: i32,
    pub encoder_ffn_dim: i32,
    pub decoder_ffn_dim: i32,
    pub max_source_positions: i32,
    pub max_target_positions: i32,
    #[serde(default = "gelu")]
    pub activation_function: String,
    #[serde(default)]
    pub scale_embedding: bool,
}

fn gelu() -> String {
    "gelu".into()
}

/// `generation_config.json`: what it says about tokens, checked against the tokenizer.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct GenerationConfig {
    pub lang_to_id: BTreeMap<String, i64>,
    pub alignment_heads: Vec<(i64, i64)>,
}

/// The Hugging Face module (without the `model.` prefix) and parameter behind a whisper.cpp
/// tensor: `decoder.blocks.3.cross_attn.key.weight` → (`decoder.layers.3.encoder_attn.k_proj`,
/// `weight`). The one table between the two namings.
pub fn hf_module(ggml_name: &str) -> Option<(String, &str)> {
    let (system, rest) = ggml_name.split_once('.')?;
    if system != "encoder" && system != "decoder" {
        return None;
    }
    let decoder = system == "decoder";
    match rest {
        "positional_embedding" => return Some((format!("{system}.embed_positions"), "weight")),
        "token_embedding.weight" if decoder => {
            return Some(("decoder.embed_tokens".into(), "weight"))
        }
        _ => {}
    }
    let (module, param) = rest.rsplit_once('.')?;
    let Some(block) = module.strip_prefix("blocks.") else {
        let hf = match module {
            "conv1" | "conv2" if !decoder => module,
            "ln_post" if !decoder => "layer_norm",
            "ln" if decoder => "layer_norm",
            _ => return None,
        };
        return Some((format!("{system}.{hf}"), param));
    };
    let (layer, module) = block.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let hf = match module {
        "attn.query" => "self_attn.q_proj",
        "attn.key" => "self_attn.k_proj",
        "attn.value" => "self_attn.v_proj",
        "attn.out" => "self_attn.out_proj",
        "attn_ln" => "self_attn_layer_norm",
        "cross_attn.query" if decoder => "encoder_attn.q_proj",
        "cross_attn.key" if decoder => "encoder_attn.k_proj",
        "cross_attn.value" if decoder => "encoder_attn.v_proj",
        "cross_attn.out" if decoder => "encoder_attn.out_proj",
        "cross_attn_ln" if decoder => "encoder_attn_layer_norm",
        "mlp.0" => "fc1",
        "mlp.2" => "fc2",
        "mlp_ln" => "final_layer_norm",
        _ => return None,
    };
    Some((format!("{system}.layers.{layer}.{hf}"), param))
}

/// An opened checkpoint directory.
pub struct HfCheckpoint {
    pub dir: PathBuf,
    pub config: HfConfig,
    tensors: TensorFiles,
    /// `model.` for `WhisperForConditionalGeneration`, empty for a bare `WhisperModel`.
    prefix: &'static str,
}

fn read_json<T: serde::de::DeserializeOwned>(
    path: &Path,
    what: impl Fn(String) -> HfError,
) -> Result<T, HfError> {
    let text = std::fs::read(path).map_err(|source| HfError::Io {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_slice(&text).map_err(|e| what(e.to_string()))
}

impl HfCheckpoint {
    pub fn open(dir: &Path) -> Result<Self, HfError> {
        let single = dir.join("model.safetensors");
        let index = dir.join("model.safetensors.index.json");
        let tensors = if index.is_file() {
            TensorFiles::open_index(&index)?
        } else if single.is_file() {
            TensorFiles::open(&single)?
        } else {
            for file in [
                "pytorch_model.bin",
                "pytorch_model.bin.index.json",
                "tf_model.h5",
                "flax_model.msgpack",
            ] {
                if dir.join(file).is_file() {
                    return Err(HfError::PytorchOnly {
                        dir: dir.to_owned(),
                        file: file.into(),
                    });
                }
            }
            return Err(HfError::NoWeights {
                dir: dir.to_owned(),
            });
        };
        let config_path = dir.join("config.json");
        let config: HfConfig = read_json(&config_path, |reason| HfError::Config {
            path: config_path.clone(),
            reason: format!("not a Whisper config: {reason}"),
        })?;
        let bad = |reason: String| HfError::Config {
            path: config_path.clone(),
            reason,
        };
        if config.model_type != "whisper" {
            return Err(bad(format!(
                "model_type is '{}', not 'whisper'",
                config.model_type
            )));
        }
        if let Some(arch) = config.architectures.iter().find(|a| {
            !matches!(
                a.as_str(),
                "WhisperForConditionalGeneration" | "WhisperModel"
            )
        }) {
            return Err(bad(format!(
                "architecture {arch} is not WhisperForConditionalGeneration"
            )));
        }
        for (what, ffn) in [
            ("encoder_ffn_dim", config.encoder_ffn_dim),
            ("decoder_ffn_dim", config.decoder_ffn_dim),
        ] {
            if ffn != 4 * config.d_model {
                return Err(bad(format!(
                    "{what} is {ffn}, but whisper.cpp builds MLPs 4 × d_model ({}) wide",
                    4 * config.d_model
                )));
            }
        }
        if config.activation_function != "gelu" {
            return Err(bad(format!(
                "activation_function is '{}'; whisper.cpp implements gelu only",
                config.activation_function
            )));
        }
        if config.scale_embedding {
            return Err(bad(
                "scale_embedding is true; whisper.cpp implements Whisper's unscaled embeddings"
                    .into(),
            ));
        }
        let prefix = if tensors.get("model.decoder.embed_tokens.weight").is_some() {
            "model."
        } else {
            ""
        };
        Ok(Self {
            dir: dir.to_owned(),
            config,
            tensors,
            prefix,
        })
    }

    /// whisper.cpp's hyper-parameters for this checkpoint, its matrices in `precision`.
    pub fn hparams(&self, precision: Precision) -> Result<HParams, HfError> {
        let c = &self.config;
        let hp = HParams {
            n_vocab: c.vocab_size,
            n_audio_ctx: c.max_source_positions,
            n_audio_state: c.d_model,
            n_audio_head: c.encoder_attention_heads,
            n_audio_layer: c.encoder_layers,
            n_text_ctx: c.max_target_positions,
            n_text_state: c.d_model,
            n_text_head: c.decoder_attention_heads,
            n_text_layer: c.decoder_layers,
            n_mels: c.num_mel_bins,
            ftype: precision.file_ftype(),
        };
        hp.validate().map_err(|r| HfError::Config {
            path: self.dir.join("config.json"),
            reason: format!("whisper.cpp cannot run this model: {r}"),
        })?;
        Ok(hp)
    }

    /// The stored tensor for a Hugging Face name (without the `model.` prefix).
    pub fn tensor(&self, hf_name: &str) -> Option<crate::safetensors_file::StoredTensor<'_>> {
        self.tensors.get(&format!("{}{hf_name}", self.prefix))
    }

    /// whisper.cpp ties the output projection to the token embedding; a checkpoint whose
    /// `proj_out` differs cannot be represented.
    fn check_tied_projection(&self) -> Result<(), ConvertError> {
        let (Some(proj), Some(emb)) = (
            self.tensors.get("proj_out.weight"),
            self.tensor("decoder.embed_tokens.weight"),
        ) else {
            return Ok(());
        };
        if proj.dtype != emb.dtype || proj.bytes != emb.bytes {
            return Err(ConvertError::Model {
                path: proj.path.to_owned(),
                reason: "proj_out.weight differs from model.decoder.embed_tokens.weight; \
                         whisper.cpp needs them tied"
                    .into(),
            });
        }
        Ok(())
    }
}

impl WhisperWeights for HfCheckpoint {
    fn check(&self, spec: &TensorSpec) -> Result<(), ConvertError> {
        let (module, param) = hf_module(&spec.name).ok_or_else(|| ConvertError::Model {
            path: self.tensors.path().to_owned(),
            reason: format!("no Hugging Face name known for tensor '{}'", spec.name),
        })?;
        let name = format!("{}{module}.{param}", self.prefix);
        let t = self.tensors.get(&name).ok_or_else(|| ConvertError::Model {
            path: self.tensors.path().to_owned(),
            reason: format!(
                "tensor '{name}' (for whisper.cpp's '{}') is missing",
                spec.name
            ),
        })?;
        if t.float_type().is_none() {
            return Err(ConvertError::Model {
                path: t.path.to_owned(),
                reason: format!(
                    "tensor '{name}' is {:?}; only F32, F16 and BF16 weights can be converted \
                     (dequantise a quantised checkpoint first)",
                    t.dtype
                ),
            });
        }
        let squeeze = |s: &[usize]| s.iter().copied().filter(|&d| d != 1).collect::<Vec<_>>();
        if squeeze(t.shape) != squeeze(&spec.numpy_shape()) {
            return Err(ConvertError::Shape {
                path: t.path.to_owned(),
                name,
                shape: t.shape.to_vec(),
                expected: format!("{:?} (for '{}')", spec.numpy_shape(), spec.name),
            });
        }
        Ok(())
    }

    fn values(&self, spec: &TensorSpec) -> Result<TensorValues<'_>, ConvertError> {
        self.check(spec)?;
        let (module, param) = hf_module(&spec.name).expect("checked");
        let t = self.tensor(&format!("{module}.{param}")).expect("checked");
        Ok(TensorValues::Stored {
            ty: t.float_type().expect("checked"),
            bytes: t.bytes,
        })
    }

    fn origin(&self) -> &Path {
        self.tensors.path()
    }
}

/// Ids below `<|endoftext|>` a tokenizer may leave out before it is taken to be some other
/// tokenizer.
const MAX_TOKEN_GAPS: usize = 8;

/// The tokenizer's tokens by id (`n_vocab` of them, in GPT-2's byte-level spelling), from
/// `tokenizer.json` or `vocab.json` + `added_tokens.json`. Tokenizers saved before the
/// timestamp tokens were added to them stop at `<|notimestamps|>`; the timestamp tokens'
/// names are fixed (`<|0.00|>` … `<|30.00|>`), so missing ones after it are supplied.
pub fn read_tokens(dir: &Path, n_vocab: i32) -> Result<(Vec<String>, PathBuf), HfError> {
    let mut by_id: BTreeMap<i64, String> = BTreeMap::new();
    let tokenizer_json = dir.join("tokenizer.json");
    let vocab_json = dir.join("vocab.json");
    let path = if tokenizer_json.is_file() {
        #[derive(Deserialize)]
        struct Added {
            id: i64,
            content: String,
        }
        #[derive(Deserialize)]
        struct Model {
            vocab: BTreeMap<String, i64>,
        }
        #[derive(Deserialize)]
        struct Tokenizer {
            model: Model,
            #[serde(default)]
            added_tokens: Vec<Added>,
        }
        let t: Tokenizer = read_json(&tokenizer_json, |reason| HfError::Tokenizer {
            path: tokenizer_json.clone(),
            reason: format!("not a BPE tokenizer.json: {reason}"),
        })?;
        by_id.extend(t.model.vocab.into_iter().map(|(tok, id)| (id, tok)));
        by_id.extend(t.added_tokens.into_iter().map(|a| (a.id, a.content)));
        tokenizer_json
    } else if vocab_json.is_file() {
        let vocab: BTreeMap<String, i64> = read_json(&vocab_json, |reason| HfError::Tokenizer {
            path: vocab_json.clone(),
            reason: format!("not a token → id map: {reason}"),
        })?;
        by_id.extend(vocab.into_iter().map(|(tok, id)| (id, tok)));
        let added_path = dir.join("added_tokens.json");
        if added_path.is_file() {
            let added: BTreeMap<String, i64> =
                read_json(&added_path, |reason| HfError::Tokenizer {
                    path: added_path.clone(),
                    reason: format!("not a token → id map: {reason}"),
                })?;
            by_id.extend(added.into_iter().map(|(tok, id)| (id, tok)));
        }
        vocab_json
    } else {
        return Err(HfError::Tokenizer {
            path: dir.to_owned(),
            reason: "no tokenizer: neither tokenizer.json nor vocab.json (+ added_tokens.json)"
                .into(),
        });
    };
    let bad = |reason: String| HfError::Tokenizer {
        path: path.clone(),
        reason,
    };
    let n = n_vocab.max(0) as usize;
    if let Some((&id, tok)) = by_id.iter().find(|(&id, _)| id < 0 || id >= n_vocab as i64) {
        return Err(bad(format!(
            "token '{tok}' has id {id}, outside the model's {n} embedding rows"
        )));
    }
    let special = convert::SpecialTokens::for_n_vocab(n_vocab);
    let mut tokens = Vec::with_capacity(n);
    let mut gaps = Vec::new();
    for id in 0..n {
        match by_id.remove(&(id as i64)) {
            Some(t) => tokens.push(t),
            None if id >= special.timestamp_begin => tokens.push(format!(
                "<|{:.2}|>",
                (id - special.timestamp_begin) as f64 * 0.02
            )),
            // A few unused ids below <|endoftext|> (the multilingual vocabulary's 50256 is an
            // empty token some exports drop) are harmless: whisper.cpp never emits them.
            None if id < special.eot && gaps.len() < MAX_TOKEN_GAPS => {
                gaps.push(id);
                tokens.push(String::new());
            }
            None => return Err(bad(format!("no token has id {id}"))),
        }
    }
    if !gaps.is_empty() {
        tracing::warn!(tokenizer = %path.display(), ids = ?gaps, "tokenizer has no token for these ids; stored empty");
    }
    Ok((tokens, path))
}

/// The language tokens of a multilingual vocabulary must be whisper's, in whisper's order,
/// because whisper.cpp picks `<|xx|>` by position, never by name; and `generation_config.json`
/// (if given) must agree with the tokenizer.
fn check_language_tokens(
    tokens: &[String],
    hp: &HParams,
    generation: Option<(&GenerationConfig, &Path)>,
    tokenizer: &Path,
) -> Result<(), HfError> {
    let sot = convert::SpecialTokens::for_n_vocab(hp.n_vocab).sot;
    for (i, lang) in crate::languages::languages_of(hp.n_vocab)
        .iter()
        .enumerate()
    {
        let id = sot + 1 + i;
        let want = format!("<|{lang}|>");
        if tokens[id] != want {
            return Err(HfError::Tokenizer {
                path: tokenizer.to_owned(),
                reason: format!(
                    "token {id} is '{}', but whisper.cpp uses id {id} for {want}",
                    tokens[id]
                ),
            });
        }
    }
    if let Some((g, path)) = generation {
        let bad = |reason: String| HfError::Config {
            path: path.to_owned(),
            reason,
        };
        for (tok, &id) in &g.lang_to_id {
            if usize::try_from(id).ok().and_then(|i| tokens.get(i)) != Some(tok) {
                return Err(bad(format!(
                    "lang_to_id gives {tok} id {id}, which the tokenizer does not"
                )));
            }
        }
        for &(layer, head) in &g.alignment_heads {
            if !(0..i64::from(hp.n_text_layer)).contains(&layer)
                || !(0..i64::from(hp.n_text_head)).contains(&head)
            {
                return Err(bad(format!(
                    "alignment head [{layer}, {head}] is outside the decoder's {} layers × {} heads",
                    hp.n_text_layer, hp.n_text_head
                )));
            }
        }
    }
    Ok(())
}

/// Converts the checkpoint in `dir` into a whisper.cpp ggml file written to `out`. Everything
/// is validated before the first byte is written.
pub fn convert_hf_dir(
    dir: &Path,
    out: &mut impl Write,
    opts: &ConvertOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<ConvertReport, ConvertError> {
    if !Precision::WRITABLE.contains(&opts.precision) {
        return Err(ConvertError::UnsupportedPrecision(opts.precision));
    }
    let ckpt = HfCheckpoint::open(dir)?;
    let hp = ckpt.hparams(opts.precision)?;
    let (tokens, tokenizer) = read_tokens(dir, hp.n_vocab)?;
    let vocab = ggml_vocabulary(&tokens, &hp, &tokenizer)?;
    let gen_path = dir.join("generation_config.json");
    let generation: Option<GenerationConfig> = if gen_path.is_file() {
        Some(read_json(&gen_path, |reason| HfError::Config {
            path: gen_path.clone(),
            reason,
        })?)
    } else {
        None
    };
    check_language_tokens(
        &tokens,
        &hp,
        generation.as_ref().map(|g| (g, gen_path.as_path())),
        &tokenizer,
    )?;
    ckpt.check_tied_projection()?;
    let mel = convert::whisper_mel_filters(hp.n_mels);
    let report = convert::write_whisper_ggml(&ckpt, &hp, &mel, &vocab, out, progress)?;
    tracing::info!(
        dir = %dir.display(),
        tensors = report.tensors_written,
        bytes = report.bytes_written,
        "converted Hugging Face checkpoint to ggml"
    );
    Ok(report)
}

/// Total bytes of the checkpoint's weight files, for progress.
pub fn weights_bytes(dir: &Path) -> Option<u64> {
    let single = std::fs::metadata(dir.join("model.safetensors")).ok();
    if let Some(m) = single {
        return Some(m.len());
    }
    let total = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".safetensors"))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ggml;

    #[test]
    fn every_whisper_cpp_tensor_has_one_hugging_face_name() {
        let specs = ggml::expected_tensors(&HParams::base(1)).unwrap();
        let mut seen = std::collections::HashSet::new();
        for s in &specs {
            let (m, p) = hf_module(&s.name).unwrap_or_else(|| panic!("no name for {}", s.name));
            assert!(seen.insert(format!("{m}.{p}")), "{} reuses {m}.{p}", s.name);
        }
        assert_eq!(
            hf_module("decoder.blocks.3.cross_attn.key.weight"),
            Some(("decoder.layers.3.encoder_attn.k_proj".into(), "weight"))
        );
        assert_eq!(
            hf_module("encoder.blocks.0.mlp.2.bias"),
            Some(("encoder.layers.0.fc2".into(), "bias"))
        );
        assert_eq!(
            hf_module("encoder.ln_post.weight"),
            Some(("encoder.layer_norm".into(), "weight"))
        );
        assert_eq!(hf_module("encoder.blocks.0.cross_attn.query.weight"), None);
    }

    #[test]
    fn a_pytorch_only_checkpoint_is_refused_with_the_conversion_to_run() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pytorch_model.bin"), b"PK").unwrap();
        std::fs::write(dir.path().join("config.json"), b"{}").unwrap();
        let e = convert_hf_dir(
            dir.path(),
            &mut Vec::new(),
            &ConvertOptions::default(),
            &mut |_, _| {},
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("holds only PyTorch weights (pytorch_model.bin)")
                && e.contains("safe_serialization=True"),
            "{e}"
        );
        std::fs::remove_file(dir.path().join("pytorch_model.bin")).unwrap();
        let e = convert_hf_dir(
            dir.path(),
            &mut Vec::new(),
            &ConvertOptions::default(),
            &mut |_, _| {},
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("no model.safetensors"), "{e}");
    }

    #[test]
    fn tokenizer_without_timestamps_gets_them_and_a_few_gaps_are_tolerated() {
        let dir = tempfile::tempdir().unwrap();
        let mut vocab: BTreeMap<String, i64> =
            (0..50256).map(|i| (format!("t{i}"), i as i64)).collect();
        vocab.remove("t7");
        vocab.insert("<|endoftext|>".into(), 50257);
        std::fs::write(
            dir.path().join("vocab.json"),
            serde_json::to_vec(&vocab).unwrap(),
        )
        .unwrap();
        let added: BTreeMap<String, i64> = [("<|startoftranscript|>".to_owned(), 50258)]
            .into_iter()
            .chain((50259..=50363).map(|i| (format!("<|s{i}|>"), i)))
            .collect();
        std::fs::write(
            dir.path().join("added_tokens.json"),
            serde_json::to_vec(&added).unwrap(),
        )
        .unwrap();
        let (tokens, path) = read_tokens(dir.path(), 51865).unwrap();
        assert!(path.ends_with("vocab.json"));
        assert_eq!(tokens.len(), 51865);
        assert_eq!(tokens[7], "");
        assert_eq!(tokens[50256], "");
        assert_eq!(tokens[50364], "<|0.00|>");
        assert_eq!(tokens[51864], "<|30.00|>");

        let mut holey = vocab.clone();
        holey.retain(|_, id| *id >= 100);
        std::fs::write(
            dir.path().join("vocab.json"),
            serde_json::to_vec(&holey).unwrap(),
        )
        .unwrap();
        let e = read_tokens(dir.path(), 51865).unwrap_err().to_string();
        assert!(e.contains("vocab.json: no token has id"), "{e}");
        let mut wide = vocab;
        wide.insert("far".into(), 60000);
        std::fs::write(
            dir.path().join("vocab.json"),
            serde_json::to_vec(&wide).unwrap(),
        )
        .unwrap();
        let e = read_tokens(dir.path(), 51865).unwrap_err().to_string();
        assert!(e.contains("'far' has id 60000"), "{e}");
    }
}
