//! `token_verification_failures_total`: the tokens a service refused, by
//! reason. Every service that verifies tokens counts them the same way.

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

/// `token_verification_failures_total` by reason (`missing`, `malformed`,
/// `expired`, `bad_signature`, `unknown_key`, `wrong_algorithm`, `invalid`,
/// `keys_unavailable`). Counts from creation; a service exposes it by
/// registering it as [`TokenFailures::NAME`] with [`TokenFailures::HELP`].
#[derive(Debug, Clone, Default)]
pub struct TokenFailures {
    failures: Family<ReasonLabel, Counter>,
}

impl TokenFailures {
    /// The metric's name (`_total` is appended, as for every counter).
    pub const NAME: &str = "token_verification_failures";
    pub const HELP: &str = "Tokens refused, by reason";

    pub fn record(&self, reason: &'static str) {
        self.failures.get_or_create(&ReasonLabel { reason }).inc();
    }
}

/// Encoded as the counter family it is.
impl EncodeMetric for TokenFailures {
    fn encode(&self, encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        self.failures.encode(encoder)
    }

    fn metric_type(&self) -> MetricType {
        self.failures.metric_type()
    }

    fn is_empty(&self) -> bool {
        self.failures.is_empty()
    }
}
