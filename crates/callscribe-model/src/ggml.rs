//! whisper.cpp's legacy (pre-GGUF) model file: a streaming writer and a validating reader.
//!
//! Layout, as `whisper_model_load` in whisper.cpp 1.8.3 reads it (all little-endian): `u32`
//! magic `"ggml"` · eleven `i32` hyper-parameters ([`HParams`], in field order) · mel filterbank
//! (`i32 n_mel`, `i32 n_fft`, `n_mel × n_fft` `f32`) · vocabulary (`i32 n`, then `u32 len` +
//! bytes per token) · tensors until end of file (`i32 n_dims`, `i32 name_len`, `i32 type`,
//! `i32 ne[n_dims]` in ggml order, i.e. the numpy shape reversed, the name, the raw data; no
//! alignment padding).
//!
//! whisper.cpp trusts almost every number in the file: a large `n_dims` overflows a 4-element
//! array, a negative name length becomes a huge allocation, an unknown `ftype` or tensor type
//! aborts inside ggml, a short tensor leaves weights uninitialised, a vocabulary without `" "`
//! throws from `whisper_full`. [`inspect`] therefore re-reads the whole structure with bounds
//! checks (seeking over tensor data) and compares every tensor with what the loader creates
//! for those hyper-parameters ([`expected_tensors`]), so a file it accepts is one whisper.cpp
//! loads and runs.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use super::quantise::blocks;
use crate::Precision;

/// `GGML_FILE_MAGIC`, "ggml" read as a little-endian `u32`.
pub const MAGIC: u32 = 0x6767_6d6c;
/// `ftype` carries the quantisation version in its thousands (`GGML_QNT_VERSION_FACTOR`).
pub const QNT_VERSION_FACTOR: i32 = 1000;
/// `GGML_QNT_VERSION` of the ggml in whisper.cpp 1.8.3: the block layouts of
/// [`crate::quantise`] are those of version 2 (q4/q5 scales in f16, q8_0 without a
/// sum), and whisper.cpp's `quantize` tool stamps it into the `ftype` of every file it writes.
pub const QNT_VERSION: i32 = 2;
/// Frequency bins of whisper.cpp's fixed 400-point FFT; `log_mel_spectrogram` asserts the
/// filterbank has exactly this many columns.
pub const N_FFT_BINS: usize = 201;
/// whisper.cpp fixes the special-token ids relative to `n_vocab` and names at most 100
/// languages; outside this range it indexes logits out of bounds or builds a `std::string`
/// from a null pointer when synthesising language tokens.
pub const N_VOCAB_RANGE: std::ops::RangeInclusive<i32> = 51864..=51866;

const MAX_N_DIMS: i32 = 4;
const MAX_NAME_BYTES: i32 = 256;
/// The longest token in whisper's vocabularies is 33 bytes; a length beyond this is garbage.
const MAX_TOKEN_BYTES: u32 = 1024;

/// Model hyper-parameters, in file order. `i32` because that is what the file stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HParams {
    pub n_vocab: i32,
    pub n_audio_ctx: i32,
    pub n_audio_state: i32,
    pub n_audio_head: i32,
    pub n_audio_layer: i32,
    pub n_text_ctx: i32,
    pub n_text_state: i32,
    pub n_text_head: i32,
    pub n_text_layer: i32,
    pub n_mels: i32,
    pub ftype: i32,
}

/// Layouts the tests build models and expectations from (one place, not a literal per test).
#[cfg(test)]
impl HParams {
    fn whisper(n_vocab: i32, state: i32, head: i32, layers: i32, ftype: i32) -> Self {
        HParams {
            n_vocab,
            n_audio_ctx: 1500,
            n_audio_state: state,
            n_audio_head: head,
            n_audio_layer: layers,
            n_text_ctx: 448,
            n_text_state: state,
            n_text_head: head,
            n_text_layer: layers,
            n_mels: 80,
            ftype,
        }
    }

    /// OpenAI's tiny.en.
    pub(crate) fn tiny_en(ftype: i32) -> Self {
        Self::whisper(51864, 384, 6, 4, ftype)
    }

    /// OpenAI's base (multilingual).
    pub(crate) fn base(ftype: i32) -> Self {
        Self::whisper(51865, 512, 8, 6, ftype)
    }

    /// Structurally complete, numerically meaningless: one layer each, 32 wide (a whole Q8_0
    /// block), a real-size vocabulary because whisper.cpp needs one.
    pub(crate) fn small(ftype: i32) -> Self {
        HParams {
            n_vocab: 51864,
            n_audio_ctx: 6,
            n_audio_state: 32,
            n_audio_head: 4,
            n_audio_layer: 1,
            n_text_ctx: 5,
            n_text_state: 32,
            n_text_head: 4,
            n_text_layer: 1,
            n_mels: 2,
            ftype,
        }
    }
}

impl HParams {
    pub fn to_array(&self) -> [i32; 11] {
        [
            self.n_vocab,
            self.n_audio_ctx,
            self.n_audio_state,
            self.n_audio_head,
            self.n_audio_layer,
            self.n_text_ctx,
            self.n_text_state,
            self.n_text_head,
            self.n_text_layer,
            self.n_mels,
            self.ftype,
        ]
    }

    pub fn from_array(a: [i32; 11]) -> Self {
        Self {
            n_vocab: a[0],
            n_audio_ctx: a[1],
            n_audio_state: a[2],
            n_audio_head: a[3],
            n_audio_layer: a[4],
            n_text_ctx: a[5],
            n_text_state: a[6],
            n_text_head: a[7],
            n_text_layer: a[8],
            n_mels: a[9],
            ftype: a[10],
        }
    }

    /// Precision of the large matrices, from `ftype` (`None` for one whisper.cpp would abort on or
    /// callscribe cannot size).
    pub fn precision(&self) -> Option<Precision> {
        if self.ftype < 0 {
            return None;
        }
        Precision::from_ftype(self.ftype)
    }

    /// Precision of the convolution kernels: whisper.cpp keeps them F16 unless the whole model is
    /// F32 (`vtype` in `whisper_model_load`), even in quantised models.
    pub fn conv_precision(&self) -> Option<Precision> {
        Some(match self.precision()? {
            Precision::F32 => Precision::F32,
            _ => Precision::F16,
        })
    }

    /// whisper.cpp's own test (`whisper_vocab::is_multilingual`).
    pub fn is_multilingual(&self) -> bool {
        self.n_vocab >= 51865
    }

