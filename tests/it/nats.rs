//! The `nats` forwarding sink against real `nats-server` processes (JetStream, one server or a
//! 3-node cluster on loopback), read back by a consumer of the test's own: every final
//! exactly once, as a CloudEvent on its call's subject, across a replayed spool, a NATS
//! restart, a node of the cluster killed, and a `serve` killed with SIGKILL mid-call.

use crate::common;
use crate::common::nats::{read_stream, NatsServer, Received};
use callscribe::forward::config::NatsSinkConfig;
use callscribe::forward::{
    ForwardConfig, ForwardMetrics, ForwardSegment, Forwarder, SinkConfig, Spool, Spooled,
};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

const STREAM: &str = "CALLSCRIBE";

fn nats_sink(servers: &[String], extra: &str) -> SinkConfig {
    let servers: Vec<String> = servers.iter().map(|s| format!("{s:?}")).collect();
    SinkConfig::Nats(
        toml::from_str::<NatsSinkConfig>(&format!(
            "name = \"nats\"\nservers = [{}]\ntimeout_ms = 2000\n{extra}",
            servers.join(", ")
        ))
        .unwrap(),
    )
}

fn config(spool: &Path, sink: SinkConfig) -> ForwardConfig {
    ForwardConfig {
        spool: Some(spool.to_owned()),
        sinks: vec![sink],
        retry_initial_ms: 20,
        retry_max_ms: 500,
        ..ForwardConfig::default()
    }
}

fn segment(call: &str, seq: u64) -> ForwardSegment {
    ForwardSegment {
        call_id: call.into(),
        segment_id: format!("{call}/0/{seq}"),
        sequence: seq,
        channel: 0,
        role: "agent".into(),
        dialect: String::new(),
        raw_text: format!("words {seq}"),
        text: format!("words {seq}"),
        start_ms: seq * 2000,
        end_ms: seq * 2000 + 1500,
        call_started_at_unix_ms: 1_700_000_000_000,
        confidence: 0.8,
        language: "en".into(),
        tenant: "acme".into(),
    }
}

/// Each message id once, equal to its event's id; and the ids in arrival order.
fn ids_once(received: &[Received]) -> Vec<String> {
    let mut seen = HashSet::new();
    for r in received {
        assert_eq!(r.msg_id, r.event["id"], "Nats-Msg-Id is the event id");
        assert!(seen.insert(r.msg_id.clone()), "{} twice", r.msg_id);
    }
    received.iter().map(|r| r.msg_id.clone()).collect()
}

fn expected(call: &str, n: u64) -> Vec<String> {
    (0..n).map(|s| format!("{call}/0/{s}")).collect()
}

/// The spool replayed whole after everything in it was published (a forwarder killed
/// after JetStream stored its segments but before the spool recorded that): JetStream drops
/// every replay by its `Nats-Msg-Id`, and the stream holds each segment once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_spool_reaches_jetstream_once_by_message_id() {
    let dir = tempfile::tempdir().unwrap();
    let nats = NatsServer::start(dir.path());
    let spool = dir.path().join("spool.redb");
    {
        let s = Spool::open(&spool).unwrap();
        let records: Vec<Spooled> = (0..10)
            .map(|seq| Spooled::final_segment(segment("replay", seq), vec![]))
            .collect();
        s.append(&records, &["nats".to_string()]).unwrap();
    }
    let copy = dir.path().join("copy.redb");
    std::fs::copy(&spool, &copy).unwrap();
    for spool in [&spool, &copy] {
        let fwd = Forwarder::start(
            config(spool, nats_sink(&[nats.url()], "")),
            ForwardMetrics::new(),
        )
        .unwrap();
        assert!(
            fwd.flush(Duration::from_secs(60)).await,
            "{}",
            nats.log_text()
        );
        fwd.shutdown().await;
    }
    let got = read_stream(&nats.url(), STREAM, 10, Duration::from_secs(30)).await;
    assert_eq!(ids_once(&got), expected("replay", 10));
    let first = &got[0];
    assert_eq!(first.subject, "callscribe.acme.calls.replay.segments");
    assert_eq!(first.event["specversion"], "1.0");
    assert_eq!(first.event["type"], "com.callscribe.segment.final");
    assert_eq!(first.event["data"]["text"], "words 0");
    assert_eq!(first.event["data"]["tenant"], "acme");
}

