//! indicatif progress bars for the library's [`Progress`] hook and for batches.

use crate::model::Progress;
use indicatif::{ProgressBar, ProgressStyle};
use std::sync::Mutex;

/// Byte-progress bars for model downloads and conversions, drawn on stderr.
#[derive(Default)]
pub struct ByteBars {
    bar: Mutex<Option<ProgressBar>>,
}

impl Progress for ByteBars {
    fn begin(&self, phase: &str, total: Option<u64>) {
        let pb = match total {
            Some(t) => ProgressBar::new(t).with_style(
                ProgressStyle::with_template("{msg:32} [{bar:40}] {bytes}/{total_bytes} ({eta})")
                    .expect("static template")
                    .progress_chars("=> "),
            ),
            None => ProgressBar::new_spinner().with_style(
                ProgressStyle::with_template("{spinner} {msg}").expect("static template"),
            ),
        };
        pb.set_message(phase.to_owned());
        if total.is_none() {
            pb.enable_steady_tick(std::time::Duration::from_millis(120));
        }
        *self.bar.lock().unwrap_or_else(|e| e.into_inner()) = Some(pb);
    }

    fn set(&self, done: u64) {
        if let Some(pb) = self.bar.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            pb.set_position(done);
        }
    }

    fn end(&self) {
        if let Some(pb) = self.bar.lock().unwrap_or_else(|e| e.into_inner()).take() {
            pb.finish_and_clear();
        }
    }
}

/// The batch bar: audio hours done, real-time factor, files done.
pub fn batch_bar(total_audio_secs: f64, files: usize) -> ProgressBar {
    let pb = ProgressBar::new((total_audio_secs * 1000.0) as u64).with_style(
        ProgressStyle::with_template("[{elapsed_precise}] [{bar:30}] {msg}")
            .expect("static template")
            .progress_chars("=> "),
    );
    pb.set_message(format!("0/{files} files"));
    pb
}

/// `submit --wait`'s bar: jobs finished (done or failed) of those submitted.
pub fn jobs_bar(jobs: usize) -> ProgressBar {
    let pb = ProgressBar::new(jobs as u64).with_style(
        ProgressStyle::with_template("[{elapsed_precise}] [{bar:30}] {pos}/{len} jobs · {msg}")
            .expect("static template")
            .progress_chars("=> "),
    );
    pb.set_message("0 failed");
    pb
}
