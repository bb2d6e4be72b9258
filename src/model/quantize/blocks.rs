//! ggml's 32-value block formats q8_0, q5_0 and q5_1: encoders that produce the same bytes as
//! ggml's reference quantisers (`quantize_row_*_ref` in `ggml/src/ggml-quants.c`, which
//! `ggml_quantize_chunk` and so whisper.cpp's `quantize` tool use when no importance matrix is
//! given), and decoders for checking them.
//!
//! Bit-exactness rests on doing the same `f32` operations in the same order: the scale is
//! computed and inverted in `f32`, the values are scaled with that `f32` inverse, and only
//! then is the scale rounded to `f16` (round to nearest, ties to even, like
//! `GGML_FP32_TO_FP16`) for storage. Rust never fuses a multiply and an add, and ggml's
//! reference code is built without FMA contraction (it lives in the portable `ggml-base`
//! library), so intermediate roundings agree. q8_0 rounds half away from zero (`roundf`,
//! which [`f32::round`] matches); q5_0 and q5_1 add a half and truncate.
//!
//! Blocks never span rows because ggml requires a row length that is a multiple of 32;
//! [`encode`] refuses any other length rather than padding, since whisper.cpp could not read
//! a padded tensor.

use crate::model::ggml::GgmlType;
use half::f16;

/// Values per block (`QK8_0`, `QK5_0`, `QK5_1`).
pub const BLOCK_LEN: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    #[error("{0} is not a block quantisation callscribe can encode (q8_0, q5_0, q5_1)")]
    UnsupportedType(GgmlType),
    #[error("{len} values are not a whole number of {BLOCK_LEN}-value {ty} blocks")]
    PartialBlock { ty: GgmlType, len: usize },
    #[error("{len} bytes are not a whole number of {ty} blocks ({block_bytes} bytes each)")]
    PartialBlockBytes {
        ty: GgmlType,
        len: usize,
        block_bytes: usize,
    },
}

/// The block types [`encode`] and [`decode`] handle.
pub fn is_supported(ty: GgmlType) -> bool {
    matches!(ty, GgmlType::Q8_0 | GgmlType::Q5_0 | GgmlType::Q5_1)
}

/// Appends the encoding of `values` (a whole number of blocks) as `ty` to `out`.
pub fn encode(ty: GgmlType, values: &[f32], out: &mut Vec<u8>) -> Result<(), BlockError> {
    if !is_supported(ty) {
        return Err(BlockError::UnsupportedType(ty));
    }
    if !values.len().is_multiple_of(BLOCK_LEN) {
        return Err(BlockError::PartialBlock {
            ty,
            len: values.len(),
        });
    }
    out.reserve(values.len() / BLOCK_LEN * ty.block_bytes());
    for block in values.chunks_exact(BLOCK_LEN) {
        let block: &[f32; BLOCK_LEN] = block.try_into().expect("chunks_exact yields 32 values");
        match ty {
            GgmlType::Q8_0 => encode_q8_0(block, out),
            GgmlType::Q5_0 => encode_q5_0(block, out),
            _ => encode_q5_1(block, out),
        }
    }
    Ok(())
}

/// Appends the values encoded in `bytes` (whole `ty` blocks) to `out`, computed as ggml's
/// `dequantize_row_*` does.
pub fn decode(ty: GgmlType, bytes: &[u8], out: &mut Vec<f32>) -> Result<(), BlockError> {
    if !is_supported(ty) {
        return Err(BlockError::UnsupportedType(ty));
    }
    let block_bytes = ty.block_bytes();
    if !bytes.len().is_multiple_of(block_bytes) {
        return Err(BlockError::PartialBlockBytes {
            ty,
            len: bytes.len(),
            block_bytes,
        });
    }
    out.reserve(bytes.len() / block_bytes * BLOCK_LEN);
    let half_at = |b: &[u8], i: usize| f16::from_le_bytes([b[i], b[i + 1]]).to_f32();
    for b in bytes.chunks_exact(block_bytes) {
        match ty {
            GgmlType::Q8_0 => {
                let d = half_at(b, 0);
                out.extend(b[2..].iter().map(|&q| f32::from(q as i8) * d));
            }
            GgmlType::Q5_0 => {
                let d = half_at(b, 0);
                let q = unpack_5bit(&b[2..]);
                out.extend(q.iter().map(|&q| (i32::from(q) - 16) as f32 * d));
            }
            _ => {
                let (d, m) = (half_at(b, 0), half_at(b, 2));
                let q = unpack_5bit(&b[4..]);
                out.extend(q.iter().map(|&q| f32::from(q) * d + m));
            }
        }
    }
    Ok(())
}

