//! The local model directory: `ggml-NAME.bin` plus `ggml-NAME.json` (where it came from), and
//! the voice-activity model under its catalogue file name (`silero-vad-v6.onnx` plus
//! `silero-vad-v6.json`).
//!
//! Location: `$CALLSCRIBE_MODELS`, else `models.dir` in the config, else the user's data
//! directory (`~/.local/share/callscribe/models` on Linux), so that every checkout and the
//! CI cache share one copy of the weights.

use super::ModelError;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct ModelStore {
    dir: PathBuf,
}

/// What we record next to each model file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Provenance {
    pub name: String,
    /// `ggml`, `pypi`, `ct2-import`, or `download` (the VAD model's direct download).
    pub source: String,
    /// URL, package==version list, or imported directory.
    pub origin: String,
    pub sha256: String,
    pub bytes: u64,
}

#[derive(Debug, Clone)]
pub struct InstalledModel {
    pub name: String,
    pub path: PathBuf,
    pub bytes: u64,
    pub provenance: Option<Provenance>,
}

impl ModelStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The directory from the environment, the config, or the platform default.
    pub fn locate(configured: Option<&Path>) -> Self {
        if let Some(dir) = std::env::var_os("CALLSCRIBE_MODELS").filter(|v| !v.is_empty()) {
            return Self::new(PathBuf::from(dir));
        }
        if let Some(dir) = configured {
            return Self::new(dir);
        }
        match dirs::data_dir() {
            Some(d) => Self::new(d.join("callscribe").join("models")),
            None => Self::new("models/cache"),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path_for(&self, name: &str) -> PathBuf {
        self.dir.join(format!("ggml-{name}.bin"))
    }

    /// A file of the store by its own name (the VAD model's).
    pub fn file_path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// Where the provenance of the model file at `path` is recorded.
    fn provenance_path(path: &Path) -> PathBuf {
        path.with_extension("json")
    }

    pub fn ensure_dir(&self) -> Result<(), ModelError> {
        std::fs::create_dir_all(&self.dir).map_err(ModelError::io(&self.dir))
    }

    pub fn installed(&self, name: &str) -> Option<InstalledModel> {
        self.installed_at(name, self.path_for(name))
    }

    /// Model `name` if its file, `file` in the store, is there (the VAD model).
    pub fn installed_file(&self, name: &str, file: &str) -> Option<InstalledModel> {
        self.installed_at(name, self.file_path(file))
    }

    fn installed_at(&self, name: &str, path: PathBuf) -> Option<InstalledModel> {
        let bytes = std::fs::metadata(&path).ok()?.len();
        let provenance = std::fs::read(Self::provenance_path(&path))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        Some(InstalledModel {
            name: name.to_owned(),
            path,
            bytes,
            provenance,
        })
    }

    /// Every `ggml-*.bin` in the store, by name.
    pub fn list(&self) -> Vec<InstalledModel> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out: Vec<_> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let file = e.file_name().into_string().ok()?;
                let name = file.strip_prefix("ggml-")?.strip_suffix(".bin")?.to_owned();
                self.installed(&name)
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Moves a verified temporary ggml file into place and records where it came from.
    pub(crate) fn commit(
        &self,
        tmp: tempfile::NamedTempFile,
        provenance: &Provenance,
    ) -> Result<PathBuf, ModelError> {
        self.commit_at(tmp, self.path_for(&provenance.name), provenance)
    }

    /// The same for a file at `path` in the store.
    pub(crate) fn commit_at(
        &self,
        tmp: tempfile::NamedTempFile,
        path: PathBuf,
        provenance: &Provenance,
    ) -> Result<PathBuf, ModelError> {
        tmp.as_file()
            .sync_all()
            .map_err(ModelError::io(tmp.path()))?;
        tmp.persist(&path).map_err(|e| ModelError::Io {
            path: path.clone(),
            source: e.error,
        })?;
        let json = serde_json::to_vec_pretty(provenance).expect("provenance serialises");
        let prov_path = Self::provenance_path(&path);
        let mut prov_tmp =
            tempfile::NamedTempFile::new_in(&self.dir).map_err(ModelError::io(&self.dir))?;
        std::io::Write::write_all(&mut prov_tmp, &json).map_err(ModelError::io(&prov_path))?;
        prov_tmp.persist(&prov_path).map_err(|e| ModelError::Io {
            path: prov_path.clone(),
            source: e.error,
        })?;
        Ok(path)
    }
}
