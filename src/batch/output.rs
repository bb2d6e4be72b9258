//! Transcripts on disk, written so that a run can be stopped at any moment and resumed.
//!
//! A transcript is written to a hidden temporary file beside its final name and renamed over
//! it once complete, so a transcript that exists is whole: a run killed mid-write leaves only
//! a `.NAME.*.partial` file, which is never taken for a transcript. `--skip-existing` then
//! leaves out each recording whose transcript exists, is no older than the recording and (for
//! JSON) reads back as a transcript.

use super::Job;
use crate::transcript::format::Format;
use crate::transcript::Transcript;
use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename (atomic
/// on one file system), creating the folder if needed.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let mut temp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".partial")
        .tempfile_in(dir)?;
    temp.write_all(bytes)?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// What `--skip-existing` finds for a job.
#[derive(Debug)]
pub enum Existing {
    /// No usable transcript: transcribe the recording.
    Missing,
    /// The transcript is older than the recording (which was replaced since): transcribe again.
    Stale,
    /// A complete transcript; for JSON, its content (for the report).
    Done(Option<Box<Transcript>>),
}

/// Looks at `job`'s transcript. Jobs written to standard output have none.
pub fn existing(job: &Job, format: Format) -> Existing {
    let Some(out) = &job.output else {
        return Existing::Missing;
    };
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified());
    let Ok(written) = modified(out) else {
        return Existing::Missing;
    };
    match modified(&job.input) {
        Ok(recorded) if recorded > written => return Existing::Stale,
        _ => {}
    }
    if format != Format::Json {
        return Existing::Done(None);
    }
    match std::fs::read(out).map(|b| serde_json::from_slice::<Transcript>(&b)) {
        Ok(Ok(t)) => Existing::Done(Some(Box::new(t))),
        // Not a transcript we wrote (or an older build's interrupted write).
        _ => Existing::Missing,
    }
}

/// Splits `jobs` into those to transcribe and those `--skip-existing` leaves out (with what
/// was found for each).
pub fn skip_existing(jobs: Vec<Job>, format: Format) -> (Vec<Job>, Vec<(Job, Existing)>) {
    let mut todo = Vec::new();
    let mut skipped = Vec::new();
    for job in jobs {
        match existing(&job, format) {
            e @ Existing::Done(_) => skipped.push((job, e)),
            Existing::Stale => {
                tracing::info!(file = %job.input.display(), "recording newer than its transcript: transcribing again");
                todo.push(job);
            }
            Existing::Missing => todo.push(job),
        }
    }
    (todo, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    #[test]
    fn writes_replace_the_file_whole_and_leave_no_temporary_behind() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("day/a.txt");
        write_atomically(&out, b"first").unwrap();
        write_atomically(&out, b"second").unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"second");
        let names: Vec<_> = std::fs::read_dir(dir.path().join("day"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["a.txt"]);
    }

    #[test]
    fn a_transcript_counts_only_when_whole_and_newer_than_its_recording() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("a.wav");
        std::fs::write(&input, "audio").unwrap();
        let job = |ext: &str| Job {
            input: input.clone(),
            output: Some(dir.path().join(format!("a.{ext}"))),
        };
        assert!(matches!(
            existing(&job("txt"), Format::Txt),
            Existing::Missing
        ));
        write_atomically(job("txt").output.as_ref().unwrap(), b"agent: hi\n").unwrap();
        assert!(matches!(
            existing(&job("txt"), Format::Txt),
            Existing::Done(None)
        ));
        // A half-written JSON transcript (an older build killed mid-write) is not done.
        std::fs::write(job("json").output.unwrap(), b"{\"source\": \"a.w").unwrap();
        assert!(matches!(
            existing(&job("json"), Format::Json),
            Existing::Missing
        ));
        // The recording replaced after its transcript was written.
        let later = SystemTime::now() + Duration::from_secs(60);
        std::fs::File::options()
            .write(true)
            .open(&input)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert!(matches!(
            existing(&job("txt"), Format::Txt),
            Existing::Stale
        ));
        let stdout = Job {
            input,
            output: None,
        };
        assert!(matches!(existing(&stdout, Format::Txt), Existing::Missing));
    }
}
