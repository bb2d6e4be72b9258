//! Bringing models from elsewhere into the store: a local CTranslate2 directory, a Hugging
//! Face `transformers` checkpoint, a published ggml file, or an installed model with a LoRA
//! adapter merged in. Each is written (or copied) into a temporary file in the store, checked
//! by [`ggml::inspect`] as whisper.cpp would load it, hashed, and renamed into place with its
//! provenance (`ggml-NAME.json`), like every other way into the store.

use crate::convert::ConvertOptions;
use crate::ggml;
use crate::pull::{commit_written, convert_into_store, hash_file, write_into_store};
use crate::store::ModelStore;
use crate::{ModelError, Precision, Progress};
use std::path::{Path, PathBuf};

/// A name that is one file name in the store (`ggml-NAME.bin`) and reads well as `--model NAME`.
fn check_name(name: &str) -> Result<(), ModelError> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(ModelError::BadName(name.to_owned()))
    }
}

/// A path as provenance records it: absolute, so the record means the same from any directory.
fn origin_of(path: &Path) -> String {
    std::fs::canonicalize(path)
        .unwrap_or_else(|_| path.to_owned())
        .display()
        .to_string()
}

/// Refuses to overwrite an installed model unless asked to.
fn check_free(store: &ModelStore, name: &str, replace: bool) -> Result<(), ModelError> {
    check_name(name)?;
    match store.installed(name).filter(|_| !replace) {
        Some(existing) => Err(ModelError::AlreadyInstalled {
            name: name.to_owned(),
            path: existing.path,
        }),
        None => Ok(()),
    }
}

/// Converts a local CTranslate2 Whisper directory into the store under `name`.
pub fn import_ct2(
    store: &ModelStore,
    name: &str,
    dir: &Path,
    precision: Precision,
    progress: &dyn Progress,
) -> Result<PathBuf, ModelError> {
    check_name(name)?;
    store.ensure_dir()?;
    let origin = dir.display().to_string();
    convert_into_store(store, name, dir, "ct2-import", &origin, precision, progress)
}

/// Converts a local Hugging Face `transformers` Whisper checkpoint into the store under
/// `name` ([`crate::hf`]).
pub fn import_hf(
    store: &ModelStore,
    name: &str,
    dir: &Path,
    precision: Precision,
    replace: bool,
    progress: &dyn Progress,
) -> Result<PathBuf, ModelError> {
    check_free(store, name, replace)?;
    store.ensure_dir()?;
    let origin = origin_of(dir);
    let total = crate::hf::weights_bytes(dir);
    write_into_store(
        store,
        name,
        "hf-import",
        &origin,
        total,
        progress,
        |out, report| {
            crate::hf::convert_hf_dir(dir, out, &ConvertOptions { precision }, report)
                .map_err(Into::into)
        },
    )
}

/// Installs a published whisper.cpp ggml file under `name`, copied as it is once
/// [`ggml::inspect`] accepts it (the copy is checked again before it is committed).
pub fn import_ggml(
    store: &ModelStore,
    name: &str,
    file: &Path,
    replace: bool,
    progress: &dyn Progress,
) -> Result<PathBuf, ModelError> {
    check_free(store, name, replace)?;
    ggml::inspect(file)?;
    store.ensure_dir()?;
    let sha256 = hash_file(file)?;
    let total = std::fs::metadata(file).ok().map(|m| m.len());
    let tmp = tempfile::NamedTempFile::new_in(store.dir()).map_err(ModelError::io(store.dir()))?;
    progress.begin(&format!("copying {name} into the store"), total);
    let mut src = std::fs::File::open(file).map_err(ModelError::io(file))?;
    std::io::copy(&mut src, &mut tmp.as_file()).map_err(ModelError::io(tmp.path()))?;
    progress.end();
    commit_written(
        store,
        tmp,
        name,
        "ggml-import",
        format!("{} (sha256 {sha256})", origin_of(file)),
    )
}

/// Merges the PEFT LoRA adapter in `adapter_dir` into installed model `base` (f16 or f32)
/// and installs the result as `name`, its matrices in `precision` (`None`: the base's type).
pub fn merge_lora(
    store: &ModelStore,
    base: &str,
    adapter_dir: &Path,
    name: &str,
    precision: Option<Precision>,
    replace: bool,
    progress: &dyn Progress,
) -> Result<PathBuf, ModelError> {
    let source = store
        .installed(base)
        .ok_or_else(|| ModelError::NotInstalled {
            name: base.to_owned(),
            dir: store.dir().to_owned(),
        })?;
    if name == base {
        return Err(ModelError::WouldReplaceSource {
            name: base.to_owned(),
        });
    }
    check_free(store, name, replace)?;
    let weights = adapter_dir.join("adapter_model.safetensors");
    let adapter_sha = hash_file(&weights).unwrap_or_else(|_| "unreadable".into());
    let base_sha = source.provenance.as_ref().map_or_else(
        || "unrecorded".to_owned(),
        |p| p.sha256.chars().take(12).collect(),
    );
    let origin = format!(
        "{base} (sha256 {base_sha}…) + LoRA {} (adapter_model.safetensors sha256 {})",
        origin_of(adapter_dir),
        adapter_sha.chars().take(12).collect::<String>()
    );
    let total = Some(source.bytes);
    write_into_store(
        store,
        name,
        "lora-merge",
        &origin,
        total,
        progress,
        |out, report| {
            let r = crate::lora::merge_lora(&source.path, adapter_dir, precision, out, report)?;
            tracing::info!(
                base,
                tensors_merged = r.tensors_merged,
                scale = r.scale,
                "merged LoRA adapter"
            );
            Ok(r)
        },
    )
}
