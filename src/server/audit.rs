//! The audit trail: one structured INFO line per call, target `audit`, when the call ends or
//! is refused, and the per-tenant call count beside it.
//!
//! A line names the tenant, the call id, the peer address, the client certificate's identity
//! (mutual TLS), the RPC, model, adapter, outcome (`OK` or the gRPC code) and seconds of
//! audio. It never holds a key (only the tenant the key belongs to) nor any transcript text:
//! the log is read by more people than the calls are. Values a client chose (call id, model,
//! adapter, certificate names) are written quoted and escaped, so none can forge a line. The
//! `audit` target is on at INFO even when the rest of the log is at WARN
//! (`cli::init_logging`).

use super::auth::Caller;
use super::metrics::Metrics;
use tonic::Status;

/// What a call was, for its audit line.
#[derive(Debug, Clone, Default)]
pub struct CallRecord {
    pub rpc: &'static str,
    pub call_id: String,
    pub model: String,
    pub adapter: String,
}

/// The outcome of a call as its audit line and metrics name it: `OK` or the status code.
pub fn outcome(status: Option<&Status>) -> String {
    status.map_or_else(|| "OK".to_owned(), |s| format!("{:?}", s.code()))
}

/// A call that ended (or was refused after its request was read).
pub fn call(
    metrics: &Metrics,
    caller: &Caller,
    record: &CallRecord,
    outcome: &str,
    audio_secs: f64,
) {
    metrics.call(caller.tenant_id(), outcome);
    tracing::info!(
        target: "audit",
        tenant = ?caller.tenant_id(),
        call_id = ?record.call_id,
        peer = %peer(caller),
        client_cert = ?client_cert(caller),
        rpc = record.rpc,
        model = ?record.model,
        adapter = ?record.adapter,
        outcome,
        audio_secs = (audio_secs * 1000.0).round() / 1000.0,
        "audit"
    );
}

/// A request refused at the edge, before its call could be read (no or a bad key).
pub fn refused(caller: &Caller, status: &Status) {
    tracing::info!(
        target: "audit",
        tenant = ?caller.tenant_id(),
        call_id = ?"",
        peer = %peer(caller),
        client_cert = ?client_cert(caller),
        outcome = outcome(Some(status)).as_str(),
        reason = ?status.message(),
        "audit"
    );
}

fn peer(caller: &Caller) -> String {
    caller
        .peer
        .map_or_else(|| "-".to_owned(), |p| p.to_string())
}

fn client_cert(caller: &Caller) -> String {
    caller
        .identity
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default()
}