/// NATS killed while a call's segments flow and started again (same storage): what it could
/// not acknowledge waits in the spool, and afterwards the stream holds every segment once,
/// in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_killed_and_restarted_loses_no_segment_and_duplicates_none() {
    let dir = tempfile::tempdir().unwrap();
    let mut nats = NatsServer::start(dir.path());
    let fwd = Forwarder::start(
        config(&dir.path().join("spool.redb"), nats_sink(&[nats.url()], "")),
        ForwardMetrics::new(),
    )
    .unwrap();
    for seq in 0..5 {
        fwd.submit(segment("outage", seq));
    }
    assert!(
        fwd.flush(Duration::from_secs(60)).await,
        "{}",
        nats.log_text()
    );
    nats.kill();
    for seq in 5..12 {
        fwd.submit(segment("outage", seq));
    }
    assert!(
        !fwd.flush(Duration::from_secs(2)).await,
        "NATS is down: nothing can have been acknowledged"
    );
    assert_eq!(fwd.spool().status().unwrap().pending["nats"], 7);
    nats.restart();
    assert!(
        fwd.flush(Duration::from_secs(90)).await,
        "{}",
        nats.log_text()
    );
    fwd.shutdown().await;
    let got = read_stream(&nats.url(), STREAM, 12, Duration::from_secs(30)).await;
    assert_eq!(ids_once(&got), expected("outage", 12));
}

/// NATS down when forwarding starts (the sink has never connected): the segments wait in the
/// spool, and once NATS is up the stream is created and holds each of them once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_down_at_start_gets_every_segment_once_it_is_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut nats = NatsServer::start(dir.path());
    nats.kill();
    let fwd = Forwarder::start(
        config(&dir.path().join("spool.redb"), nats_sink(&[nats.url()], "")),
        ForwardMetrics::new(),
    )
    .expect("a NATS that is down is no reason not to start");
    for seq in 0..5 {
        fwd.submit(segment("late", seq));
    }
    assert!(!fwd.flush(Duration::from_secs(2)).await);
    nats.restart();
    assert!(
        fwd.flush(Duration::from_secs(60)).await,
        "{}",
        nats.log_text()
    );
    fwd.shutdown().await;
    let got = read_stream(&nats.url(), STREAM, 5, Duration::from_secs(30)).await;
    assert_eq!(ids_once(&got), expected("late", 5));
}

/// A 3-node JetStream cluster with an R3 stream: one node killed mid-run, publishing goes on
/// through the other two; the node restarted, publishing still goes on; consumers on a
/// surviving node and on the restarted one read every segment once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_r3_stream_keeps_taking_segments_with_a_cluster_node_killed() {
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = NatsServer::cluster(dir.path(), 3);
    let urls: Vec<String> = nodes.iter().map(NatsServer::url).collect();
    let fwd = Forwarder::start(
        config(
            &dir.path().join("spool.redb"),
            nats_sink(&urls, "replicas = 3\n"),
        ),
        ForwardMetrics::new(),
    )
    .unwrap();
    for seq in 0..10 {
        fwd.submit(segment("cluster", seq));
    }
    // The cluster elects its JetStream leader first: allow for that.
    assert!(
        fwd.flush(Duration::from_secs(120)).await,
        "{}",
        nodes[0].log_text()
    );
    nodes[0].kill();
    for seq in 10..20 {
        fwd.submit(segment("cluster", seq));
    }
    assert!(
        fwd.flush(Duration::from_secs(120)).await,
        "publishing stopped with one node of three down: {}",
        nodes[1].log_text()
    );
    // The node comes back (same storage) and catches up; publishing goes on.
    nodes[0].restart();
    for seq in 20..30 {
        fwd.submit(segment("cluster", seq));
    }
    assert!(
        fwd.flush(Duration::from_secs(120)).await,
        "{}",
        nodes[0].log_text()
    );
    fwd.shutdown().await;
    let got = read_stream(&nodes[1].url(), STREAM, 30, Duration::from_secs(60)).await;
    assert_eq!(ids_once(&got), expected("cluster", 30));
    // The restarted node serves the whole stream too.
    let got = read_stream(&nodes[0].url(), STREAM, 30, Duration::from_secs(60)).await;
    assert_eq!(ids_once(&got), expected("cluster", 30));
    // The stream really is replicated three ways.
    let client = async_nats::connect(nodes[2].url()).await.unwrap();
    let mut stream = async_nats::jetstream::new(client)
        .get_stream(STREAM)
        .await
        .unwrap();
    let info = stream.info().await.unwrap();
    assert_eq!(info.config.num_replicas, 3);
    assert_eq!(
        info.cluster.as_ref().map(|c| c.replicas.len()),
        Some(2),
        "a leader and two replicas: {:?}",
        info.cluster
    );
}

