//! Sound-card capture: the third front door's source. A cpal input stream at the device's
//! own rate and sample format feeds a lock-free ring buffer; the pipeline side drains it into
//! the same call driver the gRPC server uses.
//!
//! The one thing to know: the audio callback runs on the device's real-time thread, so it
//! only converts samples to f32 and pushes whole frames into the ring. It never allocates,
//! locks or blocks; when the ring is full the frames it cannot take are counted as overruns,
//! never dropped silently. [`session`] is the loop on the other side of the ring, for both
//! ways a captured call goes (transcribed here, or sent to a server).

pub mod device;
pub mod recorder;
pub mod session;
pub mod source;

pub use device::{find_input, list_inputs, DeviceInfo};
pub use recorder::Recorder;
pub use source::{Capture, CaptureFormat, CaptureRequest, CaptureStats, SampleKind};

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("no input device named '{name}' (available: {})", available.join(", "))]
    UnknownDevice {
        name: String,
        available: Vec<String>,
    },
    #[error("no default input device (available: {})", available.join(", "))]
    NoDefault { available: Vec<String> },
    #[error("cannot list audio devices: {0}")]
    Enumerate(String),
    #[error("device '{device}': {what}: {message}")]
    Device {
        device: String,
        what: &'static str,
        message: String,
    },
    #[error("device '{device}' does not capture {wanted} (it offers: {offered})")]
    Unsupported {
        device: String,
        wanted: String,
        offered: String,
    },
    #[error("recording to {path}: {message}")]
    Record { path: String, message: String },
}
