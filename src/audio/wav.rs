//! WAV files (hound) → planar `f32` channels at the file's own rate.
//!
//! Integer samples are scaled by their full-scale value so that every bit depth lands in
//! [-1, 1]. Errors name the file and what is wrong with it; a truncated file is an error, not
//! a silently shorter call.

use std::io::BufReader;
use std::path::{Path, PathBuf};

/// Most channels a call recording may have: agent and customer.
pub const MAX_CHANNELS: u16 = 2;

#[derive(Debug, thiserror::Error)]
pub enum WavError {
    #[error("{path}: cannot open: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a WAV file ({reason})")]
    NotWav { path: PathBuf, reason: String },
    #[error("{path}: unsupported WAV: {reason}")]
    Unsupported { path: PathBuf, reason: String },
    #[error("{path}: WAV data truncated: the header announces {expected} sample frames but the file holds only {found}")]
    Truncated {
        path: PathBuf,
        expected: u64,
        found: u64,
    },
    #[error("{path}: WAV holds no audio (0 samples)")]
    Empty { path: PathBuf },
    #[error("{path}: cannot read WAV: {reason}")]
    Read { path: PathBuf, reason: String },
}

/// A decoded recording: one `Vec<f32>` per channel, at `sample_rate_hz`.
#[derive(Debug, Clone)]
pub struct WavAudio {
    pub sample_rate_hz: u32,
    pub channels: Vec<Vec<f32>>,
}

impl WavAudio {
    pub fn frames(&self) -> usize {
        self.channels.first().map_or(0, Vec::len)
    }

    pub fn duration_secs(&self) -> f64 {
        self.frames() as f64 / f64::from(self.sample_rate_hz)
    }
}

/// What the header says, without decoding: used to size progress bars before the work starts.
#[derive(Debug, Clone, Copy)]
pub struct WavInfo {
    pub sample_rate_hz: u32,
    pub channels: u16,
    pub frames: u64,
}

impl WavInfo {
    pub fn duration_secs(&self) -> f64 {
        self.frames as f64 / f64::from(self.sample_rate_hz.max(1))
    }
}

fn open(path: &Path) -> Result<hound::WavReader<BufReader<std::fs::File>>, WavError> {
    let file = std::fs::File::open(path).map_err(|source| WavError::Open {
        path: path.to_owned(),
        source,
    })?;
    hound::WavReader::new(BufReader::new(file)).map_err(|e| classify(path, e))
}

fn classify(path: &Path, e: hound::Error) -> WavError {
    let path = path.to_owned();
    match e {
        hound::Error::FormatError(reason) => WavError::NotWav {
            path,
            reason: reason.to_string(),
        },
        hound::Error::Unsupported => WavError::Unsupported {
            path,
            reason: "sample format hound cannot decode".into(),
        },
        // The file opened, so a read error inside the header means it is cut short there.
        hound::Error::IoError(_) => WavError::NotWav {
            path,
            reason: "file ends inside the header".into(),
        },
        other => WavError::Read {
            path,
            reason: other.to_string(),
        },
    }
}

fn check_spec(path: &Path, spec: &hound::WavSpec) -> Result<(), WavError> {
    let unsupported = |reason: String| WavError::Unsupported {
        path: path.to_owned(),
        reason,
    };
    if spec.channels == 0 || spec.channels > MAX_CHANNELS {
        return Err(unsupported(format!(
            "{} channels (callscribe takes mono or two-channel agent/customer calls)",
            spec.channels
        )));
    }
    if spec.sample_rate < 1000 || spec.sample_rate > 192_000 {
        return Err(unsupported(format!("sample rate {} Hz", spec.sample_rate)));
    }
    match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Int, 8 | 16 | 24 | 32) | (hound::SampleFormat::Float, 32) => Ok(()),
        (fmt, bits) => Err(unsupported(format!("{bits}-bit {fmt:?} samples"))),
    }
}

/// Reads the header only.
pub fn probe_wav(path: &Path) -> Result<WavInfo, WavError> {
    let reader = open(path)?;
    let spec = reader.spec();
    check_spec(path, &spec)?;
    Ok(WavInfo {
        sample_rate_hz: spec.sample_rate,
        channels: spec.channels,
        frames: u64::from(reader.duration()),
    })
}

