//! The distributed batch (`submit`, `worker`, `jobs status`) against a real `nats-server`
//! with JetStream, with real `callscribe` processes and the real tiny.en model: two workers
//! share a batch, one is killed with SIGKILL mid-file and its job is completed by the
//! other, every job has exactly one result and one completion event, a file that is no
//! audio ends in the dead letters with its error after `max_deliver` deliveries, a double
//! submit queues nothing twice, and `submit --wait` fetches the transcripts.

use crate::common;
use crate::common::nats::{read_stream, NatsServer};
use crate::common::Serving;
use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::path::Path;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

const AUDIO: [(&str, &str); 3] = [
    ("calls/en_call_8k.wav", "a.wav"),
    ("calls/en_call_16k.wav", "b.wav"),
    ("calls/en_terms_8k.wav", "c.wav"),
];
/// Short enough that the killed worker's job comes back within the test, long enough
/// that the in-progress acks (every third of it) keep a working job with its worker.
const ACK_WAIT_SECS: &str = "6";
const MAX_DELIVER: i64 = 3;

fn counts(url: &str) -> serde_json::Value {
    let out = common::callscribe()
        .args(["jobs", "status", "--json", "--nats", url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "jobs status: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("jobs status --json prints JSON")
}

/// `submit` of the folder: its stdout lines, `<state> <job id> <path>`, by file name.
fn submit(
    url: &str,
    dir: &Path,
    extra: &[&str],
) -> (std::process::Output, Vec<(String, String, String)>) {
    let out = common::callscribe()
        .arg("submit")
        .arg(dir)
        .args(["--nats", url, "--model", "tiny.en", "--language", "en"])
        .args(extra)
        .output()
        .unwrap();
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let (state, rest) = l
                .rsplit_once(' ')
                .map(|(head, path)| (head.to_owned(), path.to_owned()))
                .expect("<state> <job id> <path>");
            let (state, id) = state.rsplit_once(' ').expect("<state> <job id>");
            let name = Path::new(&rest)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (state.to_owned(), id.to_owned(), name)
        })
        .collect();
    (out, lines)
}

