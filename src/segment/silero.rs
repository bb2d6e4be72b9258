//! Silero VAD v6 (16 kHz) in plain Rust, run on the weights of the published ONNX file.
//!
//! The network is small (about 310 k parameters): a fixed STFT done as a strided convolution,
//! four 1-D convolutions, one LSTM cell and a 1×1 convolution. Running it here instead of
//! through an ONNX runtime keeps callscribe free of native runtime binaries (the `ort` crate
//! downloads them at build time) and costs a few seconds of one core per hour of audio.
//!
//! One call of [`SileroModel::predict`] scores one chunk of [`CHUNK_SAMPLES`] new samples
//! (32 ms) and returns the probability that it holds speech. What carries over between chunks
//! lives in [`SileroState`]: the last [`CONTEXT_SAMPLES`] input samples, prepended to the next
//! chunk, and the LSTM's `h` and `c`. This is exactly what the reference Python wrapper
//! (`OnnxWrapper.__call__` in the `silero-vad` wheel) keeps, so scoring a stream chunk by
//! chunk and scoring a whole file ([`SileroModel::probabilities`], the same loop) give the
//! same numbers, and both match onnxruntime to about 1e-6 (`tests/it/silero.rs`).
//!
//! The file is read and checked by [`crate::model::silero`] (the model store checks a download
//! with the same code before keeping it); [`SileroModel::new`] reorders those weights for the
//! loops below. The model is read-only after loading; share it with `Arc` and give every
//! channel its own state.

use crate::model::silero::{ConvSpec, SileroWeights, BINS, ENCODER, FFT, GATES, HIDDEN, TAPS};
use std::path::Path;

pub use crate::model::silero::{VadError, WeightsProblem};

/// New samples per prediction: 32 ms at 16 kHz, the only size the 16 kHz model accepts.
pub const CHUNK_SAMPLES: usize = 512;
/// Samples of the previous chunk that the model sees again in front of each new chunk.
pub const CONTEXT_SAMPLES: usize = 64;

/// Context plus chunk: the model's input length.
const INPUT: usize = CONTEXT_SAMPLES + CHUNK_SAMPLES;
/// The STFT pads its input on the right only, by reflection.
const STFT_PAD: usize = 64;
const PADDED: usize = INPUT + STFT_PAD;
const HOP: usize = 128;
/// STFT frames per chunk: (640 − 256) / 128 + 1.
const FRAMES: usize = (PADDED - FFT) / HOP + 1;

/// One encoder convolution (kernel 3, padding 1), its weights reordered at load time to
/// `[out][tap][in]` so that every output is three contiguous dot products over the input
/// channels of a time-major activation.
struct Conv {
    weight: Vec<f32>,
    bias: Vec<f32>,
    inputs: usize,
    outputs: usize,
    stride: usize,
}

impl Conv {
    fn from_onnx(weight: &[f32], bias: Vec<f32>, spec: &ConvSpec) -> Self {
        let (outputs, inputs) = (spec.outputs, spec.inputs);
        let mut reordered = vec![0.0; weight.len()];
        for o in 0..outputs {
            for i in 0..inputs {
                for k in 0..TAPS {
                    reordered[(o * TAPS + k) * inputs + i] = weight[(o * inputs + i) * TAPS + k];
                }
            }
        }
        Self {
            weight: reordered,
            bias,
            inputs,
            outputs,
            stride: spec.stride,
        }
    }

    /// `input` is `[frames_in][inputs]`, `output` `[frames_out][outputs]`; ReLU applied.
    fn forward_relu(&self, input: &[f32], output: &mut [f32]) {
        let frames_in = input.len() / self.inputs;
        let frames_out = output.len() / self.outputs;
        debug_assert_eq!(frames_out, (frames_in - 1) / self.stride + 1);
        for t in 0..frames_out {
            let out = &mut output[t * self.outputs..(t + 1) * self.outputs];
            for (o, y) in out.iter_mut().enumerate() {
                let mut acc = self.bias[o];
                for k in 0..TAPS {
                    // Input frame for tap k, with one frame of zero padding on each side.
                    let Some(src) = (t * self.stride + k).checked_sub(1) else {
                        continue;
                    };
                    if src >= frames_in {
                        continue;
                    }
                    let w = &self.weight[(o * TAPS + k) * self.inputs..][..self.inputs];
                    acc += dot(w, &input[src * self.inputs..][..self.inputs]);
                }
                *y = acc.max(0.0);
            }
        }
    }
}

/// Silero VAD v6 weights, ready to run. Immutable: share one per process (`Arc`).
pub struct SileroModel {
    /// `[258][256]`: 129 real then 129 imaginary DFT filters (windowed).
    basis: Vec<f32>,
    encoder: [Conv; 4],
    /// `[512][256]`: each gate row is `weight_ih` row then `weight_hh` row, so one dot product
    /// over `[x; h]` gives the gate; rows in PyTorch order i, f, g, o.
    lstm_weight: Vec<f32>,
    /// `bias_ih + bias_hh`.
    lstm_bias: Vec<f32>,
    decoder_weight: Vec<f32>,
    decoder_bias: f32,
}

