//! The cpal input stream and the lock-free ring between its callback and the pipeline.

use super::CaptureError;
use cpal::traits::{DeviceTrait, StreamTrait};
use cpal::{BufferSize, SampleFormat, SizedSample, StreamConfig, SupportedBufferSize};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// Device period: short enough that the pipeline sees audio promptly, long enough that a
/// busy 2-core machine wakes the capture thread only 50 times a second.
const PERIOD_MS: u32 = 20;

/// The sample formats callscribe captures natively. Wider formats (24/32-bit) carry nothing
/// that speech recognition at 16 kHz could use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SampleKind {
    I16,
    U16,
    F32,
}

impl SampleKind {
    fn from_cpal(f: SampleFormat) -> Option<Self> {
        match f {
            SampleFormat::I16 => Some(Self::I16),
            SampleFormat::U16 => Some(Self::U16),
            SampleFormat::F32 => Some(Self::F32),
            _ => None,
        }
    }

    fn to_cpal(self) -> SampleFormat {
        match self {
            Self::I16 => SampleFormat::I16,
            Self::U16 => SampleFormat::U16,
            Self::F32 => SampleFormat::F32,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::I16 => "i16",
            Self::U16 => "u16",
            Self::F32 => "f32",
        }
    }
}

/// What to ask the device for; `None` = the device's default.
#[derive(Debug, Clone, Default)]
pub struct CaptureRequest {
    pub channels: Option<u16>,
    pub sample_rate_hz: Option<u32>,
    pub sample: Option<SampleKind>,
    /// Ring buffer length: how long the pipeline may stall before frames are lost.
    pub buffer_ms: u32,
}

/// The format the stream runs at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaptureFormat {
    pub channels: u16,
    pub sample_rate_hz: u32,
    pub sample: SampleKind,
}

/// Counters the callback updates and the pipeline side reads.
#[derive(Debug, Default)]
pub struct CaptureStats {
    /// Frames the device delivered.
    pub device_frames: AtomicU64,
    /// Frames lost because the ring was full (the pipeline fell behind).
    pub overrun_frames: AtomicU64,
    /// Callbacks that lost frames.
    pub overruns: AtomicU64,
    /// Errors the device reported (xruns in the driver, disconnection).
    pub stream_errors: AtomicU64,
    /// Set when the call ends: later frames belong to no call and are neither kept nor
    /// counted (some devices, ALSA plugins among them, cannot pause).
    closed: AtomicBool,
}

/// A running capture: the device stream and the ring's pipeline end.
pub struct Capture {
    /// `None` once stopped.
    stream: Option<cpal::Stream>,
    consumer: rtrb::Consumer<f32>,
    stats: Arc<CaptureStats>,
    format: CaptureFormat,
    device: String,
}

/// Picks a format the device supports: what was asked, else its default, and among the
/// sample formats we take, its preferred one.
fn choose_format(
    name: &str,
    device: &cpal::Device,
    req: &CaptureRequest,
) -> Result<(CaptureFormat, SupportedBufferSize), CaptureError> {
    let err = |what, e: cpal::Error| CaptureError::Device {
        device: name.to_owned(),
        what,
        message: e.to_string(),
    };
    let default = device
        .default_input_config()
        .map_err(|e| err("reading its default configuration", e))?;
    let supported: Vec<_> = device
        .supported_input_configs()
        .map_err(|e| err("reading its configurations", e))?
        .collect();
    let channels = req.channels.unwrap_or(default.channels());
    let rate = req.sample_rate_hz.unwrap_or(default.sample_rate());
    let fits = |kind: SampleKind| {
        supported.iter().find(|c| {
            c.channels() == channels
                && c.sample_format() == kind.to_cpal()
                && (c.min_sample_rate()..=c.max_sample_rate()).contains(&rate)
        })
    };
    let candidates = match req.sample {
        Some(k) => vec![k],
        None => {
            let mut v: Vec<SampleKind> = SampleKind::from_cpal(default.sample_format())
                .into_iter()
                .collect();
            v.extend([SampleKind::F32, SampleKind::I16, SampleKind::U16]);
            v
        }
    };
    for kind in candidates {
        if let Some(range) = fits(kind) {
            return Ok((
                CaptureFormat {
                    channels,
                    sample_rate_hz: rate,
                    sample: kind,
                },
                *range.buffer_size(),
            ));
        }
    }
    let mut offered: Vec<String> = supported
        .iter()
        .filter(|c| SampleKind::from_cpal(c.sample_format()).is_some())
        .map(|c| {
            format!(
                "{} ch {}–{} Hz {}",
                c.channels(),
                c.min_sample_rate(),
                c.max_sample_rate(),
                c.sample_format()
            )
        })
        .collect();
    offered.dedup();
    Err(CaptureError::Unsupported {
        device: name.to_owned(),
        wanted: format!(
            "{channels} ch at {rate} Hz as {}",
            req.sample.map_or("i16, u16 or f32", SampleKind::as_str)
        ),
        offered: if offered.is_empty() {
            "nothing in i16, u16 or f32".into()
        } else {
            offered.join("; ")
        },
    })
}