/// A `worker` whose stdout lines arrive on a channel.
fn worker(url: &str, name: &str, tmp: &Path) -> (Serving, mpsc::Receiver<String>) {
    let mut child = Serving(
        common::callscribe()
            .args([
                "worker",
                "--nats",
                url,
                "--model",
                "tiny.en",
                "--language",
                "en",
            ])
            .args(["--threads", "1", "--workers", "1", "--name", name])
            .args(["--ack-wait", ACK_WAIT_SECS])
            .args(["--max-deliver", &MAX_DELIVER.to_string()])
            // The copy of the recording a killed worker leaves goes with the test's folder.
            .env("TMPDIR", tmp)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("worker starts"),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

#[test]
fn two_workers_share_a_batch_and_a_killed_workers_job_is_done_once_by_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let nats = NatsServer::start(dir.path());
    let url = nats.url();
    let inputs = dir.path().join("in");
    std::fs::create_dir_all(&inputs).unwrap();
    for (fixture, name) in AUDIO {
        std::fs::copy(common::fixture(fixture), inputs.join(name)).unwrap();
    }
    std::fs::write(
        inputs.join("bad.wav"),
        b"this is a text file, not a recording\n",
    )
    .unwrap();

    // Submitted: every file stored and queued once; a second submit queues nothing.
    let (out, first) = submit(&url, &inputs, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(first.len(), 4, "{first:?}");
    assert!(
        first.iter().all(|(state, _, _)| state == "queued"),
        "{first:?}"
    );
    let ids: BTreeMap<String, String> = first
        .iter()
        .map(|(_, id, name)| (name.clone(), id.clone()))
        .collect();
    assert_eq!(
        ids.values().collect::<BTreeSet<_>>().len(),
        4,
        "one job id per file"
    );
    let (out, again) = submit(&url, &inputs, &[]);
    assert!(out.status.success());
    assert!(
        again.iter().all(|(state, _, _)| state == "already queued"),
        "{again:?}"
    );
    let status = counts(&url);
    assert_eq!(status["queued"], 4, "{status}");
    assert_eq!(status["in_progress"], 0, "{status}");
    assert_eq!(status["done"], 0, "{status}");
    assert_eq!(status["failed"], 0, "{status}");

    // Two workers; A is killed (SIGKILL) once it has started on a recording.
    let (mut a, a_lines) = worker(&url, "A", dir.path());
    let (mut b, b_lines) = worker(&url, "B", dir.path());
    let mut a_seen = Vec::new();
    let killed_job = loop {
        let line = a_lines
            .recv_timeout(Duration::from_secs(240))
            .expect("worker A starts a recording");
        a_seen.push(line.clone());
        if let Some(rest) = line.strip_prefix("started ") {
            let mut parts = rest.split(' ');
            let (id, name) = (parts.next().unwrap(), parts.next().unwrap());
            if name != "bad.wav" {
                std::thread::sleep(Duration::from_millis(300));
                a.kill();
                break id.to_owned();
            }
        }
    };
    // A finished nothing it was killed on.
    assert!(
        !a_seen
            .iter()
            .any(|l| l.starts_with(&format!("done {killed_job}"))),
        "{a_seen:?}"
    );

    // `submit --wait` (a resubmit: nothing queued again) fetches every transcript and
    // reports the dead letter.
    let out_dir = dir.path().join("out");
    let mut waiting = Serving(
        common::callscribe()
            .arg("submit")
            .arg(&inputs)
            .args([
                "--nats",
                &url,
                "--model",
                "tiny.en",
                "--language",
                "en",
                "--wait",
            ])
            .arg("--output")
            .arg(&out_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(400);
    let status = loop {
        if let Some(s) = waiting.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "submit --wait did not finish");
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(waiting.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "a job failed, so --wait fails: {stderr}");
    assert!(
        stderr.contains(&format!("error: bad.wav (job {})", ids["bad.wav"])),
        "{stderr}"
    );
    for (_, name) in AUDIO {
        let path = out_dir.join(Path::new(name).with_extension("json"));
        let t: callscribe::transcript::Transcript = serde_json::from_slice(
            &std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}; {stderr}", path.display())),
        )
        .expect("a transcript");
        assert_eq!(t.source, name);
        let words = t
            .segments
            .iter()
            .map(|s| s.text.to_lowercase())
            .collect::<Vec<_>>()
            .join(" ");
        assert!(words.split_whitespace().count() > 20, "{name}: {words}");
    }
    assert!(!out_dir.join("bad.json").exists());

    // Every recording's job completed exactly once: one completion event each, the killed
    // job's by B, on a later delivery.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let done = rt.block_on(read_stream(
        &url,
        "CALLSCRIBE_JOBS_DONE",
        3,
        Duration::from_secs(30),
    ));
    let done_ids: BTreeSet<&str> = done
        .iter()
        .map(|r| r.event["data"]["job_id"].as_str().unwrap())
        .collect();
    let audio_ids: BTreeSet<&str> = AUDIO.iter().map(|(_, n)| ids[*n].as_str()).collect();
    assert_eq!(
        done.len(),
        3,
        "{:?}",
        done.iter().map(|r| &r.subject).collect::<Vec<_>>()
    );
    assert_eq!(done_ids, audio_ids);
    let killed = done
        .iter()
        .find(|r| r.event["data"]["job_id"] == killed_job.as_str())
        .unwrap();
    assert_eq!(killed.event["data"]["worker"], "B");
    assert_eq!(killed.event["type"], "com.callscribe.job.done");
    assert_eq!(killed.subject, format!("callscribe.jobs.done.{killed_job}"));
    // One result object per recording.
    let results = rt.block_on(async {
        use futures::StreamExt;
        let js = async_nats::jetstream::new(async_nats::connect(&url).await.unwrap());
        let store = js.get_object_store("callscribe-results").await.unwrap();
        let mut list = store.list().await.unwrap();
        let mut names = Vec::new();
        while let Some(info) = list.next().await {
            names.push(info.unwrap().name);
        }
        names.sort();
        names
    });
    let mut expected: Vec<String> = audio_ids.iter().map(|id| format!("{id}.json")).collect();
    expected.sort();
    assert_eq!(results, expected);

    // The file that is no recording: a dead letter with its error after max_deliver tries.
    let dead = rt.block_on(read_stream(
        &url,
        "CALLSCRIBE_JOBS_DEAD",
        1,
        Duration::from_secs(30),
    ));
    assert_eq!(dead.len(), 1);
    let letter = &dead[0].event["data"];
    assert_eq!(letter["job_id"], ids["bad.wav"].as_str());
    assert_eq!(letter["file_name"], "bad.wav");
    assert_eq!(letter["deliveries"], MAX_DELIVER);
    let error = letter["error"].as_str().unwrap();
    assert!(error.contains("bad.wav"), "{error}");
    assert!(
        !error.contains("callscribe-job-"),
        "names the temporary copy: {error}"
    );

    let status = counts(&url);
    assert_eq!(status["queued"], 0, "{status}");
    assert_eq!(status["in_progress"], 0, "{status}");
    assert_eq!(status["done"], 3, "{status}");
    assert_eq!(status["failed"], 1, "{status}");

    // B saw the killed job on a later delivery; SIGTERM stops it cleanly.
    let b_seen: Vec<String> = b_lines.try_iter().collect();
    assert!(
        b_seen
            .iter()
            .any(|l| l.starts_with(&format!("started {killed_job} "))
                && !l.ends_with("(delivery 1)")),
        "{b_seen:?}"
    );
    assert_eq!(
        unsafe { libc::kill(b.id() as i32, libc::SIGTERM) },
        0,
        "SIGTERM sent"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = b.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "worker B did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status:?}");
}
