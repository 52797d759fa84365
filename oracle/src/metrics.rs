//! Prometheus metrics in the text exposition format, without a metrics framework: a few
//! atomic counters and one latency histogram are all ingest needs.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ovpp_wire::http::{FleetGroup, FleetSummary};
use ovpp_wire::telemetry::validate::Reject;
use ovpp_wire::telemetry::validate::{Accepted, Outcome};

/// Request latency bucket bounds, seconds.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

#[derive(Default)]
pub struct Metrics {
    pub batches_accepted: AtomicU64,
    pub batches_already_stored: AtomicU64,
    pub readings_accepted: AtomicU64,
    rejected: [AtomicU64; Reject::ALL.len()],
    pub storage_failures: AtomicU64,
    latency_buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_micros: AtomicU64,
}

impl Metrics {
    pub fn record_outcomes<'a>(&self, outcomes: impl Iterator<Item = &'a Outcome>, readings: u64) {
        for outcome in outcomes {
            match outcome {
                Ok(Accepted::Stored) => self.batches_accepted.fetch_add(1, Ordering::Relaxed),
                Ok(Accepted::AlreadyStored) => self.batches_already_stored.fetch_add(1, Ordering::Relaxed),
                Err(reason) => {
                    let i = Reject::ALL.iter().position(|r| r == reason).unwrap_or(0);
                    self.rejected[i].fetch_add(1, Ordering::Relaxed)
                }
            };
        }
        self.readings_accepted.fetch_add(readings, Ordering::Relaxed);
    }

    pub fn rejected(&self, reason: Reject) -> u64 {
        let i = Reject::ALL.iter().position(|r| *r == reason).unwrap_or(0);
        self.rejected[i].load(Ordering::Relaxed)
    }

    pub fn observe_request(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        for (bound, bucket) in BUCKETS.iter().zip(&self.latency_buckets) {
            if secs <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_micros.fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn render(&self, fleet: &FleetSummary) -> String {
        let mut out = String::new();
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = writeln!(out, "# HELP ovpp_ingest_batches_accepted_total Telemetry batches accepted and stored.");
        let _ = writeln!(out, "# TYPE ovpp_ingest_batches_accepted_total counter");
        let _ = writeln!(out, "ovpp_ingest_batches_accepted_total {}", load(&self.batches_accepted));
        let _ =
            writeln!(out, "# HELP ovpp_ingest_batches_already_stored_total Retried batches that were stored before (not stored twice).");
        let _ = writeln!(out, "# TYPE ovpp_ingest_batches_already_stored_total counter");
        let _ = writeln!(out, "ovpp_ingest_batches_already_stored_total {}", load(&self.batches_already_stored));
        let _ = writeln!(out, "# HELP ovpp_ingest_readings_accepted_total Readings accepted and stored.");
        let _ = writeln!(out, "# TYPE ovpp_ingest_readings_accepted_total counter");
        let _ = writeln!(out, "ovpp_ingest_readings_accepted_total {}", load(&self.readings_accepted));
        let _ = writeln!(out, "# HELP ovpp_ingest_batches_rejected_total Telemetry batches rejected, by reason.");
        let _ = writeln!(out, "# TYPE ovpp_ingest_batches_rejected_total counter");
        for (reason, count) in Reject::ALL.iter().zip(&self.rejected) {
            let _ = writeln!(out, "ovpp_ingest_batches_rejected_total{{reason=\"{}\"}} {}", reason.code(), load(count));
        }
        let _ = writeln!(out, "# HELP ovpp_ingest_storage_failures_total Commits that failed (their requests got 503).");
        let _ = writeln!(out, "# TYPE ovpp_ingest_storage_failures_total counter");
        let _ = writeln!(out, "ovpp_ingest_storage_failures_total {}", load(&self.storage_failures));
        let _ = writeln!(out, "# HELP ovpp_ingest_request_duration_seconds Time to verify, validate and durably store one request.");
        let _ = writeln!(out, "# TYPE ovpp_ingest_request_duration_seconds histogram");
        for (bound, bucket) in BUCKETS.iter().zip(&self.latency_buckets) {
            let _ = writeln!(out, "ovpp_ingest_request_duration_seconds_bucket{{le=\"{bound}\"}} {}", load(bucket));
        }
        let count = load(&self.latency_count);
        let _ = writeln!(out, "ovpp_ingest_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "ovpp_ingest_request_duration_seconds_sum {}", load(&self.latency_sum_micros) as f64 / 1e6);
        let _ = writeln!(out, "ovpp_ingest_request_duration_seconds_count {count}");
        type Gauge = (&'static str, &'static str, fn(&FleetGroup) -> u64);
        let gauges: [Gauge; 6] = [
            ("ovpp_fleet_devices", "Registered devices.", |g| g.devices),
            ("ovpp_fleet_devices_online", "Devices online now.", |g| g.devices_online),
            ("ovpp_fleet_rated_power_watts", "Declared rated power.", |g| g.rated_power_w),
            ("ovpp_fleet_stored_energy_watt_hours", "Energy stored in online storage.", |g| g.stored_energy_wh),
            ("ovpp_fleet_flex_up_watts", "Flexibility available up (more delivery) now.", |g| g.flex_up_w),
            ("ovpp_fleet_flex_down_watts", "Flexibility available down (more draw) now.", |g| g.flex_down_w),
        ];
        for (name, help, get) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            for (region, group) in &fleet.by_region {
                let _ = writeln!(out, "{name}{{region=\"{region}\"}} {}", get(group));
            }
        }
        out
    }
}
