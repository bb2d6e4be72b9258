//! ggml's 32-value block formats q8_0, q5_0 and q5_1, encoded and decoded by ggml itself.
//!
//! Encoding is `ggml_quantize_chunk` without an importance matrix, the call whisper.cpp's
//! `quantize` tool makes, so a file quantised here has the tool's bytes; decoding is the
//! format's `to_float` (`dequantize_row_*`). ggml is linked anyway (whisper.cpp, through
//! whisper-rs-sys), so there is no second implementation to keep in step with it. What
//! stays ours is the choice of tensors, the file layout and the checks
//! ([`super::quantise_model`]); the tests below pin the bytes ggml writes, so an update of
//! ggml that changed them would be noticed.
//!
//! Blocks never span rows because ggml requires a row length that is a multiple of 32;
//! [`encode`] refuses any other length rather than padding, since whisper.cpp could not read
//! a padded tensor. Without an importance matrix ggml quantises block by block, so where a
//! tensor is cut into calls (at block boundaries) does not change the bytes.

use crate::Precision;
use whisper_rs_sys as ggml;

/// Values per block (`QK8_0`, `QK5_0`, `QK5_1`).
pub const BLOCK_LEN: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    #[error("{0} is not a block quantisation callscribe can encode (q8_0, q5_0, q5_1)")]
    UnsupportedType(Precision),
    #[error("{len} values are not a whole number of {BLOCK_LEN}-value {ty} blocks")]
    PartialBlock { ty: Precision, len: usize },
    #[error("{len} bytes are not a whole number of {ty} blocks ({block_bytes} bytes each)")]
    PartialBlockBytes {
        ty: Precision,
        len: usize,
        block_bytes: usize,
    },
}

/// ggml's id for `ty`, if it is a block format callscribe writes.
fn block_type(ty: Precision) -> Result<ggml::ggml_type, BlockError> {
    if Precision::QUANTISED.contains(&ty) {
        Ok(ty.id() as ggml::ggml_type)
    } else {
        Err(BlockError::UnsupportedType(ty))
    }
}

/// Appends the encoding of `values` (a whole number of blocks) as `ty` to `out`.
pub fn encode(ty: Precision, values: &[f32], out: &mut Vec<u8>) -> Result<(), BlockError> {
    let id = block_type(ty)?;
    if values.len() % BLOCK_LEN != 0 {
        return Err(BlockError::PartialBlock {
            ty,
            len: values.len(),
        });
    }
    if values.is_empty() {
        return Ok(());
    }
    let start = out.len();
    let bytes = values.len() / BLOCK_LEN * ty.block_bytes();
    out.resize(start + bytes, 0);
    // SAFETY: `values` holds `values.len()` floats, a whole number of blocks, given as one row
    // (start 0, so ggml's alignment asserts hold), and `out[start..]` has room for exactly
    // that many blocks of `ty`. A null importance matrix selects ggml's reference quantiser,
    // which q8_0, q5_0 and q5_1 need no initialisation for.
    let written = unsafe {
        ggml::ggml_quantize_chunk(
            id,
            values.as_ptr(),
            out[start..].as_mut_ptr().cast(),
            0,
            1,
            values.len() as i64,
            std::ptr::null(),
        )
    };
    debug_assert_eq!(written, bytes, "ggml wrote {written} bytes for {bytes}");
    Ok(())
}

