//! Audio in: PCM types, decoding recordings (WAV and every other format, [`decode`]) and
//! resampling to the pipeline rate.
//!
//! Everything after this module works on mono `f32` samples in [-1, 1] at
//! [`PIPELINE_RATE_HZ`]; call time is counted in samples of that stream ([`CallTime`]), never
//! from wall clocks, so timestamps do not drift over a long call.

pub mod codec;
pub mod decode;
pub mod pcm;
pub mod resample;
pub mod wav;

pub use decode::{read_audio, DecodeError};
pub use pcm::{sanitise, CallTime, ChannelAudio, ChannelMode, Role, PIPELINE_RATE_HZ};
pub use resample::Resampler;
pub use wav::{read_wav, WavAudio, WavError};
