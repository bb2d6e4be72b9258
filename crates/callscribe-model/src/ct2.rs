//! Reader for CTranslate2 Whisper model directories (`model.bin`, `config.json`,
//! `vocabulary.txt`), the form in which faster-whisper's weights are published. We only read
//! what a conversion to whisper.cpp needs, but we read it strictly: a directory assembled from
//! several downloads (split `model.bin` parts, a vocabulary from elsewhere) fails here with the
//! file, the variable and the byte offset, rather than as a garbled ggml model later.
//!
//! `model.bin` (binary version 4–6, little-endian), as written by `ModelSpec._serialize` in
//! CTranslate2's `python/ctranslate2/specs/model_spec.py` and read by `Model::load` in
//! `src/models/model.cc`: `u32 version · string spec · u32 revision · u32 n_vars`, then per
//! variable `string name · u8 rank · u32 dims[rank] · u8 dtype · u32 n_bytes · bytes`, then
//! `u32 n_aliases` and `string alias · string target` pairs. A string is a `u16` length that
//! counts a trailing NUL, then the bytes. The whole file is held in memory (145 MB for
//! `base`) and variables are byte ranges into it, so a conversion copies each weight once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Binary versions whose layout this reader knows: version 4 introduced the per-variable
/// dtype byte (earlier files store an item width that cannot tell int16 from float16), and 6
/// is the newest CTranslate2 writes.
const MIN_BINARY_VERSION: u32 = 4;
const MAX_BINARY_VERSION: u32 = 6;
/// No CTranslate2 spec has tensors of higher rank; a larger value means we are reading garbage.
const MAX_RANK: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum Ct2Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
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
    #[error("{path}: not a CTranslate2 model this reader understands: {reason}")]
    Format { path: PathBuf, reason: String },
    #[error("{path}: variable '{name}' at offset {offset}: {reason}")]
    Variable {
        path: PathBuf,
        name: String,
        offset: u64,
        reason: String,
    },
    #[error("{path}: line {line}: {reason}")]
    Vocabulary {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("{path}: {source}")]
    Config {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// CTranslate2's `DataType` (`include/ctranslate2/types.h`); the discriminant is the id stored
/// in `model.bin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ct2Dtype {
    F32 = 0,
    I8 = 1,
    I16 = 2,
    I32 = 3,
    F16 = 4,
    Bf16 = 5,
}

impl Ct2Dtype {
    pub fn from_id(id: u8) -> Option<Self> {
        Some(match id {
            0 => Self::F32,
            1 => Self::I8,
            2 => Self::I16,
            3 => Self::I32,
            4 => Self::F16,
            5 => Self::Bf16,
            _ => return None,
        })
    }

    pub fn id(self) -> u8 {
        self as u8
    }

    pub fn size(self) -> usize {
        match self {
            Self::I8 => 1,
            Self::I16 | Self::F16 | Self::Bf16 => 2,
            Self::F32 | Self::I32 => 4,
        }
    }

    /// Integer weights are CTranslate2-quantised (they need their `*_scale` companion to mean
    /// anything), so only these can be taken as weight values directly.
    pub fn is_float(self) -> bool {
        matches!(self, Self::F32 | Self::F16 | Self::Bf16)
    }

    /// Decodes little-endian elements. Integers are converted by value (useful for scalars
    /// such as `num_heads`, meaningless for quantised weights).
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
            Self::I8 => bytes.iter().map(|&b| f32::from(b as i8)).collect(),
            Self::I16 => bytes
                .chunks_exact(2)
                .map(|c| f32::from(i16::from_le_bytes([c[0], c[1]])))
                .collect(),
            Self::I32 => bytes
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32)
                .collect(),
        }
    }
}

/// One stored variable; its data is `len` bytes at `offset` in the model's buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ct2Variable {
    pub name: String,
    /// Row-major (numpy) order.
    pub shape: Vec<usize>,
    pub dtype: Ct2Dtype,
    pub offset: usize,
    pub len: usize,
}

impl Ct2Variable {
    pub fn n_elements(&self) -> usize {
        self.shape.iter().product()
    }
}

/// A parsed `model.bin`, holding the file's bytes.
pub struct Ct2Model {
    pub path: PathBuf,
    pub binary_version: u32,
    pub spec_name: String,
    pub revision: u32,
    pub variables: Vec<Ct2Variable>,
    /// `(alias, target)`: CTranslate2 stores a variable once and aliases its duplicates (e.g.
    /// Whisper's tied `decoder/projection/weight` → `decoder/embeddings/weight`).
    pub aliases: Vec<(String, String)>,
    data: Vec<u8>,
    index: HashMap<String, usize>,
}

