//! CTranslate2 model directories: `model.bin` (binary format version 6), `config.json`,
//! `vocabulary.txt`.
//!
//! `model.bin`: `u32 version · string spec · u32 revision · u32 n_vars`, then per variable
//! `string name · u8 rank · u32 dims[rank] · u8 dtype · u32 n_bytes · bytes`, then
//! `u32 n_aliases` and `string alias · string target` pairs; strings are `u16 length`
//! (counting a trailing NUL) + bytes. The file is read whole (≤ a few hundred MB for the
//! models we convert) and variables are slices into it, so conversion copies each weight once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Ct2Error {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a CTranslate2 model: {reason}")]
    Format { path: PathBuf, reason: String },
    #[error("{path}: truncated at byte {offset} while reading {what}")]
    Truncated {
        path: PathBuf,
        offset: usize,
        what: String,
    },
}

/// CTranslate2's `DataType` ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ct2Dtype {
    F32,
    I8,
    I16,
    I32,
    F16,
    Bf16,
}

impl Ct2Dtype {
    fn from_id(id: u8) -> Option<Self> {
        Some(match id {
            0 => Ct2Dtype::F32,
            1 => Ct2Dtype::I8,
            2 => Ct2Dtype::I16,
            3 => Ct2Dtype::I32,
            4 => Ct2Dtype::F16,
            5 => Ct2Dtype::Bf16,
            _ => return None,
        })
    }

    pub fn size(self) -> usize {
        match self {
            Ct2Dtype::I8 => 1,
            Ct2Dtype::I16 | Ct2Dtype::F16 | Ct2Dtype::Bf16 => 2,
            Ct2Dtype::F32 | Ct2Dtype::I32 => 4,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Ct2Variable {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: Ct2Dtype,
    range: std::ops::Range<usize>,
}

/// A parsed `model.bin`, holding the file's bytes.
pub struct Ct2Model {
    pub path: PathBuf,
    pub version: u32,
    pub spec_name: String,
    pub revision: u32,
    pub variables: Vec<Ct2Variable>,
    pub aliases: HashMap<String, String>,
    data: Vec<u8>,
    index: HashMap<String, usize>,
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl Reader<'_> {
    fn take(&mut self, n: usize, what: &str) -> Result<&[u8], Ct2Error> {
        if self.pos + n > self.b.len() {
            return Err(Ct2Error::Truncated {
                path: self.path.to_owned(),
                offset: self.pos,
                what: what.to_owned(),
            });
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self, what: &str) -> Result<u8, Ct2Error> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &str) -> Result<u16, Ct2Error> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self, what: &str) -> Result<u32, Ct2Error> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn string(&mut self, what: &str) -> Result<String, Ct2Error> {
        let n = self.u16(what)? as usize;
        let b = self.take(n, what)?;
        let b = b.strip_suffix(&[0]).unwrap_or(b);
        String::from_utf8(b.to_vec()).map_err(|_| Ct2Error::Format {
            path: self.path.to_owned(),
            reason: format!("{what} is not UTF-8"),
        })
    }
}

impl Ct2Model {
    pub fn read(path: &Path) -> Result<Self, Ct2Error> {
        let data = std::fs::read(path).map_err(|source| Ct2Error::Io {
            path: path.to_owned(),
            source,
        })?;
        let mut r = Reader {
            b: &data,
            pos: 0,
            path,
        };
        let version = r.u32("the version")?;
        if !(5..=6).contains(&version) {
            return Err(Ct2Error::Format {
                path: path.to_owned(),
                reason: format!("binary version {version}, expected 5 or 6"),
            });
        }
        let spec_name = r.string("the spec name")?;
        let revision = r.u32("the spec revision")?;
        let n_vars = r.u32("the variable count")? as usize;
        if n_vars > 100_000 {
            return Err(Ct2Error::Format {
                path: path.to_owned(),
                reason: format!("{n_vars} variables"),
            });
        }
        let mut variables = Vec::with_capacity(n_vars);
        for i in 0..n_vars {
            let name = r.string(&format!("the name of variable {i}"))?;
            let rank = r.u8(&format!("the rank of '{name}'"))? as usize;
            let mut shape = Vec::with_capacity(rank);
            for _ in 0..rank {
                shape.push(r.u32(&format!("the shape of '{name}'"))? as usize);
            }
            let dtype_id = r.u8(&format!("the type of '{name}'"))?;
            let dtype = Ct2Dtype::from_id(dtype_id).ok_or_else(|| Ct2Error::Format {
                path: path.to_owned(),
                reason: format!("variable '{name}' has unknown data type {dtype_id}"),
            })?;
            let n_bytes = r.u32(&format!("the size of '{name}'"))? as usize;
            let expected = shape.iter().product::<usize>() * dtype.size();
            if n_bytes != expected {
                return Err(Ct2Error::Format {
                    path: path.to_owned(),
                    reason: format!("variable '{name}' {shape:?} {dtype:?} holds {n_bytes} bytes, expected {expected}"),
                });
            }
            let start = r.pos;
            r.take(n_bytes, &format!("the data of '{name}'"))?;
            variables.push(Ct2Variable {
                name,
                shape,
                dtype,
                range: start..start + n_bytes,
            });
        }
        let mut aliases = HashMap::new();
        if r.pos < data.len() {
            let n_aliases = r.u32("the alias count")?;
            for _ in 0..n_aliases {
                let alias = r.string("an alias")?;
                let target = r.string("an alias target")?;
                aliases.insert(alias, target);
            }
        }
        let index = variables
            .iter()
            .enumerate()
            .map(|(i, v)| (v.name.clone(), i))
            .collect();
        Ok(Ct2Model {
            path: path.to_owned(),
            version,
            spec_name,
            revision,
            variables,
            aliases,
            data,
            index,
        })
    }

    /// A variable by name, following aliases.
    pub fn get(&self, name: &str) -> Option<&Ct2Variable> {
        let name = self.aliases.get(name).map_or(name, String::as_str);
        self.index.get(name).map(|&i| &self.variables[i])
    }

    pub fn bytes(&self, v: &Ct2Variable) -> &[u8] {
        &self.data[v.range.clone()]
    }

    /// A variable's elements as `f32`, whatever its stored float type.
    pub fn to_f32(&self, v: &Ct2Variable) -> Vec<f32> {
        let b = self.bytes(v);
        match v.dtype {
            Ct2Dtype::F32 => b
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Ct2Dtype::F16 => b
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            Ct2Dtype::Bf16 => b
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            Ct2Dtype::I8 => b.iter().map(|&x| x as i8 as f32).collect(),
            Ct2Dtype::I16 => b
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]) as f32)
                .collect(),
            Ct2Dtype::I32 => b
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32)
                .collect(),
        }
    }

    /// A scalar integer setting such as `decoder/num_heads`.
    pub fn scalar(&self, name: &str) -> Option<i64> {
        let v = self.get(name)?;
        if v.shape.iter().product::<usize>() != 1 {
            return None;
        }
        self.to_f32(v).first().map(|&x| x as i64)
    }
}

