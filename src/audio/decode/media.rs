//! Containers and codecs through symphonia: everything but PCM and G.711 WAV.
//!
//! A packet that does not decode is replaced by silence of the previous packet's length, so
//! the rest of the call keeps its times; a recording where more than one packet in ten is
//! damaged is refused instead. symphonia ends an MPEG stream quietly at a frame cut short, so
//! MP3s are also checked for a last frame the file does not hold ([`super::mp3`]).

use super::{mp3, not_audio, unsupported_codec, AudioInfo, Container, DecodeError};
use crate::audio::wav::{WavAudio, MAX_CHANNELS};
use std::io::{ErrorKind, Seek, SeekFrom};
use std::path::Path;
use std::sync::OnceLock;
use symphonia::core::codecs::audio::well_known as codec;
use symphonia::core::codecs::audio::{AudioCodecId, AudioCodecParameters, AudioDecoderOptions};
use symphonia::core::codecs::registry::CodecRegistry;
use symphonia::core::errors::Error;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, TrackType};
use symphonia::core::io::{MediaSource, MediaSourceStream};
use symphonia::core::meta::MetadataOptions;

/// More damaged packets than this fraction refuse the recording rather than fill it with
/// silence.
const MAX_DAMAGED_FRACTION: f64 = 0.1;

/// Rates libopus decodes at; a WebM that states another gets 48 kHz, Opus's own rate.
const OPUS_RATES_HZ: [u32; 5] = [8_000, 12_000, 16_000, 24_000, 48_000];

/// symphonia's decoders, and libopus for Opus.
fn codecs() -> &'static CodecRegistry {
    static REGISTRY: OnceLock<CodecRegistry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut registry = CodecRegistry::new();
        symphonia::default::register_enabled_codecs(&mut registry);
        registry.register_audio_decoder::<symphonia_adapter_libopus::OpusDecoder>();
        registry
    })
}

/// A container opened at its audio track, with a decoder for it.
struct Opened<'s> {
    reader: Box<dyn FormatReader + 's>,
    info: AudioInfo,
    track_id: u32,
    params: AudioCodecParameters,
    /// Frames the container states independently of the file's size (so a shortfall means
    /// the file was cut), where it does.
    declared_frames: Option<u64>,
}

pub(super) fn probe(
    path: &Path,
    source: Box<dyn MediaSource>,
    head: &[u8],
) -> Result<AudioInfo, DecodeError> {
    Ok(open(path, source, head)?.info)
}