impl std::fmt::Debug for Ct2Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ct2Model")
            .field("path", &self.path)
            .field("binary_version", &self.binary_version)
            .field("spec_name", &self.spec_name)
            .field("revision", &self.revision)
            .field("variables", &self.variables.len())
            .field("aliases", &self.aliases)
            .finish()
    }
}

/// Bounds-checked little-endian reads over the file's bytes, with errors that say what was
/// being read and where.
struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl Reader<'_> {
    fn take(&mut self, n: usize, what: &dyn Fn() -> String) -> Result<&[u8], Ct2Error> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.b.len());
        let Some(end) = end else {
            return Err(Ct2Error::Truncated {
                path: self.path.to_owned(),
                what: what(),
                needed: n as u64,
                offset: self.pos as u64,
                len: self.b.len() as u64,
            });
        };
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self, what: &dyn Fn() -> String) -> Result<u8, Ct2Error> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &dyn Fn() -> String) -> Result<u16, Ct2Error> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32, Ct2Error> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// CTranslate2 reads strings as C strings (up to the first NUL), so we do too.
    fn string(&mut self, what: &dyn Fn() -> String) -> Result<String, Ct2Error> {
        let start = self.pos;
        let n = self.u16(what)? as usize;
        let b = self.take(n, what)?;
        let b = b.split(|&c| c == 0).next().unwrap_or(b);
        String::from_utf8(b.to_vec()).map_err(|_| Ct2Error::Format {
            path: self.path.to_owned(),
            reason: format!("{} at offset {start} is not UTF-8", what()),
        })
    }
}

impl Ct2Model {
    pub fn read(path: &Path) -> Result<Self, Ct2Error> {
        let data = std::fs::read(path).map_err(|source| Ct2Error::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, data)
    }

    /// Parses an in-memory `model.bin`; `path` is only used in error messages.
    pub fn parse(path: &Path, data: Vec<u8>) -> Result<Self, Ct2Error> {
        let format = |reason: String| Ct2Error::Format {
            path: path.to_owned(),
            reason,
        };
        let mut r = Reader {
            b: &data,
            pos: 0,
            path,
        };
        let binary_version = r.u32(&|| "the binary version".into())?;
        if !(MIN_BINARY_VERSION..=MAX_BINARY_VERSION).contains(&binary_version) {
            return Err(format(format!(
                "binary version {binary_version} (this reader knows {MIN_BINARY_VERSION} to \
                 {MAX_BINARY_VERSION}; is this a CTranslate2 model.bin?)"
            )));
        }
        let spec_name = r.string(&|| "the spec name".into())?;
        let revision = r.u32(&|| "the spec revision".into())?;
        let n_vars = r.u32(&|| "the variable count".into())? as usize;
        // Each variable takes at least 9 bytes, so a corrupt count cannot reserve much.
        let mut variables = Vec::with_capacity(n_vars.min(data.len() / 9));
        for i in 0..n_vars {
            let name = r.string(&|| format!("the name of variable #{i}"))?;
            let header_at = r.pos as u64;
            let bad = |reason: String| Ct2Error::Variable {
                path: path.to_owned(),
                name: name.clone(),
                offset: header_at,
                reason,
            };
            let rank = r.u8(&|| format!("the rank of '{name}'"))? as usize;
            if rank > MAX_RANK {
                return Err(bad(format!("rank {rank}")));
            }
            let mut shape = Vec::with_capacity(rank);
            for _ in 0..rank {
                shape.push(r.u32(&|| format!("the shape of '{name}'"))? as usize);
            }
            let dtype_id = r.u8(&|| format!("the data type of '{name}'"))?;
            let dtype = Ct2Dtype::from_id(dtype_id)
                .ok_or_else(|| bad(format!("unknown data type id {dtype_id}")))?;
            let n_bytes = r.u32(&|| format!("the byte count of '{name}'"))? as usize;
            let expected = shape
                .iter()
                .try_fold(dtype.size(), |acc, &d| acc.checked_mul(d));
            if expected != Some(n_bytes) {
                return Err(bad(format!(
                    "shape {shape:?} of {dtype:?} needs {} bytes but {n_bytes} are stored",
                    expected.map_or_else(|| "too many".to_owned(), |e| e.to_string())
                )));
            }
            let offset = r.pos;
            r.take(n_bytes, &|| format!("the data of variable '{name}'"))?;
            variables.push(Ct2Variable {
                name,
                shape,
                dtype,
                offset,
                len: n_bytes,
            });
        }
        let n_aliases = r.u32(&|| "the alias count".into())?;
        let mut aliases = Vec::new();
        for i in 0..n_aliases {
            let alias = r.string(&|| format!("alias #{i}"))?;
            let target = r.string(&|| format!("the target of alias '{alias}'"))?;
            aliases.push((alias, target));
        }
        if r.pos != data.len() {
            // CTranslate2 would ignore this, but it means the file is not what it claims
            // (typically split parts joined in the wrong order or twice).
            return Err(format(format!(
                "{} unexpected bytes after the alias table at offset {}",
                data.len() - r.pos,
                r.pos
            )));
        }
        let mut index = HashMap::with_capacity(variables.len());
        for (i, v) in variables.iter().enumerate() {
            if index.insert(v.name.clone(), i).is_some() {
                return Err(format(format!("variable '{}' is stored twice", v.name)));
            }
        }
        Ok(Self {
            path: path.to_owned(),
            binary_version,
            spec_name,
            revision,
            variables,
            aliases,
            data,
            index,
        })
    }