    /// Whether whisper.cpp can build and run a model with these values; the error says which
    /// value is wrong and why.
    pub fn validate(&self) -> Result<(), String> {
        let named = [
            ("n_vocab", self.n_vocab),
            ("n_audio_ctx", self.n_audio_ctx),
            ("n_audio_state", self.n_audio_state),
            ("n_audio_head", self.n_audio_head),
            ("n_audio_layer", self.n_audio_layer),
            ("n_text_ctx", self.n_text_ctx),
            ("n_text_state", self.n_text_state),
            ("n_text_head", self.n_text_head),
            ("n_text_layer", self.n_text_layer),
            ("n_mels", self.n_mels),
        ];
        if let Some((name, v)) = named.iter().find(|(_, v)| *v <= 0) {
            return Err(format!("{name} is {v}"));
        }
        if !N_VOCAB_RANGE.contains(&self.n_vocab) {
            return Err(format!(
                "n_vocab is {}, but whisper.cpp derives its special tokens for a vocabulary of \
                 {} to {} tokens",
                self.n_vocab,
                N_VOCAB_RANGE.start(),
                N_VOCAB_RANGE.end()
            ));
        }
        if self.n_audio_state != self.n_text_state {
            return Err(format!(
                "n_audio_state {} differs from n_text_state {} (whisper.cpp requires them equal)",
                self.n_audio_state, self.n_text_state
            ));
        }
        for (what, state, head) in [
            ("audio", self.n_audio_state, self.n_audio_head),
            ("text", self.n_text_state, self.n_text_head),
        ] {
            if state % head != 0 {
                return Err(format!(
                    "n_{what}_state {state} is not a multiple of n_{what}_head {head}"
                ));
            }
        }
        let limits = [
            ("n_audio_ctx", self.n_audio_ctx, 1 << 16),
            ("n_text_ctx", self.n_text_ctx, 1 << 16),
            ("n_audio_state", self.n_audio_state, 1 << 16),
            ("n_audio_layer", self.n_audio_layer, 256),
            ("n_text_layer", self.n_text_layer, 256),
            ("n_mels", self.n_mels, 1024),
        ];
        if let Some((name, v, max)) = limits.iter().find(|(_, v, max)| v > max) {
            return Err(format!("{name} is {v}, implausibly large (limit {max})"));
        }
        if self.precision().is_none() {
            return Err(format!(
                "ftype {} is not one callscribe can check (f32 0, f16 1, q4_0 2, q4_1 3, q8_0 \
                 7, q5_0 8, q5_1 9, plus 1000 × quantisation version)",
                self.ftype
            ));
        }
        Ok(())
    }
}

/// The mel filterbank stored in the header: `n_mel` rows of `n_fft` frequency-bin weights.
#[derive(Debug, Clone, PartialEq)]
pub struct MelFilters {
    pub n_mel: usize,
    /// Number of frequency bins (whisper.cpp calls it `n_fft`; 201 for a 400-point FFT).
    pub n_fft: usize,
    /// Row-major `n_mel × n_fft`.
    pub data: Vec<f32>,
}

/// One tensor as whisper.cpp's loader allocates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: String,
    /// ggml order (fastest-varying first), i.e. the numpy shape reversed.
    pub ne: Vec<usize>,
    pub ty: Precision,
}

impl TensorSpec {
    /// The shape in numpy (row-major) order, as a writer is given it.
    pub fn numpy_shape(&self) -> Vec<usize> {
        self.ne.iter().rev().copied().collect()
    }
}

/// Every tensor `whisper_model_load` creates for these hyper-parameters, with its ggml
/// dimensions and type, in the order OpenAI's state dict (and so whisper's own converter)
/// lists them. `None` if `ftype` is not one we know (see [`HParams::validate`]).
pub fn expected_tensors(hp: &HParams) -> Option<Vec<TensorSpec>> {
    let w = hp.precision()?;
    let conv = hp.conv_precision()?;
    let f32 = Precision::F32;
    let us = |v: i32| v.max(0) as usize;
    let (n_audio, n_text) = (us(hp.n_audio_state), us(hp.n_text_state));
    let mut out = Vec::new();
    let mut add = |name: String, ne: &[usize], ty: Precision| {
        out.push(TensorSpec {
            name,
            ne: ne.to_vec(),
            ty,
        })
    };

    add(
        "encoder.positional_embedding".into(),
        &[n_audio, us(hp.n_audio_ctx)],
        f32,
    );
    add(
        "encoder.conv1.weight".into(),
        &[3, us(hp.n_mels), n_audio],
        conv,
    );
    add("encoder.conv1.bias".into(), &[1, n_audio], f32);
    add("encoder.conv2.weight".into(), &[3, n_audio, n_audio], conv);
    add("encoder.conv2.bias".into(), &[1, n_audio], f32);
    let attention = |add: &mut dyn FnMut(String, &[usize], Precision), p: &str, n: usize| {
        add(format!("{p}.query.weight"), &[n, n], w);
        add(format!("{p}.query.bias"), &[n], f32);
        add(format!("{p}.key.weight"), &[n, n], w);
        add(format!("{p}.value.weight"), &[n, n], w);
        add(format!("{p}.value.bias"), &[n], f32);
        add(format!("{p}.out.weight"), &[n, n], w);
        add(format!("{p}.out.bias"), &[n], f32);
    };
    let norm = |add: &mut dyn FnMut(String, &[usize], Precision), p: &str, n: usize| {
        add(format!("{p}.weight"), &[n], f32);
        add(format!("{p}.bias"), &[n], f32);
    };
    let mlp = |add: &mut dyn FnMut(String, &[usize], Precision), p: &str, n: usize| {
        add(format!("{p}.mlp.0.weight"), &[n, 4 * n], w);
        add(format!("{p}.mlp.0.bias"), &[4 * n], f32);
        add(format!("{p}.mlp.2.weight"), &[4 * n, n], w);
        add(format!("{p}.mlp.2.bias"), &[n], f32);
    };
    for i in 0..us(hp.n_audio_layer) {
        let p = format!("encoder.blocks.{i}");
        attention(&mut add, &format!("{p}.attn"), n_audio);
        norm(&mut add, &format!("{p}.attn_ln"), n_audio);
        mlp(&mut add, &p, n_audio);
        norm(&mut add, &format!("{p}.mlp_ln"), n_audio);
    }
    norm(&mut add, "encoder.ln_post", n_audio);

    add(
        "decoder.positional_embedding".into(),
        &[n_text, us(hp.n_text_ctx)],
        f32,
    );
    add(
        "decoder.token_embedding.weight".into(),
        &[n_text, us(hp.n_vocab)],
        w,
    );
    for i in 0..us(hp.n_text_layer) {
        let p = format!("decoder.blocks.{i}");
        attention(&mut add, &format!("{p}.attn"), n_text);
        norm(&mut add, &format!("{p}.attn_ln"), n_text);
        attention(&mut add, &format!("{p}.cross_attn"), n_text);
        norm(&mut add, &format!("{p}.cross_attn_ln"), n_text);
        mlp(&mut add, &p, n_text);
        norm(&mut add, &format!("{p}.mlp_ln"), n_text);
    }
    norm(&mut add, "decoder.ln", n_text);
    Some(out)
}

