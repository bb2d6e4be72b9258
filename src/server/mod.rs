//! `callscribe serve`: the gRPC front door for telephony systems.
//!
//! tonic serves `callscribe.v1.Transcription` (live streams, whole recordings, models), the
//! standard health service and server reflection; an optional HTTP listener serves Prometheus
//! `/metrics`. Inference runs on the shared [`Pool`] of OS threads, never on the runtime.
//! Admission control (a semaphore of `max_streams` permits) refuses calls beyond capacity with
//! RESOURCE_EXHAUSTED instead of letting every call fall behind real time.
//!
//! Security is at the edge: [`tls`] terminates TLS (and mutual TLS) and reloads certificates
//! while serving; [`auth`] authenticates every RPC but health against the tenants' API keys,
//! checks each call against its tenant's allow-lists and quotas, and hands the call a
//! [`Caller`](auth::Caller); [`audit`] writes one line per call. Without `[server.tls]` the
//! listener is plaintext (on a non-loopback address only with `server.plaintext = true`,
//! and a warning); without `[[tenants]]`
//! no key is asked for.
//!
//! The server binds and answers health checks (NOT_SERVING) while models load; RPCs meanwhile
//! get UNAVAILABLE. [`health`] also says NOT_SERVING while the server is at capacity or
//! draining, so a load balancer sends new calls to another server. Draining
//! ([`ServerHandle::drain`]; SIGTERM in the CLI when `server.drain_timeout_secs` > 0) refuses
//! new calls with UNAVAILABLE and lets those in flight run to their end. Shutdown
//! ([`ServerHandle::shutdown`]; SIGTERM without draining, or once the drain is over)
//! finalises every open utterance and delivers its final before the streams close.

pub mod audit;
pub mod auth;
mod call;
mod google;
pub mod health;
pub mod metrics;
mod riva;
mod service;
pub mod tls;

use crate::dialect::Dialects;
use crate::engine::{DecodeConfig, Engine, EngineError, Model, Pool};
use crate::proto::v1::transcription_server::TranscriptionServer;
use crate::segment::Vad;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::{OnceCell, Semaphore};
use tokio_util::sync::CancellationToken;

/// Final jobs one stream may have queued or running before it stops reading audio: the
/// back-pressure that keeps a fast sender from queueing unbounded inference work. Eight
/// utterances is minutes of speech at real-time pace, so it never throttles a live call.
pub const MAX_PENDING_FINALS: usize = 8;
/// Responses buffered per stream towards a slow client before the stream waits for it
/// (at most `server.send_timeout_ms`).
const RESPONSE_BUFFER: usize = 64;

/// `[server]` section of the configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// gRPC listen address.
    pub listen: String,
    /// Prometheus `/metrics` listen address; none = no metrics endpoint.
    pub metrics_listen: Option<String>,
    /// Models loaded besides `models.default`, selectable per call.
    pub models: Vec<String>,
    /// Inference threads pools (each runs whisper with `decode.threads` threads); 0 = auto.
    pub workers: usize,
    /// Concurrent calls (streams and Transcribe requests); more are refused with
    /// RESOURCE_EXHAUSTED. 0 = auto: 2 per inference core
    /// ([`default_max_streams`](crate::config::default_max_streams), from the latency bench).
    pub max_streams: usize,
    /// Largest audio message of a live stream.
    pub max_message_bytes: usize,
    /// Largest Transcribe request (a whole recording in one message).
    pub max_recording_bytes: usize,
    /// Longest call a stream may carry, in seconds of audio.
    pub max_call_secs: u64,
    /// A stream that sends nothing for this long is finalised and closed.
    pub idle_timeout_ms: u64,
    /// HTTP/2 keepalive: a connection quiet for this long is pinged (0 = never), and closed,
    /// with its calls, when the ping is not answered within `keepalive_timeout_ms`. A client
    /// that vanished without closing (a crashed media server, a cut network path) holds its
    /// call's admission slot until then, not until the idle timeout or TCP's hours.
    pub keepalive_interval_ms: u64,
    pub keepalive_timeout_ms: u64,
    /// A client that accepts no response for this long while responses wait (it stopped
    /// reading but keeps the connection open) has its call ended with RESOURCE_EXHAUSTED and
    /// its admission slot freed. What waits for it meanwhile is bounded: the HTTP/2 stream
    /// window plus 64 responses.
    pub send_timeout_ms: u64,
    /// How much an utterance must grow before the next interim re-decode.
    pub interim_interval_ms: u32,
    /// Fit whisper's encoder window to each utterance for live calls (`decode.fit_window`
    /// for streams): 3.5× less CPU per final with base at +0.5 WER points, which is what
    /// lets a 2-core machine keep up with real time at all (BENCHMARKS.md).
    pub fit_window: bool,
    /// Serve gRPC server reflection (the API's schema, for grpcurl and the like). It needs
    /// no key even with tenants: it describes the API and reaches no call or model.
    pub reflection: bool,
    /// `[server.tls]`: TLS (and mutual TLS) on the gRPC listener, and on `/metrics` unless
    /// `server.tls.metrics = false`; none = plaintext.
    pub tls: Option<tls::TlsConfig>,
    /// Serve without TLS on an address other than loopback. Call audio and API keys would
    /// cross the network in the clear, so that takes this explicit `true` (a TLS-terminating
    /// proxy in front, a private network); without it such a server refuses to start.
    pub plaintext: bool,
    /// `[server.speech_apis]`: the Google Speech-to-Text v1 and Riva ASR services on the
    /// same listener.
    pub speech_apis: SpeechApisConfig,
    /// On SIGTERM, wait this long for the calls in flight to end on their own (no new call
    /// is taken meanwhile: health says NOT_SERVING, new calls get UNAVAILABLE), then finalise
    /// what is left. A second SIGTERM or Ctrl-C ends the wait. 0: finalise at once.
    pub drain_timeout_secs: u64,
}

