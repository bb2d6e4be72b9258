//! Our Silero VAD against the reference: the same ONNX file from the model store, run by
//! onnxruntime in Python (`tests/python/silero_ref.py`, the wheel's OnnxWrapper loop) on the
//! very samples we score (written to a float WAV), chunk by chunk; plus what the scores mean:
//! real speech scores high, silence, hum and tones low.
//!
//! The interpreter is `$CALLSCRIBE_TEST_PYTHON` (default `python3`); it needs onnxruntime and
//! numpy (`scripts/test.sh` makes such a venv). Without them these tests fail rather than skip.

use crate::common;

use callscribe::audio::resample::resample_all;
use callscribe::audio::wav::read_wav;
use callscribe::segment::silero::{SileroModel, CHUNK_SAMPLES};
use common::{fixture, repo, vad_path, Reference};
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

/// Largest difference from onnxruntime's probability allowed for any chunk. Measured: 4.3e-6 on
/// the speech, 5e-7 on hum and tones, 1e-7 on silence (float32 sums in another order); a wrong
/// layer or state is off by 1e-2 or more.
const TOLERANCE: f32 = 1e-4;
const RATE_HZ: u32 = 16_000;

fn model() -> &'static SileroModel {
    static MODEL: OnceLock<SileroModel> = OnceLock::new();
    MODEL.get_or_init(|| {
        let path = vad_path();
        SileroModel::load(&path).unwrap_or_else(|e| panic!("{e}"))
    })
}

/// The interpreter, after checking it has onnxruntime and numpy (a clear failure, never a skip).
fn require_python() -> String {
    let py = std::env::var("CALLSCRIBE_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let hint = "set CALLSCRIBE_TEST_PYTHON to a Python with onnxruntime and numpy \
                (scripts/test.sh creates one in ~/.cache/callscribe/pyenv), or \
                `pip install onnxruntime numpy`";
    match Command::new(&py)
        .args(["-c", "import onnxruntime, numpy"])
        .output()
    {
        Err(e) => panic!("cannot run Python interpreter `{py}`: {e}; {hint}"),
        Ok(out) if !out.status.success() => panic!(
            "`{py}` cannot import onnxruntime and numpy, which the Silero parity test needs:\n{}\n{hint}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Ok(_) => py,
    }
}

/// onnxruntime's probabilities for `samples` (16 kHz), written as 32-bit float so that both
/// sides see identical values.
fn reference_probabilities(samples: &[f32]) -> Vec<f32> {
    let py = require_python();
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("input.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: RATE_HZ,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(&wav, spec).unwrap();
    for &s in samples {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
    let out = Command::new(&py)
        .arg(repo().join("tests/python/silero_ref.py"))
        .arg(vad_path())
        .arg(&wav)
        .output()
        .unwrap_or_else(|e| panic!("running {py}: {e}"));
    assert!(
        out.status.success(),
        "silero_ref.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("JSON from silero_ref.py");
    assert_eq!(v["chunk_samples"], CHUNK_SAMPLES);
    v["probabilities"]
        .as_array()
        .expect("probabilities")
        .iter()
        .map(|p| p.as_f64().expect("number") as f32)
        .collect()
}

/// Our probabilities, after checking them against onnxruntime's chunk by chunk.
fn scored_like_the_reference(what: &str, samples: &[f32]) -> Vec<f32> {
    let ours = model().probabilities(samples);
    let theirs = reference_probabilities(samples);
    assert_eq!(ours.len(), theirs.len(), "{what}: chunk counts differ");
    let (worst, diff) = ours
        .iter()
        .zip(&theirs)
        .map(|(a, b)| (a - b).abs())
        .enumerate()
        .fold((0, 0.0f32), |m, (i, d)| if d > m.1 { (i, d) } else { m });
    eprintln!(
        "{what}: {} chunks, max |ours - onnxruntime| = {diff:.2e} (chunk {worst})",
        ours.len()
    );
    assert!(
        diff < TOLERANCE,
        "{what}: chunk {worst} scores {} here and {} in onnxruntime",
        ours[worst],
        theirs[worst]
    );
    ours
}

fn chunk_ms(k: usize) -> u64 {
    (k * CHUNK_SAMPLES) as u64 * 1000 / u64::from(RATE_HZ)
}

#[test]
fn real_speech_matches_onnxruntime_and_scores_high() {
    let path = fixture("real/alsa_voices_48k.wav");
    let audio = read_wav(&path).unwrap();
    let samples = resample_all(&audio.channels[0], audio.sample_rate_hz).unwrap();
    let p = scored_like_the_reference("alsa_voices", &samples);
    let reference = Reference::of(&path);
    for u in &reference.utterances {
        let inside: Vec<f32> = (0..p.len())
            .filter(|&k| chunk_ms(k) >= u.start_ms && chunk_ms(k + 1) <= u.end_ms)
            .map(|k| p[k])
            .collect();
        let voiced = inside.iter().filter(|&&p| p >= 0.5).count();
        assert!(
            voiced * 2 >= inside.len(),
            "{:?}: only {voiced} of {} chunks score 0.5 or more",
            u.text,
            inside.len()
        );
    }
    // Well away (500 ms) from every utterance the room is quiet.
    let far: Vec<f32> = (0..p.len())
        .filter(|&k| {
            reference
                .utterances
                .iter()
                .all(|u| chunk_ms(k + 1) + 500 <= u.start_ms || chunk_ms(k) >= u.end_ms + 500)
        })
        .map(|k| p[k])
        .collect();
    assert!(!far.is_empty());
    eprintln!(
        "alsa_voices: highest score 500 ms or more from speech (the pink-noise trap): {:.2}",
        far.iter().fold(0.0f32, |m, &p| m.max(p))
    );
    assert!(
        far.iter().all(|&p| p < 0.5),
        "speech found between utterances: {far:?}"
    );
}

/// Mains hum with harmonics, a dial tone, and a two-note melody: what earshot passed as speech.
fn hum_and_tones() -> Vec<f32> {
    let n = RATE_HZ as usize * 6;
    let tau = 2.0 * std::f32::consts::PI;
    (0..n)
        .map(|i| {
            let t = i as f32 / RATE_HZ as f32;
            match i * 3 / n {
                0 => [50.0f32, 100.0, 150.0, 250.0]
                    .iter()
                    .map(|f| 0.1 * (tau * f * t).sin())
                    .sum(),
                1 => 0.2 * ((tau * 350.0 * t).sin() + (tau * 440.0 * t).sin()),
                _ => {
                    let f = if ((t * 4.0) as u32).is_multiple_of(2) {
                        523.25
                    } else {
                        659.25
                    };
                    0.3 * (tau * f * t).sin()
                }
            }
        })
        .collect()
}

#[test]
fn silence_hum_and_tones_match_onnxruntime_and_score_low() {
    let silence = read_wav(&fixture("calls/silence_16k.wav")).unwrap();
    assert_eq!(silence.sample_rate_hz, RATE_HZ);
    for (what, samples) in [
        ("silence_16k", silence.channels[0].clone()),
        ("hum_and_tones", hum_and_tones()),
    ] {
        let p = scored_like_the_reference(what, &samples);
        let loud = p.iter().filter(|&&p| p >= 0.5).count();
        assert_eq!(loud, 0, "{what}: {loud} chunks score as speech: {p:?}");
    }
}

#[test]
fn the_store_holds_the_catalogue_file() {
    let path = vad_path();
    assert_eq!(
        path.file_name().and_then(|n| n.to_str()),
        Some("silero-vad-v6.onnx")
    );
    assert!(Path::new(&path.with_extension("json")).is_file());
}
