//! The per-file report of a batch (`--report FILE.csv`) and its summary (`--summary-json`).
//!
//! One row per recording the run found, in the run's file order: done, skipped (a complete
//! transcript was there already), failed (with the one-line error), or interrupted (Ctrl-C came
//! before it finished). Rows are also appended to the CSV as files finish, so a run that is
//! killed leaves the rows it got to; the finished run rewrites the file whole and in order.

use super::Job;
use crate::audio::decode::AudioInfo;
use crate::transcript::{LanguageSource, Transcript};
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Done,
    Skipped,
    Failed,
    Interrupted,
}

/// One recording's line: what a QA lead sorts and filters in a spreadsheet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub file: String,
    pub status: Status,
    pub error: String,
    pub duration_s: Option<f64>,
    pub channels: Option<u16>,
    pub language: String,
    pub language_probability: Option<f32>,
    pub adapter: String,
    pub words: Option<usize>,
    /// Wall time over audio time for this file (lower is faster).
    pub real_time_factor: Option<f64>,
}

impl Row {
    fn empty(file: &Path, status: Status) -> Self {
        Row {
            file: file.display().to_string(),
            status,
            error: String::new(),
            duration_s: None,
            channels: None,
            language: String::new(),
            language_probability: None,
            adapter: String::new(),
            words: None,
            real_time_factor: None,
        }
    }

    /// A recording transcribed in `wall_secs`.
    pub fn done(file: &Path, t: &Transcript, wall_secs: f64) -> Self {
        let mut row = Row::of_transcript(file, Status::Done, t);
        let audio = t.duration_ms as f64 / 1000.0;
        row.real_time_factor = (audio > 0.0).then(|| round(wall_secs / audio, 3));
        row
    }

    /// A recording left out because its transcript was complete; `t` when it could be read.
    pub fn skipped(file: &Path, t: Option<&Transcript>, info: Option<&AudioInfo>) -> Self {
        match t {
            Some(t) => Row::of_transcript(file, Status::Skipped, t),
            None => Row::of_info(file, Status::Skipped, info),
        }
    }

    pub fn failed(file: &Path, error: &str, info: Option<&AudioInfo>) -> Self {
        Row {
            error: error.replace('\n', " "),
            ..Row::of_info(file, Status::Failed, info)
        }
    }

    pub fn interrupted(file: &Path, info: Option<&AudioInfo>) -> Self {
        Row::of_info(file, Status::Interrupted, info)
    }

    fn of_info(file: &Path, status: Status, info: Option<&AudioInfo>) -> Self {
        Row {
            duration_s: info.and_then(|i| i.duration_secs).map(|d| round(d, 3)),
            channels: info.map(|i| i.channels),
            ..Row::empty(file, status)
        }
    }

    fn of_transcript(file: &Path, status: Status, t: &Transcript) -> Self {
        let probability = match &t.language_source {
            LanguageSource::Detected { probability }
            | LanguageSource::Unsure { probability, .. } => {
                Some(round(f64::from(*probability), 3) as f32)
            }
            _ => None,
        };
        Row {
            duration_s: Some(t.duration_ms as f64 / 1000.0),
            channels: Some(t.channels.len() as u16),
            language: t.language.clone(),
            language_probability: probability,
            adapter: t.dialect.as_ref().map(|d| d.id.clone()).unwrap_or_default(),
            words: Some(t.segments.iter().map(|s| count_words(&s.text)).sum()),
            ..Row::empty(file, status)
        }
    }
}

fn round(x: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (x * scale).round() / scale
}

/// Words of `text`: runs between spaces, and each Chinese or Japanese character on its own
/// (those scripts put no spaces between words).
pub fn count_words(text: &str) -> usize {
    let cjk = |c: char| matches!(c as u32, 0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF);
    text.split_whitespace()
        .map(|w| {
            let ideographs = w.chars().filter(|&c| cjk(c)).count();
            let rest = w
                .split(cjk)
                .filter(|p| p.chars().any(char::is_alphanumeric))
                .count();
            ideographs + rest
        })
        .sum()
}

/// The totals printed at the end and written by `--summary-json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    pub files: usize,
    pub done: usize,
    pub skipped: usize,
    pub failed: usize,
    pub interrupted: usize,
    /// Audio transcribed in this run (done files), seconds.
    pub audio_s: f64,
    pub wall_s: f64,
    pub real_time_factor: Option<f64>,
    /// The failed files and why, in file order.
    pub failures: Vec<Failure>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    pub file: String,
    pub error: String,
}

#[derive(Debug, thiserror::Error)]
#[error("{path}: cannot write the report: {source}")]
pub struct ReportError {
    path: PathBuf,
    source: std::io::Error,
}

/// Collects rows as the batch goes and writes the report.
pub struct Report {
    /// Where each file comes in the run's order.
    order: HashMap<PathBuf, usize>,
    rows: Mutex<Vec<(usize, Row)>>,
    csv: Option<(PathBuf, Mutex<csv::Writer<std::fs::File>>)>,
}