/// `x · id` rounded to an integer in -127..=127, `d = amax / 127`.
fn encode_q8_0(x: &[f32; BLOCK_LEN], out: &mut Vec<u8>) {
    // ggml's MAX(a, b) is `a > b ? a : b`; spelt the same way so a NaN propagates as in C.
    let amax = x
        .iter()
        .fold(0.0f32, |m, v| if m > v.abs() { m } else { v.abs() });
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    out.extend(f16::from_f32(d).to_le_bytes());
    out.extend(x.iter().map(|&v| (v * id).round() as i8 as u8));
}

/// Symmetric 5-bit: the value of largest magnitude (with its sign) maps to -16, so
/// `d = max / -16` and each value becomes `x · id + 16`, clamped to 31.
fn encode_q5_0(x: &[f32; BLOCK_LEN], out: &mut Vec<u8>) {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    let d = max / -16.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    // C converts to int8_t (truncating toward zero) before taking MIN(31, ·).
    let q = x.map(|v| ((v * id + 16.5) as i8).min(31) as u8);
    out.extend(f16::from_f32(d).to_le_bytes());
    pack_5bit(&q, out);
}

/// Affine 5-bit: `min` maps to 0 and `max` to 31, so `d = (max - min) / 31` and each value
/// becomes `(x - min) · id` rounded half up.
fn encode_q5_1(x: &[f32; BLOCK_LEN], out: &mut Vec<u8>) {
    let (mut min, mut max) = (f32::MAX, -f32::MAX);
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    let d = (max - min) / 31.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let q = x.map(|v| ((v - min) * id + 0.5) as u8);
    out.extend(f16::from_f32(d).to_le_bytes());
    out.extend(f16::from_f32(min).to_le_bytes());
    pack_5bit(&q, out);
}

/// ggml's 5-bit layout: a little-endian `u32` holding the fifth bit of value `j` at bit `j`,
/// then 16 bytes whose low nibble is value `j` and high nibble value `j + 16`.
fn pack_5bit(q: &[u8; BLOCK_LEN], out: &mut Vec<u8>) {
    let qh = q
        .iter()
        .enumerate()
        .fold(0u32, |h, (j, &v)| h | (u32::from((v >> 4) & 1) << j));
    out.extend(qh.to_le_bytes());
    let half = BLOCK_LEN / 2;
    out.extend((0..half).map(|j| (q[j] & 0x0f) | ((q[j + half] & 0x0f) << 4)));
}