/// Appends the values encoded in `bytes` (whole `ty` blocks) to `out`, as ggml's
/// `dequantize_row_*` computes them.
pub fn decode(ty: Precision, bytes: &[u8], out: &mut Vec<f32>) -> Result<(), BlockError> {
    let id = block_type(ty)?;
    let block_bytes = ty.block_bytes();
    if bytes.len() % block_bytes != 0 {
        return Err(BlockError::PartialBlockBytes {
            ty,
            len: bytes.len(),
            block_bytes,
        });
    }
    let n = bytes.len() / block_bytes * BLOCK_LEN;
    let start = out.len();
    out.resize(start + n, 0.0);
    // SAFETY: ggml's type table has an entry for every `ggml_type`, and one with a decoder for
    // each block format; `bytes` holds n / 32 whole blocks and `out[start..]` room for their
    // n values.
    unsafe {
        let to_float = (*ggml::ggml_get_type_traits(id))
            .to_float
            .expect("ggml decodes its block formats");
        to_float(bytes.as_ptr().cast(), out[start..].as_mut_ptr(), n as i64);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::f16;

    fn enc(ty: Precision, x: &[f32]) -> Vec<u8> {
        let mut out = Vec::new();
        encode(ty, x, &mut out).unwrap();
        assert_eq!(out.len(), x.len() / BLOCK_LEN * ty.block_bytes());
        out
    }

    fn dec(ty: Precision, b: &[u8]) -> Vec<f32> {
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
        assert_eq!(enc(Precision::Q8_0, &x), want);
    }

    #[test]
    fn q8_0_ramp_stores_the_f16_scale_and_quantises_with_the_f32_inverse() {
        // x[j] = j / 31: amax = 1, d = 1/127 = 0.0078740157 = 2^-7 · 1.00787; the f16
        // mantissa 0.00787 · 1024 = 8.06 rounds to 8, exponent -7 + 15 = 8, so the stored
        // scale is 8 << 10 | 8 = 0x2008 (0.0078735). Quants are round(j · 127 / 31); none of
        // j · 127 / 31 is within 0.01 of a tie, so the f32 inverse (≈127) cannot change them.
        let x: Vec<f32> = (0..32).map(|j| j as f32 / 31.0).collect();
        let b = enc(Precision::Q8_0, &x);
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
        assert_eq!(enc(Precision::Q8_0, &[0.0; 32]), vec![0u8; 34]);
    }

    #[test]
    fn q5_1_ramps_map_min_to_zero_and_max_to_31() {
        // x[j] = j: min 0, max 31, d = 31 / 31 = 1 (0x3c00), m = 0 (0x0000), quants j.
        let x: Vec<f32> = (0..32).map(|j| j as f32).collect();
        let mut want = vec![0x00, 0x3c, 0x00, 0x00];
        want.extend(identity_5bit());
        assert_eq!(enc(Precision::Q5_1, &x), want);

        // x[j] = j / 2 - 1: min -1 (0xbc00), max 14.5, d = 15.5 / 31 = 0.5 (0x3800), id 2,
        // quants (x + 1) · 2 = j again.
        let x: Vec<f32> = (0..32).map(|j| j as f32 / 2.0 - 1.0).collect();
        let mut want = vec![0x00, 0x38, 0x00, 0xbc];
        want.extend(identity_5bit());
        assert_eq!(enc(Precision::Q5_1, &x), want);
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
        assert_eq!(enc(Precision::Q5_1, &x), want);
    }

    #[test]
    fn q5_0_uses_the_signed_extreme_as_minus_16() {
        // x[j] = j - 16: the largest magnitude is -16 (at j = 0), d = -16 / -16 = 1 (0x3c00),
        // quants trunc(x + 16.5) = j.
        let x: Vec<f32> = (0..32).map(|j| j as f32 - 16.0).collect();
        let mut want = vec![0x00, 0x3c];
        want.extend(identity_5bit());
        assert_eq!(enc(Precision::Q5_0, &x), want);
        // Mirrored, x[j] = 16 - j: the extreme is +16, d = -1 (0xbc00), quants j again.
        let x: Vec<f32> = (0..32).map(|j| 16.0 - j as f32).collect();
        let mut want = vec![0x00, 0xbc];
        want.extend(identity_5bit());
        assert_eq!(enc(Precision::Q5_0, &x), want);
        // The opposite extreme would be quant 32 and is clamped to 31: x = [-1, 1, 0, …]
        // has d = 1/16, so 1 maps to trunc(16 + 16.5) = 32 → 31, which decodes as 15/16.
        let mut x = [0.0f32; 32];
        (x[0], x[1]) = (-1.0, 1.0);
        let y = dec(Precision::Q5_0, &enc(Precision::Q5_0, &x));
        assert_eq!((y[0], y[1], y[2]), (-1.0, 15.0 / 16.0, 0.0));
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
            (Precision::Q8_0, 0.5 + 127.0 / 2048.0),
            // Half a step, plus the f16 rounding of d (31 steps) and of the minimum.
            (Precision::Q5_1, 0.5 + 31.0 / 2048.0),
            // The value opposite the extreme may be clamped a whole step.
            (Precision::Q5_0, 1.0 + 16.0 / 2048.0),
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
                    Precision::Q8_0 => amax / 127.0,
                    Precision::Q5_1 => (hi - lo) / 31.0,
                    _ => amax / 16.0,
                };
                let slack = if ty == Precision::Q5_1 {
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

    /// `ggml_quantize_chunk` without an importance matrix called as whisper.cpp's `quantize`
    /// tool calls it: once per tensor, with its real rows.
    fn ggml_reference(ty: Precision, x: &[f32], n_per_row: usize) -> Vec<u8> {
        use whisper_rs_sys as sys;
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
        // [`encode`] is called on pieces of a tensor (the writer streams 16 Ki values at a
        // time) as one row each; cut here into 7-block pieces that straddle the real rows, the
        // bytes must still be the tool's.
        for (x, row) in [(awkward_values(), 512), (weights(32 * 384), 384)] {
            for ty in [Precision::Q8_0, Precision::Q5_0, Precision::Q5_1] {
                let mut ours = Vec::new();
                for piece in x.chunks(7 * BLOCK_LEN) {
                    encode(ty, piece, &mut ours).unwrap();
                }
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
            encode(Precision::Q8_0, &[0.0; 48], &mut out),
            Err(BlockError::PartialBlock {
                ty: Precision::Q8_0,
                len: 48
            })
        );
        assert_eq!(
            encode(Precision::Q4_0, &[0.0; 32], &mut out),
            Err(BlockError::UnsupportedType(Precision::Q4_0))
        );
        assert!(out.is_empty(), "nothing written on error");
        let e = decode(Precision::Q5_1, &[0; 25], &mut Vec::new()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "25 bytes are not a whole number of q5_1 blocks (24 bytes each)"
        );
    }
}
