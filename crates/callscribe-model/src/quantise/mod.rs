//! Quantising a float (f16 or f32) ggml model into one of ggml's block formats (q8_0, q5_0,
//! q5_1), as whisper.cpp's `quantize` tool does, without needing that tool: the blocks are
//! ggml's own ([`blocks`]); which tensors, the header and the checks are ours.
//!
//! Which tensors: whisper.cpp's tool quantises every 2-D tensor except the two positional
//! embeddings and the two conv biases (stored 2-D as `[1, n]`); conv kernels are 3-D and stay
//! f16, 1-D biases and layer norms stay f32. Its loader (`whisper_model_load`) expects exactly
//! that split for a quantised `ftype`, which [`ggml::expected_tensors`] encodes, so this
//! module takes each tensor's target type from there; a unit test checks that this is the
//! tool's rule. The header is copied except for `ftype`, which gets the type plus
//! `GGML_QNT_VERSION × 1000` (`2007` for q8_0) as the tool writes it.
//!
//! The quantised matrices must have rows that are whole 32-value blocks. Every Whisper size
//! (384 to 1280 wide, MLPs 4× that) satisfies this; a model that did not could not be
//! quantised at all, since the loader needs every weight matrix in the model's one type, so
//! such a model is refused before anything is written ([`QuantiseError::RowNotWholeBlocks`]).

pub mod blocks;

use super::ggml::{self, GgmlWriter, ModelFileError, TensorData};
use super::store::ModelStore;
use super::Precision;
use super::{ModelError, Progress};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum QuantiseError {
    #[error(transparent)]
    ModelFile(#[from] ModelFileError),
    #[error("{path} is already quantised ({ty}); quantise the f16 or f32 model instead")]
    AlreadyQuantised { path: PathBuf, ty: Precision },
    #[error("cannot quantise to {0}: callscribe writes q8_0, q5_1 or q5_0")]
    UnsupportedTarget(Precision),
    #[error(
        "{path}: tensor '{name}' has rows of {row} values, not whole {}-value blocks, so it \
         cannot be {ty}, and whisper.cpp needs every weight matrix in the model's type",
        blocks::BLOCK_LEN
    )]
    RowNotWholeBlocks {
        path: PathBuf,
        name: String,
        row: usize,
        ty: Precision,
    },
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing the quantised model: {0}")]
    Write(#[source] std::io::Error),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuantiseReport {
    /// Weight type of the input model.
    pub from: Precision,
    pub to: Precision,
    pub tensors_quantised: usize,
    /// Tensors written in their input type (or f32 → f16 for the conv kernels of an f32 model).
    pub tensors_kept: usize,
    pub bytes_written: u64,
}

