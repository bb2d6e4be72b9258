//! Any recording callscribe reads → planar `f32` channels at the file's own rate: the same
//! [`WavAudio`] the WAV reader returns, so channel roles, resampling and everything after are
//! the same for every format.
//!
//! The container is told from the file's first bytes, never from its name. WAV with PCM, float
//! or G.711 samples goes through our WAV reader (hound and the G.711 expansion, exact to the
//! sample, checked against sox); every other container and codec through symphonia (pure Rust:
//! MP3, FLAC, Vorbis, AAC, IMA and Microsoft ADPCM in WAV, Ogg, WebM/Matroska and MP4/M4A), with
//! Opus decoded by libopus through `symphonia-adapter-libopus` and GSM 6.10 WAV (call
//! recorders') by libgsm ([`gsm`]). What none of them decodes (G.729 or TrueSpeech WAV, for
//! instance) is refused in one line that names the container and the codec and says how to
//! convert it. A file cut short is an error, not a silently shorter
//! call, wherever the container lets us tell.

mod gsm;
mod media;
mod mp3;

use super::wav::{self, WavAudio, WavError};
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

/// File name extensions of the formats read here: what a folder is searched for by default.
pub const EXTENSIONS: &[&str] = &[
    "wav", "wave", "mp3", "flac", "ogg", "oga", "opus", "webm", "mka", "mkv", "m4a", "mp4", "aac",
];

/// What a user is told callscribe reads, after a file it cannot.
const READS: &str =
    "callscribe reads WAV (PCM, float, G.711, IMA/MS ADPCM, GSM 6.10), MP3, FLAC, Ogg \
                     (Vorbis, Opus), WebM/Matroska (Opus, Vorbis), M4A/MP4 (AAC)";

/// Bytes read to tell the container and, for WAV, the codec: the `fmt ` chunk comes first in
/// practice, after at most a few small chunks.
const HEAD_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    Wav,
    Mp3,
    Flac,
    Ogg,
    Matroska,
    Mp4,
    Adts,
    /// Another container symphonia read (AIFF, CAF, MPEG audio layers 1/2).
    Other(&'static str),
}

impl fmt::Display for Container {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Container::Wav => "WAV",
            Container::Mp3 => "MP3",
            Container::Flac => "FLAC",
            Container::Ogg => "Ogg",
            Container::Matroska => "WebM/Matroska",
            Container::Mp4 => "MP4/M4A",
            Container::Adts => "AAC (ADTS)",
            Container::Other(name) => name,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("{path}: cannot open: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Wav(#[from] WavError),
    #[error("{path}: {what}; {READS}")]
    NotAudio { path: PathBuf, what: String },
    #[error("{path}: {container} with {codec} audio is not supported; convert with: {convert}")]
    UnsupportedCodec {
        path: PathBuf,
        container: Container,
        codec: String,
        convert: String,
    },
    #[error("{path}: unsupported {container}: {reason}")]
    Unsupported {
        path: PathBuf,
        container: Container,
        reason: String,
    },
    #[error("{path}: {container} data truncated: {detail}")]
    Truncated {
        path: PathBuf,
        container: Container,
        detail: String,
    },
    #[error("{path}: {container} data is damaged: {reason}")]
    Damaged {
        path: PathBuf,
        container: Container,
        reason: String,
    },
    #[error("{path}: {container} holds no audio (0 samples)")]
    Empty { path: PathBuf, container: Container },
}

/// What a recording holds, from its headers: for sizing progress and for the batch report.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioInfo {
    pub container: Container,
    /// The codec's short name (`pcm_s16le`, `mp3`, `opus`, …).
    pub codec: String,
    pub sample_rate_hz: u32,
    pub channels: u16,
    /// `None` where the container does not say (a WebM recorded live).
    pub duration_secs: Option<f64>,
}

/// Decodes a whole recording into planar `f32` channels at its own rate.
pub fn read_audio(path: &Path) -> Result<WavAudio, DecodeError> {
    contained(path, || read_audio_uncontained(path))
}