/// Tensor contents handed to [`GgmlWriter::write_tensor`].
#[derive(Debug, Clone, Copy)]
pub enum TensorData<'a> {
    /// Values, encoded by the writer into the tensor's type (F32, F16, or a block
    /// quantisation that [`blocks`] encodes).
    F32(&'a [f32]),
    /// Bytes already in the tensor type's little-endian encoding.
    Raw(&'a [u8]),
}

/// Streams a model file out: the header once, then tensors in any order. Misuse (a tensor
/// before the header, a data length that does not match the shape) is an `InvalidInput`
/// I/O error rather than a panic, so a converter bug cannot take down a server.
pub struct GgmlWriter<W: Write> {
    out: W,
    bytes_written: u64,
    tensor_bytes: u64,
    tensors_written: usize,
    header_written: bool,
}

fn invalid(msg: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, msg)
}

impl<W: Write> GgmlWriter<W> {
    pub fn new(out: W) -> Self {
        Self {
            out,
            bytes_written: 0,
            tensor_bytes: 0,
            tensors_written: 0,
            header_written: false,
        }
    }

    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.out.write_all(bytes)?;
        self.bytes_written += bytes.len() as u64;
        Ok(())
    }

    fn put_i32(&mut self, v: i32) -> std::io::Result<()> {
        self.put(&v.to_le_bytes())
    }

    /// `vocab` holds the raw bytes of tokens `0..vocab.len()`; whisper.cpp names the rest
    /// (up to `n_vocab`) itself.
    pub fn write_header(
        &mut self,
        hp: &HParams,
        mel: &MelFilters,
        vocab: &[Vec<u8>],
    ) -> std::io::Result<()> {
        if self.header_written {
            return Err(invalid("ggml header written twice".into()));
        }
        if mel.data.len() != mel.n_mel * mel.n_fft {
            return Err(invalid(format!(
                "mel filterbank has {} values for {} × {}",
                mel.data.len(),
                mel.n_mel,
                mel.n_fft
            )));
        }
        let to_i32 = |v: usize, what: &str| {
            i32::try_from(v).map_err(|_| invalid(format!("{what} {v} does not fit an i32")))
        };
        let (n_mel, n_fft, n_tokens) = (
            to_i32(mel.n_mel, "n_mel")?,
            to_i32(mel.n_fft, "n_fft")?,
            to_i32(vocab.len(), "vocabulary size")?,
        );
        self.put(&MAGIC.to_le_bytes())?;
        for v in hp.to_array() {
            self.put_i32(v)?;
        }
        self.put_i32(n_mel)?;
        self.put_i32(n_fft)?;
        let floats: Vec<u8> = mel.data.iter().flat_map(|f| f.to_le_bytes()).collect();
        self.put(&floats)?;
        self.put_i32(n_tokens)?;
        for token in vocab {
            let len = u32::try_from(token.len())
                .map_err(|_| invalid(format!("token of {} bytes", token.len())))?;
            self.put(&len.to_le_bytes())?;
            self.put(token)?;
        }
        self.header_written = true;
        Ok(())
    }

    /// Writes one tensor record; `shape` is in numpy (row-major) order and is reversed into
    /// ggml's. Returns the number of data bytes written.
    pub fn write_tensor(
        &mut self,
        name: &str,
        shape: &[usize],
        ty: Precision,
        data: TensorData<'_>,
    ) -> std::io::Result<u64> {
        if !self.header_written {
            return Err(invalid(format!(
                "tensor '{name}' written before the header"
            )));
        }
        if shape.is_empty() || shape.len() > MAX_N_DIMS as usize {
            return Err(invalid(format!("tensor '{name}' has rank {}", shape.len())));
        }
        if name.is_empty() || name.len() > MAX_NAME_BYTES as usize {
            return Err(invalid(format!(
                "tensor name '{name}' has {} bytes",
                name.len()
            )));
        }
        let ne: Vec<usize> = shape.iter().rev().copied().collect();
        let nbytes = ty
            .nbytes(&ne)
            .ok_or_else(|| invalid(format!("tensor '{name}' {ne:?} cannot be stored as {ty}")))?;
        let n_elements: usize = shape.iter().product();
        match data {
            TensorData::Raw(b) if b.len() as u64 != nbytes => {
                return Err(invalid(format!(
                    "tensor '{name}' {ne:?} {ty} needs {nbytes} bytes, got {}",
                    b.len()
                )))
            }
            TensorData::F32(v) if v.len() != n_elements => {
                return Err(invalid(format!(
                    "tensor '{name}' {ne:?} needs {n_elements} values, got {}",
                    v.len()
                )))
            }
            TensorData::F32(_) if !Precision::WRITABLE.contains(&ty) => {
                return Err(invalid(format!(
                    "tensor '{name}': the writer cannot quantise to {ty}"
                )))
            }
            _ => {}
        }
        self.put_i32(ne.len() as i32)?;
        self.put_i32(name.len() as i32)?;
        self.put_i32(ty.id())?;
        for &d in &ne {
            let d = i32::try_from(d)
                .map_err(|_| invalid(format!("tensor '{name}' dimension {d} too large")))?;
            self.put_i32(d)?;
        }
        self.put(name.as_bytes())?;
        match data {
            TensorData::Raw(b) => self.put(b)?,
            TensorData::F32(values) => {
                // Encode in chunks: a whole F32 copy of the token embedding would be 100+ MB.
                // The chunk is a whole number of 32-value blocks, and nbytes() above checked
                // that rows are too, so quantisation blocks never straddle a chunk or a row.
                let mut buf = Vec::with_capacity(64 * 1024);
                for chunk in values.chunks(16 * 1024) {
                    buf.clear();
                    match ty {
                        Precision::F32 => {
                            buf.extend(chunk.iter().flat_map(|v| v.to_le_bytes()));
                        }
                        _ if ty.is_quantised() => blocks::encode(ty, chunk, &mut buf)
                            .map_err(|e| invalid(format!("tensor '{name}': {e}")))?,
                        _ => buf.extend(
                            chunk
                                .iter()
                                .flat_map(|&v| half::f16::from_f32(v).to_le_bytes()),
                        ),
                    }
                    self.put(&buf)?;
                }
            }
        }
        self.tensor_bytes += nbytes;
        self.tensors_written += 1;
        Ok(nbytes)
    }

    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }

    /// Bytes of tensor data (excluding record headers) written so far.
    pub fn tensor_bytes(&self) -> u64 {
        self.tensor_bytes
    }

    pub fn tensors_written(&self) -> usize {
        self.tensors_written
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ModelFileError {
    #[error("{path}: cannot read the model: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path}: not a whisper ggml model (magic 0x{magic:08x}, expected 0x{MAGIC:08x} \"ggml\")"
    )]
    BadMagic { path: PathBuf, magic: u32 },
    #[error(
        "{path}: truncated: {what} needs {needed} bytes at offset {offset} but the file ends at {len}"
    )]
    Truncated {
        path: PathBuf,
        what: String,
        needed: u64,
        offset: u64,
        len: u64,
    },
    #[error("{path}: bad header at offset {offset}: {reason}")]
    BadHeader {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("{path}: tensor #{index} at offset {offset}: {reason}")]
    BadTensor {
        path: PathBuf,
        index: usize,
        offset: u64,
        reason: String,
    },
    #[error("{path}: tensor '{name}' at offset {offset} is not part of a whisper model")]
    UnexpectedTensor {
        path: PathBuf,
        name: String,
        offset: u64,
    },
    #[error(
        "{path}: tensor '{name}' at offset {offset} is {found_ne:?} {found_ty}, but whisper.cpp \
         expects {expected_ne:?} {expected_ty} for these hyper-parameters"
    )]
    TensorMismatch {
        path: PathBuf,
        name: String,
        offset: u64,
        found_ne: Vec<usize>,
        found_ty: Precision,
        expected_ne: Vec<usize>,
        expected_ty: Precision,
    },
    #[error("{path}: tensor '{name}' appears a second time at offset {offset}")]
    DuplicateTensor {
        path: PathBuf,
        name: String,
        offset: u64,
    },
    #[error("{path}: incomplete model: {count} tensors missing, e.g. '{first}'")]
    MissingTensors {
        path: PathBuf,
        count: usize,
        first: String,
    },
    #[error("{path}: {count} trailing bytes after the last tensor, at offset {offset}")]
    TrailingBytes {
        path: PathBuf,
        offset: u64,
        count: u64,
    },
}

