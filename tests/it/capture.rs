//! `callscribe capture` through the real cpal → ALSA path on a machine without a sound card.
//!
//! The "sound card" is an ALSA `file` PCM: its `null` slave provides the timing (none: it
//! never waits) and its `infile` the samples. Read from a regular file it delivers the whole
//! file at once and then repeats its last period forever, so a regular file cannot stand in
//! for a live call. Here the infile is a FIFO that the test writes one device period at a
//! time at a fixed multiple of real time: the plugin opens it blocking, so the device
//! delivers exactly what was written, when it was written, and waits in between like a
//! card waiting for the next period. Each test writes its own `~/.asoundrc` in a temporary
//! HOME.

use crate::common;

use callscribe::wer::word_error_rate;
use common::{callscribe, fixture, Reference};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DEVICE: &str = "callscribe_test";
/// The period `capture` asks the device for (src/capture/source.rs): the FIFO is written in
/// whole periods so that every read of the plugin finds one whole period.
const PERIOD_MS: u32 = 20;
/// Multiple of real time the test card plays at: fast enough for quick tests, slow enough
/// that the pipeline is never the bottleneck on a busy 2-core machine.
const SPEED: f64 = 3.0;
/// Trailing silence after a fixture, so the last utterance ends by endpointing.
const TAIL_MS: u32 = 1500;
const DEADLINE: Duration = Duration::from_secs(300);

/// Sample formats the test card can play, as `capture --sample-format` names them.
#[derive(Clone, Copy, PartialEq)]
enum Format {
    I16,
    F32,
}

impl Format {
    fn arg(self) -> &'static str {
        match self {
            Format::I16 => "i16",
            Format::F32 => "f32",
        }
    }
    fn bytes(self) -> usize {
        match self {
            Format::I16 => 2,
            Format::F32 => 4,
        }
    }
}

/// A fixture as 16-bit samples, interleaved.
struct Fixture {
    path: PathBuf,
    rate: u32,
    channels: u16,
    samples: Vec<i16>,
}

impl Fixture {
    fn load(rel: &str) -> Self {
        let path = fixture(rel);
        let mut r = hound::WavReader::open(&path).expect("fixture opens");
        let spec = r.spec();
        assert_eq!(
            spec.bits_per_sample, 16,
            "{rel}: the test card plays 16-bit fixtures"
        );
        let samples = r.samples::<i16>().map(Result::unwrap).collect();
        Fixture {
            path,
            rate: spec.sample_rate,
            channels: spec.channels,
            samples,
        }
    }

    fn frames(&self) -> usize {
        self.samples.len() / self.channels as usize
    }

    /// The first `ms` of the fixture, or all of it, as the device's raw bytes.
    fn raw(&self, format: Format, ms: Option<u32>) -> Vec<u8> {
        let frames = ms.map_or(self.frames(), |ms| {
            (self.rate as usize * ms as usize / 1000).min(self.frames())
        });
        let n = frames * self.channels as usize;
        let mut out = Vec::with_capacity(n * format.bytes());
        for &s in &self.samples[..n] {
            match format {
                Format::I16 => out.extend_from_slice(&s.to_le_bytes()),
                Format::F32 => out.extend_from_slice(&(f32::from(s) / 32768.0).to_le_bytes()),
            }
        }
        out
    }

    fn period_bytes(&self, format: Format) -> usize {
        (self.rate * PERIOD_MS / 1000) as usize * self.channels as usize * format.bytes()
    }
}

/// A FIFO-backed ALSA capture device in a temporary HOME.
struct TestCard {
    home: tempfile::TempDir,
    fifo: PathBuf,
    /// Held open read-write for the card's life: the plugin opens its infile at every PCM
    /// open (device listing included), and opening a FIFO for reading waits for a writer.
    _writer: File,
}

