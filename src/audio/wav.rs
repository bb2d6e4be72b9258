//! WAV files (hound) → planar `f32` channels at the file's own rate.
//!
//! Integer samples are scaled by their full-scale value so that every bit depth lands in
//! [-1, 1]. Errors name the file and what is wrong with it; a truncated file is an error, not
//! a silently shorter call.

use std::io::{BufReader, Cursor, Read};
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
    let reader = match open(path) {
        Err(WavError::Unsupported { .. }) if g711::is_g711(path) => {
            return g711::read(path);
        }
        other => other?,
    };
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
    let reader = match open(path) {
        Err(WavError::Unsupported { .. }) if g711::is_g711(path) => return g711::decode_file(path),
        other => other?,
    };
    decode(path, reader)
}

/// Decodes a WAV file held in memory (a gRPC request's recording); `path` names it in errors.
pub fn read_wav_bytes(path: &Path, bytes: &[u8]) -> Result<WavAudio, WavError> {
    let reader = match hound::WavReader::new(Cursor::new(bytes)).map_err(|e| classify(path, e)) {
        Err(WavError::Unsupported { .. })
            if g711::parse(path, bytes).is_ok_and(|f| f.is_some()) =>
        {
            return g711::decode(path, bytes)
        }
        other => other?,
    };
    decode(path, reader)
}

fn decode<R: Read>(path: &Path, mut reader: hound::WavReader<R>) -> Result<WavAudio, WavError> {
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

/// WAVE format tags (the `fmt ` chunk's first field) this module decodes itself.
pub mod tag {
    pub const PCM: u16 = 0x0001;
    pub const IEEE_FLOAT: u16 = 0x0003;
    pub const ALAW: u16 = 0x0006;
    pub const MULAW: u16 = 0x0007;
    pub const EXTENSIBLE: u16 = 0xFFFE;
}

/// The chunks of a RIFF/WAVE file: `(id, declared size, offset of the body)`, in file order,
/// as far as `bytes` reaches. Empty when `bytes` is not RIFF/WAVE.
pub(crate) fn chunks(bytes: &[u8]) -> impl Iterator<Item = ([u8; 4], usize, usize)> + '_ {
    let riff = bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WAVE";
    let mut pos = if riff { 12 } else { bytes.len() };
    std::iter::from_fn(move || {
        let header = bytes.get(pos..pos.checked_add(8)?)?;
        let id = [header[0], header[1], header[2], header[3]];
        let size = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let body = pos + 8;
        pos = body.saturating_add(size).saturating_add(size & 1);
        Some((id, size, body))
    })
}

/// The audio format tag of a RIFF/WAVE file from its first bytes (the sub-format's tag for
/// WAVE_FORMAT_EXTENSIBLE): what decides which decoder reads it. `None` when `head` is not
/// RIFF/WAVE or its `fmt ` chunk is not within `head`.
pub fn format_tag(head: &[u8]) -> Option<u16> {
    let (_, size, body) = chunks(head).find(|(id, _, _)| id == b"fmt ")?;
    let fmt = head.get(body..body + size.min(40))?;
    let tag = u16::from_le_bytes([*fmt.first()?, *fmt.get(1)?]);
    if tag == tag::EXTENSIBLE && fmt.len() >= 26 {
        // WAVEFORMATEXTENSIBLE: the sub-format GUID starts with the real tag.
        return Some(u16::from_le_bytes([fmt[24], fmt[25]]));
    }
    Some(tag)
}

/// G.711 WAV files (format tags 6 = A-law, 7 = μ-law), the usual format of call recorders,
/// which hound does not read: a minimal RIFF walk to the `fmt ` and `data` chunks.
mod g711 {
    use super::{tag, WavAudio, WavError, WavInfo, MAX_CHANNELS};
    use crate::audio::codec::Encoding;
    use std::path::Path;

    pub struct Format {
        encoding: Encoding,
        channels: u16,
        rate: u32,
    }

    pub fn parse(
        path: &Path,
        bytes: &[u8],
    ) -> Result<Option<(Format, std::ops::Range<usize>, u64)>, WavError> {
        let mut format = None;
        for (id, size, body) in super::chunks(bytes) {
            if &id == b"fmt " && size >= 16 && body + 16 <= bytes.len() {
                let field = |at: usize, n: usize| {
                    bytes[body + at..body + at + n]
                        .iter()
                        .rev()
                        .fold(0u32, |v, &b| v << 8 | u32::from(b))
                };
                let encoding = match field(0, 2) as u16 {
                    tag::ALAW => Encoding::Alaw,
                    tag::MULAW => Encoding::Mulaw,
                    _ => return Ok(None),
                };
                format = Some(Format {
                    encoding,
                    channels: field(2, 2) as u16,
                    rate: field(4, 4),
                });
            } else if &id == b"data" {
                let Some(format) = format else {
                    return Ok(None);
                };
                if format.channels == 0
                    || format.channels > MAX_CHANNELS
                    || !(1000..=192_000).contains(&format.rate)
                {
                    return Err(WavError::Unsupported {
                        path: path.to_owned(),
                        reason: format!(
                            "G.711 with {} channels at {} Hz",
                            format.channels, format.rate
                        ),
                    });
                }
                let declared = (size / usize::from(format.channels)) as u64;
                let end = body.saturating_add(size).min(bytes.len());
                return Ok(Some((format, body..end, declared)));
            }
        }
        Ok(None)
    }