/// `vocabulary.txt`: one token per line, in id order, in GPT-2's byte-to-unicode spelling.
pub fn read_vocabulary(path: &Path) -> Result<Vec<String>, Ct2Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Ct2Error::Io {
        path: path.to_owned(),
        source,
    })?;
    // Split on '\n' only: some tokens are other Unicode line-breaking characters.
    let mut tokens: Vec<String> = text.split('\n').map(str::to_owned).collect();
    if tokens.last().is_some_and(String::is_empty) {
        tokens.pop();
    }
    Ok(tokens)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Writes a CTranslate2 `model.bin` (version 6) with the given f16/f32 variables.
    pub(crate) fn write_ct2(
        vars: &[(&str, Vec<usize>, Ct2Dtype, Vec<u8>)],
        aliases: &[(&str, &str)],
    ) -> Vec<u8> {
        fn s(out: &mut Vec<u8>, v: &str) {
            out.extend_from_slice(&((v.len() + 1) as u16).to_le_bytes());
            out.extend_from_slice(v.as_bytes());
            out.push(0);
        }
        let mut out = Vec::new();
        out.extend_from_slice(&6u32.to_le_bytes());
        s(&mut out, "WhisperSpec");
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&(vars.len() as u32).to_le_bytes());
        for (name, shape, dtype, data) in vars {
            s(&mut out, name);
            out.push(shape.len() as u8);
            for d in shape {
                out.extend_from_slice(&(*d as u32).to_le_bytes());
            }
            out.push(match dtype {
                Ct2Dtype::F32 => 0,
                Ct2Dtype::I8 => 1,
                Ct2Dtype::I16 => 2,
                Ct2Dtype::I32 => 3,
                Ct2Dtype::F16 => 4,
                Ct2Dtype::Bf16 => 5,
            });
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(data);
        }
        out.extend_from_slice(&(aliases.len() as u32).to_le_bytes());
        for (a, t) in aliases {
            s(&mut out, a);
            s(&mut out, t);
        }
        out
    }

    #[test]
    fn reads_variables_aliases_and_scalars() {
        let f16 = |xs: &[f32]| {
            xs.iter()
                .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
                .collect::<Vec<u8>>()
        };
        let bytes = write_ct2(
            &[
                ("w", vec![2, 2], Ct2Dtype::F16, f16(&[1.0, 2.0, 3.0, 4.0])),
                ("decoder/num_heads", vec![], Ct2Dtype::I8, vec![6]),
            ],
            &[("proj", "w")],
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("model.bin");
        std::fs::write(&p, &bytes).unwrap();
        let m = Ct2Model::read(&p).unwrap();
        assert_eq!(m.spec_name, "WhisperSpec");
        assert_eq!(m.to_f32(m.get("proj").unwrap()), vec![1.0, 2.0, 3.0, 4.0]);
        assert_eq!(m.scalar("decoder/num_heads"), Some(6));

        std::fs::write(&p, &bytes[..bytes.len() - 20]).unwrap();
        let e = Ct2Model::read(&p).err().unwrap().to_string();
        assert!(e.contains("model.bin") && e.contains("truncated"), "{e}");
    }
}