/// symphonia's readers can panic on crafted input (fuzzing found an arithmetic overflow in its
/// WAVE `fmt ` reader for 65535 channels, `symphonia-format-riff` 0.6.1): `decode::read_audio`,
/// `decode_bytes` and `probe` run this inside `runtime::contain`, so such a file is one
/// damaged-file error.
pub(super) fn decode(
    path: &Path,
    source: Box<dyn MediaSource>,
    head: &[u8],
) -> Result<WavAudio, DecodeError> {
    let Opened {
        mut reader,
        info,
        track_id,
        params,
        declared_frames,
    } = open(path, source, head)?;
    let container = info.container;
    let damaged = |reason: String| DecodeError::Damaged {
        path: path.to_owned(),
        container,
        reason,
    };
    let mut decoder = codecs()
        .make_audio_decoder(&params, &AudioDecoderOptions::default())
        .map_err(|e| damaged(format!("{} decoder: {e}", info.codec)))?;
    let mut channels: Vec<Vec<f32>> = Vec::new();
    let mut rate = info.sample_rate_hz;
    let mut scratch: Vec<Vec<f32>> = Vec::new();
    let (mut packets, mut bad, mut first_bad) = (0usize, 0usize, None::<String>);
    let mut last_frames = 0usize;
    // The last packet held fewer bytes than its codec needs: the file was cut inside it.
    let mut last_short = false;
    let secs = |channels: &[Vec<f32>], rate: u32| {
        channels.first().map_or(0, Vec::len) as f64 / f64::from(rate.max(1))
    };
    let truncated = |detail: String| DecodeError::Truncated {
        path: path.to_owned(),
        container,
        detail,
    };
    let cut_in_packet = |channels: &[Vec<f32>], rate: u32| {
        truncated(format!(
            "the file ends inside a packet after {:.1} s of audio",
            secs(channels, rate)
        ))
    };
    loop {
        let packet = match reader.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => break,
            // A chained Ogg stream: the first one is the call.
            Err(Error::ResetRequired) => break,
            Err(Error::IoError(e)) if e.kind() == ErrorKind::UnexpectedEof => {
                return Err(cut_in_packet(&channels, rate));
            }
            Err(e) => return Err(damaged(format!("at {:.1} s: {e}", secs(&channels, rate)))),
        };
        if packet.track_id != track_id {
            continue;
        }
        packets += 1;
        last_short = false;
        match decoder.decode(&packet) {
            Ok(buf) => {
                let spec = buf.spec();
                let n = spec.channels().count();
                if n == 0 || n > usize::from(MAX_CHANNELS) {
                    return Err(too_many_channels(path, container, n));
                }
                if channels.is_empty() {
                    channels = vec![Vec::new(); n];
                    rate = spec.rate();
                } else if n != channels.len() || spec.rate() != rate {
                    return Err(damaged(format!(
                        "the audio changes from {} channel(s) at {rate} Hz to {n} at {} Hz at {:.1} s",
                        channels.len(),
                        spec.rate(),
                        secs(&channels, rate)
                    )));
                }
                buf.copy_to_vecs_planar::<f32>(&mut scratch);
                for (ch, s) in channels.iter_mut().zip(&scratch) {
                    ch.extend_from_slice(s);
                }
                last_frames = buf.frames();
            }
            Err(Error::IoError(e)) if e.kind() == ErrorKind::UnexpectedEof => {
                last_short = true;
                bad += 1;
                first_bad.get_or_insert_with(|| format!("at {:.1} s: {e}", secs(&channels, rate)));
            }
            Err(Error::DecodeError(e)) => {
                bad += 1;
                first_bad.get_or_insert_with(|| format!("at {:.1} s: {e}", secs(&channels, rate)));
                // Silence in its place keeps the rest of the call at its time.
                for ch in &mut channels {
                    ch.resize(ch.len() + last_frames, 0.0);
                }
            }
            Err(e) => return Err(damaged(e.to_string())),
        }
    }
    if last_short {
        return Err(cut_in_packet(&channels, rate));
    }
    let frames = channels.first().map_or(0, Vec::len);
    if bad > 0 {
        let why = first_bad.unwrap_or_default();
        if frames == 0 || bad as f64 > packets as f64 * MAX_DAMAGED_FRACTION {
            return Err(damaged(format!(
                "{bad} of {packets} packets do not decode (first {why})"
            )));
        }
        tracing::warn!(path = %path.display(), bad, packets, "damaged packets replaced by silence (first {why})");
    }
    if frames == 0 {
        return Err(DecodeError::Empty {
            path: path.to_owned(),
            container,
        });
    }
    // Half a second: encoders' padding and priming move the count by a frame or two.
    let slack = u64::from(rate / 2);
    if let Some(declared) = declared_frames.filter(|&d| (frames as u64) + slack < d) {
        return Err(truncated(format!(
            "the header announces {:.1} s but the file holds only {:.1} s",
            declared as f64 / f64::from(rate.max(1)),
            secs(&channels, rate)
        )));
    }
    if container == Container::Mp3 {
        let mut source = reader.into_inner();
        let cut = source
            .seek(SeekFrom::Start(0))
            .and_then(|_| mp3::cut_frame(&mut source));
        if let Ok(Some(at)) = cut {
            return Err(truncated(format!(
                "the file ends inside an MP3 frame at byte {at}, after {:.1} s of audio",
                secs(&channels, rate)
            )));
        }
    }
    Ok(WavAudio {
        sample_rate_hz: rate,
        channels,
    })
}

