//! CTranslate2 Whisper → whisper.cpp ggml, tensor by tensor.
//!
//! What changes between the formats: CTranslate2 fuses the attention projections
//! (self-attention `linear_0` = q|k|v, cross-attention `linear_1` = k|v) and names layers
//! `layer_N/…` with `gamma`/`beta` norms; whisper.cpp wants OpenAI's names, separate q/k/v, no
//! key bias, F32 norms/biases/positional embeddings, conv biases shaped `[1, n_state]`, the
//! Slaney mel filterbank in the header, and the byte-level vocabulary up to `<|endoftext|>`
//! (it synthesises the special tokens itself). Dropping the fused key bias is exact: a bias on
//! every key adds the same `q·b` to all of a query's attention logits, which softmax ignores.

use super::ct2::{read_vocabulary, Ct2Dtype, Ct2Error, Ct2Model};
use super::ggml::{expected_tensors, GgmlType, GgmlWriter, HParams, TensorSpec};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Whisper's audio front end: 16 kHz, 25 ms FFT window.
pub const SAMPLE_RATE: u32 = 16_000;
pub const N_FFT: usize = 400;

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error(transparent)]
    Ct2(#[from] Ct2Error),
    #[error("{dir}: {reason}")]
    Model { dir: PathBuf, reason: String },
    #[error("writing the ggml model: {0}")]
    Write(#[from] std::io::Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvertOptions {
    /// Type of the large matrices (F16 keeps the CTranslate2 float16 weights bit-exact).
    pub weight_type: GgmlType,
}

impl Default for ConvertOptions {
    fn default() -> Self {
        Self {
            weight_type: GgmlType::F16,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConvertReport {
    pub hparams: HParams,
    pub tensors_written: usize,
    pub bytes_written: u64,
    pub vocab_written: usize,
    pub multilingual: bool,
}

/// librosa's `filters.mel(sr, n_fft, n_mels)` defaults (Slaney mel scale, Slaney area
/// normalisation, 0 Hz … sr/2), which is what OpenAI's whisper ships as `mel_filters.npz`.
/// Row-major `n_mels × (n_fft/2 + 1)`.
pub fn mel_filters(n_mels: usize, n_fft: usize, sample_rate: u32) -> Vec<f32> {
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
    let fft_freqs: Vec<f64> = (0..n_bins).map(|k| k as f64 * sr / n_fft as f64).collect();
    let (lo, hi) = (hz_to_mel(0.0), hz_to_mel(sr / 2.0));
    let mel_f: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(lo + (hi - lo) * i as f64 / (n_mels + 1) as f64))
        .collect();
    let mut out = vec![0f32; n_mels * n_bins];
    for i in 0..n_mels {
        let (f0, f1, f2) = (mel_f[i], mel_f[i + 1], mel_f[i + 2]);
        let enorm = 2.0 / (f2 - f0);
        for (k, &f) in fft_freqs.iter().enumerate() {
            let lower = (f - f0) / (f1 - f0);
            let upper = (f2 - f) / (f2 - f1);
            out[i * n_bins + k] = (lower.min(upper).max(0.0) * enorm) as f32;
        }
    }
    out
}

/// GPT-2's reversible byte → printable-character table (the spelling of `vocabulary.txt`).
pub fn bytes_to_unicode() -> [char; 256] {
    let mut table = ['\0'; 256];
    let printable = |b: u32| {
        (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b)
    };
    let mut n = 0;
    for b in 0..256u32 {
        table[b as usize] = if printable(b) {
            char::from_u32(b).expect("Latin-1 is valid")
        } else {
            n += 1;
            char::from_u32(255 + n).expect("small code point is valid")
        };
    }
    table
}

/// Decodes one `vocabulary.txt` token to its bytes; `None` if it is not byte-level spelling.
pub fn token_bytes(token: &str, inverse: &HashMap<char, u8>) -> Option<Vec<u8>> {
    token.chars().map(|c| inverse.get(&c).copied()).collect()
}

/// Where a whisper.cpp tensor's elements come from: a CTranslate2 variable and an element range.
fn source_of(name: &str, n: usize) -> Option<(String, std::ops::Range<usize>)> {
    let whole = 0..usize::MAX;
    let rows = |a: usize, b: usize| a * n * n..b * n * n;
    let elems = |a: usize, b: usize| a * n..b * n;
    let map_ln = |s: &str| s.replace("weight", "gamma").replace("bias", "beta");
    let (system, rest) = name.split_once('.')?;
    if let Some(rest) = rest.strip_prefix("blocks.") {
        let (layer, part) = rest.split_once('.')?;
        let base = format!("{system}/layer_{layer}");
        let (module, param) = part.rsplit_once('.')?;
        let is_w = param == "weight";
        return Some(match module {
            "attn_ln" => (
                format!("{base}/self_attention/layer_norm/{}", map_ln(param)),
                whole,
            ),
            "cross_attn_ln" => (
                format!("{base}/attention/layer_norm/{}", map_ln(param)),
                whole,
            ),
            "mlp_ln" => (format!("{base}/ffn/layer_norm/{}", map_ln(param)), whole),
            "mlp.0" => (format!("{base}/ffn/linear_0/{param}"), whole),
            "mlp.2" => (format!("{base}/ffn/linear_1/{param}"), whole),
            "attn.query" => (
                format!("{base}/self_attention/linear_0/{param}"),
                if is_w { rows(0, 1) } else { elems(0, 1) },
            ),
            "attn.key" => (
                format!("{base}/self_attention/linear_0/{param}"),
                rows(1, 2),
            ),
            "attn.value" => (
                format!("{base}/self_attention/linear_0/{param}"),
                if is_w { rows(2, 3) } else { elems(2, 3) },
            ),
            "attn.out" => (format!("{base}/self_attention/linear_1/{param}"), whole),
            "cross_attn.query" => (format!("{base}/attention/linear_0/{param}"), whole),
            "cross_attn.key" => (format!("{base}/attention/linear_1/{param}"), rows(0, 1)),
            "cross_attn.value" => (
                format!("{base}/attention/linear_1/{param}"),
                if is_w { rows(1, 2) } else { elems(1, 2) },
            ),
            "cross_attn.out" => (format!("{base}/attention/linear_2/{param}"), whole),
            _ => return None,
        });
    }
    Some(match name {
        "encoder.positional_embedding" => ("encoder/position_encodings/encodings".into(), whole),
        "encoder.conv1.weight"
        | "encoder.conv1.bias"
        | "encoder.conv2.weight"
        | "encoder.conv2.bias" => (name.replace('.', "/"), whole),
        "encoder.ln_post.weight" => ("encoder/layer_norm/gamma".into(), whole),
        "encoder.ln_post.bias" => ("encoder/layer_norm/beta".into(), whole),
        "decoder.positional_embedding" => ("decoder/position_encodings/encodings".into(), whole),
        "decoder.token_embedding.weight" => ("decoder/embeddings/weight".into(), whole),
        "decoder.ln.weight" => ("decoder/layer_norm/gamma".into(), whole),
        "decoder.ln.bias" => ("decoder/layer_norm/beta".into(), whole),
        _ => return None,
    })
}

fn count_layers(m: &Ct2Model, system: &str) -> i32 {
    (0..)
        .take_while(|i| {
            m.get(&format!("{system}/layer_{i}/ffn/linear_0/weight"))
                .is_some()
        })
        .count() as i32
}

/// Reads the hyper-parameters off the CTranslate2 variables.
pub fn hparams_of(
    m: &Ct2Model,
    dir: &Path,
    weight_type: GgmlType,
) -> Result<HParams, ConvertError> {
    let shape = |name: &str| -> Result<Vec<usize>, ConvertError> {
        m.get(name)
            .map(|v| v.shape.clone())
            .ok_or_else(|| ConvertError::Model {
                dir: dir.to_owned(),
                reason: format!(
                    "model.bin has no variable '{name}': not a CTranslate2 Whisper model"
                ),
            })
    };
    let emb = shape("decoder/embeddings/weight")?;
    let enc_pos = shape("encoder/position_encodings/encodings")?;
    let dec_pos = shape("decoder/position_encodings/encodings")?;
    let conv1 = shape("encoder/conv1/weight")?;
    let n_state = enc_pos[1] as i32;
    // CTranslate2 stores the head counts as scalars; whisper's heads are 64 wide otherwise.
    let heads = |sys: &str| {
        m.scalar(&format!("{sys}/num_heads"))
            .map_or(n_state / 64, |h| h as i32)
    };
    Ok(HParams {
        n_vocab: emb[0] as i32,
        n_audio_ctx: enc_pos[0] as i32,
        n_audio_state: n_state,
        n_audio_head: heads("encoder"),
        n_audio_layer: count_layers(m, "encoder"),
        n_text_ctx: dec_pos[0] as i32,
        n_text_state: dec_pos[1] as i32,
        n_text_head: heads("decoder"),
        n_text_layer: count_layers(m, "decoder"),
        n_mels: conv1[1] as i32,
        ftype: weight_type.ftype(),
    })
}

fn encode(values: &[f32], ty: GgmlType) -> Vec<u8> {
    match ty {
        GgmlType::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        GgmlType::F16 => values
            .iter()
            .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
            .collect(),
    }
}

/// The bytes of one whisper.cpp tensor, cut from its CTranslate2 source and re-typed.
fn tensor_bytes(
    m: &Ct2Model,
    dir: &Path,
    spec: &TensorSpec,
    n_state: usize,
) -> Result<Vec<u8>, ConvertError> {
    let bad = |reason: String| ConvertError::Model {
        dir: dir.to_owned(),
        reason,
    };
    let (var_name, range) = source_of(&spec.name, n_state)
        .ok_or_else(|| bad(format!("no CTranslate2 source for '{}'", spec.name)))?;
    let var = m.get(&var_name).ok_or_else(|| {
        bad(format!(
            "model.bin has no variable '{var_name}' (needed for '{}')",
            spec.name
        ))
    })?;
    let total: usize = var.shape.iter().product();
    let range = range.start..range.end.min(total);
    let want: usize = spec.ne.iter().product();
    if range.len() != want {
        return Err(bad(format!(
            "variable '{var_name}' {:?} gives {} elements for '{}', which needs {want}",
            var.shape,
            range.len(),
            spec.name
        )));
    }
    let size = var.dtype.size();
    let raw = &m.bytes(var)[range.start * size..range.end * size];
    Ok(match (var.dtype, spec.ty) {
        (Ct2Dtype::F16, GgmlType::F16) | (Ct2Dtype::F32, GgmlType::F32) => raw.to_vec(),
        (Ct2Dtype::F16, GgmlType::F32) => raw
            .chunks_exact(2)
            .flat_map(|c| {
                half::f16::from_le_bytes([c[0], c[1]])
                    .to_f32()
                    .to_le_bytes()
            })
            .collect(),
        _ => {
            let all = m.to_f32(var);
            encode(&all[range], spec.ty)
        }
    })
}

/// Converts the CTranslate2 Whisper model in `dir` and writes the ggml file to `out`.
/// `progress(done, total)` counts tensor bytes written.
pub fn convert_ct2_dir(
    dir: &Path,
    out: &mut impl Write,
    opts: &ConvertOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<ConvertReport, ConvertError> {
    let model = Ct2Model::read(&dir.join("model.bin"))?;
    if model.spec_name != "WhisperSpec" {
        return Err(ConvertError::Model {
            dir: dir.to_owned(),
            reason: format!(
                "model.bin holds a {} model, not WhisperSpec",
                model.spec_name
            ),
        });
    }
    let hp = hparams_of(&model, dir, opts.weight_type)?;
    hp.check().map_err(|reason| ConvertError::Model {
        dir: dir.to_owned(),
        reason,
    })?;

    let vocab_path = dir.join("vocabulary.txt");
    let vocab = read_vocabulary(&vocab_path)?;
    let eot = vocab
        .iter()
        .position(|t| t == "<|endoftext|>")
        .ok_or_else(|| ConvertError::Model {
            dir: dir.to_owned(),
            reason: "vocabulary.txt has no <|endoftext|> token".into(),
        })?;
    let inverse: HashMap<char, u8> = bytes_to_unicode()
        .iter()
        .enumerate()
        .map(|(b, &c)| (c, b as u8))
        .collect();
    let tokens: Vec<Vec<u8>> = vocab[..eot]
        .iter()
        .enumerate()
        .map(|(i, t)| {
            token_bytes(t, &inverse).ok_or_else(|| ConvertError::Model {
                dir: dir.to_owned(),
                reason: format!("vocabulary.txt token {i} ({t:?}) is not in byte-level spelling"),
            })
        })
        .collect::<Result<_, _>>()?;

    let specs = expected_tensors(&hp);
    let total: u64 = specs
        .iter()
        .map(|s| (s.ne.iter().product::<usize>() * s.ty.size()) as u64)
        .sum();
    let mut w = GgmlWriter::new(out);
    let n_bins = N_FFT / 2 + 1;
    w.write_header(
        &hp,
        hp.n_mels as usize,
        n_bins,
        &mel_filters(hp.n_mels as usize, N_FFT, SAMPLE_RATE),
        &tokens,
    )?;
    let mut done = 0u64;
    for spec in &specs {
        let bytes = tensor_bytes(&model, dir, spec, hp.n_audio_state as usize)?;
        w.write_tensor(&spec.name, &spec.ne, spec.ty, &bytes)?;
        done += bytes.len() as u64;
        progress(done, total);
    }
    Ok(ConvertReport {
        hparams: hp,
        tensors_written: specs.len(),
        bytes_written: w.bytes_written(),
        vocab_written: tokens.len(),
        multilingual: hp.is_multilingual(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ct2::tests::write_ct2;
    use crate::model::ggml::inspect;

    /// Reference values from an independent implementation: faster-whisper's numpy
    /// `get_mel_filters` (src/model/testdata/mel_reference.py prints them).
    #[test]
    fn mel_filterbank_matches_the_numpy_reference() {
        let f = mel_filters(80, 400, 16_000);
        assert_eq!(f.len(), 80 * 201);
        for &(row, col, value) in MEL_REFERENCE {
            let got = f64::from(f[row * 201 + col]);
            assert!(
                (got - value).abs() <= 1e-6 * value.abs().max(1e-3),
                "[{row},{col}] {got} vs {value}"
            );
        }
        for &(row, sum) in MEL_ROW_SUMS {
            let got: f64 = f[row * 201..(row + 1) * 201]
                .iter()
                .map(|&v| f64::from(v))
                .sum();
            assert!(
                (got - sum).abs() <= 1e-5 * sum.abs(),
                "row {row} sum {got} vs {sum}"
            );
        }
    }

    include!("testdata/mel_reference.rs");

    #[test]
    fn byte_table_round_trips_every_byte() {
        let table = bytes_to_unicode();
        let inverse: HashMap<char, u8> = table
            .iter()
            .enumerate()
            .map(|(b, &c)| (c, b as u8))
            .collect();
        assert_eq!(inverse.len(), 256, "table is a bijection");
        let all: Vec<u8> = (0..=255).collect();
        let spelled: String = all.iter().map(|&b| table[b as usize]).collect();
        assert_eq!(token_bytes(&spelled, &inverse).unwrap(), all);
        assert_eq!(table[b' ' as usize], 'Ġ');
        assert_eq!(token_bytes("Ġthe", &inverse).unwrap(), b" the");
    }

    fn f16s(xs: &[f32]) -> Vec<u8> {
        xs.iter()
            .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
            .collect()
    }

    /// A one-layer CTranslate2 Whisper with every weight distinct, written to a temp dir.
    fn synthetic_ct2(dir: &Path, n: usize) -> Vec<(String, Vec<f32>)> {
        let mut counter = 0f32;
        let mut next = |count: usize| -> Vec<f32> {
            (0..count)
                .map(|_| {
                    counter += 1.0;
                    (counter % 1000.0) / 1000.0
                })
                .collect()
        };
        let (n_vocab, n_mels, a_ctx, t_ctx) = (6usize, 2usize, 3usize, 2usize);
        let mut vars: Vec<(String, Vec<usize>)> = vec![
            ("encoder/conv1/weight".into(), vec![n, n_mels, 3]),
            ("encoder/conv1/bias".into(), vec![n]),
            ("encoder/conv2/weight".into(), vec![n, n, 3]),
            ("encoder/conv2/bias".into(), vec![n]),
            (
                "encoder/position_encodings/encodings".into(),
                vec![a_ctx, n],
            ),
            ("encoder/layer_norm/gamma".into(), vec![n]),
            ("encoder/layer_norm/beta".into(), vec![n]),
            ("decoder/embeddings/weight".into(), vec![n_vocab, n]),
            (
                "decoder/position_encodings/encodings".into(),
                vec![t_ctx, n],
            ),
            ("decoder/layer_norm/gamma".into(), vec![n]),
            ("decoder/layer_norm/beta".into(), vec![n]),
        ];
        for sys in ["encoder", "decoder"] {
            let b = format!("{sys}/layer_0");
            for ln in ["self_attention/layer_norm", "ffn/layer_norm"] {
                vars.push((format!("{b}/{ln}/gamma"), vec![n]));
                vars.push((format!("{b}/{ln}/beta"), vec![n]));
            }
            vars.push((
                format!("{b}/self_attention/linear_0/weight"),
                vec![3 * n, n],
            ));
            vars.push((format!("{b}/self_attention/linear_0/bias"), vec![3 * n]));
            vars.push((format!("{b}/self_attention/linear_1/weight"), vec![n, n]));
            vars.push((format!("{b}/self_attention/linear_1/bias"), vec![n]));
            vars.push((format!("{b}/ffn/linear_0/weight"), vec![4 * n, n]));
            vars.push((format!("{b}/ffn/linear_0/bias"), vec![4 * n]));
            vars.push((format!("{b}/ffn/linear_1/weight"), vec![n, 4 * n]));
            vars.push((format!("{b}/ffn/linear_1/bias"), vec![n]));
        }
        let b = "decoder/layer_0/attention";
        vars.push((format!("{b}/layer_norm/gamma"), vec![n]));
        vars.push((format!("{b}/layer_norm/beta"), vec![n]));
        vars.push((format!("{b}/linear_0/weight"), vec![n, n]));
        vars.push((format!("{b}/linear_0/bias"), vec![n]));
        vars.push((format!("{b}/linear_1/weight"), vec![2 * n, n]));
        vars.push((format!("{b}/linear_1/bias"), vec![2 * n]));
        vars.push((format!("{b}/linear_2/weight"), vec![n, n]));
        vars.push((format!("{b}/linear_2/bias"), vec![n]));
        let values: Vec<(String, Vec<usize>, Vec<f32>)> = vars
            .into_iter()
            .map(|(name, shape)| {
                let v = next(shape.iter().product());
                (name, shape, v)
            })
            .collect();
        let mut encoded: Vec<(&str, Vec<usize>, Ct2Dtype, Vec<u8>)> = values
            .iter()
            .map(|(name, shape, v)| (name.as_str(), shape.clone(), Ct2Dtype::F16, f16s(v)))
            .collect();
        encoded.push((
            "encoder/num_heads",
            vec![],
            Ct2Dtype::I16,
            1i16.to_le_bytes().to_vec(),
        ));
        encoded.push((
            "decoder/num_heads",
            vec![],
            Ct2Dtype::I16,
            1i16.to_le_bytes().to_vec(),
        ));
        std::fs::write(
            dir.join("model.bin"),
            write_ct2(
                &encoded,
                &[("decoder/projection/weight", "decoder/embeddings/weight")],
            ),
        )
        .unwrap();
        std::fs::write(
            dir.join("vocabulary.txt"),
            "a\nĠb\nc\n<|endoftext|>\n<|startoftranscript|>\nx\n",
        )
        .unwrap();
        // Round values through f16 so comparisons are exact.
        values
            .into_iter()
            .map(|(n, _, v)| {
                (
                    n,
                    v.iter().map(|x| half::f16::from_f32(*x).to_f32()).collect(),
                )
            })
            .collect()
    }

    fn read_tensor(bytes: &[u8], info: &crate::model::ggml::TensorInfo) -> Vec<f32> {
        let d = &bytes[info.offset as usize..(info.offset + info.nbytes) as usize];
        match info.ty {
            GgmlType::F32 => d
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            GgmlType::F16 => d
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
        }
    }

    #[test]
    fn fused_projections_are_split_into_whisper_cpp_tensors() {
        let n = 4;
        let dir = tempfile::tempdir().unwrap();
        let src: HashMap<String, Vec<f32>> = synthetic_ct2(dir.path(), n).into_iter().collect();
        let out_path = dir.path().join("out.bin");
        let mut out = std::fs::File::create(&out_path).unwrap();
        let report = convert_ct2_dir(
            dir.path(),
            &mut out,
            &ConvertOptions::default(),
            &mut |_, _| {},
        )
        .unwrap();
        drop(out);
        assert_eq!(report.vocab_written, 3);
        let info = inspect(&out_path).unwrap();
        let bytes = std::fs::read(&out_path).unwrap();
        let t = |name: &str| {
            read_tensor(
                &bytes,
                info.tensors.iter().find(|t| t.name == name).unwrap(),
            )
        };
        let qkv = &src["encoder/layer_0/self_attention/linear_0/weight"];
        assert_eq!(t("encoder.blocks.0.attn.query.weight"), qkv[..n * n]);
        assert_eq!(t("encoder.blocks.0.attn.key.weight"), qkv[n * n..2 * n * n]);
        assert_eq!(t("encoder.blocks.0.attn.value.weight"), qkv[2 * n * n..]);
        let qkv_b = &src["decoder/layer_0/self_attention/linear_0/bias"];
        assert_eq!(t("decoder.blocks.0.attn.query.bias"), qkv_b[..n]);
        assert_eq!(t("decoder.blocks.0.attn.value.bias"), qkv_b[2 * n..]);
        let kv = &src["decoder/layer_0/attention/linear_1/weight"];
        assert_eq!(t("decoder.blocks.0.cross_attn.key.weight"), kv[..n * n]);
        assert_eq!(t("decoder.blocks.0.cross_attn.value.weight"), kv[n * n..]);
        assert_eq!(
            t("decoder.blocks.0.cross_attn.value.bias"),
            src["decoder/layer_0/attention/linear_1/bias"][n..]
        );
        assert_eq!(
            t("decoder.blocks.0.cross_attn_ln.weight"),
            src["decoder/layer_0/attention/layer_norm/gamma"]
        );
        assert_eq!(t("encoder.conv1.bias"), src["encoder/conv1/bias"]);
        assert_eq!(
            t("decoder.token_embedding.weight"),
            src["decoder/embeddings/weight"]
        );
        // Norms and biases are F32, matrices F16, as whisper.cpp's loader requires.
        let ty = |name: &str| info.tensors.iter().find(|t| t.name == name).unwrap().ty;
        assert_eq!(ty("encoder.blocks.0.attn_ln.bias"), GgmlType::F32);
        assert_eq!(ty("encoder.positional_embedding"), GgmlType::F32);
        assert_eq!(ty("encoder.blocks.0.mlp.0.weight"), GgmlType::F16);
    }
}
