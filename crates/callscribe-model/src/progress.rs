//! Progress reporting for long model operations, kept free of any terminal library so the
//! library can run headless; the CLI plugs in progress bars.

pub trait Progress: Sync {
    /// A new phase begins (`total` in bytes, if known).
    fn begin(&self, phase: &str, total: Option<u64>);
    /// `done` bytes of the current phase are finished.
    fn set(&self, done: u64);
    fn end(&self);
}

/// Reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {
    fn begin(&self, _: &str, _: Option<u64>) {}
    fn set(&self, _: u64) {}
    fn end(&self) {}
}
