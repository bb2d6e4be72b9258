//! Property tests on stable for the two decoders every call's audio passes through: the
//! telephony frame codec and the WAV reader. Random bytes never panic them; random valid
//! input decodes to exactly the samples written.

use callscribe::audio::codec::{self, Encoding};
use callscribe::audio::wav::read_wav_bytes;
use proptest::prelude::*;
use std::io::Cursor;
use std::path::Path;

fn encoding() -> impl Strategy<Value = Encoding> {
    prop_oneof![
        Just(Encoding::Linear16),
        Just(Encoding::Mulaw),
        Just(Encoding::Alaw)
    ]
}

proptest! {
    #[test]
    fn codec_decodes_every_whole_sample_into_range(encoding in encoding(), bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let mut out = Vec::new();
        codec::decode(encoding, &bytes, &mut out);
        prop_assert_eq!(out.len(), bytes.len() / encoding.bytes_per_sample());
        prop_assert!(out.iter().all(|s| (-1.0..=1.0).contains(s)));
    }

    #[test]
    fn linear16_round_trips_exactly(samples in proptest::collection::vec(any::<i16>(), 0..1024)) {
        let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        let mut decoded = Vec::new();
        codec::decode(Encoding::Linear16, &bytes, &mut decoded);
        let mut encoded = Vec::new();
        codec::encode(Encoding::Linear16, &decoded, &mut encoded);
        prop_assert_eq!(encoded, bytes);
    }

    #[test]
    fn g711_codes_survive_decode_and_encode(encoding in prop_oneof![Just(Encoding::Mulaw), Just(Encoding::Alaw)], codes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut decoded = Vec::new();
        codec::decode(encoding, &codes, &mut decoded);
        let mut again = Vec::new();
        codec::encode(encoding, &decoded, &mut again);
        // μ-law has two zeros (0x7F, 0xFF); every other code is its own.
        let canonical = |c: u8| if encoding == Encoding::Mulaw && c == 0x7F { 0xFF } else { c };
        prop_assert_eq!(
            again.iter().map(|&c| canonical(c)).collect::<Vec<_>>(),
            codes.iter().map(|&c| canonical(c)).collect::<Vec<_>>()
        );
    }

    #[test]
    fn wav_reader_refuses_or_reads_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(audio) = read_wav_bytes(Path::new("random.wav"), &bytes) {
            let frames = audio.channels[0].len();
            prop_assert!(audio.channels.iter().all(|c| c.len() == frames));
        }
    }

    #[test]
    fn wav_reader_returns_every_sample_written(
        channels in 1u16..=2,
        format in 0usize..5,
        sample_rate in 8_000u32..=48_000,
        raw in proptest::collection::vec(any::<i32>(), 1..400),
    ) {
        let (bits, float) = [(8, false), (16, false), (24, false), (32, false), (32, true)][format];
        let spec = hound::WavSpec {
            channels,
            sample_rate,
            bits_per_sample: bits,
            sample_format: if float { hound::SampleFormat::Float } else { hound::SampleFormat::Int },
        };
        let frames = raw.len().div_ceil(usize::from(channels));
        let n = frames * usize::from(channels);
        let mut cursor = Cursor::new(Vec::new());
        let mut expected = vec![Vec::new(); usize::from(channels)];
        {
            let mut writer = hound::WavWriter::new(&mut cursor, spec).unwrap();
            for i in 0..n {
                let r = raw[i % raw.len()];
                let sample = if float {
                    let s = r as f32 / i32::MAX as f32;
                    writer.write_sample(s).unwrap();
                    s
                } else {
                    let s = r >> (32 - bits);
                    writer.write_sample(s).unwrap();
                    s as f32 / (1u64 << (bits - 1)) as f32
                };
                expected[i % usize::from(channels)].push(sample);
            }
            writer.finalize().unwrap();
        }
        let audio = read_wav_bytes(Path::new("written.wav"), cursor.get_ref()).unwrap();
        prop_assert_eq!(audio.sample_rate_hz, sample_rate);
        prop_assert_eq!(audio.channels, expected);
    }
}