/// Reads the float model at `input` and writes it to `out` with its weight matrices in `to`.
/// `progress(done, total)` counts input tensor bytes. Everything is checked before the first
/// byte is written.
pub fn quantise_model(
    input: &Path,
    out: &mut impl Write,
    to: Precision,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<QuantiseReport, QuantiseError> {
    if !Precision::QUANTISED.contains(&to) {
        return Err(QuantiseError::UnsupportedTarget(to));
    }
    let (info, header) = ggml::inspect_with_header(input)?;
    let from = info.precision();
    if from.is_quantised() {
        return Err(QuantiseError::AlreadyQuantised {
            path: input.to_owned(),
            ty: from,
        });
    }
    let mut hparams = header.hparams;
    hparams.ftype = to.file_ftype();
    let targets = ggml::expected_tensors(&hparams).expect("a quantised ftype has a layout");
    let target_of = |name: &str| {
        targets
            .iter()
            .find(|t| t.name == name)
            .map(|t| t.ty)
            .expect("inspect accepted only the loader's tensors, the same for every ftype")
    };
    for t in &info.tensors {
        let ty = target_of(&t.name);
        if ty.is_quantised() && t.ne[0] % blocks::BLOCK_LEN != 0 {
            return Err(QuantiseError::RowNotWholeBlocks {
                path: input.to_owned(),
                name: t.name.clone(),
                row: t.ne[0],
                ty,
            });
        }
    }

    let read_err = |source| QuantiseError::Read {
        path: input.to_owned(),
        source,
    };
    let mut file = std::fs::File::open(input).map_err(read_err)?;
    let mut w = GgmlWriter::new(std::io::BufWriter::with_capacity(1 << 20, out));
    w.write_header(&hparams, &header.mel, &header.vocab)
        .map_err(QuantiseError::Write)?;
    let total: u64 = info.tensors.iter().map(|t| t.nbytes).sum();
    let (mut done, mut quantised, mut kept) = (0u64, 0usize, 0usize);
    progress(0, total);
    let mut raw = Vec::new();
    for t in &info.tensors {
        raw.resize(t.nbytes as usize, 0);
        file.seek(SeekFrom::Start(t.offset)).map_err(read_err)?;
        file.read_exact(&mut raw).map_err(read_err)?;
        let shape: Vec<usize> = t.ne.iter().rev().copied().collect();
        let ty = target_of(&t.name);
        let written = if ty == t.ty {
            w.write_tensor(&t.name, &shape, ty, TensorData::Raw(&raw))
        } else {
            // inspect matched every tensor to the float layout, so each is f16 or f32.
            let values: Vec<f32> = if t.ty == Precision::F16 {
                raw.chunks_exact(2)
                    .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                    .collect()
            } else {
                raw.chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect()
            };
            w.write_tensor(&t.name, &shape, ty, TensorData::F32(&values))
        };
        written.map_err(QuantiseError::Write)?;
        if ty.is_quantised() {
            quantised += 1;
        } else {
            kept += 1;
        }
        done += t.nbytes;
        progress(done, total);
    }
    w.flush().map_err(QuantiseError::Write)?;
    tracing::info!(
        input = %input.display(),
        %from,
        %to,
        tensors_quantised = quantised,
        bytes = w.bytes_written(),
        "quantised ggml model"
    );
    Ok(QuantiseReport {
        from,
        to,
        tensors_quantised: quantised,
        tensors_kept: kept,
        bytes_written: w.bytes_written(),
    })
}

/// Quantises the installed model `name` into a new store entry `new_name` (through a checked
/// temporary file, like every other way into the store); returns its path. An existing
/// `new_name` is replaced only with `replace`.
pub fn quantise_installed(
    store: &ModelStore,
    name: &str,
    new_name: &str,
    to: Precision,
    replace: bool,
    progress: &dyn Progress,
) -> Result<PathBuf, ModelError> {
    let source = store
        .installed(name)
        .ok_or_else(|| ModelError::NotInstalled {
            name: name.to_owned(),
            dir: store.dir().to_owned(),
        })?;
    if new_name == name {
        return Err(ModelError::WouldReplaceSource {
            name: name.to_owned(),
        });
    }
    if let Some(existing) = store.installed(new_name).filter(|_| !replace) {
        return Err(ModelError::AlreadyInstalled {
            name: new_name.to_owned(),
            path: existing.path,
        });
    }
    let tmp = tempfile::NamedTempFile::new_in(store.dir()).map_err(ModelError::io(store.dir()))?;
    let mut file = tmp.as_file();
    let mut report = |done: u64, total: u64| {
        if done == 0 {
            progress.begin(&format!("quantising {name} to {to}"), Some(total));
        }
        progress.set(done);
    };
    let result = quantise_model(&source.path, &mut file, to, &mut report);
    progress.end();
    result?;
    let source_sha = source.provenance.as_ref().map_or_else(
        || "unrecorded".to_owned(),
        |p| p.sha256.chars().take(12).collect(),
    );
    super::pull::commit_written(
        store,
        tmp,
        new_name,
        "quantize",
        format!("{name} (sha256 {source_sha}…) as {to}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ggml::{expected_tensors, HParams, MelFilters, N_FFT_BINS};
    use crate::NoProgress;
    use std::collections::BTreeSet;

    /// Layout of a whisper model the size of tiny (4 + 4 layers, 384 wide).
    fn hparams(weight: Precision) -> HParams {
        HParams::tiny_en(weight.file_ftype())
    }

    #[test]
    fn the_loader_layout_quantises_what_whisper_cpp_quantize_does() {
        // examples/quantize/quantize.cpp: every tensor matching ".*" whose n_dims is 2, except
        // the names in its to_skip list.
        let skip = [
            "encoder.conv1.bias",
            "encoder.conv2.bias",
            "encoder.positional_embedding",
            "decoder.positional_embedding",
        ];
        let f16 = expected_tensors(&hparams(Precision::F16)).unwrap();
        for &to in Precision::QUANTISED {
            let q = expected_tensors(&hparams(to)).unwrap();
            let by_loader: BTreeSet<&str> = q
                .iter()
                .zip(&f16)
                .filter(|(a, b)| a.ty != b.ty)
                .map(|(a, _)| a.name.as_str())
                .collect();
            let by_tool: BTreeSet<&str> = f16
                .iter()
                .filter(|t| t.ne.len() == 2 && !skip.contains(&t.name.as_str()))
                .map(|t| t.name.as_str())
                .collect();
            assert_eq!(by_loader, by_tool, "{to}");
            assert!(q.iter().all(|t| !t.ty.is_quantised() || t.ty == to));
            // 4 encoder blocks × 6 matrices, 4 decoder blocks × 10, the token embedding.
            assert_eq!(by_tool.len(), 4 * 6 + 4 * 10 + 1);
        }
    }

    /// A small but loadable-shaped f16 model (32 wide, one layer each) with varied values, so
    /// that quantisation has something to do.
    fn small_f16_model(dir: &Path) -> PathBuf {
        let hp = HParams::small(Precision::F16.file_ftype());
        let mut w = GgmlWriter::new(Vec::new());
        let mel = MelFilters {
            n_mel: 2,
            n_fft: N_FFT_BINS,
            data: (0..2 * N_FFT_BINS).map(|i| i as f32 / 1000.0).collect(),
        };
        let vocab = vec![b"!".to_vec(), b" ".to_vec(), b" the".to_vec()];
        w.write_header(&hp, &mel, &vocab).unwrap();
        for (k, t) in expected_tensors(&hp).unwrap().into_iter().enumerate() {
            let n: usize = t.ne.iter().product();
            let values: Vec<f32> = (0..n)
                .map(|i| ((i * 7 + k * 13) as f32 * 0.31).sin() * (1.0 + k as f32 / 10.0))
                .collect();
            w.write_tensor(&t.name, &t.numpy_shape(), t.ty, TensorData::F32(&values))
                .unwrap();
        }
        let path = dir.join("ggml-small.bin");
        std::fs::write(&path, w.into_inner()).unwrap();
        path
    }

    fn tensor_bytes(path: &Path, t: &ggml::TensorInfo) -> Vec<u8> {
        let bytes = std::fs::read(path).unwrap();
        bytes[t.offset as usize..(t.offset + t.nbytes) as usize].to_vec()
    }

    #[test]
    fn quantised_model_keeps_header_and_small_tensors_and_encodes_matrices_like_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let input = small_f16_model(dir.path());
        let (in_info, in_header) = ggml::inspect_with_header(&input).unwrap();
        for &to in Precision::QUANTISED {
            let out_path = dir.path().join(format!("ggml-small-{to}.bin"));
            let mut out = std::fs::File::create(&out_path).unwrap();
            let mut calls = 0;
            let report = quantise_model(&input, &mut out, to, &mut |_, _| calls += 1).unwrap();
            drop(out);
            let (info, header) = ggml::inspect_with_header(&out_path).unwrap();
            assert_eq!(info.hparams.ftype, 2000 + to.ftype(), "{to}");
            assert_eq!(info.precision(), to);
            assert_eq!(header.mel, in_header.mel);
            assert_eq!(header.vocab, in_header.vocab);
            let mut check = in_header.hparams;
            check.ftype = info.hparams.ftype;
            assert_eq!(header.hparams, check, "only ftype changes");
            assert_eq!(report.tensors_quantised, 6 + 10 + 1);
            assert_eq!(
                report.tensors_kept + report.tensors_quantised,
                in_info.tensors.len()
            );
            assert_eq!(report.bytes_written, info.file_len);
            assert_eq!(calls, in_info.tensors.len() + 1);
            for (a, b) in in_info.tensors.iter().zip(&info.tensors) {
                assert_eq!((&a.name, &a.ne), (&b.name, &b.ne), "file order kept");
                let src = tensor_bytes(&input, a);
                let got = tensor_bytes(&out_path, b);
                if b.ty == a.ty {
                    assert_eq!(got, src, "{} copied unchanged", a.name);
                    continue;
                }
                assert_eq!(b.ty, to, "{}", a.name);
                let values: Vec<f32> = src
                    .chunks(2)
                    .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect();
                let mut want = Vec::new();
                blocks::encode(to, &values, &mut want).unwrap();
                assert_eq!(got, want, "{}", a.name);
            }
        }
    }

    #[test]
    fn quantised_or_unknown_targets_and_quantised_inputs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let input = small_f16_model(dir.path());
        let q8 = dir.path().join("ggml-q8.bin");
        quantise_model(
            &input,
            &mut std::fs::File::create(&q8).unwrap(),
            Precision::Q8_0,
            &mut |_, _| {},
        )
        .unwrap();
        let mut out = Vec::new();
        let e = quantise_model(&q8, &mut out, Precision::Q5_1, &mut |_, _| {}).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{} is already quantised (q8_0); quantise the f16 or f32 model instead",
                q8.display()
            )
        );
        let e = quantise_model(&input, &mut out, Precision::Q4_0, &mut |_, _| {}).unwrap_err();
        assert!(matches!(
            e,
            QuantiseError::UnsupportedTarget(Precision::Q4_0)
        ));
        assert!(out.is_empty(), "nothing written for a refused model");
    }

    #[test]
    fn store_entry_is_created_under_a_new_name_and_never_over_the_source() {
        let dir = tempfile::tempdir().unwrap();
        let store = ModelStore::new(dir.path());
        small_f16_model(dir.path());
        let path = quantise_installed(
            &store,
            "small",
            &Precision::Q8_0.store_name("small"),
            Precision::Q8_0,
            false,
            &NoProgress,
        )
        .unwrap();
        assert_eq!(path, dir.path().join("ggml-small-q8_0.bin"));
        let installed = store.installed("small-q8_0").unwrap();
        let prov = installed.provenance.unwrap();
        assert_eq!(prov.source, "quantize");
        assert!(prov.origin.starts_with("small ("), "{}", prov.origin);
        assert_eq!(prov.bytes, installed.bytes);

        let again = |name: &str, replace| {
            quantise_installed(&store, "small", name, Precision::Q8_0, replace, &NoProgress)
                .map_err(|e| e.to_string())
        };
        let e = again("small-q8_0", false).unwrap_err();
        assert!(
            e.contains("already installed") && e.contains("--force"),
            "{e}"
        );
        again("small-q8_0", true).unwrap();
        let e = again("small", true).unwrap_err();
        assert!(e.contains("--as"), "{e}");
        let e = quantise_installed(&store, "absent", "x", Precision::Q8_0, false, &NoProgress)
            .unwrap_err()
            .to_string();
        assert!(e.contains("'absent' is not installed"), "{e}");
        let e = quantise_installed(
            &store,
            "small-q8_0",
            "small-q8_0-q5_1",
            Precision::Q5_1,
            false,
            &NoProgress,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("already quantised (q8_0)"), "{e}");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| !e.file_name().to_string_lossy().starts_with("ggml-"))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    }
}
