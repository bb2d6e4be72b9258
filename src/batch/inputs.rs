//! Turning the command line's files and folders into jobs with output paths.

use crate::transcript::format::Format;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub input: PathBuf,
    /// Where the transcript goes; `None` = standard output.
    pub output: Option<PathBuf>,
}

fn is_wav(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("wav"))
}

/// Files are taken as given; folders are searched recursively for `*.wav`, in name order.
/// Outputs go to `output_dir` (mirroring a folder's structure), or to standard output when a
/// single file is given and no folder is. Paths that do not exist are returned as errors so
/// the batch can report them and go on.
pub fn discover(
    inputs: &[PathBuf],
    output_dir: Option<&Path>,
    format: Format,
) -> (Vec<Job>, Vec<String>) {
    let mut errors = Vec::new();
    let mut found: Vec<(PathBuf, PathBuf)> = Vec::new(); // (file, path relative to output dir)
    for input in inputs {
        if input.is_dir() {
            let mut files: Vec<PathBuf> = walkdir::WalkDir::new(input)
                .follow_links(true)
                .into_iter()
                .filter_map(|e| match e {
                    Ok(e) => Some(e),
                    Err(err) => {
                        errors.push(format!("{}: {err}", input.display()));
                        None
                    }
                })
                .filter(|e| e.file_type().is_file() && is_wav(e.path()))
                .map(|e| e.into_path())
                .collect();
            files.sort();
            if files.is_empty() {
                errors.push(format!("{}: no .wav files in this folder", input.display()));
            }
            for f in files {
                let rel = f.strip_prefix(input).unwrap_or(&f).to_owned();
                found.push((f, rel));
            }
        } else if input.exists() {
            let rel = PathBuf::from(input.file_name().unwrap_or(input.as_os_str()));
            found.push((input.clone(), rel));
        } else {
            errors.push(format!("{}: no such file or folder", input.display()));
        }
    }
    let to_stdout =
        output_dir.is_none() && inputs.len() == 1 && found.len() == 1 && !inputs[0].is_dir();
    let default_dir = PathBuf::from("transcripts");
    let dir = output_dir.unwrap_or(&default_dir);
    let jobs = found
        .into_iter()
        .map(|(input, rel)| Job {
            output: (!to_stdout).then(|| dir.join(rel).with_extension(format.extension())),
            input,
        })
        .collect();
    (jobs, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_file_goes_to_stdout_and_folders_mirror_into_the_output_dir() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("calls/day1");
        std::fs::create_dir_all(&sub).unwrap();
        for f in ["b.wav", "a.WAV", "notes.txt"] {
            std::fs::write(sub.join(f), "x").unwrap();
        }
        let one = sub.join("b.wav");
        let (jobs, errs) = discover(std::slice::from_ref(&one), None, Format::Txt);
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
        );
        assert_eq!(errs.len(), 1);
        assert!(errs[0].contains("missing.wav"));
        let outputs: Vec<_> = jobs.iter().map(|j| j.output.clone().unwrap()).collect();
        assert_eq!(
            outputs,
            vec![out.join("day1/a.srt"), out.join("day1/b.srt")]
        );
    }
}