impl TestCard {
    fn new() -> Self {
        let home = tempfile::tempdir().expect("temp HOME");
        let fifo = home.path().join("card.fifo");
        let status = Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo runs");
        assert!(status.success(), "mkfifo {}", fifo.display());
        let asoundrc = format!(
            "pcm.{DEVICE} {{\n  type file\n  slave.pcm \"null\"\n  file \"/dev/null\"\n  \
             infile \"{}\"\n  format \"raw\"\n  hint {{ show on description \"callscribe test card\" }}\n}}\n",
            fifo.display()
        );
        std::fs::write(home.path().join(".asoundrc"), asoundrc).expect("asoundrc written");
        let _writer = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&fifo)
            .expect("FIFO opens read-write");
        TestCard {
            home,
            fifo,
            _writer,
        }
    }

    /// `callscribe` seeing this card (and the tests' model store).
    fn command(&self) -> Command {
        let mut cmd = callscribe();
        cmd.env("HOME", self.home.path())
            .env_remove("ALSA_CONFIG_PATH")
            .env("NO_COLOR", "1");
        cmd
    }

    /// Opens the FIFO for writing without waiting for a reader (read-write open), so that
    /// the plugin's open never blocks either, and starts playing.
    fn play(
        &self,
        audio: Vec<u8>,
        period_bytes: usize,
        rate: u32,
        channels: u16,
        bytes: usize,
    ) -> Player {
        Player::start(
            open_fifo(&self.fifo),
            audio,
            period_bytes,
            rate,
            channels,
            bytes,
            true,
        )
    }
}

/// The FIFO's writing end, non-blocking: once `capture` has exited nobody reads, and a
/// blocking write would hang the test. Writes of one period (≤ PIPE_BUF) are all or nothing.
fn open_fifo(path: &Path) -> File {
    use std::os::unix::fs::OpenOptionsExt;
    const O_NONBLOCK: i32 = 0o4000; // Linux
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(O_NONBLOCK)
        .open(path)
        .expect("FIFO opens read-write")
}

