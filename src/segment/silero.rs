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
//! same numbers, and both match onnxruntime to about 1e-6 (`tests/silero.rs`).
//!
//! The model is read-only after loading; share it with `Arc` and give every channel its own
//! state.

use prost::Message;
use std::path::{Path, PathBuf};

/// New samples per prediction: 32 ms at 16 kHz, the only size the 16 kHz model accepts.
pub const CHUNK_SAMPLES: usize = 512;
/// Samples of the previous chunk that the model sees again in front of each new chunk.
pub const CONTEXT_SAMPLES: usize = 64;

/// Context plus chunk: the model's input length.
const INPUT: usize = CONTEXT_SAMPLES + CHUNK_SAMPLES;
/// The STFT pads its input on the right only, by reflection.
const STFT_PAD: usize = 64;
const PADDED: usize = INPUT + STFT_PAD;
const FFT: usize = 256;
const HOP: usize = 128;
/// Frequency bins of the 256-point real FFT.
const BINS: usize = FFT / 2 + 1;
/// STFT frames per chunk: (640 − 256) / 128 + 1.
const FRAMES: usize = (PADDED - FFT) / HOP + 1;
/// LSTM width; the ONNX `state` input is `[2, batch, HIDDEN]` (h, then c).
const HIDDEN: usize = 128;
const GATES: usize = 4 * HIDDEN;

/// Loading the weights failed.
#[derive(Debug, thiserror::Error)]
pub enum VadError {
    #[error("reading VAD model {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("VAD model {origin}: {problem}")]
    Invalid {
        /// The file, or "in-memory ONNX model".
        origin: String,
        problem: WeightsProblem,
    },
}

/// What is wrong with an ONNX file that should hold Silero VAD v6 weights.
#[derive(Debug, thiserror::Error)]
pub enum WeightsProblem {
    #[error("not an ONNX model (truncated or another kind of file): {0}")]
    NotOnnx(#[from] prost::DecodeError),
    #[error("the ONNX model has no graph")]
    NoGraph,
    #[error(
        "tensor {name} is missing; is this Silero VAD v6 for 16 kHz (silero_vad_16k_op15.onnx)?"
    )]
    Missing { name: &'static str },
    #[error("tensor {name} has shape {actual:?}, expected {expected:?}")]
    Shape {
        name: &'static str,
        actual: Vec<i64>,
        expected: Vec<i64>,
    },
    #[error("tensor {name} has ONNX data type {data_type}, expected 1 (float32)")]
    DataType { name: &'static str, data_type: i32 },
    #[error("tensor {name} keeps its data outside the model file, which is not supported")]
    ExternalData { name: &'static str },
    #[error(
        "tensor {name} holds {bytes} bytes of data, its shape needs {expected} float32 values"
    )]
    Length {
        name: &'static str,
        bytes: usize,
        expected: usize,
    },
}