/// `[server.speech_apis]`: drop-in services for clients written for other speech APIs. They
/// take the same keys, tenants, quotas and capacity as `callscribe.v1`, and forward finals the
/// same way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpeechApisConfig {
    /// Serve `google.cloud.speech.v1.Speech` and `google.longrunning.Operations`.
    pub google: bool,
    /// Serve `nvidia.riva.asr.RivaSpeechRecognition`.
    pub riva: bool,
    /// Longest Google StreamingRecognize stream, in seconds of audio: Google's documented
    /// limit is about 5 minutes (305 s), and clients written for it restart streams before
    /// it; past it the stream ends with OUT_OF_RANGE, as Google's does.
    pub google_stream_max_secs: u64,
    /// Longest audio Google's synchronous Recognize takes (Google: 1 minute); longer is
    /// INVALID_ARGUMENT pointing to LongRunningRecognize.
    pub google_recognize_max_secs: u64,
    /// Longest audio of a LongRunningRecognize (Google: 480 minutes).
    pub google_long_running_max_secs: u64,
    /// Finished long-running operations kept for GetOperation (oldest dropped first).
    pub operations_kept: usize,
}

impl Default for SpeechApisConfig {
    fn default() -> Self {
        Self {
            google: true,
            riva: true,
            google_stream_max_secs: 305,
            google_recognize_max_secs: 60,
            google_long_running_max_secs: 480 * 60,
            operations_kept: 256,
        }
    }
}

/// A restart or a scale-in should not cut the calls in flight short, and most contact-centre
/// calls end within five minutes; a longer call is finalised then, losing nothing already
/// said. Orchestrators must allow this long (Kubernetes: `terminationGracePeriodSeconds`).
pub const DEFAULT_DRAIN_TIMEOUT_SECS: u64 = 300;

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:50051".into(),
            metrics_listen: None,
            models: Vec::new(),
            workers: 0,
            max_streams: 0,
            max_message_bytes: 1 << 20,
            max_recording_bytes: 64 << 20,
            max_call_secs: 4 * 3600,
            idle_timeout_ms: 30_000,
            keepalive_interval_ms: 10_000,
            keepalive_timeout_ms: 5_000,
            send_timeout_ms: 30_000,
            interim_interval_ms: 1000,
            fit_window: true,
            reflection: true,
            tls: None,
            plaintext: false,
            drain_timeout_secs: DEFAULT_DRAIN_TIMEOUT_SECS,
            speech_apis: SpeechApisConfig::default(),
        }
    }
}

impl ServerConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.max_message_bytes < 1024 {
            return Err("server.max_message_bytes must be at least 1024".into());
        }
        if self.interim_interval_ms != 0 && self.interim_interval_ms < 200 {
            return Err("server.interim_interval_ms must be 0 (off) or at least 200".into());
        }
        if self.idle_timeout_ms < 1000 {
            return Err("server.idle_timeout_ms must be at least 1000".into());
        }
        if self.send_timeout_ms < 100 {
            return Err("server.send_timeout_ms must be at least 100".into());
        }
        if self.keepalive_interval_ms != 0 && self.keepalive_timeout_ms < 100 {
            return Err("server.keepalive_timeout_ms must be at least 100".into());
        }
        let apis = &self.speech_apis;
        for (value, name) in [
            (apis.google_stream_max_secs, "google_stream_max_secs"),
            (apis.google_recognize_max_secs, "google_recognize_max_secs"),
            (
                apis.google_long_running_max_secs,
                "google_long_running_max_secs",
            ),
        ] {
            if value == 0 {
                return Err(format!("server.speech_apis.{name} must be at least 1"));
            }
        }
        if let Some(t) = &self.tls {
            t.validate()?;
        }
        Ok(())
    }
}

/// Everything a running server needs besides its models.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    pub server: ServerConfig,
    /// The voice-activity detector every call segments with (calls may change its policy).
    pub vad: Vad,
    pub decode: DecodeConfig,
    /// Inference workers and whisper threads per worker (see `config::worker_layout`).
    pub workers: usize,
    pub threads: usize,
    pub max_streams: usize,
    /// The dialect adapters and routing table; replaced on reload (SIGHUP).
    pub dialects: Arc<Dialects>,
    /// The tenants and their keys (none: no key required); replaced on reload (SIGHUP).
    pub tenants: Arc<auth::Tenants>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("loading models: {0}")]
    Load(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("gRPC server failed: {0}")]
    Transport(String),
    #[error("TLS: {0}")]
    Tls(#[from] tls::TlsError),
    #[error(
        "refusing to serve plaintext on {0}, which is not a loopback address: configure \
         [server.tls], or set server.plaintext = true if something in front encrypts the traffic"
    )]
    Plaintext(std::net::SocketAddr),
}

