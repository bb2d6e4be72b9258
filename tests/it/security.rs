//! Secure serving (issue #18) against the real server and models, over real TLS on loopback:
//! TLS and mutual TLS handshakes with certificates made here (rcgen), API keys and their
//! revocation, per-tenant permissions and quotas, and certificate rotation during a call.
//! One whisper worker of one thread: these tests check the edge, not throughput.

use crate::common;

use callscribe::audio::codec::Encoding;
use callscribe::proto::v1 as pb;
use callscribe::proto::v1::transcription_client::TranscriptionClient;
use callscribe::server::auth::{key_hash, TenantConfig, Tenants};
use callscribe::server::tls::{ClientAuth, Reloaded};
use callscribe::server::{ServeSettings, ServerHandle};
use common::fixture;
use common::grpc::{
    audio_msg, call_audio, collect, config_msg, settings, start, CallOutcome, Resp,
};
use common::pki::{Ca, Leaf, ServerFiles};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::Code;

/// Test settings with one single-threaded whisper worker.
fn one_worker(max_streams: usize) -> ServeSettings {
    let mut s = settings(max_streams);
    s.workers = 1;
    s
}

fn tenant(id: &str, key: &str, max_concurrent_calls: usize) -> TenantConfig {
    TenantConfig {
        id: id.into(),
        key_hashes: vec![key_hash(key)],
        max_concurrent_calls,
        new_calls_per_minute: None,
        models: None,
        dialects: None,
        client_names: None,
    }
}

fn tenants(list: &[TenantConfig]) -> Arc<Tenants> {
    Arc::new(Tenants::new(list).expect("valid tenants"))
}

/// A TLS channel to the server that trusts `ca` and presents `identity`, if any.
async fn tls_channel(
    server: &ServerHandle,
    ca: &Ca,
    identity: Option<&Leaf>,
) -> Result<Channel, String> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca.pem()))
        .domain_name("localhost");
    if let Some(leaf) = identity {
        tls = tls.identity(Identity::from_pem(&leaf.cert_pem, &leaf.key_pem));
    }
    Endpoint::from_shared(format!("https://{}", server.addr))
        .expect("endpoint")
        .tls_config(tls)
        .expect("client TLS config")
        .connect_timeout(Duration::from_secs(10))
        .connect()
        .await
        .map_err(|e| format!("connect: {e:?}"))
}

fn with_key<T>(message: T, key: Option<(&'static str, &str)>) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    if let Some((name, value)) = key {
        req.metadata_mut()
            .insert(name, value.parse().expect("ASCII metadata"));
    }
    req
}

