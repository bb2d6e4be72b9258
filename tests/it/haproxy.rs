//! Live calls across servers: two real `callscribe serve` processes (`max_streams = 2`)
//! behind a real HAProxy running `deploy/haproxy.cfg` as shipped (HTTP/2 on both sides,
//! health from each server's `/health`). Four calls are all served, two per server; a
//! server sent SIGTERM mid-call drains: its health goes NOT_SERVING (gRPC health and
//! `/health`), HAProxy takes it out, its call runs to the end, a new call lands on the other
//! server, and the drained server exits by itself once its call is over.

use crate::common;
use common::grpc::{audio_msg, call_audio, Resp};
use std::io::{BufRead, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `callscribe serve` child: its gRPC and metrics addresses.
struct Server {
    child: common::Serving,
    grpc: String,
    metrics: String,
}

fn start_server(dir: &Path, name: &str) -> Server {
    let cfg = dir.join(format!("{name}.toml"));
    std::fs::write(
        &cfg,
        "[server]\nmax_streams = 2\ndrain_timeout_secs = 300\nmetrics_listen = \"127.0.0.1:0\"\n\
         idle_timeout_ms = 180000\n\n[forward]\nenabled = false\n",
    )
    .unwrap();
    let mut child = common::callscribe()
        .arg("--config")
        .arg(&cfg)
        .args(["serve", "--model", "tiny.en", "--language", "en"])
        .args(["--listen", "127.0.0.1:0", "--workers", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = || lines.next().expect("serve prints").expect("stdout reads");
    let grpc = next()
        .strip_prefix("listening on ")
        .expect("the address first")
        .to_owned();
    let metrics = next()
        .strip_prefix("metrics on http://")
        .and_then(|m| m.strip_suffix("/metrics"))
        .expect("then the metrics address")
        .to_owned();
    Server {
        child: common::Serving(child),
        grpc,
        metrics,
    }
}

fn port(addr: &str) -> &str {
    addr.rsplit(':').next().unwrap()
}

/// HAProxy on `deploy/haproxy.cfg`; killed on drop.
struct Haproxy {
    child: Child,
    listen: String,
    socket: std::path::PathBuf,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Haproxy {
    fn start(dir: &Path, servers: &[&Server]) -> Self {
        let listen = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .to_string();
        let socket = dir.join("haproxy.sock");
        let child = Command::new("haproxy")
            .arg("-f")
            .arg(common::repo().join("deploy/haproxy.cfg"))
            .env("CALLSCRIBE_LISTEN", &listen)
            .env("CALLSCRIBE_SERVE1", &servers[0].grpc)
            .env("CALLSCRIBE_SERVE2", &servers[1].grpc)
            .env("CALLSCRIBE_HEALTH1", port(&servers[0].metrics))
            .env("CALLSCRIBE_HEALTH2", port(&servers[1].metrics))
            .env("CALLSCRIBE_MAX_STREAMS", "2")
            .env("HAPROXY_STATS_SOCKET", &socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("haproxy runs (scripts/setup.sh installs it)");
        let haproxy = Self {
            child,
            listen,
            socket,
        };
        haproxy.wait_for(&["serve1", "serve2"], "UP");
        haproxy
    }

    /// Each backend server's status (UP, DOWN, …) as HAProxy's admin socket reports it.
    fn statuses(&self) -> Vec<(String, String)> {
        let Ok(mut s) = std::os::unix::net::UnixStream::connect(&self.socket) else {
            return Vec::new();
        };
        s.write_all(b"show stat\n").unwrap();
        let mut csv = String::new();
        s.read_to_string(&mut csv).unwrap();
        let mut lines = csv.lines();
        let header: Vec<&str> = lines
            .next()
            .unwrap_or_default()
            .trim_start_matches("# ")
            .split(',')
            .collect();
        let col = |name: &str| header.iter().position(|h| *h == name);
        let (Some(sv), Some(st)) = (col("svname"), col("status")) else {
            return Vec::new();
        };
        lines
            .map(|l| l.split(',').collect::<Vec<_>>())
            .filter(|f| f.len() > st && f[sv].starts_with("serve"))
            .map(|f| (f[sv].to_owned(), f[st].to_owned()))
            .collect()
    }

    fn wait_for(&self, servers: &[&str], status: &str) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let now = self.statuses();
            if servers
                .iter()
                .all(|s| now.iter().any(|(n, st)| n == s && st == status))
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "want {servers:?} {status}, HAProxy says {now:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn get(url: &str) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut resp = agent.get(url).call().expect("the metrics listener answers");
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_to_string().unwrap_or_default())
}

/// A Prometheus sample's value summed over its label sets.
fn metric(server: &Server, name: &str) -> f64 {
    let (_, text) = get(&format!("http://{}/metrics", server.metrics));
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn grpc_health(server: &Server) -> i32 {
    use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", server.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = HealthClient::new(channel);
    client
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .status
}

const SERVING: i32 = tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
const NOT_SERVING: i32 = tonic_health::pb::health_check_response::ServingStatus::NotServing as i32;

/// The first `fraction` of the English fixture as call `call_id` through `addr`; the ids of
/// the finals and whether a summary closed the call without error.
async fn call(addr: String, call_id: String, fraction: f64) -> (Vec<String>, bool) {
    let (config, chunks) = call_audio(
        &common::fixture("calls/en_call_16k.wav"),
        &call_id,
        callscribe::audio::codec::Encoding::Linear16,
        100,
    );
    let n = (chunks.len() as f64 * fraction) as usize;
    let (tx, mut responses) = crate::forward::open_live_call(&addr, config).await;
    tokio::spawn(async move {
        for c in chunks.into_iter().take(n) {
            if tx.send(audio_msg(c)).await.is_err() {
                return;
            }
        }
    });
    let (mut finals, mut summary) = (Vec::new(), false);
    loop {
        match tokio::time::timeout(Duration::from_secs(300), responses.message()).await {
            Ok(Ok(Some(r))) => match r.response {
                Some(Resp::Final(f)) => finals.push(f.segment_id),
                Some(Resp::Summary(_)) => summary = true,
                _ => {}
            },
            Ok(Ok(None)) => return (finals, summary),
            other => panic!("call {call_id} failed: {other:?} after {finals:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_spreads_calls_and_a_draining_server_finishes_its_call_while_new_ones_go_elsewhere()
{
    let dir = tempfile::tempdir().unwrap();
    let servers = [start_server(dir.path(), "a"), start_server(dir.path(), "b")];
    let haproxy = Haproxy::start(dir.path(), &[&servers[0], &servers[1]]);
    let front = haproxy.listen.clone();

    // Four calls at once, two servers of two slots: every call is served, two on each.
    let calls: Vec<_> = (0..4)
        .map(|i| tokio::spawn(call(front.clone(), format!("four-{i}"), 0.3)))
        .collect();
    for c in calls {
        let (finals, summary) = c.await.unwrap();
        assert!(summary && !finals.is_empty(), "{finals:?}");
    }
    let served: Vec<f64> = servers
        .iter()
        .map(|s| metric(s, "callscribe_calls_total"))
        .collect();
    assert_eq!(served, vec![2.0, 2.0], "calls per server");

    // A call through HAProxy, held open half-way; then its server is sent SIGTERM.
    let (config, mut chunks) = call_audio(
        &common::fixture("calls/en_call_16k.wav"),
        "drained",
        callscribe::audio::codec::Encoding::Linear16,
        100,
    );
    let (tx, mut responses) = crate::forward::open_live_call(&front, config).await;
    let half = chunks.len() / 2;
    let mut rest = chunks.split_off(half);
    for c in chunks {
        tx.send(audio_msg(c)).await.unwrap();
    }
    let mut finals = Vec::new();
    while finals.is_empty() {
        match tokio::time::timeout(Duration::from_secs(120), responses.message()).await {
            Ok(Ok(Some(r))) => {
                if let Some(Resp::Final(f)) = r.response {
                    finals.push((f.segment_id, f.end_ms));
                }
            }
            other => panic!("the call ended before a final: {other:?}"),
        }
    }
    let (busy, other) = if metric(&servers[0], "callscribe_active_streams") == 1.0 {
        (0, 1)
    } else {
        (1, 0)
    };
    assert_eq!(metric(&servers[busy], "callscribe_active_streams"), 1.0);
    let status = Command::new("kill")
        .args(["-TERM", &servers[busy].child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());

    // Draining: NOT_SERVING on both health endpoints, DOWN at HAProxy.
    let deadline = Instant::now() + Duration::from_secs(30);
    while grpc_health(&servers[busy]).await != NOT_SERVING {
        assert!(Instant::now() < deadline, "gRPC health still SERVING");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        get(&format!("http://{}/health", servers[busy].metrics)).0,
        503
    );
    assert_eq!(grpc_health(&servers[other]).await, SERVING);
    let name = |i: usize| format!("serve{}", i + 1);
    haproxy.wait_for(&[&name(busy)], "DOWN");

    // A new call lands on the other server, and completes.
    let before = metric(&servers[other], "callscribe_calls_total");
    let (new_finals, summary) = call(front.clone(), "after-drain".into(), 0.3).await;
    assert!(summary && !new_finals.is_empty(), "{new_finals:?}");
    assert_eq!(
        metric(&servers[other], "callscribe_calls_total"),
        before + 1.0
    );

    // The drained server's call runs to its end: the rest of the audio is transcribed.
    let sender = tokio::spawn(async move {
        for c in rest.drain(..) {
            if tx.send(audio_msg(c)).await.is_err() {
                return;
            }
        }
    });
    let mut summary = false;
    loop {
        match tokio::time::timeout(Duration::from_secs(300), responses.message()).await {
            Ok(Ok(Some(r))) => match r.response {
                Some(Resp::Final(f)) => finals.push((f.segment_id, f.end_ms)),
                Some(Resp::Summary(_)) => summary = true,
                _ => {}
            },
            Ok(Ok(None)) => break,
            other => panic!("the drained call failed: {other:?} after {finals:?}"),
        }
    }
    sender.await.unwrap();
    assert!(summary, "the drained call ends with its summary");
    let audio_ms = 41_650 / 2;
    assert!(
        finals.iter().any(|(_, end)| *end > audio_ms as u64 + 2000),
        "audio sent after SIGTERM was transcribed: {finals:?}"
    );
    // With nothing left in flight it stops by itself, successfully.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut servers = servers;
    let code = loop {
        if let Some(code) = servers[busy].child.0.try_wait().unwrap() {
            break code;
        }
        assert!(
            Instant::now() < deadline,
            "the drained server is still running"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(code.success(), "{code:?}");
}
