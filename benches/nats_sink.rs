//! Throughput of the `nats` forwarding sink (issue #20): segments per second from
//! `Forwarder::submit` through the redb spool to JetStream acknowledgements, on a
//! `nats-server -js` (or a 3-node cluster with an R3 stream) started here on loopback.
//!
//! ```sh
//! cargo bench --profile dev --bench nats_sink -- --segments 5000 --calls 50
//! cargo bench --profile dev --bench nats_sink -- --segments 5000 --calls 50 --cluster
//! ```
//!
//! One delivery task publishes a sink's segments in order and waits for each
//! acknowledgement before the next (the spool's order per call rests on it), so the figure is
//! about one round trip to JetStream (a stored, fsynced or replicated message) plus one spool
//! commit per segment.

use callscribe::forward::config::NatsSinkConfig;
use callscribe::forward::{ForwardConfig, ForwardMetrics, ForwardSegment, Forwarder, SinkConfig};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Args {
    segments: usize,
    calls: usize,
    cluster: bool,
}

fn args() -> Args {
    let mut a = Args {
        segments: 5000,
        calls: 50,
        cluster: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--segments" => a.segments = it.next().and_then(|v| v.parse().ok()).unwrap_or(5000),
            "--calls" => a.calls = it.next().and_then(|v| v.parse().ok()).unwrap_or(50),
            "--cluster" => a.cluster = true,
            _ => {} // cargo bench passes --bench
        }
    }
    a
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Killed(Vec<Child>);

impl Drop for Killed {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// nats-server processes (one, or three clustered) and their client URLs.
fn start_nats(dir: &std::path::Path, cluster: bool) -> (Killed, Vec<String>) {
    let n = if cluster { 3 } else { 1 };
    let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
    let routes: Vec<u16> = (0..n).map(|_| free_port()).collect();
    let all_routes = routes
        .iter()
        .map(|p| format!("nats://127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut children = Vec::new();
    for i in 0..n {
        let store = dir.join(format!("n{i}"));
        let mut cmd = Command::new("nats-server");
        cmd.args(["-a", "127.0.0.1", "-p", &ports[i].to_string(), "-js", "-sd"])
            .arg(&store)
            .args(["--server_name", &format!("n{i}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if cluster {
            cmd.args(["--cluster_name", "bench", "--cluster"])
                .arg(format!("nats://127.0.0.1:{}", routes[i]))
                .args(["--routes", &all_routes]);
        }
        children.push(cmd.spawn().expect("nats-server on PATH (scripts/setup.sh)"));
    }
    for p in &ports {
        while std::net::TcpStream::connect(("127.0.0.1", *p)).is_err() {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    (
        Killed(children),
        ports
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect(),
    )
}

fn segment(call: usize, seq: u64) -> ForwardSegment {
    ForwardSegment {
        call_id: format!("bench-{call}"),
        segment_id: format!("bench-{call}/0/{seq}"),
        sequence: seq,
        channel: 0,
        role: "customer".into(),
        dialect: String::new(),
        raw_text: "I was charged twice for my order and I would like a refund please".into(),
        text: "I was charged twice for my order and I would like a refund please".into(),
        start_ms: seq * 3000,
        end_ms: seq * 3000 + 2500,
        call_started_at_unix_ms: 1_700_000_000_000,
        confidence: 0.8,
        language: "en".into(),
        tenant: "acme".into(),
    }
}

fn main() {
    let a = args();
    let dir = tempfile::tempdir().unwrap();
    let (_servers, urls) = start_nats(dir.path(), a.cluster);
    let servers = urls
        .iter()
        .map(|u| format!("{u:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    let replicas = if a.cluster { 3 } else { 1 };
    let sink: NatsSinkConfig = toml::from_str(&format!(
        "name = \"nats\"\nservers = [{servers}]\nreplicas = {replicas}\n"
    ))
    .unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let fwd = Forwarder::start(
            ForwardConfig {
                spool: Some(dir.path().join("spool.redb")),
                sinks: vec![SinkConfig::Nats(sink)],
                retry_initial_ms: 20,
                retry_max_ms: 500,
                ..ForwardConfig::default()
            },
            ForwardMetrics::new(),
        )
        .unwrap();
        // Warm-up: the connection, the stream (and in a cluster its leader election).
        fwd.submit(segment(usize::MAX, 0));
        assert!(fwd.flush(Duration::from_secs(120)).await, "warm-up");
        let started = Instant::now();
        let per_call = a.segments.div_ceil(a.calls);
        let mut n = 0;
        'outer: for seq in 0..per_call as u64 {
            for call in 0..a.calls {
                if n == a.segments {
                    break 'outer;
                }
                fwd.submit(segment(call, seq));
                n += 1;
            }
        }
        assert!(fwd.flush(Duration::from_secs(600)).await, "flush");
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{n} segments, {} calls, {} → JetStream (R{replicas}): {secs:.2} s, {:.0} segments/s",
            a.calls,
            if a.cluster {
                "3-node cluster"
            } else {
                "one server"
            },
            n as f64 / secs
        );
        fwd.shutdown().await;
    });
}
