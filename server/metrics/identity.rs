//! Identity's counters: JWKS fetches by issuer and config reloads.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IssuerResult {
    issuer: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: String,
}

#[derive(Debug, Default)]
pub(super) struct Identity {
    jwks: Family<IssuerResult, Counter>,
    reloads: Family<ResultLabel, Counter>,
}

impl Identity {
    pub(super) fn register(&self, r: &mut Registry) {
        r.register(
            "witness_jwks_fetches",
            "Fetches of an issuer's signing keys (discovery and JWKS), by issuer and result",
            self.jwks.clone(),
        );
        r.register(
            "witness_config_reloads",
            "Config reloads (SIGHUP), by result: applied, refused (invalid or needs a restart)",
            self.reloads.clone(),
        );
        // Both results shown from the start, so a dashboard sees 0, not nothing.
        for result in ["applied", "refused"] {
            drop(self.reloads.get_or_create(&ResultLabel {
                result: result.into(),
            }));
        }
    }

    pub(super) fn jwks_fetched(&self, issuer: &str, result: &str) {
        self.jwks
            .get_or_create(&IssuerResult {
                issuer: issuer.into(),
                result: result.into(),
            })
            .inc();
    }

    pub(super) fn reloaded(&self, result: &str) {
        self.reloads
            .get_or_create(&ResultLabel {
                result: result.into(),
            })
            .inc();
    }
}
