//! The gRPC API over the wire, seen by an independent implementation: Python's grpcio with
//! stubs generated from `proto/callscribe/v1/transcription.proto` (`tests/python/client.py`),
//! against the real `callscribe serve` with the real models (base for the 8 kHz call, whose
//! narrow-band speech tiny.en transcribes too poorly for a meaningful bound; tiny.en listed).
//!
//! The interpreter is `$CALLSCRIBE_TEST_PYTHON` (default `python3`); it needs grpcio,
//! grpcio-tools and grpcio-health-checking (`scripts/test.sh` makes such a venv). Without them
//! these tests fail rather than skip.

use crate::common;

use callscribe::wer::word_error_rate;
use common::{callscribe, fixture, model_path, repo, Reference};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// How long the server may take to load the model and report SERVING.
const STARTUP: Duration = Duration::from_secs(120);
/// Allowed distance of a final's boundaries from the reference utterance's.
const BOUNDARY_MS: u64 = 300;
const MAX_WER: f64 = 0.35;

fn python() -> String {
    std::env::var("CALLSCRIBE_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// The interpreter, after checking it has the gRPC packages (a clear failure, never a skip).
fn require_python() -> String {
    let py = python();
    let hint = "set CALLSCRIBE_TEST_PYTHON to a Python with grpcio, grpcio-tools and \
                grpcio-health-checking (scripts/test.sh creates one in \
                ~/.cache/callscribe/pyenv), or `pip install grpcio grpcio-tools \
                grpcio-health-checking`";
    match Command::new(&py)
        .args(["-c", "import grpc, grpc_tools, grpc_health"])
        .output()
    {
        Err(e) => panic!("cannot run Python interpreter `{py}`: {e}; {hint}"),
        Ok(out) if !out.status.success() => panic!(
            "`{py}` cannot import the gRPC packages the wire tests need:\n{}\n{hint}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Ok(_) => py,
    }
}

/// `callscribe serve` as a child process; stopped (SIGTERM, then SIGKILL) when dropped.
pub(crate) struct Server {
    child: Child,
    pub(crate) addr: String,
    stderr: Arc<Mutex<String>>,
    pub(crate) python: String,
}

impl Server {
    fn start() -> Server {
        Server::start_with(&["--also-load", "tiny.en"])
    }

    /// `callscribe serve` on base, with `extra` arguments.
    pub(crate) fn start_with(extra: &[&str]) -> Server {
        let python = require_python();
        model_path("tiny.en");
        model_path("base");
        let mut child = callscribe()
            .args(["serve", "--listen", "127.0.0.1:0", "--model", "base"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting `callscribe serve`");
        let stdout = child.stdout.take().unwrap();
        let stderr_pipe = child.stderr.take().unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut server = Server {
            child,
            addr: String::new(),
            stderr: stderr.clone(),
            python,
        };

        // Drain both pipes for the server's whole life so it never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr_pipe).lines() {
                let Ok(line) = line else { break };
                let mut s = stderr.lock().unwrap_or_else(|e| e.into_inner());
                s.push_str(&line);
                s.push('\n');
            }
        });
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });

        let started = Instant::now();
        let line = match rx.recv_timeout(STARTUP) {
            Ok(line) => line,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                "`callscribe serve` printed nothing on stdout within {STARTUP:?}; stderr:\n{}",
                server.stderr()
            ),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = server.child.wait();
                // Let the stderr thread catch up with the last lines.
                std::thread::sleep(Duration::from_millis(200));
                panic!(
                    "`callscribe serve` exited before listening ({status:?}); stderr:\n{}",
                    server.stderr()
                )
            }
        };
        let addr = line.strip_prefix("listening on ").unwrap_or_else(|| {
            panic!(
                "first stdout line of `callscribe serve` is {line:?}, expected \
                 `listening on 127.0.0.1:PORT`; stderr:\n{}",
                server.stderr()
            )
        });
        let parsed: SocketAddr = addr
            .parse()
            .unwrap_or_else(|e| panic!("`{addr}` in {line:?} is not an address: {e}"));
        assert!(parsed.ip().is_loopback(), "{line:?}");
        assert_ne!(parsed.port(), 0, "the real port, not 0: {line:?}");
        eprintln!("server up at {addr} after {:?}", started.elapsed());
        server.addr = addr.to_owned();
        server
    }

    pub(crate) fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn client_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.python);
        cmd.arg(repo().join("tests/python/client.py"))
            .args(["--server", &self.addr])
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `tests/python/client.py --server ADDR ARGS…`.
    fn client(&self, args: &[&str]) -> Output {
        self.client_command(args)
            .output()
            .expect("running tests/python/client.py")
    }

    /// The client's output and the server's log, for assertion messages.
    pub(crate) fn report(&self, out: &Output) -> String {
        format!(
            "client exit: {:?}\nclient stdout:\n{}\nclient stderr:\n{}\nserver stderr:\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.stderr()
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        let _ = Command::new("sh")
            .args(["-c", "kill -TERM \"$0\"", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Each stdout line of the client as JSON.
pub(crate) fn json_lines(server: &Server, out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| {
                panic!("client line {l:?} is not JSON: {e}\n{}", server.report(out))
            })
        })
        .collect()
}

/// An integer field of protobuf JSON: absent = 0, uint64 as a string, uint32 as a number.
fn uint(v: &Value, key: &str) -> u64 {
    match &v[key] {
        Value::Null => 0,
        Value::Number(n) => n.as_u64().unwrap_or_else(|| panic!("{key} in {v}")),
        Value::String(s) => s.parse().unwrap_or_else(|_| panic!("{key} in {v}")),
        other => panic!("{key} is {other} in {v}"),
    }
}

fn string<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

fn overlap(a: (u64, u64), b: (u64, u64)) -> u64 {
    a.1.min(b.1).saturating_sub(a.0.max(b.0))
}

#[test]
fn a_mulaw_call_streamed_from_python_comes_back_as_finals_on_the_reference_timeline() {
    let wav = fixture("calls/en_call_8k.wav");
    let reference = Reference::of(&wav);
    let server = Server::start();
    let call_id = "py-wire-call-1";
    let out = server.client(&[
        "--wav",
        wav.to_str().unwrap(),
        "--encoding",
        "mulaw",
        "--chunk-ms",
        "100",
        "--call-id",
        call_id,
        "--language",
        "en",
        "--model",
        "base",
        "--timeout",
        "300",
    ]);
    let report = server.report(&out);
    assert!(out.status.success(), "client failed\n{report}");
    let responses = json_lines(&server, &out);
    assert!(!responses.is_empty(), "no responses\n{report}");

    // The accepted config comes first and echoes the call.
    let accepted = &responses[0]["accepted_config"];
    assert!(
        accepted.is_object(),
        "first response: {}\n{report}",
        responses[0]
    );
    assert_eq!(string(accepted, "call_id"), call_id, "{report}");
    assert_eq!(string(accepted, "encoding"), "MULAW", "{report}");
    assert_eq!(uint(accepted, "sample_rate_hz"), 8000, "{report}");
    assert_eq!(uint(accepted, "channel_count"), 2, "{report}");
    for r in &responses {
        assert_eq!(string(r, "call_id"), call_id, "call_id on {r}\n{report}");
        assert!(
            r.get("interim").is_none(),
            "interim results were not asked for: {r}\n{report}"
        );
    }
    assert_eq!(
        responses
            .iter()
            .filter(|r| r.get("accepted_config").is_some())
            .count(),
        1,
        "{report}"
    );

    // Finals: ids unique and `{call_id}/{channel}/{sequence}`, sequences 0, 1, … per channel.
    let finals: Vec<&Value> = responses.iter().filter_map(|r| r.get("final")).collect();
    let mut ids = HashSet::new();
    let mut next_sequence: HashMap<u64, u64> = HashMap::new();
    for f in &finals {
        let id = string(f, "segment_id");
        assert!(
            ids.insert(id.to_owned()),
            "duplicate segment_id {id}\n{report}"
        );
        let (channel, sequence) = (uint(f, "channel"), uint(f, "sequence"));
        assert_eq!(id, format!("{call_id}/{channel}/{sequence}"), "{report}");
        let expected = next_sequence.entry(channel).or_default();
        assert_eq!(sequence, *expected, "sequence of {id}\n{report}");
        *expected += 1;
        assert!(uint(f, "start_ms") < uint(f, "end_ms"), "{f}\n{report}");
    }

    // Each final lies on the reference utterance it overlaps most: same channel and role,
    // boundaries within BOUNDARY_MS; every reference utterance gets at least one final.
    let mut per_utterance: Vec<Vec<&Value>> = vec![Vec::new(); reference.utterances.len()];
    for f in &finals {
        let span = (uint(f, "start_ms"), uint(f, "end_ms"));
        let (best, shared) = reference
            .utterances
            .iter()
            .enumerate()
            .map(|(i, u)| (i, overlap(span, (u.start_ms, u.end_ms))))
            .max_by_key(|&(_, o)| o)
            .unwrap();
        assert!(
            shared > 0,
            "final overlaps no reference utterance: {f}\n{report}"
        );
        let u = &reference.utterances[best];
        assert_eq!(
            uint(f, "channel"),
            u64::from(u.channel),
            "channel of {f} (reference {u:?})\n{report}"
        );
        assert!(
            string(f, "role").eq_ignore_ascii_case(&u.role),
            "role of {f} (reference {u:?})\n{report}"
        );
        assert!(
            span.0 + BOUNDARY_MS >= u.start_ms && span.1 <= u.end_ms + BOUNDARY_MS,
            "{f} runs outside reference {u:?} by more than {BOUNDARY_MS} ms\n{report}"
        );
        per_utterance[best].push(f);
    }
    for (u, group) in reference.utterances.iter().zip(&per_utterance) {
        assert!(!group.is_empty(), "no final for reference {u:?}\n{report}");
        // An utterance may come back split; its first start and last end bound it.
        let start = group.iter().map(|f| uint(f, "start_ms")).min().unwrap();
        let end = group.iter().map(|f| uint(f, "end_ms")).max().unwrap();
        assert!(
            start.abs_diff(u.start_ms) <= BOUNDARY_MS && end.abs_diff(u.end_ms) <= BOUNDARY_MS,
            "finals {start}–{end} ms for reference {u:?}: boundaries off by more than \
             {BOUNDARY_MS} ms\n{report}"
        );
    }

    // Word error rate per channel.
    for channel in 0..reference.channels {
        let mut on_channel: Vec<&Value> = finals
            .iter()
            .copied()
            .filter(|f| uint(f, "channel") == u64::from(channel))
            .collect();
        on_channel.sort_by_key(|f| uint(f, "start_ms"));
        let hypothesis = on_channel
            .iter()
            .map(|f| string(f, "text").trim())
            .collect::<Vec<_>>()
            .join(" ");
        let expected = reference.channel_text(channel);
        let wer = word_error_rate(&expected, &hypothesis);
        eprintln!("channel {channel}: WER {wer:.3}\n  ref: {expected}\n  hyp: {hypothesis}");
        assert!(
            wer <= MAX_WER,
            "channel {channel}: WER {wer:.3} > {MAX_WER}\n  ref: {expected}\n  hyp: \
             {hypothesis}\n{report}"
        );
    }

    // The stream ends with the summary, which counts the finals.
    let last = responses.last().unwrap();
    let summary = &last["summary"];
    assert!(summary.is_object(), "last response: {last}\n{report}");
    assert_eq!(
        responses
            .iter()
            .filter(|r| r.get("summary").is_some())
            .count(),
        1,
        "{report}"
    );
    assert_eq!(string(summary, "call_id"), call_id, "{report}");
    assert_eq!(
        uint(summary, "final_results"),
        finals.len() as u64,
        "{report}"
    );
    let audio_ms = uint(summary, "audio_ms");
    assert!(
        audio_ms.abs_diff(reference.duration_ms) <= 20,
        "summary audio_ms {audio_ms}, recording {} ms\n{report}",
        reference.duration_ms
    );
}

#[test]
fn python_lists_the_loaded_model_and_sees_the_server_serving() {
    let server = Server::start();

    let out = server.client(&["--list-models", "--timeout", "30"]);
    let report = server.report(&out);
    assert!(out.status.success(), "{report}");
    let lines = json_lines(&server, &out);
    assert_eq!(lines.len(), 1, "{report}");
    let models = lines[0]["models"]
        .as_array()
        .unwrap_or_else(|| panic!("no models array\n{report}"));
    let tiny = models
        .iter()
        .find(|m| string(m, "name") == "tiny.en")
        .unwrap_or_else(|| panic!("tiny.en not listed\n{report}"));
    assert_ne!(
        tiny["multilingual"],
        Value::Bool(true),
        "tiny.en is English-only\n{report}"
    );

    let out = server.client(&["--health", "--timeout", "30"]);
    let report = server.report(&out);
    assert!(out.status.success(), "{report}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "SERVING",
        "{report}"
    );
}

#[test]
fn an_impossible_sample_rate_is_invalid_argument_over_the_wire() {
    let server = Server::start();
    let out = server.client(&[
        "--wav",
        fixture("calls/en_call_8k.wav").to_str().unwrap(),
        "--encoding",
        "mulaw",
        "--sample-rate",
        "1000000",
        "--call-id",
        "py-wire-bad-rate",
        "--timeout",
        "60",
    ]);
    let report = server.report(&out);
    assert_eq!(out.status.code(), Some(2), "{report}");
    let lines = json_lines(&server, &out);
    assert!(
        lines.iter().all(|l| l.get("accepted_config").is_none()),
        "a bad config must not be accepted\n{report}"
    );
    let error = &lines
        .last()
        .unwrap_or_else(|| panic!("no output\n{report}"))["error"];
    assert_eq!(string(error, "code"), "INVALID_ARGUMENT", "{report}");
    let details = string(error, "details").to_lowercase();
    assert!(
        details.contains("sample rate") || details.contains("sample_rate"),
        "the message should name the sample rate: {details:?}\n{report}"
    );

    // The rejected call leaves the server serving.
    let out = server.client(&["--health", "--timeout", "30"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "SERVING",
        "{}",
        server.report(&out)
    );
}

#[test]
fn sigterm_during_a_live_call_delivers_its_open_utterance_then_unavailable() {
    // Without draining: SIGTERM finalises the open utterance at once (the drain is tested
    // in haproxy.rs).
    let mut server = Server::start_with(&["--also-load", "tiny.en", "--drain-timeout", "0"]);
    let wav = fixture("calls/en_call_8k.wav");
    let client = server
        .client_command(&[
            "--wav",
            wav.to_str().unwrap(),
            "--encoding",
            "mulaw",
            "--realtime",
            "--call-id",
            "py-sigterm",
            "--language",
            "en",
            "--model",
            "base",
            "--timeout",
            "120",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the Python client");
    // 4 s into the call the agent's first utterance (0.5–5.5 s) is still being spoken.
    std::thread::sleep(Duration::from_secs(4));
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let out = client.wait_with_output().expect("client ends");
    let report = server.report(&out);
    let lines = json_lines(&server, &out);
    let finals: Vec<&Value> = lines.iter().filter_map(|l| l.get("final")).collect();
    assert!(
        finals
            .iter()
            .any(|f| string(f, "text").to_lowercase().contains("customer")),
        "the open utterance is finalised and delivered\n{report}"
    );
    assert!(
        finals.iter().all(|f| uint(f, "end_ms") <= 6000),
        "nothing after the signal\n{report}"
    );
    assert!(lines.iter().any(|l| l.get("summary").is_some()), "{report}");
    assert_eq!(
        string(&lines.last().unwrap()["error"], "code"),
        "UNAVAILABLE",
        "{report}"
    );
    // The server exits by itself, successfully.
    let deadline = Instant::now() + Duration::from_secs(30);
    let code = loop {
        if let Some(code) = server.child.try_wait().expect("wait") {
            break code;
        }
        assert!(Instant::now() < deadline, "server still running\n{report}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(code.success(), "server exit {code:?}\n{}", server.stderr());
}

/// `callscribe keys new --tenant ID`: (the key, the TOML lines it printed).
fn new_key(tenant: &str) -> (String, String) {
    let out = callscribe()
        .args(["keys", "new", "--tenant", tenant])
        .output()
        .expect("running `callscribe keys new`");
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).expect("UTF-8");
    let (key, toml) = stdout.split_once('\n').expect("the key, then the TOML");
    assert!(key.starts_with("cs_") && key.len() >= 40, "{key:?}");
    assert!(
        !toml.contains(key),
        "the key must not be in the config lines: {toml}"
    );
    (key.to_owned(), toml.to_owned())
}

/// Python's grpcio against the real `callscribe serve` under mutual TLS with an API key made
/// by `callscribe keys new`: the call streams; a client without a certificate, or without the
/// key, is refused; the key is revoked by editing the config and SIGHUP; every call leaves an
/// audit line naming tenant, call, peer and certificate, and no line holds the key.
#[test]
fn python_over_mutual_tls_with_a_key_streams_a_call_and_sighup_revokes_the_key() {
    use common::pki::{write, Ca, ServerFiles};
    let ca = Ca::new("callscribe test CA");
    let clients = Ca::new("clients CA");
    let files = ServerFiles::new(&ca.server(), Some(&clients));
    let dir = files.dir.path();
    let client = clients.client("pbx-1.acme.example");
    let (client_cert, client_key) = (
        write(dir, "client.pem", &client.cert_pem),
        write(dir, "client.key", &client.key_pem),
    );
    let ca_pem = write(dir, "ca.pem", &ca.pem());
    let (key, acme) = new_key("acme");
    let (_, other) = new_key("other");
    let server_tls = format!(
        "[server.tls]\ncert_path = {:?}\nkey_path = {:?}\nclient_ca_path = {:?}\n\n",
        files.cert(),
        files.key(),
        files.client_ca()
    );
    let config = dir.join("callscribe.toml");
    std::fs::write(&config, format!("{server_tls}{acme}\n{other}")).unwrap();
    let server = Server::start_with(&["--config", config.to_str().unwrap(), "--workers", "1"]);
    let tls = [
        "--tls-ca",
        ca_pem.to_str().unwrap(),
        "--tls-cert",
        client_cert.to_str().unwrap(),
        "--tls-key",
        client_key.to_str().unwrap(),
    ];
    let with = |extra: &[&str]| {
        let mut args: Vec<&str> = tls.to_vec();
        args.extend_from_slice(extra);
        server.client(&args)
    };

    // Health over mutual TLS needs no key.
    let out = with(&["--health", "--timeout", "30"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "SERVING",
        "{}",
        server.report(&out)
    );
    // A call with the key streams to its end.
    let wav = fixture("calls/en_call_8k_mono.wav");
    let out = with(&[
        "--api-key",
        &key,
        "--wav",
        wav.to_str().unwrap(),
        "--call-id",
        "py-tls-call",
        "--language",
        "en",
        "--timeout",
        "300",
    ]);
    let report = server.report(&out);
    assert!(out.status.success(), "{report}");
    let lines = json_lines(&server, &out);
    assert!(
        lines
            .iter()
            .filter_map(|l| l.get("final"))
            .any(|f| string(f, "text").to_lowercase().contains("customer")),
        "{report}"
    );
    assert!(lines.iter().any(|l| l.get("summary").is_some()), "{report}");

    // Without the key: UNAUTHENTICATED; as x-api-key it works too.
    let out = with(&["--list-models", "--timeout", "30"]);
    let report = server.report(&out);
    assert_eq!(
        string(&json_lines(&server, &out)[0]["error"], "code"),
        "UNAUTHENTICATED",
        "{report}"
    );
    let out = with(&[
        "--list-models",
        "--api-key",
        &key,
        "--api-key-header",
        "x-api-key",
        "--timeout",
        "30",
    ]);
    assert!(out.status.success(), "{}", server.report(&out));
    // Without a client certificate the connection is refused.
    let out = server.client(&[
        "--tls-ca",
        ca_pem.to_str().unwrap(),
        "--api-key",
        &key,
        "--list-models",
        "--timeout",
        "30",
    ]);
    let report = server.report(&out);
    assert_eq!(out.status.code(), Some(2), "{report}");
    assert_eq!(
        string(&json_lines(&server, &out)[0]["error"], "code"),
        "UNAVAILABLE",
        "{report}"
    );

    // Revoke: acme's table leaves the config file, then SIGHUP.
    std::fs::write(&config, format!("{server_tls}{other}")).unwrap();
    let hup = Command::new("kill")
        .args(["-HUP", &server.child.id().to_string()])
        .status()
        .expect("kill -HUP");
    assert!(hup.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    while !server.stderr().contains("reloaded 1 tenants") {
        assert!(Instant::now() < deadline, "no reload:\n{}", server.stderr());
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = with(&["--list-models", "--api-key", &key, "--timeout", "30"]);
    let report = server.report(&out);
    assert_eq!(
        string(&json_lines(&server, &out)[0]["error"], "code"),
        "UNAUTHENTICATED",
        "{report}"
    );

    // The audit trail: the call's line, and no key anywhere in the log.
    let log = server.stderr();
    let call = log
        .lines()
        .find(|l| l.contains(" audit ") && l.contains("call_id=\"py-tls-call\""))
        .unwrap_or_else(|| panic!("no audit line for the call:\n{log}"));
    for field in [
        "tenant=\"acme\"",
        "peer=127.0.0.1:",
        "client_cert=\"CN=pbx-1.acme.example SAN=dns:pbx-1.acme.example\"",
        "rpc=\"StreamingTranscribe\"",
        "model=\"base\"",
        "outcome=\"OK\"",
        "audio_secs=41.6",
    ] {
        assert!(call.contains(field), "{field} missing from {call}");
    }
    assert!(
        log.lines()
            .any(|l| l.contains(" audit ") && l.contains("outcome=\"Unauthenticated\"")),
        "refusals are audited too:\n{log}"
    );
    assert!(!log.contains(&key), "the key appears in the log:\n{log}");
    assert!(
        !log.to_lowercase().contains("thank you for calling"),
        "transcript text in the log at INFO:\n{log}"
    );
}