/// What one audio stream carries from chunk to chunk. Starts (and [`reset`](Self::reset)s)
/// as the reference wrapper does: zero context, zero LSTM state.
#[derive(Debug, Clone, PartialEq)]
pub struct SileroState {
    context: [f32; CONTEXT_SAMPLES],
    h: [f32; HIDDEN],
    c: [f32; HIDDEN],
}

impl Default for SileroState {
    fn default() -> Self {
        Self::new()
    }
}

impl SileroState {
    pub fn new() -> Self {
        Self {
            context: [0.0; CONTEXT_SAMPLES],
            h: [0.0; HIDDEN],
            c: [0.0; HIDDEN],
        }
    }

    /// Forget the stream: the next chunk is scored as the first of a new one.
    pub fn reset(&mut self) {
        *self = Self::new();
    }
}

impl SileroModel {
    /// Reads `silero_vad_16k_op15.onnx` (or a file with the same tensors).
    pub fn load(path: &Path) -> Result<Self, VadError> {
        SileroWeights::load(path).map(Self::new)
    }

    /// The network on checked weights, reordered for [`predict`](Self::predict).
    pub fn new(weights: SileroWeights) -> Self {
        let SileroWeights {
            basis,
            encoder,
            weight_ih,
            weight_hh,
            bias_ih,
            bias_hh,
            decoder_weight,
            decoder_bias,
        } = weights;
        let encoder = std::array::from_fn(|k| {
            Conv::from_onnx(&encoder[k].weight, encoder[k].bias.clone(), &ENCODER[k])
        });
        let mut lstm_weight = Vec::with_capacity(GATES * 2 * HIDDEN);
        for row in 0..GATES {
            lstm_weight.extend_from_slice(&weight_ih[row * HIDDEN..][..HIDDEN]);
            lstm_weight.extend_from_slice(&weight_hh[row * HIDDEN..][..HIDDEN]);
        }
        let lstm_bias = bias_ih.iter().zip(&bias_hh).map(|(a, b)| a + b).collect();
        Self {
            basis,
            encoder,
            lstm_weight,
            lstm_bias,
            decoder_weight,
            decoder_bias,
        }
    }

    /// A fresh stream state (zero context and LSTM state).
    pub fn new_state(&self) -> SileroState {
        SileroState::new()
    }

    /// Speech probability (0–1) of the next 32 ms of a stream; advances `state`.
    ///
    /// Allocates nothing: the activations (about 10 KiB) live on the stack.
    pub fn predict(&self, state: &mut SileroState, chunk: &[f32; CHUNK_SAMPLES]) -> f32 {
        // Context + chunk, reflected on the right: [a b c d] → [a b c d c b].
        let mut x = [0.0f32; PADDED];
        x[..CONTEXT_SAMPLES].copy_from_slice(&state.context);
        x[CONTEXT_SAMPLES..INPUT].copy_from_slice(chunk);
        for j in 0..STFT_PAD {
            x[INPUT + j] = x[INPUT - 2 - j];
        }
        state
            .context
            .copy_from_slice(&chunk[CHUNK_SAMPLES - CONTEXT_SAMPLES..]);

        // STFT magnitude, time-major [frame][bin].
        let mut spectrum = [0.0f32; FRAMES * BINS];
        for t in 0..FRAMES {
            let frame = &x[t * HOP..][..FFT];
            for b in 0..BINS {
                let re = dot(&self.basis[b * FFT..][..FFT], frame);
                let im = dot(&self.basis[(BINS + b) * FFT..][..FFT], frame);
                spectrum[t * BINS + b] = (re * re + im * im).sqrt();
            }
        }

        // Encoder: 4 frames → 4 → 2 → 1 → 1.
        let mut e0 = [0.0f32; 4 * 128];
        let mut e1 = [0.0f32; 2 * 64];
        let mut e2 = [0.0f32; 64];
        let mut e3 = [0.0f32; 128];
        self.encoder[0].forward_relu(&spectrum, &mut e0);
        self.encoder[1].forward_relu(&e0, &mut e1);
        self.encoder[2].forward_relu(&e1, &mut e2);
        self.encoder[3].forward_relu(&e2, &mut e3);

        // LSTM cell over [x; h].
        let mut xh = [0.0f32; 2 * HIDDEN];
        xh[..HIDDEN].copy_from_slice(&e3);
        xh[HIDDEN..].copy_from_slice(&state.h);
        let mut gates = [0.0f32; GATES];
        for (g, (row, bias)) in gates.iter_mut().zip(
            self.lstm_weight
                .chunks_exact(2 * HIDDEN)
                .zip(&self.lstm_bias),
        ) {
            *g = bias + dot(row, &xh);
        }
        for j in 0..HIDDEN {
            let i = sigmoid(gates[j]);
            let f = sigmoid(gates[HIDDEN + j]);
            let g = gates[2 * HIDDEN + j].tanh();
            let o = sigmoid(gates[3 * HIDDEN + j]);
            state.c[j] = f * state.c[j] + i * g;
            state.h[j] = o * state.c[j].tanh();
        }

        // Decoder: ReLU, 1×1 convolution to one logit.
        let logit = self.decoder_bias
            + self
                .decoder_weight
                .iter()
                .zip(&state.h)
                .map(|(w, h)| w * h.max(0.0))
                .sum::<f32>();
        sigmoid(logit)
    }