/// ListModels over `channel` with `key`: the model names, or the status.
async fn list_models(
    channel: Channel,
    key: Option<(&'static str, &str)>,
) -> Result<Vec<String>, tonic::Status> {
    let reply = TranscriptionClient::new(channel)
        .list_models(with_key(pb::ListModelsRequest {}, key))
        .await?;
    Ok(reply
        .into_inner()
        .models
        .into_iter()
        .map(|m| m.name)
        .collect())
}

/// Whether a TLS client with `ca` and `identity` can complete a ListModels: refusals of a
/// client certificate surface at connect or at the first request (TLS 1.3 sends the client's
/// certificate after the client already considers the handshake done).
async fn reaches(server: &ServerHandle, ca: &Ca, identity: Option<&Leaf>) -> Result<(), String> {
    let channel = tls_channel(server, ca, identity).await?;
    list_models(channel, None)
        .await
        .map(drop)
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
}

/// Opens a call with its config (and `audio` messages) and `key`; returns the sender, and
/// the response stream once the server accepted (or the refusal).
async fn open(
    channel: Channel,
    config: pb::StreamingConfig,
    audio: Vec<Vec<u8>>,
    key: Option<(&'static str, &str)>,
) -> (
    mpsc::Sender<pb::StreamingTranscribeRequest>,
    Result<tonic::Streaming<pb::StreamingTranscribeResponse>, tonic::Status>,
) {
    let (tx, rx) = mpsc::channel(audio.len() + 64);
    tx.send(config_msg(config)).await.expect("queue config");
    for a in audio {
        tx.send(audio_msg(a)).await.expect("queue audio");
    }
    let mut client = TranscriptionClient::new(channel);
    let call = client
        .streaming_transcribe(with_key(ReceiverStream::new(rx), key))
        .await
        .map(tonic::Response::into_inner);
    (tx, call)
}

/// Reads responses until the accepted config: the call is admitted and running.
async fn accepted(
    call: Result<tonic::Streaming<pb::StreamingTranscribeResponse>, tonic::Status>,
) -> Result<tonic::Streaming<pb::StreamingTranscribeResponse>, tonic::Status> {
    let mut s = call?;
    match s.message().await? {
        Some(pb::StreamingTranscribeResponse {
            response: Some(Resp::AcceptedConfig(_)),
            ..
        }) => Ok(s),
        other => panic!("expected the accepted config first, got {other:?}"),
    }
}

fn mono_call(call_id: &str) -> (pb::StreamingConfig, Vec<Vec<u8>>) {
    let (mut config, chunks) = call_audio(
        &fixture("calls/en_call_8k_mono.wav"),
        call_id,
        Encoding::Linear16,
        100,
    );
    config.model = "base".into();
    (config, chunks)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_a_call_to_a_client_that_trusts_its_ca_and_no_plaintext_client() {
    let ca = Ca::new("callscribe test CA");
    let files = ServerFiles::new(&ca.server(), None);
    let mut s = one_worker(2);
    s.server.tls = Some(files.config(None, 0));
    let server = start(s).await;

    let channel = tls_channel(&server, &ca, None).await.expect("TLS connect");
    let models = list_models(channel.clone(), None)
        .await
        .expect("ListModels");
    assert!(models.contains(&"base".to_owned()), "{models:?}");
    // A short call over TLS comes back with its finals and summary.
    let (config, chunks) = mono_call("tls-call");
    let first: Vec<Vec<u8>> = chunks[..60].to_vec();
    let (tx, call) = open(channel, config, first, None).await;
    drop(tx);
    let outcome = collect(call.expect("accepted")).await;
    assert!(outcome.status.is_none(), "{:?}", outcome.status);
    assert!(
        outcome
            .finals()
            .iter()
            .any(|f| f.text.to_lowercase().contains("customer")),
        "{outcome:?}"
    );
    assert!(outcome.summary().is_some());

    // A client that does not trust the CA refuses the server.
    let stranger = Ca::new("another CA");
    assert!(reaches(&server, &stranger, None).await.is_err());
    // A plaintext HTTP/2 client gets nowhere.
    let plain = Endpoint::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .connect()
        .await;
    if let Ok(plain) = plain {
        let e = list_models(plain, None).await.unwrap_err();
        assert_ne!(e.code(), Code::Ok);
    }

    // /metrics is served over the same TLS (HTTP/1.1 inside), and not in plaintext.
    let metrics = server.metrics_addr.expect("metrics enabled");
    let ca_pem = ca.pem();
    let body = tokio::task::spawn_blocking(move || {
        use ureq::tls::{Certificate, RootCerts, TlsConfig};
        let root = Certificate::from_pem(ca_pem.as_bytes()).expect("CA PEM");
        let agent = ureq::Agent::config_builder()
            .tls_config(
                TlsConfig::builder()
                    .root_certs(RootCerts::new_with_certs(&[root]))
                    .build(),
            )
            .build()
            .new_agent();
        let body = agent
            .get(format!("https://{metrics}/metrics"))
            .call()
            .map(|r| r.into_body().read_to_string().expect("body"));
        let plain = ureq::get(format!("http://{metrics}/metrics")).call();
        (body, plain.is_ok())
    })
    .await
    .unwrap();
    let (body, plain_ok) = body;
    let body = body.expect("GET https://…/metrics");
    assert!(body.contains("callscribe_audio_seconds_total"), "{body}");
    assert!(!plain_ok, "plaintext /metrics answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_refuses_no_certificate_another_cas_and_an_expired_one_and_names_the_client() {
    let ca = Ca::new("callscribe test CA");
    let clients = Ca::new("clients CA");
    let files = ServerFiles::new(&ca.server(), Some(&clients));
    let mut s = one_worker(2);
    s.server.tls = Some(files.config(Some(ClientAuth::Required), 0));
    // The tenant's key is bound to the certificate of pbx-1.
    let mut t = tenant("acme", "cs_acme_key", 2);
    t.client_names = Some(vec!["pbx-1.acme.example".into()]);
    s.tenants = tenants(&[t]);
    let server = start(s).await;
    let key = Some(("x-api-key", "cs_acme_key"));

    let good = clients.client("pbx-1.acme.example");
    let channel = tls_channel(&server, &ca, Some(&good))
        .await
        .expect("mTLS connect");
    let models = list_models(channel, key)
        .await
        .expect("ListModels with mTLS");
    assert!(!models.is_empty());

    // No certificate, one from another CA, an expired one from the right CA: refused.
    assert!(reaches(&server, &ca, None).await.is_err(), "no certificate");
    let foreign = Ca::new("not the clients CA").client("pbx-1.acme.example");
    assert!(
        reaches(&server, &ca, Some(&foreign)).await.is_err(),
        "foreign CA"
    );
    let expired = clients.expired_client("pbx-1.acme.example");
    assert!(
        reaches(&server, &ca, Some(&expired)).await.is_err(),
        "expired"
    );

    // A valid certificate of another client: the connection is allowed, the key is not
    // (the identity reaches authorisation).
    let other = clients.client("pbx-2.acme.example");
    let channel = tls_channel(&server, &ca, Some(&other))
        .await
        .expect("mTLS connect");
    let e = list_models(channel, key).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(e.message().contains("pbx-1.acme.example"), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_key_or_a_wrong_one_is_unauthenticated_before_any_audio_and_a_removed_key_is_revoked() {
    let mut s = one_worker(4);
    s.tenants = tenants(&[
        tenant("acme", "cs_acme_key", 2),
        tenant("globex", "cs_globex_key", 2),
    ]);
    let server = start(s).await;
    let channel = Endpoint::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await
        .expect("connect");

    // A stream that sends nothing at all is refused: the key is checked before any message.
    let (tx, rx) = mpsc::channel::<pb::StreamingTranscribeRequest>(1);
    let refused = tokio::time::timeout(
        Duration::from_secs(20),
        TranscriptionClient::new(channel.clone()).streaming_transcribe(ReceiverStream::new(rx)),
    )
    .await
    .expect("refused without waiting for a message")
    .unwrap_err();
    drop(tx);
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    assert!(refused.message().contains("Bearer"), "{refused:?}");

    let wrong = list_models(channel.clone(), Some(("authorization", "Bearer cs_nope")))
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated, "{wrong:?}");
    let not_bearer = list_models(channel.clone(), Some(("authorization", "cs_acme_key")))
        .await
        .unwrap_err();
    assert_eq!(not_bearer.code(), Code::Unauthenticated, "{not_bearer:?}");
    assert!(list_models(
        channel.clone(),
        Some(("authorization", "Bearer cs_acme_key"))
    )
    .await
    .is_ok());
    assert!(
        list_models(channel.clone(), Some(("x-api-key", "cs_globex_key")))
            .await
            .is_ok()
    );
    // Health stays open.
    let health = tonic_health::pb::health_client::HealthClient::new(channel.clone())
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health needs no key");
    assert_eq!(health.into_inner().status, 1, "SERVING");

    // acme's key is removed and the tenants reloaded: revoked; globex unaffected.
    server
        .reloader()
        .reload_tenants(Tenants::new(&[tenant("globex", "cs_globex_key", 2)]).unwrap());
    let revoked = list_models(channel.clone(), Some(("x-api-key", "cs_acme_key")))
        .await
        .unwrap_err();
    assert_eq!(revoked.code(), Code::Unauthenticated, "{revoked:?}");
    assert!(
        list_models(channel.clone(), Some(("x-api-key", "cs_globex_key")))
            .await
            .is_ok()
    );
    // The last tenant removed: every key is refused; the server does not fall open.
    server.reloader().reload_tenants(Tenants::new(&[]).unwrap());
    let closed = list_models(channel.clone(), Some(("x-api-key", "cs_globex_key")))
        .await
        .unwrap_err();
    assert_eq!(closed.code(), Code::Unauthenticated, "{closed:?}");
    let metrics = server.metrics_text();
    assert!(
        metrics.contains("callscribe_errors_total{code=\"Unauthenticated\"} 5"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_or_adapter_outside_the_tenants_lists_is_permission_denied() {
    let mut s = one_worker(4);
    let mut t = tenant("acme", "cs_acme_key", 2);
    t.models = Some(vec!["tiny.en".into()]);
    t.dialects = Some(vec!["english".into()]);
    s.tenants = tenants(&[t]);
    let server = start(s).await;
    let channel = Endpoint::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await
        .expect("connect");
    let key = Some(("x-api-key", "cs_acme_key"));
    // The tenant sees only its model.
    assert_eq!(
        list_models(channel.clone(), key).await.unwrap(),
        vec!["tiny.en".to_owned()]
    );
    let (config, _) = mono_call("denied-model");
    let (_tx, call) = open(channel.clone(), config, Vec::new(), key).await;
    let e = accepted(call).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(e.message().contains("model 'base'"), "{e:?}");
    let (mut config, _) = mono_call("denied-adapter");
    config.model = "tiny.en".into();
    config.dialect = "putonghua".into();
    let (_tx, call) = open(channel.clone(), config, Vec::new(), key).await;
    let e = accepted(call).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(e.message().contains("'putonghua'"), "{e:?}");
    // A whole recording is checked the same way, before any decoding.
    let wav = std::fs::read(fixture("calls/en_call_8k_mono.wav")).unwrap();
    let recording = |model: &str| pb::TranscribeRequest {
        wav: wav.clone(),
        config: Some(pb::StreamingConfig {
            model: model.into(),
            language: "en".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let e = TranscriptionClient::new(channel.clone())
        .max_encoding_message_size(64 << 20)
        .transcribe(with_key(recording("base"), key))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    // What it may use is accepted.
    let (mut config, _) = mono_call("allowed");
    config.model = "tiny.en".into();
    let (_tx, call) = open(channel, config, Vec::new(), key).await;
    assert!(accepted(call).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tenants_at_their_quotas_at_once_are_refused_each_by_its_own_quota() {
    let mut s = one_worker(8);
    s.tenants = tenants(&[tenant("a", "cs_key_a", 1), tenant("b", "cs_key_b", 2)]);
    let server = start(s).await;
    let channel = Endpoint::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await
        .expect("connect");
    let (ka, kb) = (
        Some(("x-api-key", "cs_key_a")),
        Some(("x-api-key", "cs_key_b")),
    );
    let config = |id: &str| {
        let (mut c, _) = mono_call(id);
        c.model = "tiny.en".into();
        c
    };
    // Both tenants fill their quotas side by side.
    let (a1_tx, a1) = open(channel.clone(), config("a1"), Vec::new(), ka).await;
    let a1 = accepted(a1).await.expect("a's first call");
    let (b1_tx, b1) = open(channel.clone(), config("b1"), Vec::new(), kb).await;
    let b1 = accepted(b1).await.expect("b's first call");
    let (b2_tx, b2) = open(channel.clone(), config("b2"), Vec::new(), kb).await;
    let b2 = accepted(b2).await.expect("b's second call");
    assert_eq!((server.tenant_calls("a"), server.tenant_calls("b")), (1, 2));

    let (_t, a2) = open(channel.clone(), config("a2"), Vec::new(), ka).await;
    let e = accepted(a2).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert!(
        e.message().contains("'a'") && e.message().contains("max_concurrent_calls"),
        "{e:?}"
    );
    let (_t, b3) = open(channel.clone(), config("b3"), Vec::new(), kb).await;
    let e = accepted(b3).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert!(e.message().contains("'b' is at its quota of 2"), "{e:?}");

    // a's call ends: a may call again, b is still at its quota.
    drop(a1_tx);
    let ended: CallOutcome = collect(a1).await;
    assert!(ended.status.is_none(), "{ended:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.tenant_calls("a") > 0 {
        assert!(Instant::now() < deadline, "a's slot was not given back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_t, a3) = open(channel.clone(), config("a3"), Vec::new(), ka).await;
    assert!(accepted(a3).await.is_ok(), "a's slot came back");
    assert_eq!(server.tenant_calls("b"), 2);

    let metrics = server.metrics_text();
    let line = |tenant: &str, outcome: &str| {
        metrics
            .lines()
            .find(|l| {
                l.starts_with("callscribe_calls_total{")
                    && l.contains(&format!("tenant=\"{tenant}\""))
                    && l.contains(&format!("outcome=\"{outcome}\""))
            })
            .unwrap_or_else(|| panic!("no calls line for {tenant} {outcome}:\n{metrics}"))
            .to_owned()
    };
    assert!(line("a", "ResourceExhausted").ends_with(" 1"), "{metrics}");
    assert!(line("b", "ResourceExhausted").ends_with(" 1"), "{metrics}");
    assert!(line("a", "OK").ends_with(" 1"), "{metrics}");
    assert!(
        metrics.contains("callscribe_audio_seconds_total{tenant=\"b\"}"),
        "{metrics}"
    );
    drop((b1_tx, b2_tx, b1, b2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_rotated_during_a_call_lets_the_call_finish_and_new_connections_get_the_new_one(
) {
    let old_ca = Ca::new("old CA");
    let new_ca = Ca::new("new CA");
    let files = ServerFiles::new(&old_ca.server(), None);
    let mut s = one_worker(2);
    // The files are watched: a rotation tool only replaces them.
    s.server.tls = Some(files.config(None, 200));
    let server = start(s).await;

    // A call under way on a connection made with the old certificate.
    let channel = tls_channel(&server, &old_ca, None).await.expect("connect");
    let (config, chunks) = mono_call("rotation");
    let half = chunks.len() / 2;
    let (tx, call) = open(channel, config, chunks[..half].to_vec(), None).await;
    let mut responses = call.expect("accepted");
    let mut outcome = CallOutcome::default();
    // Wait for the call's first final: it is live and decoding.
    while !outcome
        .responses
        .iter()
        .any(|r| matches!(r, Resp::Final(_)))
    {
        let r = tokio::time::timeout(Duration::from_secs(120), responses.message())
            .await
            .expect("a final within 2 minutes")
            .expect("no error")
            .expect("the call is still open");
        outcome.responses.extend(r.response);
    }

    // Rotate: a new certificate from another CA, written over the old files.
    files.write(&new_ca.server(), None);
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Err(e) = reaches(&server, &new_ca, None).await {
        assert!(
            Instant::now() < deadline,
            "new connections still get the old certificate: {e}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        reaches(&server, &old_ca, None).await.is_err(),
        "a new connection still got the old certificate"
    );
    // The watcher already has them; a SIGHUP now finds nothing new.
    assert_eq!(server.reloader().reload_tls().unwrap(), Reloaded::Unchanged);
    // A broken replacement is refused and the running certificate stays.
    std::fs::write(files.key(), "-----BEGIN PRIVATE KEY-----\nbroken\n").unwrap();
    assert!(server.reloader().reload_tls().is_err());
    assert!(reaches(&server, &new_ca, None).await.is_ok());

    // The call, on its old connection, runs to its end.
    for c in &chunks[half..] {
        tx.send(audio_msg(c.clone()))
            .await
            .expect("the call still takes audio");
    }
    drop(tx);
    let rest = collect(responses).await;
    assert!(
        rest.status.is_none(),
        "the call ended with {:?}",
        rest.status
    );
    outcome.responses.extend(rest.responses);
    let finals = outcome.finals();
    assert!(
        finals.iter().any(|f| f.end_ms > 38_000),
        "finals from after the rotation: {finals:?}"
    );
    let summary = outcome.summary().expect("summary");
    assert_eq!(summary.final_results as usize, finals.len());
    assert!(summary.audio_ms > 41_000, "{summary:?}");
}

/// `callscribe stream` against a server with mutual TLS and tenants: with `--tls-ca`,
/// `--tls-cert/--tls-key` and `$CALLSCRIBE_API_KEY` it streams; without the key it fails
/// with the server's UNAUTHENTICATED, and the key never shows in its output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_client_speaks_mutual_tls_and_sends_its_key_from_the_environment() {
    use common::pki::write;
    let ca = Ca::new("callscribe test CA");
    let clients = Ca::new("clients CA");
    let files = ServerFiles::new(&ca.server(), Some(&clients));
    let mut s = one_worker(2);
    s.server.tls = Some(files.config(Some(ClientAuth::Required), 0));
    s.tenants = tenants(&[tenant("acme", "cs_stream_key", 1)]);
    let server = start(s).await;
    let dir = files.dir.path();
    let client = clients.client("desk-7.acme.example");
    let args: Vec<String> = vec![
        "stream".into(),
        "--server".into(),
        server.addr.to_string(),
        "--tls-ca".into(),
        write(dir, "ca.pem", &ca.pem()).display().to_string(),
        "--tls-cert".into(),
        write(dir, "client.pem", &client.cert_pem)
            .display()
            .to_string(),
        "--tls-key".into(),
        write(dir, "client.key", &client.key_pem)
            .display()
            .to_string(),
        "--model".into(),
        "tiny.en".into(),
        "--language".into(),
        "en".into(),
        "--format".into(),
        "json".into(),
        fixture("calls/en_half_44k_mono.wav").display().to_string(),
    ];
    let run = |key: Option<&'static str>| {
        let args = args.clone();
        tokio::task::spawn_blocking(move || {
            let mut cmd = common::callscribe();
            cmd.args(&args).env_remove("CALLSCRIBE_API_KEY");
            if let Some(k) = key {
                cmd.env("CALLSCRIBE_API_KEY", k);
            }
            cmd.output().expect("running callscribe stream")
        })
    };
    let out = run(Some("cs_stream_key")).await.unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("\"final\""), "{stdout}");
    assert!(stdout.contains("\"summary\""), "{stdout}");

    let out = run(None).await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("Unauthenticated"), "{stderr}");
    let out = run(Some("cs_wrong_key")).await.unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(stderr.contains("Unauthenticated"), "{stderr}");
    assert!(!stdout.contains("cs_wrong_key") && !stderr.contains("cs_wrong_key"));

    // Without the TLS flags the client speaks plaintext HTTP/2 to a TLS server: one error
    // line that says what is probably wrong, not just "transport error".
    let plain: Vec<String> = vec![
        "stream".into(),
        "--server".into(),
        server.addr.to_string(),
        "--model".into(),
        "tiny.en".into(),
        fixture("calls/en_half_44k_mono.wav").display().to_string(),
    ];
    let out = tokio::task::spawn_blocking(move || {
        common::callscribe()
            .args(&plain)
            .env("CALLSCRIBE_API_KEY", "cs_stream_key")
            .output()
            .expect("running callscribe stream")
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(
        stderr.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{stderr}"
    );
    assert!(stderr.contains("--tls-ca"), "{stderr}");
}
