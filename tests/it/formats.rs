//! Recordings in every format callscribe reads (issue #22): a two-party call of real speech (the
//! ALSA prompts, three on channel 0, then five on channel 1, over faint line noise), encoded by sox and opusenc here and
//! by ffmpeg into the committed `audio-fixtures/formats/` files, decode to the same audio and transcribe to the same words on
//! the same channels. Codecs nobody here decodes, text named like a recording and files cut short
//! give one clear line. An archive run stopped by Ctrl-C, then killed, then resumed with
//! `--skip-existing` transcribes each recording exactly once, and its reports say what happened.
//! Real files, real binary, real models (base for the words, tiny.en for the archive runs).

use crate::common::{self, callscribe, fixture, model_path};
use callscribe::audio::decode::{self, Container, DecodeError};
use callscribe::audio::WavAudio;
use callscribe::engine::DecodeConfig;
use callscribe::pipeline::RecordingOptions;
use callscribe::transcript::Transcript;
use callscribe::wer::word_error_rate;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Seconds the clip lasts.
const CLIP_S: f64 = 17.1;
/// Where each party speaks: channel 0 (the first three prompts), then channel 1 (the last five).
const TURNS_S: [(usize, f64, f64); 2] = [(0, 0.5, 6.0), (1, 6.5, 16.2)];

/// The clip in each format, made from the same PCM by the tool that writes that format.
struct Clips {
    dir: tempfile::TempDir,
}