/// Plaintext on a non-loopback address only when the configuration says so.
fn check_plaintext(server: &ServerConfig, addr: std::net::SocketAddr) -> Result<(), ServerError> {
    if server.tls.is_some() || addr.ip().is_loopback() {
        return Ok(());
    }
    if !server.plaintext {
        return Err(ServerError::Plaintext(addr));
    }
    tracing::warn!(
        %addr,
        "serving gRPC in PLAINTEXT on a non-loopback address (server.plaintext = true): call \
         audio, transcripts and API keys cross the network unencrypted"
    );
    Ok(())
}

/// What exists once the models are loaded.
pub(crate) struct Loaded {
    /// The executor, with every model; the first is the default.
    pub pool: Pool,
}

impl Loaded {
    /// The pool index of a plan's model (the plan chose among the pool's models).
    pub fn plan_model(&self, plan: &crate::plan::CallPlan) -> Result<usize, tonic::Status> {
        self.pool.model_index(&plan.model.name).ok_or_else(|| {
            tonic::Status::internal(format!("model {} is not loaded", plan.model.name))
        })
    }

    pub fn model_names(&self) -> Vec<&str> {
        self.pool.models().iter().map(|m| m.name.as_str()).collect()
    }
}

/// State shared by every RPC.
pub(crate) struct Shared {
    pub settings: ServeSettings,
    pub loaded: OnceCell<Loaded>,
    pub admission: Arc<Semaphore>,
    pub metrics: metrics::Metrics,
    pub shutdown: CancellationToken,
    /// What the health service and `/health` say; told of every admission and drain.
    pub health: Arc<health::Health>,
    /// Where finals go (knowledge lookup; each spooled before its client gets it); none = nowhere.
    pub forwarder: Option<crate::forward::Forwarder>,
    /// Swapped whole on reload; a call keeps the `Arc` it started with, so live streams
    /// finish with the adapter they began with.
    pub dialects: std::sync::RwLock<Arc<Dialects>>,
    /// Swapped whole on reload: a removed key fails from the next request on; calls already
    /// admitted run to their end.
    pub tenants: std::sync::RwLock<Arc<auth::Tenants>>,
    /// Each tenant's calls in flight and recent starts, kept across reloads.
    pub quotas: Arc<auth::Quotas>,
    /// The listener's TLS state (none: plaintext).
    pub tls: Option<Arc<tls::Tls>>,
}

