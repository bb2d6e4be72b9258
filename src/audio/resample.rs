//! Sample-rate conversion to [`PIPELINE_RATE_HZ`] with rubato, as a streaming stage.
//!
//! The same stage serves files (one big push, then `finish`) and live streams (many small
//! pushes), so a recording and a stream of the same audio produce the same samples. The
//! resampler's start-up delay is trimmed and the tail flushed, so output sample `n` lines up
//! with input time `n / 16 kHz` exactly: the call clock is never shifted by the filter.
//!
//! rubato's synchronous FFT resampler is used: the ratio is fixed (telephony rates are exact)
//! and it is both faster and cleaner than the asynchronous sinc one; see `benches/` for figures.

use super::pcm::PIPELINE_RATE_HZ;
use rubato::audioadapter_buffers::direct::SequentialSlice;
use rubato::{Fft, FixedSync, Indexing, Resampler as _};

/// Input frames per FFT chunk: about 64 ms at 16 kHz, small enough for live latency, large
/// enough that the FFT cost per sample stays low.
const CHUNK_FRAMES: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum ResampleError {
    #[error("cannot resample from {rate_hz} Hz: {reason}")]
    Construction { rate_hz: u32, reason: String },
    #[error("resampling failed: {0}")]
    Process(String),
}

/// Mono streaming resampler from one fixed rate to 16 kHz (identity when already 16 kHz).
pub struct Resampler {
    in_rate_hz: u32,
    fft: Option<Fft<f32>>,
    pending: Vec<f32>,
    scratch: Vec<f32>,
    /// Output frames still to drop: the FFT filter's group delay.
    delay_left: usize,
    in_total: u64,
    out_total: u64,
}

impl Resampler {
    pub fn new(in_rate_hz: u32) -> Result<Self, ResampleError> {
        let fft = if in_rate_hz == PIPELINE_RATE_HZ {
            None
        } else {
            Some(
                Fft::<f32>::new(
                    in_rate_hz as usize,
                    PIPELINE_RATE_HZ as usize,
                    CHUNK_FRAMES,
                    1,
                    FixedSync::Input,
                )
                .map_err(|e| ResampleError::Construction {
                    rate_hz: in_rate_hz,
                    reason: e.to_string(),
                })?,
            )
        };
        let (delay_left, scratch) = match &fft {
            Some(f) => (f.output_delay(), vec![0.0; f.output_frames_max()]),
            None => (0, Vec::new()),
        };
        Ok(Self {
            in_rate_hz,
            pending: Vec::with_capacity(fft.as_ref().map_or(0, |f| f.input_frames_max())),
            fft,
            scratch,
            delay_left,
            in_total: 0,
            out_total: 0,
        })
    }

    pub fn input_rate_hz(&self) -> u32 {
        self.in_rate_hz
    }

    /// Output frames that `in_total` input frames map to: ceil(n · 16000 / rate).
    fn expected_out(&self) -> u64 {
        let num = self.in_total * u64::from(PIPELINE_RATE_HZ);
        num.div_ceil(u64::from(self.in_rate_hz))
    }

    /// Feeds input; appends every output frame that is ready to `out`.
    pub fn process(&mut self, input: &[f32], out: &mut Vec<f32>) -> Result<(), ResampleError> {
        self.in_total += input.len() as u64;
        if self.fft.is_none() {
            out.extend_from_slice(input);
            self.out_total += input.len() as u64;
            return Ok(());
        }
        let mut rest = input;
        while !rest.is_empty() {
            let need = self.next_chunk() - self.pending.len();
            let take = need.min(rest.len());
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.pending.len() == self.next_chunk() {
                let len = self.pending.len();
                self.run_chunk(len, out)?;
            }
        }
        Ok(())
    }

    /// Flushes the tail: pads with silence until every input frame has its output frame.
    pub fn finish(&mut self, out: &mut Vec<f32>) -> Result<(), ResampleError> {
        if self.fft.is_none() {
            return Ok(());
        }
        let expected = self.expected_out();
        while self.out_total < expected {
            let partial = self.pending.len();
            let chunk = self.next_chunk();
            self.pending.resize(chunk, 0.0);
            self.run_chunk(partial, out)?;
        }
        // The padding may have produced a few frames past the true end.
        let excess = (self.out_total - expected) as usize;
        out.truncate(out.len() - excess.min(out.len()));
        self.out_total = expected;
        Ok(())
    }

    fn next_chunk(&self) -> usize {
        self.fft.as_ref().map_or(0, |f| f.input_frames_next())
    }

