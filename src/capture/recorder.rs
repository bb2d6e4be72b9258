//! `--record`: what was captured, as a WAV in the device's own sample format, for QA.
//!
//! Integer devices are recorded as 16-bit PCM and float devices as 32-bit float, so the file
//! holds the device's samples bit for bit (a u16 device's samples are stored offset to
//! signed, as WAV requires). The samples arrive as f32 from the ring; i16 and u16 values
//! survive the trip to f32 and back exactly (16 bits fit f32's 24-bit mantissa).

use super::{CaptureError, CaptureFormat, SampleKind};
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

pub struct Recorder {
    writer: hound::WavWriter<BufWriter<File>>,
    sample: SampleKind,
    path: PathBuf,
}

impl Recorder {
    pub fn create(path: &Path, format: CaptureFormat) -> Result<Self, CaptureError> {
        let spec = hound::WavSpec {
            channels: format.channels,
            sample_rate: format.sample_rate_hz,
            bits_per_sample: match format.sample {
                SampleKind::I16 | SampleKind::U16 => 16,
                SampleKind::F32 => 32,
            },
            sample_format: match format.sample {
                SampleKind::I16 | SampleKind::U16 => hound::SampleFormat::Int,
                SampleKind::F32 => hound::SampleFormat::Float,
            },
        };
        let writer = hound::WavWriter::create(path, spec).map_err(|e| record_error(path, e))?;
        Ok(Self {
            writer,
            sample: format.sample,
            path: path.to_owned(),
        })
    }

    /// Appends interleaved frames as they came from the ring.
    pub fn write(&mut self, interleaved: &[f32]) -> Result<(), CaptureError> {
        for &s in interleaved {
            let r = match self.sample {
                SampleKind::F32 => self.writer.write_sample(s),
                SampleKind::I16 | SampleKind::U16 => self
                    .writer
                    .write_sample((s * 32768.0).round().clamp(-32768.0, 32767.0) as i16),
            };
            r.map_err(|e| record_error(&self.path, e))?;
        }
        Ok(())
    }

    /// Writes the final header: the file is a valid WAV only after this.
    pub fn finish(self) -> Result<PathBuf, CaptureError> {
        let path = self.path.clone();
        self.writer.finalize().map_err(|e| record_error(&path, e))?;
        Ok(path)
    }
}

fn record_error(path: &Path, e: hound::Error) -> CaptureError {
    CaptureError::Record {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_samples_survive_the_f32_ring_bit_for_bit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.wav");
        let format = CaptureFormat {
            channels: 1,
            sample_rate_hz: 8000,
            sample: SampleKind::I16,
        };
        let originals: Vec<i16> = vec![i16::MIN, -12345, -1, 0, 1, 777, i16::MAX];
        let mut rec = Recorder::create(&path, format).unwrap();
        let ring: Vec<f32> = originals.iter().map(|&s| f32::from(s) / 32768.0).collect();
        rec.write(&ring).unwrap();
        rec.finish().unwrap();
        let back: Vec<i16> = hound::WavReader::open(&path)
            .unwrap()
            .samples::<i16>()
            .map(Result::unwrap)
            .collect();
        assert_eq!(back, originals);
    }
}