/// What [`inspect`] found in a valid file.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelFileInfo {
    pub hparams: HParams,
    pub n_mel: usize,
    pub n_fft: usize,
    /// Tokens stored in the file (whisper.cpp synthesises names for the rest of `n_vocab`).
    pub vocab_len: usize,
    /// In file order.
    pub tensors: Vec<TensorInfo>,
    pub file_len: u64,
}

impl ModelFileInfo {
    pub fn precision(&self) -> Precision {
        // inspect only returns validated hyper-parameters, whose ftype is known.
        self.hparams.precision().unwrap_or(Precision::F16)
    }

    pub fn is_multilingual(&self) -> bool {
        self.hparams.is_multilingual()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    /// ggml order.
    pub ne: Vec<usize>,
    pub ty: Precision,
    /// Offset of the tensor's data in the file.
    pub offset: u64,
    pub nbytes: u64,
}

/// Position-tracking reader whose every read is checked against the file length first, so
/// a bad length fails as "truncated" before anything is allocated for it.
struct Walker<'a> {
    r: BufReader<File>,
    pos: u64,
    len: u64,
    path: &'a Path,
}

impl Walker<'_> {
    fn io(&self, source: std::io::Error) -> ModelFileError {
        ModelFileError::Io {
            path: self.path.to_owned(),
            source,
        }
    }

    fn need(&self, what: &dyn Fn() -> String, n: u64) -> Result<(), ModelFileError> {
        if self.len.saturating_sub(self.pos) < n {
            return Err(ModelFileError::Truncated {
                path: self.path.to_owned(),
                what: what(),
                needed: n,
                offset: self.pos,
                len: self.len,
            });
        }
        Ok(())
    }

    fn bytes(&mut self, what: &dyn Fn() -> String, n: u64) -> Result<Vec<u8>, ModelFileError> {
        self.need(what, n)?;
        let mut b = vec![0u8; n as usize];
        self.r.read_exact(&mut b).map_err(|e| self.io(e))?;
        self.pos += n;
        Ok(b)
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32, ModelFileError> {
        self.need(what, 4)?;
        let mut b = [0u8; 4];
        self.r.read_exact(&mut b).map_err(|e| self.io(e))?;
        self.pos += 4;
        Ok(u32::from_le_bytes(b))
    }

    fn i32(&mut self, what: &dyn Fn() -> String) -> Result<i32, ModelFileError> {
        Ok(self.u32(what)? as i32)
    }

    fn skip(&mut self, what: &dyn Fn() -> String, n: u64) -> Result<(), ModelFileError> {
        self.need(what, n)?;
        let step = i64::try_from(n).map_err(|_| self.io(std::io::ErrorKind::InvalidData.into()))?;
        self.r.seek_relative(step).map_err(|e| self.io(e))?;
        self.pos += n;
        Ok(())
    }

    fn bad_header(&self, offset: u64, reason: String) -> ModelFileError {
        ModelFileError::BadHeader {
            path: self.path.to_owned(),
            offset,
            reason,
        }
    }
}

/// Walks the whole file, seeking over tensor data, and checks that it is a complete whisper
/// model whisper.cpp's loader will accept and run: sane header, a filterbank of the size its
/// mel code asserts, a vocabulary containing `" "`, and exactly the tensors (names, ggml
/// dimensions, types) the loader creates for these hyper-parameters, each complete, with
/// nothing after the last.
pub fn inspect(path: &Path) -> Result<ModelFileInfo, ModelFileError> {
    inspect_with_header(path).map(|(info, _)| info)
}

