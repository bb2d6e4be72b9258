//! GSM 6.10 full-rate audio in WAV (format tag 0x31, "WAV49"): what many call recorders
//! and PBXs (Asterisk's `wav49`, Windows' sound recorder) save, at 13 kbit/s and 8 kHz mono.
//!
//! Decoded by libgsm (Jutta Degener and Carsten Bormann's reference implementation, which sox
//! and FFmpeg's `libgsm` use; Debian's `libgsm1`), through the four functions we call, bound
//! here: no maintained Rust crate wraps it, and its interface is four C functions. Each
//! 65-byte WAV block holds two GSM frames (33 and 32 bytes, with one nibble carried across),
//! which libgsm's `GSM_OPT_WAV49` mode unpacks; each frame is 160 samples of 13-bit audio.

use super::{Container, DecodeError};
use crate::audio::wav::{self, WavAudio};
use std::os::raw::{c_int, c_short, c_uchar, c_void};
use std::path::Path;

/// Bytes in one WAV49 block, and the samples it decodes to.
const BLOCK_BYTES: usize = 65;
const BLOCK_SAMPLES: usize = 320;
const FRAME_SAMPLES: usize = 160;
/// libgsm's `GSM_OPT_WAV49` (gsm.h).
const GSM_OPT_WAV49: c_int = 4;

#[link(name = "gsm")]
extern "C" {
    fn gsm_create() -> *mut c_void;
    fn gsm_destroy(handle: *mut c_void);
    fn gsm_option(handle: *mut c_void, option: c_int, value: *mut c_int) -> c_int;
    fn gsm_decode(handle: *mut c_void, frame: *mut c_uchar, out: *mut c_short) -> c_int;
}

/// One libgsm decoder in WAV49 mode; its state carries from frame to frame.
struct Decoder(*mut c_void);

impl Decoder {
    fn new() -> Option<Self> {
        // SAFETY: gsm_create allocates a fresh state or returns null.
        let handle = unsafe { gsm_create() };
        if handle.is_null() {
            return None;
        }
        let mut on: c_int = 1;
        // SAFETY: a live handle and a pointer to an int, as gsm_option(3) takes.
        unsafe { gsm_option(handle, GSM_OPT_WAV49, &mut on) };
        Some(Self(handle))
    }

    /// Decodes one 65-byte block into 320 samples in [-1, 1). False where libgsm rejects a
    /// frame (it checks a magic nibble only in plain, not WAV49, frames; kept for safety).
    fn block(&mut self, block: &[u8; BLOCK_BYTES], out: &mut [f32]) -> bool {
        let mut pcm = [0 as c_short; BLOCK_SAMPLES];
        // gsm_decode reads at most 33 bytes from the pointer it is given: the first frame
        // is bytes 0..33, the second 33..65 (32 bytes, padded to 33 here so no read can leave
        // the buffer).
        let mut first = [0u8; 33];
        let mut second = [0u8; 33];
        first.copy_from_slice(&block[..33]);
        second[..32].copy_from_slice(&block[33..]);
        // SAFETY: a live handle, 33 readable bytes and 160 writable samples for each call.
        let ok = unsafe {
            gsm_decode(self.0, first.as_mut_ptr(), pcm.as_mut_ptr()) == 0
                && gsm_decode(
                    self.0,
                    second.as_mut_ptr(),
                    pcm.as_mut_ptr().add(FRAME_SAMPLES),
                ) == 0
        };
        for (o, &s) in out.iter_mut().zip(&pcm) {
            *o = f32::from(s) / 32768.0;
        }
        ok
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        // SAFETY: the handle came from gsm_create and is destroyed once.
        unsafe { gsm_destroy(self.0) }
    }
}

// SAFETY: the state is plain memory owned by this value, used by one thread at a time.
unsafe impl Send for Decoder {}

/// A GSM WAV's header: its rate, and where its blocks are.
struct Layout {
    rate: u32,
    data: std::ops::Range<usize>,
    /// Samples the `fact` chunk states (the last block may be padding), if it does.
    stated: Option<usize>,
    /// Bytes the `data` chunk declares: more than the file holds means it was cut short.
    declared: usize,
}

fn damaged(path: &Path, reason: impl Into<String>) -> DecodeError {
    DecodeError::Damaged {
        path: path.to_owned(),
        container: Container::Wav,
        reason: reason.into(),
    }
}

fn layout(path: &Path, bytes: &[u8]) -> Result<Layout, DecodeError> {
    let (mut rate, mut stated) = (None, None);
    for (id, size, body) in wav::chunks(bytes) {
        let field = |at: usize, n: usize| {
            bytes
                .get(body + at..body + at + n)
                .map(|b| b.iter().rev().fold(0u32, |v, &b| v << 8 | u32::from(b)))
        };
        match &id {
            b"fmt " => {
                let (Some(channels), Some(hz), Some(align)) =
                    (field(2, 2), field(4, 4), field(12, 2))
                else {
                    return Err(damaged(path, "the fmt chunk is cut short"));
                };
                if channels != 1 {
                    return Err(DecodeError::Unsupported {
                        path: path.to_owned(),
                        container: Container::Wav,
                        reason: format!("GSM 6.10 with {channels} channels (it is mono)"),
                    });
                }
                if align as usize != BLOCK_BYTES {
                    return Err(DecodeError::Unsupported {
                        path: path.to_owned(),
                        container: Container::Wav,
                        reason: format!(
                            "GSM 6.10 in {align}-byte blocks (WAV49 blocks are {BLOCK_BYTES})"
                        ),
                    });
                }
                if !(1000..=192_000).contains(&hz) {
                    return Err(damaged(path, format!("sample rate {hz} Hz")));
                }
                rate = Some(hz);
            }
            b"fact" => stated = field(0, 4).map(|n| n as usize),
            b"data" => {
                let rate = rate.ok_or_else(|| damaged(path, "no fmt chunk before the data"))?;
                let end = body.saturating_add(size).min(bytes.len());
                return Ok(Layout {
                    rate,
                    data: body.min(end)..end,
                    stated,
                    declared: size,
                });
            }
            _ => {}
        }
    }
    Err(damaged(path, "no data chunk"))
}