/// Decodes a whole WAV file into planar `f32` channels.
pub fn read_wav(path: &Path) -> Result<WavAudio, WavError> {
    let mut reader = open(path)?;
    let spec = reader.spec();
    check_spec(path, &spec)?;
    let n_channels = usize::from(spec.channels);
    let expected_frames = u64::from(reader.duration());
    if expected_frames == 0 {
        return Err(WavError::Empty {
            path: path.to_owned(),
        });
    }
    let mut channels: Vec<Vec<f32>> = (0..n_channels)
        .map(|_| Vec::with_capacity(expected_frames as usize))
        .collect();
    let mut index = 0usize;
    // hound reports a short data chunk as an I/O error ("Failed to read enough bytes").
    let truncated = |e: hound::Error, index: usize| match e {
        hound::Error::IoError(_) => WavError::Truncated {
            path: path.to_owned(),
            expected: expected_frames,
            found: (index / n_channels) as u64,
        },
        other => classify(path, other),
    };
    match spec.sample_format {
        hound::SampleFormat::Float => {
            for s in reader.samples::<f32>() {
                let s = s.map_err(|e| truncated(e, index))?;
                channels[index % n_channels].push(s);
                index += 1;
            }
        }
        hound::SampleFormat::Int => {
            // Full scale of a signed integer with this many bits.
            let scale = 1.0 / (1u64 << (spec.bits_per_sample - 1)) as f32;
            for s in reader.samples::<i32>() {
                let s = s.map_err(|e| truncated(e, index))?;
                channels[index % n_channels].push(s as f32 * scale);
                index += 1;
            }
        }
    }
    let found = (index / n_channels) as u64;
    if found < expected_frames {
        return Err(WavError::Truncated {
            path: path.to_owned(),
            expected: expected_frames,
            found,
        });
    }
    Ok(WavAudio {
        sample_rate_hz: spec.sample_rate,
        channels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(
        dir: &Path,
        name: &str,
        spec: hound::WavSpec,
        frames: usize,
        f: impl Fn(usize, usize) -> f64,
    ) -> PathBuf {
        let path = dir.join(name);
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        for i in 0..frames {
            for c in 0..spec.channels as usize {
                let v = f(i, c);
                match spec.sample_format {
                    hound::SampleFormat::Float => w.write_sample(v as f32).unwrap(),
                    hound::SampleFormat::Int => {
                        let full = (1i64 << (spec.bits_per_sample - 1)) as f64;
                        let s = (v * full).round().clamp(-full, full - 1.0) as i32;
                        match spec.bits_per_sample {
                            8 => w.write_sample(s as i8).unwrap(),
                            16 => w.write_sample(s as i16).unwrap(),
                            _ => w.write_sample(s).unwrap(),
                        }
                    }
                }
            }
        }
        w.finalize().unwrap();
        path
    }

    fn spec(channels: u16, rate: u32, bits: u16, float: bool) -> hound::WavSpec {
        hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: bits,
            sample_format: if float {
                hound::SampleFormat::Float
            } else {
                hound::SampleFormat::Int
            },
        }
    }

    #[test]
    fn every_bit_depth_decodes_to_the_same_scale() {
        let dir = tempfile::tempdir().unwrap();
        for (bits, float) in [
            (8, false),
            (16, false),
            (24, false),
            (32, false),
            (32, true),
        ] {
            let p = write(
                dir.path(),
                &format!("b{bits}{float}.wav"),
                spec(1, 8000, bits, float),
                100,
                |i, _| {
                    if i == 10 {
                        0.5
                    } else if i == 20 {
                        -0.5
                    } else {
                        0.0
                    }
                },
            );
            let a = read_wav(&p).unwrap();
            assert_eq!(a.sample_rate_hz, 8000);
            assert_eq!(a.frames(), 100);
            let tol = if bits == 8 { 1.0 / 128.0 } else { 1e-4 };
            assert!(
                (a.channels[0][10] - 0.5).abs() <= tol,
                "{bits} bits: {}",
                a.channels[0][10]
            );
            assert!(
                (a.channels[0][20] + 0.5).abs() <= tol,
                "{bits} bits: {}",
                a.channels[0][20]
            );
            assert!(a.channels[0][0].abs() <= tol);
        }
    }

    #[test]
    fn stereo_is_deinterleaved_into_two_channels() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "st.wav",
            spec(2, 16000, 16, false),
            50,
            |_, c| {
                if c == 0 {
                    0.25
                } else {
                    -0.25
                }
            },
        );
        let a = read_wav(&p).unwrap();
        assert_eq!(a.channels.len(), 2);
        assert!(a.channels[0].iter().all(|&v| (v - 0.25).abs() < 1e-3));
        assert!(a.channels[1].iter().all(|&v| (v + 0.25).abs() < 1e-3));
    }

    #[test]
    fn empty_truncated_and_foreign_files_are_typed_errors() {
        let dir = tempfile::tempdir().unwrap();
        let empty = write(
            dir.path(),
            "empty.wav",
            spec(1, 16000, 16, false),
            0,
            |_, _| 0.0,
        );
        assert!(matches!(read_wav(&empty), Err(WavError::Empty { .. })));

        let good = write(
            dir.path(),
            "good.wav",
            spec(1, 16000, 16, false),
            16000,
            |_, _| 0.1,
        );
        let bytes = std::fs::read(&good).unwrap();
        let cut = dir.path().join("cut.wav");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        match read_wav(&cut) {
            Err(
                e @ WavError::Truncated {
                    expected, found, ..
                },
            ) => {
                assert_eq!(expected, 16000);
                assert!(found < 16000 && found > 7000, "found {found}");
                assert!(e.to_string().contains("cut.wav"), "{e}");
            }
            other => panic!("expected Truncated, got {other:?}"),
        }

        let header_only = dir.path().join("header.wav");
        std::fs::write(&header_only, &bytes[..20]).unwrap();
        assert!(matches!(
            read_wav(&header_only),
            Err(WavError::NotWav { .. })
        ));

        let text = dir.path().join("notes.wav");
        std::fs::File::create(&text)
            .unwrap()
            .write_all(b"this is not audio at all, just text\n")
            .unwrap();
        let e = read_wav(&text).unwrap_err();
        assert!(matches!(e, WavError::NotWav { .. }), "{e:?}");
        assert!(
            e.to_string().starts_with(&text.display().to_string()),
            "{e}"
        );

        let missing = read_wav(&dir.path().join("nope.wav")).unwrap_err();
        assert!(matches!(missing, WavError::Open { .. }));
    }

    #[test]
    fn more_than_two_channels_is_refused_with_the_count() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "six.wav",
            spec(6, 16000, 16, false),
            10,
            |_, _| 0.0,
        );
        let e = read_wav(&p).unwrap_err();
        assert!(matches!(e, WavError::Unsupported { .. }));
        assert!(e.to_string().contains("6 channels"), "{e}");
    }

    #[test]
    fn probe_reads_duration_from_the_header() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "p.wav",
            spec(2, 8000, 16, false),
            4000,
            |_, _| 0.0,
        );
        let info = probe_wav(&p).unwrap();
        assert_eq!(info.channels, 2);
        assert!((info.duration_secs() - 0.5).abs() < 1e-9);
    }
}