/// Everything before a model file's first tensor, as [`GgmlWriter::write_header`] takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelHeader {
    pub hparams: HParams,
    pub mel: MelFilters,
    /// Raw bytes of the tokens stored in the file.
    pub vocab: Vec<Vec<u8>>,
}

/// [`inspect`], also returning the header's contents, for tools that rewrite a model.
pub fn inspect_with_header(path: &Path) -> Result<(ModelFileInfo, ModelHeader), ModelFileError> {
    let io = |source| ModelFileError::Io {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let mut w = Walker {
        r: BufReader::with_capacity(256 * 1024, file),
        pos: 0,
        len,
        path,
    };

    let magic = w.u32(&|| "the magic number".into())?;
    if magic != MAGIC {
        return Err(ModelFileError::BadMagic {
            path: path.to_owned(),
            magic,
        });
    }
    let mut hp = [0i32; 11];
    for (i, v) in hp.iter_mut().enumerate() {
        *v = w.i32(&|| format!("hyper-parameter #{i}"))?;
    }
    let hparams = HParams::from_array(hp);
    hparams.validate().map_err(|r| w.bad_header(4, r))?;

    let mel_at = w.pos;
    let n_mel = w.i32(&|| "the mel filterbank size".into())?;
    let n_fft = w.i32(&|| "the mel filterbank size".into())?;
    if n_mel != hparams.n_mels || n_fft != N_FFT_BINS as i32 {
        return Err(w.bad_header(
            mel_at,
            format!(
                "mel filterbank is {n_mel} × {n_fft}, whisper.cpp needs n_mels × {N_FFT_BINS} = \
                 {} × {N_FFT_BINS}",
                hparams.n_mels
            ),
        ));
    }
    let mel_data: Vec<f32> = w
        .bytes(
            &|| "the mel filterbank".into(),
            n_mel as u64 * n_fft as u64 * 4,
        )?
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();

    let vocab_at = w.pos;
    let vocab_len = w.i32(&|| "the vocabulary size".into())?;
    if !(0..=hparams.n_vocab).contains(&vocab_len) {
        return Err(w.bad_header(
            vocab_at,
            format!(
                "{vocab_len} vocabulary tokens for n_vocab {}",
                hparams.n_vocab
            ),
        ));
    }
    let mut has_space = false;
    let mut vocab = Vec::with_capacity(vocab_len as usize);
    for i in 0..vocab_len {
        let at = w.pos;
        let n = w.u32(&|| format!("the length of vocabulary token {i}"))?;
        if n > MAX_TOKEN_BYTES {
            return Err(w.bad_header(at, format!("vocabulary token {i} claims {n} bytes")));
        }
        let token = w.bytes(&|| format!("vocabulary token {i}"), u64::from(n))?;
        has_space |= token == b" ";
        vocab.push(token);
    }
    if !has_space {
        // whisper_full looks up " " with std::map::at when suppressing blanks.
        return Err(w.bad_header(
            vocab_at,
            format!(
                "the {vocab_len}-token vocabulary lacks the token \" \" that whisper.cpp needs"
            ),
        ));
    }

    let expected: BTreeMap<String, TensorSpec> = expected_tensors(&hparams)
        .unwrap_or_default()
        .into_iter()
        .map(|t| (t.name.clone(), t))
        .collect();
    let mut tensors: Vec<TensorInfo> = Vec::with_capacity(expected.len());
    let mut seen = BTreeSet::new();
    while w.pos < w.len {
        let index = tensors.len();
        let at = w.pos;
        if seen.len() == expected.len() {
            return Err(ModelFileError::TrailingBytes {
                path: path.to_owned(),
                offset: at,
                count: w.len - at,
            });
        }
        let header = || format!("the header of tensor #{index}");
        let n_dims = w.i32(&header)?;
        let name_len = w.i32(&header)?;
        let ty_id = w.i32(&header)?;
        let bad = |reason: String| ModelFileError::BadTensor {
            path: path.to_owned(),
            index,
            offset: at,
            reason,
        };
        if !(1..=MAX_N_DIMS).contains(&n_dims) {
            return Err(bad(format!(
                "n_dims {n_dims} (whisper.cpp reads at most {MAX_N_DIMS})"
            )));
        }
        if !(1..=MAX_NAME_BYTES).contains(&name_len) {
            return Err(bad(format!("name length {name_len}")));
        }
        let mut ne = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            let d = w.i32(&|| format!("the dimensions of tensor #{index}"))?;
            if d <= 0 {
                return Err(bad(format!("dimension {d}")));
            }
            ne.push(d as usize);
        }
        let name = w.bytes(&|| format!("the name of tensor #{index}"), name_len as u64)?;
        let name = String::from_utf8(name).map_err(|_| bad("the name is not UTF-8".into()))?;
        let ty = Precision::from_id(ty_id).ok_or_else(|| {
            bad(format!(
                "'{name}' has type id {ty_id}, not one whisper.cpp model files use"
            ))
        })?;
        let Some(spec) = expected.get(&name) else {
            return Err(ModelFileError::UnexpectedTensor {
                path: path.to_owned(),
                name,
                offset: at,
            });
        };
        if !seen.insert(name.clone()) {
            return Err(ModelFileError::DuplicateTensor {
                path: path.to_owned(),
                name,
                offset: at,
            });
        }
        // whisper.cpp compares the first dimensions and the element count, so trailing 1s
        // are insignificant; the type must match exactly or the byte size check fails.
        let padded = |v: &[usize]| {
            let mut v = v.to_vec();
            v.resize(MAX_N_DIMS as usize, 1);
            v
        };
        if padded(&ne) != padded(&spec.ne) || ty != spec.ty {
            return Err(ModelFileError::TensorMismatch {
                path: path.to_owned(),
                name,
                offset: at,
                found_ne: ne,
                found_ty: ty,
                expected_ne: spec.ne.clone(),
                expected_ty: spec.ty,
            });
        }
        let nbytes = ty.nbytes(&ne).ok_or_else(|| {
            bad(format!(
                "'{name}' {ne:?} is not a whole number of {ty} blocks"
            ))
        })?;
        let offset = w.pos;
        w.skip(&|| format!("tensor '{name}'"), nbytes)?;
        tensors.push(TensorInfo {
            name,
            ne,
            ty,
            offset,
            nbytes,
        });
    }
    if seen.len() != expected.len() {
        let missing: Vec<&String> = expected.keys().filter(|k| !seen.contains(*k)).collect();
        return Err(ModelFileError::MissingTensors {
            path: path.to_owned(),
            count: missing.len(),
            first: missing.first().map_or_else(String::new, |s| (*s).clone()),
        });
    }
    let info = ModelFileInfo {
        hparams,
        n_mel: n_mel as usize,
        n_fft: n_fft as usize,
        vocab_len: vocab_len as usize,
        tensors,
        file_len: len,
    };
    let header = ModelHeader {
        hparams,
        mel: MelFilters {
            n_mel: n_mel as usize,
            n_fft: n_fft as usize,
            data: mel_data,
        },
        vocab,
    };
    Ok((info, header))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small_hparams(weight: Precision) -> HParams {
        HParams::small(weight.ftype())
    }

    fn mel(n_mel: usize) -> MelFilters {
        MelFilters {
            n_mel,
            n_fft: N_FFT_BINS,
            data: vec![0.25; n_mel * N_FFT_BINS],
        }
    }

    fn vocab() -> Vec<Vec<u8>> {
        vec![b"!".to_vec(), b" ".to_vec(), Vec::new(), b" the".to_vec()]
    }

    /// Writes the expected tensors, letting `edit` drop (None) or alter each one.
    fn model_with(hp: &HParams, mut edit: impl FnMut(TensorSpec) -> Option<TensorSpec>) -> Vec<u8> {
        let mut w = GgmlWriter::new(Vec::new());
        w.write_header(hp, &mel(hp.n_mels as usize), &vocab())
            .unwrap();
        for t in expected_tensors(hp).unwrap() {
            let Some(t) = edit(t) else { continue };
            let n = t.ty.nbytes(&t.ne).unwrap() as usize;
            w.write_tensor(
                &t.name,
                &t.numpy_shape(),
                t.ty,
                TensorData::Raw(&vec![0u8; n]),
            )
            .unwrap();
        }
        w.into_inner()
    }

    fn model(hp: &HParams) -> Vec<u8> {
        model_with(hp, Some)
    }

    fn inspect_bytes(
        bytes: &[u8],
    ) -> (
        tempfile::TempDir,
        PathBuf,
        Result<ModelFileInfo, ModelFileError>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.bin");
        std::fs::write(&path, bytes).unwrap();
        let r = inspect(&path);
        (dir, path, r)
    }

    /// Runs inspect and returns the error and its message, checking the message names the file.
    fn reject(bytes: &[u8]) -> (ModelFileError, String) {
        let (_dir, path, r) = inspect_bytes(bytes);
        let e = r.expect_err("inspect accepted a bad file");
        let msg = e.to_string();
        assert!(msg.starts_with(&format!("{}: ", path.display())), "{msg}");
        (e, msg)
    }

    #[test]
    fn complete_model_passes_and_is_described() {
        let hp = small_hparams(Precision::F16);
        let bytes = model(&hp);
        let (_d, _p, r) = inspect_bytes(&bytes);
        let info = r.unwrap();
        assert_eq!(info.hparams, hp);
        assert_eq!((info.n_mel, info.n_fft, info.vocab_len), (2, 201, 4));
        // 5 encoder inputs + 2 ln_post + 2 decoder inputs + 2 decoder ln + 15 + 24 per block.
        assert_eq!(info.tensors.len(), 11 + 15 + 24);
        assert_eq!(info.file_len, bytes.len() as u64);
        let last = info.tensors.last().unwrap();
        assert_eq!(last.offset + last.nbytes, bytes.len() as u64);
        let te = info
            .tensors
            .iter()
            .find(|t| t.name == "decoder.token_embedding.weight")
            .unwrap();
        assert_eq!(
            (te.ne.clone(), te.ty, te.nbytes),
            (vec![32, 51864], Precision::F16, 32 * 51864 * 2)
        );
        let bias = info
            .tensors
            .iter()
            .find(|t| t.name == "encoder.conv1.bias")
            .unwrap();
        assert_eq!((bias.ne.clone(), bias.ty), (vec![1, 32], Precision::F32));
        assert!(!info.is_multilingual());
        assert_eq!(info.precision(), Precision::F16);
    }

    #[test]
    fn f32_and_quantised_models_pass_with_whisper_cpp_conv_types() {
        for wt in [Precision::F32, Precision::Q8_0, Precision::Q5_1] {
            let mut hp = small_hparams(wt);
            hp.ftype += 2 * QNT_VERSION_FACTOR * i32::from(wt != Precision::F32);
            let (_d, _p, r) = inspect_bytes(&model(&hp));
            let info = r.unwrap_or_else(|e| panic!("{wt}: {e}"));
            let ty = |n: &str| info.tensors.iter().find(|t| t.name == n).unwrap().ty;
            assert_eq!(ty("encoder.blocks.0.attn.query.weight"), wt);
            let conv = if wt == Precision::F32 {
                Precision::F32
            } else {
                Precision::F16
            };
            assert_eq!(ty("encoder.conv2.weight"), conv);
            assert_eq!(ty("decoder.blocks.0.mlp.2.bias"), Precision::F32);
        }
    }

    #[test]
    fn truncation_at_every_stage_is_reported_with_what_and_where() {
        let bytes = model(&small_hparams(Precision::F16));
        let hdr = 4 + 11 * 4;
        let mel_end = hdr + 8 + 2 * 201 * 4;
        let vocab_end = mel_end + 4 + (4 + 1) + (4 + 1) + 4 + (4 + 4);
        let cases = [
            (2, "the magic number"),
            (hdr - 1, "hyper-parameter #10"),
            (hdr + 6, "the mel filterbank size"),
            (hdr + 100, "the mel filterbank"),
            (mel_end + 2, "the vocabulary size"),
            (mel_end + 8, "vocabulary token 0"),
            (vocab_end - 2, "vocabulary token 3"),
            (vocab_end + 5, "the header of tensor #0"),
            (vocab_end + 12 + 3, "the dimensions of tensor #0"),
            (vocab_end + 12 + 8 + 5, "the name of tensor #0"),
            (
                vocab_end + 12 + 8 + 28 + 7,
                "tensor 'encoder.positional_embedding'",
            ),
            (bytes.len() - 1, "tensor 'decoder.ln.bias'"),
        ];
        for (cut, what) in cases {
            let (e, msg) = reject(&bytes[..cut]);
            match e {
                ModelFileError::Truncated { what: w, len, .. } => {
                    assert_eq!((w.as_str(), len), (what, cut as u64), "{msg}")
                }
                other => panic!("cut at {cut}: expected Truncated, got {other}"),
            }
        }
        let (_, msg) = reject(&bytes[..bytes.len() - 1]);
        assert!(
            msg.contains(&format!(
                "truncated: tensor 'decoder.ln.bias' needs 128 bytes at offset {} but the file ends at {}",
                bytes.len() - 128,
                bytes.len() - 1
            )),
            "{msg}"
        );
        // Ending cleanly between tensors is not truncation but an incomplete model.
        let info = inspect_bytes(&bytes).2.unwrap();
        let cut = info.tensors[3].offset + info.tensors[3].nbytes;
        let (e, msg) = reject(&bytes[..cut as usize]);
        assert!(
            matches!(e, ModelFileError::MissingTensors { count: 46, .. }),
            "{msg}"
        );
    }

    #[test]
    fn wrong_magic_and_trailing_bytes_are_named() {
        let hp = small_hparams(Precision::F16);
        let mut bytes = model(&hp);
        bytes[..4].copy_from_slice(b"GGUF");
        let (e, msg) = reject(&bytes);
        assert!(
            matches!(
                e,
                ModelFileError::BadMagic {
                    magic: 0x4655_4747,
                    ..
                }
            ),
            "{msg}"
        );
        assert!(
            msg.contains("not a whisper ggml model (magic 0x46554747"),
            "{msg}"
        );

        for garbage in [&b"xyz"[..], &[7u8; 100][..]] {
            let mut bytes = model(&hp);
            let end = bytes.len() as u64;
            bytes.extend_from_slice(garbage);
            let (e, msg) = reject(&bytes);
            match e {
                ModelFileError::TrailingBytes { offset, count, .. } => {
                    assert_eq!((offset, count), (end, garbage.len() as u64), "{msg}")
                }
                other => panic!("expected TrailingBytes, got {other}"),
            }
        }
    }

    #[test]
    fn tensors_must_match_the_loader_exactly() {
        let hp = small_hparams(Precision::F16);

        let (e, msg) = reject(&model_with(&hp, |mut t| {
            if t.name == "encoder.conv1.weight" {
                t.ne = vec![3, 32, 2];
            }
            Some(t)
        }));
        assert!(
            matches!(e, ModelFileError::TensorMismatch { ref name, .. } if name == "encoder.conv1.weight"),
            "{msg}"
        );
        assert!(
            msg.contains("is [3, 32, 2] f16, but whisper.cpp expects [3, 2, 32] f16"),
            "{msg}"
        );

        let (e, msg) = reject(&model_with(&hp, |mut t| {
            if t.name == "decoder.blocks.0.attn.out.weight" {
                t.ty = Precision::F32;
            }
            Some(t)
        }));
        assert!(matches!(e, ModelFileError::TensorMismatch { .. }), "{msg}");

        let (e, msg) = reject(&model_with(&hp, |mut t| {
            if t.name == "encoder.blocks.0.attn.value.weight" {
                t.name = "encoder.blocks.0.attn.key.bias".into();
                t.ne = vec![32];
                t.ty = Precision::F32;
            }
            Some(t)
        }));
        assert!(
            matches!(e, ModelFileError::UnexpectedTensor { ref name, .. } if name == "encoder.blocks.0.attn.key.bias"),
            "{msg}"
        );

        let (e, msg) = reject(&model_with(&hp, |t| {
            (t.name != "decoder.ln.weight").then_some(t)
        }));
        assert!(
            matches!(e, ModelFileError::MissingTensors { count: 1, ref first, .. } if first == "decoder.ln.weight"),
            "{msg}"
        );

        let (e, msg) = reject(&model_with(&hp, |mut t| {
            if t.name == "decoder.ln.weight" {
                t.name = "decoder.ln.bias".into();
            }
            Some(t)
        }));
        assert!(matches!(e, ModelFileError::DuplicateTensor { .. }), "{msg}");

        // Trailing 1s are insignificant to whisper.cpp, so they are to us.
        let (_d, _p, r) = inspect_bytes(&model_with(&hp, |mut t| {
            if t.name == "encoder.ln_post.bias" {
                t.ne.push(1);
            }
            Some(t)
        }));
        assert_eq!(
            r.unwrap()
                .tensors
                .iter()
                .find(|t| t.name == "encoder.ln_post.bias")
                .unwrap()
                .ne,
            vec![32, 1]
        );
    }

    /// Patches the first tensor header (n_dims, name_len, type) of a valid file.
    fn with_first_tensor_header(field: usize, value: i32) -> Vec<u8> {
        let mut bytes = model(&small_hparams(Precision::F16));
        let at = inspect_bytes(&bytes).2.unwrap().tensors[0].offset as usize
            - "encoder.positional_embedding".len()
            - 2 * 4
            - 3 * 4;
        bytes[at + 4 * field..at + 4 * field + 4].copy_from_slice(&value.to_le_bytes());
        bytes
    }

    #[test]
    fn absurd_tensor_headers_are_refused_before_allocating() {
        for (field, value, needle) in [
            (0, 5, "n_dims 5"),
            (0, -1, "n_dims -1"),
            (1, 0, "name length 0"),
            (1, i32::MIN, "name length -2147483648"),
            (2, 14, "type id 14"),
        ] {
            let (e, msg) = reject(&with_first_tensor_header(field, value));
            assert!(
                matches!(e, ModelFileError::BadTensor { index: 0, .. }),
                "{msg}"
            );
            assert!(msg.contains(needle), "{msg}");
        }
    }

    #[test]
    fn bad_hyper_parameters_filterbank_and_vocabulary_are_header_errors() {
        let base = small_hparams(Precision::F16);
        type Edit = fn(&mut HParams);
        let cases: [(Edit, &str); 5] = [
            (
                |h| h.n_text_state = 64,
                "n_audio_state 32 differs from n_text_state 64",
            ),
            (
                |h| h.n_text_head = 5,
                "n_text_state 32 is not a multiple of n_text_head 5",
            ),
            (|h| h.n_vocab = 1000, "n_vocab is 1000"),
            (|h| h.ftype = 5, "ftype 5"),
            (|h| h.n_audio_layer = -1, "n_audio_layer is -1"),
        ];
        for (edit, needle) in cases {
            let mut hp = base;
            edit(&mut hp);
            let mut bytes = model(&base);
            for (i, v) in hp.to_array().iter().enumerate() {
                bytes[4 + 4 * i..8 + 4 * i].copy_from_slice(&v.to_le_bytes());
            }
            let (e, msg) = reject(&bytes);
            assert!(
                matches!(e, ModelFileError::BadHeader { offset: 4, .. }),
                "{msg}"
            );
            assert!(msg.contains(needle), "{msg}");
        }

        let mut w = GgmlWriter::new(Vec::new());
        let filters = MelFilters {
            n_mel: 2,
            n_fft: 200,
            data: vec![0.0; 400],
        };
        w.write_header(&base, &filters, &vocab()).unwrap();
        let (_, msg) = reject(&w.into_inner());
        assert!(msg.contains("mel filterbank is 2 × 200"), "{msg}");

        let mut w = GgmlWriter::new(Vec::new());
        w.write_header(&base, &mel(2), &[b"a".to_vec()]).unwrap();
        let (_, msg) = reject(&w.into_inner());
        assert!(msg.contains("lacks the token \" \""), "{msg}");
    }

    #[test]
    fn writer_encodes_values_reverses_shapes_and_refuses_misuse() {
        let hp = small_hparams(Precision::F16);
        let mut w = GgmlWriter::new(Vec::new());
        assert!(w
            .write_tensor("x", &[1], Precision::F32, TensorData::F32(&[1.0]))
            .is_err());
        w.write_header(&hp, &mel(2), &vocab()).unwrap();
        let start = w.bytes_written() as usize;
        let n = w
            .write_tensor(
                "t",
                &[2, 3],
                Precision::F16,
                TensorData::F32(&[1.0, -2.0, 0.5, 3.0, 65504.0, 1e-6]),
            )
            .unwrap();
        assert_eq!(n, 12);
        assert_eq!(w.tensor_bytes(), 12);
        assert!(w
            .write_tensor("t", &[2, 3], Precision::F16, TensorData::F32(&[1.0]))
            .is_err());
        assert!(w
            .write_tensor("t", &[2], Precision::F32, TensorData::Raw(&[0; 4]))
            .is_err());
        assert!(w
            .write_tensor("t", &[2, 32], Precision::Q4_0, TensorData::F32(&[0.0; 64]))
            .is_err());
        let bytes = w.into_inner();
        let rec = &bytes[start..];
        let i32_at = |i: usize| i32::from_le_bytes(rec[4 * i..4 * i + 4].try_into().unwrap());
        assert_eq!(
            (i32_at(0), i32_at(1), i32_at(2), i32_at(3), i32_at(4)),
            (2, 1, 1, 3, 2)
        );
        assert_eq!(rec[20], b't');
        let values: Vec<f32> = rec[21..]
            .chunks(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect();
        assert_eq!(values[..5], [1.0, -2.0, 0.5, 3.0, 65504.0]);
        assert!(
            (values[5] - 1e-6).abs() < 3e-8,
            "subnormal f16 kept: {}",
            values[5]
        );
    }

    #[test]
    fn writer_quantises_values_with_the_block_encoder() {
        let values: Vec<f32> = (0..96).map(|i| (i as f32 * 0.7).sin()).collect();
        for ty in [Precision::Q8_0, Precision::Q5_0, Precision::Q5_1] {
            let mut w = GgmlWriter::new(Vec::new());
            w.write_header(&small_hparams(ty), &mel(2), &vocab())
                .unwrap();
            let start = w.bytes_written() as usize;
            let n = w
                .write_tensor("q", &[3, 32], ty, TensorData::F32(&values))
                .unwrap();
            assert_eq!(n, 3 * ty.block_bytes() as u64);
            let mut want = Vec::new();
            blocks::encode(ty, &values, &mut want).unwrap();
            let bytes = w.into_inner();
            // Record header: n_dims, name length, type, two dimensions, one-byte name.
            assert_eq!(bytes[start + 8..start + 12], ty.id().to_le_bytes());
            assert_eq!(bytes[start + 21..], want[..], "{ty}");
        }
        let mut w = GgmlWriter::new(Vec::new());
        w.write_header(&small_hparams(Precision::Q8_0), &mel(2), &vocab())
            .unwrap();
        let e = w
            .write_tensor(
                "odd",
                &[2, 48],
                Precision::Q8_0,
                TensorData::F32(&[0.0; 96]),
            )
            .unwrap_err();
        assert!(e.to_string().contains("cannot be stored as q8_0"), "{e}");
    }

    #[test]
    fn quantised_ftypes_carry_the_quantisation_version() {
        assert_eq!(Precision::Q8_0.file_ftype(), 2007);
        assert_eq!(Precision::Q5_1.file_ftype(), 2009);
        assert_eq!(Precision::Q5_0.file_ftype(), 2008);
        assert_eq!(Precision::F16.file_ftype(), 1);
        for t in [
            Precision::Q8_0,
            Precision::Q5_0,
            Precision::Q5_1,
            Precision::F16,
        ] {
            assert_eq!(Precision::from_ftype(t.file_ftype()), Some(t));
        }
    }

    #[test]
    fn type_sizes_match_ggml() {
        assert_eq!(Precision::Q8_0.nbytes(&[64, 3]), Some(2 * 3 * 34));
        assert_eq!(Precision::Q5_1.nbytes(&[32]), Some(24));
        assert_eq!(Precision::Q4_0.nbytes(&[33]), None);
        assert_eq!(Precision::F16.nbytes(&[3, 80, 384]), Some(3 * 80 * 384 * 2));
        for t in [
            Precision::F32,
            Precision::F16,
            Precision::Q4_0,
            Precision::Q4_1,
            Precision::Q5_0,
            Precision::Q5_1,
            Precision::Q8_0,
        ] {
            assert_eq!(Precision::from_id(t.id()), Some(t));
            assert_eq!(Precision::from_ftype(t.ftype() + 2000), Some(t));
        }
        assert_eq!(
            Precision::from_ftype(4),
            None,
            "Q4_1_SOME_F16 aborts whisper.cpp"
        );
    }
}