impl Capture {
    /// Opens `device` and starts capturing at once.
    pub fn start(
        name: &str,
        device: &cpal::Device,
        req: &CaptureRequest,
    ) -> Result<Self, CaptureError> {
        let (format, buffer_range) = choose_format(name, device, req)?;
        let period = format.sample_rate_hz * PERIOD_MS / 1000;
        let buffer_size = match buffer_range {
            SupportedBufferSize::Range { min, max } => BufferSize::Fixed(period.clamp(min, max)),
            SupportedBufferSize::Unknown => BufferSize::Default,
        };
        let config = StreamConfig {
            channels: format.channels,
            sample_rate: format.sample_rate_hz,
            buffer_size,
        };
        let ring_frames = (u64::from(format.sample_rate_hz)
            * u64::from(req.buffer_ms.max(PERIOD_MS * 2))
            / 1000) as usize;
        let (producer, consumer) = rtrb::RingBuffer::new(ring_frames * format.channels as usize);
        let stats = Arc::new(CaptureStats::default());
        let channels = format.channels as usize;
        let stream = match format.sample {
            SampleKind::I16 => build::<i16>(device, &config, producer, &stats, channels, |s| {
                f32::from(s) / 32768.0
            }),
            SampleKind::U16 => build::<u16>(device, &config, producer, &stats, channels, |s| {
                (f32::from(s) - 32768.0) / 32768.0
            }),
            SampleKind::F32 => build::<f32>(device, &config, producer, &stats, channels, |s| s),
        }
        .map_err(|e| CaptureError::Device {
            device: name.to_owned(),
            what: "opening the capture stream",
            message: e.to_string(),
        })?;
        stream.play().map_err(|e| CaptureError::Device {
            device: name.to_owned(),
            what: "starting capture",
            message: e.to_string(),
        })?;
        Ok(Self {
            stream: Some(stream),
            consumer,
            stats,
            format,
            device: name.to_owned(),
        })
    }

    pub fn format(&self) -> CaptureFormat {
        self.format
    }

    pub fn device(&self) -> &str {
        &self.device
    }

    pub fn stats(&self) -> &CaptureStats {
        &self.stats
    }

    /// Appends every whole frame waiting in the ring to `out` (f32, interleaved).
    pub fn drain(&mut self, out: &mut Vec<f32>) {
        let channels = self.format.channels as usize;
        let n = self.consumer.slots() / channels * channels;
        if n == 0 {
            return;
        }
        if let Ok(chunk) = self.consumer.read_chunk(n) {
            let (a, b) = chunk.as_slices();
            out.extend_from_slice(a);
            out.extend_from_slice(b);
            chunk.commit_all();
        }
    }

    /// Stops the device and closes it. Frames already in the ring stay there for
    /// [`drain`](Self::drain).
    pub fn stop(&mut self) {
        self.stats.closed.store(true, Ordering::Release);
        // Dropping the stream joins cpal's capture thread: the device is released here.
        drop(self.stream.take());
    }
}

/// The audio callback: converts and pushes whole frames, counts what does not fit.
fn build<T: SizedSample + Copy + Send + 'static>(
    device: &cpal::Device,
    config: &StreamConfig,
    mut producer: rtrb::Producer<f32>,
    stats: &Arc<CaptureStats>,
    channels: usize,
    convert: fn(T) -> f32,
) -> Result<cpal::Stream, cpal::Error> {
    let data_stats = stats.clone();
    let error_stats = stats.clone();
    device.build_input_stream::<T, _, _>(
        *config,
        move |data: &[T], _| {
            if data_stats.closed.load(Ordering::Acquire) {
                return;
            }
            let frames = data.len() / channels;
            let fit = (producer.slots() / channels).min(frames);
            if fit > 0 {
                if let Ok(chunk) = producer.write_chunk_uninit(fit * channels) {
                    chunk.fill_from_iter(data[..fit * channels].iter().map(|&s| convert(s)));
                }
            }
            data_stats
                .device_frames
                .fetch_add(frames as u64, Ordering::Relaxed);
            if fit < frames {
                data_stats
                    .overrun_frames
                    .fetch_add((frames - fit) as u64, Ordering::Relaxed);
                data_stats.overruns.fetch_add(1, Ordering::Relaxed);
            }
        },
        move |e| {
            error_stats.stream_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("capture device error: {e}");
        },
        None,
    )
}
