//! Input nobody should send, sent anyway (issue #17): float recordings whose samples are NaN
//! or infinite, at the rates that go through the resampler and the one that does not. Each
//! front door that reads recordings (a file, a folder, the gRPC `Transcribe` RPC) transcribes
//! the speech around them, says how many samples it silenced, and goes on with other files.
//! Real files, real binary, real tiny.en.

use crate::common::grpc::{client, settings, start};
use crate::common::{callscribe, fixture};
use callscribe::proto::v1 as pb;
use callscribe::wer::word_error_rate;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The first three ALSA prompts ("front center", "front left", "front right"), mono, as 32-bit
/// float at `rate`, with `bad` samples every 137th sample from 0.2 s on replaced by NaN, +∞
/// and −∞ in turn (in speech and in the pauses alike).
fn float_clip(dir: &Path, name: &str, rate: u32, bad: usize) -> PathBuf {
    let clean = tempfile::Builder::new().suffix(".wav").tempfile().unwrap();
    let clean = clean.path();
    let status = Command::new("sox")
        .arg(fixture("real/alsa_voices_48k.wav"))
        .args(["-e", "floating-point", "-b", "32", "-c", "1", "-r"])
        .arg(rate.to_string())
        .arg(clean)
        .args(["trim", "0", "6.3"])
        .status()
        .expect("sox (scripts/setup.sh installs it)");
    assert!(status.success());
    let mut reader = hound::WavReader::open(clean).unwrap();
    let spec = reader.spec();
    assert_eq!(spec.sample_format, hound::SampleFormat::Float);
    let mut samples: Vec<f32> = reader.samples::<f32>().map(Result::unwrap).collect();
    let from = rate as usize / 5;
    for k in 0..bad {
        samples[from + k * 137] = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY][k % 3];
    }
    let path = dir.join(name);
    let mut w = hound::WavWriter::create(&path, spec).unwrap();
    for s in samples {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
    path
}

const SAID: &str = "front center front left front right";

fn text(t: &serde_json::Value) -> String {
    t["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["text"].as_str().unwrap())
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn nan_and_infinite_samples_are_silenced_and_counted_and_the_folder_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let calls = dir.path().join("calls");
    std::fs::create_dir(&calls).unwrap();
    // 44.1 kHz goes through the resampler (where a NaN panicked rubato); 16 kHz goes straight
    // to the VAD and whisper (where it decoded as "!!!!").
    float_clip(&calls, "nan_44k.wav", 44_100, 300);
    float_clip(&calls, "nan_16k.wav", 16_000, 300);
    std::fs::copy(
        fixture("real/alsa_voices_48k.wav"),
        calls.join("clean_48k.wav"),
    )
    .unwrap();
    let out = dir.path().join("out");
    let run = callscribe()
        .args([
            "transcribe",
            "--model",
            "tiny.en",
            "--language",
            "en",
            "--format",
            "json",
        ])
        .arg(&calls)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for name in ["nan_44k", "nan_16k"] {
        let t: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join(format!("{name}.json"))).unwrap())
                .unwrap_or_else(|e| panic!("{name}: {e}\n{stderr}"));
        let got = text(&t);
        assert!(!got.contains("!!"), "{name}: {got}");
        let wer = word_error_rate(SAID, &got);
        assert!(wer <= 0.34, "{name}: WER {wer:.2}: {got}");
        let notes = t["notes"].to_string();
        assert!(
            notes.contains("300 sample(s) were not numbers"),
            "{name}: {notes}"
        );
    }
    // The clean recording beside them is transcribed as usual.
    let clean: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("clean_48k.json")).unwrap()).unwrap();
    assert!(text(&clean).to_lowercase().contains("side"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcribe_rpc_silences_nan_samples_and_answers() {
    let dir = tempfile::tempdir().unwrap();
    let wav = float_clip(dir.path(), "nan.wav", 44_100, 300);
    let handle = start(settings(2)).await;
    let mut c = client(&handle).await;
    let reply = c
        .transcribe(pb::TranscribeRequest {
            wav: std::fs::read(&wav).unwrap(),
            config: Some(pb::StreamingConfig {
                call_id: "nan".into(),
                language: "en".into(),
                model: "tiny.en".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("a float recording with NaN samples is transcribed")
        .into_inner();
    let got = reply
        .results
        .iter()
        .map(|r| r.text.trim())
        .collect::<Vec<_>>()
        .join(" ");
    assert!(!got.contains("!!"), "{got}");
    let wer = word_error_rate(SAID, &got);
    assert!(wer <= 0.34, "WER {wer:.2}: {got}");
    handle.shutdown();
    handle.stopped().await.unwrap();
}