    /// Whether this is a WAV whose samples are G.711.
    pub fn is_g711(path: &Path) -> bool {
        std::fs::read(path)
            .ok()
            .is_some_and(|b| matches!(parse(path, &b), Ok(Some(_))))
    }

    fn file(path: &Path) -> Result<Vec<u8>, WavError> {
        std::fs::read(path).map_err(|source| WavError::Open {
            path: path.to_owned(),
            source,
        })
    }

    pub fn read(path: &Path) -> Result<WavInfo, WavError> {
        Ok(samples(path, &file(path)?)?.0)
    }

    /// The header's facts and the G.711 bytes (interleaved).
    fn samples<'a>(
        path: &Path,
        bytes: &'a [u8],
    ) -> Result<(WavInfo, Encoding, &'a [u8]), WavError> {
        let (format, range, declared) = parse(path, bytes)?.ok_or_else(|| WavError::NotWav {
            path: path.to_owned(),
            reason: "no G.711 fmt/data chunks".into(),
        })?;
        let found = (range.len() / usize::from(format.channels)) as u64;
        if found < declared {
            return Err(WavError::Truncated {
                path: path.to_owned(),
                expected: declared,
                found,
            });
        }
        if found == 0 {
            return Err(WavError::Empty {
                path: path.to_owned(),
            });
        }
        let info = WavInfo {
            sample_rate_hz: format.rate,
            channels: format.channels,
            frames: found,
        };
        Ok((info, format.encoding, &bytes[range]))
    }

    pub fn decode_file(path: &Path) -> Result<WavAudio, WavError> {
        decode(path, &file(path)?)
    }

    pub fn decode(path: &Path, bytes: &[u8]) -> Result<WavAudio, WavError> {
        let (info, encoding, data) = samples(path, bytes)?;
        let n = usize::from(info.channels);
        // Whole frames only: a data chunk that ends inside a frame would otherwise leave the
        // first channel a sample longer than the second.
        let data = &data[..data.len() - data.len() % n];
        let mut interleaved = Vec::with_capacity(data.len());
        crate::audio::codec::decode(encoding, data, &mut interleaved);
        let channels = (0..n)
            .map(|c| interleaved.iter().skip(c).step_by(n).copied().collect())
            .collect();
        Ok(WavAudio {
            sample_rate_hz: info.sample_rate_hz,
            channels,
        })
    }
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
    fn g711_wavs_decode_sample_for_sample_like_sox() {
        // audio-fixtures/calls/en_call_8k_ulaw.wav was written by sox from en_call_8k.wav;
        // sox's own μ-law expansion of it is the reference.
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("audio-fixtures/calls");
        let ulaw = read_wav(&fixtures.join("en_call_8k_ulaw.wav")).unwrap();
        assert_eq!((ulaw.sample_rate_hz, ulaw.channels.len()), (8000, 2));
        let dir = tempfile::tempdir().unwrap();
        let expanded = dir.path().join("s16.raw");
        let status = std::process::Command::new("sox")
            .args([
                "-t", "raw", "-e", "u-law", "-b", "8", "-r", "8000", "-c", "2",
            ])
            .arg(fixtures.join("en_call_8k.ulaw"))
            .args(["-t", "raw", "-e", "signed", "-b", "16"])
            .arg(&expanded)
            .status()
            .expect("sox is installed by scripts/setup.sh");
        assert!(status.success());
        let s16 = std::fs::read(&expanded).unwrap();
        assert_eq!(s16.len(), ulaw.frames() * 2 * 2);
        for (i, c) in s16.chunks_exact(2).enumerate() {
            let want = f32::from(i16::from_le_bytes([c[0], c[1]])) / 32768.0;
            assert_eq!(ulaw.channels[i % 2][i / 2], want, "sample {i}");
        }
        // Close to the linear original (μ-law keeps ~13 bits).
        let pcm = read_wav(&fixtures.join("en_call_8k.wav")).unwrap();
        let err = ulaw.channels[1]
            .iter()
            .zip(&pcm.channels[1])
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(err < 0.02, "max error {err}");
        let info = probe_wav(&fixtures.join("en_call_8k_ulaw.wav")).unwrap();
        assert_eq!(info.frames as usize, ulaw.frames());
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

    /// Found by the `wav` fuzz target's check that a recording's channels are equally long:
    /// five bytes of two-channel μ-law gave the first channel three samples, the second two.
    #[test]
    fn g711_data_ending_inside_a_frame_keeps_the_channels_equal() {
        let mut bytes = b"RIFF\x2a\0\0\0WAVEfmt \x10\0\0\0".to_vec();
        bytes.extend_from_slice(&[7, 0, 2, 0, 0x40, 0x1F, 0, 0, 0x80, 0x3E, 0, 0, 2, 0, 8, 0]);
        bytes.extend_from_slice(b"data\x05\0\0\0\x01\x02\x03\x04\x05\0");
        let audio = read_wav_bytes(Path::new("torn.wav"), &bytes).unwrap();
        let lengths: Vec<usize> = audio.channels.iter().map(Vec::len).collect();
        assert_eq!(lengths, [2, 2]);
        assert_eq!(
            audio.channels[0][1],
            f32::from(crate::audio::codec::ulaw_to_linear(3)) / 32768.0
        );
    }
}