/// The few onnx.proto messages and fields we read (field numbers as in onnx.proto, proto2).
///
/// Declared by hand because no maintained crate offers the ONNX protobuf types without a whole
/// runtime, and a pure-Rust runtime such as tract would be a large dependency for reading 15
/// tensors; prost is already here for gRPC. prost skips every field not declared.
mod onnx {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ModelProto {
        #[prost(message, optional, tag = "7")]
        pub graph: Option<GraphProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct GraphProto {
        #[prost(message, repeated, tag = "5")]
        pub initializer: Vec<TensorProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorProto {
        #[prost(int64, repeated, packed = "false", tag = "1")]
        pub dims: Vec<i64>,
        #[prost(int32, optional, tag = "2")]
        pub data_type: Option<i32>,
        #[prost(float, repeated, packed = "true", tag = "4")]
        pub float_data: Vec<f32>,
        #[prost(string, optional, tag = "8")]
        pub name: Option<String>,
        #[prost(bytes = "vec", optional, tag = "9")]
        pub raw_data: Option<Vec<u8>>,
        /// 1 = EXTERNAL: the values live in another file.
        #[prost(int32, optional, tag = "14")]
        pub data_location: Option<i32>,
    }

    pub const FLOAT: i32 = 1;
    pub const EXTERNAL: i32 = 1;
}

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

const TAPS: usize = 3;

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

const BASIS: &str = "model.stft.forward_basis_buffer";
/// The encoder's convolutions: names, out and in channels, stride (kernel 3, padding 1).
struct ConvSpec {
    weight: &'static str,
    bias: &'static str,
    outputs: usize,
    inputs: usize,
    stride: usize,
}

const ENCODER: [ConvSpec; 4] = [
    ConvSpec {
        weight: "model.encoder.0.reparam_conv.weight",
        bias: "model.encoder.0.reparam_conv.bias",
        outputs: 128,
        inputs: BINS,
        stride: 1,
    },
    ConvSpec {
        weight: "model.encoder.1.reparam_conv.weight",
        bias: "model.encoder.1.reparam_conv.bias",
        outputs: 64,
        inputs: 128,
        stride: 2,
    },
    ConvSpec {
        weight: "model.encoder.2.reparam_conv.weight",
        bias: "model.encoder.2.reparam_conv.bias",
        outputs: 64,
        inputs: 64,
        stride: 2,
    },
    ConvSpec {
        weight: "model.encoder.3.reparam_conv.weight",
        bias: "model.encoder.3.reparam_conv.bias",
        outputs: 128,
        inputs: 64,
        stride: 1,
    },
];
const WEIGHT_IH: &str = "model.decoder.rnn.weight_ih";
const WEIGHT_HH: &str = "model.decoder.rnn.weight_hh";
const BIAS_IH: &str = "model.decoder.rnn.bias_ih";
const BIAS_HH: &str = "model.decoder.rnn.bias_hh";
const DECODER_WEIGHT: &str = "model.decoder.decoder.2.weight";
const DECODER_BIAS: &str = "model.decoder.decoder.2.bias";

/// Finds initializers by name and checks their type and shape.
struct Initializers<'a>(&'a [onnx::TensorProto]);

impl Initializers<'_> {
    fn get(&self, name: &'static str, shape: &[i64]) -> Result<Vec<f32>, WeightsProblem> {
        let t = self
            .0
            .iter()
            .find(|t| t.name.as_deref() == Some(name))
            .ok_or(WeightsProblem::Missing { name })?;
        if t.dims != shape {
            return Err(WeightsProblem::Shape {
                name,
                actual: t.dims.clone(),
                expected: shape.to_vec(),
            });
        }
        let data_type = t.data_type.unwrap_or(0);
        if data_type != onnx::FLOAT {
            return Err(WeightsProblem::DataType { name, data_type });
        }
        if t.data_location == Some(onnx::EXTERNAL) {
            return Err(WeightsProblem::ExternalData { name });
        }
        let expected = shape.iter().product::<i64>() as usize;
        let values: Vec<f32> = match &t.raw_data {
            // ONNX stores raw tensor data little-endian.
            Some(raw) if !raw.is_empty() => raw
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            _ => t.float_data.clone(),
        };
        let bytes = t.raw_data.as_ref().map_or(t.float_data.len() * 4, Vec::len);
        if values.len() != expected || bytes != expected * 4 {
            return Err(WeightsProblem::Length {
                name,
                bytes,
                expected,
            });
        }
        Ok(values)
    }
}

impl SileroModel {
    /// Reads `silero_vad_16k_op15.onnx` (or a file with the same tensors).
    pub fn load(path: &Path) -> Result<Self, VadError> {
        let bytes = std::fs::read(path).map_err(|source| VadError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&bytes).map_err(|problem| VadError::Invalid {
            origin: path.display().to_string(),
            problem,
        })
    }

    /// The same from the file's bytes (e.g. a download not yet written to its place).
    pub fn from_onnx_bytes(bytes: &[u8]) -> Result<Self, VadError> {
        Self::parse(bytes).map_err(|problem| VadError::Invalid {
            origin: "in-memory ONNX model".into(),
            problem,
        })
    }

