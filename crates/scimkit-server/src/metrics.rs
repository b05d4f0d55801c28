//! Prometheus metrics, in the text exposition format: requests by route template,
//! method and status, a latency histogram per route, requests in flight, and
//! server-side failures (5xx) with a cause.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use scimkit_axum::Served;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        self.count += 1;
        self.sum += seconds;
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                self.counts[i] += 1;
            }
        }
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (bound, n) in BUCKETS.iter().zip(self.counts) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {n}");
        }
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}\n{name}_sum{braces} {}\n{name}_count{braces} {}",
            self.count, self.sum, self.count
        );
    }
}

#[derive(Default)]
struct Tables {
    requests: BTreeMap<(String, String, u16), u64>,
    latency: BTreeMap<String, Histogram>,
    webhook_lag: Histogram,
}

/// The server's counters.
#[derive(Default)]
pub struct Metrics {
    tables: Mutex<Tables>,
    in_flight: AtomicI64,
    failures: AtomicU64,
    store_errors: AtomicU64,
    events_pending: AtomicU64,
    webhook_delivered: AtomicU64,
    webhook_failed_attempts: AtomicU64,
    webhook_dead_letters: AtomicU64,
}

impl Metrics {
    fn record(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let Ok(mut t) = self.tables.lock() else {
            return;
        };
        *t.requests
            .entry((route.to_owned(), method.to_owned(), status))
            .or_default() += 1;
        t.latency
            .entry(route.to_owned())
            .or_default()
            .observe(seconds);
    }

    /// Events the webhook consumer has not acknowledged yet.
    pub fn set_events_pending(&self, n: u64) {
        self.events_pending.store(n, Ordering::Relaxed);
    }

    /// An event delivered, `lag` seconds after its change.
    pub fn webhook_delivered(&self, lag: f64) {
        self.webhook_delivered.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut t) = self.tables.lock() {
            t.webhook_lag.observe(lag);
        }
    }

    /// A delivery attempt that failed (it is retried).
    pub fn webhook_failed_attempt(&self) {
        self.webhook_failed_attempts.fetch_add(1, Ordering::Relaxed);
    }

    /// An event given up on.
    pub fn webhook_dead_letter(&self) {
        self.webhook_dead_letters.fetch_add(1, Ordering::Relaxed);
    }

    /// The metrics in Prometheus' text format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP scim_http_requests_total HTTP requests served, by route template, method and status.\n\
             # TYPE scim_http_requests_total counter"
        );
        if let Ok(t) = self.tables.lock() {
            for ((route, method, status), n) in &t.requests {
                let _ = writeln!(
                    out,
                    "scim_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "# HELP scim_http_request_duration_seconds Time from a request's headers to its answer.\n\
                 # TYPE scim_http_request_duration_seconds histogram"
            );
            for (route, h) in &t.latency {
                h.render(
                    &mut out,
                    "scim_http_request_duration_seconds",
                    &format!("route=\"{route}\""),
                );
            }
            let _ = writeln!(
                out,
                "# HELP scim_webhook_delivery_lag_seconds Time from a change's commit to its event's delivery.\n\
                 # TYPE scim_webhook_delivery_lag_seconds histogram"
            );
            t.webhook_lag
                .render(&mut out, "scim_webhook_delivery_lag_seconds", "");
        }
        let _ = writeln!(
            out,
            "# HELP scim_http_requests_in_flight Requests being served now.\n\
             # TYPE scim_http_requests_in_flight gauge\n\
             scim_http_requests_in_flight {}\n\
             # HELP scim_http_server_errors_total Answers with a 5xx status.\n\
             # TYPE scim_http_server_errors_total counter\n\
             scim_http_server_errors_total {}\n\
             # HELP scim_store_errors_total 5xx answers caused by the store or the key store (the cause is in the logs).\n\
             # TYPE scim_store_errors_total counter\n\
             scim_store_errors_total {}\n\
             # HELP scim_events_pending Events the webhook consumer has not acknowledged yet (reported by the delivering instance).\n\
             # TYPE scim_events_pending gauge\n\
             scim_events_pending {}\n\
             # HELP scim_webhook_deliveries_total Events delivered (answered 2xx).\n\
             # TYPE scim_webhook_deliveries_total counter\n\
             scim_webhook_deliveries_total {}\n\
             # HELP scim_webhook_failed_attempts_total Delivery attempts that failed and were retried or given up.\n\
             # TYPE scim_webhook_failed_attempts_total counter\n\
             scim_webhook_failed_attempts_total {}\n\
             # HELP scim_webhook_dead_letters_total Events given up on after the last attempt (see `events dead-letters`).\n\
             # TYPE scim_webhook_dead_letters_total counter\n\
             scim_webhook_dead_letters_total {}",
            self.in_flight.load(Ordering::Relaxed),
            self.failures.load(Ordering::Relaxed),
            self.store_errors.load(Ordering::Relaxed),
            self.events_pending.load(Ordering::Relaxed),
            self.webhook_delivered.load(Ordering::Relaxed),
            self.webhook_failed_attempts.load(Ordering::Relaxed),
            self.webhook_dead_letters.load(Ordering::Relaxed),
        );
        out
    }
}

/// One request in flight, counted while it lives.
struct InFlight<'a>(&'a AtomicI64);

impl<'a> InFlight<'a> {
    fn enter(gauge: &'a AtomicI64) -> Self {
        gauge.fetch_add(1, Ordering::Relaxed);
        InFlight(gauge)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The middleware that counts every request the server answers.
pub async fn track(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    // HTTP allows any token as a method: only the standard ones become labels, so
    // unauthenticated clients cannot grow the tables.
    let method = match req.method().as_str() {
        m @ ("GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS") => m,
        _ => "other",
    }
    .to_owned();
    // Paths outside the SCIM API are labelled only if they are the server's own.
    let path_label = match req.uri().path() {
        p @ ("/healthz" | "/readyz" | "/metrics") => p.to_owned(),
        _ => "other".to_owned(),
    };
    let response = {
        // Decremented however the request ends, also when the client goes away.
        let _in_flight = InFlight::enter(&metrics.in_flight);
        next.run(req).await
    };
    let status = response.status().as_u16();
    let served = response.extensions().get::<Served>();
    let route = served.map_or(path_label, |s| s.route.clone());
    if status >= 500 {
        metrics.failures.fetch_add(1, Ordering::Relaxed);
        if served.is_some_and(|s| s.cause.is_some()) {
            metrics.store_errors.fetch_add(1, Ordering::Relaxed);
        }
    }
    metrics.record(&method, &route, status, started.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let m = Metrics::default();
        m.record("GET", "/Users/{id}", 200, 0.003);
        m.record("GET", "/Users/{id}", 200, 0.2);
        m.record("POST", "/Users", 409, 0.004);
        let text = m.render();
        assert!(text.contains(
            "scim_http_requests_total{route=\"/Users/{id}\",method=\"GET\",status=\"200\"} 2"
        ));
        assert!(text.contains(
            "scim_http_request_duration_seconds_bucket{route=\"/Users/{id}\",le=\"0.005\"} 1"
        ));
        assert!(text.contains(
            "scim_http_request_duration_seconds_bucket{route=\"/Users/{id}\",le=\"0.25\"} 2"
        ));
        assert!(text.contains("scim_http_request_duration_seconds_count{route=\"/Users\"} 1"));
    }
}
