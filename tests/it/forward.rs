//! Forwarding finals downstream: real gRPC and HTTP servers on loopback written here, a real
//! redb spool in a temporary folder, the real binary killed with SIGKILL, the bundled
//! knowledge base against the fixtures' reference utterances.

use crate::common;

use callscribe::forward::{
    ForwardConfig, ForwardMetrics, ForwardSegment, Forwarder, Listener, SinkConfig, Spool, Spooled,
};
use callscribe::kb::KnowledgeBase;
use callscribe::proto::v1 as pb;
use pb::knowledge_lookup_server::{KnowledgeLookup, KnowledgeLookupServer};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::{Request, Response, Status};

/// A downstream that records every segment it accepts, in arrival order.
#[derive(Clone, Default)]
struct Downstream {
    received: Arc<Mutex<Vec<pb::TranscriptSegment>>>,
    /// While set, every lookup answers UNAVAILABLE (an overloaded or restarting service).
    unavailable: Arc<AtomicBool>,
    /// Accept this many, then answer UNAVAILABLE.
    accept_limit: Arc<AtomicUsize>,
}

#[tonic::async_trait]
impl KnowledgeLookup for Downstream {
    async fn lookup(
        &self,
        req: Request<pb::LookupRequest>,
    ) -> Result<Response<pb::LookupResponse>, Status> {
        let r = req.into_inner();
        let seg = r
            .segment
            .ok_or_else(|| Status::invalid_argument("no segment"))?;
        if seg.text.contains("INVALID") {
            return Err(Status::invalid_argument("text refused by policy"));
        }
        if self.unavailable.load(Ordering::SeqCst) {
            return Err(Status::unavailable("restarting"));
        }
        let mut got = self.received.lock().unwrap();
        if got.len() >= self.accept_limit.load(Ordering::SeqCst) {
            return Err(Status::unavailable("over the limit"));
        }
        got.push(seg.clone());
        Ok(Response::new(pb::LookupResponse {
            hits: vec![pb::KnowledgeHit {
                article_id: format!("echo-{}", seg.segment_id),
                title: "echo".into(),
                snippet: format!("context of {}", r.context.len()),
                score: 1.0,
                source: "test".into(),
            }],
        }))
    }
}

impl Downstream {
    fn new() -> Self {
        let d = Self::default();
        d.accept_limit.store(usize::MAX, Ordering::SeqCst);
        d
    }

    fn ids(&self) -> Vec<String> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.segment_id.clone())
            .collect()
    }
}

/// Serves `downstream` on `addr` until the returned sender fires; the join handle ends when
/// the server has closed its connections.
async fn serve(
    downstream: Downstream,
    addr: SocketAddr,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(KnowledgeLookupServer::new(downstream))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                async {
                    let _ = stopped.await;
                },
            )
            .await
            .expect("downstream serves");
    });
    (stop, task)
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn segment(call: &str, seq: u64, text: &str) -> ForwardSegment {
    ForwardSegment {
        call_id: call.into(),
        segment_id: format!("{call}/1/{seq}"),
        sequence: seq,
        channel: 1,
        role: "customer".into(),
        dialect: String::new(),
        raw_text: text.into(),
        text: text.into(),
        start_ms: seq * 2000,
        end_ms: seq * 2000 + 1500,
        call_started_at_unix_ms: 1_700_000_000_000,
        confidence: 0.8,
        language: "en".into(),
        tenant: "acme".into(),
    }
}

fn config(spool: &Path, sinks: Vec<SinkConfig>) -> ForwardConfig {
    ForwardConfig {
        spool: Some(spool.to_owned()),
        sinks,
        retry_initial_ms: 20,
        retry_max_ms: 200,
        ..ForwardConfig::default()
    }
}

/// Every id once, and per call in sequence order (first arrival of each id counts).
fn assert_complete_and_ordered(ids: &[String], calls: &[&str], per_call: u64) {
    let mut seen = HashSet::new();
    let firsts: Vec<&String> = ids.iter().filter(|id| seen.insert(*id)).collect();
    for call in calls {
        let order: Vec<u64> = firsts
            .iter()
            .filter(|id| id.starts_with(&format!("{call}/")))
            .map(|id| id.rsplit('/').next().unwrap().parse().unwrap())
            .collect();
        assert_eq!(
            order,
            (0..per_call).collect::<Vec<_>>(),
            "call {call}: {ids:?}"
        );
    }
}

/// A configuration file that forwards to a gRPC lookup service at `addr` through a spool,
/// retrying every 100 ms at most.
fn write_grpc_forward_config(path: &Path, spool: &Path, addr: SocketAddr) {
    write_grpc_forward_config_retrying(
        path,
        spool,
        addr,
        "retry_initial_ms = 20\nretry_max_ms = 100\n",
    );
}

fn write_grpc_forward_config_retrying(path: &Path, spool: &Path, addr: SocketAddr, retry: &str) {
    std::fs::write(
        path,
        format!(
            "[forward]\nspool = {:?}\n{retry}\n\
             [[forward.sinks]]\nkind = \"grpc\"\nname = \"lookup\"\nendpoint = \"http://{addr}\"\n",
            spool.display().to_string()
        ),
    )
    .unwrap();
}