/// Reads the stream until it holds every id in `want` (each once), at most `within`.
async fn wait_for_ids(url: &str, want: &[String], within: Duration) -> Vec<Received> {
    let deadline = std::time::Instant::now() + within;
    loop {
        let got = read_stream(url, STREAM, want.len(), within).await;
        let ids: HashSet<String> = ids_once(&got).into_iter().collect();
        if want.iter().all(|w| ids.contains(w)) {
            return got;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "want {want:?}, the stream has {ids:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `serve` publishing to NATS killed with SIGKILL mid-call and started again: every final its
/// client had is in the stream exactly once, after the call's `started` event; a whole call on
/// the restarted server arrives as `started`, its finals in order, `ended` with the count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_killed_mid_call_publishes_every_final_once_after_restart() {
    use common::grpc::{audio_msg, call_audio, Resp};
    let dir = tempfile::tempdir().unwrap();
    let nats = NatsServer::start(dir.path());
    let cfg = dir.path().join("callscribe.toml");
    std::fs::write(
        &cfg,
        format!(
            "[forward]\nspool = {:?}\nretry_initial_ms = 20\nretry_max_ms = 200\n\n\
             [[forward.sinks]]\nkind = \"nats\"\nservers = [{:?}]\nsource = \"/callscribe/test\"\n",
            dir.path().join("spool.redb").display().to_string(),
            nats.url()
        ),
    )
    .unwrap();
    let (mut child, addr, _) = crate::forward::start_serve(&cfg, false);
    let (config, chunks) = call_audio(
        &common::fixture("calls/en_call_16k.wav"),
        "killed",
        callscribe::audio::codec::Encoding::Linear16,
        100,
    );
    let (tx, mut responses) = crate::forward::open_live_call(&addr, config).await;
    let half = chunks.len() / 2;
    tokio::spawn(async move {
        for c in chunks.into_iter().take(half) {
            if tx.send(audio_msg(c)).await.is_err() {
                return;
            }
        }
        std::future::pending::<()>().await; // never half-closes: killed mid-call
    });
    let mut got = Vec::new();
    while got.len() < 3 {
        match tokio::time::timeout(Duration::from_secs(120), responses.message()).await {
            Ok(Ok(Some(r))) => {
                if let Some(Resp::Final(f)) = r.response {
                    got.push(f.segment_id);
                }
            }
            other => panic!("the call ended before 3 finals: {other:?} after {got:?}"),
        }
    }
    child.kill();

    let (mut child, addr, log) = crate::forward::start_serve(&cfg, false);
    let whole = crate::forward::stream_whole_call(&addr, "whole").await;
    assert!(whole.len() >= 3, "{whole:?}");
    let mut want: Vec<String> = vec!["killed/started".into(), "whole/started".into()];
    want.extend(got.iter().cloned());
    want.extend(whole.iter().cloned());
    want.push("whole/ended".into());
    let received = wait_for_ids(&nats.url(), &want, Duration::from_secs(60)).await;
    child.kill();
    let _ = log;
    let ids = ids_once(&received);
    // Per call: started first; finals in sequence order per channel; ended last.
    let whole_ids: Vec<&String> = ids.iter().filter(|i| i.starts_with("whole/")).collect();
    assert_eq!(whole_ids.first().map(|s| s.as_str()), Some("whole/started"));
    assert_eq!(whole_ids.last().map(|s| s.as_str()), Some("whole/ended"));
    let finals: Vec<String> = whole_ids[1..whole_ids.len() - 1]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(
        finals, whole,
        "the stream has the client's finals, in order"
    );
    let killed_ids: Vec<&String> = ids.iter().filter(|i| i.starts_with("killed/")).collect();
    assert_eq!(killed_ids[0], "killed/started");
    let by_id: HashMap<&str, &Received> = received.iter().map(|r| (r.msg_id.as_str(), r)).collect();
    let ended = &by_id["whole/ended"];
    assert_eq!(ended.subject, "callscribe._.calls.whole.events");
    assert_eq!(ended.event["type"], "com.callscribe.call.ended");
    assert_eq!(ended.event["data"]["finals"], whole.len());
    let fin = &by_id[whole[0].as_str()];
    assert_eq!(fin.subject, "callscribe._.calls.whole.segments");
    assert_eq!(fin.event["source"], "/callscribe/test");
    assert_eq!(fin.event["data"]["call_id"], "whole");
    assert!(!fin.event["data"]["text"].as_str().unwrap().is_empty());
}

/// A NATS server that requires mutual TLS and a token: the sink with the CA, its client
/// certificate and the token file publishes; one without the certificate, or with a wrong
/// token, publishes nothing and keeps its segments spooled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nats_sink_speaks_mutual_tls_with_a_token_and_without_them_delivers_nothing() {
    use common::pki::{write, Ca};
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("nats test CA");
    let server = ca.server();
    let client = ca.client("callscribe");
    let p = |name: &str, text: &str| write(dir.path(), name, text).display().to_string();
    let (ca_pem, cert, key) = (
        p("ca.pem", &ca.pem()),
        p("server.pem", &server.cert_pem),
        p("server.key", &server.key_pem),
    );
    let (client_cert, client_key) = (
        p("client.pem", &client.cert_pem),
        p("client.key", &client.key_pem),
    );
    let (token, wrong) = (p("token", "s3cret-token\n"), p("wrong", "not-it"));
    let nats = NatsServer::start_with(
        dir.path(),
        &[
            "--tls",
            "--tlscert",
            &cert,
            "--tlskey",
            &key,
            "--tlscacert",
            &ca_pem,
            "--tlsverify",
            "--auth",
            "s3cret-token",
        ],
    );
    let tls = |with_cert: bool| {
        if with_cert {
            format!("tls = {{ ca_path = {ca_pem:?}, cert_path = {client_cert:?}, key_path = {client_key:?} }}\n")
        } else {
            format!("tls = {{ ca_path = {ca_pem:?} }}\n")
        }
    };
    let run = |name: &'static str, extra: String| {
        let spool = dir.path().join(format!("{name}.redb"));
        let sink = nats_sink(&[nats.url()], &extra);
        async move {
            let fwd = Forwarder::start(config(&spool, sink), ForwardMetrics::new()).unwrap();
            for seq in 0..3 {
                fwd.submit(segment(name, seq));
            }
            let flushed = fwd
                .flush(Duration::from_secs(if name == "good" { 60 } else { 5 }))
                .await;
            let pending = fwd
                .spool()
                .status()
                .unwrap()
                .pending
                .get("nats")
                .copied()
                .unwrap_or(0);
            fwd.shutdown().await;
            (flushed, pending)
        }
    };
    let good = run("good", format!("{}token_file = {token:?}\n", tls(true))).await;
    assert_eq!(good, (true, 0), "{}", nats.log_text());
    let no_cert = run("nocert", format!("{}token_file = {token:?}\n", tls(false))).await;
    assert_eq!(
        no_cert,
        (false, 3),
        "without a client certificate nothing is delivered"
    );
    let bad_token = run("badtoken", format!("{}token_file = {wrong:?}\n", tls(true))).await;
    assert_eq!(
        bad_token,
        (false, 3),
        "with a wrong token nothing is delivered"
    );
}
