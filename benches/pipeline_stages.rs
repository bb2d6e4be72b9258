//! Micro-benchmarks of the CPU stages in front of whisper, per second of audio: G.711 and
//! LINEAR16 decoding, resampling from telephony and studio rates (our FFT resampler against
//! rubato's sinc resampler, the alternative it was chosen over), and voice-activity
//! segmentation (earshot with its endpointing, and the Silero VAD network alone). Figures go to
//! BENCHMARKS.md. Run: `cargo bench --bench pipeline_stages`.

use callscribe::audio::codec::{self, Encoding};
use callscribe::audio::resample::resample_all;
use callscribe::model::{provide_vad, ModelStore, NoProgress, Source};
use callscribe::segment::silero::SileroModel;
use callscribe::segment::{segment_all, Vad, VadConfig};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rubato::audioadapter_buffers::direct::SequentialSlice;
use rubato::{Async, FixedAsync, Resampler, SincInterpolationParameters, WindowFunction};
use std::hint::black_box;

/// One second of a speech-like test signal: a 150 Hz buzz with formant-ish harmonics,
/// gated on and off every 300 ms, plus low noise — enough to exercise every branch.
fn signal(rate: u32, secs: usize) -> Vec<f32> {
    let n = rate as usize * secs;
    let mut seed = 0x1234_5678u32;
    (0..n)
        .map(|i| {
            let t = i as f32 / rate as f32;
            let gate = if ((t / 0.3) as u32).is_multiple_of(2) {
                1.0
            } else {
                0.0
            };
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let noise = (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5;
            let voice: f32 = [1.0f32, 0.5, 0.3, 0.2]
                .iter()
                .enumerate()
                .map(|(k, a)| a * (2.0 * std::f32::consts::PI * 150.0 * (k + 1) as f32 * t).sin())
                .sum();
            0.2 * gate * voice + 0.005 * noise
        })
        .collect()
}

fn resample(c: &mut Criterion) {
    let mut g = c.benchmark_group("resample_to_16k");
    for rate in [8000u32, 44100, 48000] {
        let x = signal(rate, 10);
        g.throughput(Throughput::Elements(10)); // seconds of audio
        g.bench_with_input(BenchmarkId::from_parameter(rate), &x, |b, x| {
            b.iter(|| resample_all(black_box(x), rate).expect("valid rate"))
        });
    }
    g.finish();
}

/// rubato's asynchronous sinc resampler on the same input (256 taps, Blackman-Harris, as
/// rubato recommends), whole clip at once: what `Resampler` would cost built on it instead.
fn sinc_resample_all(x: &[f32], rate: u32) -> Vec<f32> {
    let params = SincInterpolationParameters::new(256, WindowFunction::BlackmanHarris2);
    let mut r = Async::<f32>::new_sinc(
        16_000.0 / f64::from(rate),
        1.0,
        &params,
        1024,
        1,
        FixedAsync::Input,
    )
    .expect("sinc resampler");
    let input = SequentialSlice::new(x, 1, x.len()).expect("input");
    let n_out = r.process_all_needed_output_len(x.len());
    let mut out = vec![0.0f32; n_out];
    let mut output = SequentialSlice::new_mut(&mut out, 1, n_out).expect("output");
    let (_, produced) = r
        .process_all_into_buffer(&input, &mut output, x.len(), None)
        .expect("resampled");
    out.truncate(produced);
    out
}

fn resample_sinc(c: &mut Criterion) {
    let mut g = c.benchmark_group("resample_to_16k_sinc");
    for rate in [8000u32, 48000] {
        let x = signal(rate, 10);
        g.throughput(Throughput::Elements(10));
        g.bench_with_input(BenchmarkId::from_parameter(rate), &x, |b, x| {
            b.iter(|| sinc_resample_all(black_box(x), rate))
        });
    }
    g.finish();
}

/// Decoding 10 s of 8 kHz telephony audio from the wire format to f32 samples.
fn decode(c: &mut Criterion) {
    let x = signal(8000, 10);
    let mut g = c.benchmark_group("decode_8k");
    g.throughput(Throughput::Elements(10));
    for enc in [Encoding::Mulaw, Encoding::Alaw, Encoding::Linear16] {
        let mut bytes = Vec::new();
        codec::encode(enc, &x, &mut bytes);
        let mut out = Vec::with_capacity(x.len());
        g.bench_function(format!("{enc:?}"), |b| {
            b.iter(|| {
                out.clear();
                codec::decode(enc, black_box(&bytes), &mut out);
                out.len()
            })
        });
    }
    g.finish();
}

fn vad(c: &mut Criterion) {
    let x = signal(16_000, 10);
    let mut g = c.benchmark_group("segment_16k");
    g.throughput(Throughput::Elements(10));
    // The weights from the model store (pulled on first use, like the tests do).
    let path = provide_vad(&ModelStore::locate(None), Some(Source::Auto), &NoProgress)
        .expect("Silero VAD weights");
    let silero = std::sync::Arc::new(SileroModel::load(&path).expect("Silero VAD loads"));
    g.bench_function("silero_vad", |b| {
        b.iter(|| silero.probabilities(black_box(&x)))
    });
    // The network plus the endpointing around it: what a channel costs.
    let vad = Vad::new(VadConfig::default(), silero);
    g.bench_function("silero_endpointing", |b| {
        b.iter(|| segment_all(&vad, 0, black_box(&x)))
    });
    g.finish();
}

criterion_group!(benches, decode, resample, resample_sinc, vad);
criterion_main!(benches);