fn grpc_sink(addr: SocketAddr) -> SinkConfig {
    SinkConfig::Grpc {
        name: Some("lookup".into()),
        endpoint: format!("http://{addr}"),
        timeout_ms: 2000,
        tls: None,
        bearer_token_file: None,
    }
}

/// A lookup service on a free loopback port (its address, and its stop and join handles),
/// and a forwarder with its spool in `dir` delivering to it.
async fn forwarding_to_a_lookup_service(
    dir: &Path,
) -> (
    Downstream,
    SocketAddr,
    (
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    ),
    Forwarder,
) {
    let addr = free_addr();
    let downstream = Downstream::new();
    let server = serve(downstream.clone(), addr).await;
    let fwd = Forwarder::start(
        config(&dir.join("spool.redb"), vec![grpc_sink(addr)]),
        ForwardMetrics::new(),
    )
    .unwrap();
    (downstream, addr, server, fwd)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_downstream_stopped_mid_stream_and_restarted_gets_every_segment_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (downstream, addr, (stop, server), fwd) = forwarding_to_a_lookup_service(dir.path()).await;
    for seq in 0..10 {
        fwd.submit(segment("call-a", seq, "parcel late"));
        fwd.submit(segment("call-b", seq, "charged twice"));
    }
    assert!(
        fwd.flush(Duration::from_secs(20)).await,
        "first half flushed"
    );
    // The downstream goes away while the calls go on.
    stop.send(()).unwrap();
    server.await.unwrap();
    for seq in 10..20 {
        fwd.submit(segment("call-a", seq, "parcel late"));
        fwd.submit(segment("call-b", seq, "charged twice"));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        fwd.spool().status().unwrap().pending["lookup"] > 0,
        "segments wait in the spool while the downstream is down"
    );
    let (stop, server) = serve(downstream.clone(), addr).await;
    assert!(
        fwd.flush(Duration::from_secs(30)).await,
        "all delivered after restart"
    );
    let label = ForwardMetrics::sink("lookup");
    assert!(fwd.metrics().retried.get_or_create(&label).get() > 0);
    assert_eq!(fwd.metrics().delivered.get_or_create(&label).get(), 40);
    fwd.shutdown().await;
    stop.send(()).unwrap();
    server.await.unwrap();
    assert_complete_and_ordered(&downstream.ids(), &["call-a", "call-b"], 20);
    // Context: the call's previous segments travel with each one.
    let got = downstream.received.lock().unwrap();
    assert!(got
        .iter()
        .all(|s| s.call_started_at_unix_ms == 1_700_000_000_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_the_downstream_calls_invalid_is_dead_lettered_and_the_rest_flow() {
    let dir = tempfile::tempdir().unwrap();
    let (downstream, _, (stop, server), fwd) = forwarding_to_a_lookup_service(dir.path()).await;
    for seq in 0..5 {
        let text = if seq == 2 { "INVALID text" } else { "fine" };
        fwd.submit(segment("call-x", seq, text));
    }
    assert!(fwd.flush(Duration::from_secs(20)).await);
    assert_eq!(
        downstream.ids(),
        ["call-x/1/0", "call-x/1/1", "call-x/1/3", "call-x/1/4"]
    );
    let dead = fwd.spool().dead_letters().unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].record.segment.segment_id, "call-x/1/2");
    assert!(
        dead[0].reason.contains("INVALID_ARGUMENT"),
        "{}",
        dead[0].reason
    );
    let label = ForwardMetrics::sink("lookup");
    assert_eq!(fwd.metrics().dead_lettered.get_or_create(&label).get(), 1);
    // Not retried: one rejection, no retry counted.
    assert_eq!(fwd.metrics().retried.get_or_create(&label).get(), 0);
    let text = fwd.metrics().encode();
    assert!(
        text.contains("callscribe_forward_dead_lettered_total{sink=\"lookup\"} 1"),
        "{text}"
    );
    fwd.shutdown().await;
    stop.send(()).unwrap();
    server.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_gets_every_segment_as_json_retrying_5xx_and_parking_4xx() {
    use axum::http::StatusCode;
    let dir = tempfile::tempdir().unwrap();
    let bodies: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let failures_left = Arc::new(AtomicUsize::new(2));
    let app = {
        let bodies = bodies.clone();
        let failures_left = failures_left.clone();
        axum::Router::new().route(
            "/hook",
            axum::routing::post(move |body: String| {
                let bodies = bodies.clone();
                let failures_left = failures_left.clone();
                async move {
                    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                    if v["segment"]["text"].as_str().unwrap().contains("INVALID") {
                        return StatusCode::UNPROCESSABLE_ENTITY;
                    }
                    // The first two attempts meet a server error: retried, not lost.
                    if failures_left
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok()
                    {
                        return StatusCode::SERVICE_UNAVAILABLE;
                    }
                    bodies.lock().unwrap().push(v);
                    StatusCode::NO_CONTENT
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let fwd = Forwarder::start(
        config(
            &dir.path().join("spool.redb"),
            vec![SinkConfig::Webhook {
                name: Some("hook".into()),
                url: format!("http://{addr}/hook"),
                timeout_ms: 2000,
                tls: None,
                bearer_token_file: None,
                signing_secret_file: None,
            }],
        ),
        ForwardMetrics::new(),
    )
    .unwrap();
    for seq in 0..4 {
        let text = if seq == 1 { "INVALID" } else { "my parcel" };
        fwd.submit(segment("call-w", seq, text));
    }
    assert!(fwd.flush(Duration::from_secs(20)).await);
    let bodies = bodies.lock().unwrap().clone();
    let ids: Vec<_> = bodies
        .iter()
        .map(|b| b["segment"]["segment_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["call-w/1/0", "call-w/1/2", "call-w/1/3"]);
    let last = &bodies[2];
    assert_eq!(last["segment"]["start_ms"], 6000);
    assert_eq!(last["segment"]["end_ms"], 7500);
    assert_eq!(last["segment"]["role"], "customer");
    // Context: the call's previous segments (3 by default), the rejected one included.
    let ctx: Vec<_> = last["context"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["sequence"].as_u64().unwrap())
        .collect();
    assert_eq!(ctx, [0, 1, 2]);
    let label = ForwardMetrics::sink("hook");
    assert_eq!(fwd.metrics().retried.get_or_create(&label).get(), 2);
    assert_eq!(fwd.spool().dead_letters().unwrap()[0].reason, "HTTP 422");
    fwd.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ndjson_and_kb_sinks_run_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("finals.ndjson");
    let fwd = Forwarder::start(
        config(
            &dir.path().join("spool.redb"),
            vec![
                SinkConfig::Kb { dir: None },
                SinkConfig::Ndjson {
                    name: None,
                    path: out.clone(),
                },
            ],
        ),
        ForwardMetrics::new(),
    )
    .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    fwd.listen(
        "call-k",
        Listener::new(move |s| tx.try_send(s.clone()).is_ok()),
    );
    fwd.submit(segment(
        "call-k",
        0,
        "Hi, my parcel has not arrived yet. I ordered a pair of headphones last week.",
    ));
    fwd.submit(segment("call-k", 1, "另外，我这个月的话费被扣了两次。"));
    let first = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    let second = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (first.segment_id.as_str(), first.hits[0].article_id.as_str()),
        ("call-k/1/0", "delivery-status-en")
    );
    assert_eq!(
        (
            second.segment_id.as_str(),
            second.hits[0].article_id.as_str()
        ),
        ("call-k/1/1", "double-charge-zh")
    );
    assert!(fwd.flush(Duration::from_secs(10)).await);
    fwd.shutdown().await;
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(
        lines[1]["segment"]["text"],
        "另外，我这个月的话费被扣了两次。"
    );
}

#[test]
fn the_bundled_kb_finds_the_right_article_for_fixture_utterances() {
    let kb = KnowledgeBase::sample().unwrap();
    let en = common::Reference::of(&common::fixture("calls/en_call_16k.wav"));
    let zh = common::Reference::of(&common::fixture("calls/zh_call_16k.wav"));
    let yue = common::Reference::of(&common::fixture("calls/yue_clip_16k.wav"));
    let utterance = |r: &common::Reference, needle: &str| -> String {
        r.utterances
            .iter()
            .find(|u| u.text.contains(needle))
            .unwrap_or_else(|| panic!("no utterance with {needle}"))
            .text
            .clone()
    };
    let cases = [
        (
            utterance(&en, "parcel has not arrived"),
            "delivery-status-en",
        ),
        (utterance(&en, "charged twice"), "double-charge-en"),
        (utterance(&zh, "还没有收到"), "delivery-status-zh"),
        (utterance(&zh, "话费被扣了两次"), "double-charge-zh"),
        (yue.utterances[0].normalized.clone().unwrap(), "returns-zh"),
    ];
    let min = ForwardConfig::default().min_score;
    for (text, want) in cases {
        let hits = kb.query(&text, 3, min).unwrap();
        assert_eq!(
            hits.first().map(|h| h.article_id.as_str()),
            Some(want),
            "{text}: {hits:?}"
        );
    }
    // Small talk is not a suggestion.
    let greeting = utterance(&en, "thank you very much");
    assert!(
        kb.query(&greeting, 3, min).unwrap().is_empty(),
        "{greeting}"
    );
}

/// `callscribe spool replay` with a downstream that takes 3 segments and then stalls
/// (UNAVAILABLE): SIGKILL it, bring the downstream back, replay again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarder_killed_with_segments_spooled_delivers_them_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let spool_path = dir.path().join("spool.redb");
    let addr = free_addr();
    let cfg = dir.path().join("callscribe.toml");
    write_grpc_forward_config(&cfg, &spool_path, addr);
    {
        let spool = Spool::open(&spool_path).unwrap();
        let records: Vec<Spooled> = (0..10)
            .map(|seq| Spooled::final_segment(segment("call-k", seq, "where is my parcel"), vec![]))
            .collect();
        spool.append(&records, &["lookup".to_string()]).unwrap();
    }
    let downstream = Downstream::new();
    downstream.accept_limit.store(3, Ordering::SeqCst);
    let (stop, server) = serve(downstream.clone(), addr).await;

    let mut child = common::callscribe()
        .args(["--config"])
        .arg(&cfg)
        .args(["spool", "replay"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while downstream.ids().len() < 3 {
        assert!(std::time::Instant::now() < deadline, "no delivery started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await; // retrying the 4th now
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let status = common::callscribe()
        .args(["--config"])
        .arg(&cfg)
        .args(["spool", "status", "--json"])
        .output()
        .unwrap();
    assert!(status.status.success());
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let left = status["pending"]["lookup"].as_u64().unwrap();
    assert!((7..=10).contains(&left), "{status}");

    downstream.accept_limit.store(usize::MAX, Ordering::SeqCst);
    let out = common::callscribe()
        .args(["--config"])
        .arg(&cfg)
        .args(["spool", "replay", "--timeout-secs", "60"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stop.send(()).unwrap();
    server.await.unwrap();
    assert_complete_and_ordered(&downstream.ids(), &["call-k"], 10);
    let spool = Spool::open(&spool_path).unwrap();
    let st = spool.status().unwrap();
    assert_eq!((st.segments, st.pending.get("lookup")), (0, None));
}

#[test]
fn kb_query_command_answers_from_the_bundled_sample() {
    let out = common::callscribe()
        .args(["kb", "query", "--json", "我想退货，他们说不行。"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(first["article_id"], "returns-zh");

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.md"),
        "+++\nid = \"wifi\"\ntitle = \"Router keeps dropping Wi-Fi\"\n+++\nRestart the router.\n",
    )
    .unwrap();
    let out = common::callscribe()
        .args(["kb", "index"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join(".index").join("meta.json").exists());
    let out = common::callscribe()
        .args(["kb", "query", "--min-score", "0", "--kb"])
        .arg(dir.path())
        .arg("my wifi router dropped")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("1. wifi"));
}

/// The main job: a live call over gRPC gets `Suggestion`s from the embedded knowledge base,
/// each after the final it answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_call_gets_kb_suggestions_after_its_finals() {
    use common::grpc::{self, Resp};
    let dir = tempfile::tempdir().unwrap();
    let fwd = Forwarder::start(
        config(
            &dir.path().join("spool.redb"),
            vec![SinkConfig::Kb { dir: None }],
        ),
        ForwardMetrics::new(),
    )
    .unwrap();
    let mut handle = callscribe::server::start_with_forwarder(
        grpc::settings(1),
        Box::new(|| Ok(vec![common::engine("tiny.en")])),
        Some(fwd.clone()),
    )
    .await
    .unwrap();
    handle.ready().await.unwrap();
    let mut client = grpc::client(&handle).await;
    let (cfg, chunks) = grpc::call_audio(
        &common::fixture("calls/en_call_16k.wav"),
        "kb-call",
        callscribe::audio::codec::Encoding::Linear16,
        100,
    );
    let out = grpc::stream_call(&mut client, cfg, chunks, None).await;
    assert!(out.status.is_none(), "{:?}", out.status);
    let texts: Vec<_> = out.finals().iter().map(|f| f.text.clone()).collect();
    // The customer's parcel question, as whisper heard it, gets the delivery article.
    let (suggestion_at, parcel) = out
        .responses
        .iter()
        .enumerate()
        .find_map(|(i, r)| match r {
            Resp::Suggestion(s) if s.hits[0].article_id == "delivery-status-en" => {
                Some((i, s.segment_id.clone()))
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("no delivery suggestion; finals: {texts:?}"));
    let final_at = out
        .responses
        .iter()
        .position(|r| matches!(r, Resp::Final(f) if f.segment_id == parcel))
        .expect("the suggestion's final was sent");
    assert!(suggestion_at > final_at);
    let Resp::Final(f) = &out.responses[final_at] else {
        unreachable!()
    };
    assert!(f.text.to_lowercase().contains("parcel"), "{}", f.text);
    // Every suggestion answers a final of this call.
    let finals: HashSet<_> = out.finals().iter().map(|f| f.segment_id.clone()).collect();
    for r in &out.responses {
        if let Resp::Suggestion(s) = r {
            assert!(finals.contains(&s.segment_id), "{}", s.segment_id);
        }
    }
    assert!(handle
        .metrics_text()
        .contains("callscribe_forward_delivered_total{sink=\"kb\"}"));
    handle.shutdown();
    handle.stopped().await.unwrap();
    fwd.shutdown().await;
}

#[test]
fn transcribe_json_lists_kb_suggestions_for_the_segments() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("callscribe.toml");
    std::fs::write(
        &cfg,
        format!(
            "[forward]\nspool = {:?}\n",
            dir.path().join("spool.redb").display().to_string()
        ),
    )
    .unwrap();
    let out = common::callscribe()
        .arg("--config")
        .arg(&cfg)
        .arg("transcribe")
        .arg(common::fixture("calls/en_call_16k.wav"))
        .args(["--format", "json", "--model", "tiny.en", "--language", "en"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t: callscribe::transcript::Transcript = serde_json::from_slice(&out.stdout).unwrap();
    // segment_id = {file stem}/{channel}/{n-th segment of that channel}.
    let text_of = |id: &str| -> String {
        let mut parts = id.rsplit('/');
        let n: usize = parts.next().unwrap().parse().unwrap();
        let channel: u32 = parts.next().unwrap().parse().unwrap();
        t.segments
            .iter()
            .filter(|s| s.channel == channel)
            .nth(n)
            .unwrap()
            .text
            .to_lowercase()
    };
    let delivery = t
        .suggestions
        .iter()
        .find(|s| s.hits[0].article_id == "delivery-status-en")
        .expect("a delivery suggestion");
    assert!(delivery.segment_id.starts_with("en_call_16k/"));
    assert!(
        text_of(&delivery.segment_id).contains("parcel"),
        "{}",
        text_of(&delivery.segment_id)
    );
    let billing = t
        .suggestions
        .iter()
        .find(|s| s.hits[0].article_id == "double-charge-en")
        .expect("a billing suggestion");
    assert!(text_of(&billing.segment_id).contains("charged twice"));
}

/// What a `serve` process has written to stderr so far: read through a pipe, as a file would
/// be subject to the file size limit the disk-full test sets.
#[derive(Clone, Default)]
pub(crate) struct Log(Arc<Mutex<String>>);

impl Log {
    pub(crate) fn text(&self) -> String {
        self.0.lock().unwrap().clone()
    }

    pub(crate) fn tail(&self) -> String {
        let text = self.text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

/// `callscribe serve` with `cfg` on a free loopback port (tiny.en, English), and its log.
/// With `fillable`, [`set_file_size_limit`] can fill its disk.
pub(crate) fn start_serve(cfg: &Path, fillable: bool) -> (common::Serving, String, Log) {
    use std::io::{BufRead, Read};
    use std::os::unix::process::CommandExt;
    let mut cmd = common::callscribe();
    cmd.args(["--config"])
        .arg(cfg)
        .args(["serve", "--model", "tiny.en", "--language", "en"])
        .args(["--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    if fillable {
        // SAFETY: only an async-signal-safe call between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                // A write past the file size limit fails with EFBIG instead of killing
                // the process, as a write to a full disk fails with ENOSPC.
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                Ok(())
            });
        }
    }
    let mut child = cmd.spawn().unwrap();
    let log = Log::default();
    let mut stderr = child.stderr.take().unwrap();
    let into = log.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = stderr.read(&mut buf) {
            into.0
                .lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("first line: {line:?}; log: {}", log.text()))
        .to_owned();
    (common::Serving(child), addr, log)
}

/// Limits the files `pid` writes to `bytes` (RLIMIT_FSIZE): writes beyond it fail, to that
/// process, as they would on a full disk.
fn set_file_size_limit(pid: u32, bytes: libc::rlim_t) {
    let lim = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: a plain system call on our own child's pid.
    let rc = unsafe {
        libc::prlimit(
            pid as libc::pid_t,
            libc::RLIMIT_FSIZE,
            &lim,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
}

/// Opens a streaming call on `serve` at `addr`, waiting (up to a minute) for its model to load.
pub(crate) async fn open_live_call(
    addr: &str,
    config: pb::StreamingConfig,
) -> (
    tokio::sync::mpsc::Sender<pb::StreamingTranscribeRequest>,
    tonic::Streaming<pb::StreamingTranscribeResponse>,
) {
    use common::grpc::{config_msg, open_call};
    let mut client = loop {
        if let Ok(c) =
            pb::transcription_client::TranscriptionClient::connect(format!("http://{addr}")).await
        {
            break c;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        match open_call(&mut client, vec![config_msg(config.clone())]).await {
            (tx, Ok(r)) => return (tx, r),
            (_, Err(s)) if s.code() == tonic::Code::Unavailable => {
                assert!(std::time::Instant::now() < deadline, "{s:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            (_, Err(s)) => panic!("{s:?}"),
        }
    }
}

/// Streams the English call fixture as call `call_id` (all of it, then half-closes) and
/// returns the ids of the finals the client received, after the call ended without error.
pub(crate) async fn stream_whole_call(addr: &str, call_id: &str) -> Vec<String> {
    use common::grpc::{audio_msg, call_audio, Resp};
    let (config, chunks) = call_audio(
        &common::fixture("calls/en_call_16k.wav"),
        call_id,
        callscribe::audio::codec::Encoding::Linear16,
        100,
    );
    let (tx, mut responses) = open_live_call(addr, config).await;
    tokio::spawn(async move {
        for c in chunks {
            if tx.send(audio_msg(c)).await.is_err() {
                return;
            }
        }
    });
    let mut got = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(180), responses.message()).await {
            Ok(Ok(Some(r))) => {
                if let Some(Resp::Final(f)) = r.response {
                    got.push(f.segment_id);
                }
            }
            Ok(Ok(None)) => return got,
            other => panic!("call {call_id} failed: {other:?} after {got:?}"),
        }
    }
}

/// Each id's first copy (what an idempotent consumer keeps), checked to be in sequence order
/// per call and channel.
fn firsts_in_order(ids: &[String]) -> Vec<String> {
    let mut seen = HashSet::new();
    let firsts: Vec<String> = ids.iter().filter(|id| seen.insert(*id)).cloned().collect();
    let mut last: std::collections::HashMap<&str, u64> = Default::default();
    for id in &firsts {
        let (stream, seq) = id.rsplit_once('/').unwrap();
        let seq: u64 = seq.parse().unwrap();
        if let Some(prev) = last.insert(stream, seq) {
            assert!(prev < seq, "{id} after sequence {prev}: {ids:?}");
        }
    }
    firsts
}

/// Waits until every id in `want` has reached `downstream`; a failure shows the end of the
/// server's `log`.
async fn wait_for_delivery(downstream: &Downstream, want: &[String], within: Duration, log: &Log) {
    let deadline = std::time::Instant::now() + within;
    while !want.iter().all(|id| downstream.ids().contains(id)) {
        assert!(
            std::time::Instant::now() < deadline,
            "client got {want:?}, lookup got {:?}; the server's log ends:\n{}",
            downstream.ids(),
            log.tail()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `serve` killed with SIGKILL in the middle of a call whose finals could not be forwarded
/// yet (the lookup service down): every final the client had received reaches the lookup
/// service after a restart, each id once at a consumer that keeps the first copy, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_killed_mid_call_delivers_every_final_the_client_got_after_restart() {
    use common::grpc::{audio_msg, call_audio, Resp};
    let dir = tempfile::tempdir().unwrap();
    let spool_path = dir.path().join("spool.redb");
    let lookup = free_addr();
    let cfg = dir.path().join("callscribe.toml");
    write_grpc_forward_config(&cfg, &spool_path, lookup);
    let downstream = Downstream::new();
    downstream.unavailable.store(true, Ordering::SeqCst);
    let (stop, server) = serve(downstream.clone(), lookup).await;

    let (mut child, addr, _) = start_serve(&cfg, false);
    let (config, chunks) = call_audio(
        &common::fixture("calls/en_call_16k.wav"),
        "killed",
        callscribe::audio::codec::Encoding::Linear16,
        100,
    );
    let (tx, mut responses) = open_live_call(&addr, config).await;
    // Half the call as fast as the server reads it; the call stays open.
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
    child.kill(); // the call open, its finals spooled and undelivered
    assert!(
        downstream.ids().is_empty(),
        "the lookup service was down: nothing can have been delivered"
    );

    downstream.unavailable.store(false, Ordering::SeqCst);
    let (mut child, _, log) = start_serve(&cfg, false);
    wait_for_delivery(&downstream, &got, Duration::from_secs(60), &log).await;
    child.kill();
    stop.send(()).unwrap();
    server.await.unwrap();
    let firsts = firsts_in_order(&downstream.ids());
    assert!(got.iter().all(|id| firsts.contains(id)));
}

/// The spool's disk full in the middle of calls (the process may not grow the spool file:
/// every write fails as on a full disk): the calls' finals still reach their clients, the log
/// says what failed, and once the disk has room again every final is forwarded, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spool_disk_holds_up_no_final_and_loses_nothing_once_it_has_room() {
    let dir = tempfile::tempdir().unwrap();
    let spool_path = dir.path().join("spool.redb");
    let lookup = free_addr();
    let cfg = dir.path().join("callscribe.toml");
    write_grpc_forward_config(&cfg, &spool_path, lookup);
    let downstream = Downstream::new();
    let (stop, server) = serve(downstream.clone(), lookup).await;
    let (mut child, addr, log) = start_serve(&cfg, true);
    // Once it runs, its disk is full: no write past the spool's first page succeeds.
    set_file_size_limit(child.id(), 4096);

    let got = stream_whole_call(&addr, "disk-full").await;
    assert!(got.len() >= 3, "finals reached the client: {got:?}");
    let errors = log.text();
    assert!(
        errors.contains("File too large") && errors.contains("wait in memory"),
        "the log says the spool cannot be written: {errors}"
    );
    assert!(
        downstream.ids().is_empty(),
        "nothing could be spooled, so nothing was forwarded: {:?}",
        downstream.ids()
    );

    // The disk has room again.
    set_file_size_limit(child.id(), libc::RLIM_INFINITY);
    wait_for_delivery(&downstream, &got, Duration::from_secs(60), &log).await;
    child.kill();
    stop.send(()).unwrap();
    server.await.unwrap();
    assert_eq!(firsts_in_order(&downstream.ids()), got);
}

/// The knowledge lookup service down (its port closed) for a full minute while two calls
/// stream: every final of both calls arrives once it is back, in order per call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_service_down_for_a_minute_gets_every_final_afterwards_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let spool_path = dir.path().join("spool.redb");
    let lookup = free_addr();
    let cfg = dir.path().join("callscribe.toml");
    // The default retry policy: backoff up to 30 s, so the service is back within 30 s of it.
    write_grpc_forward_config_retrying(&cfg, &spool_path, lookup, "");
    let down_since = std::time::Instant::now();
    let (mut child, addr, log) = start_serve(&cfg, false);
    let (a, b) = tokio::join!(
        stream_whole_call(&addr, "outage-a"),
        stream_whole_call(&addr, "outage-b")
    );
    assert!(a.len() >= 3 && b.len() >= 3, "{a:?} {b:?}");
    tokio::time::sleep(Duration::from_secs(60).saturating_sub(down_since.elapsed())).await;
    let downstream = Downstream::new();
    let (stop, server) = serve(downstream.clone(), lookup).await;
    let want: Vec<String> = a.iter().chain(&b).cloned().collect();
    wait_for_delivery(&downstream, &want, Duration::from_secs(45), &log).await;
    child.kill();
    stop.send(()).unwrap();
    server.await.unwrap();
    let firsts = firsts_in_order(&downstream.ids());
    for call in [&a, &b] {
        let of_call: Vec<&String> = firsts
            .iter()
            .filter(|id| id.starts_with(call[0].split('/').next().unwrap()))
            .collect();
        assert_eq!(of_call, call.iter().collect::<Vec<_>>());
    }
}

/// The webhook receiver's side of a signed delivery, written with ring's HMAC (not the
/// crate that signs): the signature over `timestamp.body` with the shared secret, the
/// timestamp within five minutes of now, the bearer token.
fn verify_delivery(
    headers: &axum::http::HeaderMap,
    body: &str,
    secret: &[u8],
) -> Result<(), String> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .ok_or(format!("no {name} header"))
    };
    if header("authorization")? != "Bearer hook-token-1" {
        return Err("wrong bearer token".into());
    }
    let ts = header("x-callscribe-timestamp")?;
    let sig = header("x-callscribe-signature")?
        .strip_prefix("v1=")
        .ok_or("signature without v1=")?;
    let tag: Vec<u8> = (0..sig.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&sig[i..i + 2], 16))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("signature not hex: {e}"))?;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    ring::hmac::verify(&key, format!("{ts}.{body}").as_bytes(), &tag)
        .map_err(|_| "signature does not verify".to_owned())?;
    let sent: i64 = ts.parse().map_err(|_| "timestamp not a number")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    if (now - sent).abs() > 300 {
        return Err(format!("timestamp {sent} is {} s from now", now - sent));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_deliveries_are_signed_and_an_independent_receiver_verifies_them() {
    use axum::http::{HeaderMap, StatusCode};
    let dir = tempfile::tempdir().unwrap();
    let secret = b"a-shared-secret-of-32-bytes-----";
    std::fs::write(
        dir.path().join("secret"),
        format!("{}\n", std::str::from_utf8(secret).unwrap()),
    )
    .unwrap();
    std::fs::write(dir.path().join("token"), "hook-token-1\n").unwrap();
    let verified: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let app = {
        let verified = verified.clone();
        axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let verified = verified.clone();
                async move {
                    // A forgery: the same headers on a body changed by one byte.
                    let forged = body.replacen("my parcel", "my pArcel", 1);
                    match (
                        verify_delivery(&headers, &body, secret),
                        verify_delivery(&headers, &forged, secret),
                    ) {
                        (Ok(()), Err(_)) => {
                            verified
                                .lock()
                                .unwrap()
                                .push(serde_json::from_str(&body).unwrap());
                            StatusCode::NO_CONTENT
                        }
                        // Refused: parked as a dead letter with the reason, seen below.
                        _ => StatusCode::UNAUTHORIZED,
                    }
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let fwd = Forwarder::start(
        config(
            &dir.path().join("spool.redb"),
            vec![SinkConfig::Webhook {
                name: Some("signed".into()),
                url: format!("http://{addr}/hook"),
                timeout_ms: 2000,
                tls: None,
                bearer_token_file: Some(dir.path().join("token")),
                signing_secret_file: Some(dir.path().join("secret")),
            }],
        ),
        ForwardMetrics::new(),
    )
    .unwrap();
    for seq in 0..3 {
        fwd.submit(segment("call-s", seq, "my parcel"));
    }
    assert!(fwd.flush(Duration::from_secs(20)).await);
    let got = verified.lock().unwrap().clone();
    assert_eq!(got.len(), 3, "{got:?}");
    // The tenant rides along on every segment.
    assert!(
        got.iter().all(|b| b["segment"]["tenant"] == "acme"),
        "{got:?}"
    );
    assert!(fwd.spool().dead_letters().unwrap().is_empty());
    fwd.shutdown().await;
}

/// The gRPC sink to a lookup service that requires TLS with a client certificate and a
/// bearer token: certificates made here, the downstream checks the token itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_sink_reaches_a_lookup_service_over_mutual_tls_with_a_bearer_token() {
    use common::pki::{write, Ca};
    use tonic::transport::{Certificate, Identity, ServerTlsConfig};
    let dir = tempfile::tempdir().unwrap();
    let (ca, clients) = (Ca::new("lookup CA"), Ca::new("callscribe clients"));
    let (server_leaf, client_leaf) = (ca.server(), clients.client("callscribe-1"));
    let downstream = Downstream::new();
    let tokens_seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let check = {
        let tokens_seen = tokens_seen.clone();
        move |req: Request<()>| {
            let token = req
                .metadata()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            tokens_seen.lock().unwrap().push(token.clone());
            if token == "Bearer lookup-token" {
                Ok(req)
            } else {
                Err(Status::unauthenticated("bad token"))
            }
        }
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tls = ServerTlsConfig::new()
        .identity(Identity::from_pem(
            &server_leaf.cert_pem,
            &server_leaf.key_pem,
        ))
        .client_ca_root(Certificate::from_pem(clients.pem()));
    tokio::spawn(
        tonic::transport::Server::builder()
            .tls_config(tls)
            .unwrap()
            .add_service(KnowledgeLookupServer::with_interceptor(
                downstream.clone(),
                check,
            ))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let sink = SinkConfig::Grpc {
        name: Some("lookup-tls".into()),
        endpoint: format!("https://{addr}"),
        timeout_ms: 5000,
        tls: Some(callscribe::forward::config::SinkTls {
            ca_path: Some(write(dir.path(), "ca.pem", &ca.pem())),
            cert_path: Some(write(dir.path(), "client.pem", &client_leaf.cert_pem)),
            key_path: Some(write(dir.path(), "client.key", &client_leaf.key_pem)),
        }),
        bearer_token_file: Some(write(dir.path(), "token", "lookup-token\n")),
    };
    let fwd = Forwarder::start(
        config(&dir.path().join("spool.redb"), vec![sink]),
        ForwardMetrics::new(),
    )
    .unwrap();
    for seq in 0..2 {
        fwd.submit(segment("call-t", seq, "my parcel"));
    }
    assert!(
        fwd.flush(Duration::from_secs(30)).await,
        "delivered over mutual TLS"
    );
    assert_eq!(downstream.ids(), ["call-t/1/0", "call-t/1/1"]);
    assert!(tokens_seen
        .lock()
        .unwrap()
        .iter()
        .all(|t| t == "Bearer lookup-token"));
    // The tenant reaches the lookup service in the protobuf too.
    assert!(downstream
        .received
        .lock()
        .unwrap()
        .iter()
        .all(|s| s.tenant == "acme"));
    fwd.shutdown().await;
}

/// The webhook sink to an https:// receiver that requires a client certificate (served here
/// with callscribe's own TLS listener): delivered with the certificate, not without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_sink_posts_over_mutual_tls_and_a_sink_without_its_certificate_cannot() {
    use axum::http::StatusCode;
    use callscribe::forward::config::SinkTls;
    use callscribe::server::tls::{self, Alpn, ClientAuth, Tls};
    use common::pki::{write, Ca, ServerFiles};
    let dir = tempfile::tempdir().unwrap();
    let (ca, clients) = (Ca::new("hook CA"), Ca::new("callscribe clients"));
    let files = ServerFiles::new(&ca.server(), Some(&clients));
    let receiver_tls =
        Arc::new(Tls::load(&files.config(Some(ClientAuth::Required), 0)).expect("receiver TLS"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let listener = tls::listen(listener, receiver_tls, Alpn::Http1, stop.clone()).unwrap();
    let received: Arc<Mutex<Vec<String>>> = Arc::default();
    let app = {
        let received = received.clone();
        axum::Router::new().route(
            "/hook",
            axum::routing::post(move |body: String| {
                let received = received.clone();
                async move {
                    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                    received
                        .lock()
                        .unwrap()
                        .push(v["segment"]["segment_id"].as_str().unwrap().to_owned());
                    StatusCode::NO_CONTENT
                }
            }),
        )
    };
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = clients.client("callscribe-1");
    let ca_path = write(dir.path(), "ca.pem", &ca.pem());
    let sink = |with_certificate: bool| SinkConfig::Webhook {
        name: Some(format!("hook-tls-{with_certificate}")),
        url: format!("https://{addr}/hook"),
        timeout_ms: 2000,
        tls: Some(SinkTls {
            ca_path: Some(ca_path.clone()),
            cert_path: with_certificate.then(|| write(dir.path(), "client.pem", &client.cert_pem)),
            key_path: with_certificate.then(|| write(dir.path(), "client.key", &client.key_pem)),
        }),
        bearer_token_file: None,
        signing_secret_file: None,
    };
    let fwd = Forwarder::start(
        config(&dir.path().join("spool.redb"), vec![sink(true)]),
        ForwardMetrics::new(),
    )
    .unwrap();
    for seq in 0..2 {
        fwd.submit(segment("call-h", seq, "my parcel"));
    }
    assert!(
        fwd.flush(Duration::from_secs(30)).await,
        "delivered over mutual TLS"
    );
    fwd.shutdown().await;
    assert_eq!(*received.lock().unwrap(), ["call-h/1/0", "call-h/1/1"]);

    let without = Forwarder::start(
        config(&dir.path().join("spool-2.redb"), vec![sink(false)]),
        ForwardMetrics::new(),
    )
    .unwrap();
    without.submit(segment("call-n", 0, "my parcel"));
    assert!(
        !without.flush(Duration::from_secs(3)).await,
        "delivered without a client certificate"
    );
    without.shutdown().await;
    assert_eq!(received.lock().unwrap().len(), 2);
    stop.cancel();
}