impl Clips {
    fn make() -> Self {
        let dir = tempfile::tempdir().unwrap();
        // As audio-fixtures/generate.py's two_party_voices() makes it.
        let voices = fixture("real/alsa_voices_48k.wav");
        let (a, b) = (dir.path().join("a.wav"), dir.path().join("b.wav"));
        sox(&[&voices, &a], &["trim", "0", "6.3", "pad", "0", "10.8"]);
        sox(&[&voices, &b], &["trim", "9.0", "10.8", "pad", "6.3", "0"]);
        let (ab, noise) = (dir.path().join("ab.wav"), dir.path().join("noise.wav"));
        run(Command::new("sox").arg("-M").args([&a, &b]).arg(&ab));
        run(Command::new("sox")
            .args(["-R", "-n", "-r", "48000", "-c", "2"])
            .arg(&noise)
            .args(["synth", "17.1", "whitenoise", "vol", "0.001"]));
        let wav = dir.path().join("pcm.wav");
        run(Command::new("sox").arg("-m").args([&ab, &noise]).arg(&wav));
        for (name, encoding) in [
            ("clip.mp3", None),
            ("clip.flac", None),
            ("vorbis.ogg", None),
            ("ima_adpcm.wav", Some("ima-adpcm")),
            ("ms_adpcm.wav", Some("ms-adpcm")),
            ("alaw.wav", Some("a-law")),
            ("gsm.wav", Some("gsm-full-rate")),
        ] {
            let out = dir.path().join(name);
            let mut cmd = Command::new("sox");
            cmd.arg(&wav);
            if let Some(e) = encoding {
                cmd.args(["-e", e]);
            }
            // G.711 and GSM are telephone codecs: 8 kHz.
            if matches!(encoding, Some("a-law" | "gsm-full-rate")) {
                cmd.args(["-r", "8000"]);
            }
            run(cmd.arg(&out));
        }
        run(Command::new("opusenc")
            .arg("--quiet")
            .arg(&wav)
            .arg(dir.path().join("clip.opus")));
        for f in ["two_party_voices.m4a", "two_party_voices.webm"] {
            let ext = Path::new(f).extension().unwrap().to_str().unwrap();
            std::fs::copy(
                fixture(&format!("formats/{f}")),
                dir.path().join(format!("clip.{ext}")),
            )
            .unwrap();
        }
        Clips { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Every clip callscribe decodes, with its container.
    fn decodable(&self) -> Vec<(&'static str, Container)> {
        vec![
            ("pcm.wav", Container::Wav),
            ("clip.mp3", Container::Mp3),
            ("clip.flac", Container::Flac),
            ("vorbis.ogg", Container::Ogg),
            ("clip.opus", Container::Ogg),
            ("clip.webm", Container::Matroska),
            ("clip.m4a", Container::Mp4),
            ("ima_adpcm.wav", Container::Wav),
            ("ms_adpcm.wav", Container::Wav),
            ("alaw.wav", Container::Wav),
        ]
    }
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (scripts/setup.sh installs sox and opus-tools)"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sox(files: &[&Path], effects: &[&str]) {
    run(Command::new("sox").args(files).args(effects));
}

fn rms(x: &[f32]) -> f64 {
    (x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / x.len().max(1) as f64).sqrt()
}

#[test]
fn every_format_decodes_to_the_same_two_channels_at_its_own_rate() {
    let clips = Clips::make();
    let pcm = decode::read_audio(&clips.path("pcm.wav")).unwrap();
    assert_eq!((pcm.sample_rate_hz, pcm.channels.len()), (48_000, 2));
    for (name, container) in clips.decodable() {
        let path = clips.path(name);
        let info = decode::probe(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(info.container, container, "{name}");
        assert_eq!(info.channels, 2, "{name}");
        let audio: WavAudio = decode::read_audio(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(audio.channels.len(), 2, "{name}");
        // Each at its own rate, for the resampler.
        let want_rate = if name == "alaw.wav" { 8_000 } else { 48_000 };
        assert_eq!(audio.sample_rate_hz, want_rate, "{name}");
        assert!(
            (audio.duration_secs() - CLIP_S).abs() < 0.3,
            "{name}: {} s",
            audio.duration_secs()
        );
        // Channel 0 holds the agent's turn, channel 1 the customer's, as in the PCM: each turn
        // is as loud as there (within 2 dB), and 20 dB above the other channel at the time.
        let part = |a: &WavAudio, ch: usize, from: f64, to: f64| {
            let r = f64::from(a.sample_rate_hz);
            rms(&a.channels[ch][(from * r) as usize..(to * r) as usize])
        };
        for (ch, from, to) in TURNS_S {
            let speech = part(&audio, ch, from, to);
            let db = 20.0 * (speech / part(&pcm, ch, from, to)).log10();
            assert!(
                db.abs() < 2.0,
                "{name} channel {ch}: {db:.1} dB off the PCM"
            );
            let apart = 20.0 * (speech / part(&audio, 1 - ch, from, to)).log10();
            assert!(
                apart > 20.0,
                "{name} channel {ch}: only {apart:.1} dB above the other"
            );
        }
        if let Some(stated) = info.duration_secs {
            assert!(
                (stated - audio.duration_secs()).abs() < 0.3,
                "{name}: {stated}"
            );
        }
    }
    // GSM 6.10 WAV, mono at 8 kHz (sox mixes the parties for it): as long and as loud as
    // the two channels mixed.
    let gsm_path = clips.path("gsm.wav");
    let gsm = decode::read_audio(&gsm_path).unwrap();
    assert_eq!((gsm.sample_rate_hz, gsm.channels.len()), (8_000, 1));
    assert!(
        (gsm.duration_secs() - CLIP_S).abs() < 0.05,
        "{}",
        gsm.duration_secs()
    );
    let info = decode::probe(&gsm_path).unwrap();
    assert_eq!((info.codec.as_str(), info.channels), ("GSM 6.10", 1));
    assert!((info.duration_secs.unwrap() - gsm.duration_secs()).abs() < 1e-3);
    for (ch, from, to) in TURNS_S {
        let mixed = rms(&gsm.channels[0][(from * 8000.0) as usize..(to * 8000.0) as usize]);
        let r = f64::from(pcm.sample_rate_hz);
        let want = rms(&pcm.channels[ch][(from * r) as usize..(to * r) as usize]) / 2.0;
        let db = 20.0 * (mixed / want).log10();
        assert!(
            db.abs() < 3.0,
            "gsm turn {ch}: {db:.1} dB off the PCM's mix"
        );
    }
    // FLAC is lossless: every sample as in the WAV.
    let flac = decode::read_audio(&clips.path("clip.flac")).unwrap();
    assert_eq!(flac.channels, pcm.channels);
    // A recording sent as bytes (the gRPC Transcribe RPC) decodes as the file does.
    for name in ["clip.mp3", "clip.webm", "alaw.wav", "gsm.wav"] {
        let bytes = std::fs::read(clips.path(name)).unwrap();
        let from_memory = decode::decode_bytes(name, bytes).unwrap();
        let from_file = decode::read_audio(&clips.path(name)).unwrap();
        assert_eq!(from_memory.channels, from_file.channels, "{name}");
    }
}

#[test]
fn unsupported_codecs_text_and_cut_files_give_one_clear_line() {
    let clips = Clips::make();
    // A call recorder's G.729 WAV (the GSM clip's header with G.729's format tag): a WAV,
    // named as one, with the codec and a conversion that reads it.
    let g729 = clips.path("g729.wav");
    std::fs::write(&g729, g729_wav(&clips)).unwrap();
    let e = decode::read_audio(&g729).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{0}: WAV with G.729 audio is not supported; convert with: ffmpeg -i {0} -c:a pcm_s16le {1}",
            g729.display(),
            clips.path("g729-pcm.wav").display()
        )
    );

    let notes = clips.path("notes.mp3");
    std::fs::write(&notes, "call notes: customer wants a refund\n").unwrap();
    let e = decode::read_audio(&notes).unwrap_err();
    assert!(matches!(e, DecodeError::NotAudio { .. }), "{e:?}");
    assert!(
        e.to_string().contains(
            "notes.mp3: not an MP3 file: it holds text (\"call notes: customer wants a refund\")"
        ),
        "{e}"
    );

    // Cut after a third of its bytes: inside an MP3 frame, a FLAC frame, an Ogg page, an
    // ADPCM block.
    for name in ["clip.mp3", "clip.flac", "ima_adpcm.wav"] {
        let bytes = std::fs::read(clips.path(name)).unwrap();
        let cut = clips.path(&format!("cut_{name}"));
        std::fs::write(&cut, &bytes[..bytes.len() / 3 + 7]).unwrap();
        let e = decode::read_audio(&cut).unwrap_err();
        assert!(matches!(e, DecodeError::Truncated { .. }), "{name}: {e:?}");
        let line = e.to_string();
        assert!(line.starts_with(&cut.display().to_string()), "{line}");
        assert!(line.contains("truncated"), "{line}");
    }
    // An MP3 cut exactly between frames cannot be told from a short one: it decodes.
    let whole = decode::read_audio(&clips.path("clip.mp3")).unwrap();
    assert!(whole.duration_secs() > CLIP_S - 0.1);
}

/// The GSM clip with its format tag changed to G.729's (0x83), which nothing here decodes.
fn g729_wav(clips: &Clips) -> Vec<u8> {
    let mut bytes = std::fs::read(clips.path("gsm.wav")).unwrap();
    assert_eq!(&bytes[12..16], b"fmt ");
    bytes[20..22].copy_from_slice(&0x83u16.to_le_bytes());
    bytes
}

fn text_of(t: &Transcript, channel: u32) -> String {
    t.segments
        .iter()
        .filter(|s| s.channel == channel)
        .map(|s| s.text.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Channel `ch`'s share of the ALSA prompts: channel 0 took those before 6.3 s, channel 1
/// those after 9 s.
fn said(ch: u32) -> String {
    let reference = common::Reference::of(&fixture("real/alsa_voices_48k.wav"));
    reference
        .utterances
        .iter()
        .filter(|u| (ch == 0) == (u.end_ms < 6300))
        .map(|u| u.text.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

fn tiny_en() -> (callscribe::engine::Engine, RecordingOptions, DecodeConfig) {
    let opts = RecordingOptions {
        vad: Some(common::vad()),
        ..Default::default()
    };
    let decode = DecodeConfig {
        language: "en".into(),
        ..DecodeConfig::default()
    };
    (common::engine("tiny.en"), opts, decode)
}

/// The clip before its line noise: pauses of digital silence, and on channel 1 five short
/// prompts a second apart. Packed into one window, tiny.en's no-speech gate once judged that
/// window empty and the customer's side of the call vanished; the pipeline now decodes such
/// a window utterance by utterance.
#[test]
fn short_prompts_over_digital_silence_are_all_transcribed_when_packed() {
    let clips = Clips::make();
    let (engine, opts, decode) = tiny_en();
    assert!(opts.pack);
    let t = common::transcribe_recording(
        &clips.path("ab.wav"),
        &engine,
        1,
        &decode,
        None,
        &opts,
        &mut |_| {},
    )
    .unwrap();
    for ch in 0..2 {
        let wer = word_error_rate(&said(ch), &text_of(&t, ch));
        assert!(
            wer < 0.5,
            "channel {ch}: WER {wer:.2}: {:?} for {:?}",
            text_of(&t, ch),
            said(ch)
        );
    }
}

#[test]
fn every_format_transcribes_to_the_same_words_on_the_same_channels() {
    let clips = Clips::make();
    let (engine, opts, decode) = tiny_en();
    let transcribe = |name: &str| {
        common::transcribe_recording(
            &clips.path(name),
            &engine,
            1,
            &decode,
            None,
            &opts,
            &mut |_| {},
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let pcm = transcribe("pcm.wav");
    // The PCM sets the bar for the rest.
    let pcm_wer: Vec<f64> = (0..2)
        .map(|ch| word_error_rate(&said(ch), &text_of(&pcm, ch)))
        .collect();
    for (ch, wer) in pcm_wer.iter().enumerate() {
        assert!(
            *wer < 0.2,
            "pcm channel {ch}: WER {wer:.2}: {}",
            text_of(&pcm, ch as u32)
        );
    }
    let both = |t: &Transcript| format!("{} {}", text_of(t, 0), text_of(t, 1));
    let mut worst = (0.0, "every format");
    for (name, _) in clips.decodable().into_iter().skip(1) {
        let t = transcribe(name);
        assert_eq!(t.channels.len(), 2, "{name}");
        // The same words as the PCM's, within a small tolerance…
        let wer = word_error_rate(&both(&pcm), &both(&t));
        assert!(
            wer <= 0.2,
            "{name}: WER {wer:.2} against the PCM's\n  pcm: {}\n  {name}: {}",
            both(&pcm),
            both(&t)
        );
        if wer > worst.0 {
            worst = (wer, name);
        }
        // …and each party's words on its own channel.
        for ch in 0..2 {
            let got = text_of(&t, ch);
            let wer = word_error_rate(&said(ch), &got);
            let bar = pcm_wer[ch as usize] + 0.15;
            assert!(
                wer <= bar,
                "{name} channel {ch}: WER {wer:.2} against the reference (the PCM's + 0.15: {bar:.2}): {got}"
            );
        }
        assert!(
            t.duration_ms.abs_diff(pcm.duration_ms) < 300,
            "{name}: {} ms",
            t.duration_ms
        );
    }
    // GSM 6.10 WAV is mono (sox mixed the two parties): the same words on one channel.
    let gsm = transcribe("gsm.wav");
    assert_eq!(gsm.channels.len(), 1);
    let wer = word_error_rate(&both(&pcm), &text_of(&gsm, 0));
    assert!(
        wer <= 0.25,
        "gsm.wav: WER {wer:.2} against the PCM's\n  pcm: {}\n  gsm: {}",
        both(&pcm),
        text_of(&gsm, 0)
    );
    assert!(gsm.duration_ms.abs_diff(pcm.duration_ms) < 300);
    eprintln!(
        "largest WER against the PCM's transcript: {:.2} ({}); GSM 6.10 (mono): {wer:.2}",
        worst.0, worst.1
    );
}

/// One row of the CSV report.
#[derive(Debug, serde::Deserialize)]
struct Row {
    file: String,
    status: String,
    error: String,
    duration_s: Option<f64>,
    channels: Option<u16>,
    language: String,
    words: Option<usize>,
    real_time_factor: Option<f64>,
}

fn read_report(path: &Path) -> Vec<Row> {
    csv::Reader::from_path(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .deserialize()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Transcripts under `out`, by recording name (`a.json` → `a`); each must read back whole.
fn transcripts(out: &Path) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for e in walkdir::WalkDir::new(out).into_iter().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if e.file_type().is_file() && name.ends_with(".json") {
            let t: Result<Transcript, _> =
                serde_json::from_slice(&std::fs::read(e.path()).unwrap());
            assert!(t.is_ok(), "{name} is not a whole transcript");
            found.insert(name.trim_end_matches(".json").to_owned());
        }
    }
    found
}

/// Waits until `out` holds more than `n` transcripts (or the process ends).
fn wait_for_transcripts(child: &mut std::process::Child, out: &Path, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while transcripts(out).len() <= n {
        assert!(Instant::now() < deadline, "no transcript after 120 s");
        if child.try_wait().unwrap().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_archive_run_stopped_killed_and_resumed_transcribes_each_recording_once() {
    model_path("tiny.en");
    let clips = Clips::make();
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive");
    let good = [
        "2024-01/agent1/call.mp3",
        "2024-01/agent1/call.flac",
        "2024-01/agent2/call.opus",
        "2024-02/b.m4a",
        "2024-02/c.webm",
        "2024-02/d_alaw.wav",
        "2024-02/e_adpcm.wav",
    ];
    let sources = [
        "clip.mp3",
        "clip.flac",
        "clip.opus",
        "clip.m4a",
        "clip.webm",
        "alaw.wav",
        "ima_adpcm.wav",
    ];
    for (to, from) in good.iter().zip(sources) {
        let to = archive.join(to);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(clips.path(from), to).unwrap();
    }
    std::fs::write(archive.join("2024-02/call_g729.wav"), g729_wav(&clips)).unwrap();
    std::fs::write(archive.join("2024-02/notes.mp3"), "call notes: refund\n").unwrap();
    let mp3 = std::fs::read(clips.path("clip.mp3")).unwrap();
    std::fs::write(archive.join("2024-02/cut.mp3"), &mp3[..mp3.len() / 2 + 5]).unwrap();
    std::fs::write(archive.join("2024-02/README.txt"), "not a recording").unwrap();
    let bad = [
        "2024-02/call_g729.wav",
        "2024-02/notes.mp3",
        "2024-02/cut.mp3",
    ];
    let out = dir.path().join("out");
    let batch = |extra: &[&str]| {
        let mut cmd = callscribe();
        cmd.args([
            "transcribe",
            "--model",
            "tiny.en",
            "--format",
            "json",
            "--workers",
            "1",
            "-o",
        ])
        .arg(&out)
        .arg(&archive)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        cmd
    };
    let stem = |f: &str| {
        let p = Path::new(f);
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        // call.mp3 and call.flac share a folder: their transcripts keep the extension.
        if f.starts_with("2024-01/agent1/") {
            name
        } else {
            p.file_stem().unwrap().to_string_lossy().into_owned()
        }
    };

    // 1. Ctrl-C once the first transcript is written: the file in progress finishes, no new
    // one starts, and the run says how to resume.
    let report1 = dir.path().join("first.csv");
    let mut child = batch(&["--report", report1.to_str().unwrap()])
        .spawn()
        .unwrap();
    wait_for_transcripts(&mut child, &out, 0);
    run(Command::new("kill").args(["-INT", &child.id().to_string()]));
    let first = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&first.stderr);
    let done1 = transcripts(&out);
    assert!(!done1.is_empty());
    let rows = read_report(&report1);
    assert_eq!(rows.len(), good.len() + bad.len(), "{rows:#?}");
    if rows.iter().any(|r| r.status == "interrupted") {
        assert_eq!(first.status.code(), Some(130), "{stderr}");
        assert!(
            stderr.contains("Resume with:") && stderr.contains("--skip-existing"),
            "{stderr}"
        );
    }
    for r in &rows {
        match r.status.as_str() {
            "done" => {
                assert!(done1.contains(&stem(&r.file[archive.to_str().unwrap().len() + 1..])))
            }
            "interrupted" | "failed" => {}
            other => panic!("{other} in the first run: {r:?}"),
        }
    }

    // 2. Resumed, then killed outright once one more transcript is written.
    let mut child = batch(&["--skip-existing"]).spawn().unwrap();
    wait_for_transcripts(&mut child, &out, done1.len());
    child.kill().unwrap();
    child.wait().unwrap();
    let done2 = transcripts(&out);
    let partials: Vec<_> = walkdir::WalkDir::new(&out)
        .into_iter()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".partial"))
        .collect();
    // A kill between write and rename leaves a hidden partial file, never a transcript.
    assert!(partials.len() <= 1, "{partials:?}");
    let modified = |n: &str| {
        let p = walkdir::WalkDir::new(&out)
            .into_iter()
            .flatten()
            .find(|e| e.file_name().to_string_lossy() == format!("{n}.json"))
            .unwrap();
        std::fs::metadata(p.path()).unwrap().modified().unwrap()
    };
    let before: Vec<_> = done2.iter().map(|n| modified(n)).collect();

    // 3. Resumed to the end: exactly the recordings without a transcript are transcribed.
    let report3 = dir.path().join("last.csv");
    let summary3 = dir.path().join("last.json");
    let last = batch(&[
        "--skip-existing",
        "--report",
        report3.to_str().unwrap(),
        "--summary-json",
        summary3.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&last.stderr);
    assert_eq!(last.status.code(), Some(1), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), bad.len(), "{stderr}");
    let all: BTreeSet<String> = good.iter().map(|f| stem(f)).collect();
    assert_eq!(transcripts(&out), all);
    let after: Vec<_> = done2.iter().map(|n| modified(n)).collect();
    assert_eq!(before, after, "a transcript done before was written again");

    let rows = read_report(&report3);
    let rel = |r: &Row| r.file[archive.to_str().unwrap().len() + 1..].to_owned();
    let files: Vec<String> = rows.iter().map(rel).collect();
    let mut sorted = files.clone();
    sorted.sort();
    assert_eq!(files, sorted, "rows in file order");
    assert_eq!(rows.len(), good.len() + bad.len());
    for r in &rows {
        let f = rel(r);
        if bad.contains(&f.as_str()) {
            assert_eq!(r.status, "failed", "{r:?}");
            assert!(errors.iter().any(|e| e.contains(&r.error)), "{r:?}");
        } else if done2.contains(&stem(&f)) {
            assert_eq!(r.status, "skipped", "{r:?}");
        } else {
            assert_eq!(r.status, "done", "{r:?}");
            assert!(r.real_time_factor.is_some_and(|x| x > 0.0), "{r:?}");
        }
        if r.status != "failed" {
            assert_eq!(r.channels, Some(2), "{r:?}");
            assert_eq!(r.language, "en", "{r:?}");
            assert!(r.words.is_some_and(|w| w >= 12), "{r:?}");
            assert!(
                r.duration_s.is_some_and(|d| (d - CLIP_S).abs() < 0.3),
                "{r:?}"
            );
        }
    }
    let error_of = |f: &str| &rows.iter().find(|r| rel(r) == f).unwrap().error;
    assert!(error_of("2024-02/call_g729.wav")
        .contains("WAV with G.729 audio is not supported; convert with: ffmpeg"));
    assert!(error_of("2024-02/notes.mp3").contains("not an MP3 file: it holds text"));
    assert!(error_of("2024-02/cut.mp3").contains("MP3 data truncated"));

    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&summary3).unwrap()).unwrap();
    assert_eq!(summary["files"], 10);
    assert_eq!(summary["failed"], 3);
    assert_eq!(summary["skipped"], done2.len());
    assert_eq!(summary["done"], good.len() - done2.len());
    assert_eq!(summary["failures"].as_array().unwrap().len(), 3);
}
