//! Voice activity segmentation on real files: utterance boundaries against the fixtures'
//! known speech extents, and silence yielding nothing.

use crate::common;

use callscribe::audio::resample::resample_all;
use callscribe::audio::wav::read_wav;
use callscribe::segment::{segment_all, VadConfig};
use common::{fixture, Reference};

/// Every reference utterance is covered by detected speech whose edges lie within
/// `tolerance_ms` of the reference's (padding included), and nothing is detected far from speech.
fn check_boundaries(rel: &str, tolerance_ms: u64) {
    let path = fixture(rel);
    let reference = Reference::of(&path);
    let audio = read_wav(&path).unwrap();
    let vad = common::vad();
    for (ch, samples) in audio.channels.iter().enumerate() {
        let samples = resample_all(samples, audio.sample_rate_hz).unwrap();
        let found = segment_all(&vad, ch as u32, &samples);
        let refs: Vec<_> = reference
            .utterances
            .iter()
            .filter(|u| u.channel == ch as u32)
            .collect();
        assert!(!found.is_empty(), "{rel} channel {ch}: no speech found");
        for r in &refs {
            let overlapping: Vec<_> = found
                .iter()
                .filter(|u| u.start.as_ms() < r.end_ms && u.end().as_ms() > r.start_ms)
                .collect();
            assert!(
                !overlapping.is_empty(),
                "{rel} ch{ch}: nothing detected for {:?}",
                r.text
            );
            let start = overlapping.iter().map(|u| u.start.as_ms()).min().unwrap();
            let end = overlapping.iter().map(|u| u.end().as_ms()).max().unwrap();
            assert!(
                start.abs_diff(r.start_ms) <= tolerance_ms
                    && end.abs_diff(r.end_ms) <= tolerance_ms,
                "{rel} ch{ch}: {:?} detected {start}–{end} ms, reference {}–{} ms",
                r.text,
                r.start_ms,
                r.end_ms
            );
        }
        for u in &found {
            let near = refs.iter().any(|r| {
                u.start.as_ms() < r.end_ms + tolerance_ms
                    && u.end().as_ms() + tolerance_ms > r.start_ms
            });
            assert!(
                near,
                "{rel} ch{ch}: speech detected at {}–{} ms where there is none",
                u.start.as_ms(),
                u.end().as_ms()
            );
        }
    }
}

#[test]
fn english_call_utterances_are_found_within_300_ms_of_their_boundaries() {
    check_boundaries("calls/en_call_16k.wav", 300);
}

#[test]
fn telephony_band_8k_call_keeps_its_boundaries() {
    check_boundaries("calls/en_call_8k.wav", 300);
}

#[test]
fn mandarin_call_utterances_are_found() {
    check_boundaries("calls/zh_call_8k.wav", 300);
}

#[test]
fn real_speech_is_found_and_the_noise_clip_is_not_speech() {
    check_boundaries("real/alsa_voices_48k.wav", 300);
}

#[test]
fn silence_and_line_noise_yield_no_utterances() {
    let audio = read_wav(&fixture("calls/silence_16k.wav")).unwrap();
    let found = segment_all(&common::vad(), 0, &audio.channels[0]);
    assert!(
        found.is_empty(),
        "found {} utterances in silence",
        found.len()
    );
}

#[test]
fn long_speech_is_cut_below_the_maximum_at_a_quiet_point() {
    // The English call's agent channel without its pauses is one long monologue.
    let audio = read_wav(&fixture("calls/en_call_16k.wav")).unwrap();
    let reference = Reference::of(&fixture("calls/en_call_16k.wav"));
    let mut speech = Vec::new();
    for u in reference.utterances.iter().filter(|u| u.channel == 0) {
        speech.extend_from_slice(
            &audio.channels[0][u.start_ms as usize * 16..u.end_ms as usize * 16],
        );
    }
    let vad = common::vad().with_config(VadConfig {
        max_utterance_ms: 6000,
        ..VadConfig::default()
    });
    let found = segment_all(&vad, 0, &speech);
    assert!(found.len() >= 3, "{} pieces", found.len());
    for u in &found {
        assert!(
            u.samples.len() <= 6000 * 16 + callscribe::segment::FRAME_SAMPLES,
            "piece of {} ms",
            u.samples.len() / 16
        );
    }
    // Pieces are contiguous: nothing is lost at a cut.
    for w in found.windows(2) {
        if w[0].cut == callscribe::segment::Cut::MaxLength {
            assert_eq!(w[0].end(), w[1].start);
        }
    }
}

/// A live call feeds the segmenter in whatever chunks the network brings; the decisions must
/// be those of the whole file at once (Silero's state carries across chunks).
#[test]
fn chunk_by_chunk_gives_the_utterances_of_the_whole_file() {
    use callscribe::segment::{SegmentEvent, Segmenter};
    let audio = read_wav(&fixture("conditions/hold_music_8k.wav")).unwrap();
    let samples = resample_all(&audio.channels[0], audio.sample_rate_hz).unwrap();
    let vad = common::vad();
    let whole = segment_all(&vad, 0, &samples);
    assert!(!whole.is_empty());
    let mut seg = Segmenter::new(&vad, 0);
    let mut events = Vec::new();
    let mut rng = fastrand::Rng::with_seed(5);
    let mut rest = samples.as_slice();
    while !rest.is_empty() {
        let n = rng.usize(1..4000).min(rest.len());
        seg.push(&rest[..n], &mut events);
        rest = &rest[n..];
    }
    seg.finish(&mut events);
    let chunked: Vec<_> = events
        .into_iter()
        .filter_map(|e| match e {
            SegmentEvent::Utterance(u) => Some(u),
            SegmentEvent::SpeechStart { .. } => None,
        })
        .collect();
    assert_eq!(chunked.len(), whole.len());
    for (a, b) in chunked.iter().zip(&whole) {
        assert_eq!((a.start, a.end()), (b.start, b.end()));
        assert_eq!(a.samples, b.samples);
        assert_eq!(a.scores, b.scores);
    }
}