fn open<'s>(
    path: &Path,
    source: Box<dyn MediaSource + 's>,
    head: &[u8],
) -> Result<Opened<'s>, DecodeError> {
    let mss = MediaSourceStream::new(source, Default::default());
    let reader = symphonia::default::get_probe()
        .probe(
            &Hint::new(),
            mss,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(|e| match e {
            Error::Unsupported(_) => not_audio(path, head),
            Error::IoError(e) if e.kind() == ErrorKind::UnexpectedEof => not_audio(path, head),
            Error::IoError(source) => DecodeError::Open {
                path: path.to_owned(),
                source,
            },
            other => DecodeError::NotAudio {
                path: path.to_owned(),
                what: format!("not a recording callscribe can read ({other})"),
            },
        })?;
    let container = container_of(reader.format_info().short_name);
    let track = reader
        .default_track(TrackType::Audio)
        .ok_or_else(|| DecodeError::NotAudio {
            path: path.to_owned(),
            what: format!("{container} file without an audio track"),
        })?;
    let mut params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .cloned()
        .ok_or_else(|| DecodeError::NotAudio {
            path: path.to_owned(),
            what: format!("{container} file without an audio track"),
        })?;
    let Some(decoder) = codecs().get_audio_decoder(params.codec) else {
        return Err(unsupported_codec(
            path,
            container,
            codec_name(params.codec).to_owned(),
        ));
    };
    let codec = decoder.codec.info.short_name.to_owned();
    if params.codec == codec::CODEC_ID_OPUS
        && !params
            .sample_rate
            .is_some_and(|r| OPUS_RATES_HZ.contains(&r))
    {
        params.sample_rate = Some(48_000);
    }
    let channels = params.channels.as_ref().map_or(0, |c| c.count());
    if channels > usize::from(MAX_CHANNELS) {
        return Err(too_many_channels(path, container, channels));
    }
    let rate = params.sample_rate.unwrap_or(0);
    let duration_secs = match (track.num_frames, track.duration, track.time_base) {
        (Some(n), _, _) if rate > 0 => Some(n as f64 / f64::from(rate)),
        (_, Some(d), Some(tb)) => tb.calc_duration(d).map(|t| t.as_secs_f64()),
        _ => None,
    };
    let declared_frames = match container {
        Container::Wav | Container::Flac | Container::Mp4 => track.num_frames,
        _ => None,
    };
    let track_id = track.id;
    Ok(Opened {
        info: AudioInfo {
            container,
            codec,
            sample_rate_hz: rate,
            channels: channels as u16,
            duration_secs,
        },
        reader,
        track_id,
        params,
        declared_frames,
    })
}

fn too_many_channels(path: &Path, container: Container, n: usize) -> DecodeError {
    DecodeError::Unsupported {
        path: path.to_owned(),
        container,
        reason: format!("{n} channels (callscribe takes mono or two-channel agent/customer calls)"),
    }
}

fn container_of(short_name: &'static str) -> Container {
    match short_name {
        "wave" => Container::Wav,
        "mp3" => Container::Mp3,
        "flac" => Container::Flac,
        "ogg" => Container::Ogg,
        "matroska" | "mkv" => Container::Matroska,
        "isomp4" => Container::Mp4,
        "aac" => Container::Adts,
        other => Container::Other(other),
    }
}

/// Names of codecs a container may hold that no decoder here reads.
fn codec_name(id: AudioCodecId) -> &'static str {
    match id {
        codec::CODEC_ID_ADPCM_G722 => "G.722",
        codec::CODEC_ID_ADPCM_G726 | codec::CODEC_ID_ADPCM_G726LE => "G.726 ADPCM",
        codec::CODEC_ID_SPEEX => "Speex",
        codec::CODEC_ID_AC3 => "AC-3",
        codec::CODEC_ID_EAC3 => "E-AC-3",
        codec::CODEC_ID_DCA => "DTS",
        codec::CODEC_ID_WMA => "Windows Media Audio",
        codec::CODEC_ID_WAVPACK => "WavPack",
        codec::CODEC_ID_MONKEYS_AUDIO => "Monkey's Audio",
        codec::CODEC_ID_TRUEHD => "TrueHD",
        _ => "an unknown codec",
    }
}

#[cfg(test)]
mod tests {
    use super::super::decode_bytes;

    /// Found by the `wav` fuzz target: junk before a RIFF header that names 65535 channels of
    /// 16-bit PCM. Not sniffed as WAV, so symphonia probes it, and its `fmt ` reader overflowed
    /// computing the block size (a panic wherever overflow checks are on, as in tests).
    #[test]
    fn a_decoder_panic_on_crafted_input_is_a_damaged_file() {
        let mut bytes = b"RIFXRIFF\x28\0\0\0WAVEfmt \x10\0\0\0".to_vec();
        bytes.extend_from_slice(&[1, 0, 0xFF, 0xFF, 0x40, 0x1F, 0, 0, 0x80, 0x3E, 0, 0, 2, 0]);
        bytes.extend_from_slice(b"\x10\0data\x04\0\0\0\0\0\0\0");
        assert_eq!(bytes.len(), 52);
        let err = decode_bytes("crafted", bytes).expect_err("65535 channels are refused");
        assert!(err.to_string().starts_with("crafted: "), "{err}");
    }
}