    fn parse(bytes: &[u8]) -> Result<Self, WeightsProblem> {
        let model = onnx::ModelProto::decode(bytes)?;
        let graph = model.graph.ok_or(WeightsProblem::NoGraph)?;
        let init = Initializers(&graph.initializer);

        let basis = init.get(BASIS, &[2 * BINS as i64, 1, FFT as i64])?;
        let conv = |spec: &ConvSpec| -> Result<Conv, WeightsProblem> {
            let (o, i) = (spec.outputs as i64, spec.inputs as i64);
            let weight = init.get(spec.weight, &[o, i, TAPS as i64])?;
            let bias = init.get(spec.bias, &[o])?;
            Ok(Conv::from_onnx(&weight, bias, spec))
        };
        let encoder = [
            conv(&ENCODER[0])?,
            conv(&ENCODER[1])?,
            conv(&ENCODER[2])?,
            conv(&ENCODER[3])?,
        ];

        let w_ih = init.get(WEIGHT_IH, &[GATES as i64, HIDDEN as i64])?;
        let w_hh = init.get(WEIGHT_HH, &[GATES as i64, HIDDEN as i64])?;
        let b_ih = init.get(BIAS_IH, &[GATES as i64])?;
        let b_hh = init.get(BIAS_HH, &[GATES as i64])?;
        let mut lstm_weight = Vec::with_capacity(GATES * 2 * HIDDEN);
        for row in 0..GATES {
            lstm_weight.extend_from_slice(&w_ih[row * HIDDEN..][..HIDDEN]);
            lstm_weight.extend_from_slice(&w_hh[row * HIDDEN..][..HIDDEN]);
        }
        let lstm_bias = b_ih.iter().zip(&b_hh).map(|(a, b)| a + b).collect();

        let decoder_weight = init.get(DECODER_WEIGHT, &[1, HIDDEN as i64, 1])?;
        let decoder_bias = init.get(DECODER_BIAS, &[1])?[0];
        Ok(Self {
            basis,
            encoder,
            lstm_weight,
            lstm_bias,
            decoder_weight,
            decoder_bias,
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A model with the right shapes and small pseudo-random weights, as ONNX bytes.
    fn synthetic_onnx(skip: Option<&str>) -> Vec<u8> {
        let mut seed = 0x9e37_79b9u32;
        let mut tensor = |name: &str, dims: &[i64]| {
            let n = dims.iter().product::<i64>() as usize;
            let values: Vec<f32> = (0..n)
                .map(|_| {
                    seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    ((seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 0.2
                })
                .collect();
            onnx::TensorProto {
                dims: dims.to_vec(),
                data_type: Some(onnx::FLOAT),
                name: Some(name.to_owned()),
                raw_data: Some(values.iter().flat_map(|v| v.to_le_bytes()).collect()),
                ..Default::default()
            }
        };
        let mut initializer = vec![tensor(BASIS, &[258, 1, 256])];
        for spec in &ENCODER {
            let (o, i) = (spec.outputs as i64, spec.inputs as i64);
            initializer.push(tensor(spec.weight, &[o, i, 3]));
            initializer.push(tensor(spec.bias, &[o]));
        }
        for (name, dims) in [
            (WEIGHT_IH, &[512, 128][..]),
            (WEIGHT_HH, &[512, 128]),
            (BIAS_IH, &[512]),
            (BIAS_HH, &[512]),
            (DECODER_WEIGHT, &[1, 128, 1]),
            (DECODER_BIAS, &[1]),
        ] {
            initializer.push(tensor(name, dims));
        }
        initializer.retain(|t| t.name.as_deref() != skip);
        onnx::ModelProto {
            graph: Some(onnx::GraphProto { initializer }),
        }
        .encode_to_vec()
    }

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
        let model = SileroModel::from_onnx_bytes(&synthetic_onnx(None)).unwrap();
        let p = model.probabilities(&speechy(16_000));
        assert_eq!(p.len(), 32); // 31.25 chunks, the last one padded
        assert!(p.iter().all(|p| (0.0..=1.0).contains(p)), "{p:?}");
        // The state matters: the same chunk scores differently after other audio.
        assert!(p.windows(2).any(|w| w[0] != w[1]));
    }

    #[test]
    fn chunk_by_chunk_equals_the_whole_file_and_streams_do_not_mix() {
        let model = SileroModel::from_onnx_bytes(&synthetic_onnx(None)).unwrap();
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

    #[test]
    fn garbage_and_truncated_files_are_rejected_as_not_onnx() {
        let good = synthetic_onnx(None);
        for bytes in [
            &good[..good.len() / 2],
            b"RIFF\x24\x00\x00\x00WAVEfmt garbage",
        ] {
            let e = SileroModel::from_onnx_bytes(bytes).err().expect("rejected");
            assert!(
                matches!(
                    &e,
                    VadError::Invalid {
                        problem: WeightsProblem::NotOnnx(_),
                        ..
                    }
                ),
                "{e}"
            );
            assert!(e.to_string().contains("not an ONNX model"), "{e}");
        }
    }

    #[test]
    fn a_missing_tensor_is_named() {
        let e = SileroModel::from_onnx_bytes(&synthetic_onnx(Some(WEIGHT_HH)))
            .err()
            .expect("rejected");
        let msg = e.to_string();
        assert!(
            msg.contains("model.decoder.rnn.weight_hh is missing"),
            "{msg}"
        );
    }

    #[test]
    fn a_file_error_names_the_file_and_an_ill_shaped_tensor_its_shapes() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.onnx");
        let e = SileroModel::load(&missing)
            .err()
            .expect("rejected")
            .to_string();
        assert!(e.contains("nope.onnx"), "{e}");

        let mut model = onnx::ModelProto::decode(&synthetic_onnx(None)[..]).unwrap();
        let graph = model.graph.as_mut().unwrap();
        let t = graph
            .initializer
            .iter_mut()
            .find(|t| t.name.as_deref() == Some(DECODER_WEIGHT))
            .unwrap();
        t.dims = vec![128];
        let path = dir.path().join("bad.onnx");
        std::fs::write(&path, model.encode_to_vec()).unwrap();
        let e = SileroModel::load(&path)
            .err()
            .expect("rejected")
            .to_string();
        assert!(e.contains("bad.onnx"), "{e}");
        assert!(
            e.contains("model.decoder.decoder.2.weight has shape [128], expected [1, 128, 1]"),
            "{e}"
        );
    }

    #[test]
    fn float_data_is_read_like_raw_data() {
        let raw = synthetic_onnx(None);
        let mut model = onnx::ModelProto::decode(&raw[..]).unwrap();
        for t in &mut model.graph.as_mut().unwrap().initializer {
            let raw = t.raw_data.take().unwrap();
            t.float_data = raw
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect();
        }
        let a = SileroModel::from_onnx_bytes(&raw).unwrap();
        let b = SileroModel::from_onnx_bytes(&model.encode_to_vec()).unwrap();
        let x = speechy(CHUNK_SAMPLES * 4);
        assert_eq!(a.probabilities(&x), b.probabilities(&x));
    }
}