/// Writes `chunk` whole, waiting while the pipe is full; false once stopped or broken.
fn write_period(fifo: &mut File, chunk: &[u8], stop: &AtomicBool) -> bool {
    loop {
        match fifo.write(chunk) {
            Ok(n) if n == chunk.len() => return true,
            Ok(_) => return false,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if stop.load(Ordering::SeqCst) {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(_) => return false,
        }
    }
}

/// Writes the audio one period at a time at `SPEED` × real time, then (with `tail`) silence
/// until stopped: a card that has run dry leaves the capture thread waiting in `read`.
struct Player {
    played: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Player {
    fn start(
        mut fifo: File,
        audio: Vec<u8>,
        period_bytes: usize,
        rate: u32,
        channels: u16,
        bytes_per_sample: usize,
        tail: bool,
    ) -> Self {
        let played = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let period = Duration::from_secs_f64(
            period_bytes as f64 / (rate as f64 * channels as f64 * bytes_per_sample as f64) / SPEED,
        );
        let (p, s) = (played.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let start = Instant::now();
            let mut n = 0u32;
            let pace = |n: u32| {
                let due = start + period * n;
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            };
            for chunk in audio.chunks(period_bytes) {
                let mut c = chunk.to_vec();
                c.resize(period_bytes, 0);
                if !write_period(&mut fifo, &c, &s) {
                    return;
                }
                n += 1;
                pace(n);
            }
            p.store(true, Ordering::SeqCst);
            if !tail {
                return;
            }
            let silence = vec![0u8; period_bytes];
            while !s.load(Ordering::SeqCst) {
                if !write_period(&mut fifo, &silence, &s) {
                    return;
                }
                n += 1;
                pace(n);
            }
        });
        Player {
            played,
            stop,
            thread: Some(thread),
        }
    }

    fn wait_played(&self, child: &mut Child) {
        let start = Instant::now();
        while !self.played.load(Ordering::SeqCst) {
            assert!(
                child.try_wait().expect("child state").is_none(),
                "capture exited before the card finished playing"
            );
            assert!(
                start.elapsed() < DEADLINE,
                "the card never finished playing"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Player {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn sigint(child: &Child) {
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "SIGINT delivered");
}

struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Waits for the child (killing it past the deadline) and collects its output.
fn finish(mut child: Child) -> Outcome {
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("child state") {
            break s;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("capture did not exit within {DEADLINE:?} of its end");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    Outcome {
        code: status.code().unwrap_or(-1),
        stdout,
        stderr,
    }
}

/// Plays a fixture (all of it, then silence; or its first `cut_ms`, then nothing until
/// Ctrl-C) into `capture` and ends the call with SIGINT.
fn capture_call(
    rel: &str,
    format: Format,
    cut_ms: Option<u32>,
    args: &[&str],
) -> (Fixture, Outcome, TestCard) {
    let fx = Fixture::load(rel);
    let card = TestCard::new();
    let mut audio = fx.raw(format, cut_ms);
    if cut_ms.is_none() {
        let tail =
            fx.rate as usize * TAIL_MS as usize / 1000 * fx.channels as usize * format.bytes();
        audio.resize(audio.len() + tail, 0);
    }
    let player = if cut_ms.is_none() {
        Some(card.play(
            audio,
            fx.period_bytes(format),
            fx.rate,
            fx.channels,
            format.bytes(),
        ))
    } else {
        None
    };
    let fifo_for_cut = cut_ms.map(|_| open_fifo(&card.fifo));
    let mut child = card
        .command()
        .args([
            "capture",
            "--device",
            DEVICE,
            "--model",
            "tiny.en",
            "--language",
            "en",
        ])
        .args([
            "--rate",
            &fx.rate.to_string(),
            "--channels",
            &fx.channels.to_string(),
        ])
        .args(["--sample-format", format.arg(), "--buffer-ms", "30000"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("callscribe starts");
    match (player, fifo_for_cut) {
        (Some(player), _) => {
            player.wait_played(&mut child);
            // The card's last periods pass the FIFO, the plugin and the ring within a
            // few drain intervals.
            std::thread::sleep(Duration::from_millis(500));
            sigint(&child);
            let outcome = finish(child);
            drop(player);
            (fx, outcome, card)
        }
        (None, Some(fifo)) => {
            // Mid-utterance cut: play the first part, then let the card run dry so the
            // utterance stays open, then Ctrl-C. The card resumes with silence so the capture
            // thread can be shut down (frames after the stop are discarded by `capture`).
            let audio = fx.raw(format, cut_ms);
            let player = Player::start(
                fifo,
                audio,
                fx.period_bytes(format),
                fx.rate,
                fx.channels,
                format.bytes(),
                false,
            );
            player.wait_played(&mut child);
            drop(player);
            std::thread::sleep(Duration::from_millis(1500));
            sigint(&child);
            let tail = card.play(
                Vec::new(),
                fx.period_bytes(format),
                fx.rate,
                fx.channels,
                format.bytes(),
            );
            let outcome = finish(child);
            drop(tail);
            (fx, outcome, card)
        }
        _ => unreachable!(),
    }
}

#[derive(Debug)]
struct Final {
    channel: u32,
    role: String,
    start_ms: u64,
    end_ms: u64,
    text: String,
}

fn json_lines(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not NDJSON: {l}: {e}")))
        .collect()
}

fn json_finals(events: &[serde_json::Value]) -> Vec<Final> {
    events
        .iter()
        .filter_map(|e| e.get("final"))
        .map(|f| Final {
            channel: f["channel"].as_u64().unwrap() as u32,
            role: f["role"].as_str().unwrap().to_owned(),
            start_ms: f["start_ms"].as_u64().unwrap(),
            end_ms: f["end_ms"].as_u64().unwrap(),
            text: f["text"].as_str().unwrap().to_owned(),
        })
        .collect()
}

/// `[mm:ss.s–mm:ss.s] role: text` lines, the text format a person follows live.
fn text_finals(stdout: &str) -> Vec<Final> {
    let ms = |clock: &str| -> u64 {
        let (m, s) = clock.split_once(':').expect("mm:ss.s");
        m.parse::<u64>().unwrap() * 60_000 + (s.parse::<f64>().unwrap() * 1000.0).round() as u64
    };
    stdout
        .lines()
        .filter(|l| l.starts_with('['))
        .map(|l| {
            let (times, rest) = l[1..].split_once("] ").expect("closing bracket");
            let (a, b) = times.split_once('–').expect("en dash between times");
            let (role, text) = rest.split_once(": ").expect("role: text");
            Final {
                channel: match role {
                    "customer" => 1,
                    _ => 0,
                },
                role: role.to_owned(),
                start_ms: ms(a),
                end_ms: ms(b),
                text: text.to_owned(),
            }
        })
        .collect()
}

/// Every reference utterance is covered by finals of its channel and role whose joint
/// extent is within `tol_ms` (plus the text format's 50 ms rounding) of the reference.
fn assert_on_timeline(finals: &[Final], r: &Reference, tol_ms: u64) {
    for u in &r.utterances {
        let covering: Vec<_> = finals
            .iter()
            .filter(|f| f.channel == u.channel && f.start_ms < u.end_ms && f.end_ms > u.start_ms)
            .collect();
        assert!(
            !covering.is_empty(),
            "no final for {:?}: {finals:?}",
            u.text
        );
        let start = covering.iter().map(|f| f.start_ms).min().unwrap();
        let end = covering.iter().map(|f| f.end_ms).max().unwrap();
        assert!(
            start.abs_diff(u.start_ms) <= tol_ms && end.abs_diff(u.end_ms) <= tol_ms,
            "{:?} captured at {start}–{end} ms, spoken at {}–{} ms",
            u.text,
            u.start_ms,
            u.end_ms
        );
        assert!(
            covering.iter().all(|f| f.role == u.role),
            "role of {:?}",
            u.text
        );
    }
}

fn text_of(finals: &[Final], channel: Option<u32>) -> String {
    finals
        .iter()
        .filter(|f| channel.is_none_or(|c| f.channel == c))
        .map(|f| f.text.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The recording starts with exactly the samples the card played and holds nothing but
/// the card's silence after them.
fn assert_recording_is_exact(path: &Path, fx: &Fixture, format: Format, played_frames: usize) {
    let mut r = hound::WavReader::open(path).expect("the recording is a valid WAV");
    let spec = r.spec();
    assert_eq!(spec.sample_rate, fx.rate);
    assert_eq!(spec.channels, fx.channels);
    let recorded: Vec<i16> = match format {
        Format::I16 => {
            assert_eq!(spec.sample_format, hound::SampleFormat::Int);
            r.samples::<i16>().map(Result::unwrap).collect()
        }
        Format::F32 => {
            assert_eq!(spec.sample_format, hound::SampleFormat::Float);
            r.samples::<f32>()
                .map(|s| {
                    let s = s.unwrap();
                    let i = (s * 32768.0) as i16;
                    assert_eq!(
                        f32::from(i) / 32768.0,
                        s,
                        "float sample {s} is not the card's"
                    );
                    i
                })
                .collect()
        }
    };
    let n = played_frames * fx.channels as usize;
    assert!(
        recorded.len() >= n,
        "recorded {} samples, the card played {n}",
        recorded.len()
    );
    let first_diff = recorded[..n]
        .iter()
        .zip(&fx.samples[..n])
        .position(|(a, b)| a != b);
    assert_eq!(
        first_diff, None,
        "the recording differs from the card's samples"
    );
    assert!(
        recorded[n..].iter().all(|&s| s == 0),
        "after the call the card played silence only"
    );
}

fn capture_summary(events: &[serde_json::Value]) -> &serde_json::Value {
    events
        .iter()
        .find_map(|e| e.get("capture_summary"))
        .expect("a capture summary")
}

#[test]
fn a_44k_float_card_is_transcribed_on_the_reference_timeline_and_recorded_sample_exact() {
    let rel = "calls/en_half_44k_mono.wav";
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("rec.wav");
    let (fx, out, _card) = capture_call(
        rel,
        Format::F32,
        None,
        &[
            "--format",
            "json",
            "--record",
            wav.to_str().unwrap(),
            "--dialect",
            "english",
        ],
    );
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    let events = json_lines(&out.stdout);
    assert!(
        events
            .iter()
            .any(|e| e["accepted_config"]["dialect"] == "english"),
        "the selected adapter is echoed: {}",
        out.stdout
    );
    assert!(
        events
            .iter()
            .any(|e| e["dialect"]["adapter"] == "english" && e["dialect"]["reason"] == "explicit"),
        "the adapter is reported as `stream` reports it: {}",
        out.stdout
    );
    let finals = json_finals(&events);
    let r = Reference::of(&fx.path);
    let wer = word_error_rate(&r.all_text(), &text_of(&finals, None));
    eprintln!("capture {rel} tiny.en: WER {wer:.3}");
    assert!(wer <= 0.35, "WER {wer:.3}: {finals:?}");
    assert_on_timeline(&finals, &r, 300);
    let summary = events
        .iter()
        .find_map(|e| e.get("summary"))
        .expect("a call summary");
    assert_eq!(summary["final_results"].as_u64(), Some(finals.len() as u64));
    let audio_ms = summary["audio_ms"].as_u64().unwrap();
    assert!(
        audio_ms >= r.duration_ms,
        "{audio_ms} ms of audio reached the pipeline"
    );
    let cap = capture_summary(&events);
    eprintln!("capture summary: {cap}; call summary: {summary}");
    assert_eq!(cap["overrun_frames"].as_u64(), Some(0), "{cap}");
    assert_eq!(cap["sample_format"], "f32");
    assert_eq!(cap["sample_rate_hz"].as_u64(), Some(44_100));
    assert_recording_is_exact(&wav, &fx, Format::F32, fx.frames());
}

#[test]
fn an_8k_two_channel_i16_card_keeps_agent_and_customer_apart_in_live_text() {
    let rel = "calls/en_call_8k.wav";
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("rec.wav");
    let (fx, out, _card) = capture_call(
        rel,
        Format::I16,
        None,
        // Without interims: a final keeps the stable text its interims sent (issue #23), and
        // which words an interim has locked in depends on how busy the machine is; this test
        // is about the channels and where suggestions are printed, which must not vary.
        &[
            "--roles",
            "agent,customer",
            "--dialect",
            "english",
            "--no-interim",
            "--record",
            wav.to_str().unwrap(),
        ],
    );
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    let finals = text_finals(&out.stdout);
    let r = Reference::of(&fx.path);
    for ch in 0..2 {
        let wer = word_error_rate(&r.channel_text(ch), &text_of(&finals, Some(ch)));
        eprintln!("capture {rel} tiny.en channel {ch}: WER {wer:.3}");
        // tiny.en on narrow-band speech: a loose bound, but one that a swapped or silent
        // channel fails by far.
        assert!(wer <= 0.5, "channel {ch} WER {wer:.3}: {finals:?}");
    }
    assert_on_timeline(&finals, &r, 350);
    // Finals go on to knowledge lookup (the default forwarding: the bundled sample KB), and
    // each suggestion is printed under the utterance it answers.
    let lines: Vec<&str> = out.stdout.lines().collect();
    for (article, words) in [
        ("delivery-status-en", "parcel"),
        ("double-charge-en", "charge"),
    ] {
        let at = lines
            .iter()
            .position(|l| l.starts_with(&format!("  ↳ kb {article}:")))
            .unwrap_or_else(|| panic!("no {article} suggestion in: {}", out.stdout));
        let answered = lines[..at]
            .iter()
            .rev()
            .find(|l| l.starts_with('['))
            .expect("a final before the suggestion");
        assert!(
            answered.to_lowercase().contains(words),
            "{article} printed under '{answered}'"
        );
    }
    assert!(
        out.stderr.contains("0 overrun(s) (0 frame(s) lost)"),
        "stderr: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains("final result(s), real-time factor"),
        "{}",
        out.stderr
    );
    assert_recording_is_exact(&wav, &fx, Format::I16, fx.frames());
}

#[test]
fn ctrl_c_mid_utterance_delivers_its_final_closes_the_wav_and_exits_0() {
    let rel = "calls/en_half_44k_mono.wav";
    // Utterance 2 runs 6214–11373 ms; the call is cut in the middle of it.
    let cut_ms = 8800;
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("rec.wav");
    let (fx, out, _card) = capture_call(
        rel,
        Format::F32,
        Some(cut_ms),
        &["--record", wav.to_str().unwrap(), "--no-interim"],
    );
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    let finals = text_finals(&out.stdout);
    let last = finals
        .last()
        .unwrap_or_else(|| panic!("no final: {}", out.stdout));
    assert!(
        last.start_ms.abs_diff(6214) <= 350 && last.end_ms.abs_diff(u64::from(cut_ms)) <= 350,
        "the open utterance was finalised at {}–{} ms",
        last.start_ms,
        last.end_ms
    );
    assert!(
        last.text.to_lowercase().contains("parcel"),
        "the cut utterance's words: {last:?}"
    );
    assert!(
        out.stderr
            .contains(&format!("{} final result(s)", finals.len())),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("overrun(s)"), "{}", out.stderr);
    let played = fx.rate as usize * cut_ms as usize / 1000;
    assert_recording_is_exact(&wav, &fx, Format::F32, played);
}

#[test]
fn server_mode_streams_the_card_to_a_callscribe_serve_and_prints_its_results() {
    let (mut serve, addr) = crate::common::serve(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--model",
        "tiny.en",
        "--language",
        "en",
    ]);
    let rel = "calls/en_half_44k_mono.wav";
    let (fx, out, _card) = capture_call(
        rel,
        Format::F32,
        None,
        &["--server", &addr, "--format", "json", "--call-id", "desk-7"],
    );
    serve.kill();
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    let events = json_lines(&out.stdout);
    assert!(
        events
            .iter()
            .any(|e| e["accepted_config"]["sample_rate_hz"] == 44_100),
        "the server accepted the card's rate: {}",
        out.stdout
    );
    let finals = json_finals(&events);
    assert!(events
        .iter()
        .filter(|e| e.get("final").is_some())
        .all(|e| e["call_id"] == "desk-7"));
    let r = Reference::of(&fx.path);
    let wer = word_error_rate(&r.all_text(), &text_of(&finals, None));
    assert!(wer <= 0.35, "WER {wer:.3}: {finals:?}");
    assert_on_timeline(&finals, &r, 300);
    let summary = events
        .iter()
        .find_map(|e| e.get("summary"))
        .expect("the server's summary");
    assert_eq!(summary["final_results"].as_u64(), Some(finals.len() as u64));
    assert_eq!(capture_summary(&events)["overrun_frames"].as_u64(), Some(0));
}

#[test]
fn an_unknown_device_is_one_clear_line_naming_the_devices_there_are() {
    let card = TestCard::new();
    let out = card
        .command()
        .args(["capture", "--device", "no-such-card", "--model", "tiny.en"])
        .output()
        .expect("callscribe runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(lines[0].contains("no-such-card"), "{stderr}");
    assert!(
        lines[0].contains(DEVICE),
        "lists the devices there are: {stderr}"
    );
}

#[test]
fn list_devices_shows_the_card_with_its_default_and_supported_formats() {
    let card = TestCard::new();
    let out = card
        .command()
        .args(["capture", "--list-devices"])
        .output()
        .expect("callscribe runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let block: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with(DEVICE))
        .take_while(|l| l.starts_with(DEVICE) || l.starts_with("  "))
        .collect();
    assert!(block[0].contains("callscribe test card"), "{stdout}");
    assert!(
        block.iter().any(|l| l.starts_with("  default: ")),
        "{stdout}"
    );
    for f in ["i16", "u16", "f32"] {
        assert!(
            block
                .iter()
                .any(|l| l.starts_with(&format!("  supports: {f},"))),
            "{f} in {stdout}"
        );
    }
}

/// `capture --server` to a server with mutual TLS and a tenant key: `--tls-ca`,
/// `--tls-cert/--tls-key` and `--api-key` carry the call; the server's finals come back.
#[test]
fn server_mode_speaks_mutual_tls_with_an_api_key() {
    use common::pki::{write, Ca, ServerFiles};
    let (ca, clients) = (Ca::new("callscribe test CA"), Ca::new("clients CA"));
    let files = ServerFiles::new(&ca.server(), Some(&clients));
    let dir = files.dir.path();
    let client = clients.client("desk-7.acme.example");
    let config = write(
        dir,
        "callscribe.toml",
        &format!(
            "[server.tls]\ncert_path = {:?}\nkey_path = {:?}\nclient_ca_path = {:?}\n\n\
             [[tenants]]\nid = \"acme\"\nkey_hashes = [{:?}]\nmax_concurrent_calls = 1\n",
            files.cert(),
            files.key(),
            files.client_ca(),
            callscribe::server::auth::key_hash("cs_desk_key"),
        ),
    );
    let (mut serve, addr) = crate::common::serve(&[
        "--config",
        config.to_str().unwrap(),
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--workers",
        "1",
        "--model",
        "tiny.en",
        "--language",
        "en",
    ]);
    let (ca_pem, cert, key) = (
        write(dir, "ca.pem", &ca.pem()),
        write(dir, "client.pem", &client.cert_pem),
        write(dir, "client.key", &client.key_pem),
    );
    let (_fx, out, _card) = capture_call(
        "calls/en_half_44k_mono.wav",
        Format::F32,
        None,
        &[
            "--server",
            &addr,
            "--tls-ca",
            ca_pem.to_str().unwrap(),
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--api-key",
            "cs_desk_key",
            "--format",
            "json",
            "--call-id",
            "desk-7-tls",
        ],
    );
    serve.kill();
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    let events = json_lines(&out.stdout);
    let finals = json_finals(&events);
    assert!(!finals.is_empty(), "{}", out.stdout);
    assert!(
        events.iter().any(|e| e.get("summary").is_some()),
        "{}",
        out.stdout
    );
}