fn unpack_5bit(b: &[u8]) -> [u8; BLOCK_LEN] {
    let qh = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let half = BLOCK_LEN / 2;
    std::array::from_fn(|j| {
        let nibble = if j < half {
            b[4 + j] & 0x0f
        } else {
            b[4 + j - half] >> 4
        };
        nibble | ((((qh >> j) & 1) as u8) << 4)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(ty: GgmlType, x: &[f32]) -> Vec<u8> {
        let mut out = Vec::new();
        encode(ty, x, &mut out).unwrap();
        assert_eq!(out.len(), x.len() / BLOCK_LEN * ty.block_bytes());
        out
    }

    fn dec(ty: GgmlType, b: &[u8]) -> Vec<f32> {
        let mut out = Vec::new();
        decode(ty, b, &mut out).unwrap();
        out
    }

    /// The 5-bit payload of values 0, 1, …, 31 in order: value j sits in the low nibble of
    /// byte j and value j + 16 (low nibble j) in its high nibble, so each byte is j · 0x11;
    /// the fifth bit is set exactly for values 16..=31, i.e. bits 16–31 of `qh`.
    fn identity_5bit() -> Vec<u8> {
        let mut v = vec![0x00, 0x00, 0xff, 0xff];
        v.extend((0..16u8).map(|j| j * 0x11));
        v
    }

    #[test]
    fn q8_0_unit_scale_block_rounds_half_away_from_zero() {
        // x[0] = 127 makes amax = 127, so d = 127 / 127 = 1 exactly (f16 0x3c00) and id = 1:
        // each quant is the value itself rounded by C's roundf. The other values are
        // (j - 16) · 2.5, half of them exact ties: -37.5 → -38, -32.5 → -33, 2.5 → 3 (ties to
        // even would give -32 and 2 instead).
        let mut x = [0.0f32; 32];
        x[0] = 127.0;
        for (j, v) in x.iter_mut().enumerate().skip(1) {
            *v = (j as f32 - 16.0) * 2.5;
        }
        let q: [i8; 32] = [
            127, -38, -35, -33, -30, -28, -25, -23, -20, -18, -15, -13, -10, -8, -5, -3, 0, 3, 5,
            8, 10, 13, 15, 18, 20, 23, 25, 28, 30, 33, 35, 38,
        ];
        let mut want = vec![0x00, 0x3c];
        want.extend(q.iter().map(|&v| v as u8));
        assert_eq!(enc(GgmlType::Q8_0, &x), want);
    }

    #[test]
    fn q8_0_ramp_stores_the_f16_scale_and_quantises_with_the_f32_inverse() {
        // x[j] = j / 31: amax = 1, d = 1/127 = 0.0078740157 = 2^-7 · 1.00787; the f16
        // mantissa 0.00787 · 1024 = 8.06 rounds to 8, exponent -7 + 15 = 8, so the stored
        // scale is 8 << 10 | 8 = 0x2008 (0.0078735). Quants are round(j · 127 / 31); none of
        // j · 127 / 31 is within 0.01 of a tie, so the f32 inverse (≈127) cannot change them.
        let x: Vec<f32> = (0..32).map(|j| j as f32 / 31.0).collect();
        let b = enc(GgmlType::Q8_0, &x);
        assert_eq!(&b[..2], &[0x08, 0x20]);
        let q: Vec<i8> = b[2..].iter().map(|&v| v as i8).collect();
        assert_eq!(
            &q[..4],
            &[0, 4, 8, 12],
            "round(4.10), round(8.19), round(12.29)"
        );
        assert_eq!(q[15], 61, "15 · 127 / 31 = 61.45");
        assert_eq!(q[16], 66, "16 · 127 / 31 = 65.55");
        assert_eq!(q[31], 127);
        // An all-zero block has d = 0 and id = 0 rather than a division by zero.
        assert_eq!(enc(GgmlType::Q8_0, &[0.0; 32]), vec![0u8; 34]);
    }

    #[test]
    fn q5_1_ramps_map_min_to_zero_and_max_to_31() {
        // x[j] = j: min 0, max 31, d = 31 / 31 = 1 (0x3c00), m = 0 (0x0000), quants j.
        let x: Vec<f32> = (0..32).map(|j| j as f32).collect();
        let mut want = vec![0x00, 0x3c, 0x00, 0x00];
        want.extend(identity_5bit());
        assert_eq!(enc(GgmlType::Q5_1, &x), want);

        // x[j] = j / 2 - 1: min -1 (0xbc00), max 14.5, d = 15.5 / 31 = 0.5 (0x3800), id 2,
        // quants (x + 1) · 2 = j again.
        let x: Vec<f32> = (0..32).map(|j| j as f32 / 2.0 - 1.0).collect();
        let mut want = vec![0x00, 0x38, 0x00, 0xbc];
        want.extend(identity_5bit());
        assert_eq!(enc(GgmlType::Q5_1, &x), want);
    }

    #[test]
    fn q5_1_rounds_half_up_by_truncating_after_adding_a_half() {
        // Same unit grid as the ramp (0 and 31 present), with x[1] = 0.49 → 0, x[2] = 2.5 → 3
        // and x[3] = 2.49 → 2. Byte j packs quant j (low) with quant j + 16 = j + 16 (high
        // nibble j), so bytes 1..=3 become 0x10, 0x23, 0x32.
        let mut x: Vec<f32> = (0..32).map(|j| j as f32).collect();
        (x[1], x[2], x[3]) = (0.49, 2.5, 2.49);
        let mut want = vec![0x00, 0x3c, 0x00, 0x00];
        want.extend(identity_5bit());
        want[8 + 1..8 + 4].copy_from_slice(&[0x10, 0x23, 0x32]);
        assert_eq!(enc(GgmlType::Q5_1, &x), want);
    }

    #[test]
    fn q5_0_uses_the_signed_extreme_as_minus_16() {
        // x[j] = j - 16: the largest magnitude is -16 (at j = 0), d = -16 / -16 = 1 (0x3c00),
        // quants trunc(x + 16.5) = j.
        let x: Vec<f32> = (0..32).map(|j| j as f32 - 16.0).collect();
        let mut want = vec![0x00, 0x3c];
        want.extend(identity_5bit());
        assert_eq!(enc(GgmlType::Q5_0, &x), want);
        // Mirrored, x[j] = 16 - j: the extreme is +16, d = -1 (0xbc00), quants j again.
        let x: Vec<f32> = (0..32).map(|j| 16.0 - j as f32).collect();
        let mut want = vec![0x00, 0xbc];
        want.extend(identity_5bit());
        assert_eq!(enc(GgmlType::Q5_0, &x), want);
        // The opposite extreme would be quant 32 and is clamped to 31: x = [-1, 1, 0, …]
        // has d = 1/16, so 1 maps to trunc(16 + 16.5) = 32 → 31.
        let mut x = [0.0f32; 32];
        (x[0], x[1]) = (-1.0, 1.0);
        let q = unpack_5bit(&enc(GgmlType::Q5_0, &x)[2..]);
        assert_eq!((q[0], q[1], q[2]), (0, 31, 16));
    }

    /// Deterministic weight-like values: a sum of sines per row with varying amplitude and an
    /// occasional outlier, as in attention matrices.
    fn weights(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let t = i as f32;
                let base = 0.05 * (t * 0.37).sin() + 0.02 * (t * 1.91).cos();
                let scale = 1.0 + ((i / 32) % 5) as f32;
                if i % 97 == 0 {
                    base * scale * 8.0
                } else {
                    base * scale
                }
            })
            .collect()
    }

    #[test]
    fn round_trip_error_is_bounded_by_the_block_scale() {
        let x = weights(32 * 64);
        for (ty, bound) in [
            // Half a step, plus 127 steps times the f16 rounding of d (2^-11 relative).
            (GgmlType::Q8_0, 0.5 + 127.0 / 2048.0),
            // Half a step, plus the f16 rounding of d (31 steps) and of the minimum.
            (GgmlType::Q5_1, 0.5 + 31.0 / 2048.0),
            // The value opposite the extreme may be clamped a whole step.
            (GgmlType::Q5_0, 1.0 + 16.0 / 2048.0),
        ] {
            let y = dec(ty, &enc(ty, &x));
            assert_eq!(y.len(), x.len());
            let mut worst = 0.0f32;
            for (xb, yb) in x.chunks(32).zip(y.chunks(32)) {
                let (lo, hi) = xb
                    .iter()
                    .fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
                let amax = lo.abs().max(hi.abs());
                let step = match ty {
                    GgmlType::Q8_0 => amax / 127.0,
                    GgmlType::Q5_1 => (hi - lo) / 31.0,
                    _ => amax / 16.0,
                };
                let slack = if ty == GgmlType::Q5_1 {
                    lo.abs() / 2048.0
                } else {
                    0.0
                };
                for (a, b) in xb.iter().zip(yb) {
                    let err = (a - b).abs();
                    assert!(
                        err <= step * bound + slack + 1e-7,
                        "{ty}: {a} decoded as {b} (step {step})"
                    );
                    worst = worst.max(err / step);
                }
            }
            // The bound is not vacuous: some value lands near half a step away.
            assert!(worst > 0.4, "{ty}: worst error only {worst} steps");
        }
    }

    /// ggml's own quantiser, linked in through whisper-rs: `ggml_quantize_chunk` without an
    /// importance matrix, exactly as whisper.cpp's `quantize` tool calls it.
    fn ggml_reference(ty: GgmlType, x: &[f32], n_per_row: usize) -> Vec<u8> {
        use whisper_rs::whisper_rs_sys as sys;
        let rows = x.len() / n_per_row;
        assert_eq!(rows * n_per_row, x.len());
        let mut out = vec![0u8; x.len() / BLOCK_LEN * ty.block_bytes()];
        // SAFETY: `x` holds rows × n_per_row floats and `out` the rows × (n_per_row / 32)
        // blocks ggml writes for them; a null imatrix selects the reference path.
        let n = unsafe {
            sys::ggml_quantize_chunk(
                ty.id() as sys::ggml_type,
                x.as_ptr(),
                out.as_mut_ptr().cast(),
                0,
                rows as i64,
                n_per_row as i64,
                std::ptr::null(),
            )
        };
        assert_eq!(n, out.len());
        out
    }

    /// Blocks meant to hit every branch: zeros, constant blocks (q5_1's zero range), exact
    /// rounding ties, one-signed blocks, magnitudes from 1e-4 to 1e2, and f16-exact values
    /// like real weights.
    fn awkward_values() -> Vec<f32> {
        let mut state = 0x2545_f491u32;
        let mut rnd = move || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as f32 / u32::MAX as f32
        };
        let mut v = Vec::new();
        for block in 0..512 {
            let scale = 10f32.powi(block % 7 - 4);
            for j in 0..BLOCK_LEN {
                let x = match block % 8 {
                    0 => 0.0,
                    1 => 0.75 * scale,
                    2 => (j as f32 - 16.0) * 2.5 * scale,
                    3 => -rnd() * scale,
                    4 => rnd() * scale,
                    _ => (rnd() * 2.0 - 1.0) * scale,
                };
                v.push(if block % 2 == 0 {
                    f16::from_f32(x).to_f32()
                } else {
                    x
                });
            }
        }
        v
    }

    #[test]
    fn encoders_match_ggml_quantize_chunk_bit_for_bit() {
        for (x, row) in [(awkward_values(), 512), (weights(32 * 384), 384)] {
            for ty in [GgmlType::Q8_0, GgmlType::Q5_0, GgmlType::Q5_1] {
                let ours = enc(ty, &x);
                let theirs = ggml_reference(ty, &x, row);
                let first_diff = ours.iter().zip(&theirs).position(|(a, b)| a != b);
                assert_eq!(
                    first_diff,
                    None,
                    "{ty}: block {:?}",
                    first_diff.map(|i| i / ty.block_bytes())
                );
            }
        }
    }

    #[test]
    fn partial_blocks_and_other_types_are_refused() {
        let mut out = Vec::new();
        assert_eq!(
            encode(GgmlType::Q8_0, &[0.0; 48], &mut out),
            Err(BlockError::PartialBlock {
                ty: GgmlType::Q8_0,
                len: 48
            })
        );
        assert_eq!(
            encode(GgmlType::Q4_0, &[0.0; 32], &mut out),
            Err(BlockError::UnsupportedType(GgmlType::Q4_0))
        );
        assert!(out.is_empty(), "nothing written on error");
        let e = decode(GgmlType::Q5_1, &[0; 25], &mut Vec::new()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "25 bytes are not a whole number of q5_1 blocks (24 bytes each)"
        );
    }
}
