//! whisper.cpp's (legacy, non-GGUF) model file: writer and validating reader.
//!
//! Layout, as `whisper_model_load` reads it: `u32 magic "ggml"` · eleven `i32` hyper-parameters
//! · mel filterbank (`i32 n_mel`, `i32 n_fft`, `f32 × n_mel·n_fft`) · vocabulary (`i32 n`, then
//! `u32 len` + bytes each) · tensors until EOF (`i32 n_dims`, `i32 name_len`, `i32 type`,
//! `i32 ne[n_dims]` in ggml order = numpy shape reversed, name, raw data; no padding).
//!
//! whisper.cpp trusts these numbers (a bad `n_dims` or a short tensor can crash it), so
//! [`inspect`] re-reads the whole structure with bounds checks and compares every tensor
//! with what the loader will create for those hyper-parameters ([`expected_tensors`]).

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

pub const MAGIC: u32 = 0x6767_6d6c;

/// Tensor element types we write. The discriminant is ggml's type id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgmlType {
    F32 = 0,
    F16 = 1,
}

impl GgmlType {
    pub fn from_id(id: i32) -> Option<Self> {
        match id {
            0 => Some(GgmlType::F32),
            1 => Some(GgmlType::F16),
            _ => None,
        }
    }

    pub fn size(self) -> usize {
        match self {
            GgmlType::F32 => 4,
            GgmlType::F16 => 2,
        }
    }

    /// whisper.cpp's `ftype` hyper-parameter for models whose matrices have this type.
    pub fn ftype(self) -> i32 {
        self as i32
    }
}

/// Model hyper-parameters, in file order.
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

