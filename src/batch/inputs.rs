//! Turning the command line's files and folders into jobs with output paths.
//!
//! Folders are archives: searched recursively for the recordings `--include` names (by default
//! every extension [`crate::audio::decode`] reads), in name order so that two runs over the same
//! archive take the files in the same order. Symbolic links are followed, and each file and
//! folder is taken once however many links lead to it (a link back up the tree is no loop).

use crate::audio::decode::EXTENSIONS;
use crate::transcript::format::Format;
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub input: PathBuf,
    /// Where the transcript goes; `None` = standard output.
    pub output: Option<PathBuf>,
}

/// A command-line input that yields no job: a path that does not exist, a folder that cannot
/// be read or holds no recordings. Reported as a failure; the other inputs go on.
#[derive(Debug, Clone, PartialEq)]
pub struct InputError {
    pub path: PathBuf,
    pub message: String,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

/// Which files in a folder are recordings: shell patterns on the file name, matched without
/// regard to case (`*.mp3` takes `CALL.MP3`). Files named on the command line are always taken.
#[derive(Debug, Clone)]
pub struct Include {
    patterns: Vec<glob::Pattern>,
}

#[derive(Debug, thiserror::Error)]
#[error("--include: bad pattern {pattern:?}: {source}")]
pub struct IncludeError {
    pattern: String,
    source: glob::PatternError,
}

impl Include {
    /// Comma-separated patterns, e.g. `*.mp3,*.wav`.
    pub fn parse(list: &str) -> Result<Self, IncludeError> {
        let patterns = list
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                glob::Pattern::new(p).map_err(|source| IncludeError {
                    pattern: p.to_owned(),
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { patterns })
    }

    /// Every format callscribe reads.
    pub fn supported() -> Self {
        let list = EXTENSIONS
            .iter()
            .map(|e| format!("*.{e}"))
            .collect::<Vec<_>>()
            .join(",");
        Self::parse(&list).expect("the extension patterns are plain")
    }

    fn matches(&self, name: &OsStr) -> bool {
        let options = glob::MatchOptions {
            case_sensitive: false,
            ..Default::default()
        };
        let name = name.to_string_lossy();
        self.patterns.iter().any(|p| p.matches_with(&name, options))
    }
}

impl Default for Include {
    fn default() -> Self {
        Self::supported()
    }
}

impl fmt::Display for Include {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list: Vec<&str> = self.patterns.iter().map(glob::Pattern::as_str).collect();
        f.write_str(&list.join(","))
    }
}

impl std::str::FromStr for Include {
    type Err = IncludeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// The recordings under `dir` that `include` takes, sorted, each file once.
fn walk(
    dir: &Path,
    include: &Include,
    seen: &mut HashSet<PathBuf>,
    errors: &mut Vec<InputError>,
) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let entries = walkdir::WalkDir::new(dir)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter();
    for entry in entries {
        let entry = match entry {
            Ok(e) => e,
            // A link to a folder above it: that folder is walked already.
            Err(e) if e.loop_ancestor().is_some() => {
                tracing::debug!(path = ?e.path(), "symbolic link loop not followed");
                continue;
            }
            Err(e) => {
                let path = e.path().unwrap_or(dir).to_owned();
                let message = match e.io_error() {
                    Some(io) => format!("cannot read: {io}"),
                    None => e.to_string(),
                };
                errors.push(InputError { path, message });
                continue;
            }
        };
        if !entry.file_type().is_file() || !include.matches(entry.file_name()) {
            continue;
        }
        // Two links to one recording (or a link to a folder walked already) give it once.
        let real = std::fs::canonicalize(entry.path()).unwrap_or_else(|_| entry.path().into());
        if seen.insert(real) {
            files.push(entry.into_path());
        }
    }
    files
}

/// Files are taken as given; folders are searched recursively (see the module docs).
/// Outputs go to `output_dir` (mirroring a folder's structure), or to standard output when a
/// single file is given and no folder is. Two recordings that would share a transcript name
/// (`a.wav` and `a.mp3`) keep their own extension in it (`a.wav.json`, `a.mp3.json`). Inputs
/// that give no file are returned as errors so the batch can report them and go on.
pub fn discover(
    inputs: &[PathBuf],
    output_dir: Option<&Path>,
    format: Format,
    include: &Include,
) -> (Vec<Job>, Vec<InputError>) {
    let mut errors = Vec::new();
    let mut seen = HashSet::new();
    let mut found: Vec<(PathBuf, PathBuf)> = Vec::new(); // (file, path relative to output dir)
    for input in inputs {
        if input.is_dir() {
            let files = walk(input, include, &mut seen, &mut errors);
            if files.is_empty() {
                errors.push(InputError {
                    path: input.clone(),
                    message: format!("no recordings matching {include} in this folder"),
                });
            }
            for f in files {
                let rel = f.strip_prefix(input).unwrap_or(&f).to_owned();
                found.push((f, rel));
            }
        } else if input.exists() {
            let rel = PathBuf::from(input.file_name().unwrap_or(input.as_os_str()));
            found.push((input.clone(), rel));
        } else {
            errors.push(InputError {
                path: input.clone(),
                message: "no such file or folder".into(),
            });
        }
    }
    let to_stdout =
        output_dir.is_none() && inputs.len() == 1 && found.len() == 1 && !inputs[0].is_dir();
    let default_dir = PathBuf::from("transcripts");
    let dir = output_dir.unwrap_or(&default_dir);
    let plain = |rel: &Path| dir.join(rel).with_extension(format.extension());
    let mut shared: HashMap<PathBuf, usize> = HashMap::new();
    for (_, rel) in &found {
        *shared.entry(plain(rel)).or_default() += 1;
    }
    let jobs = found
        .into_iter()
        .map(|(input, rel)| {
            let mut output = plain(&rel);
            if shared[&output] > 1 {
                let mut name = rel.file_name().unwrap_or_default().to_owned();
                name.push(".");
                name.push(format.extension());
                output = dir.join(&rel).with_file_name(name);
            }
            Job {
                output: (!to_stdout).then_some(output),
                input,
            }
        })
        .collect();
    (jobs, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(jobs: &[Job], root: &Path) -> Vec<String> {
        jobs.iter()
            .map(|j| j.input.strip_prefix(root).unwrap().display().to_string())
            .collect()
    }

    #[test]
    fn a_single_file_goes_to_stdout_and_folders_mirror_into_the_output_dir() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("calls/day1");
        std::fs::create_dir_all(&sub).unwrap();
        for f in ["b.wav", "a.WAV", "notes.txt"] {
            std::fs::write(sub.join(f), "x").unwrap();
        }
        let one = sub.join("b.wav");
        let (jobs, errs) = discover(
            std::slice::from_ref(&one),
            None,
            Format::Txt,
            &Include::default(),
        );
        assert!(errs.is_empty());
        assert_eq!(
            jobs,
            vec![Job {
                input: one.clone(),
                output: None
            }]
        );

        let out = dir.path().join("out");
        let (jobs, errs) = discover(
            &[dir.path().join("calls"), dir.path().join("missing.wav")],
            Some(&out),
            Format::Srt,
            &Include::default(),
        );
        assert_eq!(errs.len(), 1);
        assert!(errs[0].to_string().contains("missing.wav"));
        let outputs: Vec<_> = jobs.iter().map(|j| j.output.clone().unwrap()).collect();
        assert_eq!(
            outputs,
            vec![out.join("day1/a.srt"), out.join("day1/b.srt")]
        );
    }

    #[test]
    fn archives_are_filtered_by_include_sorted_and_same_named_recordings_kept_apart() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("archive");
        for f in [
            "2024/02/b.mp3",
            "2024/02/b.wav",
            "2024/01/z.FLAC",
            "2024/01/a.opus",
            "readme.txt",
            "c.m4a",
        ] {
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "x").unwrap();
        }
        let out = dir.path().join("out");
        let (jobs, errs) = discover(
            std::slice::from_ref(&root),
            Some(&out),
            Format::Json,
            &Include::default(),
        );
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(
            names(&jobs, &root),
            [
                "2024/01/a.opus",
                "2024/01/z.FLAC",
                "2024/02/b.mp3",
                "2024/02/b.wav",
                "c.m4a"
            ]
        );
        let outputs: Vec<_> = jobs.iter().map(|j| j.output.clone().unwrap()).collect();
        assert_eq!(outputs[0], out.join("2024/01/a.json"));
        assert_eq!(outputs[2], out.join("2024/02/b.mp3.json"));
        assert_eq!(outputs[3], out.join("2024/02/b.wav.json"));

