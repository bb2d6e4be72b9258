//! The forwarder's Prometheus metrics (`callscribe_forward_*`), in their own registry so a
//! forwarder works without a server; the server's `/metrics` appends it.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::Arc;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SinkLabel {
    pub sink: String,
}

#[derive(Clone)]
pub struct ForwardMetrics {
    pub registry: Arc<Registry>,
    /// Segments submitted and not yet in the spool.
    pub queue_depth: Gauge,
    pub spooled: Counter,
    /// Segments in the spool not yet delivered, per sink.
    pub pending: Family<SinkLabel, Gauge>,
    pub delivered: Family<SinkLabel, Counter>,
    pub retried: Family<SinkLabel, Counter>,
    pub dead_lettered: Family<SinkLabel, Counter>,
    /// Segments never spooled: the queue was full because the spool could not be written.
    pub dropped: Counter,
    /// Spool writes that failed (disk full, unwritable, I/O errors); each is retried.
    pub spool_errors: Counter,
}

impl Default for ForwardMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl ForwardMetrics {
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("callscribe_forward");
        let queue_depth = Gauge::default();
        r.register(
            "queue_depth",
            "Final segments submitted and waiting to be written to the spool",
            queue_depth.clone(),
        );
        let spooled = Counter::default();
        r.register(
            "spooled",
            "Final segments written to the durable spool",
            spooled.clone(),
        );
        let pending = Family::<SinkLabel, Gauge>::default();
        r.register(
            "pending",
            "Segments in the spool not yet delivered, per sink",
            pending.clone(),
        );
        let delivered = Family::<SinkLabel, Counter>::default();
        r.register(
            "delivered",
            "Segments delivered, per sink",
            delivered.clone(),
        );
        let retried = Family::<SinkLabel, Counter>::default();
        r.register(
            "retried",
            "Delivery attempts that failed transiently and will be retried",
            retried.clone(),
        );
        let dead_lettered = Family::<SinkLabel, Counter>::default();
        r.register(
            "dead_lettered",
            "Segments a downstream rejected as invalid, parked in the dead-letter table",
            dead_lettered.clone(),
        );
        let dropped = Counter::default();
        r.register(
            "dropped",
            "Final segments not forwarded because the spool could not take them in time \
             (its disk full or failing while the in-memory queue filled)",
            dropped.clone(),
        );
        let spool_errors = Counter::default();
        r.register(
            "spool_errors",
            "Spool writes that failed (disk full, unwritable); the segments stay queued and are retried",
            spool_errors.clone(),
        );
        Self {
            registry: Arc::new(r),
            dropped,
            spool_errors,
            queue_depth,
            spooled,
            pending,
            delivered,
            retried,
            dead_lettered,
        }
    }

    pub fn sink(sink: &str) -> SinkLabel {
        SinkLabel { sink: sink.into() }
    }

    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}
