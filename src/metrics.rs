//! Prometheus metrics, kept in-process with atomics and rendered as text at `/metrics`.

use std::{
    collections::BTreeMap,
    fmt::Write,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

const BUCKETS_S: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

#[derive(Default)]
struct Histogram {
    buckets: [u64; BUCKETS_S.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    durations: Mutex<BTreeMap<String, Histogram>>,
    counters: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    mail_sent: AtomicU64,
    mail_failed: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Metrics {
    pub fn observe_request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        *lock(&self.requests).entry((route.to_string(), method.to_string(), status)).or_default() += 1;
        let mut d = lock(&self.durations);
        let h = d.entry(route.to_string()).or_default();
        h.count += 1;
        h.sum += seconds;
        for (i, b) in BUCKETS_S.iter().enumerate() {
            if seconds <= *b {
                h.buckets[i] += 1;
            }
        }
    }

    /// A labelled event counter: `latchkey_events_total{event=..., outcome=...}`.
    pub fn event(&self, event: &'static str, outcome: &'static str) {
        *lock(&self.counters).entry((event, outcome)).or_default() += 1;
    }

    pub fn token_issued(&self, how: &'static str) {
        self.event("token_issued", how);
    }
    pub fn refresh_reuse(&self) {
        self.event("refresh_reuse", "family_revoked");
    }
    pub fn mail_sent(&self) {
        self.mail_sent.fetch_add(1, Ordering::Relaxed);
    }
    pub fn mail_failed(&self) {
        self.mail_failed.fetch_add(1, Ordering::Relaxed);
    }

    pub fn render(&self, gauges: &[(&str, &str, i64)]) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# HELP latchkey_http_requests_total HTTP requests by route, method and status.");
        let _ = writeln!(out, "# TYPE latchkey_http_requests_total counter");
        for ((route, method, status), n) in lock(&self.requests).iter() {
            let _ = writeln!(
                out,
                "latchkey_http_requests_total{{route=\"{}\",method=\"{}\",status=\"{status}\"}} {n}",
                escape(route),
                escape(method)
            );
        }
        let _ = writeln!(out, "# HELP latchkey_http_request_duration_seconds Time to answer, by route.");
        let _ = writeln!(out, "# TYPE latchkey_http_request_duration_seconds histogram");
        for (route, h) in lock(&self.durations).iter() {
            let r = escape(route);
            for (i, b) in BUCKETS_S.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "latchkey_http_request_duration_seconds_bucket{{route=\"{r}\",le=\"{b}\"}} {}",
                    h.buckets[i]
                );
            }
            let _ =
                writeln!(out, "latchkey_http_request_duration_seconds_bucket{{route=\"{r}\",le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "latchkey_http_request_duration_seconds_sum{{route=\"{r}\"}} {}", h.sum);
            let _ = writeln!(out, "latchkey_http_request_duration_seconds_count{{route=\"{r}\"}} {}", h.count);
        }
        let _ = writeln!(out, "# HELP latchkey_events_total Business events by outcome.");
        let _ = writeln!(out, "# TYPE latchkey_events_total counter");
        for ((event, outcome), n) in lock(&self.counters).iter() {
            let _ = writeln!(out, "latchkey_events_total{{event=\"{event}\",outcome=\"{outcome}\"}} {n}");
        }
        let _ = writeln!(out, "# TYPE latchkey_mail_sent_total counter");
        let _ = writeln!(out, "latchkey_mail_sent_total {}", self.mail_sent.load(Ordering::Relaxed));
        let _ = writeln!(out, "# TYPE latchkey_mail_failed_attempts_total counter");
        let _ = writeln!(out, "latchkey_mail_failed_attempts_total {}", self.mail_failed.load(Ordering::Relaxed));
        for (name, help, v) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            let _ = writeln!(out, "{name} {v}");
        }
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