/// A decoder that panics on a file (a bug in it or in us, on input nobody foresaw) makes that
/// file an error, not the process's end.
fn contained<T>(
    path: &Path,
    decode: impl FnOnce() -> Result<T, DecodeError>,
) -> Result<T, DecodeError> {
    crate::runtime::contain(decode).unwrap_or_else(|message| {
        Err(DecodeError::Damaged {
            path: path.to_owned(),
            container: Container::Other("recording"),
            reason: format!("the decoder failed on it: {message}"),
        })
    })
}

fn read_audio_uncontained(path: &Path) -> Result<WavAudio, DecodeError> {
    let head = read_head(path)?;
    match Source::sniff(path, &head) {
        Source::Wav(WavRoute::Ours) => Ok(wav::read_wav(path)?),
        Source::Wav(WavRoute::Gsm) => gsm::decode(path, &read_all(path)?),
        Source::Wav(WavRoute::Refused(e)) => Err(e),
        Source::Wav(WavRoute::Symphonia) | Source::Other => {
            media::decode(path, Box::new(open(path)?), &head)
        }
    }
}

/// Decodes a recording held in memory (a gRPC request's); `name` stands for it in errors.
pub fn decode_bytes(name: &str, bytes: Vec<u8>) -> Result<WavAudio, DecodeError> {
    let path = Path::new(name);
    contained(path, || decode_bytes_uncontained(path, bytes))
}

fn decode_bytes_uncontained(path: &Path, bytes: Vec<u8>) -> Result<WavAudio, DecodeError> {
    let head = bytes[..bytes.len().min(HEAD_BYTES)].to_vec();
    match Source::sniff(path, &head) {
        Source::Wav(WavRoute::Ours) => Ok(wav::read_wav_bytes(path, &bytes)?),
        Source::Wav(WavRoute::Gsm) => gsm::decode(path, &bytes),
        Source::Wav(WavRoute::Refused(e)) => Err(e),
        Source::Wav(WavRoute::Symphonia) | Source::Other => {
            media::decode(path, Box::new(std::io::Cursor::new(bytes)), &head)
        }
    }
}

/// Reads only the headers: container, codec, rate, channels and (where stated) duration.
pub fn probe(path: &Path) -> Result<AudioInfo, DecodeError> {
    contained(path, || probe_uncontained(path))
}

fn probe_uncontained(path: &Path) -> Result<AudioInfo, DecodeError> {
    let head = read_head(path)?;
    match Source::sniff(path, &head) {
        Source::Wav(WavRoute::Ours) => {
            let info = wav::probe_wav(path)?;
            Ok(AudioInfo {
                container: Container::Wav,
                codec: wav_codec_name(wav::format_tag(&head).unwrap_or(wav::tag::PCM)).into(),
                sample_rate_hz: info.sample_rate_hz,
                channels: info.channels,
                duration_secs: Some(info.duration_secs()),
            })
        }
        Source::Wav(WavRoute::Gsm) => {
            let len = open(path)?.metadata().map_or(0, |m| m.len());
            let (rate, secs) = gsm::probe(path, &head, len)?;
            Ok(AudioInfo {
                container: Container::Wav,
                codec: wav_codec_name(GSM_610).into(),
                sample_rate_hz: rate,
                channels: 1,
                duration_secs: Some(secs),
            })
        }
        Source::Wav(WavRoute::Refused(e)) => Err(e),
        Source::Wav(WavRoute::Symphonia) | Source::Other => {
            media::probe(path, Box::new(open(path)?), &head)
        }
    }
}

/// Which decoder a WAV file goes to.
enum WavRoute {
    /// PCM, float, G.711, or a header too odd to tell: our reader (and its errors).
    Ours,
    /// A codec symphonia decodes (IMA and Microsoft ADPCM).
    Symphonia,
    /// GSM 6.10, through libgsm.
    Gsm,
    /// A codec nobody here decodes: the error to report.
    Refused(DecodeError),
}

enum Source {
    Wav(WavRoute),
    Other,
}

impl Source {
    fn sniff(path: &Path, head: &[u8]) -> Self {
        let riff_wave = head.len() >= 12 && &head[0..4] == b"RIFF" && &head[8..12] == b"WAVE";
        if !riff_wave {
            return Source::Other;
        }
        Source::Wav(match wav::format_tag(head) {
            None
            | Some(wav::tag::PCM | wav::tag::IEEE_FLOAT | wav::tag::ALAW | wav::tag::MULAW) => {
                WavRoute::Ours
            }
            Some(ADPCM_MS | ADPCM_IMA) => WavRoute::Symphonia,
            Some(GSM_610) => WavRoute::Gsm,
            Some(tag) => WavRoute::Refused(unsupported_codec(
                path,
                Container::Wav,
                wav_codec_name(tag).into(),
            )),
        })
    }
}

