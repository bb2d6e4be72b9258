//! Telephone key tones (DTMF) in a detector frame.
//!
//! Silero hears a burst of key presses as speech: 100 ms tones with 100 ms gaps have the
//! rhythm of syllables, and on the conditions fixture a dialled number scored 0.5 on average.
//! A key tone is two sines, one from each of the row and column groups of ITU-T Q.23, so a
//! frame whose power sits almost all at one row and one column frequency is a key press,
//! never speech. Measured on 12,900 loud frames of real and synthetic speech (the eval set at
//! its own rates and through the telephone band, and the call fixtures): 5 (0.04 %) reach the
//! thresholds below — a lone frame taken for a tone costs an utterance nothing — while about
//! half the frames of a dialled number do (the rest straddle a tone's edge or the gap).

use super::FRAME_SAMPLES;
use std::f32::consts::PI;

const ROWS_HZ: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
const COLUMNS_HZ: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
/// Share of the frame's power on the best row and column frequencies together…
const MIN_PAIR_SHARE: f32 = 0.7;
/// …and on each of them.
const MIN_TONE_SHARE: f32 = 0.2;
/// Q.24 lets a key's frequencies be up to 1.5 % off; the window's main lobe loses a third of
/// a sine's power that far off, so each frequency is also tried there.
const DRIFT: f32 = 0.015;
/// Frames quieter than −50 dBFS are not judged (line noise between key presses).
const MIN_MEAN_SQUARE: f32 = 1e-5;

/// Detects key tones in [`FRAME_SAMPLES`]-sample frames at 16 kHz; holds the window and the
/// Goertzel coefficients so a frame costs eight passes of multiply-adds.
pub struct ToneDetector {
    window: Vec<f32>,
    /// 2·cos(ω) per frequency, rows then columns, each at its nominal frequency and
    /// [`DRIFT`] either side.
    coefficients: [[f32; 3]; 8],
    /// Normalises a Goertzel power to the share of the frame's power in that sine.
    scale: f32,
}

impl Default for ToneDetector {
    fn default() -> Self {
        Self::new()
    }
}

impl ToneDetector {
    pub fn new() -> Self {
        let n = FRAME_SAMPLES;
        let window: Vec<f32> = (0..n)
            .map(|i| 0.5 - 0.5 * (2.0 * PI * i as f32 / n as f32).cos())
            .collect();
        let mut coefficients = [[0f32; 3]; 8];
        for (c, f) in coefficients
            .iter_mut()
            .zip(ROWS_HZ.iter().chain(&COLUMNS_HZ))
        {
            for (c, f) in c.iter_mut().zip([f * (1.0 - DRIFT), *f, f * (1.0 + DRIFT)]) {
                *c = 2.0 * (2.0 * PI * f / 16_000.0).cos();
            }
        }
        // A sine of amplitude A has windowed power A²/2·Σw² and Goertzel power (A/2·Σw)²:
        // the share is the Goertzel power times 2·Σw² / (Σw)² over the windowed power.
        let sum: f32 = window.iter().sum();
        let sum_sq: f32 = window.iter().map(|w| w * w).sum();
        Self {
            window,
            coefficients,
            scale: 2.0 * sum_sq / (sum * sum),
        }
    }

    /// Whether `frame` is a key tone.
    pub fn is_key_tone(&self, frame: &[f32]) -> bool {
        let n = frame.len().min(FRAME_SAMPLES);
        let mean_square = frame[..n].iter().map(|s| s * s).sum::<f32>() / n.max(1) as f32;
        if n < FRAME_SAMPLES || mean_square < MIN_MEAN_SQUARE {
            return false;
        }
        let mut windowed = [0f32; FRAME_SAMPLES];
        for ((d, s), w) in windowed.iter_mut().zip(frame).zip(&self.window) {
            *d = s * w;
        }
        let power: f32 = windowed.iter().map(|s| s * s).sum();
        let mut share = [0f32; 8];
        for (out, coefficients) in share.iter_mut().zip(&self.coefficients) {
            for &c in coefficients {
                let (mut s1, mut s2) = (0f32, 0f32);
                for &x in &windowed {
                    let s0 = x + c * s1 - s2;
                    s2 = s1;
                    s1 = s0;
                }
                *out = out.max((s1 * s1 + s2 * s2 - c * s1 * s2) * self.scale / power);
            }
        }
        let row = share[..4].iter().copied().fold(0.0, f32::max);
        let column = share[4..].iter().copied().fold(0.0, f32::max);
        row >= MIN_TONE_SHARE && column >= MIN_TONE_SHARE && row + column >= MIN_PAIR_SHARE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freqs: &[f32], amplitude: f32, offset: usize) -> Vec<f32> {
        (0..FRAME_SAMPLES)
            .map(|i| {
                let t = (i + offset) as f32 / 16_000.0;
                freqs
                    .iter()
                    .map(|f| amplitude * (2.0 * PI * f * t).sin())
                    .sum()
            })
            .collect()
    }

    #[test]
    fn every_key_is_a_tone_at_telephone_levels_and_off_its_nominal_frequency() {
        let d = ToneDetector::new();
        for &r in &ROWS_HZ {
            for &c in &COLUMNS_HZ {
                // Q.24 lets a key be 1.5 % off; levels from loud to quiet.
                for (drift, amplitude) in [(1.0, 0.3), (1.015, 0.05), (0.985, 0.01)] {
                    let frame = tone(&[r * drift, c * drift], amplitude, 123);
                    assert!(d.is_key_tone(&frame), "{r}+{c} Hz ×{drift} at {amplitude}");
                }
            }
        }
    }

    #[test]
    fn single_tones_chords_noise_and_speech_are_not_key_tones() {
        let d = ToneDetector::new();
        // Dial tones (one or two sines of one group or none), a chord, white noise.
        assert!(!d.is_key_tone(&tone(&[450.0], 0.3, 0)));
        assert!(!d.is_key_tone(&tone(&[350.0, 440.0], 0.3, 0)));
        assert!(!d.is_key_tone(&tone(&[697.0], 0.3, 0)));
        assert!(!d.is_key_tone(&tone(&[261.6, 329.6, 392.0, 523.2], 0.2, 0)));
        let mut rng = fastrand::Rng::with_seed(7);
        let noise: Vec<f32> = (0..FRAME_SAMPLES).map(|_| rng.f32() - 0.5).collect();
        assert!(!d.is_key_tone(&noise));
        // Real speech: the ALSA prompts, every loud frame.
        let wav = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("audio-fixtures/real/alsa_voices_48k.wav");
        let audio = crate::audio::wav::read_wav(&wav).unwrap();
        let speech = crate::audio::resample::resample_all(&audio.channels[0], 48_000).unwrap();
        let flagged = speech
            .chunks_exact(FRAME_SAMPLES)
            .filter(|f| d.is_key_tone(f))
            .count();
        assert_eq!(flagged, 0, "speech frames taken for key tones");
    }
}
