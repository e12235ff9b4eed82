//! Logs and traces (DESIGN §7): the tracing subscriber that `witness serve`
//! installs once its config is read: text or JSON lines on stderr (colour
//! only on a terminal), filtered by `WITNESS_LOG` (default `info`), and,
//! with `[tracing] otlp_endpoint`, spans exported with OTLP over HTTP.

use crate::config::{LogConfig, LogFormat, TracingConfig};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::io::IsTerminal;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Why telemetry cannot start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("tracing.otlp_endpoint: {0}")]
    Otlp(String),
}

/// Flushes exported spans when dropped (at the end of `serve`).
#[derive(Debug)]
pub struct Guard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take() {
            // The exporter blocks on HTTP: never on a runtime thread.
            let _ = std::thread::spawn(move || p.shutdown()).join();
        }
    }
}

fn filter() -> EnvFilter {
    EnvFilter::try_from_env("WITNESS_LOG").unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Text logs on stderr for the commands other than `serve`.
pub fn init_default() {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter())
        .try_init();
}

/// Installs the subscriber `[log]` and `[tracing]` describe.
pub fn init(log: &LogConfig, traces: &TracingConfig) -> Result<Guard, TelemetryError> {
    let ansi = std::io::stderr().is_terminal();
    let fmt = match log.format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(ansi)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .boxed(),
    };
    let (otel, provider) = if traces.otlp_endpoint.is_empty() {
        (None, None)
    } else {
        let provider = otlp_provider(traces)?;
        let tracer = provider.tracer("witness");
        // Only spans go to the collector; log events stay on stderr.
        // A closure, not the method path: the filter's trait bounds need it.
        #[allow(clippy::redundant_closure_for_method_calls)]
        let layer = tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_filter(tracing_subscriber::filter::filter_fn(|m| m.is_span()));
        (Some(layer), Some(provider))
    };
    let _ = tracing_subscriber::registry()
        .with(filter())
        .with(fmt)
        .with(otel)
        .try_init();
    Ok(Guard { provider })
}

fn otlp_provider(traces: &TracingConfig) -> Result<SdkTracerProvider, TelemetryError> {
    let endpoint = format!("{}/v1/traces", traces.otlp_endpoint.trim_end_matches('/'));
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(endpoint)
        .build()
        .map_err(|e| TelemetryError::Otlp(e.to_string()))?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(traces.service_name.clone())
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}