/// The header's facts: rate and duration (from the `fact` chunk, else the blocks).
pub fn probe(path: &Path, head: &[u8], file_len: u64) -> Result<(u32, f64), DecodeError> {
    let l = layout(path, head)?;
    let blocks = (file_len as usize)
        .saturating_sub(l.data.start)
        .min(l.declared)
        / BLOCK_BYTES;
    let samples = l.stated.unwrap_or(blocks * BLOCK_SAMPLES);
    Ok((l.rate, samples as f64 / f64::from(l.rate)))
}

/// Decodes a whole GSM 6.10 WAV file held in `bytes`.
pub fn decode(path: &Path, bytes: &[u8]) -> Result<WavAudio, DecodeError> {
    let l = layout(path, bytes)?;
    let data = &bytes[l.data.clone()];
    if data.len() < l.declared {
        return Err(DecodeError::Truncated {
            path: path.to_owned(),
            container: Container::Wav,
            detail: format!(
                "the data chunk declares {} bytes, the file holds {}",
                l.declared,
                data.len()
            ),
        });
    }
    let blocks = data.len() / BLOCK_BYTES;
    if blocks == 0 {
        return Err(DecodeError::Empty {
            path: path.to_owned(),
            container: Container::Wav,
        });
    }
    let mut decoder = Decoder::new().ok_or_else(|| damaged(path, "libgsm could not start"))?;
    let mut samples = vec![0f32; blocks * BLOCK_SAMPLES];
    for (i, (block, out)) in data
        .chunks_exact(BLOCK_BYTES)
        .zip(samples.chunks_exact_mut(BLOCK_SAMPLES))
        .enumerate()
    {
        let block: &[u8; BLOCK_BYTES] = block.try_into().expect("chunks_exact");
        if !decoder.block(block, out) {
            return Err(damaged(path, format!("GSM block {i} does not decode")));
        }
    }
    if let Some(n) = l.stated.filter(|&n| n > 0 && n <= samples.len()) {
        samples.truncate(n);
    }
    Ok(WavAudio {
        sample_rate_hz: l.rate,
        channels: vec![samples],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A GSM WAV as sox writes it, of `secs` of a 440 Hz tone at 8 kHz.
    fn tone_gsm(dir: &Path, secs: &str) -> std::path::PathBuf {
        let path = dir.join("tone.wav");
        let status = std::process::Command::new("sox")
            .args(["-n", "-r", "8000", "-c", "1", "-e", "gsm-full-rate"])
            .arg(&path)
            .args(["synth", secs, "sine", "440", "vol", "0.5"])
            .status()
            .expect("sox (scripts/setup.sh installs it)");
        assert!(status.success());
        path
    }

    #[test]
    fn a_tone_decodes_to_its_length_and_level_as_sox_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = tone_gsm(dir.path(), "1.5");
        let bytes = std::fs::read(&path).unwrap();
        let audio = decode(&path, &bytes).unwrap();
        assert_eq!(audio.sample_rate_hz, 8000);
        assert_eq!(audio.channels.len(), 1);
        let s = &audio.channels[0];
        assert_eq!(
            s.len(),
            12_000,
            "the fact chunk's count, not the padded blocks'"
        );
        // sox's own decode of the same file, through the same libgsm: the same samples.
        let raw = std::process::Command::new("sox")
            .arg(&path)
            .args(["-t", "raw", "-e", "signed-integer", "-b", "16", "-"])
            .output()
            .unwrap();
        let theirs: Vec<f32> = raw
            .stdout
            .chunks_exact(2)
            .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
            .collect();
        // sox keeps the last block's padding; the fact chunk says where the audio ends.
        assert_eq!(theirs.len(), 12_160);
        let worst = s
            .iter()
            .zip(&theirs)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-4, "differs from sox by {worst}");
        let rms = (s.iter().map(|v| v * v).sum::<f32>() / s.len() as f32).sqrt();
        assert!((0.25..0.45).contains(&rms), "rms {rms}");
        let (rate, secs) = probe(&path, &bytes, bytes.len() as u64).unwrap();
        assert_eq!(rate, 8000);
        assert!((secs - 1.5).abs() < 1e-3, "{secs}");
    }

    #[test]
    fn a_file_cut_short_is_truncated_and_garbage_blocks_do_not_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = tone_gsm(dir.path(), "1");
        let bytes = std::fs::read(&path).unwrap();
        let cut = &bytes[..bytes.len() - 100];
        let e = decode(&path, cut).unwrap_err();
        assert!(matches!(e, DecodeError::Truncated { .. }), "{e}");
        // Any bytes in the blocks are some GSM parameters: they decode to something bounded.
        let mut noisy = bytes.clone();
        let start = noisy.len() - 65 * 20;
        for (i, b) in noisy[start..].iter_mut().enumerate() {
            *b = (i * 151 % 251) as u8;
        }
        let audio = decode(&path, &noisy).unwrap();
        assert!(audio.channels[0]
            .iter()
            .all(|v| v.is_finite() && v.abs() <= 1.0));
    }
}