        let only: Include = "*.MP3, *.flac".parse().unwrap();
        let (jobs, _) = discover(std::slice::from_ref(&root), Some(&out), Format::Json, &only);
        assert_eq!(names(&jobs, &root), ["2024/01/z.FLAC", "2024/02/b.mp3"]);
        assert_eq!(jobs[1].output, Some(out.join("2024/02/b.json")));

        let (jobs, errs) = discover(
            std::slice::from_ref(&root),
            Some(&out),
            Format::Json,
            &"*.aiff".parse().unwrap(),
        );
        assert!(jobs.is_empty());
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0].message.contains("no recordings matching *.aiff"),
            "{}",
            errs[0]
        );
        assert!("[".parse::<Include>().is_err());
    }

    #[cfg(unix)]
    #[test]
    fn symbolic_links_are_followed_once_and_loops_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("calls");
        std::fs::create_dir_all(root.join("day")).unwrap();
        std::fs::write(root.join("day/a.wav"), "x").unwrap();
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir_all(&elsewhere).unwrap();
        std::fs::write(elsewhere.join("b.wav"), "x").unwrap();
        // A loop back up the tree, a second name for a.wav, a link to another folder.
        std::os::unix::fs::symlink(&root, root.join("day/up")).unwrap();
        std::os::unix::fs::symlink(root.join("day/a.wav"), root.join("same.wav")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, root.join("linked")).unwrap();
        let (jobs, errs) = discover(
            std::slice::from_ref(&root),
            None,
            Format::Txt,
            &Include::default(),
        );
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(names(&jobs, &root), ["day/a.wav", "linked/b.wav"]);
    }
}