    /// Speech probability of every 32 ms chunk of `samples` (16 kHz), from a fresh state; a
    /// last partial chunk is padded with zeros, as the reference `audio_forward` does. The very
    /// loop a stream runs through [`predict`](Self::predict), so the results are identical.
    pub fn probabilities(&self, samples: &[f32]) -> Vec<f32> {
        let mut state = self.new_state();
        samples
            .chunks(CHUNK_SAMPLES)
            .map(|piece| {
                let mut chunk = [0.0f32; CHUNK_SAMPLES];
                chunk[..piece.len()].copy_from_slice(piece);
                self.predict(&mut state, &chunk)
            })
            .collect()
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Dot product with eight independent sums, so that the compiler can keep them in one SIMD
/// register (it may not reorder a single float sum itself).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0.0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8
        .remainder()
        .iter()
        .zip(b8.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a8.zip(b8) {
        let x: &[f32; 8] = x.try_into().expect("chunks of 8");
        let y: &[f32; 8] = y.try_into().expect("chunks of 8");
        for ((s, p), q) in acc.iter_mut().zip(x).zip(y) {
            *s += p * q;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Weights with Silero's shapes and small pseudo-random values (always the same): the
/// segmenter's code runs as with the real network, whatever it makes of the audio. For tests
/// and fuzzing, which need no model download.
pub fn synthetic_weights() -> SileroWeights {
    let mut seed = 0x9e37_79b9u32;
    let mut values = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|_| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                ((seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 0.2
            })
            .collect()
    };
    let basis = values(2 * BINS * FFT);
    let encoder = ENCODER
        .each_ref()
        .map(|spec| crate::model::silero::ConvWeights {
            weight: values(spec.outputs * spec.inputs * TAPS),
            bias: values(spec.outputs),
        });
    SileroWeights {
        basis,
        encoder,
        weight_ih: values(GATES * HIDDEN),
        weight_hh: values(GATES * HIDDEN),
        bias_ih: values(GATES),
        bias_hh: values(GATES),
        decoder_weight: values(HIDDEN),
        decoder_bias: values(1)[0],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn speechy(n: usize) -> Vec<f32> {
        let mut seed = 7u32;
        (0..n)
            .map(|i| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let noise = (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5;
                let t = i as f32 / 16_000.0;
                0.3 * (2.0 * std::f32::consts::PI * 180.0 * t).sin() + 0.05 * noise
            })
            .collect()
    }

    #[test]
    fn a_synthetic_model_loads_and_scores_between_0_and_1() {
        let model = SileroModel::new(synthetic_weights());
        let p = model.probabilities(&speechy(16_000));
        assert_eq!(p.len(), 32); // 31.25 chunks, the last one padded
        assert!(p.iter().all(|p| (0.0..=1.0).contains(p)), "{p:?}");
        // The state matters: the same chunk scores differently after other audio.
        assert!(p.windows(2).any(|w| w[0] != w[1]));
    }

    #[test]
    fn chunk_by_chunk_equals_the_whole_file_and_streams_do_not_mix() {
        let model = SileroModel::new(synthetic_weights());
        let a = speechy(CHUNK_SAMPLES * 20);
        let b: Vec<f32> = a.iter().rev().map(|s| s * 0.5).collect();
        let whole_a = model.probabilities(&a);
        let whole_b = model.probabilities(&b);
        // Two streams interleaved on one model, each with its own state.
        let (mut sa, mut sb) = (model.new_state(), SileroState::new());
        for (k, (ca, cb)) in a
            .chunks_exact(CHUNK_SAMPLES)
            .zip(b.chunks_exact(CHUNK_SAMPLES))
            .enumerate()
        {
            let (ca, cb) = (ca.try_into().unwrap(), cb.try_into().unwrap());
            assert_eq!(
                model.predict(&mut sa, ca),
                whole_a[k],
                "stream a, chunk {k}"
            );
            assert_eq!(
                model.predict(&mut sb, cb),
                whole_b[k],
                "stream b, chunk {k}"
            );
        }
        sa.reset();
        assert_eq!(sa, SileroState::new());
    }
}
