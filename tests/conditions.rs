//! Real call audio must not turn into confident nonsense (issue #15): hold music, key tones,
//! hum and line noise between utterances, echo between the channels, stereo files whose two
//! channels are the same audio, and both parties talking at once — each in the batch
//! pipeline, as a user runs it (base, language identified, dialect adapters on), and in live
//! calls over gRPC. The fixtures are `audio-fixtures/conditions/` (generate.py conditions).

mod common;

use callscribe::audio::codec::Encoding;
use callscribe::dialect::Dialects;
use callscribe::engine::DecodeConfig;
use callscribe::metrics::{char_error_rate, word_error_rate};
use callscribe::pipeline::RecordingOptions;
use callscribe::transcript::{LanguageSource, Transcript};
use common::grpc::*;
use common::{engine, fixture, transcribe_recording, Reference};
use std::sync::Arc;

fn shipped_dialects() -> Arc<Dialects> {
    Arc::new(Dialects::load(&Default::default(), &|_: &str| true).expect("shipped adapters"))
}

/// What a user gets from `callscribe transcribe FILE` with the defaults: base, the language
/// identified, the shipped adapters.
fn transcribe_as_shipped(rel: &str) -> (Transcript, Reference) {
    transcribe(rel, "base", "auto")
}

fn transcribe(rel: &str, model: &str, language: &str) -> (Transcript, Reference) {
    let path = fixture(rel);
    let opts = RecordingOptions {
        vad: Some(common::vad()),
        ..Default::default()
    };
    let decode = DecodeConfig {
        language: language.into(),
        ..DecodeConfig::default()
    };
    let dialects = Some(shipped_dialects());
    let t = transcribe_recording(
        &path,
        &engine(model),
        1,
        &decode,
        dialects,
        &opts,
        &mut |_| {},
    )
    .unwrap_or_else(|e| panic!("{rel}: {e}"));
    (t, Reference::of(&path))
}

fn overlap(a: (u64, u64), b: (u64, u64)) -> u64 {
    a.1.min(b.1).saturating_sub(a.0.max(b.0))
}

/// Every segment lies on speech of its own channel (on a mixed transcript, any channel's):
/// at least half of it, or 300 ms, overlaps a reference utterance.
fn assert_only_speech(t: &Transcript, r: &Reference, rel: &str) {
    let mixed = t.channels.len() == 1;
    for s in &t.segments {
        let best = r
            .utterances
            .iter()
            .filter(|u| mixed || u.channel == s.channel)
            .map(|u| overlap((s.start_ms, s.end_ms), (u.start_ms, u.end_ms)))
            .max()
            .unwrap_or(0);
        let len = s.end_ms - s.start_ms;
        assert!(
            best * 2 >= len || best >= 300,
            "{rel}: segment outside speech of channel {}: {s:?}",
            s.channel
        );
    }
}