const ADPCM_MS: u16 = 0x0002;
const ADPCM_IMA: u16 = 0x0011;
const GSM_610: u16 = 0x0031;

/// Names of the WAVE format tags call recorders and telephony systems write (RFC 2361 and
/// Microsoft's `mmreg.h`).
fn wav_codec_name(tag: u16) -> &'static str {
    match tag {
        wav::tag::PCM => "PCM",
        ADPCM_MS => "Microsoft ADPCM",
        wav::tag::IEEE_FLOAT => "IEEE float",
        wav::tag::ALAW => "G.711 A-law",
        wav::tag::MULAW => "G.711 μ-law",
        0x0010 => "OKI ADPCM",
        ADPCM_IMA => "IMA ADPCM",
        0x0014 => "G.723 ADPCM",
        0x0022 => "TrueSpeech",
        GSM_610 => "GSM 6.10",
        0x0040 => "G.721 ADPCM",
        0x0042 => "G.723.1",
        0x0045 | 0x0064 => "G.726 ADPCM",
        0x0050 => "MPEG audio",
        0x0055 => "MP3",
        0x0065 => "G.722 ADPCM",
        0x0083 => "G.729",
        0x00FF | 0x1610 => "AAC",
        0x0160..=0x0163 => "Windows Media Audio",
        _ => "an unknown codec",
    }
}

fn unsupported_codec(path: &Path, container: Container, codec: String) -> DecodeError {
    let out = converted_name(path);
    // ffmpeg is the converter that reads (nearly) everything.
    let convert = format!(
        "ffmpeg -i {} -c:a pcm_s16le {}",
        shell_word(path),
        shell_word(&out)
    );
    DecodeError::UnsupportedCodec {
        path: path.to_owned(),
        container,
        codec,
        convert,
    }
}

/// `calls/a.wav` → `calls/a-pcm.wav`: where a conversion hint writes its output.
fn converted_name(path: &Path) -> PathBuf {
    let stem = path
        .file_stem()
        .map_or_else(|| "recording".into(), |s| s.to_string_lossy().into_owned());
    path.with_file_name(format!("{stem}-pcm.wav"))
}