impl Report {
    /// A report over `jobs` (in their order), written as CSV to `csv_path` if given (the
    /// header at once, then a row per file as it finishes).
    pub fn create(jobs: &[Job], csv_path: Option<&Path>) -> Result<Self, ReportError> {
        let order = jobs
            .iter()
            .enumerate()
            .map(|(i, j)| (j.input.clone(), i))
            .collect();
        let csv = match csv_path {
            Some(p) => {
                let err = |source| ReportError {
                    path: p.to_owned(),
                    source,
                };
                if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(err)?;
                }
                let file = std::fs::File::create(p).map_err(err)?;
                let mut w = writer(file);
                write_header(&mut w).map_err(|e| err(e.into()))?;
                Some((p.to_owned(), Mutex::new(w)))
            }
            None => None,
        };
        Ok(Self {
            order,
            rows: Mutex::new(Vec::new()),
            csv,
        })
    }

    /// Records a row (rows of files outside the job list, such as unreadable folders, come
    /// first).
    pub fn add(&self, row: Row) {
        let at = self.order.get(Path::new(&row.file)).map_or(0, |&i| i + 1);
        if let Some((path, w)) = &self.csv {
            let mut w = w.lock().unwrap_or_else(|e| e.into_inner());
            if let Err(e) = w.serialize(&row).and_then(|()| Ok(w.flush()?)) {
                tracing::warn!(path = %path.display(), "cannot append to the report: {e}");
            }
        }
        self.rows
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((at, row));
    }

    /// The rows so far, in file order.
    pub fn rows(&self) -> Vec<Row> {
        let mut rows = self.rows.lock().unwrap_or_else(|e| e.into_inner()).clone();
        rows.sort_by_key(|(at, _)| *at);
        rows.into_iter().map(|(_, r)| r).collect()
    }

    pub fn summary(&self, wall_secs: f64) -> Summary {
        let rows = self.rows();
        let count = |s: Status| rows.iter().filter(|r| r.status == s).count();
        let audio_s: f64 = rows
            .iter()
            .filter(|r| r.status == Status::Done)
            .filter_map(|r| r.duration_s)
            .sum();
        Summary {
            files: rows.len(),
            done: count(Status::Done),
            skipped: count(Status::Skipped),
            failed: count(Status::Failed),
            interrupted: count(Status::Interrupted),
            audio_s: round(audio_s, 3),
            wall_s: round(wall_secs, 3),
            real_time_factor: (audio_s > 0.0).then(|| round(wall_secs / audio_s, 3)),
            failures: rows
                .iter()
                .filter(|r| r.status == Status::Failed)
                .map(|r| Failure {
                    file: r.file.clone(),
                    error: r.error.clone(),
                })
                .collect(),
        }
    }

    /// Rewrites the CSV whole, in file order (atomically: the rows appended so far stay until
    /// the ordered file replaces them).
    pub fn finish(&self) -> Result<(), ReportError> {
        let Some((path, _)) = &self.csv else {
            return Ok(());
        };
        let err = |source| ReportError {
            path: path.clone(),
            source,
        };
        let mut w = writer(Vec::new());
        write_header(&mut w).map_err(|e| err(e.into()))?;
        for row in self.rows() {
            w.serialize(&row).map_err(|e| err(e.into()))?;
        }
        let bytes = w.into_inner().map_err(|e| err(e.into_error()))?;
        super::output::write_atomically(path, &bytes).map_err(err)
    }
}

/// Writes `summary` as pretty JSON to `path`.
pub fn write_summary(path: &Path, summary: &Summary) -> Result<(), ReportError> {
    let json = serde_json::to_vec_pretty(summary).expect("a summary serialises");
    super::output::write_atomically(path, &json).map_err(|source| ReportError {
        path: path.to_owned(),
        source,
    })
}

/// A CSV writer that leaves the header to [`write_header`].
fn writer<W: std::io::Write>(w: W) -> csv::Writer<W> {
    csv::WriterBuilder::new().has_headers(false).from_writer(w)
}

/// The header row: `csv` writes it from the first serialised row, which a run with no rows
/// would never have.
fn write_header<W: std::io::Write>(w: &mut csv::Writer<W>) -> csv::Result<()> {
    w.write_record([
        "file",
        "status",
        "error",
        "duration_s",
        "channels",
        "language",
        "language_probability",
        "adapter",
        "words",
        "real_time_factor",
    ])?;
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_counted_in_spaced_and_unspaced_scripts() {
        assert_eq!(count_words("Hi, my parcel hasn't arrived."), 5);
        assert_eq!(count_words("我的包裹 还没到"), 7);
        assert_eq!(count_words("order 12345 已发货 - ok"), 6);
        assert_eq!(count_words(""), 0);
    }

    #[test]
    fn rows_come_out_in_file_order_with_the_header_and_quoted_errors() {
        let dir = tempfile::tempdir().unwrap();
        let jobs: Vec<Job> = ["a.mp3", "b.wav", "c.flac"]
            .iter()
            .map(|f| Job {
                input: PathBuf::from(f),
                output: None,
            })
            .collect();
        let path = dir.path().join("r/report.csv");
        let report = Report::create(&jobs, Some(&path)).unwrap();
        report.add(Row::failed(
            Path::new("c.flac"),
            "c.flac: FLAC data truncated: the header announces 9.0 s, but \"only\" 3.0 s",
            None,
        ));
        report.add(Row::interrupted(Path::new("b.wav"), None));
        report.add(Row::skipped(Path::new("a.mp3"), None, None));
        let appended = std::fs::read_to_string(&path).unwrap();
        assert!(appended
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("c.flac,failed,"));
        report.finish().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "file,status,error,duration_s,channels,language,language_probability,adapter,words,real_time_factor"
        );
        assert_eq!(lines[1], "a.mp3,skipped,,,,,,,,");
        assert_eq!(lines[2], "b.wav,interrupted,,,,,,,,");
        assert_eq!(
            lines[3],
            r#"c.flac,failed,"c.flac: FLAC data truncated: the header announces 9.0 s, but ""only"" 3.0 s",,,,,,,"#
        );
        let s = report.summary(2.0);
        assert_eq!(
            (s.files, s.done, s.skipped, s.failed, s.interrupted),
            (3, 0, 1, 1, 1)
        );
        assert_eq!(s.failures[0].file, "c.flac");
        assert_eq!(s.real_time_factor, None);
    }
}
