//! The `callscribe` binary as a user runs it: batches with bad files, output formats, model
//! errors. Real binary, real models, real files.

use crate::common;

use callscribe::transcript::Transcript;
use common::{callscribe, fixture, model_path};
use std::path::Path;

fn stderr_errors(out: &std::process::Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.starts_with("error:"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_folder_with_bad_files_reports_each_in_one_line_and_finishes_the_rest() {
    model_path("tiny.en");
    let dir = tempfile::tempdir().unwrap();
    let calls = dir.path().join("calls");
    std::fs::create_dir_all(calls.join("monday")).unwrap();
    std::fs::copy(
        fixture("real/alsa_voices_48k.wav"),
        calls.join("voices.wav"),
    )
    .unwrap();
    std::fs::copy(
        fixture("calls/silence_16k.wav"),
        calls.join("monday/silence.wav"),
    )
    .unwrap();
    let good = std::fs::read(fixture("calls/en_call_8k.wav")).unwrap();
    std::fs::write(calls.join("monday/truncated.wav"), &good[..good.len() / 3]).unwrap();
    std::fs::write(
        calls.join("notes.wav"),
        "call notes: customer wants a refund\n",
    )
    .unwrap();
    let out_dir = dir.path().join("out");

    let out = callscribe()
        .args(["transcribe", "--model", "tiny.en", "--format", "json", "-o"])
        .arg(&out_dir)
        .arg(&calls)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "exit status; stderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let errors = stderr_errors(&out);
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("truncated.wav") && e.contains("truncated")),
        "{errors:#?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("notes.wav") && e.contains("not a WAV")),
        "{errors:#?}"
    );

    let voices: Transcript =
        serde_json::from_slice(&std::fs::read(out_dir.join("voices.json")).unwrap()).unwrap();
    assert!(voices.segments.len() >= 6, "{:?}", voices.segments);
    assert!(voices
        .segments
        .iter()
        .any(|s| s.text.to_lowercase().contains("front")));
    let silence: Transcript =
        serde_json::from_slice(&std::fs::read(out_dir.join("monday/silence.json")).unwrap())
            .unwrap();
    assert!(silence.segments.is_empty());
    assert!(!out_dir.join("monday/truncated.json").exists());
    assert!(!out_dir.join("notes.json").exists());
}

