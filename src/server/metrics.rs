//! The server's Prometheus metrics, registered in one place, and the `/metrics` endpoint,
//! beside which `/health` answers load balancers' HTTP checks ([`super::health`]).
//!
//! Names follow `callscribe_<thing>_<unit>`. The real-time factor is exported as two counters
//! (inference seconds, audio seconds) so a dashboard can take their ratio over any window;
//! a gauge of the lifetime ratio would hide a recent slowdown.

use super::ServerError;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};
use tokio_util::sync::CancellationToken;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    /// gRPC status code name, e.g. `InvalidArgument`.
    pub code: String,
}

/// The tenant a series belongs to; empty on a server without tenants.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TenantLabel {
    pub tenant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabel {
    pub tenant: String,
    /// `OK` or the gRPC status code the call ended with, e.g. `ResourceExhausted`.
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// `interim` or `final`.
    pub kind: String,
}

/// Cheap to clone: every field is a shared handle.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    pub active_streams: Gauge,
    /// Per tenant: what each tenant sends is what it is billed for.
    audio_seconds: Family<TenantLabel, Counter<f64, AtomicU64>>,
    /// Calls per tenant and outcome (the audit log's lines, counted).
    calls: Family<CallLabel, Counter>,
    pub inference_seconds: Counter<f64, AtomicU64>,
    pub finalisation_latency_seconds: Histogram,
    pub refused_streams: Counter,
    pub errors: Family<CodeLabel, Counter>,
    pub results: Family<KindLabel, Counter>,
    /// The forwarder's metrics, appended to `/metrics` once a forwarder runs.
    forward: Arc<OnceLock<crate::forward::ForwardMetrics>>,
    pub dialect_calls: Family<DialectLabel, Counter>,
    pub reloads: Counter,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct DialectLabel {
    pub adapter: String,
    pub reason: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("callscribe");
        let active_streams = Gauge::default();
        registry.register(
            "active_streams",
            "Live calls and Transcribe requests being served",
            active_streams.clone(),
        );
        let audio_seconds = Family::<TenantLabel, Counter<f64, AtomicU64>>::default();
        registry.register(
            "audio_seconds",
            "Seconds of call audio received (per channel summed), per tenant",
            audio_seconds.clone(),
        );
        let calls = Family::<CallLabel, Counter>::default();
        registry.register(
            "calls",
            "Calls ended or refused after their request was read, per tenant and outcome",
            calls.clone(),
        );
        let inference_seconds = Counter::<f64, AtomicU64>::default();
        registry.register(
            "inference_seconds",
            "Wall seconds spent in whisper; divided by audio seconds = real-time factor",
            inference_seconds.clone(),
        );
        // 50 ms … ~26 s.
        let finalisation_latency_seconds = Histogram::new(exponential_buckets(0.05, 1.5, 16));
        registry.register(
            "finalisation_latency_seconds",
            "From the end of an utterance being detected to its final result being sent",
            finalisation_latency_seconds.clone(),
        );
        let refused_streams = Counter::default();
        registry.register(
            "refused_streams",
            "Calls refused with RESOURCE_EXHAUSTED at capacity",
            refused_streams.clone(),
        );
        let errors = Family::<CodeLabel, Counter>::default();
        registry.register("errors", "RPCs ended with an error status", errors.clone());
        let results = Family::<KindLabel, Counter>::default();
        registry.register("results", "Interim and final results sent", results.clone());
        let dialect_calls = Family::<DialectLabel, Counter>::default();
        registry.register(
            "dialect_calls",
            "Calls per dialect adapter and the reason it was chosen",
            dialect_calls.clone(),
        );
        let reloads = Counter::default();
        registry.register(
            "dialect_reloads",
            "Successful reloads of the dialect adapters (SIGHUP)",
            reloads.clone(),
        );
        Self {
            dialect_calls,
            reloads,
            registry: Arc::new(registry),
            active_streams,
            audio_seconds,
            calls,
            inference_seconds,
            finalisation_latency_seconds,
            refused_streams,
            errors,
            results,
            forward: Arc::new(OnceLock::new()),
        }
    }

    pub fn error(&self, status: &tonic::Status) {
        self.errors
            .get_or_create(&CodeLabel {
                code: format!("{:?}", status.code()),
            })
            .inc();
    }

    /// Makes the per-tenant series exist from the start (at 0), so a dashboard sees every
    /// tenant, and a server without tenants its one unlabelled-tenant series.
    pub fn tenants<'a>(&self, ids: impl Iterator<Item = &'a str>) {
        let mut any = false;
        for id in ids {
            any = true;
            self.audio_seconds(id);
        }
        if !any {
            self.audio_seconds("");
        }
    }

    /// The audio counter of `tenant` (empty: no tenants), to keep for a call.
    pub fn audio_seconds(&self, tenant: &str) -> Counter<f64, AtomicU64> {
        self.audio_seconds
            .get_or_create(&TenantLabel {
                tenant: tenant.to_owned(),
            })
            .clone()
    }

    pub fn call(&self, tenant: &str, outcome: &str) {
        self.calls
            .get_or_create(&CallLabel {
                tenant: tenant.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    pub fn result(&self, kind: &str) {
        self.results
            .get_or_create(&KindLabel { kind: kind.into() })
            .inc();
    }

    /// Includes the forwarder's metrics in [`encode`](Self::encode) (first call wins).
    pub fn attach_forward(&self, m: crate::forward::ForwardMetrics) {
        let _ = self.forward.set(m);
    }

    /// Prometheus text exposition format.
    pub fn encode(&self) -> String {
        use prometheus_client::encoding::text::{encode_eof, encode_registry};
        let mut out = String::new();
        encode_registry(&mut out, &self.registry).expect("writing to a String cannot fail");
        if let Some(f) = self.forward.get() {
            encode_registry(&mut out, &f.registry).expect("writing to a String cannot fail");
        }
        encode_eof(&mut out).expect("writing to a String cannot fail");
        out
    }
}

/// Serves `GET /metrics` on `addr` until `shutdown`; over `tls` (HTTP/1.1 inside, the gRPC
/// listener's certificate and client policy) when given.
pub async fn serve(
    addr: &str,
    metrics: Metrics,
    health: Arc<super::health::Health>,
    tls: Option<Arc<super::tls::Tls>>,
    shutdown: CancellationToken,
) -> Result<SocketAddr, ServerError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind {
            addr: addr.to_owned(),
            source,
        })?;
    let local = listener.local_addr().map_err(|source| ServerError::Bind {
        addr: addr.to_owned(),
        source,
    })?;
    let app = axum::Router::new()
        .route(
            "/health",
            axum::routing::get(move || {
                let serving = health.serving();
                async move {
                    if serving {
                        (axum::http::StatusCode::OK, "SERVING\n")
                    } else {
                        (axum::http::StatusCode::SERVICE_UNAVAILABLE, "NOT_SERVING\n")
                    }
                }
            }),
        )
        .route(
            "/metrics",
            axum::routing::get(move || {
                let metrics = metrics.clone();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        metrics.encode(),
                    )
                }
            }),
        );
    let scheme = if tls.is_some() { "https" } else { "http" };
    if tls.is_none() && !local.ip().is_loopback() {
        // Per-tenant call and audio counts are business data too.
        tracing::warn!(addr = %local, "serving /metrics in plaintext on a non-loopback address");
    }
    match tls {
        Some(tls) => {
            let listener =
                super::tls::listen(listener, tls, super::tls::Alpn::Http1, shutdown.clone())
                    .map_err(|source| ServerError::Bind {
                        addr: addr.to_owned(),
                        source,
                    })?;
            spawn(listener, app, shutdown);
        }
        None => spawn(listener, app, shutdown),
    }
    tracing::info!(addr = %local, scheme, "metrics on /metrics");
    Ok(local)
}

/// Serves `app` on `listener`, a TLS or a plain one, until `shutdown`.
fn spawn<L>(listener: L, app: axum::Router, shutdown: CancellationToken)
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::error!("metrics endpoint failed: {e}");
        }
    });
}
