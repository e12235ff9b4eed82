//! Per-principal request rate and open-stream limits, answered with
//! RESOURCE_EXHAUSTED.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Exhausted(pub String);

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The configured rates, swapped by a reload.
#[derive(Debug, Clone, Copy)]
struct Settings {
    rate: f64,
    burst: f64,
    max_streams: usize,
}

impl Settings {
    fn new(requests_per_second: u32, burst: u32, max_streams: usize) -> Settings {
        Settings {
            rate: f64::from(requests_per_second),
            burst: f64::from(burst.max(requests_per_second)),
            max_streams,
        }
    }
}

/// Token buckets and stream counts, by principal name. A reload changes
/// the rates and keeps the buckets and counts.
#[derive(Debug)]
pub struct Limiter {
    settings: Mutex<Settings>,
    buckets: Mutex<HashMap<String, Bucket>>,
    streams: Arc<Mutex<HashMap<String, usize>>>,
}

/// Holds one open stream of a principal; dropping it frees the slot.
#[derive(Debug)]
pub struct StreamSlot {
    name: String,
    streams: Arc<Mutex<HashMap<String, usize>>>,
    /// Counts the stream in `witness_stream_subscribers` while it is open.
    _subscriber: crate::metrics::Subscriber,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        if let Ok(mut s) = self.streams.lock() {
            if let Some(n) = s.get_mut(&self.name) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    s.remove(&self.name);
                }
            }
        }
    }
}

impl Limiter {
    pub fn new(requests_per_second: u32, burst: u32, max_streams: usize) -> Self {
        Limiter {
            settings: Mutex::new(Settings::new(requests_per_second, burst, max_streams)),
            buckets: Mutex::new(HashMap::new()),
            streams: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// New rates from a reloaded config.
    pub fn reconfigure(&self, requests_per_second: u32, burst: u32, max_streams: usize) {
        if let Ok(mut s) = self.settings.lock() {
            *s = Settings::new(requests_per_second, burst, max_streams);
        }
    }

    fn settings(&self) -> Result<Settings, Exhausted> {
        self.settings
            .lock()
            .map(|s| *s)
            .map_err(|_| Exhausted("rate limiter unavailable".into()))
    }

    /// Takes one request from `name`'s bucket.
    pub fn request(&self, name: &str) -> Result<(), Exhausted> {
        let Settings { rate, burst, .. } = self.settings()?;
        if rate <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut buckets = self
            .buckets
            .lock()
            .map_err(|_| Exhausted("rate limiter unavailable".into()))?;
        let b = buckets.entry(name.to_string()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(burst);
        b.at = now;
        if b.tokens < 1.0 {
            return Err(Exhausted(format!(
                "rate limit: {name} exceeds {rate} requests per second; retry later"
            )));
        }
        b.tokens -= 1.0;
        Ok(())
    }

    /// Opens a stream slot for `name`, if it has one left.
    pub fn open_stream(&self, name: &str) -> Result<StreamSlot, Exhausted> {
        let max_streams = self.settings()?.max_streams;
        let mut s = self
            .streams
            .lock()
            .map_err(|_| Exhausted("stream limiter unavailable".into()))?;
        let n = s.entry(name.to_string()).or_insert(0);
        if *n >= max_streams {
            return Err(Exhausted(format!(
                "{name} already has {max_streams} open streams, the limit; close one first"
            )));
        }
        *n += 1;
        Ok(StreamSlot {
            name: name.to_string(),
            streams: self.streams.clone(),
            _subscriber: crate::metrics::Subscriber::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_refuse_past_the_burst_and_streams_past_the_limit() {
        let l = Limiter::new(1, 3, 2);
        for _ in 0..3 {
            assert!(l.request("a").is_ok());
        }
        assert!(l.request("a").is_err(), "burst spent");
        assert!(l.request("b").is_ok(), "per principal");
        let s1 = l.open_stream("a").unwrap();
        let _s2 = l.open_stream("a").unwrap();
        assert!(l.open_stream("a").is_err());
        drop(s1);
        assert!(l.open_stream("a").is_ok(), "a closed stream frees its slot");
        assert!(
            Limiter::new(0, 0, 1).request("x").is_ok(),
            "0 means unlimited"
        );
    }
}