    /// A variable by name, following aliases the way CTranslate2 registers them (an alias
    /// to a missing variable does not exist).
    pub fn get(&self, name: &str) -> Option<&Ct2Variable> {
        if let Some(&i) = self.index.get(name) {
            return Some(&self.variables[i]);
        }
        let (_, target) = self.aliases.iter().find(|(alias, _)| alias == name)?;
        self.index.get(target).map(|&i| &self.variables[i])
    }

    /// Whether `name` is stored as an alias (rather than a variable of its own).
    pub fn is_alias(&self, name: &str) -> bool {
        !self.index.contains_key(name) && self.aliases.iter().any(|(a, _)| a == name)
    }

    pub fn bytes(&self, v: &Ct2Variable) -> &[u8] {
        &self.data[v.offset..v.offset + v.len]
    }

    /// The value of a one-element integer variable (CTranslate2 stores settings such as
    /// `encoder/num_heads` this way).
    pub fn scalar_int(&self, name: &str) -> Option<i64> {
        let v = self.get(name)?;
        if v.n_elements() != 1 || v.dtype.is_float() {
            return None;
        }
        let b = self.bytes(v);
        Some(match v.dtype {
            Ct2Dtype::I8 => i64::from(b[0] as i8),
            Ct2Dtype::I16 => i64::from(i16::from_le_bytes([b[0], b[1]])),
            _ => i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        })
    }

    /// Whether any variable lives under `prefix/` (how CTranslate2 itself tests for layers).
    pub fn has_scope(&self, prefix: &str) -> bool {
        let prefix = format!("{}/", prefix.trim_end_matches('/'));
        self.variables.iter().any(|v| v.name.starts_with(&prefix))
    }
}