fn text(t: &Transcript) -> String {
    t.segments
        .iter()
        .map(|s| s.text.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn hold_music_tones_and_hum_give_no_text_and_do_not_make_an_english_call_chinese() {
    let rel = "conditions/hold_music_8k.wav";
    let (t, r) = transcribe_as_shipped(rel);
    assert_eq!(t.language, "en", "{:?}\n{}", t.language_source, text(&t));
    assert!(
        matches!(t.language_source, LanguageSource::Detected { probability } if probability >= 0.35),
        "{:?}",
        t.language_source
    );
    assert_only_speech(&t, &r, rel);
    let all = text(&t);
    assert!(
        !all.chars().any(|c| c as u32 >= 0x2E80),
        "Chinese in an English call: {all}"
    );
    let wer = word_error_rate(&r.all_text(), &all);
    assert!(wer <= 0.35, "WER {wer:.3}: {all}");
}

#[test]
fn a_mandarin_call_with_hold_music_stays_mandarin() {
    let rel = "conditions/zh_hold_music_8k.wav";
    let (t, r) = transcribe_as_shipped(rel);
    assert_eq!(t.language, "zh", "{:?}", t.language_source);
    assert_only_speech(&t, &r, rel);
    let cer = char_error_rate(&r.all_text(), &text(&t));
    assert!(cer <= 0.5, "CER {cer:.3}: {}", text(&t));
}

#[test]
fn music_tones_hum_and_line_noise_alone_give_an_empty_transcript() {
    for rel in [
        "conditions/music_only_8k.wav",
        "conditions/dtmf_hum_noise_8k.wav",
        "calls/silence_16k.wav",
    ] {
        let (t, _) = transcribe_as_shipped(rel);
        assert!(t.segments.is_empty(), "{rel}: {:?}", t.segments);
        assert_eq!(t.language_source, LanguageSource::NoSpeech, "{rel}");
    }
}

/// Each reference utterance has its words once: on a mixed transcript, the segments that
/// overlap it hold its text once, not twice.
#[test]
fn stereo_files_with_the_same_audio_on_both_channels_are_transcribed_once() {
    for rel in [
        "conditions/same_channels_8k.wav",
        "conditions/same_channels_16k.wav",
    ] {
        let (t, r) = transcribe(rel, "base", "en");
        assert_eq!(t.channels.len(), 1, "{rel}: {:?}", t.channels);
        assert!(
            t.notes.iter().any(|n| n.contains("same audio")),
            "{rel}: {:?}",
            t.notes
        );
        assert_only_speech(&t, &r, rel);
        let wer = word_error_rate(&r.all_text(), &text(&t));
        assert!(wer <= 0.3, "{rel}: WER {wer:.3}: {}", text(&t));
    }
}

/// The same sentence on both channels at the same time (by its words), as echo gives.
fn duplicates_across_channels(segments: &[(u32, u64, u64, String)]) -> Vec<String> {
    let words = |t: &str| -> Vec<String> {
        t.split_whitespace()
            .map(|w| {
                w.chars()
                    .filter(|c| c.is_alphanumeric())
                    .flat_map(char::to_lowercase)
                    .collect()
            })
            .filter(|w: &String| !w.is_empty())
            .collect()
    };
    let mut found = Vec::new();
    for (i, a) in segments.iter().enumerate() {
        for b in &segments[i + 1..] {
            if a.0 == b.0 || overlap((a.1, a.2 + 1000), (b.1, b.2 + 1000)) == 0 {
                continue;
            }
            let (wa, wb) = (words(&a.3), words(&b.3));
            let shared = wa.iter().filter(|w| w.len() > 2 && wb.contains(w)).count();
            let shorter = wa.len().min(wb.len()).max(1);
            if shorter >= 3 && shared * 2 > shorter {
                found.push(format!("{:?} / {:?}", a.3, b.3));
            }
        }
    }
    found
}

/// Whisper's segment times inside a packed window can come a second or so early: on
/// echo_18db the agent's "I'm sorry to hear that." was timed into the pause before it. This
/// test is about whose speech a segment is, not its time to the word.
const PACKED_DRIFT_MS: u64 = 1500;

/// No sentence on both channels: every segment lies on speech (either party's, give or take
/// [`PACKED_DRIFT_MS`]), no sentence appears on both channels at the same time, and each
/// channel's text matches its own reference.
fn assert_channels_apart(t: &Transcript, r: &Reference, rel: &str) {
    assert_eq!(t.channels.len(), 2, "{rel}");
    for s in &t.segments {
        let near_speech = r.utterances.iter().any(|u| {
            overlap(
                (s.start_ms, s.end_ms),
                (
                    u.start_ms.saturating_sub(PACKED_DRIFT_MS),
                    u.end_ms + PACKED_DRIFT_MS,
                ),
            ) > 0
        });
        assert!(near_speech, "{rel}: segment outside speech: {s:?}");
    }
    let segments: Vec<_> = t
        .segments
        .iter()
        .map(|s| (s.channel, s.start_ms, s.end_ms, s.text.clone()))
        .collect();
    let dups = duplicates_across_channels(&segments);
    assert!(dups.is_empty(), "{rel}: said on both channels: {dups:?}");
    for ch in 0..2 {
        let mine: String = t
            .segments
            .iter()
            .filter(|s| s.channel == ch)
            .map(|s| s.text.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let wer = word_error_rate(&r.channel_text(ch), &mine);
        assert!(wer <= 0.35, "{rel} channel {ch}: WER {wer:.3}: {mine}");
    }
}

#[test]
fn echo_between_the_channels_is_transcribed_only_where_it_was_spoken() {
    for db in [18, 24, 30] {
        let rel = format!("conditions/echo_{db}db_8k.wav");
        let (t, r) = transcribe(&rel, "base", "en");
        assert_channels_apart(&t, &r, &rel);
    }
}

#[test]
fn both_parties_talking_at_once_are_both_kept() {
    let rel = "conditions/overlap_8k.wav";
    let (t, r) = transcribe(rel, "base", "en");
    assert_channels_apart(&t, &r, rel);
    // The overlapping utterances are each covered on their own channel.
    for u in &r.utterances {
        assert!(
            t.segments.iter().any(|s| s.channel == u.channel
                && overlap((s.start_ms, s.end_ms), (u.start_ms, u.end_ms)) > 0),
            "{rel}: {u:?} lost"
        );
    }
}

/// Live calls apply the same rules as they stream: echo and a duplicated channel give no
/// finals on the wrong channel, and nothing is said twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_calls_drop_echo_and_duplicate_channels_as_they_stream() {
    let handle = start(settings(4)).await;
    let mut client = client(&handle).await;
    for rel in [
        "conditions/echo_24db_8k.wav",
        "conditions/same_channels_8k.wav",
    ] {
        let path = fixture(rel);
        let r = Reference::of(&path);
        let (mut cfg, chunks) = call_audio(&path, rel, Encoding::Linear16, 100);
        cfg.model = "base".into();
        cfg.language = "en".into();
        let outcome = stream_call(&mut client, cfg, chunks, None).await;
        assert!(outcome.status.is_none(), "{rel}: {:?}", outcome.status);
        let finals = outcome.finals();
        assert!(!finals.is_empty(), "{rel}: no finals");
        for f in &finals {
            // Same-audio channels: channel 1's copy is dropped, so everything is on 0. Live
            // calls decode one utterance at a time, so their times are the utterance's own.
            let best = r
                .utterances
                .iter()
                .filter(|u| u.channel == f.channel)
                .map(|u| overlap((f.start_ms, f.end_ms), (u.start_ms, u.end_ms)))
                .max()
                .unwrap_or(0);
            assert!(
                best * 2 >= f.end_ms - f.start_ms,
                "{rel}: final on channel {} off its own speech: {f:?}",
                f.channel
            );
        }
        let segments: Vec<_> = finals
            .iter()
            .map(|f| (f.channel, f.start_ms, f.end_ms, f.text.clone()))
            .collect();
        let dups = duplicates_across_channels(&segments);
        assert!(dups.is_empty(), "{rel}: said on both channels: {dups:?}");
        // Live finals decode each utterance alone in a fitted window: less accurate than the
        // batch pipeline on these noisy 8 kHz lines (0.40 on echo_24db here), hence the bound.
        let all: String = finals
            .iter()
            .map(|f| f.text.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let wer = word_error_rate(&r.all_text(), &all);
        assert!(wer <= 0.5, "{rel}: WER {wer:.3}: {all}");
    }
    handle.shutdown();
    handle.stopped().await.expect("clean stop");
}
