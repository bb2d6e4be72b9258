//! A set of safetensors files read as one name → tensor map: one `model.safetensors`, the
//! shards a `model.safetensors.index.json` lists, or a PEFT `adapter_model.safetensors`.
//! Files are memory-mapped, so a 3 GB large-v3 checkpoint is read tensor by tensor as it is
//! written out, never held in memory whole. Headers are parsed by the `safetensors` crate,
//! which checks that every tensor's byte range lies inside its file and matches its shape.

use crate::convert::FloatType;
use safetensors::tensor::{Dtype, SafeTensors, TensorInfo};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SafetensorsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a valid safetensors file: {reason}")]
    Format { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    Index { path: PathBuf, reason: String },
}

struct File {
    path: PathBuf,
    map: memmap2::Mmap,
    /// Offset of the data section (after the 8-byte length and the JSON header).
    data_start: usize,
}

/// Every tensor of one or more safetensors files.
pub struct TensorFiles {
    files: Vec<File>,
    tensors: HashMap<String, (usize, TensorInfo)>,
}

/// One stored tensor.
#[derive(Debug, Clone, Copy)]
pub struct StoredTensor<'a> {
    pub dtype: Dtype,
    /// Row-major.
    pub shape: &'a [usize],
    pub bytes: &'a [u8],
    /// The file it is in, for errors.
    pub path: &'a Path,
}

impl StoredTensor<'_> {
    /// The float encoding, if it is one the converter reads.
    pub fn float_type(&self) -> Option<FloatType> {
        match self.dtype {
            Dtype::F32 => Some(FloatType::F32),
            Dtype::F16 => Some(FloatType::F16),
            Dtype::BF16 => Some(FloatType::Bf16),
            _ => None,
        }
    }
}

#[derive(serde::Deserialize)]
struct IndexFile {
    weight_map: BTreeMap<String, String>,
}

impl TensorFiles {
    /// One safetensors file.
    pub fn open(path: &Path) -> Result<Self, SafetensorsError> {
        let mut set = Self {
            files: Vec::new(),
            tensors: HashMap::new(),
        };
        set.add(path)?;
        Ok(set)
    }

    /// The shards named by a `*.safetensors.index.json`, each checked to hold the tensors the
    /// index assigns to it.
    pub fn open_index(index: &Path) -> Result<Self, SafetensorsError> {
        let bad = |reason: String| SafetensorsError::Index {
            path: index.to_owned(),
            reason,
        };
        let text = std::fs::read(index).map_err(|source| SafetensorsError::Io {
            path: index.to_owned(),
            source,
        })?;
        let parsed: IndexFile =
            serde_json::from_slice(&text).map_err(|e| bad(format!("not a shard index: {e}")))?;
        let dir = index.parent().unwrap_or(Path::new("."));
        let mut set = Self {
            files: Vec::new(),
            tensors: HashMap::new(),
        };
        let mut shards: Vec<&String> = parsed.weight_map.values().collect();
        shards.sort();
        shards.dedup();
        for shard in shards {
            if shard.contains('/') || shard.contains('\\') || shard.starts_with('.') {
                return Err(bad(format!(
                    "shard name '{shard}' is not a file beside the index"
                )));
            }
            set.add(&dir.join(shard))?;
        }
        for (name, shard) in &parsed.weight_map {
            let found = set
                .tensors
                .get(name)
                .map(|(f, _)| set.files[*f].path.file_name());
            if found != Some(Some(std::ffi::OsStr::new(shard))) {
                return Err(bad(format!(
                    "tensor '{name}' is not in {shard}, where the index puts it"
                )));
            }
        }
        Ok(set)
    }

    fn add(&mut self, path: &Path) -> Result<(), SafetensorsError> {
        let io = |source| SafetensorsError::Io {
            path: path.to_owned(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        // SAFETY: the map is read-only and lives as long as `self`; a checkpoint changed on
        // disk while it is being converted gives wrong values (then caught by the inspection
        // of the written file at worst), the same hazard as reading it with `read`.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        let (header_len, metadata) =
            SafeTensors::read_metadata(&map).map_err(|e| SafetensorsError::Format {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
        let index = self.files.len();
        for (name, info) in metadata.tensors() {
            if let Some((other, _)) = self.tensors.get(&name) {
                return Err(SafetensorsError::Format {
                    path: path.to_owned(),
                    reason: format!(
                        "tensor '{name}' is also in {}",
                        self.files[*other].path.display()
                    ),
                });
            }
            self.tensors.insert(name, (index, info.clone()));
        }
        self.files.push(File {
            path: path.to_owned(),
            map,
            data_start: 8 + header_len,
        });
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<StoredTensor<'_>> {
        let (file, info) = self.tensors.get(name)?;
        let f = &self.files[*file];
        let (start, end) = info.data_offsets;
        Some(StoredTensor {
            dtype: info.dtype,
            shape: &info.shape,
            // read_metadata checked that the offsets lie inside the data section.
            bytes: &f.map[f.data_start + start..f.data_start + end],
            path: &f.path,
        })
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// The first file, for messages about the set as a whole.
    pub fn path(&self) -> &Path {
        self.files.first().map_or(Path::new(""), |f| &f.path)
    }
}