impl Shared {
    pub fn dialects(&self) -> Arc<Dialects> {
        self.dialects
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn tenants(&self) -> Arc<auth::Tenants> {
        self.tenants
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Loads the models, on a blocking thread; the first is the default.
pub type ModelLoader = Box<dyn FnOnce() -> Result<Vec<Engine>, String> + Send>;

/// [`ModelLoader`] for any recogniser (the scripted one in unit tests).
type AnyModelLoader = Box<dyn FnOnce() -> Result<Vec<Box<dyn Model>>, String> + Send>;

/// A running server.
pub struct ServerHandle {
    pub addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    shared: Arc<Shared>,
    ready: tokio::sync::watch::Receiver<Option<Result<(), String>>>,
    serve: tokio::task::JoinHandle<Result<(), ServerError>>,
}

impl ServerHandle {
    /// Waits until the models are loaded (health SERVING) or failed to load.
    pub async fn ready(&mut self) -> Result<(), ServerError> {
        let state = self
            .ready
            .wait_for(Option::is_some)
            .await
            .map_err(|_| ServerError::Load("the loader went away".into()))?;
        match state.as_ref().expect("waited for Some") {
            Ok(()) => Ok(()),
            Err(e) => Err(ServerError::Load(e.clone())),
        }
    }

    /// The Prometheus text exposition of the server's metrics.
    pub fn metrics_text(&self) -> String {
        self.shared.metrics.encode()
    }

    /// Replaces the dialect adapters and routing table without touching live calls.
    pub fn reload_dialects(&self, dialects: Dialects) -> Result<(), String> {
        self.reloader().reload(dialects)
    }

    /// Calls `tenant` has open now (its concurrent-call quota's usage).
    pub fn tenant_calls(&self, tenant: &str) -> usize {
        self.shared.quotas.active(tenant)
    }

    /// A handle that reloads adapters, tenants and certificates from another task (the
    /// SIGHUP handler).
    pub fn reloader(&self) -> Reloader {
        Reloader {
            shared: self.shared.clone(),
        }
    }

    /// Stops taking calls (health NOT_SERVING, new calls UNAVAILABLE); those in flight go on.
    pub fn drain(&self) {
        self.shared.health.drain();
    }

    /// Calls (streams and Transcribe requests) in flight now.
    pub fn calls_in_flight(&self) -> usize {
        self.shared.settings.max_streams.max(1) - self.shared.admission.available_permits()
    }

    /// Resolves once no call is in flight (after [`drain`](Self::drain), when the last ends).
    pub async fn drained(&self) {
        while self.calls_in_flight() > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Begins graceful shutdown: open utterances are finalised and sent, then streams close.
    pub fn shutdown(&self) {
        self.shared.shutdown.cancel();
    }

    /// Waits for the server to stop (after [`shutdown`](Self::shutdown)).
    pub async fn stopped(self) -> Result<(), ServerError> {
        match self.serve.await {
            Ok(r) => r,
            Err(e) => Err(ServerError::Transport(e.to_string())),
        }
    }
}

/// Swaps in new dialect adapters (see [`ServerHandle::reloader`]).
#[derive(Clone)]
pub struct Reloader {
    shared: Arc<Shared>,
}

impl Reloader {
    /// Refused when a listed adapter (`dialects.load`) needs a model this server has not
    /// loaded: models load only at start. A call keeps the `Arc` of the adapters it began
    /// with, so live streams finish undisturbed.
    pub fn reload(&self, dialects: Dialects) -> Result<(), String> {
        if let Some(loaded) = self.shared.loaded.get() {
            let names = loaded.model_names();
            if !dialects.config().load.is_empty() {
                for a in dialects.list() {
                    if !names.contains(&a.model()) {
                        return Err(format!(
                            "adapter '{}' needs model '{}', which is not loaded (loaded: {}); restart to load it",
                            a.id(),
                            a.model(),
                            names.join(", ")
                        ));
                    }
                }
            }
        }
        let n = dialects.list().count();
        *self
            .shared
            .dialects
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Arc::new(dialects);
        self.shared.metrics.reloads.inc();
        tracing::info!(adapters = n, "dialect adapters reloaded");
        Ok(())
    }

    /// Replaces the tenants and their keys: a key no longer listed is refused from the next
    /// request on. Calls in flight keep running, and their quota usage is kept. A server
    /// that required keys still requires them with no tenant left ([`auth::Tenants::keep_closed`]).
    pub fn reload_tenants(&self, tenants: auth::Tenants) {
        let tenants = tenants.keep_closed(&self.shared.tenants());
        if tenants.enabled() && tenants.ids().next().is_none() {
            tracing::warn!("no tenants left after the reload: every key is refused until a tenant is configured (restart without [[tenants]] to serve without keys)");
        }
        self.shared.metrics.tenants(tenants.ids());
        let n = tenants.ids().count();
        *self
            .shared
            .tenants
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Arc::new(tenants);
        tracing::info!(tenants = n, "tenants and API keys reloaded");
    }

    /// Re-reads the TLS certificate, key and client CA; new connections get them, open ones
    /// keep theirs. `Unchanged` without TLS or when the files are as they were.
    pub fn reload_tls(&self) -> Result<tls::Reloaded, tls::TlsError> {
        match &self.shared.tls {
            None => Ok(tls::Reloaded::Unchanged),
            Some(t) => {
                let r = t.reload()?;
                if r == tls::Reloaded::Replaced {
                    tracing::info!("TLS certificate reloaded; new connections use it");
                }
                Ok(r)
            }
        }
    }
}

/// Binds the listeners and starts serving at once; models load in the background.
pub async fn start(
    settings: ServeSettings,
    loader: ModelLoader,
) -> Result<ServerHandle, ServerError> {
    start_with_forwarder(settings, loader, None).await
}

/// [`start`], with every final also submitted to `forwarder` and its suggestions sent back on
/// the call's stream.
pub async fn start_with_forwarder(
    settings: ServeSettings,
    loader: ModelLoader,
    forwarder: Option<crate::forward::Forwarder>,
) -> Result<ServerHandle, ServerError> {
    let loader: AnyModelLoader = Box::new(move || {
        Ok(loader()?
            .into_iter()
            .map(|e| Box::new(e) as Box<dyn Model>)
            .collect())
    });
    start_any(settings, loader, forwarder).await
}

async fn start_any(
    settings: ServeSettings,
    loader: AnyModelLoader,
    forwarder: Option<crate::forward::Forwarder>,
) -> Result<ServerHandle, ServerError> {
    settings.server.validate().map_err(ServerError::Load)?;
    let listener = tokio::net::TcpListener::bind(&settings.server.listen)
        .await
        .map_err(|source| ServerError::Bind {
            addr: settings.server.listen.clone(),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServerError::Bind {
        addr: settings.server.listen.clone(),
        source,
    })?;
    check_plaintext(&settings.server, addr)?;
    let tls = match &settings.server.tls {
        Some(cfg) => Some(Arc::new(tls::Tls::load(cfg)?)),
        None => None,
    };
    let metrics = metrics::Metrics::new();
    metrics.tenants(settings.tenants.ids());
    if let Some(f) = &forwarder {
        metrics.attach_forward(f.metrics().clone());
    }
    let shutdown = CancellationToken::new();
    let admission = Arc::new(Semaphore::new(settings.max_streams.max(1)));
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    let health = health::Health::start(health_reporter, admission.clone(), shutdown.clone()).await;
    let metrics_tls = tls.clone().filter(|t| t.config().metrics);
    let metrics_addr = match &settings.server.metrics_listen {
        Some(a) => Some(
            metrics::serve(
                a,
                metrics.clone(),
                health.clone(),
                metrics_tls,
                shutdown.clone(),
            )
            .await?,
        ),
        None => None,
    };
    let shared = Arc::new(Shared {
        dialects: std::sync::RwLock::new(settings.dialects.clone()),
        tenants: std::sync::RwLock::new(settings.tenants.clone()),
        quotas: Arc::default(),
        tls: tls.clone(),
        admission,
        settings,
        loaded: OnceCell::new(),
        metrics,
        shutdown: shutdown.clone(),
        health,
        forwarder,
    });

    let (ready_tx, ready_rx) = tokio::sync::watch::channel(None);
    {
        let shared = shared.clone();
        tokio::spawn(async move {
            let result = load(&shared, loader).await;
            if result.is_ok() {
                shared.health.loaded();
            }
            let _ = ready_tx.send(Some(result));
        });
    }

    let apis = shared.settings.server.speech_apis.clone();
    // Reflection in both versions: grpcurl speaks v1, the Python grpcio-reflection client,
    // Postman and older grpcurl only v1alpha.
    let (reflection, reflection_v1alpha) = if shared.settings.server.reflection {
        let builder = || {
            let mut b = tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(crate::proto::v1::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET);
            if apis.google {
                b = b.register_encoded_file_descriptor_set(
                    crate::proto::gen_google::FILE_DESCRIPTOR_SET,
                );
            }
            if apis.riva {
                b = b.register_encoded_file_descriptor_set(
                    crate::proto::gen_riva::FILE_DESCRIPTOR_SET,
                );
            }
            b
        };
        let transport = |e: tonic_reflection::server::Error| ServerError::Transport(e.to_string());
        (
            Some(builder().build_v1().map_err(transport)?),
            Some(builder().build_v1alpha().map_err(transport)?),
        )
    } else {
        (None, None)
    };
    // Whole recordings arrive in one message; live audio messages are checked against the
    // smaller per-stream limit by the call itself, with a message that names the limit.
    let decode_limit = shared
        .settings
        .server
        .max_recording_bytes
        .max(shared.settings.server.max_message_bytes)
        + 1024;
    // Every RPC of the speech services passes the key check first (health and reflection
    // do not).
    let edge = service::Edge {
        shared: shared.clone(),
    };
    let transcription = tonic::service::interceptor::InterceptedService::new(
        TranscriptionServer::new(service::TranscriptionService::new(edge.clone()))
            .max_decoding_message_size(decode_limit),
        auth::interceptor(shared.clone()),
    );
    let operations = Arc::new(google::Operations::new(apis.operations_kept));
    let google_speech = apis.google.then(|| {
        tonic::service::interceptor::InterceptedService::new(
            google::speech_server(edge.clone(), operations.clone())
                .max_decoding_message_size(decode_limit),
            auth::interceptor(shared.clone()),
        )
    });
    let google_operations = apis.google.then(|| {
        tonic::service::interceptor::InterceptedService::new(
            google::operations_server(operations.clone()),
            auth::interceptor(shared.clone()),
        )
    });
    let riva_asr = apis.riva.then(|| {
        tonic::service::interceptor::InterceptedService::new(
            riva::server(edge.clone()).max_decoding_message_size(decode_limit),
            auth::interceptor(shared.clone()),
        )
    });
    let stop = shutdown.clone();
    let ms = std::time::Duration::from_millis;
    let keepalive = &shared.settings.server;
    let (ping_every, ping_timeout) = (
        (keepalive.keepalive_interval_ms > 0).then(|| ms(keepalive.keepalive_interval_ms)),
        ms(keepalive.keepalive_timeout_ms),
    );
    if let Some(t) = &tls {
        tls::watch(t.clone(), shutdown.clone());
    }
    let serve = tokio::spawn(async move {
        let router = tonic::transport::Server::builder()
            .http2_keepalive_interval(ping_every)
            .http2_keepalive_timeout(Some(ping_timeout))
            .add_service(health_service)
            .add_optional_service(reflection)
            .add_optional_service(reflection_v1alpha)
            .add_service(transcription)
            .add_optional_service(google_speech)
            .add_optional_service(google_operations)
            .add_optional_service(riva_asr);
        match tls {
            Some(tls) => {
                let incoming = tls::listen(listener, tls, tls::Alpn::H2, stop.clone())
                    .map_err(|e| ServerError::Transport(e.to_string()))?
                    .into_stream();
                router
                    .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
                    .await
            }
            None => {
                let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
                router
                    .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
                    .await
            }
        }
        .map_err(|e| ServerError::Transport(e.to_string()))
    });
    let mode = match shared
        .settings
        .server
        .tls
        .as_ref()
        .map(tls::TlsConfig::mutual)
    {
        None => "plaintext",
        Some(None) => "TLS",
        Some(Some(tls::ClientAuth::Required)) => "mutual TLS",
        Some(Some(tls::ClientAuth::Optional)) => "TLS, client certificates optional",
    };
    tracing::info!(%addr, mode, tenants = shared.tenants().ids().count(), "gRPC listening");
    Ok(ServerHandle {
        addr,
        metrics_addr,
        shared,
        ready: ready_rx,
        serve,
    })
}

async fn load(shared: &Arc<Shared>, loader: AnyModelLoader) -> Result<(), String> {
    let engines = tokio::task::spawn_blocking(loader)
        .await
        .map_err(|e| format!("model loader panicked: {e}"))??;
    if engines.is_empty() {
        return Err("no model to serve".into());
    }
    let s = &shared.settings;
    // Every stream has at most MAX_PENDING_FINALS finals and one interim per channel queued.
    let capacity = s.max_streams.max(1) * (MAX_PENDING_FINALS + 2);
    let (workers, threads) = (s.workers, s.threads);
    let pool =
        tokio::task::spawn_blocking(move || Pool::start(engines, workers, threads, capacity))
            .await
            .map_err(|e| format!("starting inference workers panicked: {e}"))?
            .map_err(|e| e.to_string())?;
    tracing::info!(
        models = ?pool.models().iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
        workers = pool.workers(),
        threads,
        max_streams = s.max_streams,
        "models loaded; serving"
    );
    shared
        .loaded
        .set(Loaded { pool })
        .map_err(|_| "models loaded twice".to_string())
}

/// The call task and the service over loopback gRPC, on scripted recognisers: no model
/// download, milliseconds per decode. End-to-end tests with whisper are in `tests/it/grpc.rs`.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::scripted::{whole, Scripted};
    use crate::proto::v1 as pb;
    use pb::streaming_transcribe_request::Request as Req;
    use pb::streaming_transcribe_response::Response as Resp;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    fn settings(max_streams: usize) -> ServeSettings {
        ServeSettings {
            server: ServerConfig {
                listen: "127.0.0.1:0".into(),
                interim_interval_ms: 0,
                ..ServerConfig::default()
            },
            vad: crate::segment::test_vad(),
            decode: DecodeConfig::default(),
            workers: 1,
            threads: 1,
            max_streams,
            dialects: Arc::new(Dialects::load(&Default::default(), &|_: &str| true).unwrap()),
            tenants: Arc::default(),
        }
    }

    async fn serve(models: Vec<Scripted>, max_streams: usize) -> ServerHandle {
        serve_with(models, settings(max_streams)).await
    }

    async fn serve_with(models: Vec<Scripted>, settings: ServeSettings) -> ServerHandle {
        let loader: AnyModelLoader = Box::new(move || {
            Ok(models
                .into_iter()
                .map(|m| Box::new(m) as Box<dyn Model>)
                .collect())
        });
        let mut handle = start_any(settings, loader, None).await.unwrap();
        handle.ready().await.unwrap();
        handle
    }

    /// Opens a call to `addr` with its config and `audio` messages of the fixture, and waits
    /// for the server to accept it; the call stays open while the returned sender lives.
    async fn open_call(
        addr: std::net::SocketAddr,
        audio: usize,
    ) -> (
        tokio::sync::mpsc::Sender<pb::StreamingTranscribeRequest>,
        tonic::Streaming<pb::StreamingTranscribeResponse>,
        Option<pb::StreamingTranscribeResponse>,
    ) {
        let mut client =
            pb::transcription_client::TranscriptionClient::connect(format!("http://{addr}"))
                .await
                .unwrap();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        for m in call(pb::StreamingConfig::default())
            .into_iter()
            .take(1 + audio)
        {
            tx.send(m).await.unwrap();
        }
        let mut responses = client
            .streaming_transcribe(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        let accepted = responses.message().await.unwrap();
        (tx, responses, accepted)
    }

    /// A TCP relay to `to` for one connection that goes dark when `dark` is set: it stops
    /// passing bytes either way but keeps both sockets open, as a crashed peer or a cut
    /// network path does (no FIN, no RST).
    async fn relay(
        to: std::net::SocketAddr,
        dark: Arc<std::sync::atomic::AtomicBool>,
    ) -> std::net::SocketAddr {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (client, _) = listener.accept().await.unwrap();
            let server = tokio::net::TcpStream::connect(to).await.unwrap();
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            let pass = |mut from: tokio::net::tcp::OwnedReadHalf,
                        mut into: tokio::net::tcp::OwnedWriteHalf,
                        dark: Arc<std::sync::atomic::AtomicBool>| async move {
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    let n = match from.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if dark.load(Ordering::SeqCst) {
                        // Silent from now on, the sockets held open.
                        std::future::pending::<()>().await;
                    }
                    if into.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                (from, into)
            };
            let up = tokio::spawn(pass(cr, sw, dark.clone()));
            let down = tokio::spawn(pass(sr, cw, dark));
            let _ = (up.await, down.await);
            std::future::pending::<()>().await;
        });
        addr
    }

    /// The mono 8 kHz call fixture as LINEAR16 messages of 100 ms, after `config`.
    fn call(config: pb::StreamingConfig) -> Vec<pb::StreamingTranscribeRequest> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/audio-fixtures/calls/en_call_8k_mono.wav"
        );
        let audio = crate::audio::wav::read_wav(std::path::Path::new(path)).unwrap();
        let mut bytes = Vec::new();
        crate::audio::codec::encode(
            crate::audio::codec::Encoding::Linear16,
            &audio.channels[0],
            &mut bytes,
        );
        let config = pb::StreamingConfig {
            encoding: pb::AudioEncoding::Linear16 as i32,
            sample_rate_hz: audio.sample_rate_hz,
            channel_count: 1,
            ..config
        };
        std::iter::once(Req::Config(config))
            .chain(bytes.chunks(1600).map(|c| Req::Audio(c.to_vec())))
            .map(|r| pb::StreamingTranscribeRequest { request: Some(r) })
            .collect()
    }

    async fn stream(
        handle: &ServerHandle,
        messages: Vec<pb::StreamingTranscribeRequest>,
    ) -> Result<Vec<Resp>, tonic::Status> {
        let mut client = pb::transcription_client::TranscriptionClient::connect(format!(
            "http://{}",
            handle.addr
        ))
        .await
        .unwrap();
        let mut responses = client
            .streaming_transcribe(futures::stream::iter(messages))
            .await?
            .into_inner();
        let mut out = Vec::new();
        while let Some(r) = responses.message().await? {
            out.extend(r.response);
        }
        Ok(out)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_call_gets_its_plan_then_ordered_finals_then_its_summary_and_survives_a_failed_decode(
    ) {
        let decodes = Arc::new(AtomicUsize::new(0));
        let counter = decodes.clone();
        let fake = Scripted::new("fake", "en", move |samples, language| {
            if counter.fetch_add(1, Ordering::SeqCst) == 1 {
                return Err(EngineError::Inference("scripted failure".into()));
            }
            Ok(whole(&format!("{language} {}", samples.len()), samples))
        });
        let yue = Scripted::new("yue-model", "yue", |s, _| Ok(whole("粤", s)));
        let handle = serve(vec![fake, yue], 2).await;
        let responses = stream(
            &handle,
            call(pb::StreamingConfig {
                call_id: "c1".into(),
                language: "en".into(),
                ..Default::default()
            }),
        )
        .await
        .unwrap();
        // The accepted config echoes the plan: the default model, the language, its adapter.
        let Some(Resp::AcceptedConfig(accepted)) = responses.first() else {
            panic!("first response: {:?}", responses.first());
        };
        assert_eq!(
            (
                accepted.model.as_str(),
                accepted.language.as_str(),
                accepted.dialect.as_str()
            ),
            ("fake", "en", "english")
        );
        let finals: Vec<&pb::FinalResult> = responses
            .iter()
            .filter_map(|r| match r {
                Resp::Final(f) => Some(f),
                _ => None,
            })
            .collect();
        let n = decodes.load(Ordering::SeqCst);
        assert!(n >= 5, "{n} decodes");
        assert_eq!(finals.len(), n - 1, "only the failed utterance is missing");
        for (i, f) in finals.iter().enumerate() {
            assert_eq!(f.sequence, i as u64);
            assert_eq!(f.segment_id, format!("c1/0/{i}"));
            assert!(f.text.starts_with("en "), "{}", f.text);
        }
        assert!(finals.windows(2).all(|w| w[0].start_ms < w[1].start_ms));
        let Some(Resp::Summary(summary)) = responses.last() else {
            panic!("last response: {:?}", responses.last());
        };
        assert_eq!(summary.final_results as usize, finals.len());
        handle.shutdown();
    }

    /// A client that vanishes without closing (its connection goes dark mid-call) holds its
    /// admission slot only until an HTTP/2 keepalive ping goes unanswered, not for the idle
    /// timeout (30 s) or TCP's hours.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_that_vanishes_without_closing_frees_its_slot_at_the_keepalive_timeout() {
        let mut s = settings(1);
        s.server.keepalive_interval_ms = 300;
        s.server.keepalive_timeout_ms = 300;
        let handle = serve_with(
            vec![Scripted::new("fake", "en", |s, _| Ok(whole("x", s)))],
            s,
        )
        .await;
        let dark = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let via = relay(handle.addr, dark.clone()).await;
        let (tx, responses, accepted) = open_call(via, 1).await;
        assert!(accepted.is_some(), "accepted");
        assert_eq!(handle.shared.admission.available_permits(), 0);
        dark.store(true, Ordering::SeqCst);
        let went_dark = std::time::Instant::now();
        while handle.shared.admission.available_permits() == 0 {
            assert!(
                went_dark.elapsed() < Duration::from_secs(10),
                "the slot is still held {:?} after the client vanished",
                went_dark.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The client neither closed nor stopped sending: only the keepalive can have done it.
        drop((tx, responses));
        handle.shutdown();
    }

    /// Plaintext is fine on loopback, refused elsewhere unless the config says so; with TLS
    /// any address is fine. (Checked without binding: tests listen on loopback only.)
    #[test]
    fn plaintext_on_a_non_loopback_address_must_be_explicit() {
        let public: std::net::SocketAddr = "0.0.0.0:50051".parse().unwrap();
        let local: std::net::SocketAddr = "127.0.0.1:50051".parse().unwrap();
        let mut server = ServerConfig::default();
        assert!(check_plaintext(&server, local).is_ok());
        let e = check_plaintext(&server, public).unwrap_err().to_string();
        assert!(
            e.contains("0.0.0.0:50051") && e.contains("server.plaintext = true"),
            "{e}"
        );
        server.plaintext = true;
        assert!(check_plaintext(&server, public).is_ok());
    }

    /// A client that stops reading responses but keeps its connection (and its HTTP/2
    /// window closed) has its call ended once a response has waited `send_timeout_ms`: the
    /// slot comes back, and when the client reads again it gets the status after what the
    /// window had let through.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_that_stops_reading_has_its_call_ended_and_its_slot_freed() {
        let mut s = settings(1);
        s.server.send_timeout_ms = 300;
        // Finals of 2 KB each: the client's 4 KB window is full after two.
        let text = "word ".repeat(400);
        let handle = serve_with(
            vec![Scripted::new("fake", "en", move |s, _| Ok(whole(&text, s)))],
            s,
        )
        .await;
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", handle.addr))
            .unwrap()
            .initial_stream_window_size(Some(4096))
            .connect()
            .await
            .unwrap();
        let mut client = pb::transcription_client::TranscriptionClient::new(channel);
        // The fixture eight times over: far more responses than the window and the buffer hold.
        let messages = call(pb::StreamingConfig::default());
        let audio = messages[1..].to_vec();
        let all =
            std::iter::once(messages[0].clone()).chain((0..8).flat_map(move |_| audio.clone()));
        let mut responses = client
            .streaming_transcribe(futures::stream::iter(all))
            .await
            .unwrap()
            .into_inner();
        // The client reads nothing from here on.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while handle.shared.admission.available_permits() == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the call of a client that reads nothing still holds its slot"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut read = 0;
        let status = loop {
            match responses.message().await {
                Ok(Some(_)) => read += 1,
                Ok(None) => panic!("the stream ended without a status after {read} responses"),
                Err(s) => break s,
            }
        };
        assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
        assert!(status.message().contains("send_timeout_ms"), "{status:?}");
        assert!(
            read < 40,
            "{read} responses: the window, not the whole call"
        );
        handle.shutdown();
    }

    /// A thousand connections, each opening a call and hanging up: every slot comes back and
    /// the process holds no more file descriptors than before.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_thousand_connections_opened_and_dropped_leak_no_slots_or_descriptors() {
        // Room for a hung-up call's slot to come back after its client has moved on.
        let handle = serve(
            vec![Scripted::new("fake", "en", |s, _| Ok(whole("x", s)))],
            16,
        )
        .await;
        let fds = || std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count());
        // Warm: the first connection sets up what every later one reuses.
        drop(open_call(handle.addr, 1).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let before = fds();
        // Four clients side by side, 250 connections each.
        let addr = handle.addr;
        let clients: Vec<_> = (0..4)
            .map(|_| {
                tokio::spawn(async move {
                    for _ in 0..250 {
                        let (tx, responses, accepted) = open_call(addr, 0).await;
                        assert!(accepted.is_some());
                        drop((tx, responses));
                    }
                })
            })
            .collect();
        for c in clients {
            c.await.unwrap();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while handle.shared.admission.available_permits() < 16 || fds() > before + 8 {
            assert!(
                std::time::Instant::now() < deadline,
                "{} slots free, {} descriptors (before: {before})",
                handle.shared.admission.available_permits(),
                fds()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        handle.shutdown();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bad_requests_are_refused_by_the_plan_and_capacity_is_enforced() {
        let slow = Scripted::new("fake", "en", |s, _| Ok(whole("x", s)))
            .with_delay(Duration::from_millis(300));
        let handle = serve(vec![slow], 1).await;
        let refused = stream(
            &handle,
            call(pb::StreamingConfig {
                model: "large".into(),
                ..Default::default()
            }),
        )
        .await
        .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument);
        assert!(
            refused.message().contains("'large' is not loaded"),
            "{}",
            refused.message()
        );
        // One slot: a second call while the first holds it is refused at once.
        // Accepted: the slot is held until the stream ends.
        let first = open_call(handle.addr, 0).await;
        assert!(first.2.is_some());
        let second = stream(&handle, call(pb::StreamingConfig::default()))
            .await
            .unwrap_err();
        assert_eq!(second.code(), tonic::Code::ResourceExhausted);
        // The first call hangs up: its slot is free again.
        drop(first);
        let mut admitted = false;
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if handle.shared.admission.available_permits() == 1 {
                admitted = true;
                break;
            }
        }
        assert!(
            admitted,
            "the slot was not freed after the client went away"
        );
        handle.shutdown();
    }

    /// What gRPC health and `/health` say, polled until it is `want` (a status follows the
    /// event that changes it by one task's turn).
    async fn wait_for_health(handle: &ServerHandle, want: i32) {
        use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", handle.addr))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut client = HealthClient::new(channel);
        let http = format!("http://{}/health", handle.metrics_addr.unwrap());
        for _ in 0..100 {
            let grpc = client
                .check(HealthCheckRequest {
                    service: "callscribe.v1.Transcription".into(),
                })
                .await
                .unwrap()
                .into_inner()
                .status;
            let url = http.clone();
            let code = tokio::task::spawn_blocking(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .build()
                    .into();
                agent.get(&url).call().unwrap().status().as_u16()
            })
            .await
            .unwrap();
            let serving = tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
            if grpc == want && (code == 200) == (want == serving) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("health never became {want}");
    }

    /// Health is SERVING only with a free slot and not draining; draining refuses new calls
    /// with UNAVAILABLE while the call in flight runs to its summary.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn health_says_not_serving_at_capacity_and_while_draining() {
        use tonic_health::pb::health_check_response::ServingStatus;
        let (serving, not_serving) = (
            ServingStatus::Serving as i32,
            ServingStatus::NotServing as i32,
        );
        let mut settings = settings(1);
        settings.server.metrics_listen = Some("127.0.0.1:0".into());
        let fake = Scripted::new("fake", "en", |s, _| Ok(whole("x", s)));
        let handle = serve_with(vec![fake], settings).await;
        wait_for_health(&handle, serving).await;
        let (tx, responses, accepted) = open_call(handle.addr, 0).await;
        assert!(accepted.is_some());
        wait_for_health(&handle, not_serving).await;
        drop((tx, responses));
        wait_for_health(&handle, serving).await;

        let (tx, mut responses, accepted) = open_call(handle.addr, 0).await;
        assert!(accepted.is_some());
        handle.drain();
        wait_for_health(&handle, not_serving).await;
        let refused = stream(&handle, call(pb::StreamingConfig::default()))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unavailable);
        assert!(
            refused.message().contains("draining"),
            "{}",
            refused.message()
        );
        // The call in flight goes on: its audio is transcribed and it ends with a summary.
        for m in call(pb::StreamingConfig::default()).into_iter().skip(1) {
            tx.send(m).await.unwrap();
        }
        drop(tx);
        let mut summary = false;
        let mut finals = 0;
        while let Some(r) = responses.message().await.unwrap() {
            match r.response {
                Some(Resp::Final(_)) => finals += 1,
                Some(Resp::Summary(_)) => summary = true,
                _ => {}
            }
        }
        assert!(summary && finals > 0, "finals {finals}, summary {summary}");
        tokio::time::timeout(Duration::from_secs(10), handle.drained())
            .await
            .expect("no call left in flight");
        assert_eq!(handle.calls_in_flight(), 0);
        // Drained, the server still takes nothing.
        wait_for_health(&handle, not_serving).await;
        handle.shutdown();
    }
}