#[test]
fn one_file_prints_srt_or_vtt_to_stdout() {
    model_path("tiny.en");
    // VTT names the dialect adapter in a NOTE block before the first cue.
    for (format, head) in [
        ("srt", "1\n00:00:0"),
        (
            "vtt",
            "WEBVTT\n\nNOTE dialect adapter english 1.0.0 (configured language en)\n\n00:00:0",
        ),
    ] {
        let out = callscribe()
            .args(["transcribe", "--model", "tiny.en", "--format", format])
            .arg(fixture("real/alsa_voices_48k.wav"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.starts_with(head), "{format}:\n{text}");
        assert!(text.contains(" --> "), "{text}");
        assert!(text.to_lowercase().contains("side"), "{text}");
    }
}

#[test]
fn channels_can_be_relabelled_or_mixed() {
    model_path("tiny.en");
    let run = |channels: &str| -> Transcript {
        let out = callscribe()
            .args([
                "transcribe",
                "--model",
                "tiny.en",
                "--format",
                "json",
                "--channels",
                channels,
            ])
            .arg(fixture("calls/en_call_8k.wav"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let swapped = run("customer,agent");
    let first = &swapped.segments[0];
    assert_eq!(
        (first.channel, first.role.as_str()),
        (0, "customer"),
        "channel 0 relabelled"
    );
    let mixed = run("mix");
    assert_eq!(mixed.channels.len(), 1);
    assert!(mixed
        .segments
        .iter()
        .all(|s| s.channel == 0 && s.role.as_str() == "mixed"));
    assert!(mixed.segments.len() >= 6, "{:?}", mixed.segments);
}

fn corrupt_copy(dir: &Path, keep: usize) -> std::path::PathBuf {
    let bytes = std::fs::read(model_path("tiny.en")).unwrap();
    let p = dir.join("ggml-broken.bin");
    std::fs::write(&p, &bytes[..keep]).unwrap();
    p
}

#[test]
fn a_truncated_or_corrupt_model_is_a_one_line_error_naming_the_file_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    for keep in [2_000_000, 100] {
        let model = corrupt_copy(dir.path(), keep);
        let out = callscribe()
            .args(["transcribe", "--model"])
            .arg(&model)
            .arg(fixture("calls/silence_16k.wav"))
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(1),
            "must exit normally with 1, not die of a signal"
        );
        let errors = stderr_errors(&out);
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert!(
            errors[0].contains(&model.display().to_string()) && errors[0].contains("truncated"),
            "{}",
            errors[0]
        );
    }
    let text = dir.path().join("ggml-text.bin");
    std::fs::write(&text, "not a model at all").unwrap();
    let out = callscribe()
        .args(["transcribe", "--model"])
        .arg(&text)
        .arg(fixture("calls/silence_16k.wav"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_errors(&out)[0].contains("not a whisper ggml model"),
        "{:?}",
        stderr_errors(&out)
    );
}

#[test]
fn bad_language_and_unknown_model_fail_fast_with_a_clear_message() {
    model_path("tiny.en");
    let out = callscribe()
        .args(["transcribe", "--model", "tiny.en", "--language", "zh"])
        .arg(fixture("calls/silence_16k.wav"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_errors(&out)[0].contains("English-only"),
        "{:?}",
        stderr_errors(&out)
    );

    let out = callscribe()
        .args(["transcribe", "--model", "huge-v9"])
        .arg(fixture("calls/silence_16k.wav"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let e = &stderr_errors(&out)[0];
    assert!(
        e.contains("unknown model 'huge-v9'") && e.contains("tiny.en"),
        "{e}"
    );
}

#[test]
fn models_list_shows_installed_models_and_their_origin() {
    model_path("tiny.en");
    let out = callscribe().args(["models", "list"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("tiny.en"))
        .unwrap();
    assert!(line.contains("installed"), "{text}");
    assert!(text.contains("base"), "{text}");
}

/// `keys new`: a key once, then a table that a config accepts and that authenticates exactly
/// that key; for a tenant already configured, the hash to add to its table instead (a second
/// table of the same id would be refused); a bad tenant id is one error line.
#[test]
fn keys_new_prints_a_key_once_and_config_that_accepts_only_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = callscribe()
        .args([
            "keys",
            "new",
            "--tenant",
            "acme",
            "--max-concurrent-calls",
            "3",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let (key, toml) = stdout.split_once('\n').unwrap();
    let cfg_path = dir.path().join("c.toml");
    std::fs::write(&cfg_path, toml).unwrap();
    let cfg = callscribe::config::Config::load(Some(&cfg_path)).expect("the printed table loads");
    assert_eq!(cfg.tenants.len(), 1);
    assert_eq!(cfg.tenants[0].max_concurrent_calls, 3);
    let tenants = callscribe::server::auth::Tenants::new(&cfg.tenants).unwrap();
    assert_eq!(
        tenants.by_key(key).expect("the key authenticates").id,
        "acme"
    );
    assert!(tenants.by_key(&format!("{key}x")).is_none());
    assert!(!toml.contains(key));

    // Again for the configured tenant: a hash to add, not a second table.
    let out = callscribe()
        .args(["--config", cfg_path.to_str().unwrap()])
        .args(["keys", "new", "--tenant", "acme"])
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let (second, rest) = stdout.split_once('\n').unwrap();
    assert_ne!(second, key);
    assert!(
        rest.contains("already configured") && !rest.contains("[[tenants]]"),
        "{rest}"
    );
    assert!(
        rest.contains(&callscribe::server::auth::key_hash(second)),
        "{rest}"
    );

    let out = callscribe()
        .args(["keys", "new", "--tenant", "acme corp"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let errors = stderr_errors(&out);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("--tenant"), "{errors:?}");
    assert!(out.stdout.is_empty(), "no key for a bad tenant");
}
