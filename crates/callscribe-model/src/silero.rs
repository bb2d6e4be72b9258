//! Silero VAD v6's published ONNX file (`silero_vad_16k_op15.onnx`): the weights of the 16 kHz
//! network, read by name and checked against the network's shapes.
//!
//! The network itself runs in callscribe's segmenter (`segment::silero`); this module is what
//! the file must hold. Both the segmenter, which loads the weights, and the model store, which
//! checks a download before keeping it ([`crate::provide_vad`]), read the file here, so a file
//! the store accepts is one the segmenter runs.
//!
//! The weights are handed over as ONNX lays them out (row-major, PyTorch's order); reordering
//! them for speed is the runner's business.

use prost::Message;
use std::path::{Path, PathBuf};

/// The STFT's frame length (a fixed 256-point DFT done as a convolution).
pub const FFT: usize = 256;
/// Frequency bins of the 256-point real DFT.
pub const BINS: usize = FFT / 2 + 1;
/// LSTM width; the ONNX `state` input is `[2, batch, HIDDEN]` (h, then c).
pub const HIDDEN: usize = 128;
/// The LSTM's four gates (i, f, g, o), stacked.
pub const GATES: usize = 4 * HIDDEN;
/// Kernel width of the encoder's convolutions (padding 1 on each side).
pub const TAPS: usize = 3;

/// One of the encoder's convolutions: tensor names, out and in channels, stride.
pub struct ConvSpec {
    pub weight: &'static str,
    pub bias: &'static str,
    pub outputs: usize,
    pub inputs: usize,
    pub stride: usize,
}

/// The encoder: four convolutions (kernel [`TAPS`], padding 1), in order.
pub const ENCODER: [ConvSpec; 4] = [
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

const BASIS: &str = "model.stft.forward_basis_buffer";
const WEIGHT_IH: &str = "model.decoder.rnn.weight_ih";
const WEIGHT_HH: &str = "model.decoder.rnn.weight_hh";
const BIAS_IH: &str = "model.decoder.rnn.bias_ih";
const BIAS_HH: &str = "model.decoder.rnn.bias_hh";
const DECODER_WEIGHT: &str = "model.decoder.decoder.2.weight";
const DECODER_BIAS: &str = "model.decoder.decoder.2.bias";

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

/// One encoder convolution as ONNX stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvWeights {
    /// `[outputs][inputs][TAPS]`.
    pub weight: Vec<f32>,
    /// `[outputs]`.
    pub bias: Vec<f32>,
}

/// Every tensor the network needs, checked for shape, in the file's layout.
#[derive(Debug, Clone, PartialEq)]
pub struct SileroWeights {
    /// `[2 · BINS][FFT]`: the real then the imaginary DFT filters (windowed).
    pub basis: Vec<f32>,
    /// In [`ENCODER`] order.
    pub encoder: [ConvWeights; 4],
    /// `[GATES][HIDDEN]`, gates in PyTorch order i, f, g, o.
    pub weight_ih: Vec<f32>,
    /// `[GATES][HIDDEN]`.
    pub weight_hh: Vec<f32>,
    /// `[GATES]`.
    pub bias_ih: Vec<f32>,
    /// `[GATES]`.
    pub bias_hh: Vec<f32>,
    /// `[HIDDEN]`: the 1×1 convolution from the LSTM state to the speech logit.
    pub decoder_weight: Vec<f32>,
    pub decoder_bias: f32,
}

impl SileroWeights {
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
        let conv = |spec: &ConvSpec| -> Result<ConvWeights, WeightsProblem> {
            let (o, i) = (spec.outputs as i64, spec.inputs as i64);
            Ok(ConvWeights {
                weight: init.get(spec.weight, &[o, i, TAPS as i64])?,
                bias: init.get(spec.bias, &[o])?,
            })
        };
        let (gates, hidden) = (GATES as i64, HIDDEN as i64);
        Ok(Self {
            basis: init.get(BASIS, &[2 * BINS as i64, 1, FFT as i64])?,
            encoder: [
                conv(&ENCODER[0])?,
                conv(&ENCODER[1])?,
                conv(&ENCODER[2])?,
                conv(&ENCODER[3])?,
            ],
            weight_ih: init.get(WEIGHT_IH, &[gates, hidden])?,
            weight_hh: init.get(WEIGHT_HH, &[gates, hidden])?,
            bias_ih: init.get(BIAS_IH, &[gates])?,
            bias_hh: init.get(BIAS_HH, &[gates])?,
            decoder_weight: init.get(DECODER_WEIGHT, &[1, hidden, 1])?,
            decoder_bias: init.get(DECODER_BIAS, &[1])?[0],
        })
    }
}

/// The few onnx.proto messages and fields we read (field numbers as in onnx.proto, proto2).
///
/// Declared by hand because no maintained crate offers the ONNX protobuf types without a whole
/// runtime, and a pure-Rust runtime such as tract would be a large dependency for reading 15
/// tensors. prost skips every field not declared.
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

/// Finds initializers (ONNX's name for stored tensors) by name and checks their type and shape.
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

    #[test]
    fn a_synthetic_model_loads_with_every_tensor_in_place() {
        let w = SileroWeights::from_onnx_bytes(&synthetic_onnx(None)).unwrap();
        assert_eq!(w.basis.len(), 2 * BINS * FFT);
        for (conv, spec) in w.encoder.iter().zip(&ENCODER) {
            assert_eq!(conv.weight.len(), spec.outputs * spec.inputs * TAPS);
            assert_eq!(conv.bias.len(), spec.outputs);
        }
        assert_eq!(w.weight_hh.len(), GATES * HIDDEN);
        assert_eq!(w.decoder_weight.len(), HIDDEN);
    }

    #[test]
    fn garbage_and_truncated_files_are_rejected_as_not_onnx() {
        let good = synthetic_onnx(None);
        for bytes in [
            &good[..good.len() / 2],
            b"RIFF\x24\x00\x00\x00WAVEfmt garbage",
        ] {
            let e = SileroWeights::from_onnx_bytes(bytes).expect_err("rejected");
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
        let e =
            SileroWeights::from_onnx_bytes(&synthetic_onnx(Some(WEIGHT_HH))).expect_err("rejected");
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
        let e = SileroWeights::load(&missing)
            .expect_err("rejected")
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
        let e = SileroWeights::load(&path)
            .expect_err("rejected")
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
        let a = SileroWeights::from_onnx_bytes(&raw).unwrap();
        let b = SileroWeights::from_onnx_bytes(&model.encode_to_vec()).unwrap();
        assert_eq!(a, b);
    }
}