/// `vocabulary.txt`: one token per line in id order, special tokens included, spelled in
/// GPT-2's byte-to-unicode alphabet. Split on `'\n'` only: `str::lines`-style splitting on
/// other Unicode breaks would shift every later id (and some tokens are space-like), and the
/// multilingual vocabulary has a legitimately empty token (id 50256).
pub fn read_vocabulary(path: &Path) -> Result<Vec<String>, Ct2Error> {
    let bytes = std::fs::read(path).map_err(|source| Ct2Error::Io {
        path: path.to_owned(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        Ct2Error::Vocabulary {
            path: path.to_owned(),
            line,
            reason: format!("not UTF-8 (byte offset {at})"),
        }
    })?;
    let body = text.strip_suffix('\n').unwrap_or(&text);
    if body.is_empty() {
        return Err(Ct2Error::Vocabulary {
            path: path.to_owned(),
            line: 1,
            reason: "the vocabulary is empty".into(),
        });
    }
    // A raw '\r' never occurs in a byte-level token (byte 0x0D is spelled 'č'), so a trailing
    // one can only come from CRLF line endings.
    Ok(body
        .split('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t).to_owned())
        .collect())
}

/// The parts of `config.json` that describe the tokenizer. whisper.cpp derives all of this
/// from `n_vocab`, so the converter only uses it to cross-check the vocabulary.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default)]
pub struct Ct2Config {
    pub alignment_heads: Vec<(u32, u32)>,
    pub lang_ids: Vec<u32>,
    pub suppress_ids: Vec<i64>,
    pub suppress_ids_begin: Vec<i64>,
}

pub fn read_config(path: &Path) -> Result<Ct2Config, Ct2Error> {
    let text = std::fs::read(path).map_err(|source| Ct2Error::Io {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_slice(&text).map_err(|source| Ct2Error::Config {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Serialises variables the way `ModelSpec._serialize` does, so tests can build small
    /// models (and broken ones) without CTranslate2.
    pub(crate) fn write_model_bin(
        vars: &[(&str, Vec<usize>, Ct2Dtype, Vec<u8>)],
        aliases: &[(&str, &str)],
    ) -> Vec<u8> {
        fn string(out: &mut Vec<u8>, s: &str) {
            out.extend_from_slice(&((s.len() + 1) as u16).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
            out.push(0);
        }
        let mut out = Vec::new();
        out.extend_from_slice(&6u32.to_le_bytes());
        string(&mut out, "WhisperSpec");
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&(vars.len() as u32).to_le_bytes());
        for (name, shape, dtype, data) in vars {
            string(&mut out, name);
            out.push(shape.len() as u8);
            for &d in shape {
                out.extend_from_slice(&(d as u32).to_le_bytes());
            }
            out.push(dtype.id());
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(data);
        }
        out.extend_from_slice(&(aliases.len() as u32).to_le_bytes());
        for (alias, target) in aliases {
            string(&mut out, alias);
            string(&mut out, target);
        }
        out
    }

    pub(crate) fn f16_bytes(xs: &[f32]) -> Vec<u8> {
        xs.iter()
            .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
            .collect()
    }

    fn small_model() -> Vec<u8> {
        write_model_bin(
            &[
                (
                    "decoder/embeddings/weight",
                    vec![2, 3],
                    Ct2Dtype::F16,
                    f16_bytes(&[1.0, 2.0, 3.0, 4.0, 5.0, -6.5]),
                ),
                (
                    "decoder/num_heads",
                    vec![],
                    Ct2Dtype::I16,
                    6i16.to_le_bytes().to_vec(),
                ),
                ("decoder/pre_norm", vec![], Ct2Dtype::I8, vec![1]),
                (
                    "x/bias",
                    vec![2],
                    Ct2Dtype::F32,
                    [0.5f32, -1.0]
                        .iter()
                        .flat_map(|f| f.to_le_bytes())
                        .collect(),
                ),
            ],
            &[
                ("decoder/projection/weight", "decoder/embeddings/weight"),
                ("dangling", "nowhere"),
            ],
        )
    }

    fn parse(bytes: Vec<u8>) -> Result<Ct2Model, Ct2Error> {
        Ct2Model::parse(Path::new("/m/model.bin"), bytes)
    }

    #[test]
    fn reads_variables_aliases_and_scalars() {
        let m = parse(small_model()).unwrap();
        assert_eq!(
            (m.binary_version, m.spec_name.as_str(), m.revision),
            (6, "WhisperSpec", 3)
        );
        assert_eq!(m.variables.len(), 4);
        let w = m.get("decoder/projection/weight").unwrap();
        assert_eq!(w.name, "decoder/embeddings/weight");
        assert_eq!(w.shape, vec![2, 3]);
        assert_eq!(
            w.dtype.to_f32(m.bytes(w)),
            vec![1.0, 2.0, 3.0, 4.0, 5.0, -6.5]
        );
        assert!(m.is_alias("decoder/projection/weight"));
        assert!(!m.is_alias("decoder/embeddings/weight"));
        assert!(
            m.get("dangling").is_none(),
            "an alias to nothing is not a variable"
        );
        assert_eq!(m.scalar_int("decoder/num_heads"), Some(6));
        assert_eq!(m.scalar_int("decoder/pre_norm"), Some(1));
        assert_eq!(
            m.scalar_int("x/bias"),
            None,
            "floats are not integer scalars"
        );
        let b = m.get("x/bias").unwrap();
        assert_eq!(b.dtype.to_f32(m.bytes(b)), vec![0.5, -1.0]);
        assert!(m.has_scope("decoder") && !m.has_scope("deco"));
    }

    #[test]
    fn every_truncation_is_reported_with_offset_not_a_panic() {
        let full = small_model();
        for cut in 0..full.len() {
            let e = parse(full[..cut].to_vec()).unwrap_err();
            let msg = e.to_string();
            assert!(
                msg.starts_with("/m/model.bin: truncated: "),
                "cut {cut}: {msg}"
            );
            assert!(matches!(e, Ct2Error::Truncated { .. }), "cut {cut}: {msg}");
        }
        let e = parse(full[..full.len() - 3].to_vec())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("truncated") && e.contains("the target of alias"),
            "{e}"
        );
    }

    #[test]
    fn inconsistent_sizes_unknown_types_and_trailing_bytes_are_format_errors() {
        // Byte count that does not match the shape.
        let bad = write_model_bin(&[("w", vec![2, 2], Ct2Dtype::F16, vec![0; 6])], &[]);
        let e = parse(bad).unwrap_err();
        assert!(
            matches!(e, Ct2Error::Variable { ref name, .. } if name == "w"),
            "{e}"
        );
        assert!(
            e.to_string().contains("needs 8 bytes but 6 are stored"),
            "{e}"
        );

        // Unknown dtype id: patch the dtype byte (after name, rank, one dim).
        let mut bad = write_model_bin(&[("w", vec![1], Ct2Dtype::I8, vec![0])], &[]);
        let dtype_at = 4 + 2 + 12 + 4 + 4 + 2 + 2 + 1 + 4;
        assert_eq!(bad[dtype_at], Ct2Dtype::I8.id());
        bad[dtype_at] = 9;
        let e = parse(bad).unwrap_err().to_string();
        assert!(e.contains("unknown data type id 9"), "{e}");

        let mut bad = small_model();
        bad.extend_from_slice(b"tail");
        let e = parse(bad).unwrap_err().to_string();
        assert!(
            e.contains("4 unexpected bytes after the alias table"),
            "{e}"
        );

        let mut bad = small_model();
        bad[0] = 2;
        let e = parse(bad).unwrap_err().to_string();
        assert!(e.contains("binary version 2"), "{e}");
    }

    #[test]
    fn vocabulary_keeps_empty_and_space_like_tokens_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("vocabulary.txt");
        // U+2028 and U+0085 would be line breaks for a Unicode-aware splitter.
        std::fs::write(&p, "!\n\u{2028}\n\nĠthe\r\n\u{85}x\n<|endoftext|>\n").unwrap();
        let v = read_vocabulary(&p).unwrap();
        assert_eq!(
            v,
            vec!["!", "\u{2028}", "", "Ġthe", "\u{85}x", "<|endoftext|>"]
        );

        std::fs::write(&p, b"ok\n\xff\n").unwrap();
        let e = read_vocabulary(&p).unwrap_err().to_string();
        assert!(e.contains("vocabulary.txt: line 2: not UTF-8"), "{e}");
    }

    #[test]
    fn config_reads_known_fields_and_ignores_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.json");
        std::fs::write(
            &p,
            r#"{"alignment_heads": [[1, 0], [2, 5]], "lang_ids": [50259], "x": 1}"#,
        )
        .unwrap();
        let c = read_config(&p).unwrap();
        assert_eq!(c.alignment_heads, vec![(1, 0), (2, 5)]);
        assert_eq!(c.lang_ids, vec![50259]);
        std::fs::write(&p, "{").unwrap();
        assert!(read_config(&p)
            .unwrap_err()
            .to_string()
            .contains("config.json"));
    }

    /// The real faster-whisper files, when present.
    #[test]
    fn reads_the_real_tiny_en_model() {
        let dir = std::env::var_os("CALLSCRIBE_CT2_TINY_EN")
            .map_or_else(|| PathBuf::from("/tmp/ct2/tiny.en"), PathBuf::from);
        if !dir.join("model.bin").is_file() {
            eprintln!(
                "skipped: no CTranslate2 tiny.en at {} (set CALLSCRIBE_CT2_TINY_EN)",
                dir.display()
            );
            return;
        }
        let m = Ct2Model::read(&dir.join("model.bin")).unwrap();
        assert_eq!(m.spec_name, "WhisperSpec");
        assert_eq!(m.variables.len(), 148);
        assert_eq!(
            m.get("encoder/conv1/weight").unwrap().shape,
            vec![384, 80, 3]
        );
        assert_eq!(
            m.get("decoder/projection/weight").unwrap().name,
            "decoder/embeddings/weight"
        );
        assert_eq!(m.scalar_int("encoder/num_heads"), Some(6));
        let v = read_vocabulary(&dir.join("vocabulary.txt")).unwrap();
        assert_eq!(v.len(), 51864);
        assert_eq!(v[50256], "<|endoftext|>");
        assert_eq!(v[262], "Ġthe");
    }
}
