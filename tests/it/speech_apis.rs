//! The drop-in speech services (issue #19) driven by the vendors' own client libraries against
//! the real `callscribe serve` with the real base model: google-cloud-speech's `SpeechClient`
//! over a `SpeechGrpcTransport`, nvidia-riva-client's `ASRService`, and grpcio-reflection's
//! client (reflection v1alpha). `tests/python/speech_clients.py` runs them and prints what
//! the libraries hand their users, one JSON line per result.
//!
//! The interpreter is `$CALLSCRIBE_TEST_PYTHON`; `scripts/test.sh` installs the packages.
//! Without them these tests fail, naming what is missing.

use crate::common::{fixture, repo, Reference};
use crate::grpc_python::{json_lines, Server};
use callscribe::wer::{char_error_rate, word_error_rate};
use serde_json::Value;
use std::process::{Command, Output, Stdio};

/// As the native wire test: base on the 8 kHz call.
const MAX_WER: f64 = 0.35;
/// As the Mandarin 8 kHz recording tests.
const MAX_CER: f64 = 0.5;

fn clients(server: &Server, args: &[&str]) -> Output {
    let check = Command::new(&server.python)
        .args([
            "-c",
            "import google.cloud.speech, riva.client, grpc_reflection",
        ])
        .output()
        .expect("running the test Python");
    assert!(
        check.status.success(),
        "`{}` lacks the speech client libraries (scripts/test.sh installs google-cloud-speech, \
         nvidia-riva-client and grpcio-reflection):\n{}",
        server.python,
        String::from_utf8_lossy(&check.stderr)
    );
    Command::new(&server.python)
        .arg(repo().join("tests/python/speech_clients.py"))
        .args(["--server", &server.addr])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running tests/python/speech_clients.py")
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

fn n(v: &Value, key: &str) -> i64 {
    v[key].as_i64().unwrap_or(0)
}

/// The finals' text of one channel tag, in order.
fn finals_of(lines: &[Value], tag: i64) -> String {
    lines
        .iter()
        .filter(|l| l["is_final"] == Value::Bool(true) && n(l, "channel_tag") == tag)
        .map(|l| s(l, "transcript"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The error line of a client that failed on an RPC: its code and message.
fn error_of(server: &Server, out: &Output) -> (String, String) {
    assert_eq!(out.status.code(), Some(2), "{}", server.report(out));
    let lines = json_lines(server, out);
    let e = &lines.last().expect("an error line")["error"];
    (s(e, "code").to_owned(), s(e, "details").to_owned())
}

#[test]
fn google_streaming_a_two_channel_mulaw_call_gives_interims_and_per_channel_finals() {
    let wav = fixture("calls/en_call_8k.wav");
    let reference = Reference::of(&wav);
    let server = Server::start_with(&[]);
    let call_id = "google-call-1";
    let out = clients(
        &server,
        &[
            "google-stream",
            "--wav",
            wav.to_str().unwrap(),
            "--encoding",
            "mulaw",
            "--language",
            "en-US",
            "--separate",
            "--interim",
            "--realtime",
            "--words",
            "--call-id",
            call_id,
        ],
    );
    let report = server.report(&out);
    assert!(out.status.success(), "{report}");
    let lines = json_lines(&server, &out);
    let interims: Vec<&Value> = lines
        .iter()
        .filter(|l| l["is_final"] == Value::Bool(false))
        .collect();
    assert!(
        !interims.is_empty(),
        "interim_results gave no interim\n{report}"
    );
    for i in &interims {
        let stability = i["stability"].as_f64().unwrap();
        assert!(
            (0.0..=1.0).contains(&stability),
            "stability {stability}\n{report}"
        );
        assert!([1, 2].contains(&n(i, "channel_tag")), "{i}\n{report}");
    }
    for (tag, channel) in [(1, 0), (2, 1)] {
        let text = finals_of(&lines, tag);
        let wer = word_error_rate(&reference.channel_text(channel), &text);
        eprintln!("channel_tag {tag}: WER {wer:.3}: {text}");
        assert!(
            wer <= MAX_WER,
            "channel_tag {tag}: WER {wer:.3}: {text}\n{report}"
        );
    }
    let finals: Vec<&Value> = lines
        .iter()
        .filter(|l| l["is_final"] == Value::Bool(true))
        .collect();
    for f in &finals {
        assert_eq!(s(f, "language_code"), "en-us", "{f}");
        let end = n(f, "end_ms");
        assert!(end > 0 && end as u64 <= reference.duration_ms + 500, "{f}");
        let words = f["words"].as_array().unwrap();
        assert!(
            !words.is_empty(),
            "enable_word_time_offsets gave no words: {f}"
        );
        assert!(
            words
                .iter()
                .all(|w| n(w, "start_ms") <= n(w, "end_ms") && n(w, "end_ms") <= end + 50),
            "word times outside their result: {f}"
        );
    }
    // The same edge as the native API: the call is audited under its metadata call id.
    let log = server.stderr();
    assert!(
        log.lines().any(|l| l.contains("audit")
            && l.contains("google.StreamingRecognize")
            && l.contains(call_id)
            && l.contains("OK")),
        "no audit line for the call\n{log}"
    );
}

#[test]
fn google_recognize_and_long_running_recognize_read_wav_and_flac_files() {
    let wav = fixture("calls/en_call_8k_mono.wav");
    let reference = Reference::of(&wav);
    let server = Server::start_with(&[]);
    let out = clients(
        &server,
        &[
            "google-recognize",
            "--wav",
            wav.to_str().unwrap(),
            "--whole-file",
            "--language",
            "en-US",
        ],
    );
    let report = server.report(&out);
    assert!(out.status.success(), "{report}");
    let lines = json_lines(&server, &out);
    let text = finals_of(&lines, 0);
    let wer = word_error_rate(&reference.all_text(), &text);
    eprintln!("Recognize: WER {wer:.3}: {text}");
    assert!(wer <= MAX_WER, "WER {wer:.3}: {text}\n{report}");
    assert!(
        lines
            .iter()
            .all(|l| l["confidence"].as_f64().unwrap() > 0.0),
        "{report}"
    );

    // The same recording as a long-running operation, polled through GetOperation.
    let out = clients(
        &server,
        &[
            "google-recognize",
            "--wav",
            wav.to_str().unwrap(),
            "--whole-file",
            "--language",
            "en-US",
            "--long-running",
        ],
    );
    let report = server.report(&out);
    assert!(out.status.success(), "{report}");
    let lines = json_lines(&server, &out);
    assert!(
        s(&lines[0], "operation").starts_with("callscribe-"),
        "{report}"
    );
    let long_text = finals_of(&lines[1..], 0);
    assert_eq!(
        long_text, text,
        "the operation's result is the recording's transcript\n{report}"
    );

    // FLAC, decoded like a FLAC recording (symphonia): the same audio, the same transcript.
    let dir = tempfile::tempdir().unwrap();
    let flac = dir.path().join("call.flac");
    let sox = Command::new("sox")
        .arg(&wav)
        .arg(&flac)
        .status()
        .expect("sox (scripts/setup.sh installs it)");
    assert!(sox.success());
    let out = clients(
        &server,
        &[
            "google-recognize",
            "--wav",
            wav.to_str().unwrap(),
            "--content-file",
            flac.to_str().unwrap(),
            "--encoding",
            "flac",
            "--language",
            "en-US",
        ],
    );
    let report = server.report(&out);
    assert!(out.status.success(), "{report}");
    assert_eq!(finals_of(&json_lines(&server, &out), 0), text, "{report}");
}

#[test]
fn google_speech_contexts_become_hotwords_that_recover_the_terms() {
    let wav = fixture("calls/en_terms_8k.wav");
    let terms = [
        "Zentrix", "Voltaro", "Quibly", "Nuvexa", "Orbisync", "Kestrava",
    ];
    let server = Server::start_with(&[]);
    let found = |phrases: &str| {
        // A stream: hotwords matter most where windows are fitted to the utterance.
        let mut args = vec![
            "google-stream",
            "--wav",
            wav.to_str().unwrap(),
            "--language",
            "en-US",
            "--separate",
        ];
        if !phrases.is_empty() {
            args.extend(["--phrases", phrases, "--boost", "10"]);
        }
        let out = clients(&server, &args);
        assert!(out.status.success(), "{}", server.report(&out));
        let text = json_lines(&server, &out)
            .iter()
            .map(|l| s(l, "transcript").to_owned())
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase();
        let hits = terms
            .iter()
            .filter(|t| text.contains(&t.to_lowercase()))
            .count();
        eprintln!("phrases {phrases:?}: {hits} terms: {text}");
        hits
    };
    let without = found("");
    let with = found(&terms.join(","));
    // As the hotword test of the engine itself (tests/it/dialects.rs): which invented names
    // whisper lands on moves with the audio; that some are recovered does not.
    assert!(
        with > without,
        "speech_contexts must recover terms: {without} without, {with} with"
    );
}

#[test]
fn riva_streams_a_mandarin_call_through_zh_cn_with_interims() {
    // Wide band, as Riva clients send: base with fitted windows hears the 8 kHz version's
    // synthetic customer voice too poorly for a meaningful bound.
    let wav = fixture("calls/zh_call_16k.wav");
    let reference = Reference::of(&wav);
    let server = Server::start_with(&[]);
    let out = clients(
        &server,
        &[
            "riva-stream",
            "--wav",
            wav.to_str().unwrap(),
            "--encoding",
            "linear_pcm",
            "--language",
            "zh-CN",
            "--separate",
            "--interim",
            "--realtime",
            "--call-id",
            "riva-zh-1",
        ],
    );
    let report = server.report(&out);
    assert!(out.status.success(), "{report}");
    let lines = json_lines(&server, &out);
    assert!(
        lines.iter().any(|l| l["is_final"] == Value::Bool(false)),
        "no interim\n{report}"
    );
    for tag in [1, 2] {
        assert!(
            !finals_of(&lines, tag).is_empty(),
            "no final on channel_tag {tag}\n{report}"
        );
    }
    // Both parties' finals on the call's timeline, against the reference in time order.
    let mut finals: Vec<&Value> = lines
        .iter()
        .filter(|l| l["is_final"] == Value::Bool(true))
        .collect();
    finals.sort_by_key(|l| n(l, "end_ms"));
    let all: String = finals.iter().map(|l| s(l, "transcript")).collect();
    let cer = char_error_rate(&reference.all_text(), &all);
    eprintln!("riva zh-CN: CER {cer:.3}: {all}");
    assert!(cer <= MAX_CER, "CER {cer:.3}: {all}\n{report}");
    // The putonghua adapter wrote simplified characters ("还没有收到", not "還沒有收到").
    assert!(
        !all.contains('們') && !all.contains('還') && !all.contains('這'),
        "traditional: {all}"
    );
}

#[test]
fn refused_configurations_are_invalid_argument_naming_the_problem() {
    let wav = fixture("calls/en_call_8k_mono.wav");
    let server = Server::start_with(&[]);
    let w = wav.to_str().unwrap();
    let (code, details) = error_of(
        &server,
        &clients(&server, &["google-stream", "--wav", w, "--encoding", "amr"]),
    );
    assert_eq!(code, "INVALID_ARGUMENT", "{details}");
    assert!(details.contains("AMR"), "{details}");
    let (code, details) = error_of(
        &server,
        &clients(
            &server,
            &["google-stream", "--wav", w, "--model", "no-such-model"],
        ),
    );
    assert_eq!(code, "INVALID_ARGUMENT", "{details}");
    assert!(details.contains("no-such-model"), "{details}");
    let (code, details) = error_of(
        &server,
        &clients(
            &server,
            &["riva-stream", "--wav", w, "--encoding", "oggopus"],
        ),
    );
    assert_eq!(code, "INVALID_ARGUMENT", "{details}");
    assert!(details.contains("OGGOPUS"), "{details}");
}

#[test]
fn reflection_v1alpha_lists_the_speech_services_for_grpcio_reflection() {
    let server = Server::start_with(&[]);
    let out = clients(&server, &["reflection"]);
    let report = server.report(&out);
    assert!(out.status.success(), "{report}");
    let listing = &json_lines(&server, &out)[0];
    let methods = &listing["methods"];
    for (service, method) in [
        ("google.cloud.speech.v1.Speech", "StreamingRecognize"),
        ("google.cloud.speech.v1.Speech", "LongRunningRecognize"),
        ("google.longrunning.Operations", "GetOperation"),
        (
            "nvidia.riva.asr.RivaSpeechRecognition",
            "StreamingRecognize",
        ),
        (
            "nvidia.riva.asr.RivaSpeechRecognition",
            "GetRivaSpeechRecognitionConfig",
        ),
        ("callscribe.v1.Transcription", "StreamingTranscribe"),
    ] {
        let listed = methods[service]
            .as_array()
            .map(|m| m.iter().any(|x| x == method));
        assert_eq!(
            listed,
            Some(true),
            "{service}/{method} not listed: {listing}"
        );
    }
}

#[test]
fn the_speech_apis_take_the_tenants_keys_and_forward_finals_with_tenant_and_call_id() {
    let dir = tempfile::tempdir().unwrap();
    let sink = dir.path().join("finals.ndjson");
    let key = "cs_acme_speech_key";
    let cfg = dir.path().join("callscribe.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[tenants]]\nid = \"acme\"\nkey_hashes = [\"{}\"]\nmax_concurrent_calls = 2\n\n\
             [forward]\nspool = \"{}\"\nsinks = [{{ kind = \"ndjson\", path = \"{}\" }}]\n",
            callscribe::server::auth::key_hash(key),
            dir.path().join("spool.redb").display(),
            sink.display()
        ),
    )
    .unwrap();
    let server = Server::start_with(&["--config", cfg.to_str().unwrap()]);
    let wav = fixture("calls/en_call_8k_mono.wav");
    let w = wav.to_str().unwrap();
    // No key: refused at the edge, by both APIs, before any audio is read.
    for mode in ["google-stream", "riva-stream"] {
        let (code, details) = error_of(&server, &clients(&server, &[mode, "--wav", w]));
        assert_eq!(code, "UNAUTHENTICATED", "{mode}: {details}");
    }
    let (code, _) = error_of(
        &server,
        &clients(
            &server,
            &["google-stream", "--wav", w, "--api-key", "cs_wrong"],
        ),
    );
    assert_eq!(code, "UNAUTHENTICATED");
    // With the tenant's key (`authorization: Bearer`): transcribed, and every final forwarded
    // under the tenant and the call id the metadata gave.
    let out = clients(
        &server,
        &[
            "google-stream",
            "--wav",
            w,
            "--api-key",
            key,
            "--call-id",
            "acme-call-7",
        ],
    );
    let report = server.report(&out);
    assert!(out.status.success(), "{report}");
    let finals = json_lines(&server, &out)
        .into_iter()
        .filter(|l| l["is_final"] == Value::Bool(true))
        .count();
    assert!(finals >= 5, "{finals} finals\n{report}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let forwarded = loop {
        let lines: Vec<Value> = std::fs::read_to_string(&sink)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if lines.len() >= finals || std::time::Instant::now() > deadline {
            break lines;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(
        forwarded.len(),
        finals,
        "every final forwarded once\n{report}"
    );
    for f in &forwarded {
        let seg = &f["segment"];
        assert_eq!(
            (s(seg, "tenant"), s(seg, "call_id")),
            ("acme", "acme-call-7"),
            "{f}"
        );
    }
}

#[test]
fn google_single_utterance_ends_the_stream_after_the_first_utterance_with_activity_events() {
    let wav = fixture("calls/en_call_8k_mono.wav");
    let reference = Reference::of(&wav);
    let first = &reference.utterances[0];
    let server = Server::start_with(&[]);
    let out = clients(
        &server,
        &[
            "google-stream",
            "--wav",
            wav.to_str().unwrap(),
            "--single-utterance",
            "--voice-events",
        ],
    );
    let report = server.report(&out);
    assert!(out.status.success(), "{report}");
    let lines = json_lines(&server, &out);
    let events: Vec<&str> = lines
        .iter()
        .map(|l| s(l, "speech_event"))
        .filter(|e| !e.is_empty())
        .collect();
    assert_eq!(
        events,
        [
            "SPEECH_ACTIVITY_BEGIN",
            "SPEECH_ACTIVITY_END",
            "END_OF_SINGLE_UTTERANCE"
        ],
        "{report}"
    );
    let finals: Vec<&Value> = lines
        .iter()
        .filter(|l| l["is_final"] == Value::Bool(true))
        .collect();
    assert_eq!(finals.len(), 1, "one utterance, one final\n{report}");
    let wer = word_error_rate(&first.text, s(finals[0], "transcript"));
    assert!(
        wer <= MAX_WER,
        "WER {wer:.3} against {:?}\n{report}",
        first.text
    );
    assert!(
        (n(finals[0], "end_ms") as u64).abs_diff(first.end_ms) < 500,
        "{report}"
    );
}

#[test]
fn google_length_limits_are_configurable_and_answered_with_googles_codes() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("callscribe.toml");
    std::fs::write(
        &cfg,
        "[server.speech_apis]\ngoogle_stream_max_secs = 12\ngoogle_recognize_max_secs = 20\n",
    )
    .unwrap();
    let server = Server::start_with(&["--config", cfg.to_str().unwrap()]);
    let w = fixture("calls/en_call_8k_mono.wav");
    let w = w.to_str().unwrap();
    // A stream past its limit: the finals of what it carried, then OUT_OF_RANGE.
    let out = clients(&server, &["google-stream", "--wav", w]);
    let lines = json_lines(&server, &out);
    let (code, details) = error_of(&server, &out);
    assert_eq!(code, "OUT_OF_RANGE", "{details}");
    assert!(details.contains("google_stream_max_secs = 12"), "{details}");
    assert!(
        lines.iter().any(|l| l["is_final"] == Value::Bool(true)),
        "the audio before the limit is still transcribed\n{}",
        server.report(&out)
    );
    // Recognize past its limit: INVALID_ARGUMENT pointing to LongRunningRecognize.
    let (code, details) = error_of(
        &server,
        &clients(&server, &["google-recognize", "--wav", w, "--whole-file"]),
    );
    assert_eq!(code, "INVALID_ARGUMENT", "{details}");
    assert!(details.contains("LongRunningRecognize"), "{details}");
}

#[test]
fn riva_recognize_reads_a_wav_file_and_the_config_lists_models_and_adapters() {
    let wav = fixture("calls/en_call_8k_mono.wav");
    let reference = Reference::of(&wav);
    let server = Server::start_with(&[]);
    let out = clients(
        &server,
        &[
            "riva-recognize",
            "--wav",
            wav.to_str().unwrap(),
            "--language",
            "en-US",
            "--words",
        ],
    );
    let report = server.report(&out);
    assert!(out.status.success(), "{report}");
    let lines = json_lines(&server, &out);
    let text = finals_of(&lines, 1);
    let wer = word_error_rate(&reference.all_text(), &text);
    eprintln!("riva Recognize: WER {wer:.3}: {text}");
    assert!(wer <= MAX_WER, "WER {wer:.3}: {text}\n{report}");
    assert!(
        lines
            .iter()
            .all(|l| !l["words"].as_array().unwrap().is_empty()),
        "{report}"
    );

    let out = clients(&server, &["riva-config"]);
    assert!(out.status.success(), "{}", server.report(&out));
    let listed: Vec<String> = json_lines(&server, &out)
        .iter()
        .map(|l| s(l, "model_name").to_owned())
        .collect();
    for name in ["base", "putonghua", "cantonese", "english"] {
        assert!(listed.iter().any(|l| l == name), "{name} not in {listed:?}");
    }
}