impl HParams {
    fn as_array(&self) -> [i32; 11] {
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

    fn from_array(a: [i32; 11]) -> Self {
        HParams {
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

    /// Whether the values are ones whisper.cpp can build a model from.
    pub fn check(&self) -> Result<(), String> {
        let a = self.as_array();
        if a[..10].iter().any(|&v| v <= 0) {
            return Err(format!("non-positive hyper-parameter in {self:?}"));
        }
        if self.n_audio_state != self.n_text_state {
            return Err(format!(
                "n_audio_state {} != n_text_state {} (whisper.cpp asserts they are equal)",
                self.n_audio_state, self.n_text_state
            ));
        }
        if self.n_vocab > 1_000_000
            || self.n_audio_ctx > 100_000
            || self.n_text_ctx > 100_000
            || self.n_audio_state > 65_536
        {
            return Err(format!("implausible hyper-parameters {self:?}"));
        }
        if self.n_audio_layer > 256 || self.n_text_layer > 256 || self.n_mels > 1024 {
            return Err(format!("implausible hyper-parameters {self:?}"));
        }
        if self.weight_type().is_none() {
            return Err(format!(
                "ftype {} is not one callscribe reads (0 = f32, 1 = f16)",
                self.ftype
            ));
        }
        Ok(())
    }

    /// Type of the large matrices.
    pub fn weight_type(&self) -> Option<GgmlType> {
        GgmlType::from_id(self.ftype % 1000)
    }

    pub fn is_multilingual(&self) -> bool {
        self.n_vocab >= 51865
    }
}

/// One tensor as whisper.cpp's loader will allocate it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: String,
    /// ggml order (fastest-varying first).
    pub ne: Vec<usize>,
    pub ty: GgmlType,
}

/// Every tensor whisper.cpp creates for these hyper-parameters, in the order whisper's own
/// converter writes them.
pub fn expected_tensors(hp: &HParams) -> Vec<TensorSpec> {
    let w = hp.weight_type().unwrap_or(GgmlType::F16);
    let f32 = GgmlType::F32;
    let (a, t) = (hp.n_audio_state as usize, hp.n_text_state as usize);
    let mut out = Vec::new();
    let mut add = |name: String, ne: &[usize], ty: GgmlType| {
        out.push(TensorSpec {
            name,
            ne: ne.to_vec(),
            ty,
        })
    };
    add(
        "encoder.positional_embedding".into(),
        &[a, hp.n_audio_ctx as usize],
        f32,
    );
    add(
        "encoder.conv1.weight".into(),
        &[3, hp.n_mels as usize, a],
        w,
    );
    add("encoder.conv1.bias".into(), &[1, a], f32);
    add("encoder.conv2.weight".into(), &[3, a, a], w);
    add("encoder.conv2.bias".into(), &[1, a], f32);
    let block =
        |add: &mut dyn FnMut(String, &[usize], GgmlType), prefix: &str, n: usize, cross: bool| {
            let attn = |add: &mut dyn FnMut(String, &[usize], GgmlType), p: &str, ln: &str| {
                add(format!("{prefix}.{ln}.weight"), &[n], f32);
                add(format!("{prefix}.{ln}.bias"), &[n], f32);
                add(format!("{prefix}.{p}.query.weight"), &[n, n], w);
                add(format!("{prefix}.{p}.query.bias"), &[n], f32);
                add(format!("{prefix}.{p}.key.weight"), &[n, n], w);
                add(format!("{prefix}.{p}.value.weight"), &[n, n], w);
                add(format!("{prefix}.{p}.value.bias"), &[n], f32);
                add(format!("{prefix}.{p}.out.weight"), &[n, n], w);
                add(format!("{prefix}.{p}.out.bias"), &[n], f32);
            };
            attn(add, "attn", "attn_ln");
            if cross {
                attn(add, "cross_attn", "cross_attn_ln");
            }
            add(format!("{prefix}.mlp_ln.weight"), &[n], f32);
            add(format!("{prefix}.mlp_ln.bias"), &[n], f32);
            add(format!("{prefix}.mlp.0.weight"), &[n, 4 * n], w);
            add(format!("{prefix}.mlp.0.bias"), &[4 * n], f32);
            add(format!("{prefix}.mlp.2.weight"), &[4 * n, n], w);
            add(format!("{prefix}.mlp.2.bias"), &[n], f32);
        };
    for i in 0..hp.n_audio_layer as usize {
        block(&mut add, &format!("encoder.blocks.{i}"), a, false);
    }
    add("encoder.ln_post.weight".into(), &[a], f32);
    add("encoder.ln_post.bias".into(), &[a], f32);
    add(
        "decoder.positional_embedding".into(),
        &[t, hp.n_text_ctx as usize],
        f32,
    );
    add(
        "decoder.token_embedding.weight".into(),
        &[t, hp.n_vocab as usize],
        w,
    );
    for i in 0..hp.n_text_layer as usize {
        block(&mut add, &format!("decoder.blocks.{i}"), t, true);
    }
    add("decoder.ln.weight".into(), &[t], f32);
    add("decoder.ln.bias".into(), &[t], f32);
    out
}

/// Streams a model file out: header first, then tensors in any order.
pub struct GgmlWriter<W: Write> {
    out: W,
    written: u64,
}

impl<W: Write> GgmlWriter<W> {
    pub fn new(out: W) -> Self {
        Self { out, written: 0 }
    }

    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// `filters` is `n_mel × n_fft` row-major; `vocab` holds the byte strings of the tokens.
    pub fn write_header(
        &mut self,
        hp: &HParams,
        n_mel: usize,
        n_fft: usize,
        filters: &[f32],
        vocab: &[Vec<u8>],
    ) -> std::io::Result<()> {
        assert_eq!(filters.len(), n_mel * n_fft, "filterbank size");
        self.put(&MAGIC.to_le_bytes())?;
        for v in hp.as_array() {
            self.put(&v.to_le_bytes())?;
        }
        self.put(&(n_mel as i32).to_le_bytes())?;
        self.put(&(n_fft as i32).to_le_bytes())?;
        for f in filters {
            self.put(&f.to_le_bytes())?;
        }
        self.put(&(vocab.len() as i32).to_le_bytes())?;
        for token in vocab {
            self.put(&(token.len() as u32).to_le_bytes())?;
            self.put(token)?;
        }
        Ok(())
    }

    /// `data` must already be in `ty`'s little-endian encoding.
    pub fn write_tensor(
        &mut self,
        name: &str,
        ne: &[usize],
        ty: GgmlType,
        data: &[u8],
    ) -> std::io::Result<()> {
        let n: usize = ne.iter().product();
        assert_eq!(data.len(), n * ty.size(), "tensor {name}: data size");
        self.put(&(ne.len() as i32).to_le_bytes())?;
        self.put(&(name.len() as i32).to_le_bytes())?;
        self.put(&(ty as i32).to_le_bytes())?;
        for &d in ne {
            self.put(&(d as i32).to_le_bytes())?;
        }
        self.put(name.as_bytes())?;
        self.put(data)
    }

    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ModelFileError {
    #[error("{path}: cannot read model: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path}: not a whisper ggml model (magic 0x{magic:08x}, expected 0x{MAGIC:08x} \"ggml\")"
    )]
    BadMagic { path: PathBuf, magic: u32 },
    #[error("{path}: truncated: {what} needs {needed} bytes at offset {offset} but the file ends at {len}")]
    Truncated {
        path: PathBuf,
        what: String,
        needed: u64,
        offset: u64,
        len: u64,
    },
    #[error("{path}: corrupt model: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

/// What [`inspect`] found.
#[derive(Debug, Clone)]
pub struct ModelFileInfo {
    pub hparams: HParams,
    pub n_mel: usize,
    pub n_fft: usize,
    pub vocab_len: usize,
    pub tensors: Vec<TensorInfo>,
    pub file_len: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    pub ne: Vec<usize>,
    pub ty: GgmlType,
    /// Offset of the tensor's data in the file.
    pub offset: u64,
    pub nbytes: u64,
}

struct Cursor<'a, R> {
    r: R,
    pos: u64,
    len: u64,
    path: &'a Path,
}

impl<R: Read + Seek> Cursor<'_, R> {
    fn need(&self, what: &dyn Fn() -> String, n: u64) -> Result<(), ModelFileError> {
        if self.pos + n > self.len {
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
        self.r
            .read_exact(&mut b)
            .map_err(|source| ModelFileError::Io {
                path: self.path.to_owned(),
                source,
            })?;
        self.pos += n;
        Ok(b)
    }

    fn i32(&mut self, what: &dyn Fn() -> String) -> Result<i32, ModelFileError> {
        let b = self.bytes(what, 4)?;
        Ok(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn skip(&mut self, what: &dyn Fn() -> String, n: u64) -> Result<(), ModelFileError> {
        self.need(what, n)?;
        self.pos =
            self.r
                .seek(SeekFrom::Current(n as i64))
                .map_err(|source| ModelFileError::Io {
                    path: self.path.to_owned(),
                    source,
                })?;
        Ok(())
    }

    fn corrupt(&self, reason: String) -> ModelFileError {
        ModelFileError::Corrupt {
            path: self.path.to_owned(),
            reason,
        }
    }
}

/// Longest token in whisper's vocabularies is well under this; longer means garbage.
const MAX_TOKEN_BYTES: u32 = 1024;
const MAX_NAME_BYTES: i32 = 512;

/// Walks the whole file (without loading tensor data) and checks it is a complete whisper
/// model that whisper.cpp's loader will accept.
pub fn inspect(path: &Path) -> Result<ModelFileInfo, ModelFileError> {
    let file = std::fs::File::open(path).map_err(|source| ModelFileError::Io {
        path: path.to_owned(),
        source,
    })?;
    let len = file
        .metadata()
        .map_err(|source| ModelFileError::Io {
            path: path.to_owned(),
            source,
        })?
        .len();
    let mut c = Cursor {
        r: std::io::BufReader::new(file),
        pos: 0,
        len,
        path,
    };

    let magic_bytes = c.bytes(&|| "the magic number".into(), 4)?;
    let magic = u32::from_le_bytes([
        magic_bytes[0],
        magic_bytes[1],
        magic_bytes[2],
        magic_bytes[3],
    ]);
    if magic != MAGIC {
        return Err(ModelFileError::BadMagic {
            path: path.to_owned(),
            magic,
        });
    }
    let mut hp = [0i32; 11];
    for (i, v) in hp.iter_mut().enumerate() {
        *v = c.i32(&|| format!("hyper-parameter {i}"))?;
    }
    let hparams = HParams::from_array(hp);
    hparams.check().map_err(|r| c.corrupt(r))?;

    let n_mel = c.i32(&|| "the filterbank size".into())?;
    let n_fft = c.i32(&|| "the filterbank size".into())?;
    if n_mel != hparams.n_mels || !(1..=4096).contains(&n_fft) {
        return Err(c.corrupt(format!(
            "mel filterbank {n_mel}×{n_fft} does not fit n_mels {}",
            hparams.n_mels
        )));
    }
    c.skip(
        &|| "the mel filterbank".into(),
        n_mel as u64 * n_fft as u64 * 4,
    )?;

    let vocab_len = c.i32(&|| "the vocabulary size".into())?;
    if vocab_len < 0 || vocab_len > hparams.n_vocab {
        return Err(c.corrupt(format!(
            "vocabulary of {vocab_len} tokens for n_vocab {}",
            hparams.n_vocab
        )));
    }
    for i in 0..vocab_len {
        let l = c.i32(&|| format!("the length of token {i}"))? as u32;
        if l > MAX_TOKEN_BYTES {
            return Err(c.corrupt(format!("token {i} claims {l} bytes")));
        }
        c.skip(&|| format!("token {i}"), u64::from(l))?;
    }

    let expected: BTreeMap<String, TensorSpec> = expected_tensors(&hparams)
        .into_iter()
        .map(|t| (t.name.clone(), t))
        .collect();
    let mut tensors: Vec<TensorInfo> = Vec::with_capacity(expected.len());
    let mut seen = std::collections::BTreeSet::new();
    while c.pos < c.len {
        let idx = tensors.len();
        let n_dims = c.i32(&|| format!("the header of tensor #{idx}"))?;
        let name_len = c.i32(&|| format!("the header of tensor #{idx}"))?;
        let ty_id = c.i32(&|| format!("the header of tensor #{idx}"))?;
        if !(1..=4).contains(&n_dims) || !(1..=MAX_NAME_BYTES).contains(&name_len) {
            return Err(c.corrupt(format!(
                "tensor #{idx} at offset {}: n_dims {n_dims}, name length {name_len}",
                c.pos - 12
            )));
        }
        let mut ne = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            let d = c.i32(&|| format!("the shape of tensor #{idx}"))?;
            if d <= 0 {
                return Err(c.corrupt(format!("tensor #{idx} has dimension {d}")));
            }
            ne.push(d as usize);
        }
        let name_bytes = c.bytes(&|| format!("the name of tensor #{idx}"), name_len as u64)?;
        let name = String::from_utf8(name_bytes)
            .map_err(|_| c.corrupt(format!("tensor #{idx} has a non-UTF-8 name")))?;
        let ty = GgmlType::from_id(ty_id).ok_or_else(|| {
            c.corrupt(format!(
                "tensor '{name}' has type {ty_id}, expected 0 (f32) or 1 (f16)"
            ))
        })?;
        let spec = expected.get(&name).ok_or_else(|| {
            c.corrupt(format!(
                "unknown tensor '{name}' (whisper.cpp would refuse it)"
            ))
        })?;
        if spec.ne != ne || spec.ty != ty {
            return Err(c.corrupt(format!(
                "tensor '{name}' is {:?} {:?}, whisper.cpp expects {:?} {:?}",
                ne, ty, spec.ne, spec.ty
            )));
        }
        if !seen.insert(name.clone()) {
            return Err(c.corrupt(format!("tensor '{name}' appears twice")));
        }
        let nbytes = ne.iter().product::<usize>() as u64 * ty.size() as u64;
        let offset = c.pos;
        c.skip(&|| format!("tensor '{name}'"), nbytes)?;
        tensors.push(TensorInfo {
            name,
            ne,
            ty,
            offset,
            nbytes,
        });
    }
    if let Some(missing) = expected.keys().find(|k| !seen.contains(*k)) {
        return Err(c.corrupt(format!(
            "tensor '{missing}' is missing ({} of {} present)",
            seen.len(),
            expected.len()
        )));
    }
    Ok(ModelFileInfo {
        hparams,
        n_mel: n_mel as usize,
        n_fft: n_fft as usize,
        vocab_len: vocab_len as usize,
        tensors,
        file_len: len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A structurally complete tiny model (1 layer each, 4 wide) with zero weights.
    pub(crate) fn tiny_hparams() -> HParams {
        HParams {
            n_vocab: 8,
            n_audio_ctx: 6,
            n_audio_state: 4,
            n_audio_head: 1,
            n_audio_layer: 1,
            n_text_ctx: 5,
            n_text_state: 4,
            n_text_head: 1,
            n_text_layer: 1,
            n_mels: 2,
            ftype: 1,
        }
    }

    fn write_model(hp: &HParams, skip: Option<&str>, reshape: Option<&str>) -> Vec<u8> {
        let mut w = GgmlWriter::new(Vec::new());
        w.write_header(hp, 2, 3, &[0.5; 6], &[b"a".to_vec(), b" b".to_vec()])
            .unwrap();
        for t in expected_tensors(hp) {
            if Some(t.name.as_str()) == skip {
                continue;
            }
            let mut ne = t.ne.clone();
            if Some(t.name.as_str()) == reshape {
                ne.reverse();
                ne.push(1);
            }
            let n: usize = ne.iter().product();
            w.write_tensor(&t.name, &ne, t.ty, &vec![0u8; n * t.ty.size()])
                .unwrap();
        }
        w.into_inner()
    }

    fn inspect_bytes(
        bytes: &[u8],
    ) -> (
        tempfile::TempDir,
        PathBuf,
        Result<ModelFileInfo, ModelFileError>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.bin");
        std::fs::write(&path, bytes).unwrap();
        let r = inspect(&path);
        (dir, path, r)
    }

    #[test]
    fn a_complete_model_passes_with_every_tensor_listed() {
        let hp = tiny_hparams();
        let bytes = write_model(&hp, None, None);
        let (_d, _p, r) = inspect_bytes(&bytes);
        let info = r.unwrap();
        assert_eq!(info.hparams, hp);
        assert_eq!(info.vocab_len, 2);
        // 5 input + 2 ln_post + 2 decoder inputs + 2 decoder ln, 15 per encoder block, 24 per decoder block
        assert_eq!(info.tensors.len(), 5 + 2 + 2 + 2 + 15 + 24);
        assert_eq!(info.file_len, bytes.len() as u64);
    }

    #[test]
    fn truncation_anywhere_is_reported_with_path_and_offset() {
        let bytes = write_model(&tiny_hparams(), None, None);
        // inside the hparams, inside the filterbank, inside the vocab, inside tensor data
        for cut in [10, 60, 80, bytes.len() - 3] {
            let (_d, path, r) = inspect_bytes(&bytes[..cut]);
            match r {
                Err(e @ ModelFileError::Truncated { .. }) => {
                    assert!(
                        e.to_string().starts_with(&path.display().to_string()),
                        "{e}"
                    )
                }
                other => panic!("cut at {cut}: expected Truncated, got {other:?}"),
            }
        }
    }

    #[test]
    fn wrong_magic_trailing_garbage_missing_and_misshapen_tensors_are_rejected() {
        let hp = tiny_hparams();
        let mut bytes = write_model(&hp, None, None);
        bytes[0] = b'x';
        assert!(matches!(
            inspect_bytes(&bytes).2,
            Err(ModelFileError::BadMagic { .. })
        ));

        let mut bytes = write_model(&hp, None, None);
        bytes.extend_from_slice(b"garbage!");
        assert!(matches!(
            inspect_bytes(&bytes).2,
            Err(ModelFileError::Corrupt { .. }) | Err(ModelFileError::Truncated { .. })
        ));

        let e = inspect_bytes(&write_model(&hp, Some("decoder.ln.bias"), None))
            .2
            .unwrap_err()
            .to_string();
        assert!(e.contains("'decoder.ln.bias' is missing"), "{e}");

        let e = inspect_bytes(&write_model(&hp, None, Some("encoder.conv1.weight")))
            .2
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("'encoder.conv1.weight'") && e.contains("expects"),
            "{e}"
        );
    }

    #[test]
    fn absurd_header_values_are_refused_before_any_allocation() {
        let mut hp = tiny_hparams();
        hp.n_text_state = 8;
        let e = inspect_bytes(
            &write_model(&tiny_hparams(), None, None)[..4]
                .iter()
                .copied()
                .chain(hp.as_array().iter().flat_map(|v| v.to_le_bytes()))
                .collect::<Vec<_>>(),
        )
        .2
        .unwrap_err();
        assert!(e.to_string().contains("n_text_state"), "{e}");
    }
}