/// A path as one shell word (quoted when it needs to be), for a command a user copies.
pub(crate) fn shell_word(path: &Path) -> String {
    let s = path.display().to_string();
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+,:@=".contains(c))
    {
        s
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Says what a file that no reader recognised holds, for the one-line error.
fn not_audio(path: &Path, head: &[u8]) -> DecodeError {
    let named = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase());
    let expected = match named.as_deref() {
        Some("wav" | "wave") => "not a WAV file".to_owned(),
        Some(ext) if EXTENSIONS.contains(&ext) => {
            let article = if "aeiou".contains(&ext[..1]) || ext == "mp3" || ext == "m4a" {
                "an"
            } else {
                "a"
            };
            format!("not {article} {} file", ext.to_ascii_uppercase())
        }
        _ => "not an audio recording".to_owned(),
    };
    let what = if head.is_empty() {
        format!("{expected}: the file is empty")
    } else if let Some(text) = text_start(head) {
        format!("{expected}: it holds text (\"{text}\")")
    } else {
        format!("{expected}: no container callscribe knows starts it")
    };
    DecodeError::NotAudio {
        path: path.to_owned(),
        what,
    }
}

/// The first words of `head` when it is text (UTF-8 without control characters but
/// whitespace), shortened for an error line.
fn text_start(head: &[u8]) -> Option<String> {
    let text = match std::str::from_utf8(head) {
        Ok(t) => t,
        // A multi-byte character cut at the end of the head is still text.
        Err(e) if e.error_len().is_none() => std::str::from_utf8(&head[..e.valid_up_to()]).ok()?,
        Err(_) => return None,
    };
    if text.chars().any(|c| c.is_control() && !c.is_whitespace()) {
        return None;
    }
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut short: String = line.chars().take(40).collect();
    if short.len() < line.len() {
        short.push('…');
    }
    Some(short)
}

fn open(path: &Path) -> Result<std::fs::File, DecodeError> {
    std::fs::File::open(path).map_err(|source| DecodeError::Open {
        path: path.to_owned(),
        source,
    })
}

fn read_all(path: &Path) -> Result<Vec<u8>, DecodeError> {
    std::fs::read(path).map_err(|source| DecodeError::Open {
        path: path.to_owned(),
        source,
    })
}

fn read_head(path: &Path) -> Result<Vec<u8>, DecodeError> {
    let mut head = Vec::with_capacity(4096);
    open(path)?
        .take(HEAD_BYTES as u64)
        .read_to_end(&mut head)
        .map_err(|source| DecodeError::Open {
            path: path.to_owned(),
            source,
        })?;
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gsm_header() -> Vec<u8> {
        // What sox writes for `-e gsm-full-rate`: WAVEFORMATEX with tag 0x31, 65-byte blocks.
        let mut b = Vec::new();
        b.extend_from_slice(b"RIFF\x00\x01\x00\x00WAVEfmt \x14\x00\x00\x00");
        b.extend_from_slice(&[
            0x31, 0, 1, 0, 0x40, 0x1f, 0, 0, 0x59, 0x06, 0, 0, 65, 0, 0, 0,
        ]);
        b.extend_from_slice(&[2, 0, 0x40, 0x01]);
        b.extend_from_slice(b"data\x41\x00\x00\x00");
        b.extend_from_slice(&[0u8; 65]);
        b
    }

    #[test]
    fn a_wav_in_a_codec_nobody_here_decodes_is_named_with_its_codec_and_a_conversion() {
        let mut g729 = gsm_header();
        g729[20..22].copy_from_slice(&0x83u16.to_le_bytes());
        let e = decode_bytes("calls/rec 1.wav", g729).unwrap_err();
        assert_eq!(
            e.to_string(),
            "calls/rec 1.wav: WAV with G.729 audio is not supported; convert with: \
             ffmpeg -i 'calls/rec 1.wav' -c:a pcm_s16le 'calls/rec 1-pcm.wav'"
        );
    }

    #[test]
    fn text_is_refused_as_text_whatever_its_name() {
        let text = b"call notes: customer wants a refund\n".to_vec();
        let e = decode_bytes("notes.mp3", text.clone()).unwrap_err();
        assert!(matches!(e, DecodeError::NotAudio { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(
            msg.starts_with("notes.mp3: not an MP3 file: it holds text (\"call notes: customer wants a refund\")"),
            "{msg}"
        );
        assert!(msg.contains("callscribe reads WAV"), "{msg}");
        let e = decode_bytes("notes.wav", text).unwrap_err().to_string();
        assert!(
            e.starts_with("notes.wav: not a WAV file: it holds text"),
            "{e}"
        );
        let e = decode_bytes("x.flac", Vec::new()).unwrap_err().to_string();
        assert!(
            e.starts_with("x.flac: not a FLAC file: the file is empty"),
            "{e}"
        );
    }

    #[test]
    fn wav_codecs_go_to_the_decoder_that_reads_them() {
        let route = |tag: u16| {
            let mut h = gsm_header();
            h[20..22].copy_from_slice(&tag.to_le_bytes());
            match Source::sniff(Path::new("a.wav"), &h) {
                Source::Wav(WavRoute::Ours) => "ours",
                Source::Wav(WavRoute::Symphonia) => "symphonia",
                Source::Wav(WavRoute::Gsm) => "libgsm",
                Source::Wav(WavRoute::Refused(_)) => "refused",
                Source::Other => "other",
            }
        };
        assert_eq!(route(1), "ours");
        assert_eq!(route(3), "ours");
        assert_eq!(route(7), "ours");
        assert_eq!(route(0x11), "symphonia");
        assert_eq!(route(2), "symphonia");
        assert_eq!(route(0x31), "libgsm");
        assert_eq!(route(0x83), "refused");
    }

    #[test]
    fn shell_words_are_quoted_only_when_needed() {
        assert_eq!(shell_word(Path::new("a/b-1.wav")), "a/b-1.wav");
        assert_eq!(shell_word(Path::new("it's.wav")), r"'it'\''s.wav'");
    }
}