    fn run_chunk(&mut self, valid: usize, out: &mut Vec<f32>) -> Result<(), ResampleError> {
        let fft = self
            .fft
            .as_mut()
            .expect("run_chunk is only called with a resampler");
        let n_in = self.pending.len();
        let input = SequentialSlice::new(&self.pending, 1, n_in)
            .map_err(|e| ResampleError::Process(e.to_string()))?;
        let n_out_max = self.scratch.len();
        let mut output = SequentialSlice::new_mut(&mut self.scratch, 1, n_out_max)
            .map_err(|e| ResampleError::Process(e.to_string()))?;
        let indexing = Indexing {
            input_offset: 0,
            output_offset: 0,
            partial_len: (valid < n_in).then_some(valid),
            active_channels_mask: None,
        };
        let (_, produced) = fft
            .process_into_buffer(&input, &mut output, Some(&indexing))
            .map_err(|e| ResampleError::Process(e.to_string()))?;
        self.pending.clear();
        let skip = self.delay_left.min(produced);
        self.delay_left -= skip;
        out.extend_from_slice(&self.scratch[skip..produced]);
        self.out_total += (produced - skip) as u64;
        Ok(())
    }
}

/// Resamples a whole clip (convenience for files and tests; the same stage as streaming).
pub fn resample_all(input: &[f32], in_rate_hz: u32) -> Result<Vec<f32>, ResampleError> {
    let mut r = Resampler::new(in_rate_hz)?;
    let expected =
        (input.len() as u64 * u64::from(PIPELINE_RATE_HZ)).div_ceil(u64::from(in_rate_hz));
    let mut out = Vec::with_capacity(expected as usize + CHUNK_FRAMES);
    r.process(input, &mut out)?;
    r.finish(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f64, rate: u32, secs: f64) -> Vec<f32> {
        let n = (secs * f64::from(rate)) as usize;
        (0..n)
            .map(|i| {
                (0.5 * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin())
                    as f32
            })
            .collect()
    }

    /// Frequency from zero crossings over the middle of the signal (edges hold filter ramps).
    fn measured_freq(x: &[f32], rate: u32) -> f64 {
        let mid = &x[x.len() / 10..x.len() * 9 / 10];
        let crossings = mid.windows(2).filter(|w| w[0] < 0.0 && w[1] >= 0.0).count();
        crossings as f64 * f64::from(rate) / mid.len() as f64
    }

    #[test]
    fn a_1khz_sine_keeps_its_frequency_from_every_rate() {
        for rate in [8000, 11025, 22050, 24000, 32000, 44100, 48000] {
            let out = resample_all(&sine(1000.0, rate, 2.0), rate).unwrap();
            let f = measured_freq(&out, PIPELINE_RATE_HZ);
            assert!((f - 1000.0).abs() < 2.0, "{rate} Hz → measured {f} Hz");
            // Amplitude survives too (no gain error in the pass band).
            let peak = out[out.len() / 4..out.len() * 3 / 4]
                .iter()
                .fold(0f32, |m, v| m.max(v.abs()));
            assert!((peak - 0.5).abs() < 0.02, "{rate} Hz → peak {peak}");
        }
    }

    #[test]
    fn output_length_is_input_length_times_ratio() {
        for (rate, n) in [
            (8000u32, 8000usize),
            (44100, 44100 * 3 + 17),
            (48000, 1000),
            (16000, 123),
        ] {
            let out = resample_all(&vec![0.1; n], rate).unwrap();
            let expected = (n as u64 * 16000).div_ceil(u64::from(rate)) as usize;
            assert_eq!(out.len(), expected, "rate {rate}, {n} frames");
        }
    }

    #[test]
    fn delay_is_trimmed_so_an_impulse_stays_in_place() {
        // A click at 0.5 s of 8 kHz audio must come out at 0.5 s of 16 kHz audio.
        let mut x = vec![0.0f32; 8000];
        x[4000] = 1.0;
        let out = resample_all(&x, 8000).unwrap();
        let peak = out
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
            .unwrap()
            .0;
        assert!((peak as i64 - 8000).abs() <= 1, "impulse at {peak}");
    }

    #[test]
    fn streaming_in_odd_pieces_equals_one_shot() {
        let x = sine(440.0, 8000, 1.3);
        let whole = resample_all(&x, 8000).unwrap();
        let mut r = Resampler::new(8000).unwrap();
        let mut out = Vec::new();
        for piece in x.chunks(173) {
            r.process(piece, &mut out).unwrap();
        }
        r.finish(&mut out).unwrap();
        assert_eq!(out.len(), whole.len());
        let max_diff = out
            .iter()
            .zip(&whole)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(max_diff < 1e-5, "max diff {max_diff}");
    }
}
